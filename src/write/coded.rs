//! Creates with a `code`: the code, unique per account, decides the customer id, and the log
//! decides which create has it.
//!
//! The customer id is UUIDv5 of `<accountId>:<code>` (see [`CustomerCode::customer_id`]), so
//! every create of one code in one account names one customer and lands on one partition:
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

use super::decide::{self, CreateIds, Refusal};
use super::registrar::{CreateError, CreateRequest, Registered, Registrar};
use crate::domain::{now_millis, AuditTrail, CustomerDetails, IdempotencyKey, RegistryEvent};
use crate::log::LogPosition;

impl Registrar {
    /// Registers a customer whose code `details` give, under `ids` (the code's customer), with
    /// `key` when given. Decided by [`decide::verdict`] on what the read model holds under the
    /// code's customer: before the append (a retry, or a code taken), and after it once this
    /// replica has projected it (the log's first create of the code has it).
    pub(super) async fn create_with_code(
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
            .event_log
            .append(&RegistryEvent::CustomerCreated(created))
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
}
