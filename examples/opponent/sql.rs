//! The opponent's statements, each prepared once per connection (deadpool's statement cache),
//! and a row's JSON form, the registry's: absent fields left out, times in UTC milliseconds.

use crate::body::{Change, NewCustomer};
use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::Client;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// Every column, in the order [`CustomerRow::from_row`] reads them.
const COLUMNS: &str = "id, code, account_id, first_name, last_name, organization_name, email, \
     phone, street, city, state, zip_code, country_code, created_at, updated_at, version";

/// The columns of [`crate::body::TEXT_FIELDS`], in the same order.
const TEXT_COLUMNS: [&str; 10] = [
    "first_name",
    "last_name",
    "organization_name",
    "email",
    "phone",
    "street",
    "city",
    "state",
    "zip_code",
    "country_code",
];

/// A customer as the API answers it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerRow {
    pub id: uuid::Uuid,
    code: String,
    account_id: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    organization_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    street: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    zip_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country_code: Option<String>,
    created_at: String,
    updated_at: String,
    pub version: i64,
}

impl CustomerRow {
    fn from_row(row: &Row) -> Self {
        let time = |column: usize| {
            row.get::<_, DateTime<Utc>>(column)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        };
        Self {
            id: row.get(0),
            code: row.get(1),
            account_id: row.get(2),
            first_name: row.get(3),
            last_name: row.get(4),
            organization_name: row.get(5),
            email: row.get(6),
            phone: row.get(7),
            street: row.get(8),
            city: row.get(9),
            state: row.get(10),
            zip_code: row.get(11),
            country_code: row.get(12),
            created_at: time(13),
            updated_at: time(14),
            version: row.get(15),
        }
    }
}

/// Inserts `new` under a fresh UUIDv7 (its code when it has none).
pub async fn insert(
    client: &Client,
    new: &NewCustomer,
) -> Result<CustomerRow, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO customers (id, code, account_id, {}, created_at, updated_at, version) \
         VALUES ($1, $2, $3, {}, date_trunc('milliseconds', now()), \
         date_trunc('milliseconds', now()), 1) RETURNING {COLUMNS}",
        TEXT_COLUMNS.join(", "),
        (4..4 + TEXT_COLUMNS.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let statement = client.prepare_cached(&sql).await?;
    let id = uuid::Uuid::now_v7();
    let code = new.code.clone().unwrap_or_else(|| id.to_string());
    let mut parameters: Vec<&(dyn ToSql + Sync)> = vec![&id, &code, &new.account_id];
    parameters.extend(new.text.iter().map(|text| text as &(dyn ToSql + Sync)));
    let row = client.query_one(&statement, &parameters).await?;
    Ok(CustomerRow::from_row(&row))
}

/// The customer `id`, if there is one.
pub async fn by_id(
    client: &Client,
    id: uuid::Uuid,
) -> Result<Option<CustomerRow>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM customers WHERE id = $1"))
        .await?;
    let row = client.query_opt(&statement, &[&id]).await?;
    Ok(row.as_ref().map(CustomerRow::from_row))
}

/// Applies `change` to the customer `id` (one statement: the fields it names set or cleared,
/// the version moved on), and answers the customer as it is now.
pub async fn update(
    client: &Client,
    id: uuid::Uuid,
    change: &Change,
) -> Result<Option<CustomerRow>, tokio_postgres::Error> {
    let assignments: Vec<String> = TEXT_COLUMNS
        .iter()
        .enumerate()
        .map(|(n, column)| {
            let (named, value) = (2 + 2 * n, 3 + 2 * n);
            format!("{column} = CASE WHEN ${named} THEN ${value} ELSE {column} END")
        })
        .collect();
    let sql = format!(
        "UPDATE customers SET {}, version = version + 1, \
         updated_at = date_trunc('milliseconds', now()) WHERE id = $1 RETURNING {COLUMNS}",
        assignments.join(", ")
    );
    let statement = client.prepare_cached(&sql).await?;
    let named: Vec<bool> = change.text.iter().map(Option::is_some).collect();
    let values: Vec<Option<&str>> = change
        .text
        .iter()
        .map(|text| text.as_ref().and_then(|value| value.as_deref()))
        .collect();
    let mut parameters: Vec<&(dyn ToSql + Sync)> = vec![&id];
    for (named, value) in named.iter().zip(&values) {
        parameters.push(named);
        parameters.push(value);
    }
    let row = client.query_opt(&statement, &parameters).await?;
    Ok(row.as_ref().map(CustomerRow::from_row))
}

/// A find's filters and page.
pub struct Filter {
    account_id: Option<i32>,
    code: Option<String>,
    email: Option<String>,
    last_name: Option<String>,
    city: Option<String>,
    state: Option<String>,
    offset: i64,
    limit: i64,
}

impl Filter {
    /// The filters of a query string: those the benchmark asks (`accountId`, `code`, `email`,
    /// `lastName`, `city`, `state`) and `offset` / `limit`; any other is refused.
    pub fn parse(parameters: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut filter = Filter {
            account_id: None,
            code: None,
            email: None,
            last_name: None,
            city: None,
            state: None,
            offset: 0,
            limit: 100,
        };
        let number = |name: &str, text: &str| {
            text.parse::<i64>()
                .map_err(|_| format!("{name} must be a number"))
        };
        for (name, value) in parameters {
            if value.trim().is_empty() {
                return Err(format!("{name} is empty"));
            }
            let value = value.clone();
            match name.as_str() {
                "accountId" => {
                    filter.account_id = Some(
                        i32::try_from(number(name, &value)?)
                            .map_err(|_| "accountId is out of range".to_owned())?,
                    )
                }
                "code" => filter.code = Some(value),
                "email" => filter.email = Some(value),
                "lastName" => filter.last_name = Some(value),
                "city" => filter.city = Some(value),
                "state" => filter.state = Some(value),
                "offset" => filter.offset = number(name, &value)?.max(0),
                "limit" => filter.limit = number(name, &value)?.clamp(1, 1000),
                other => return Err(format!("{other} is not a filter the opponent serves")),
            }
        }
        Ok(filter)
    }

    /// The WHERE clause and its parameters: a text filter is a prefix of the lower-case,
    /// unaccented value, written as the range the `text_pattern_ops` indexes serve.
    fn clause(&self) -> (String, Vec<&(dyn ToSql + Sync)>) {
        let mut conditions = Vec::new();
        let mut parameters: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(account_id) = &self.account_id {
            parameters.push(account_id);
            conditions.push(format!("account_id = ${}", parameters.len()));
        }
        if let Some(code) = &self.code {
            parameters.push(code);
            conditions.push(format!("code = ${}", parameters.len()));
        }
        let prefixes = [
            (&self.email, "lower(email)", "lower"),
            (
                &self.last_name,
                "lower(f_unaccent(last_name))",
                "lower(f_unaccent",
            ),
            (&self.city, "lower(f_unaccent(city))", "lower(f_unaccent"),
        ];
        for (value, column, fold) in prefixes {
            if let Some(value) = value {
                parameters.push(value);
                let n = parameters.len();
                let close = if fold == "lower" { ")" } else { "))" };
                conditions.push(format!(
                    "{column} ~>=~ {fold}(${n}{close} AND {column} ~<~ ({fold}(${n}{close} || chr(1114111))"
                ));
            }
        }
        if let Some(state) = &self.state {
            parameters.push(state);
            conditions.push(format!("upper(state) = upper(${})", parameters.len()));
        }
        if conditions.is_empty() {
            conditions.push("TRUE".into());
        }
        (conditions.join(" AND "), parameters)
    }
}

/// A page of the customers `filter` selects, ordered by `createdAt` then id, and how many it
/// selects in all (`X-Total-Count`).
pub async fn find(
    client: &Client,
    filter: &Filter,
) -> Result<(Vec<CustomerRow>, i64), tokio_postgres::Error> {
    let (clause, mut parameters) = filter.clause();
    let n = parameters.len();
    let sql = format!(
        "SELECT {COLUMNS}, count(*) OVER () FROM customers WHERE {clause} \
         ORDER BY created_at, id LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    parameters.push(&filter.limit);
    parameters.push(&filter.offset);
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &parameters).await?;
    let total = match rows.first() {
        Some(row) => row.get(16),
        // A page past the last: the count alone.
        None if filter.offset > 0 => {
            let counting = client
                .prepare_cached(&format!("SELECT count(*) FROM customers WHERE {clause}"))
                .await?;
            client.query_one(&counting, &parameters[..n]).await?.get(0)
        }
        None => 0,
    };
    Ok((rows.iter().map(CustomerRow::from_row).collect(), total))
}
