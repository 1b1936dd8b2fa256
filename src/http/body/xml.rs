//! XML request bodies, read with quick-xml's pull parser.
//!
//! A create body is `<customer>` with one child element per field, named as in JSON; `id`, `code`
//! and `accountId` may instead be attributes of `<customer>`, as the gateway writes them (and as
//! answers carry them). Document type declarations are refused outright, so there is no DTD, no
//! external entity (XXE) and no entity expansion (billion laughs); only XML's five predefined
//! entities and character references are resolved.

use super::super::ApiError;
use crate::domain::{FieldValue, TextField};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;

/// The fields of a `<customer>` document, in document order. `accountId` is read as an integer
/// when its text is one; an empty element is a null.
///
/// # Errors
/// [`ApiError::Malformed`] with the line and column where the document broke, or for a DOCTYPE,
/// an unknown entity, a root other than `<customer>`, or a field element with child elements.
pub fn customer_fields(body: &[u8]) -> Result<Vec<(String, FieldValue)>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|error| {
        let (line, column) = line_and_column(body, error.valid_up_to());
        malformed(line, column, "the body is not UTF-8")
    })?;
    // Text is not trimmed here: trimming around `&amp;` would eat the spaces of `A &amp; B`.
    // The domain trims each field's value; blank text between elements is skipped below.
    let mut reader = Reader::from_str(text);
    let mut fields = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<(String, String, bool)> = None;
    // Whether the root element has been read whole: a second one is refused.
    let mut root_read = false;
    loop {
        let event = reader.read_event().map_err(|error| {
            let (line, column) = line_and_column(body, reader.error_position() as usize);
            malformed(line, column, &error.to_string())
        })?;
        let at = || line_and_column(body, reader.buffer_position() as usize);
        match event {
            Event::Decl(declaration) => {
                let declared = declaration.encoding().and_then(Result::ok);
                if declared.is_some_and(|encoding| !encoding.eq_ignore_ascii_case("utf-8")) {
                    let (line, column) = at();
                    return Err(malformed(
                        line,
                        column,
                        "the only encoding accepted is UTF-8",
                    ));
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::DocType(_) => {
                let (line, column) = at();
                return Err(malformed(
                    line,
                    column,
                    "DOCTYPE declarations are not accepted",
                ));
            }
            Event::Start(element) => {
                let name = element.name().as_ref().to_owned();
                well_formed_attributes(&element, at)?;
                depth += 1;
                match depth {
                    1 if root_read => return Err(second_root(at)),
                    1 if name == "customer" => root_attributes(&element, at, &mut fields)?,
                    1 => {
                        let (line, column) = at();
                        let detail = format!("the root element must be <customer>, not <{name}>");
                        return Err(malformed(line, column, &detail));
                    }
                    2 => current = Some((name, String::new(), false)),
                    _ => {
                        let (line, column) = at();
                        let field = current.as_ref().map_or("", |(field, _, _)| field.as_str());
                        let detail = format!("<{field}> must hold text, not elements");
                        return Err(malformed(line, column, &detail));
                    }
                }
            }
            Event::Empty(element) => {
                let name = element.name().as_ref().to_owned();
                well_formed_attributes(&element, at)?;
                match depth {
                    0 if root_read => return Err(second_root(at)),
                    0 if name == "customer" => {
                        root_attributes(&element, at, &mut fields)?;
                        root_read = true;
                    }
                    1 => fields.push((name, FieldValue::Null)),
                    _ => {
                        let (line, column) = at();
                        let detail = format!("unexpected element <{name}/>");
                        return Err(malformed(line, column, &detail));
                    }
                }
            }
            Event::Text(content) => {
                let content = content.xml10_content();
                if current.is_some() || !content.trim().is_empty() {
                    append_text(&mut current, &content, at)?;
                }
            }
            Event::CData(content) => {
                append_text(&mut current, &content.xml10_content(), at)?;
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(character)) => character.to_string(),
                    _ => {
                        let name = reference.xml10_content();
                        let predefined = resolve_predefined_entity(&name).ok_or_else(|| {
                            let (line, column) = at();
                            malformed(line, column, &format!("unknown entity &{name};"))
                        })?;
                        predefined.to_owned()
                    }
                };
                append_text(&mut current, &resolved, at)?;
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some((name, text, had_text)) = current.take() {
                        fields.push((name.clone(), field_value(&name, text, had_text)));
                    }
                }
                depth = depth.saturating_sub(1);
                root_read |= depth == 0;
            }
            Event::Eof if depth > 0 => {
                let (line, column) = at();
                let open = current.map_or("customer".to_owned(), |(name, _, _)| name);
                let detail = format!("the document ends before <{open}> is closed");
                return Err(malformed(line, column, &detail));
            }
            Event::Eof => break,
        }
    }
    if fields.is_empty() && !text.contains("<customer") {
        return Err(malformed(1, 1, "the body must be a <customer> element"));
    }
    Ok(fields)
}

/// Refuses an element whose attributes are not well-formed (a duplicate, a missing quote).
fn well_formed_attributes(
    element: &quick_xml::events::BytesStart<'_>,
    at: impl Fn() -> (usize, usize),
) -> Result<(), ApiError> {
    for attribute in element.attributes() {
        if let Err(error) = attribute {
            let (line, column) = at();
            return Err(malformed(line, column, &error.to_string()));
        }
    }
    Ok(())
}

/// The fields the gateway writes as attributes of `<customer>`.
const ATTRIBUTE_FIELDS: [&str; 3] = ["id", "code", "accountId"];

/// Adds the root's `id`, `code` and `accountId` attributes to `fields` (an empty value is a
/// null). Any other field as an attribute is refused rather than dropped, as is a field's name
/// under a namespace prefix (`x:code`); any other attribute without a prefix (a typo such as
/// `acountId`) goes into `fields` too, where it is refused as an unknown field, as in JSON.
/// Namespace declarations and attributes of other vocabularies (`xmlns`, `xml:lang`,
/// `xsi:schemaLocation`) are ignored, once their values are known to be well-formed.
fn root_attributes(
    element: &quick_xml::events::BytesStart<'_>,
    at: impl Fn() -> (usize, usize),
    fields: &mut Vec<(String, FieldValue)>,
) -> Result<(), ApiError> {
    for attribute in element.attributes().flatten() {
        let name = attribute.key.as_ref().to_owned();
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|error| {
                let (line, column) = at();
                malformed(line, column, &format!("attribute {name}: {error}"))
            })?;
        let local = attribute.key.local_name().as_ref().to_owned();
        let is_field = ATTRIBUTE_FIELDS.contains(&local.as_str()) || is_customer_member(&local);
        let prefixed = attribute.key.prefix().is_some();
        let refusal = match (prefixed, ATTRIBUTE_FIELDS.contains(&name.as_str())) {
            (false, true) => {
                let had_text = !value.is_empty();
                let value = field_value(&name, value.into_owned(), had_text);
                fields.push((name, value));
                continue;
            }
            (true, _) if is_field && !name.starts_with("xmlns:") => {
                format!("{name}: a customer field takes no namespace prefix (write {local}=\"…\")")
            }
            (false, false) if is_field => format!(
                "{name} must be an element of <customer>, not an attribute (only id, code and \
                 accountId may be attributes)"
            ),
            (false, false) if name != "xmlns" => {
                fields.push((name, FieldValue::Text(value.into_owned())));
                continue;
            }
            _ => continue,
        };
        let (line, column) = at();
        return Err(malformed(line, column, &refusal));
    }
    Ok(())
}

/// Whether `name` is a member of the customer's JSON form.
fn is_customer_member(name: &str) -> bool {
    TextField::from_name(name).is_some() || matches!(name, "createdAt" | "updatedAt" | "version")
}

fn second_root(at: impl Fn() -> (usize, usize)) -> ApiError {
    let (line, column) = at();
    malformed(line, column, "a document has one root element, <customer>")
}

fn append_text(
    current: &mut Option<(String, String, bool)>,
    content: &str,
    at: impl Fn() -> (usize, usize),
) -> Result<(), ApiError> {
    match current {
        Some((_, text, had_text)) => {
            text.push_str(content);
            *had_text = true;
            Ok(())
        }
        None => {
            let (line, column) = at();
            Err(malformed(
                line,
                column,
                "text is allowed only inside field elements",
            ))
        }
    }
}

/// `accountId` is a number in JSON; in XML its text is read as one when it is one.
fn field_value(name: &str, text: String, had_text: bool) -> FieldValue {
    if !had_text {
        return FieldValue::Null;
    }
    if name == "accountId" {
        if let Ok(number) = text.trim().parse::<i64>() {
            return FieldValue::Integer(number);
        }
    }
    FieldValue::Text(text)
}

fn malformed(line: usize, column: usize, what: &str) -> ApiError {
    ApiError::Malformed(format!(
        "the body is not valid customer XML at line {line}, column {column}: {what}"
    ))
}

/// The 1-based line and column (in characters) of byte `offset` of `body`.
fn line_and_column(body: &[u8], offset: usize) -> (usize, usize) {
    let before = &body[..offset.min(body.len())];
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |at| at + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Customer, CustomerDetails};

    fn fields(xml: &str) -> Vec<(String, FieldValue)> {
        customer_fields(xml.as_bytes()).unwrap()
    }

    fn refusal(xml: &str) -> String {
        match customer_fields(xml.as_bytes()) {
            Err(ApiError::Malformed(detail)) => detail,
            other => panic!("{xml} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn fields_come_out_in_document_order_with_entities_resolved() {
        let parsed = fields(
            "<?xml version=\"1.0\"?>\n<customer>\n  <accountId> 42 </accountId>\n  \
             <firstName>&#201;mile</firstName>\n  <organizationName>A &amp; B</organizationName>\n  \
             <city><![CDATA[Saint-Étienne]]></city>\n  <state/>\n</customer>",
        );
        assert_eq!(
            parsed,
            vec![
                ("accountId".into(), FieldValue::Integer(42)),
                ("firstName".into(), FieldValue::Text("Émile".into())),
                ("organizationName".into(), FieldValue::Text("A & B".into())),
                ("city".into(), FieldValue::Text("Saint-Étienne".into())),
                ("state".into(), FieldValue::Null),
            ]
        );
    }

    #[test]
    fn documents_that_are_not_well_formed_are_refused_where_they_break() {
        let unclosed = refusal("<customer><accountId>1</accountId>\n<firstName>Unclosed");
        assert!(unclosed.contains("<firstName> is closed"), "{unclosed}");
        assert!(unclosed.contains("line 2"), "{unclosed}");
        let open_root = refusal("<customer><accountId>1</accountId>");
        assert!(open_root.contains("<customer> is closed"), "{open_root}");
        for two_roots in [
            "<customer><city>a</city></customer><customer><state>NY</state></customer>",
            "<customer/><customer/>",
            "<customer><city>a</city></customer><other/>",
        ] {
            assert!(refusal(two_roots).contains("one root"), "{two_roots}");
        }
        let twice = refusal("<customer a=\"1\" a=\"2\"><city>x</city></customer>");
        let code_twice = refusal("<customer code=\"a\" code=\"b\"/>");
        assert!(code_twice.contains("line 1"), "{code_twice}");
        let attribute_field = refusal("<customer accountId=\"1\" city=\"Oslo\"/>");
        assert!(
            attribute_field.contains("city must be an element"),
            "{attribute_field}"
        );
        assert!(twice.contains("line 1"), "{twice}");
        let field_attribute = refusal("<customer><city x=\"1\" x=\"1\">a</city></customer>");
        assert!(field_attribute.contains("line 1"), "{field_attribute}");
        assert_eq!(
            fields("<customer xml:lang=\"en\"><city>a</city></customer>\n<!-- trailing -->\n"),
            vec![("city".into(), FieldValue::Text("a".into()))]
        );
    }

    #[test]
    fn id_code_and_account_may_be_attributes_of_the_root() {
        assert_eq!(
            fields(
                "<customer xmlns=\"urn:x\" id=\"x\" code=\" A&amp;B \" accountId=\"42\">\
                 <city>Oslo</city></customer>"
            ),
            vec![
                ("id".into(), FieldValue::Text("x".into())),
                ("code".into(), FieldValue::Text(" A&B ".into())),
                ("accountId".into(), FieldValue::Integer(42)),
                ("city".into(), FieldValue::Text("Oslo".into())),
            ]
        );
        assert_eq!(
            fields("<customer code=\"\" accountId=\"x1\"/>"),
            vec![
                ("code".into(), FieldValue::Null),
                ("accountId".into(), FieldValue::Text("x1".into())),
            ]
        );
        // A typo is passed on, to be refused as an unknown field (as in JSON); another
        // vocabulary's attribute is not.
        assert_eq!(
            fields(
                "<customer xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
                 xsi:schemaLocation=\"urn:x c.xsd\" acountId=\"5\"/>"
            ),
            vec![("acountId".into(), FieldValue::Text("5".into()))]
        );
    }

    #[test]
    fn doctypes_and_custom_entities_are_refused() {
        let xxe = "<?xml version=\"1.0\"?>\n<!DOCTYPE customer [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<customer><city>&x;</city></customer>";
        assert!(refusal(xxe).contains("DOCTYPE"));
        let laughs =
            "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><customer/>";
        assert!(refusal(laughs).contains("DOCTYPE"));
        assert!(refusal("<customer><city>&nbsp;</city></customer>").contains("unknown entity"));
    }

    #[test]
    fn broken_documents_say_where() {
        let detail = refusal("<customer>\n  <city>Paris</town>\n</customer>");
        assert!(detail.contains("line 2"), "{detail}");
        assert!(refusal("<person><city>x</city></person>").contains("<customer>"));
        assert!(refusal("<customer><city><b>x</b></city></customer>").contains("must hold text"));
        assert!(refusal("").contains("<customer>"));
        let latin1 = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><customer/>";
        assert!(refusal(latin1).contains("UTF-8"));
        let with_bom =
            "\u{feff}<?xml version=\"1.0\"?><customer><accountId>1</accountId></customer>";
        assert_eq!(
            fields(with_bom),
            vec![("accountId".into(), FieldValue::Integer(1))]
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Arbitrary bytes are answered, never a panic.
            #[test]
            fn any_body_is_answered(body in proptest::collection::vec(any::<u8>(), 0..300)) {
                let _ = customer_fields(&body);
            }

            /// Arbitrary text in an otherwise well-formed document is answered too.
            #[test]
            fn any_field_text_is_answered(text in any::<String>()) {
                let document = format!("<customer><accountId>1</accountId><city>{text}</city></customer>");
                let _ = customer_fields(document.as_bytes());
            }

            /// A customer written as XML reads back as the same details.
            #[test]
            fn customers_survive_xml(
                first in "[a-zA-Zéü&<>' \"]{1,20}",
                city in "[a-zA-Z&;#]{1,20}",
                account in 1i64..=2_147_483_647,
                code in proptest::option::of("[A-Za-z0-9._:/-]{1,60}"),
            ) {
                let mut details = CustomerDetails::for_account(AccountId::parse(account).unwrap());
                details.code = code.map(|code| crate::domain::CustomerCode::parse(&code).unwrap());
                prop_assume!(details.set_text(TextField::FirstName, &first).is_ok());
                prop_assume!(details.set_text(TextField::City, &city).is_ok());
                let customer = Customer::register(details.clone());
                let fields: Vec<(String, FieldValue)> = customer_fields(crate::http::xml::customer_document(&customer).as_bytes())
                    .unwrap()
                    .into_iter()
                    .filter(|(name, _)| !["id", "createdAt", "updatedAt", "version"].contains(&name.as_str()))
                    // Without a code of its own, the code written is the id.
                    .filter(|(name, _)| name != "code" || details.code.is_some())
                    .collect();
                prop_assert_eq!(CustomerDetails::parse(fields), Ok(details));
            }
        }
    }
}
