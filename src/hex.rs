//! Lower-case hexadecimal, the form digests and keys take in files, headers and listings.

use std::fmt::Write;

/// `bytes` as lower-case hex, two digits a byte.
pub fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        write!(text, "{byte:02x}").expect("writing to a String never fails");
    }
    text
}

/// The `N` bytes `text` spells in hex (either case); `None` for any other length or character.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).expect("hex digits are ASCII");
        *byte = u8::from_str_radix(pair, 16).expect("two hex digits are a byte");
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_survive_hex_and_nothing_else_decodes() {
        let bytes = [0x00, 0x7f, 0xa5, 0xff];
        assert_eq!(encode(&bytes), "007fa5ff");
        assert_eq!(decode::<4>("007fa5ff"), Some(bytes));
        assert_eq!(decode::<4>("007FA5FF"), Some(bytes));
        for refused in ["007fa5f", "007fa5fff", "+07fa5ff", "007fa5fg", "007fa5é"] {
            assert_eq!(decode::<4>(refused), None, "{refused}");
        }
    }
}
