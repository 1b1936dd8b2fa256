//! The customer record: its identifiers and the fields of the seed's `Customer` object.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

use super::fields::{
    City, CountryCode, Email, OrganizationName, PersonName, Phone, RuleViolation, State, Street,
    ZipCode,
};
use super::text_field::TextField;

/// A customer's identifier, assigned by the server: a UUIDv7 (time-ordered), or for a create with
/// an `Idempotency-Key` a UUIDv5 derived from the account and the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomerId(Uuid);

impl CustomerId {
    /// A fresh time-ordered id.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id's 16 bytes, as stored in read-model keys.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from the 16 bytes of a read-model key.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for CustomerId {
    type Err = uuid::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(text).map(Self)
    }
}

/// The merchant account a customer belongs to: a positive 32-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(u32);

impl AccountId {
    /// The largest account id: the seed's `Integer` is a signed 32-bit value.
    pub const MAX: i64 = i32::MAX as i64;

    /// Accepts 1..=2147483647.
    ///
    /// # Errors
    /// Returns the rejected value when it is zero, negative or past [`AccountId::MAX`].
    pub fn parse(value: i64) -> Result<Self, i64> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value as u32))
        } else {
            Err(value)
        }
    }

    /// The id as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        Self::parse(value).map_err(|value| {
            serde::de::Error::custom(format!("accountId {value} is not in 1..={}", Self::MAX))
        })
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a client supplies about a customer: everything but the server-assigned `id` and `createdAt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerDetails {
    /// The owning merchant account.
    pub account_id: AccountId,
    /// Given name.
    pub first_name: Option<PersonName>,
    /// Family name.
    pub last_name: Option<PersonName>,
    /// Company name.
    pub organization_name: Option<OrganizationName>,
    /// Email address.
    pub email: Option<Email>,
    /// Phone number, as given.
    pub phone: Option<Phone>,
    /// Street of the mailing address.
    pub street: Option<Street>,
    /// City of the mailing address.
    pub city: Option<City>,
    /// State code of the mailing address.
    pub state: Option<State>,
    /// ZIP or postal code of the mailing address.
    pub zip_code: Option<ZipCode>,
    /// Country code of the mailing address, upper-case.
    pub country_code: Option<CountryCode>,
}

impl CustomerDetails {
    /// Details with only the account set.
    pub fn for_account(account_id: AccountId) -> Self {
        Self {
            account_id,
            first_name: None,
            last_name: None,
            organization_name: None,
            email: None,
            phone: None,
            street: None,
            city: None,
            state: None,
            zip_code: None,
            country_code: None,
        }
    }

    /// The value of a text field, when present.
    pub fn text(&self, field: TextField) -> Option<&str> {
        match field {
            TextField::FirstName => self.first_name.as_ref().map(PersonName::as_str),
            TextField::LastName => self.last_name.as_ref().map(PersonName::as_str),
            TextField::OrganizationName => self
                .organization_name
                .as_ref()
                .map(OrganizationName::as_str),
            TextField::Email => self.email.as_ref().map(Email::as_str),
            TextField::Phone => self.phone.as_ref().map(Phone::as_str),
            TextField::Street => self.street.as_ref().map(Street::as_str),
            TextField::City => self.city.as_ref().map(City::as_str),
            TextField::State => self.state.as_ref().map(State::as_str),
            TextField::ZipCode => self.zip_code.as_ref().map(ZipCode::as_str),
            TextField::CountryCode => self.country_code.as_ref().map(CountryCode::as_str),
        }
    }

    /// Parses `raw` by `field`'s rule and sets the field.
    ///
    /// # Errors
    /// The rule `raw` broke; the field is left as it was.
    pub fn set_text(&mut self, field: TextField, raw: &str) -> Result<(), RuleViolation> {
        match field {
            TextField::FirstName => self.first_name = Some(PersonName::parse(raw)?),
            TextField::LastName => self.last_name = Some(PersonName::parse(raw)?),
            TextField::OrganizationName => {
                self.organization_name = Some(OrganizationName::parse(raw)?)
            }
            TextField::Email => self.email = Some(Email::parse(raw)?),
            TextField::Phone => self.phone = Some(Phone::parse(raw)?),
            TextField::Street => self.street = Some(Street::parse(raw)?),
            TextField::City => self.city = Some(City::parse(raw)?),
            TextField::State => self.state = Some(State::parse(raw)?),
            TextField::ZipCode => self.zip_code = Some(ZipCode::parse(raw)?),
            TextField::CountryCode => self.country_code = Some(CountryCode::parse(raw)?),
        }
        Ok(())
    }

    /// Leaves `field` absent.
    pub fn clear_text(&mut self, field: TextField) {
        match field {
            TextField::FirstName => self.first_name = None,
            TextField::LastName => self.last_name = None,
            TextField::OrganizationName => self.organization_name = None,
            TextField::Email => self.email = None,
            TextField::Phone => self.phone = None,
            TextField::Street => self.street = None,
            TextField::City => self.city = None,
            TextField::State => self.state = None,
            TextField::ZipCode => self.zip_code = None,
            TextField::CountryCode => self.country_code = None,
        }
    }
}

/// A registered customer, as the API answers it. Its JSON is flat: `id`, `accountId`, each
/// present text field in the seed's order, `createdAt`, `updatedAt`, `version`.
/// (`CustomerCreated` carries it without the last two: see [`AsCreated`].)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "CustomerJson")]
pub struct Customer {
    /// Server-assigned id.
    pub id: CustomerId,
    /// The client-supplied fields.
    pub details: CustomerDetails,
    /// Server-assigned creation time, UTC, millisecond precision.
    pub created_at: DateTime<Utc>,
    /// When the last event changed it: `createdAt` until its first update.
    pub updated_at: DateTime<Utc>,
    /// 1 after the create, one more per update or delete: the `ETag` and `If-Match` value.
    pub version: u64,
}

impl Serialize for Customer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_fields(true, serializer)
    }
}

/// A customer as `CustomerCreated` carries it: every field but `updatedAt` and `version` (a
/// created customer's are `createdAt` and 1), so the v1 contract stays as it was.
pub struct AsCreated<'a>(pub &'a Customer);

impl Serialize for AsCreated<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_fields(false, serializer)
    }
}

impl Customer {
    /// Field by field (serde's `flatten` would go through a map, and finds write pages of them).
    fn serialize_fields<S: Serializer>(
        &self,
        lifecycle: bool,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let details = &self.details;
        let present = TextField::ALL
            .iter()
            .filter(|field| details.text(**field).is_some())
            .count();
        let mut json = serializer.serialize_struct("Customer", present + 5)?;
        json.serialize_field("id", &self.id)?;
        json.serialize_field("accountId", &details.account_id)?;
        for field in TextField::ALL {
            if let Some(text) = details.text(field) {
                json.serialize_field(field.name(), text)?;
            }
        }
        json.serialize_field("createdAt", &Rfc3339Millis(self.created_at))?;
        if lifecycle {
            json.serialize_field("updatedAt", &Rfc3339Millis(self.updated_at))?;
            json.serialize_field("version", &self.version)?;
        }
        json.end()
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

impl From<CustomerJson> for Customer {
    fn from(json: CustomerJson) -> Self {
        Customer {
            id: json.id,
            details: CustomerDetails {
                account_id: json.account_id,
                first_name: json.first_name,
                last_name: json.last_name,
                organization_name: json.organization_name,
                email: json.email,
                phone: json.phone,
                street: json.street,
                city: json.city,
                state: json.state,
                zip_code: json.zip_code,
                country_code: json.country_code,
            },
            created_at: json.created_at,
            updated_at: json.updated_at.unwrap_or(json.created_at),
            version: json.version.unwrap_or(1),
        }
    }
}

impl Customer {
    /// Registers `details` now: assigns a fresh id and the creation time.
    pub fn register(details: CustomerDetails) -> Self {
        Self::register_as(CustomerId::new_v7(), details)
    }

    /// Registers `details` now under a given id (one derived from an idempotency key).
    pub fn register_as(id: CustomerId, details: CustomerDetails) -> Self {
        let now = now_millis();
        Self {
            id,
            details,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
}

/// The current time truncated to milliseconds, so what is stored equals what is shown.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
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
    fn account_id_accepts_the_positive_32_bit_range_only() {
        assert_eq!(AccountId::parse(1).map(AccountId::get), Ok(1));
        assert_eq!(
            AccountId::parse(2_147_483_647).map(AccountId::get),
            Ok(2_147_483_647)
        );
        assert_eq!(AccountId::parse(0), Err(0));
        assert_eq!(AccountId::parse(-5), Err(-5));
        assert_eq!(AccountId::parse(2_147_483_648), Err(2_147_483_648));
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

    #[test]
    fn fresh_ids_sort_by_creation() {
        let first = CustomerId::new_v7();
        let second = CustomerId::new_v7();
        assert!(first < second);
    }
}
