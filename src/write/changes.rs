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

use super::decide::{self, ChangeKind, Fate};
use super::registrar::Registrar;
use crate::domain::{
    now_millis, AuditTrail, Customer, CustomerId, IdempotencyKey, RegistryEvent, EVENT_ID_NAMESPACE,
};
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

/// Kafka header naming the `Idempotency-Key` a change was made with.
const KEY_HEADER: &str = "idempotency-key";
/// Kafka header holding the digest of the request a keyed change was made by.
const DIGEST_HEADER: &str = "request-digest";

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
        let Some(first_use) = keyed.first_use(&held) else {
            return self.change_unbounded(&request, Some(keyed)).await;
        };
        // The key's first event is this request's, and made the version the customer is at.
        if first_use == keyed.event_id(&held.customer, held.customer.version) {
            return Ok(Changed {
                customer: held.customer.clone(),
                position: self.position_including(request.id)?,
                replayed: true,
            });
        }
        match self.first_answer(&request, &keyed, &held).await? {
            Some(answer) => Ok(answer),
            None => self.change_unbounded(&request, Some(keyed)).await,
        }
    }

    /// The answer to a keyed change whose key marks some of the customer's events, from its
    /// records read back from the log: the same key and digest → the first answer (the customer
    /// as that event left it); the same key with another digest → [`ChangeError::KeyReused`];
    /// no record with the key (another key's event id shares the prefix, a 1 in 2^60 chance) →
    /// `None`, the key is unused. Reads the records up to the last one `held` lists with the
    /// key's prefix, not the customer's whole history.
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
        let mut folded: Option<Customer> = None;
        for record in &records {
            folded = fold(folded, record);
            if record.headers.get(KEY_HEADER).map(String::as_str) != Some(keyed.key.as_str()) {
                continue;
            }
            if record.headers.get(DIGEST_HEADER).map(String::as_str) != Some(keyed.digest) {
                return Err(ChangeError::KeyReused {
                    key: keyed.key.as_str().to_owned(),
                    id: request.id,
                });
            }
            let customer = folded.ok_or(ChangeError::NotFound(request.id))?;
            return Ok(Some(Changed {
                customer,
                position: self.position_including(request.id)?,
                replayed: true,
            }));
        }
        Ok(None)
    }

    /// Customer `id` as its create made it, read back from its first record (the only one
    /// read, however long its history).
    pub(super) async fn created_customer(&self, id: CustomerId) -> Result<Customer, ChangeError> {
        let records = self.records_of(id, 1).await?;
        records
            .first()
            .and_then(|first| fold(None, first))
            .ok_or(ChangeError::NotFound(id))
    }

    /// The first `at_most` records of customer `id`'s history, read back from the log.
    async fn records_of(
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
            let record = self.event_log.append_with(&event, headers).await?;
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
        if current.version > expected {
            return Err(ChangeError::VersionMismatch {
                id,
                expected,
                current: current.version,
            });
        }
        if current.version == expected {
            return Ok(current);
        }
        if self.reach_partition_end(id).await.is_none() {
            // The end is not known now: wait for the version itself, bounded.
            let deadline = tokio::time::Instant::now() + self.projection_wait;
            while tokio::time::Instant::now() < deadline {
                let held = self.read_model.get(id)?.ok_or(ChangeError::NotFound(id))?;
                if held.version >= expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let current = self.read_model.get(id)?.ok_or(ChangeError::NotFound(id))?;
        if current.version == expected {
            return Ok(current);
        }
        Err(ChangeError::VersionMismatch {
            id,
            expected,
            current: current.version,
        })
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
        match self.reach_partition_end(id).await {
            Some((wanted, false)) => Err(ChangeError::Behind {
                wanted,
                reached: self.progress.position(),
            }),
            _ => Ok(()),
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
        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// What marks a keyed change's records.
struct Keyed<'a> {
    key: &'a IdempotencyKey,
    digest: &'a str,
}

impl Keyed<'_> {
    /// `<accountId>:<key>:<customerId>`: what the key's events for `customer` derive from.
    fn scope(&self, customer: &Customer) -> String {
        format!(
            "{}:{}:{}",
            customer.details.account_id,
            self.key.as_str(),
            customer.id
        )
    }

    /// The first 8 bytes of every event id this key writes for `customer`, whatever the request:
    /// those of UUIDv5(`<accountId>:<key>:<customerId>`), with UUIDv8's version bits.
    fn prefix(&self, customer: &Customer) -> [u8; 8] {
        let scope = Uuid::new_v5(&EVENT_ID_NAMESPACE, self.scope(customer).as_bytes());
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&scope.as_bytes()[..8]);
        let mut prefix = [0; 8];
        prefix.copy_from_slice(&Uuid::new_v8(bytes).as_bytes()[..8]);
        prefix
    }

    /// The first event in `held`'s history written with this key (any request), if any.
    fn first_use(&self, held: &CustomerRecord) -> Option<Uuid> {
        let prefix = self.prefix(&held.customer);
        held.history
            .iter()
            .map(|entry| entry.event_id)
            .find(|event_id| event_id.as_bytes()[..8] == prefix)
    }

    /// Where in `held`'s history the last event with this key's prefix is, if any.
    fn last_use_at(&self, held: &CustomerRecord) -> Option<usize> {
        let prefix = self.prefix(&held.customer);
        let from_the_end = held
            .history
            .iter()
            .rev()
            .position(|entry| entry.event_id.as_bytes()[..8] == prefix)?;
        Some(held.history.len() - 1 - from_the_end)
    }

    /// The id of the request's event that makes `customer` version `version`: a UUIDv8 of
    /// [`Keyed::prefix`] and the last 8 bytes of
    /// UUIDv5(`<accountId>:<key>:<customerId>:<digest>:<version>`). The same on every replica and
    /// every retry of the same request aiming at the same version, and different for each
    /// version, so an id is never written again with other content.
    fn event_id(&self, customer: &Customer, version: u64) -> Uuid {
        let name = format!("{}:{}:{version}", self.scope(customer), self.digest);
        let request = Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes());
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.prefix(customer));
        bytes[8..].copy_from_slice(&request.as_bytes()[8..]);
        Uuid::new_v8(bytes)
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (KEY_HEADER, self.key.as_str().to_owned()),
            (DIGEST_HEADER, self.digest.to_owned()),
        ]
    }
}

/// The customer as `record` leaves `customer` (a record of its history, read back: applied, or a
/// duplicate of one applied).
fn fold(customer: Option<Customer>, record: &PublishedRecord) -> Option<Customer> {
    let Ok(bytes) = serde_json::to_vec(&record.event) else {
        return customer;
    };
    let Ok(event) = RegistryEvent::decode(&bytes) else {
        return customer;
    };
    match (customer, event) {
        (None, RegistryEvent::CustomerCreated(created)) => Some(created.customer),
        (Some(current), RegistryEvent::CustomerUpdated(updated))
            if updated.version == current.version + 1 =>
        {
            Some(updated.applied_to(&current))
        }
        (Some(current), RegistryEvent::CustomerDeleted(deleted))
            if deleted.version == current.version + 1 =>
        {
            Some(deleted.applied_to(&current))
        }
        (customer, _) => customer,
    }
}
