//! `customer-registry audit`: replays the log, up to where the live read model says it has
//! applied it, into a scratch read model, independently of the live one, and compares the two customer by customer by a canonical digest (SHA-256 of the
//! customer's JSON, fields in contract order; a stored customer that can no longer be read is
//! digested by why, and so differs).

use super::erasures::{self, CountingErased, ErasureProof};
use super::rebuild::in_use;
use super::{check_follows, keys_for, live_read_model_dir, AuditError, ScratchReadModel};
use crate::config::ToolSettings;
use crate::domain::CustomerId;
use crate::log::{existing_topic, reader, replay, replay_ends, LogPosition};
use crate::projection::BatchApplier;
use crate::read_model::{self, ReadModel, RejectedEvent};
use rdkafka::message::Message;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::process::ExitCode;

/// What an audit found.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuditReport {
    events_read: u64,
    customers_in_log: usize,
    customers_in_read_model: usize,
    /// Customers whose stored form differs from the log's.
    pub(super) mismatched: Vec<Drift>,
    /// Customers the log has and the read model lacks.
    pub(super) missing: Vec<Drift>,
    /// Customers the read model has and the log does not.
    pub(super) extra: Vec<Drift>,
    /// Records the log replay rejected (poison records and conflicts).
    rejected_events: Vec<RejectedEvent>,
    /// Whether the read model lists the same rejected records.
    rejected_events_match: bool,
    /// The end of the log now.
    log_end: String,
    /// What the read model says it has applied, where the replay stopped; behind `log_end`
    /// when the read model lags the log.
    read_model_position: String,
    /// What is proven of each erasure.
    erasures: Vec<ErasureProof>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Drift {
    customer_id: String,
    log_digest: Option<String>,
    read_model_digest: Option<String>,
}

impl AuditReport {
    fn drifted(&self) -> bool {
        !(self.mismatched.is_empty()
            && self.missing.is_empty()
            && self.extra.is_empty()
            && self.rejected_events_match
            && self.erasures.iter().all(ErasureProof::proven))
    }
}

/// Audits the read model of `settings.data_dir` against the log. Exit code 0 when they agree,
/// 1 on any drift.
///
/// # Errors
/// [`AuditError`] (exit code 2) when the log or the read model cannot be read.
pub async fn audit(settings: &ToolSettings) -> Result<ExitCode, AuditError> {
    let live_dir = live_read_model_dir(&settings.data_dir);
    if !live_dir.exists() {
        return Err(AuditError::Usage(format!(
            "{} holds no read model",
            settings.data_dir.display()
        )));
    }
    let (live, _) = read_model::open(&live_dir).map_err(in_use(&settings.data_dir))?;
    let layout = existing_topic(&settings.event_log.settings()).await?;
    check_follows(&live, &settings.event_log.topic, &layout.cluster_id)?;
    let event_log = settings.event_log.settings();
    let keys = keys_for(settings.kek_file.as_deref(), &event_log, &layout).await?;
    let counted = CountingErased::around(keys.opener());
    let scratch_dir = std::env::temp_dir().join(format!(
        "customer-registry-audit-{}",
        uuid::Uuid::now_v7().simple()
    ));
    // The replay stops where the read model stopped: records past it are not drift, only lag
    // (a replica killed before its flush committed them replays them when it starts).
    let applied = LogPosition::from_next_offsets(live.next_offsets()?);
    let report = tokio::task::spawn_blocking(move || {
        let mut scratch = ScratchReadModel::create(scratch_dir)?;
        let log_end = replay_ends(&reader(&event_log)?, &event_log.topic, None)?;
        let ends = log_end
            .iter()
            .map(|(&partition, &high)| (partition, applied.next_offset(partition).min(high)))
            .collect();
        let mut applier = BatchApplier::new(&mut scratch.writer, counted.clone());
        let events_read = replay::<AuditError>(&event_log, &ends, |message| {
            Ok(applier.push(message.partition(), message.offset(), message.payload())?)
        })?;
        applier.finish()?;
        let mut report = compare(&scratch.model, &live)?;
        report.erasures = erasures::prove(&keys, &counted, &scratch.model, &live)?;
        report.events_read = events_read;
        report.log_end = LogPosition::from_next_offsets(log_end).to_string();
        report.read_model_position = applied.to_string();
        Ok::<_, AuditError>(report)
    })
    .await
    .map_err(|_| AuditError::Usage("the audit task was cancelled".into()))??;

    super::print_outcome(&report, settings.json, || {
        print_report(&report);
    });
    Ok(if report.drifted() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Walks both read models' stored customers in id order, side by side.
pub(super) fn compare(from_log: &ReadModel, live: &ReadModel) -> Result<AuditReport, AuditError> {
    let mut report = AuditReport::default();
    let mut log_side = from_log.stored_customers().peekable();
    let mut live_side = live.stored_customers().peekable();
    loop {
        let order = match (log_side.peek(), live_side.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(Ok((log_id, _))), Some(Ok((held_id, _)))) => log_id.cmp(held_id),
            // Let the error surface below.
            _ => Ordering::Equal,
        };
        match order {
            Ordering::Less => {
                let (id, log) = log_side.next().expect("peeked")?;
                report.customers_in_log += 1;
                report.missing.push(drift(id, Some(&log), None));
            }
            Ordering::Greater => {
                let (id, held) = live_side.next().expect("peeked")?;
                report.customers_in_read_model += 1;
                report.extra.push(drift(id, None, Some(&held)));
            }
            Ordering::Equal => {
                let (id, log) = log_side.next().expect("peeked")?;
                let (_, held) = live_side.next().expect("peeked")?;
                report.customers_in_log += 1;
                report.customers_in_read_model += 1;
                if digest(&log) != digest(&held) {
                    report.mismatched.push(drift(id, Some(&log), Some(&held)));
                }
            }
        }
    }
    report.rejected_events = from_log.rejected_events()?;
    let place = |rejected: &RejectedEvent| (rejected.partition, rejected.offset, rejected.kind);
    let held_rejections: Vec<_> = live.rejected_events()?.iter().map(place).collect();
    report.rejected_events_match =
        report.rejected_events.iter().map(place).collect::<Vec<_>>() == held_rejections;
    Ok(report)
}

fn drift(id: CustomerId, log: Option<&[u8]>, held: Option<&[u8]>) -> Drift {
    Drift {
        customer_id: id.to_string(),
        log_digest: log.map(digest),
        read_model_digest: held.map(digest),
    }
}

/// SHA-256 of a customer's JSON, in hex.
fn digest(stored: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(stored))
}

fn print_report(report: &AuditReport) {
    println!(
        "replayed {} events (log end {}, read model at {}): {} customers in the log, {} in the read model",
        report.events_read,
        report.log_end,
        report.read_model_position,
        report.customers_in_log,
        report.customers_in_read_model
    );
    for (label, drifts) in [
        ("mismatch", &report.mismatched),
        ("missing from the read model", &report.missing),
        ("extra in the read model", &report.extra),
    ] {
        for drift in drifts {
            println!("{label}: customer {}", drift.customer_id);
        }
    }
    println!(
        "{} rejected events (poison records and conflicts) in the log",
        report.rejected_events.len()
    );
    for rejected in &report.rejected_events {
        println!(
            "  partition {} offset {}: {:?}: {}",
            rejected.partition, rejected.offset, rejected.kind, rejected.reason
        );
    }
    if !report.rejected_events_match {
        println!("drift: the read model lists other rejected events than the log replay");
    }
    for proof in &report.erasures {
        println!("{}", proof.line());
    }
    println!(
        "{}",
        if report.drifted() {
            "DRIFT: the read model differs from the log"
        } else {
            "OK: the read model matches the log"
        }
    );
}
