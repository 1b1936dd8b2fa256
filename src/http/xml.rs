//! XML answers, written with quick-xml's serde serializer: a customer as the gateway writes it
//! (`id`, `code` and `accountId` as attributes of `<customer>`, every other field an element
//! named as in JSON), lists of them, rejected events and a customer's records.

use crate::domain::Customer;
use crate::log::PublishedRecord;
use crate::read_model::RejectedEvent;
use serde::Serialize;

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// A customer as the gateway writes it in XML: `id`, `code` and `accountId` as attributes, the
/// other fields as child elements.
struct WithAttributes<'a>(&'a Customer);

impl Serialize for WithAttributes<'_> {
    /// quick-xml's serializer writes members named `@…` as attributes.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let customer = self.0;
        let members = 3 + customer.detail_members(true);
        let mut element = serializer.serialize_struct("customer", members)?;
        element.serialize_field("@id", &customer.id)?;
        element.serialize_field("@code", &customer.code())?;
        element.serialize_field("@accountId", &customer.details.account_id)?;
        customer.serialize_details(&mut element, true)?;
        element.end()
    }
}

/// `<customer id="…" code="…" accountId="…">…</customer>`.
pub fn customer_document(customer: &Customer) -> String {
    document("customer", &WithAttributes(customer))
}

/// `<customers><customer id="…" …>…</customer>…</customers>`.
pub fn customers_document(customers: &[Customer]) -> String {
    #[derive(Serialize)]
    struct Customers<'a> {
        customer: Vec<WithAttributes<'a>>,
    }
    let customer = customers.iter().map(WithAttributes).collect();
    document("customers", &Customers { customer })
}

/// `<rejectedEvents><rejectedEvent>…</rejectedEvent>…</rejectedEvents>`.
pub fn rejected_events_document(rejected: &[RejectedEvent]) -> String {
    #[derive(Serialize)]
    struct RejectedEvents<'a> {
        #[serde(rename = "rejectedEvent")]
        rejected_event: &'a [RejectedEvent],
    }
    document(
        "rejectedEvents",
        &RejectedEvents {
            rejected_event: rejected,
        },
    )
}

/// `<records><record>…</record>…</records>`: a customer's records, each value as published (JSON
/// text) in `<value>`.
pub fn history_document(records: &[PublishedRecord]) -> String {
    #[derive(Serialize)]
    struct Record<'a> {
        partition: i32,
        offset: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
        value: String,
    }
    #[derive(Serialize)]
    struct Records<'a> {
        record: Vec<Record<'a>>,
    }
    let record = records
        .iter()
        .map(|published| Record {
            partition: published.partition,
            offset: published.offset,
            timestamp: published
                .timestamp
                .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            key: published.key.as_deref(),
            value: published.event.to_string(),
        })
        .collect();
    document("records", &Records { record })
}

/// `value` as the document `<root>…</root>`, with the XML declaration.
pub fn document<T: Serialize>(root: &str, value: &T) -> String {
    let body = quick_xml::se::to_string_with_root(root, value)
        .expect("the API's own types always serialise to XML");
    format!("{DECLARATION}{}", well_formed_text(body))
}

/// `text` with every character XML 1.0 does not allow (C0 controls other than tab and line ends,
/// U+FFFE, U+FFFF) replaced by U+FFFD. Escaping cannot write them; the domain refuses them, but
/// a problem may echo what a client sent, and a record may predate a rule.
fn well_formed_text(text: String) -> String {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    };
    if text.chars().all(allowed) {
        return text;
    }
    text.chars()
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, CustomerDetails, FieldValue, TextField};
    use crate::http::body::customer_fields;
    use crate::http::negotiation::Format;

    #[test]
    fn documents_are_written_with_the_json_names_and_the_gateways_attributes() {
        let mut details = CustomerDetails::for_account(AccountId::parse(7).unwrap());
        details
            .set_text(TextField::FirstName, "Émile & Zoë")
            .unwrap();
        let customer = Customer::register(details);
        let xml = customer_document(&customer);
        assert!(xml.starts_with(DECLARATION));
        let id = customer.id;
        assert!(
            xml.contains(&format!(
                "<customer id=\"{id}\" code=\"{id}\" accountId=\"7\">"
            )),
            "{xml}"
        );
        assert!(
            xml.contains("<firstName>Émile &amp; Zoë</firstName>"),
            "{xml}"
        );
        let round_trip = customer_fields(Format::Xml, xml.as_bytes()).unwrap();
        assert!(round_trip.contains(&("firstName".into(), FieldValue::Text("Émile & Zoë".into()))));
        assert!(round_trip.contains(&("accountId".into(), FieldValue::Integer(7))));
        let list = customers_document(&[customer.clone(), customer]);
        assert_eq!(list.matches("<customer id=").count(), 2, "{list}");
        assert!(customers_document(&[]).contains("<customers/>"));
    }

    #[test]
    fn characters_xml_cannot_hold_are_replaced() {
        assert_eq!(well_formed_text("tab\tok é 😀".into()), "tab\tok é 😀");
        assert_eq!(
            well_formed_text("a\u{1}b\u{FFFF}".into()),
            "a\u{FFFD}b\u{FFFD}"
        );
    }
}
