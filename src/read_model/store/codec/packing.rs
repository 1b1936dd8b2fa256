//! Blocks as format 6 stores them: a codec byte, then the block as it is ([`AS_IS`]) or
//! compressed with lz4 after its length ([`LZ4`]). Index and column blocks are packed; record
//! blocks are not (a page of a find reads up to one record block per customer, and unpacking
//! each would cost every find more than the disk it saves: docs/performance.md).

use super::Malformed;

/// The block follows as it is (lz4 did not make it smaller).
const AS_IS: u8 = 0;
/// The block follows lz4-compressed, after its length (u32, little-endian).
const LZ4: u8 = 1;

/// The longest block unpacking allocates for: far above any block the store writes (~4 KiB), so
/// that a damaged length cannot ask for gigabytes.
const MAX_UNPACKED: usize = 16 << 20;

/// `block` packed: compressed when that makes it smaller, else as it is.
pub fn pack_block(block: &[u8]) -> Vec<u8> {
    let header = 1 + 4;
    let mut packed = vec![0; header + lz4_flex::block::get_maximum_output_size(block.len())];
    packed[0] = LZ4;
    packed[1..header].copy_from_slice(&(block.len() as u32).to_le_bytes());
    match lz4_flex::block::compress_into(block, &mut packed[header..]) {
        Ok(compressed) if header + compressed < 1 + block.len() => {
            packed.truncate(header + compressed);
            packed
        }
        _ => {
            packed.clear();
            packed.push(AS_IS);
            packed.extend_from_slice(block);
            packed
        }
    }
}

/// Appends the block `stored` packs to `into`.
///
/// # Errors
/// [`Malformed`] for an unknown codec byte or bytes that do not unpack to their length.
pub fn unpack_block_into(stored: &[u8], into: &mut Vec<u8>) -> Result<(), Malformed> {
    match stored.split_first() {
        Some((&AS_IS, block)) => {
            into.extend_from_slice(block);
            Ok(())
        }
        Some((&LZ4, rest)) => {
            let (length, compressed) = rest
                .split_first_chunk::<4>()
                .ok_or(Malformed("a packed block's length is cut short"))?;
            let length = u32::from_le_bytes(*length) as usize;
            if length > MAX_UNPACKED {
                return Err(Malformed("a packed block is longer than any block"));
            }
            let start = into.len();
            into.resize(start + length, 0);
            match lz4_flex::block::decompress_into(compressed, &mut into[start..]) {
                Ok(written) if written == length => Ok(()),
                _ => Err(Malformed("a packed block does not unpack to its length")),
            }
        }
        _ => Err(Malformed("a packed block has an unknown codec")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpacked(stored: &[u8]) -> Result<Vec<u8>, Malformed> {
        let mut block = b"before".to_vec();
        unpack_block_into(stored, &mut block)?;
        Ok(block.split_off(6))
    }

    #[test]
    fn a_block_unpacks_to_itself_compressed_or_as_it_is() {
        let repetitive: Vec<u8> = (0..4096u32).map(|n| (n % 7) as u8).collect();
        let packed = pack_block(&repetitive);
        assert_eq!(packed[0], LZ4);
        assert!(packed.len() < repetitive.len() / 4);
        assert_eq!(unpacked(&packed).unwrap(), repetitive);
        // Bytes lz4 cannot shrink are kept as they are, one byte longer.
        let noise: Vec<u8> = (0..64u32).map(|n| (n * 151 % 251) as u8).collect();
        let packed = pack_block(&noise);
        assert_eq!((packed[0], packed.len()), (AS_IS, noise.len() + 1));
        assert_eq!(unpacked(&packed).unwrap(), noise);
        assert_eq!(unpacked(&pack_block(&[])).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn damaged_packed_blocks_are_malformed_never_a_panic() {
        let repetitive: Vec<u8> = (0..4096u32).map(|n| (n % 7) as u8).collect();
        let packed = pack_block(&repetitive);
        for cut in 0..packed.len() {
            let _ = unpacked(&packed[..cut]);
        }
        assert!(unpacked(&packed[..packed.len() - 1]).is_err());
        assert!(unpacked(&[]).is_err());
        assert!(unpacked(&[9, 1, 2]).is_err());
        let mut too_long = packed.clone();
        too_long[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpacked(&too_long).is_err());
        let mut wrong_length = packed;
        wrong_length[1..5].copy_from_slice(&4000u32.to_le_bytes());
        assert!(unpacked(&wrong_length).is_err());
    }
}
