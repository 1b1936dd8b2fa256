//! Content negotiation: which format a request body is in (`Content-Type`) and which format the
//! client wants back (`Accept`, with q-values).

use crate::domain::{shown, NAME_SHOWN};

/// Why the formats a request asks for cannot be served (a 415 or a 406).
#[derive(Debug, PartialEq, Eq)]
pub enum NegotiationError {
    /// The body's media type, charset or coding is not one the route consumes; says which.
    UnsupportedMediaType(String),
    /// The client accepts no format the API produces; holds its `Accept`.
    NotAcceptable(String),
}

/// The two representations the API speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`, the default.
    Json,
    /// `application/xml` (requests may also say `text/xml`).
    Xml,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml; charset=utf-8",
        }
    }

    /// The `Content-Type` of a problem document in this format.
    pub fn problem_content_type(self) -> &'static str {
        match self {
            Format::Json => "application/problem+json",
            Format::Xml => "application/problem+xml; charset=utf-8",
        }
    }
}

/// The bodies a route consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumes {
    /// A create: JSON or XML.
    Create,
    /// An update by `POST`: JSON, XML, or a JSON merge patch.
    Update,
    /// An update by `PATCH`: a JSON merge patch (RFC 7396).
    MergePatch,
}

impl Consumes {
    /// The media types, for the refusal.
    fn described(self) -> &'static str {
        match self {
            Consumes::Create => "create consumes application/json or application/xml",
            Consumes::Update => {
                "update consumes application/json, application/merge-patch+json or \
                 application/xml"
            }
            Consumes::MergePatch => "PATCH consumes application/merge-patch+json",
        }
    }
}

/// The format of a request body, from its `Content-Type`, for a route that consumes
/// `consumes`. No `Content-Type` is taken as JSON, except by PATCH, whose one media type says
/// how the body is applied (RFC 5789: a patch document's type must be known); a `charset`
/// parameter, when given, must be UTF-8 (the only encoding bodies are read in).
///
/// # Errors
/// [`NegotiationError::UnsupportedMediaType`] for any other media type or charset.
pub fn body_format(
    content_type: Option<&str>,
    consumes: Consumes,
) -> Result<Format, NegotiationError> {
    let Some(content_type) = content_type else {
        if consumes == Consumes::MergePatch {
            return Err(NegotiationError::UnsupportedMediaType(format!(
                "{}, and the request has no Content-Type",
                consumes.described()
            )));
        }
        return Ok(Format::Json);
    };
    let media_type = media_type_of(content_type);
    let format = match (media_type.as_str(), consumes) {
        ("application/merge-patch+json", Consumes::Update | Consumes::MergePatch) => Format::Json,
        ("application/json", Consumes::Create | Consumes::Update) => Format::Json,
        ("application/xml" | "text/xml", Consumes::Create | Consumes::Update) => Format::Xml,
        _ => {
            let refused = shown(&media_type, NAME_SHOWN);
            return Err(NegotiationError::UnsupportedMediaType(format!(
                "{}, in UTF-8, not {refused}",
                consumes.described()
            )));
        }
    };
    let charset = content_type
        .split(';')
        .skip(1)
        .filter_map(|parameter| parameter.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches('"'));
    match charset {
        Some(charset) if !charset.eq_ignore_ascii_case("utf-8") => {
            let refused = shown(&format!("{media_type} in charset {charset}"), NAME_SHOWN);
            Err(NegotiationError::UnsupportedMediaType(format!(
                "{}, in UTF-8, not {refused}",
                consumes.described()
            )))
        }
        _ => Ok(format),
    }
}

/// The format to answer in, from `Accept`. JSON wins ties and answers a missing `Accept`, `*/*`
/// and `application/*`.
///
/// # Errors
/// [`NegotiationError::NotAcceptable`] when the client accepts neither JSON nor XML.
pub fn answer_format(accept: Option<&str>) -> Result<Format, NegotiationError> {
    let Some(accept) = accept.filter(|accept| !accept.trim().is_empty()) else {
        return Ok(Format::Json);
    };
    let json = quality(
        accept,
        &["application/json", "application/problem+json"],
        "application",
    );
    let xml = quality(
        accept,
        &["application/xml", "text/xml", "application/problem+xml"],
        "application",
    )
    .max(quality(accept, &["text/xml"], "text"));
    match (json, xml) {
        (0, 0) => Err(NegotiationError::NotAcceptable(accept.trim().to_owned())),
        (json, xml) if xml > json => Ok(Format::Xml),
        _ => Ok(Format::Json),
    }
}

/// The format of an error answer: the client's preference when it has one, JSON otherwise (a 406
/// itself is answered in JSON).
pub fn problem_format(accept: Option<&str>) -> Format {
    answer_format(accept).unwrap_or(Format::Json)
}

/// The q-value (in thousandths) the client gives to any of `exact` types, taking the most specific
/// matching range of `accept`: an exact type, then `main/*`, then `*/*` (RFC 9110 §12.5.1).
fn quality(accept: &str, exact: &[&str], main_type: &str) -> u16 {
    let mut best: Option<(u8, u16)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media_range = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let specificity = if exact.contains(&media_range.as_str()) {
            3
        } else if media_range == format!("{main_type}/*") {
            2
        } else if media_range == "*/*" {
            1
        } else {
            continue;
        };
        let q = parts
            .filter_map(|parameter| parameter.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, value)| parse_q(value.trim()));
        let better = match best {
            None => true,
            Some((best_specificity, best_q)) => {
                specificity > best_specificity || (specificity == best_specificity && q > best_q)
            }
        };
        if better {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// A q-value as thousandths. One above 1 is read as 1 (the most a client can prefer); anything
/// unreadable or negative counts as 0 (not acceptable).
fn parse_q(value: &str) -> u16 {
    value
        .parse::<f32>()
        .ok()
        .filter(|q| *q >= 0.0)
        .map_or(0, |q| (q.min(1.0) * 1000.0).round() as u16)
}

fn media_type_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Refuses a body sent with a content coding (`Content-Encoding: gzip`): bodies are read as
/// sent, and reading a compressed one as JSON would answer a misleading 400 (RFC 9110 8.4.1).
pub fn plain_body(content_encoding: Option<&str>) -> Result<(), NegotiationError> {
    match content_encoding.map(str::trim) {
        None | Some("") => Ok(()),
        Some(coding) if coding.eq_ignore_ascii_case("identity") => Ok(()),
        Some(coding) => Err(NegotiationError::UnsupportedMediaType(format!(
            "request bodies are read as sent, not in Content-Encoding {}",
            shown(coding, 40)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_or_xml_by_content_type() {
        let create = |content_type| body_format(content_type, Consumes::Create);
        assert_eq!(create(None).unwrap(), Format::Json);
        assert_eq!(
            create(Some("application/json; charset=utf-8")).unwrap(),
            Format::Json
        );
        assert_eq!(create(Some("Application/XML")).unwrap(), Format::Xml);
        assert_eq!(create(Some("text/xml")).unwrap(), Format::Xml);
        assert_eq!(
            create(Some("application/xml; charset=\"UTF-8\"")).unwrap(),
            Format::Xml
        );
        for refused in [
            "application/x-www-form-urlencoded",
            "application/json; charset=utf-16",
            "application/json;charset=ISO-8859-1",
            "text/xml; charset=\"latin1\"",
            "application/merge-patch+json",
        ] {
            assert!(
                matches!(
                    create(Some(refused)),
                    Err(NegotiationError::UnsupportedMediaType(_))
                ),
                "{refused}"
            );
        }
    }

    #[test]
    fn updates_take_merge_patches_and_patch_takes_nothing_else() {
        let patch = Some("application/merge-patch+json");
        assert_eq!(body_format(patch, Consumes::Update).unwrap(), Format::Json);
        assert_eq!(
            body_format(patch, Consumes::MergePatch).unwrap(),
            Format::Json
        );
        assert_eq!(
            body_format(Some("text/xml"), Consumes::Update).unwrap(),
            Format::Xml
        );
        for refused in [Some("application/json"), Some("application/xml"), None] {
            let answer = body_format(refused, Consumes::MergePatch);
            assert!(
                matches!(&answer, Err(NegotiationError::UnsupportedMediaType(why)) if why.contains("merge-patch")),
                "{refused:?}: {answer:?}"
            );
        }
    }

    #[test]
    fn answers_follow_accept_and_default_to_json() {
        let answer = |accept| answer_format(Some(accept)).ok();
        assert_eq!(answer_format(None).unwrap(), Format::Json);
        assert_eq!(answer("*/*"), Some(Format::Json));
        assert_eq!(answer("application/*"), Some(Format::Json));
        assert_eq!(answer("application/xml"), Some(Format::Xml));
        assert_eq!(answer("text/xml"), Some(Format::Xml));
        assert_eq!(answer("text/*"), Some(Format::Xml));
        assert_eq!(
            answer("application/json;q=0.5, application/xml"),
            Some(Format::Xml)
        );
        assert_eq!(
            answer("application/xml;q=0.9, */*;q=0.1"),
            Some(Format::Xml)
        );
        assert_eq!(
            answer("application/xml, application/json"),
            Some(Format::Json)
        );
        assert_eq!(answer("text/html, */*;q=0.8"), Some(Format::Json));
        assert_eq!(answer("text/html"), None);
        assert_eq!(answer("application/json;q=0"), None);
        assert_eq!(answer("*/*, application/json;q=0"), Some(Format::Xml));
        // A q-value above 1 is read as 1, not as unacceptable.
        assert_eq!(answer("application/xml;q=2"), Some(Format::Xml));
        assert_eq!(
            answer("application/xml;q=2, application/json;q=0.5"),
            Some(Format::Xml)
        );
        assert_eq!(answer("application/xml;q=-1"), None);
    }

    #[test]
    fn problems_fall_back_to_json() {
        assert_eq!(problem_format(Some("text/html")), Format::Json);
        assert_eq!(problem_format(Some("application/xml")), Format::Xml);
    }
}
