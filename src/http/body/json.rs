//! JSON request bodies: a customer object's members, in document order, repeats kept.

use super::super::ApiError;
use crate::domain::FieldValue;

/// The members of a JSON object body, each as a field value.
///
/// # Errors
/// [`ApiError::Malformed`] saying where the body broke, or that it is not an object.
pub fn json_fields(body: &[u8]) -> Result<Vec<(String, FieldValue)>, ApiError> {
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
