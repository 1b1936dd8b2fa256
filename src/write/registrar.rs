//! The create command: from validated details to a durable `CustomerCreated` that this replica
//! has projected, idempotently when the client gives a key.
//!
//! With an `Idempotency-Key` the customer id and event id are derived from account and key, so:
//! - a retry finds the customer already projected and answers it, appending nothing;
//! - concurrent retries in this process queue on a per-key lock, so only the first appends;
//! - racing retries on two replicas may both append, but both records carry the same event id,
//!   the projection applies the first and skips the second, and each replica answers the customer
//!   its projection holds; a request whose details differ from it learns the key was taken.
//!
//! A create with a `code`: the code, unique per account, decides the customer id, and the log
//! decides which create has it. The customer id is UUIDv5 of `<accountId>:<code>` (see
//! [`crate::domain::CustomerCode::customer_id`]), so every create of one code in one account
//! names one customer and lands on one partition:
//! - on this replica, creates of one code take turns, and all but the first find the customer
//!   and answer 409 `duplicate_code`;
//! - creates racing on two replicas may both append; every projection applies the first and
//!   lists the other as a conflict, and each replica answers its request by whether the
//!   customer's creating event is the one it wrote. A request only learns that once its
//!   replica has projected its event; within the projection wait it is a 409 or a 201,
//!   after it a 503 saying the outcome is pending.
//!
//! With an `Idempotency-Key` too, the event id derives from account, key and code, so a retry
//! (on any replica) that finds the customer created by its own event id answers it as the first
//! request did.
//!
//! What a create decides (its ids, the partitions it waits for, its event, the verdict on a
//! customer already held under its id) is in `decide/create.rs`, as pure functions; this file
//! does the I/O around them: the lock, the waits, the append and the read-backs. (A change's I/O
//! is in `changes.rs`.)

use super::decide::{self, CreateIds, Refusal, Verdict};
use crate::crypto::{Encryption, KeysError};
use crate::domain::{
    now_millis, AccountId, AuditTrail, Customer, CustomerCreated, CustomerDetails, CustomerId,
    IdempotencyKey, RegistryEvent,
};
use crate::log::{EventLog, EventLogError, HistoryReader, LogPosition, RecordPosition};
use crate::projection::ProjectionProgress;
use crate::read_model::{CustomerRecord, ReadModel, ReadModelError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// The longest a create may take, Kafka outages included.
pub const CREATE_DEADLINE: Duration = Duration::from_secs(25);

/// How many locks keyed requests and creates with a code are spread over; two share a lock only
/// by hash collision. A create holds its lock through Kafka's ack and the projection wait, so with
/// 64 requests in flight about 1.5 % of them wait on an unrelated one (64 stripes made it ~40 %).
const KEY_LOCK_STRIPES: usize = 4096;

/// Why a create did not go through.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Kafka did not confirm the event.
    #[error(transparent)]
    EventLog(#[from] EventLogError),
    /// The event could not be sealed: no key could be had, or the customer was erased.
    #[error(transparent)]
    Keys(KeysError),
    /// The idempotency key already created a customer with other details.
    #[error("Idempotency-Key {key:?} already created customer {customer_id} with other details")]
    KeyReused {
        /// The key.
        key: String,
        /// The customer it created.
        customer_id: String,
    },
    /// The read model could not be consulted.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// A retried key's customer changed since its create, and its first record could not be
    /// read back to answer it.
    #[error("the customer's first record could not be read back: {0}")]
    HistoryUnreadable(String),
    /// Another customer of the account has the code.
    #[error("code {code:?} is taken in account {account_id} by customer {customer_id}")]
    DuplicateCode {
        /// The code.
        code: String,
        /// The account.
        account_id: AccountId,
        /// The customer that has it.
        customer_id: CustomerId,
    },
    /// The create (with a code) is in the log, but this replica has not applied it within the
    /// wait: whether it won its code is not known here yet.
    #[error(
        "the create was written to the log (position {position}) but this replica has not \
         applied it yet, so whether it won its code is not known here; read customer \
         {customer_id} (the one the code names) with X-Min-Log-Position: {position} to learn \
         it, rather than create again"
    )]
    Pending {
        /// A position that includes the event.
        position: LogPosition,
        /// The customer the code names.
        customer_id: CustomerId,
    },
    /// A keyed or coded create is decided by what the log holds for its customer: this replica
    /// did not apply the customer's partition up to its end within the wait.
    #[error(
        "this replica has not yet applied the log up to {wanted} (it is at {reached}), which a \
         create with this key or code is decided on; retry shortly"
    )]
    Behind {
        /// The partition's end the create waited for.
        wanted: LogPosition,
        /// Where the projection got.
        reached: LogPosition,
    },
}

/// A customer registered (or, for a retried key, found registered).
#[derive(Debug, Clone)]
pub struct Registered {
    /// The customer, as the log records it.
    pub customer: Customer,
    /// The log position the answer reflects (it includes the customer's event).
    pub position: LogPosition,
    /// Whether this replica's read model held the customer before answering.
    pub projected: bool,
    /// Whether this was a retry answered from an earlier create.
    pub replayed: bool,
}

/// Handles creates, updates and deletes: the event log's only writer.
pub struct Registrar {
    pub(super) event_log: Arc<EventLog>,
    pub(super) read_model: ReadModel,
    pub(super) progress: ProjectionProgress,
    pub(super) projection_wait: Duration,
    /// Reads back the records of a customer that a change's idempotency key may have written.
    pub(super) history: Arc<HistoryReader>,
    pub(super) key_locks: Vec<Mutex<()>>,
    /// Seals events (or not) before they are appended.
    pub(super) encryption: Encryption,
    /// Customers whose erasure this replica saw complete (its keys destroyed, its record
    /// purged): the sweep for erasures cut short skips them.
    pub(super) erasures_seen_done: parking_lot::Mutex<std::collections::HashSet<CustomerId>>,
}

impl From<KeysError> for CreateError {
    fn from(error: KeysError) -> Self {
        match error {
            KeysError::Write(error) => CreateError::EventLog(error),
            other => CreateError::Keys(other),
        }
    }
}

impl Registrar {
    /// A registrar appending to `event_log` (sealing events as `encryption` says) and waiting up
    /// to `projection_wait` for its events to reach `read_model`; `history` reads records back
    /// for idempotent changes.
    pub fn new(
        event_log: Arc<EventLog>,
        read_model: ReadModel,
        progress: ProjectionProgress,
        projection_wait: Duration,
        history: Arc<HistoryReader>,
        encryption: Encryption,
    ) -> Self {
        Self {
            event_log,
            read_model,
            progress,
            projection_wait,
            history,
            key_locks: (0..KEY_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            encryption,
            erasures_seen_done: parking_lot::Mutex::default(),
        }
    }

    /// Encodes `event` (sealed when encryption is on, its customer's key made first when it has
    /// none) and appends it with `headers`.
    ///
    /// # Errors
    /// [`KeysError`] when the event cannot be sealed (a key that cannot be written is
    /// [`KeysError::Write`]), and the log's errors, as [`KeysError::Write`] too.
    pub(super) async fn append(
        &self,
        event: &RegistryEvent,
        headers: Vec<(&'static str, String)>,
    ) -> Result<RecordPosition, KeysError> {
        // A cluster that cannot take the event is told at once, before a key is minted for it;
        // a key the cluster did not confirm is told the same way when the cluster says why.
        self.event_log.writable(event.customer_id())?;
        let payload = match self.encryption.encode(event).await {
            Err(KeysError::Write(error)) => {
                self.event_log.writable(event.customer_id())?;
                return Err(KeysError::Write(error));
            }
            encoded => encoded?,
        };
        Ok(self.event_log.append(event, &payload, headers).await?)
    }

    /// Records handed to the producer and not yet confirmed by Kafka.
    pub fn producer_queue(&self) -> u64 {
        self.event_log.queued()
    }

    /// Registers a customer with `details`: appends `CustomerCreated`, keyed by the customer id,
    /// and waits (bounded) until this replica has projected it.
    ///
    /// # Errors
    /// [`CreateError::EventLog`] when Kafka did not confirm, [`CreateError::KeyReused`] when `key`
    /// created a customer with other details, [`CreateError::DuplicateCode`] when the account has
    /// a customer with the code, [`CreateError::ReadModel`] when sled fails.
    pub async fn create(
        &self,
        details: CustomerDetails,
        key: Option<&IdempotencyKey>,
        audit: AuditTrail,
    ) -> Result<Registered, CreateError> {
        // One deadline for everything a create waits on (its key's turn, Kafka, the projection),
        // so an outage answers within 30 s however many retries queue behind one key.
        tokio::time::timeout(CREATE_DEADLINE, self.create_unbounded(details, key, audit))
            .await
            .map_err(|_| CreateError::EventLog(EventLogError::TimedOut(CREATE_DEADLINE)))?
    }

    async fn create_unbounded(
        &self,
        details: CustomerDetails,
        key: Option<&IdempotencyKey>,
        audit: AuditTrail,
    ) -> Result<Registered, CreateError> {
        // Only a create with neither a key nor a code takes a fresh id (`create_ids`): it takes
        // one whose key is minted ahead, the others do not use one up.
        let fresh_id = match (&details.code, key) {
            (None, None) => self.encryption.fresh_customer_id(),
            _ => CustomerId::new_v7(),
        };
        let fresh = CreateIds {
            customer_id: fresh_id,
            event_id: Uuid::now_v7(),
        };
        let ids = decide::create_ids(&details, key, fresh);
        if details.code.is_some() {
            return self.create_with_code(details, key, ids, audit).await;
        }
        let Some(key) = key else {
            let created = decide::created_event(ids, details, now_millis(), audit);
            return self.append_and_project(created).await;
        };
        let request = CreateRequest {
            details: &details,
            key: Some(key),
            ids,
        };
        let _only_one_per_key = self.turn_to_decide(&request).await?;
        if let Some(record) = self.read_model.record(ids.customer_id)? {
            return self.answer_held(&request, &record, true).await;
        }
        let created = decide::created_event(ids, details, now_millis(), audit);
        let mut registered = self.append_and_project(created).await?;
        if registered.projected {
            // Another replica may have won the race for this key (its event has the same id:
            // this one was a duplicate), and the customer may have changed since, or been
            // deleted: answer the customer as the log's create made it.
            if let Some(record) = self.read_model.record(ids.customer_id)? {
                let request = CreateRequest {
                    details: &registered.customer.details,
                    key: Some(key),
                    ids,
                };
                registered.customer = self.judge(&request, &record).await?;
            }
        }
        Ok(registered)
    }

    /// Registers a customer whose code `details` give, under `ids` (the code's customer), with
    /// `key` when given. Decided by [`decide::verdict`] on what the read model holds under the
    /// code's customer: before the append (a retry, or a code taken), and after it once this
    /// replica has projected it (the log's first create of the code has it).
    async fn create_with_code(
        &self,
        details: CustomerDetails,
        key: Option<&IdempotencyKey>,
        ids: CreateIds,
        audit: AuditTrail,
    ) -> Result<Registered, CreateError> {
        let request = CreateRequest {
            details: &details,
            key,
            ids,
        };
        let _one_per_code = self.turn_to_decide(&request).await?;
        if let Some(record) = self.read_model.record(ids.customer_id)? {
            return self.answer_held(&request, &record, true).await;
        }
        if let Some(taken) = self.code_taken_as_an_id(&details)? {
            return Err(request.refused(taken));
        }
        let created = decide::created_event(ids, details.clone(), now_millis(), audit);
        let appended = self
            .append(&RegistryEvent::CustomerCreated(created), Vec::new())
            .await?;
        let wanted = LogPosition::default().including(appended);
        if !self
            .progress
            .wait_until_reached(&wanted, self.projection_wait)
            .await
        {
            let position = self.progress.position().including(appended);
            return Err(CreateError::Pending {
                position,
                customer_id: ids.customer_id,
            });
        }
        let held = self.read_model.record(ids.customer_id)?.ok_or_else(|| {
            CreateError::HistoryUnreadable(format!(
                "customer {} was projected but is not in the read model",
                ids.customer_id
            ))
        })?;
        self.answer_held(&request, &held, false).await
    }

    /// The refusal of a create of `details` whose code is written like a customer id, when the
    /// customer of that id has it as its code. (Checked in the read model only: see the README.)
    fn code_taken_as_an_id(
        &self,
        details: &CustomerDetails,
    ) -> Result<Option<Refusal>, CreateError> {
        let Some(id) = details.code.as_ref().and_then(decide::code_as_customer_id) else {
            return Ok(None);
        };
        let held = self.read_model.record(id)?;
        Ok(held.and_then(|held| decide::code_taken_as_an_id(&held, details)))
    }

    /// Takes the turn of the creates that name `request`'s customer (by key or code: on this
    /// replica they go one at a time, so each finds the customer of the one before it), then
    /// applies the partitions the create is decided on ([`decide::settle_first`]) up to their end.
    ///
    /// # Errors
    /// [`CreateError::Behind`] when the projection does not get to an end within the wait.
    async fn turn_to_decide(
        &self,
        request: &CreateRequest<'_>,
    ) -> Result<MutexGuard<'_, ()>, CreateError> {
        let turn = self
            .key_lock(request.ids.customer_id.as_bytes())
            .lock()
            .await;
        for id in decide::settle_first(request.details, request.key, request.ids) {
            self.settle(id).await?;
        }
        Ok(turn)
    }

    /// Brings this replica up to the end, as it is now, of the partition customer `id`'s
    /// events go to: a create decided by what the log holds for `id` (a key's or a code's
    /// customer) then sees every event acknowledged for it so far, whichever replica wrote it.
    /// When the end cannot be read now, the create goes on with what this replica holds.
    ///
    /// # Errors
    /// [`CreateError::Behind`] when the projection does not get there within the wait.
    async fn settle(&self, id: CustomerId) -> Result<(), CreateError> {
        match decide::behind(self.reach_partition_end(id).await) {
            Some(wanted) => Err(CreateError::Behind {
                wanted,
                reached: self.progress.position(),
            }),
            None => Ok(()),
        }
    }

    /// Waits (up to the projection wait) until this replica has applied the partition customer
    /// `id`'s events go to up to its end as Kafka reports it now: every event acknowledged for
    /// the customer so far, whichever replica wrote it. Answers that end and whether it was
    /// reached; `None` when the end cannot be read now.
    pub(super) async fn reach_partition_end(&self, id: CustomerId) -> Option<(LogPosition, bool)> {
        let partition = self.event_log.partition_of(id);
        let end = self.event_log.end_of(partition).await?;
        let wanted = LogPosition::from_next_offsets([(partition, end)].into());
        let reached = self
            .progress
            .wait_until_reached(&wanted, self.projection_wait)
            .await;
        Some((wanted, reached))
    }

    /// The answer to `request`, given `held`, the record the read model holds under the customer
    /// id it names: the customer its verdict answers (`replayed` when an earlier try created
    /// it), at a position that includes the customer's own records, so a read elsewhere with it
    /// sees the customer; or its refusal.
    async fn answer_held(
        &self,
        request: &CreateRequest<'_>,
        held: &CustomerRecord,
        replayed: bool,
    ) -> Result<Registered, CreateError> {
        let customer = self.judge(request, held).await?;
        let position = self
            .position_including(request.ids.customer_id)
            .map_err(|error| CreateError::HistoryUnreadable(error.to_string()))?;
        Ok(Registered {
            customer,
            position,
            projected: true,
            replayed,
        })
    }

    /// The customer [`decide::verdict`] answers `request` with, given `held`, or its refusal;
    /// reads the customer's first record back when the verdict asks for it (it asks once: given
    /// that record's customer, it answers or refuses).
    async fn judge(
        &self,
        request: &CreateRequest<'_>,
        held: &CustomerRecord,
    ) -> Result<Customer, CreateError> {
        let mut read_back = None;
        loop {
            match decide::verdict(
                held,
                read_back.take(),
                request.details,
                request.ids.event_id,
            ) {
                Verdict::Answer(customer) => return Ok(*customer),
                Verdict::Refuse(refusal) => return Err(request.refused(refusal)),
                Verdict::ReadBack => {
                    let created = self
                        .created_customer(held.customer.id)
                        .await
                        .map_err(|error| CreateError::HistoryUnreadable(error.to_string()))?;
                    read_back = Some(created);
                }
            }
        }
    }

    /// The lock that requests with the key (or code) that derives `derived` (a hash or a UUID
    /// derived from one) take turns on: the stripe its last two bytes name.
    pub(super) fn key_lock(&self, derived: impl AsRef<[u8]>) -> &Mutex<()> {
        let bytes = derived.as_ref();
        let last_two = match bytes {
            [.., before, last] => u16::from_le_bytes([*last, *before]),
            [last] => u16::from(*last),
            [] => 0,
        };
        &self.key_locks[usize::from(last_two) % KEY_LOCK_STRIPES]
    }

    /// Appends `created` and waits (up to the projection wait) until this replica has projected
    /// it: the customer it registers, at a position that includes it, `projected` false when the
    /// wait ran out (the event is durable all the same: 201 with `X-Projection-Pending`).
    async fn append_and_project(
        &self,
        created: CustomerCreated,
    ) -> Result<Registered, CreateError> {
        let customer = created.customer.clone();
        let record = self
            .append(&RegistryEvent::CustomerCreated(created), Vec::new())
            .await?;
        let wanted = LogPosition::default().including(record);
        let projected = self
            .progress
            .wait_until_reached(&wanted, self.projection_wait)
            .await;
        Ok(Registered {
            customer,
            position: self.progress.position().including(record),
            projected,
            replayed: false,
        })
    }
}

/// A create with a key or a code, as the registrar decides it: what it asks, and the ids it
/// names.
struct CreateRequest<'a> {
    /// The customer's details, as asked.
    details: &'a CustomerDetails,
    /// The request's `Idempotency-Key`, if any.
    key: Option<&'a IdempotencyKey>,
    /// The ids of its customer and its event.
    ids: CreateIds,
}

impl CreateRequest<'_> {
    /// The error that answers this request's `refusal`.
    fn refused(&self, refusal: Refusal) -> CreateError {
        match refusal {
            Refusal::CodeTaken {
                code,
                account_id,
                holder,
            } => CreateError::DuplicateCode {
                code: code.to_string(),
                account_id,
                customer_id: holder,
            },
            Refusal::KeyReused => CreateError::KeyReused {
                key: self.key.map_or("", IdempotencyKey::as_str).to_owned(),
                customer_id: self.ids.customer_id.to_string(),
            },
            Refusal::Erased(_) => CreateError::Keys(KeysError::Erased),
        }
    }
}
