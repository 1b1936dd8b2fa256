//! Updates: the fields a request changes (RFC 7396 merge-patch semantics: a value replaces, a null
//! clears, an absent field is kept), checked by the same rules as a create.

use super::customer::CustomerDetails;
use super::text_field::TextField;
use super::validation::{
    not_a_field, repeated_field, text_of, FieldError, FieldValue, ValidationErrors,
};
use std::collections::HashSet;

/// One field's change: its new value (already checked and normalised), or `None` to clear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// The field.
    pub field: TextField,
    /// The new value; `None` clears the field.
    pub value: Option<String>,
}

/// What an update request asks: a change per field it names, in the order named.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerPatch {
    changes: Vec<FieldChange>,
}

impl CustomerPatch {
    /// Parses the fields of an update request. Null or blank text clears a field; `accountId` and
    /// `code` are fixed at create (`create_only`); `id`, `createdAt`, `updatedAt` and `version` are the
    /// server's (`server_assigned`).
    ///
    /// # Errors
    /// Every broken rule, not only the first.
    pub fn parse(
        fields: impl IntoIterator<Item = (String, FieldValue)>,
    ) -> Result<CustomerPatch, ValidationErrors> {
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (name, value) in fields {
            if let Some(repeated) = repeated_field(&name, &mut seen) {
                errors.push(repeated);
            } else if let Some(field) = TextField::from_name(&name) {
                match checked_value(field, value) {
                    Ok(value) => changes.push(FieldChange { field, value }),
                    Err(error) => errors.push(error),
                }
            } else if name == "accountId" || name == "code" {
                let message =
                    format!("{name} is set when the customer is created and cannot change");
                errors.push(FieldError::new(&name, "create_only", message));
            } else {
                errors.push(not_a_field(&name));
            }
        }
        if errors.is_empty() {
            Ok(CustomerPatch { changes })
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// The changes the patch names, in the order named.
    pub fn fields(&self) -> &[FieldChange] {
        &self.changes
    }

    /// The changes the patch makes to `details`: the fields it names whose value differs, in the
    /// seed's order. Empty when the patch changes nothing.
    pub fn changes_to(&self, details: &CustomerDetails) -> Vec<FieldChange> {
        let mut changes: Vec<FieldChange> = self
            .changes
            .iter()
            .filter(|change| details.text(change.field) != change.value.as_deref())
            .cloned()
            .collect();
        changes.sort_by_key(|change| TextField::ALL.iter().position(|f| *f == change.field));
        changes
    }
}

impl CustomerDetails {
    /// Applies `changes` (values checked already, by [`CustomerPatch::parse`] or by decoding the
    /// event that carries them).
    pub fn apply(&mut self, changes: &[FieldChange]) {
        for change in changes {
            match &change.value {
                Some(value) => self.set_trusted_text(change.field, value.clone()),
                None => self.clear_text(change.field),
            }
        }
    }
}

/// A field's new value by its rule: `None` for null or blank text (clears it).
fn checked_value(field: TextField, value: FieldValue) -> Result<Option<String>, FieldError> {
    text_of(field, value)?
        .map(|text| normalised(field, &text))
        .transpose()
        .map_err(|violation| FieldError::broken(field.name(), violation))
}

/// `raw` as `field`'s rule stores it (trimmed, normalised), or the rule it broke.
pub(super) fn normalised(
    field: TextField,
    raw: &str,
) -> Result<String, super::fields::RuleViolation> {
    let mut scratch =
        CustomerDetails::for_account(super::ids::AccountId::parse(1).expect("1 is an account id"));
    scratch.set_text(field, raw)?;
    Ok(scratch
        .text(field)
        .expect("a field just set has a value")
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccountId;

    fn patch(fields: Vec<(&str, FieldValue)>) -> Result<CustomerPatch, ValidationErrors> {
        CustomerPatch::parse(fields.into_iter().map(|(n, v)| (n.to_owned(), v)))
    }

    fn text(value: &str) -> FieldValue {
        FieldValue::Text(value.to_owned())
    }

    #[test]
    fn values_replace_nulls_clear_and_absent_fields_stay() {
        let mut details = CustomerDetails::for_account(AccountId::parse(3).unwrap());
        details.set_text(TextField::LastName, "Lee").unwrap();
        details.set_text(TextField::City, "Oslo").unwrap();
        details.set_text(TextField::Email, "a@b.example").unwrap();
        let patch = patch(vec![
            ("city", FieldValue::Null),
            ("email", text("  new@b.example ")),
            ("lastName", text("Lee")),
            ("phone", text("")),
        ])
        .unwrap();
        let changes = patch.changes_to(&details);
        assert_eq!(
            changes,
            vec![
                FieldChange {
                    field: TextField::Email,
                    value: Some("new@b.example".into())
                },
                FieldChange {
                    field: TextField::City,
                    value: None
                },
            ],
            "unchanged values and clearing an absent field change nothing"
        );
        details.apply(&changes);
        assert_eq!(details.text(TextField::City), None);
        assert_eq!(details.text(TextField::Email), Some("new@b.example"));
        assert_eq!(details.text(TextField::LastName), Some("Lee"));
        assert!(patch.changes_to(&details).is_empty());
    }

    #[test]
    fn fixed_and_server_fields_and_broken_rules_are_refused_together() {
        let refused = patch(vec![
            ("accountId", FieldValue::Integer(4)),
            ("code", text("ABC")),
            ("version", FieldValue::Integer(2)),
            ("id", text("x")),
            ("countryCode", text("ZZ")),
            ("nickname", text("x")),
            ("city", FieldValue::Integer(1)),
            ("city", text("Oslo")),
        ])
        .unwrap_err();
        let codes: Vec<(&str, &str)> = refused
            .0
            .iter()
            .map(|error| (error.field.as_str(), error.code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("accountId", "create_only"),
                ("code", "create_only"),
                ("version", "server_assigned"),
                ("id", "server_assigned"),
                ("countryCode", "invalid_format"),
                ("nickname", "unknown_field"),
                ("city", "invalid_type"),
                ("city", "repeated_field"),
            ]
        );
    }
}
