//! Request bodies: read with a size limit before any parsing, then parsed by format into the
//! fields the domain validates.

use super::negotiation::Format;
use super::{xml, ApiError, MAX_BODY_BYTES};
use crate::domain::FieldValue;
use bytes::{Buf, Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;

/// A request body as warp streams it.
pub type BodyStream = BoxStream<'static, Result<Bytes, warp::Error>>;

/// Reads the whole body, refusing it as soon as it passes [`MAX_BODY_BYTES`]: up front when
/// `Content-Length` says so, otherwise while it streams in.
///
/// # Errors
/// [`ApiError::PayloadTooLarge`], or [`ApiError::Malformed`] when the connection broke mid-body.
pub async fn read_limited(
    content_length: Option<u64>,
    mut body: BodyStream,
) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    };
    if content_length.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(too_large);
    }
    let mut collected = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|error| ApiError::Malformed(format!("reading the body: {error}")))?;
        if collected.len() + chunk.remaining() > MAX_BODY_BYTES as usize {
            return Err(too_large);
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.freeze())
}

/// The top-level fields of a body in `format`.
///
/// # Errors
/// [`ApiError::Malformed`] saying where the body broke.
pub fn customer_fields(format: Format, body: &[u8]) -> Result<Vec<(String, FieldValue)>, ApiError> {
    match format {
        Format::Json => json_fields(body),
        Format::Xml => xml::customer_fields(body),
    }
}

fn json_fields(body: &[u8]) -> Result<Vec<(String, FieldValue)>, ApiError> {
    let object: JsonObject = serde_json::from_slice(body).map_err(|error| {
        ApiError::Malformed(format!("the body is not a valid JSON object: {error}"))
    })?;
    Ok(object
        .0
        .into_iter()
        .map(|(name, value)| (name, json_field_value(value)))
        .collect())
}

/// A JSON object's members in document order, repeats included, so a repeated field is reported
/// rather than silently overwritten.
struct JsonObject(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for JsonObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;

        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = JsonObject;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object holding a Customer")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonObject, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(JsonObject(members))
            }
        }

        deserializer.deserialize_map(Members)
    }
}

fn json_field_value(value: serde_json::Value) -> FieldValue {
    use serde_json::Value;
    match value {
        Value::Null => FieldValue::Null,
        Value::String(text) => FieldValue::Text(text),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => FieldValue::Integer(integer),
            // A whole number too large for 64 bits is still a whole number: out of range.
            None if number.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                let negative = number.as_f64().is_some_and(|f| f < 0.0);
                FieldValue::Integer(if negative { i64::MIN } else { i64::MAX })
            }
            None => FieldValue::Other("a non-integer number"),
        },
        Value::Bool(_) => FieldValue::Other("a boolean"),
        Value::Array(_) => FieldValue::Other("an array"),
        Value::Object(_) => FieldValue::Other("an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: Vec<&'static [u8]>) -> BodyStream {
        futures::stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok(Bytes::from_static(chunk))),
        )
        .boxed()
    }

    #[tokio::test]
    async fn bodies_at_the_limit_pass_and_one_byte_more_does_not() {
        let limit = MAX_BODY_BYTES as usize;
        let at_limit: &'static [u8] = Box::leak(vec![b' '; limit].into_boxed_slice());
        assert_eq!(
            read_limited(None, stream(vec![at_limit]))
                .await
                .unwrap()
                .len(),
            limit
        );
        let too_long = read_limited(None, stream(vec![at_limit, b"x"])).await;
        assert!(matches!(too_long, Err(ApiError::PayloadTooLarge { .. })));
        let declared = read_limited(Some(MAX_BODY_BYTES + 1), stream(vec![])).await;
        assert!(matches!(declared, Err(ApiError::PayloadTooLarge { .. })));
    }

    #[test]
    fn repeated_json_members_are_all_kept() {
        let fields = json_fields(br#"{"accountId": 1, "city": "Paris", "city": "Lyon"}"#).unwrap();
        let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["accountId", "city", "city"]);
        assert!(json_fields(b"[1, 2]").is_err());
    }

    #[test]
    fn malformed_json_says_where() {
        match json_fields(b"{\n  \"accountId\": 1,\n}") {
            Err(ApiError::Malformed(detail)) => assert!(detail.contains("line 3"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }
}
