//! The update and delete commands: a change becomes a `CustomerUpdated` or `CustomerDeleted`
//! naming the version it gives the customer, and the log decides whether it applies.
//!
//! Every change event names a definite version: the one after the version this replica holds
//! when it takes the request. The projector, here and on every replica, applies it only if the
//! customer is still at the version before it. So:
//! - a conditional request (`If-Match`) is answered from its own event's fate: applied (200 or
//!   204), or skipped because another change took the version first (412);
//! - an unconditional request ("whatever is current") whose event was skipped is applied again to
//!   the customer as it now is, as a new event, up to [`MAX_ATTEMPTS`] times.
//!
//! With an `Idempotency-Key` (scoped to the customer) the records carry the key and a digest of
//! the request as headers, and the event ids derive from account, key, customer, digest and the
//! version the event gives the customer; their first half from account, key and customer alone.
//! So the customer's event ids in the read model tell whether the key was used on it: a new key
//! reads nothing back. When the key's first event is this request's and made the current
//! version, the retry answers the customer as it is; otherwise the customer's records are read
//! back: one with the same key and digest is the first request's, and the retry answers what it
//! answered (the customer as that event left it); one with the same key and another digest makes
//! the retry a 422. Racing retries (on any replica) aiming at one version write the same event
//! id, so the log applies one and skips the others as duplicates.
//!
//! Those rules are pure functions in `decide/change.rs` (`standing`, `change_event`, `fate`,
//! `Keyed`); this file does the I/O around them: locks, waits, appends, read-backs, retries.

use super::decide::{self, ChangeKind, Fate, KeyUse, Keyed, Retry, Standing};
use super::registrar::Registrar;
use crate::crypto::KeysError;
use crate::domain::{now_millis, AuditTrail, Customer, CustomerId, IdempotencyKey};
use crate::log::{EventLogError, LogPosition, LogReadError, PublishedRecord};
use crate::read_model::{CustomerRecord, ReadModelError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The longest a change may take, Kafka outages and retries included.
const CHANGE_DEADLINE: Duration = Duration::from_secs(25);

/// How many times an unconditional change is tried against a customer others keep changing.
/// Of N changes racing on one customer, one wins each round: 32 rounds, each after a random
/// pause that spreads the racers out, let a burst of a few dozen all apply.
pub const MAX_ATTEMPTS: u32 = 32;

/// The longest pause between two tries of a change that lost a race.
pub const MAX_BACKOFF_MS: u32 = 40;

/// A change as this replica applied it.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The customer as the change left it (for a delete, as it was deleted).
    pub customer: Customer,
    /// The log position the answer reflects (it includes the change's event, when one was
    /// written).
    pub position: LogPosition,
    /// Whether this answers a retried `Idempotency-Key` from the first request's event.
    pub replayed: bool,
}

/// Why a change did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Kafka did not confirm the event.
    #[error(transparent)]
    EventLog(#[from] EventLogError),
    /// The event could not be sealed: no key could be had, or the customer was erased.
    #[error(transparent)]
    Keys(KeysError),
    /// The read model could not be consulted.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// No such customer, or it was deleted (before, or by a change that came first).
    #[error("no customer with id {0}")]
    NotFound(CustomerId),
    /// `If-Match` named a version the customer is not at.
    #[error(
        "customer {id} is at version {current}, not {expected}: read it again (its ETag) and \
         decide whether the change still holds"
    )]
    VersionMismatch {
        /// The customer.
        id: CustomerId,
        /// The version `If-Match` named.
        expected: u64,
        /// The version it is at.
        current: u64,
    },
    /// An unconditional change lost the race for the next version every time it tried.
    #[error(
        "customer {id} changed {attempts} times while this change was being applied; retry \
         shortly"
    )]
    Contended {
        /// The customer.
        id: CustomerId,
        /// How many times the change was tried.
        attempts: u32,
    },
    /// The idempotency key made another change to this customer before.
    #[error(
        "Idempotency-Key {key:?} was used for another change of customer {id}; a retry must repeat \
         the same request"
    )]
    KeyReused {
        /// The key.
        key: String,
        /// The customer.
        id: CustomerId,
    },
    /// The customer's records could not be read back to look for the key's first request.
    #[error("the customer's records could not be read back: {0}")]
    LogUnreadable(#[from] LogReadError),
    /// As many history reads as may run at once are running.
    #[error("too many reads of the log at once")]
    HistoryBusy,
    /// The customer is not on this replica, and this replica has not applied the customer's
    /// partition up to its end within the wait: it may exist, written through another replica.
    #[error(
        "this replica has not yet applied the log up to {wanted} (it is at {reached}), where the \
         customer would be had another replica just created it; retry shortly"
    )]
    Behind {
        /// The customer's partition's end when the change came.
        wanted: LogPosition,
        /// Where this replica had got to.
        reached: LogPosition,
    },
    /// The event is in the log, but this replica has not applied it within the wait: its
    /// outcome is not known here yet.
    #[error(
        "the change was written to the log (position {position}) but this replica has not applied \
         it yet, so whether it won is not known here; read the customer with X-Min-Log-Position: \
         {position} to learn it"
    )]
    Pending {
        /// A position that includes the event.
        position: LogPosition,
    },
}

/// What a change is conditional on (`If-Match`): the version the customer must be at, and the
/// versions the request listed when it named several (one of which `version` is). The list, not
/// the version it resolved to, identifies the request: a keyed retry sent after the first
/// request's own change moved the customer is the same request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// The version the customer must be at; `None`: any.
    pub version: Option<u64>,
    /// The versions `If-Match` listed, when several (ascending); empty otherwise.
    pub listed: Vec<u64>,
}

impl From<KeysError> for ChangeError {
    fn from(error: KeysError) -> Self {
        match error {
            KeysError::Write(error) => ChangeError::EventLog(error),
            other => ChangeError::Keys(other),
        }
    }
}

impl Registrar {
    /// Applies `kind` to customer `id`: when `condition` names a version, only if the customer is
    /// at that version. Appends the event, waits (bounded) until this replica has projected it, and
    /// answers from its fate. An update that changes nothing appends nothing.
    ///
    /// # Errors
    /// [`ChangeError`]: not found, a version mismatch, a lost race after every attempt, Kafka or
    /// the read model failing, or the outcome not known within the wait.
    pub async fn change(
        &self,
        id: CustomerId,
        kind: ChangeKind,
        condition: Condition,
        key: Option<&IdempotencyKey>,
        audit: AuditTrail,
    ) -> Result<Changed, ChangeError> {
        let request = ChangeRequest {
            id,
            kind,
            if_match: condition.version,
            listed: condition.listed,
            audit,
        };
        let work = async {
            match key {
                Some(key) => self.keyed_change(request, key).await,
                None => self.change_unbounded(&request, None).await,
            }
        };
        tokio::time::timeout(CHANGE_DEADLINE, work)
            .await
            .map_err(|_| ChangeError::EventLog(EventLogError::TimedOut(CHANGE_DEADLINE)))?
    }

    /// A change with an idempotency key: the first request's answer when this is a retry,
    /// otherwise the change, its records marked with the key.
    ///
    /// The customer's event ids tell, without reading the log, whether the key was used on it:
    /// a keyed change's event id starts with a part derived from account, key and customer
    /// alone. Only a key found there makes the customer's records be read back, unless its
    /// event made the version the customer is still at (then the answer is the customer).
    async fn keyed_change(
        &self,
        request: ChangeRequest,
        key: &IdempotencyKey,
    ) -> Result<Changed, ChangeError> {
        let digest = request.digest();
        let keyed = Keyed {
            key,
            digest: &digest,
        };
        // Requests with one key for one customer take turns here, whatever they ask: the second
        // finds the first's event.
        let turn = Sha256::digest(format!("{}:{}", key.as_str(), request.id));
        let _only_one_per_key = self.key_lock(turn).lock().await;
        let held = self
            .read_model
            .record(request.id)?
            .ok_or(ChangeError::NotFound(request.id))?;
        match keyed.retry(&held) {
            Retry::Unused => self.change_unbounded(&request, Some(keyed)).await,
            Retry::AsHeld => Ok(Changed {
                customer: held.customer.clone(),
                position: self.position_including(request.id)?,
                replayed: true,
            }),
            Retry::ReadBack => match self.first_answer(&request, &keyed, &held).await? {
                Some(answer) => Ok(answer),
                None => self.change_unbounded(&request, Some(keyed)).await,
            },
        }
    }

    /// The answer to a keyed change whose key marks some of the customer's events, from its
    /// records read back from the log ([`Keyed::key_use`]): the first answer, the customer as
    /// the key's first record left it; [`ChangeError::KeyReused`] when that record is another
    /// request's; `None` when the key is unused after all. Reads the records up to the last one
    /// `held` lists with the key's prefix, not the customer's whole history.
    async fn first_answer(
        &self,
        request: &ChangeRequest,
        keyed: &Keyed<'_>,
        held: &CustomerRecord,
    ) -> Result<Option<Changed>, ChangeError> {
        let Some(last_use) = keyed.last_use_at(held) else {
            return Ok(None);
        };
        let records = self.records_of(request.id, last_use + 1).await?;
        match keyed.key_use(&records, self.encryption.opener().as_ref()) {
            KeyUse::Unused => Ok(None),
            KeyUse::Reused => Err(ChangeError::KeyReused {
                key: keyed.key.as_str().to_owned(),
                id: request.id,
            }),
            KeyUse::Replay(customer) => {
                let customer = customer.ok_or(ChangeError::NotFound(request.id))?;
                Ok(Some(Changed {
                    customer: *customer,
                    position: self.position_including(request.id)?,
                    replayed: true,
                }))
            }
        }
    }

    /// Customer `id` as its create made it, read back from its first record (the only one
    /// read, however long its history).
    pub(super) async fn created_customer(&self, id: CustomerId) -> Result<Customer, ChangeError> {
        let records = self.records_of(id, 1).await?;
        records
            .first()
            .and_then(|first| decide::fold(None, first, self.encryption.opener().as_ref()))
            .ok_or(ChangeError::NotFound(id))
    }

    /// The first `at_most` records of customer `id`'s history, read back from the log.
    pub(super) async fn records_of(
        &self,
        id: CustomerId,
        at_most: usize,
    ) -> Result<Vec<PublishedRecord>, ChangeError> {
        let record = self
            .read_model
            .record(id)?
            .ok_or(ChangeError::NotFound(id))?;
        let mut positions = record.places();
        positions.truncate(at_most);
        let permit = self
            .history
            .try_reserve(record.customer.details.account_id)
            .ok_or(ChangeError::HistoryBusy)?;
        let history = Arc::clone(&self.history);
        let read = tokio::task::spawn_blocking(move || history.read_at(&permit, &positions))
            .await
            .map_err(|_| ChangeError::HistoryBusy)?;
        Ok(read?)
    }

    async fn change_unbounded(
        &self,
        request: &ChangeRequest,
        keyed: Option<Keyed<'_>>,
    ) -> Result<Changed, ChangeError> {
        let ChangeRequest {
            id,
            kind,
            if_match,
            audit,
            ..
        } = request;
        let (id, if_match) = (*id, *if_match);
        for attempt in 0..MAX_ATTEMPTS {
            let current = self.current(id, if_match).await?;
            let version = current.version + 1;
            let event_id = match &keyed {
                Some(keyed) => keyed.event_id(&current, version),
                None => Uuid::now_v7(),
            };
            let Some((event, after)) =
                decide::change_event(&current, kind, event_id, now_millis(), audit)
            else {
                let position = self.position_including(id)?;
                return Ok(Changed {
                    customer: current,
                    position,
                    replayed: false,
                });
            };
            let headers = keyed.as_ref().map_or_else(Vec::new, Keyed::headers);
            let record = self.append(&event, headers).await?;
            let wanted = LogPosition::default().including(record);
            let reached = self
                .progress
                .wait_until_reached(&wanted, self.projection_wait)
                .await;
            let position = self.progress.position().including(record);
            if !reached {
                return Err(ChangeError::Pending { position });
            }
            let held = self
                .read_model
                .record(id)?
                .ok_or(ChangeError::NotFound(id))?;
            let fate = decide::fate(&held, event_id, version, after, if_match);
            if let Fate::Applied(customer) = fate {
                return Ok(Changed {
                    customer: *customer,
                    position,
                    replayed: false,
                });
            }
            // The projector skipped the event: the customer went away, or another change took
            // the version first. With a key, that change may have been written with the same key
            // (on another replica): this request's own retry, or another request with the key.
            // Either way it is the first answer's, not a new version's, to give.
            if let Some(keyed) = &keyed {
                if keyed.first_use(&held).is_some() {
                    if let Some(answer) = self.first_answer(request, keyed, &held).await? {
                        return Ok(answer);
                    }
                }
            }
            match fate {
                Fate::Gone => return Err(ChangeError::NotFound(id)),
                Fate::Overtaken { expected, current } => {
                    return Err(ChangeError::VersionMismatch {
                        id,
                        expected,
                        current,
                    })
                }
                Fate::Applied(_) | Fate::Lost => {}
            }
            // Lost the race: a random pause, growing with the tries, so that racers retrying
            // together do not all aim at the same next version again.
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(ChangeError::Contended {
            id,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The customer as this replica holds it, at the version `if_match` names when given. A
    /// replica that holds an older version than named may trail the log (another replica wrote
    /// the version): it applies the customer's partition up to the partition's end as it is now,
    /// which holds every version acknowledged so far, and answers from there. A version still
    /// ahead then does not exist: 412 at once, not after a wait.
    async fn current(
        &self,
        id: CustomerId,
        if_match: Option<u64>,
    ) -> Result<Customer, ChangeError> {
        let current = self.read_model.get(id)?.ok_or(ChangeError::NotFound(id))?;
        let Some(expected) = if_match else {
            return Ok(current);
        };
        let mismatch = |current: u64| ChangeError::VersionMismatch {
            id,
            expected,
            current,
        };
        match decide::standing(current.version, expected) {
            Standing::Met => return Ok(current),
            Standing::Passed => return Err(mismatch(current.version)),
            Standing::NotYet => {}
        }
        if self.reach_partition_end(id).await.is_none() {
            // The end is not known now: wait for the version itself, bounded.
            let deadline = tokio::time::Instant::now() + self.projection_wait;
            while tokio::time::Instant::now() < deadline {
                let held = self.read_model.get(id)?.ok_or(ChangeError::NotFound(id))?;
                if decide::standing(held.version, expected) != Standing::NotYet {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let current = self.read_model.get(id)?.ok_or(ChangeError::NotFound(id))?;
        match decide::standing(current.version, expected) {
            Standing::Met => Ok(current),
            Standing::Passed | Standing::NotYet => Err(mismatch(current.version)),
        }
    }

    /// A customer this replica does not hold may have been created through another replica a
    /// moment ago (a load balancer spreads a client's create and its update): before a change
    /// is answered 404, this replica applies the customer's partition up to its end as it is
    /// now, which holds every event acknowledged for the customer so far. A customer held here
    /// costs one lookup; when the end cannot be read now, the change goes on with what is held.
    ///
    /// # Errors
    /// [`ChangeError::Behind`] when the projection does not get there within the wait.
    pub async fn settle_if_absent(&self, id: CustomerId) -> Result<(), ChangeError> {
        if self.read_model.record(id)?.is_some() {
            return Ok(());
        }
        match decide::behind(self.reach_partition_end(id).await) {
            Some(wanted) => Err(ChangeError::Behind {
                wanted,
                reached: self.progress.position(),
            }),
            None => Ok(()),
        }
    }

    /// Brings this replica up to the end, as it is now, of customer `id`'s partition (bounded by
    /// the projection wait; when the end cannot be read, as far as it got): every version
    /// acknowledged for the customer so far is then held here.
    pub async fn catch_up_with(&self, id: CustomerId) {
        let _ = self.reach_partition_end(id).await;
    }

    /// This replica's position, including every record of customer `id` it applied.
    pub(super) fn position_including(&self, id: CustomerId) -> Result<LogPosition, ChangeError> {
        Ok(self.read_model.history_of(id)?.into_iter().fold(
            self.progress.position(),
            |position, (partition, offset)| {
                position.including(crate::log::RecordPosition { partition, offset })
            },
        ))
    }
}

/// A random pause of up to `(attempt + 1) * 5` ms, at most [`MAX_BACKOFF_MS`].
fn backoff(attempt: u32) -> Duration {
    let ceiling = ((attempt + 1) * 5).min(MAX_BACKOFF_MS);
    let random = getrandom::u32().unwrap_or(0);
    Duration::from_millis(u64::from(random % (ceiling + 1)))
}

/// One update or delete, as asked.
struct ChangeRequest {
    id: CustomerId,
    kind: ChangeKind,
    if_match: Option<u64>,
    /// The versions `If-Match` listed, when several: what the digest names instead of the one
    /// they resolved to.
    listed: Vec<u64>,
    audit: AuditTrail,
}

impl ChangeRequest {
    /// A digest of what the request asks (customer, kind, condition and the fields it names, in
    /// order): two requests with the same digest are the same request.
    fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.id.as_bytes());
        match (&self.if_match, self.listed.as_slice()) {
            (_, [first, rest @ ..]) => {
                let listed = rest.iter().fold(first.to_string(), |text, version| {
                    format!("{text},{version}")
                });
                hasher.update(format!("if-match-any:{listed};"));
            }
            (Some(version), []) => hasher.update(format!("if-match:{version};")),
            (None, []) => hasher.update("unconditional;"),
        }
        match &self.kind {
            ChangeKind::Delete => hasher.update("delete;"),
            ChangeKind::Update(patch) => {
                hasher.update("update;");
                for change in patch.fields() {
                    let value = serde_json::to_string(&change.value).expect("text serialises");
                    hasher.update(format!("{}={value};", change.field.name()));
                }
            }
        }
        crate::hex::encode(&hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CustomerPatch, FieldValue};

    fn customer_id() -> CustomerId {
        "019abb9c-4f2e-7a10-8c55-2f0d6e9b1c43".parse().unwrap()
    }

    fn update(fields: &[(&str, Option<&str>)]) -> ChangeKind {
        let fields = fields.iter().map(|(name, value)| {
            let value = value.map_or(FieldValue::Null, |text| FieldValue::Text(text.to_owned()));
            ((*name).to_owned(), value)
        });
        ChangeKind::Update(CustomerPatch::parse(fields).unwrap())
    }

    fn request(kind: ChangeKind, if_match: Option<u64>, listed: &[u64]) -> ChangeRequest {
        ChangeRequest {
            id: customer_id(),
            kind,
            if_match,
            listed: listed.to_vec(),
            audit: AuditTrail::default(),
        }
    }

    #[test]
    fn the_same_request_has_the_same_digest_whichever_request_id_carries_it() {
        let first = request(update(&[("lastName", Some("Ng"))]), Some(2), &[]);
        let mut retry = request(update(&[("lastName", Some("Ng"))]), Some(2), &[]);
        retry.audit.request_id = Some("a-retry".to_owned());
        assert_eq!(first.digest(), retry.digest());
    }

    #[test]
    fn another_value_field_condition_or_kind_is_another_request() {
        let digest = |kind, if_match| request(kind, if_match, &[]).digest();
        let first = digest(update(&[("lastName", Some("Ng"))]), Some(2));
        let others = [
            digest(update(&[("lastName", Some("Ngo"))]), Some(2)),
            digest(update(&[("lastName", None)]), Some(2)),
            digest(update(&[("firstName", Some("Ng"))]), Some(2)),
            digest(update(&[("lastName", Some("Ng"))]), Some(3)),
            digest(update(&[("lastName", Some("Ng"))]), None),
            digest(ChangeKind::Delete, Some(2)),
        ];
        for other in others {
            assert_ne!(first, other);
        }
        let mut elsewhere = request(update(&[("lastName", Some("Ng"))]), Some(2), &[]);
        elsewhere.id = CustomerId::new_v7();
        assert_ne!(first, elsewhere.digest(), "another customer");
    }

    #[test]
    fn an_if_match_list_is_one_request_whatever_version_it_resolved_to() {
        let listed = |version| request(ChangeKind::Delete, Some(version), &[2, 3]).digest();
        assert_eq!(listed(2), listed(3));
        let single = request(ChangeKind::Delete, Some(2), &[]).digest();
        assert_ne!(listed(2), single);
    }

    #[test]
    fn a_lost_race_pauses_at_random_up_to_5_ms_more_each_try_and_at_most_40() {
        for (attempt, ceiling_ms) in [(0, 5), (1, 10), (3, 20), (7, 40), (MAX_ATTEMPTS, 40)] {
            for _ in 0..50 {
                assert!(backoff(attempt) <= Duration::from_millis(ceiling_ms));
            }
        }
    }
}
