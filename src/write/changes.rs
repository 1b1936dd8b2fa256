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

use super::registrar::Registrar;
use crate::domain::{
    now_millis, AuditTrail, Customer, CustomerDeleted, CustomerId, CustomerPatch, CustomerUpdated,
    RegistryEvent,
};
use crate::log::{EventLogError, LogPosition};
use crate::read_model::ReadModelError;
use std::time::Duration;
use uuid::Uuid;

/// The longest a change may take, Kafka outages and retries included.
const CHANGE_DEADLINE: Duration = Duration::from_secs(25);

/// How many times an unconditional change is tried against a customer others keep changing.
pub const MAX_ATTEMPTS: u32 = 8;

/// What a change request asks.
#[derive(Debug, Clone)]
pub enum ChangeKind {
    /// Change these fields.
    Update(CustomerPatch),
    /// Delete the customer.
    Delete,
}

/// A change as this replica applied it.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The customer as the change left it (for a delete, as it was deleted).
    pub customer: Customer,
    /// The log position the answer reflects (it includes the change's event, when one was
    /// written).
    pub position: LogPosition,
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

impl Registrar {
    /// Applies `kind` to customer `id`: when `if_match` is given, only if the customer is at that
    /// version. Appends the event, waits (bounded) until this replica has projected it, and
    /// answers from its fate. An update that changes nothing appends nothing.
    ///
    /// # Errors
    /// [`ChangeError`]: not found, a version mismatch, a lost race after every attempt, Kafka or
    /// the read model failing, or the outcome not known within the wait.
    pub async fn change(
        &self,
        id: CustomerId,
        kind: ChangeKind,
        if_match: Option<u64>,
        audit: AuditTrail,
    ) -> Result<Changed, ChangeError> {
        tokio::time::timeout(
            CHANGE_DEADLINE,
            self.change_unbounded(id, kind, if_match, audit),
        )
        .await
        .map_err(|_| ChangeError::EventLog(EventLogError::TimedOut(CHANGE_DEADLINE)))?
    }

    async fn change_unbounded(
        &self,
        id: CustomerId,
        kind: ChangeKind,
        if_match: Option<u64>,
        audit: AuditTrail,
    ) -> Result<Changed, ChangeError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.current(id, if_match).await?;
            let version = current.version + 1;
            let event_id = Uuid::now_v7();
            let (event, after) = match &kind {
                ChangeKind::Update(patch) => {
                    let changes = patch.changes_to(&current.details);
                    if changes.is_empty() {
                        let position = self.position_including(id)?;
                        return Ok(Changed {
                            customer: current,
                            position,
                        });
                    }
                    let updated = CustomerUpdated {
                        event_id,
                        occurred_at: now_millis().max(current.updated_at),
                        audit: audit.clone(),
                        customer_id: id,
                        account_id: current.details.account_id,
                        version,
                        changes,
                    };
                    let after = updated.applied_to(&current);
                    (RegistryEvent::CustomerUpdated(updated), after)
                }
                ChangeKind::Delete => {
                    let deleted = CustomerDeleted {
                        event_id,
                        occurred_at: now_millis().max(current.updated_at),
                        audit: audit.clone(),
                        customer_id: id,
                        account_id: current.details.account_id,
                        version,
                    };
                    let mut after = current.clone();
                    after.version = version;
                    after.updated_at = deleted.occurred_at;
                    (RegistryEvent::CustomerDeleted(deleted), after)
                }
            };
            let record = self.event_log.append(&event).await?;
            let wanted = LogPosition::default().including(record);
            let position = self.progress.position().including(record);
            if !self
                .progress
                .wait_until_reached(&wanted, self.projection_wait)
                .await
            {
                return Err(ChangeError::Pending { position });
            }
            let position = self.progress.position().including(record);
            let held = self
                .read_model
                .record(id)?
                .ok_or(ChangeError::NotFound(id))?;
            if held.has_event(event_id) {
                return Ok(Changed {
                    customer: after,
                    position,
                });
            }
            // The projector skipped the event: the customer went away, or another change took
            // the version first.
            if held.deleted {
                return Err(ChangeError::NotFound(id));
            }
            if let Some(expected) = if_match {
                return Err(ChangeError::VersionMismatch {
                    id,
                    expected,
                    current: held.customer.version,
                });
            }
        }
        Err(ChangeError::Contended {
            id,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The customer as this replica holds it, at the version `if_match` names when given. A
    /// replica that holds an older version than named waits (bounded) for the log to bring it.
    async fn current(
        &self,
        id: CustomerId,
        if_match: Option<u64>,
    ) -> Result<Customer, ChangeError> {
        let deadline = tokio::time::Instant::now() + self.projection_wait;
        loop {
            let current = self.read_model.get(id)?.ok_or(ChangeError::NotFound(id))?;
            match if_match {
                Some(expected) if current.version < expected => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ChangeError::VersionMismatch {
                            id,
                            expected,
                            current: current.version,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Some(expected) if current.version > expected => {
                    return Err(ChangeError::VersionMismatch {
                        id,
                        expected,
                        current: current.version,
                    })
                }
                _ => return Ok(current),
            }
        }
    }

    /// This replica's position, including every record of customer `id` it applied.
    fn position_including(&self, id: CustomerId) -> Result<LogPosition, ChangeError> {
        Ok(self.read_model.history_of(id)?.into_iter().fold(
            self.progress.position(),
            |position, (partition, offset)| {
                position.including(crate::log::RecordPosition { partition, offset })
            },
        ))
    }
}
