//! Request bodies: read with a size limit before any parsing, then parsed by format into the
//! fields the domain validates.

use super::negotiation::Format;
use super::{ApiError, MAX_BODY_BYTES};
use crate::domain::FieldValue;
use bytes::{Buf, Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;

mod json;
mod xml;

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
        Format::Json => json::json_fields(body),
        Format::Xml => xml::customer_fields(body),
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
}
