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

use super::registrar::{CreateError, Registered, Registrar};
use crate::domain::{
    AccountId, AuditTrail, Customer, CustomerCode, CustomerCreated, CustomerDetails, CustomerId,
    IdempotencyKey, RegistryEvent,
};
use crate::log::LogPosition;
use crate::read_model::CustomerRecord;
use uuid::Uuid;

impl Registrar {
    /// Registers a customer whose code is `code` (taken from `details`).
    pub(super) async fn create_with_code(
        &self,
        details: CustomerDetails,
        code: CustomerCode,
        key: Option<&IdempotencyKey>,
        audit: AuditTrail,
    ) -> Result<Registered, CreateError> {
        let account_id = details.account_id;
        let customer_id = code.customer_id(account_id);
        let event_id = key.map_or_else(Uuid::now_v7, |key| {
            key.event_id_with_code(account_id, &code)
        });
        let request = CodedCreate {
            code: &code,
            account_id,
            customer_id,
            event_id,
            key,
        };
        let _one_per_code = self.key_lock(customer_id.as_bytes()).lock().await;
        // A create with a key is a retry, perhaps, of one whose customer lies in the part of the
        // log this replica has not applied yet: the replica applies the customer's partition up
        // to its end first, so it answers the first create (replayed) and never writes the key's
        // event id again. Without a key, the log decides, as it does any race for a code: a
        // customer not held here yet makes this create a conflict there, answered 409. (Settling
        // every create with a code cost a round trip to Kafka and a wait for other writers'
        // records: creates fell from ~9,200/s to ~5,300/s under 64 writers, half coded.)
        if key.is_some() {
            self.settle(customer_id).await?;
        }
        // A code that reads as a UUID may be a customer's own id (its code when it has none),
        // which only the projection knows: this replica applies that customer's partition first.
        if let Ok(id) = code.as_str().parse::<CustomerId>() {
            self.settle(id).await?;
        }
        if let Some(record) = self.read_model.record(customer_id)? {
            return self.answer_held(&request, &record, &details, true).await;
        }
        if let Some(holder) = self.customer_coded_by_its_id(&code, account_id)? {
            return Err(request.taken_by(holder));
        }
        let customer = Customer::register_as(customer_id, details.clone());
        let created = CustomerCreated::with_event_id(event_id, customer).caused_by(audit);
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
                customer_id,
            });
        }
        let held = self.read_model.record(customer_id)?.ok_or_else(|| {
            CreateError::HistoryUnreadable(format!(
                "customer {customer_id} was projected but is not in the read model"
            ))
        })?;
        self.answer_held(&request, &held, &details, false).await
    }

    /// The answer to a create of `request`'s code, given the customer the read model holds
    /// under the code's id: the customer, when `request`'s event created it (a `retry` is
    /// answered as replayed), else 409.
    async fn answer_held(
        &self,
        request: &CodedCreate<'_>,
        held: &CustomerRecord,
        details: &CustomerDetails,
        retry: bool,
    ) -> Result<Registered, CreateError> {
        let customer_id = request.customer_id;
        if held.created_by() != Some(request.event_id) {
            return Err(request.taken_by(customer_id));
        }
        let created = self.as_created(held).await?;
        if &created.details != details {
            let key = request.key.map_or("", IdempotencyKey::as_str);
            return Err(CreateError::KeyReused {
                key: key.to_owned(),
                customer_id: customer_id.to_string(),
            });
        }
        let position = self
            .position_including(customer_id)
            .map_err(|error| CreateError::HistoryUnreadable(error.to_string()))?;
        Ok(Registered {
            customer: created,
            position,
            projected: true,
            replayed: retry,
        })
    }

    /// The customer of `account_id` whose id is `code` and whose code is therefore its id, when
    /// `code` is written like a customer id. (Checked in the read model only: see the README.)
    fn customer_coded_by_its_id(
        &self,
        code: &CustomerCode,
        account_id: AccountId,
    ) -> Result<Option<CustomerId>, CreateError> {
        let Ok(id) = code.as_str().parse::<CustomerId>() else {
            return Ok(None);
        };
        let holder = self.read_model.record(id)?.filter(|record| {
            record.customer.details.account_id == account_id && record.customer.has_code(code)
        });
        Ok(holder.map(|record| record.customer.id))
    }
}

/// A create with a code, as the registrar decides it.
struct CodedCreate<'a> {
    code: &'a CustomerCode,
    account_id: AccountId,
    customer_id: CustomerId,
    event_id: Uuid,
    key: Option<&'a IdempotencyKey>,
}

impl CodedCreate<'_> {
    /// The 409 naming `holder`, the customer that has the code.
    fn taken_by(&self, holder: CustomerId) -> CreateError {
        CreateError::DuplicateCode {
            code: self.code.to_string(),
            account_id: self.account_id,
            customer_id: holder,
        }
    }
}
