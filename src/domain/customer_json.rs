//! The customer's JSON form, the event contract's and the API's: written field by field, and
//! read back checked (events, where a code must derive the id it names). Other wire forms (the
//! API's XML) write the identifying members their own way and the rest with
//! [`Customer::serialize_details`].

use super::code::CustomerCode;
use super::customer::{Customer, CustomerDetails};
use super::fields::{
    City, CountryCode, Email, OrganizationName, PersonName, Phone, State, Street, ZipCode,
};
use super::ids::{AccountId, CustomerId};
use super::text_field::TextField;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

impl Serialize for Customer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_as_json(true, serializer)
    }
}

/// A customer as `CustomerCreated` carries it: every field but `updatedAt` and `version` (a
/// created customer's are `createdAt` and 1), so the v1 contract stays as it was.
pub struct AsCreated<'a>(pub &'a Customer);

impl Serialize for AsCreated<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_as_json(false, serializer)
    }
}

impl Customer {
    /// The JSON form, field by field (serde's `flatten` would go through a map, and finds write
    /// pages of them); `lifecycle` adds `updatedAt` and `version`.
    fn serialize_as_json<S: Serializer>(
        &self,
        lifecycle: bool,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut json =
            serializer.serialize_struct("customer", 3 + self.detail_members(lifecycle))?;
        json.serialize_field("id", &self.id)?;
        json.serialize_field("code", &self.code())?;
        json.serialize_field("accountId", &self.details.account_id)?;
        self.serialize_details(&mut json, lifecycle)?;
        json.end()
    }

    /// How many members [`Customer::serialize_details`] writes.
    pub fn detail_members(&self, lifecycle: bool) -> usize {
        let present = TextField::ALL
            .iter()
            .filter(|field| self.details.text(**field).is_some())
            .count();
        present + if lifecycle { 3 } else { 1 }
    }

    /// Writes every member but the identifying ones (`id`, `code`, `accountId`), which each wire
    /// form names its own way: each present text field in the seed's order, `createdAt`, and
    /// with `lifecycle` `updatedAt` and `version`.
    pub fn serialize_details<S: SerializeStruct>(
        &self,
        members: &mut S,
        lifecycle: bool,
    ) -> Result<(), S::Error> {
        for field in TextField::ALL {
            if let Some(text) = self.details.text(field) {
                members.serialize_field(field.name(), text)?;
            }
        }
        members.serialize_field("createdAt", &Rfc3339Millis(self.created_at))?;
        if lifecycle {
            members.serialize_field("updatedAt", &Rfc3339Millis(self.updated_at))?;
            members.serialize_field("version", &self.version)?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Customer {
    /// Every field checked by its type, and a code checked against the id (see
    /// [`CustomerJson`]'s conversion).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = CustomerJson::deserialize(deserializer)?;
        Customer::try_from(json).map_err(serde::de::Error::custom)
    }
}

/// A time in the contract's form (see [`rfc3339_millis`]).
struct Rfc3339Millis(DateTime<Utc>);

impl Serialize for Rfc3339Millis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        rfc3339_millis::serialize(&self.0, serializer)
    }
}

/// The JSON form of a [`Customer`], field by field: read flat, it needs none of the buffering
/// `flatten` costs (most of what decoding an event took). Every field is checked by its type.
/// `updatedAt` and `version` are absent from `CustomerCreated`: then `createdAt` and 1.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerJson {
    id: CustomerId,
    code: Option<String>,
    account_id: AccountId,
    first_name: Option<PersonName>,
    last_name: Option<PersonName>,
    organization_name: Option<OrganizationName>,
    email: Option<Email>,
    phone: Option<Phone>,
    street: Option<Street>,
    city: Option<City>,
    state: Option<State>,
    zip_code: Option<ZipCode>,
    country_code: Option<CountryCode>,
    #[serde(with = "rfc3339_millis")]
    created_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "rfc3339_millis::deserialize_some")]
    updated_at: Option<DateTime<Utc>>,
    version: Option<u64>,
}

/// The members of a customer's JSON form that identify it.
pub struct IdentityJson {
    /// Its id.
    pub id: CustomerId,
    /// Its code as written (`None`, or its id's text: none of the merchant's).
    pub code: Option<String>,
    /// Its account.
    pub account_id: AccountId,
}

impl TryFrom<CustomerJson> for Customer {
    type Error = String;

    fn try_from(json: CustomerJson) -> Result<Self, String> {
        let identity = IdentityJson {
            id: json.id,
            code: json.code,
            account_id: json.account_id,
        };
        let mut customer = Customer::created_from(identity, json.created_at)?;
        let details = &mut customer.details;
        details.first_name = json.first_name;
        details.last_name = json.last_name;
        details.organization_name = json.organization_name;
        details.email = json.email;
        details.phone = json.phone;
        details.street = json.street;
        details.city = json.city;
        details.state = json.state;
        details.zip_code = json.zip_code;
        details.country_code = json.country_code;
        customer.updated_at = json.updated_at.unwrap_or(json.created_at);
        customer.version = json.version.unwrap_or(1);
        Ok(customer)
    }
}

impl Customer {
    /// The customer a create names, at version 1, with no personal field yet (its caller sets
    /// them). A `code` other than the id must be a valid code in its stored form, and the id must
    /// be the one the code derives (so a code is unique per account in every projection).
    ///
    /// # Errors
    /// A sentence naming what the code breaks.
    pub fn created_from(identity: IdentityJson, created_at: DateTime<Utc>) -> Result<Self, String> {
        let IdentityJson {
            id,
            code,
            account_id,
        } = identity;
        let code = match code {
            None => None,
            Some(text) if id.is_written_as(&text) => None,
            Some(text) => {
                let code = CustomerCode::parse(&text)
                    .map_err(|violation| format!("code {}", violation.message))?;
                if code.as_str() != text {
                    return Err("code is not in its stored form (trimmed)".into());
                }
                let derived = code.customer_id(account_id);
                if derived != id {
                    return Err(format!(
                        "id must be {derived}, the id code {text:?} derives in account {account_id}"
                    ));
                }
                Some(code)
            }
        };
        Ok(Customer {
            id,
            details: CustomerDetails {
                code,
                ..CustomerDetails::for_account(account_id)
            },
            created_at,
            updated_at: created_at,
            version: 1,
        })
    }
}

/// RFC 3339 timestamps in UTC with exactly three fractional digits, e.g. `2026-11-25T16:40:43.120Z`.
pub(crate) mod rfc3339_millis {
    use super::*;

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    /// Reads exactly the form `serialize` writes (the event contract's `timestamp` pattern):
    /// any other precision or offset would be stored differently from the event that carried it.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let time = DateTime::parse_from_rfc3339(&text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)?;
        if time.to_rfc3339_opts(SecondsFormat::Millis, true) != text {
            return Err(serde::de::Error::custom(format!(
                "{text:?} is not RFC 3339 in UTC with exactly three fractional digits \
                 (e.g. 2026-11-25T16:40:43.120Z)"
            )));
        }
        Ok(time)
    }

    /// [`deserialize`], for an optional field (`#[serde(default)]` supplies the `None`).
    pub fn deserialize_some<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_back_only_in_the_contract_form() {
        let read = |text: &str| {
            serde_json::from_value::<Customer>(serde_json::json!({
                "id": "01a2144a-68d6-7312-9312-c68e6a44a089",
                "accountId": 1,
                "createdAt": text,
            }))
        };
        assert!(read("2026-11-25T16:40:43.120Z").is_ok());
        for other in [
            "2026-11-25T16:40:43.120123Z",
            "2026-11-25T16:40:43Z",
            "2026-11-25T17:40:43.120+01:00",
            "2026-11-25t16:40:43.120z",
        ] {
            assert!(read(other).is_err(), "{other} was accepted");
        }
    }

    #[test]
    fn customer_json_has_the_seed_names_and_omits_absent_fields() {
        let mut details = CustomerDetails::for_account(AccountId::parse(42).unwrap());
        details.set_text(TextField::LastName, "Hamilton").unwrap();
        let customer = Customer {
            id: "01936a4e-8b1c-7def-8a00-000000000001".parse().unwrap(),
            details,
            created_at: DateTime::from_timestamp_millis(1_795_624_843_120).unwrap(),
            updated_at: DateTime::from_timestamp_millis(1_795_624_843_120).unwrap(),
            version: 1,
        };
        let json = serde_json::to_value(&customer).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "01936a4e-8b1c-7def-8a00-000000000001",
                "code": "01936a4e-8b1c-7def-8a00-000000000001",
                "accountId": 42,
                "lastName": "Hamilton",
                "createdAt": "2026-11-25T16:40:43.120Z",
                "updatedAt": "2026-11-25T16:40:43.120Z",
                "version": 1
            })
        );
        let back: Customer = serde_json::from_value(json).unwrap();
        assert_eq!(back, customer);
    }
}
