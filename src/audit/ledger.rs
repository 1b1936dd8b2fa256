//! `customer-registry erasures`: the ledger of erasures, read from the keys topic alone (no KEK
//! needed, nothing personal shown): each erased marker's request, customer and time, whether
//! every key record of the customer's has a tombstone, and whether compaction has removed them
//! from the brokers' storage (none is read back from the topic's start). Each replica's own
//! places (the event applied, its read model purged) are in `GET /api/v01/erasures/{id}`.

use super::AuditError;
use crate::config::ErasuresSettings;
use crate::crypto::key_record::{KeyId, KeyRecord};
use crate::domain::CustomerId;
use crate::log::{existing_topic, KeyTail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::time::Duration;

/// How long reading the keys topic may stall before the tool gives up.
const STALL: Duration = Duration::from_secs(30);

/// One erasure, as the keys topic records it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LedgerEntry {
    request_id: String,
    customer_id: CustomerId,
    erased_at: String,
    /// Every key record of the customer's is followed by its tombstone.
    keys_destroyed: bool,
    /// No key record of the customer's is left in the topic's storage.
    keys_removed_from_storage: bool,
}

/// What the keys topic says of one customer, folded record by record.
#[derive(Default)]
struct Folded {
    marker: Option<(String, DateTime<Utc>)>,
    /// Keys whose record was read and no tombstone after it.
    live: HashSet<KeyId>,
    /// Key records read (compaction removes them).
    stored: usize,
}

/// Lists the erasures of `settings`' keys topic. Exit code 0.
///
/// # Errors
/// [`AuditError`] when the topics cannot be read.
pub async fn erasures(settings: &ErasuresSettings) -> Result<ExitCode, AuditError> {
    let event_log = settings.event_log.settings();
    existing_topic(&event_log).await?;
    let customers = tokio::task::spawn_blocking(move || fold(&event_log))
        .await
        .map_err(|_| AuditError::Usage("the ledger task was cancelled".into()))??;
    let mut ledger: Vec<LedgerEntry> = customers
        .into_iter()
        .filter_map(|(customer, folded)| {
            let (request_id, erased_at) = folded.marker?;
            Some(LedgerEntry {
                request_id,
                customer_id: customer,
                erased_at: erased_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                keys_destroyed: folded.live.is_empty(),
                keys_removed_from_storage: folded.stored == 0,
            })
        })
        .collect();
    ledger.sort_by(|a, b| (&a.erased_at, a.customer_id).cmp(&(&b.erased_at, b.customer_id)));
    for entry in &ledger {
        if settings.json {
            println!(
                "{}",
                serde_json::to_string(entry).expect("an entry serialises")
            );
        } else {
            let yes = |done: bool| if done { "yes" } else { "no" };
            println!(
                "{} customer {} erased {}: keys destroyed {}, removed from storage {}",
                entry.request_id,
                entry.customer_id,
                entry.erased_at,
                yes(entry.keys_destroyed),
                yes(entry.keys_removed_from_storage)
            );
        }
    }
    if !settings.json {
        println!("{} erasures", ledger.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the keys topic from its start to its end now, folding each customer's records.
fn fold(
    event_log: &crate::log::EventLogSettings,
) -> Result<HashMap<CustomerId, Folded>, AuditError> {
    let mut customers: HashMap<CustomerId, Folded> = HashMap::new();
    KeyTail::open(event_log)?.read_to_end(STALL, |record| {
        let Ok(decoded) = KeyRecord::decode(&record.key, record.value.as_deref()) else {
            return;
        };
        match decoded {
            KeyRecord::DataKey {
                customer, key_id, ..
            } => {
                let folded = customers.entry(customer).or_default();
                folded.live.insert(key_id);
                folded.stored += 1;
            }
            KeyRecord::Destroyed { customer, key_id } => {
                customers.entry(customer).or_default().live.remove(&key_id);
            }
            KeyRecord::Erased {
                customer,
                erased_at,
                request_id,
            } => {
                let folded = customers.entry(customer).or_default();
                folded.marker.get_or_insert((request_id, erased_at));
            }
        }
    })?;
    Ok(customers)
}
