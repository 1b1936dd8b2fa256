//! What `audit` proves of each erasure, without revealing anything: the customer's keys are
//! destroyed (its marker read, every key record tombstoned), its sealed events no longer open
//! (counted while the log is replayed), and neither the replayed read model nor the live one
//! holds a personal field of it or lists it in an answer.

use crate::crypto::Encryption;
use crate::domain::{CustomerId, OpenError, Opener, SealedPersonal};
use crate::read_model::ReadModel;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// An opener that counts, per customer, the sealed events that did not open because the
/// customer's keys were erased.
pub(super) struct CountingErased {
    inner: Arc<dyn Opener + Send + Sync>,
    shut: Mutex<HashMap<CustomerId, u64>>,
}

impl CountingErased {
    /// Counts around `inner`.
    pub(super) fn around(inner: Arc<dyn Opener + Send + Sync>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            shut: Mutex::new(HashMap::new()),
        })
    }

    /// How many of `customer`'s sealed events did not open because it was erased.
    fn shut(&self, customer: CustomerId) -> u64 {
        self.shut.lock().get(&customer).copied().unwrap_or(0)
    }
}

impl Opener for CountingErased {
    fn open(
        &self,
        customer: CustomerId,
        personal: &SealedPersonal,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let opened = self.inner.open(customer, personal, context);
        if opened == Err(OpenError::Erased) {
            *self.shut.lock().entry(customer).or_default() += 1;
        }
        opened
    }
}

/// The proof of one erasure.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErasureProof {
    customer_id: String,
    request_id: String,
    /// The marker is read and every key record of the customer's has a tombstone.
    keys_destroyed: bool,
    /// Sealed events of the customer's that did not open in the replay (erased).
    events_unopened: u64,
    /// The replayed read model holds the customer erased, no personal field, in no answer.
    replay_purged: bool,
    /// The live read model holds it so too (`false` also while it has not applied the
    /// erasure's event).
    live_purged: bool,
}

impl ErasureProof {
    /// One line for people: the customer, the request and each place.
    pub(super) fn line(&self) -> String {
        let yes = |proven: bool| if proven { "yes" } else { "NO" };
        format!(
            "erasure {} of customer {}: keys destroyed {}, {} sealed events unopened, replay \
             purged {}, read model purged {}",
            self.request_id,
            self.customer_id,
            yes(self.keys_destroyed),
            self.events_unopened,
            yes(self.replay_purged),
            yes(self.live_purged)
        )
    }

    /// Whether every place is proven.
    pub(super) fn proven(&self) -> bool {
        self.keys_destroyed && self.replay_purged && self.live_purged
    }
}

/// The proof of every erasure `keys` knows of, from the replay's `counted` opener and read
/// model `replayed`, and the `live` one.
///
/// # Errors
/// A read model that cannot be read.
pub(super) fn prove(
    keys: &Encryption,
    counted: &CountingErased,
    replayed: &ReadModel,
    live: &ReadModel,
) -> Result<Vec<ErasureProof>, crate::read_model::ReadModelError> {
    let Encryption::On(keys) = keys else {
        return Ok(Vec::new());
    };
    keys.erasures()
        .into_iter()
        .map(|(customer, erased)| {
            Ok(ErasureProof {
                customer_id: customer.to_string(),
                keys_destroyed: erased.undestroyed.is_empty(),
                request_id: erased.request_id,
                events_unopened: counted.shut(customer),
                replay_purged: purged(replayed, customer)?,
                live_purged: purged(live, customer)?,
            })
        })
        .collect()
}

/// Whether `model` holds `customer` erased: no personal field, out of every answer.
fn purged(
    model: &ReadModel,
    customer: CustomerId,
) -> Result<bool, crate::read_model::ReadModelError> {
    Ok(match model.record(customer)? {
        None => true,
        Some(record) => {
            let details = &record.customer.details;
            let personal = crate::domain::TextField::ALL
                .iter()
                .any(|field| details.text(*field).is_some());
            record.erased && record.deleted && !personal && model.get(customer)?.is_none()
        }
    })
}
