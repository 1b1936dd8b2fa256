//! The keys of a running registry or tool: its [`KeyStore`] fed from the keys topic (read to
//! its end before anything is projected, then followed on a thread of its own), new keys minted
//! and acknowledged on the topic before they seal anything, and sealed events opened, catching
//! up with the topic first when a key is not known yet.

use super::data_key::{DataKey, Keyring};
use super::key_record::{KeyId, KeyRecord, KeyRecordError};
use super::key_store::{ErasedKeys, KeyPlace, KeyStore};
use crate::domain::{CustomerId, OpenError, Opener, SealedPersonal};
use crate::log::{
    EventLogError, EventLogSettings, KeyLog, KeyTail, KeyTopicRecord, OutageLog, Partitioning,
};
use parking_lot::{Condvar, Mutex};
use rdkafka::error::KafkaError;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long one catch-up with the keys topic may take.
const CATCH_UP: Duration = Duration::from_secs(10);
/// How long start-up may take to read the keys topic to its end.
const LOAD_PATIENCE: Duration = Duration::from_secs(60);
/// Records of the keys topic decoded and applied together at start.
const LOAD_BATCH: usize = 4_096;
/// Batches read at start and waiting to be applied.
const LOADED_AHEAD: usize = 2;

/// Records of the keys topic as read, and what each decoded to.
type DecodedBatch = (Vec<KeyTopicRecord>, Vec<Result<KeyRecord, KeyRecordError>>);

/// Fresh customer ids a replica holds with their keys minted and acknowledged ahead, so that a
/// create without a key or a code waits for one acknowledgement (its event's), not two. Minted
/// in batches, which the producer sends together; a replica that stops leaves at most this many
/// keys of customers never created on the keys topic (about 200 bytes each, harmless).
const MINTED_AHEAD: usize = 256;

/// Why the keys could not be loaded, or a key made.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The keys topic could not be read.
    #[error("reading the keys topic failed: {0}")]
    Read(#[from] KafkaError),
    /// The keys topic was not read to its end in time.
    #[error("the keys topic was not read to its end within {0:?}: its brokers did not deliver")]
    Stalled(Duration),
    /// A key could not be written to the keys topic.
    #[error("the keys topic did not confirm a new data key: {0}")]
    Write(#[from] EventLogError),
    /// The customer's keys were erased: nothing personal may be written about it again.
    #[error("the customer's personal data was erased")]
    Erased,
    /// A key could not be made or used.
    #[error("{0}")]
    Crypto(String),
}

/// The keys, as this process knows them.
pub struct Keys {
    store: KeyStore,
    /// Where the keys topic is, for probes of its storage.
    settings: EventLogSettings,
    log: KeyLog,
    /// How far the follower has read each partition of the keys topic.
    next_offsets: Mutex<BTreeMap<i32, i64>>,
    advanced: Condvar,
    stopped: AtomicBool,
    /// Fresh customer ids whose keys are minted, oldest first.
    ahead: Mutex<VecDeque<CustomerId>>,
    /// Whether a batch is being minted ahead.
    minting: AtomicBool,
}

impl Keys {
    /// Reads the keys topic of `settings.topic` to its end, then follows it on a thread of its
    /// own until [`Keys::stop`]. `partitioning` is the event topic's.
    ///
    /// # Errors
    /// [`KeysError::Read`] or [`KeysError::Stalled`] when the topic cannot be read to its end,
    /// [`KeysError::Write`] when its producer cannot be set up.
    pub fn start(
        settings: &EventLogSettings,
        partitioning: Partitioning,
        keyring: Keyring,
    ) -> Result<Arc<Self>, KeysError> {
        let tail = KeyTail::open(settings)?;
        let ends = tail.ends()?;
        let keys = Arc::new(Self {
            store: KeyStore::new(keyring),
            settings: settings.clone(),
            log: KeyLog::connect(settings, partitioning)?,
            next_offsets: Mutex::new(BTreeMap::new()),
            advanced: Condvar::new(),
            stopped: AtomicBool::new(false),
            ahead: Mutex::new(VecDeque::with_capacity(MINTED_AHEAD)),
            minting: AtomicBool::new(false),
        });
        let started = Instant::now();
        // Reading and applying overlap: this thread polls and decodes the next batch while
        // another applies the one before it (nothing else runs until the read ends).
        std::thread::scope(|scope| {
            let (to_apply, loaded) = std::sync::mpsc::sync_channel(LOADED_AHEAD);
            let applier =
                scope.spawn(|| loaded.into_iter().for_each(|batch| keys.apply_batch(batch)));
            let read = read_to_end(&tail, &ends, started, &to_apply);
            drop(to_apply);
            applier
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            read
        })?;
        tracing::info!(
            customers = keys.store.customers(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "keys topic read"
        );
        let following = Arc::clone(&keys);
        std::thread::Builder::new()
            .name("keys-follower".into())
            .spawn(move || following.follow(&tail))
            .expect("the keys follower starts");
        Ok(keys)
    }

    /// Stops following the keys topic; opens waiting on it give up.
    pub fn stop(&self) {
        // Under the lock, so that a catch-up between its check and its wait cannot miss it.
        let _read = self.next_offsets.lock();
        self.stopped.store(true, Ordering::Relaxed);
        self.advanced.notify_all();
    }

    /// `customer`'s newest data key, or a new one, written to the keys topic and acknowledged
    /// before it is returned (so no acknowledged event is sealed under a key that could be lost).
    ///
    /// # Errors
    /// [`KeysError::Erased`] for an erased customer, [`KeysError::Write`] when the keys topic
    /// does not confirm the new key, [`KeysError::Crypto`] when no key can be made.
    pub async fn key_for(&self, customer: CustomerId) -> Result<(KeyId, DataKey), KeysError> {
        match self.store.newest(customer) {
            Ok(Some(held)) => return Ok(held),
            Ok(None) => {}
            Err(OpenError::Erased) => return Err(KeysError::Erased),
            Err(error) => return Err(KeysError::Crypto(error.to_string())),
        }
        let key = DataKey::mint().map_err(|error| KeysError::Crypto(error.to_string()))?;
        let key_id = KeyId::random().map_err(KeysError::Crypto)?;
        let record = KeyRecord::DataKey {
            customer,
            key_id,
            wrapped: self.store.wrap(&key, customer).map_err(KeysError::Crypto)?,
            minted_at: chrono::Utc::now(),
        };
        let value = record.value();
        self.log
            .append(customer, &record.kafka_key(), value.as_deref())
            .await?;
        // Known here at once; the follower reads it again, and notes where it is.
        self.store.apply(record, None);
        if self.store.is_erased(customer) {
            return Err(KeysError::Erased);
        }
        Ok((key_id, key))
    }

    /// A fresh customer id whose key is minted and acknowledged already, when one is ready (a
    /// batch is minted in the background whenever fewer than half remain); `None`: the create
    /// mints its key itself.
    pub fn fresh_customer(self: &Arc<Self>) -> Option<CustomerId> {
        let (taken, left) = {
            let mut ahead = self.ahead.lock();
            (ahead.pop_front(), ahead.len())
        };
        if left < MINTED_AHEAD / 2 && !self.minting.swap(true, Ordering::AcqRel) {
            let keys = Arc::clone(self);
            tokio::spawn(async move {
                let ids: Vec<CustomerId> =
                    (0..MINTED_AHEAD).map(|_| CustomerId::new_v7()).collect();
                let minted =
                    futures::future::join_all(ids.iter().map(|id| keys.key_for(*id))).await;
                let ready = ids
                    .into_iter()
                    .zip(minted)
                    .filter_map(|(id, minted)| minted.is_ok().then_some(id));
                keys.ahead.lock().extend(ready);
                keys.minting.store(false, Ordering::Release);
            });
        }
        taken
    }

    /// Follows the keys topic until stopped.
    fn follow(&self, tail: &KeyTail) {
        let mut outage = OutageLog::new("the keys topic");
        while !self.stopped.load(Ordering::Relaxed) {
            match tail.next(Duration::from_millis(200)) {
                Some(Ok(record)) => {
                    outage.recovered();
                    self.apply_record(record);
                }
                Some(Err(error)) => outage.failed(&error),
                None => {}
            }
        }
    }

    /// Applies `batch`, records of the keys topic in their order (a batch read at start, or the
    /// one record the follower read), and what each `decoded` to: the store takes them under one
    /// lock, and how far each partition is read moves once. A key record read after its
    /// customer's erased marker (minted by a replica that had not read the marker yet) is
    /// destroyed at once: every replica that reads it does so, so it cannot outlive the erasure
    /// however the erasing replica fares.
    fn apply_batch(&self, (batch, decoded): DecodedBatch) {
        let places = batch.iter().map(|record| (record.partition, record.offset));
        let records = places
            .zip(decoded)
            .filter_map(|(place, decoded)| match decoded {
                Ok(decoded) => Some((decoded, place)),
                Err(error) => {
                    skipped(place, &error);
                    None
                }
            });
        for (customer, key_id) in self.store.apply_all(records) {
            self.destroy_late_key(customer, key_id);
        }
        advance(&mut self.next_offsets.lock(), &batch);
        self.advanced.notify_all();
    }

    /// Applies one record of the keys topic as the follower reads it.
    fn apply_record(&self, record: KeyTopicRecord) {
        let decoded = vec![KeyRecord::decode(&record.key, record.value.as_deref())];
        self.apply_batch((vec![record], decoded));
    }

    /// Destroys `customer`'s key `key_id`, minted after its erased marker.
    fn destroy_late_key(&self, customer: CustomerId, key_id: KeyId) {
        if let Err(error) = futures::executor::block_on(self.destroy(customer, key_id)) {
            tracing::warn!(%error, "a key minted after an erasure was not destroyed yet; it is at the next start");
        }
    }

    /// Writes the tombstone of `customer`'s key `key_id` and takes it in.
    async fn destroy(&self, customer: CustomerId, key_id: KeyId) -> Result<(), KeysError> {
        let tombstone = KeyRecord::Destroyed { customer, key_id };
        self.log
            .append(customer, &tombstone.kafka_key(), None)
            .await?;
        self.store.apply(tombstone, None);
        Ok(())
    }

    /// Erases `customer`'s keys for the erasure request `request_id`: its erased marker, written
    /// and acknowledged (from then on no replica mints it a key, and its sealed events open
    /// nowhere once each replica has read the marker), then a tombstone for each of its keys,
    /// which compaction follows by removing the keys from the topic's storage. Repeating it
    /// writes no second marker and destroys what is left.
    ///
    /// # Errors
    /// [`KeysError::Stalled`] when the keys topic's follower does not reach the partition's end,
    /// [`KeysError::Write`] when the keys topic does not confirm a record.
    pub async fn erase(
        self: &Arc<Self>,
        customer: CustomerId,
        request_id: &str,
        erased_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), KeysError> {
        // Every key acknowledged so far is in the store first, so the marker lists it.
        self.caught_up(customer).await?;
        if self.store.erasure_of(customer).is_none() {
            let marker = KeyRecord::Erased {
                customer,
                erased_at,
                request_id: request_id.to_owned(),
            };
            let value = marker.value();
            self.log
                .append(customer, &marker.kafka_key(), value.as_deref())
                .await?;
            self.store.apply(marker, None);
        }
        fail::fail_point!("erasure-after-marker", |_| Err(KeysError::Crypto(
            "failpoint erasure-after-marker".into()
        )));
        // Keys minted until the marker was written are read now: listed, or destroyed by the
        // follower as it reads them.
        self.caught_up(customer).await?;
        self.destroy_undestroyed(customer).await
    }

    /// Destroys every key of an erased customer's that has no tombstone yet (an erasure cut short).
    ///
    /// # Errors
    /// [`KeysError::Write`] when the keys topic does not confirm a tombstone.
    pub async fn destroy_undestroyed(&self, customer: CustomerId) -> Result<(), KeysError> {
        let undestroyed = self
            .store
            .erasure_of(customer)
            .map(|erased| erased.undestroyed)
            .unwrap_or_default();
        for key_id in undestroyed {
            self.destroy(customer, key_id).await?;
        }
        Ok(())
    }

    /// [`Keys::catch_up`] off the runtime's workers.
    async fn caught_up(self: &Arc<Self>, customer: CustomerId) -> Result<(), KeysError> {
        let keys = Arc::clone(self);
        tokio::task::spawn_blocking(move || keys.catch_up(customer))
            .await
            .map_err(|_| KeysError::Stalled(CATCH_UP))?
            .map_err(|_| KeysError::Stalled(CATCH_UP))
    }

    /// What is known of `customer`'s erasure, if its keys were erased.
    pub fn erasure_of(&self, customer: CustomerId) -> Option<ErasedKeys> {
        self.store.erasure_of(customer)
    }

    /// The customer the erasure request `request_id` erased, once its marker is read here.
    pub fn erased_by(&self, request_id: &str) -> Option<CustomerId> {
        self.store.erased_by(request_id)
    }

    /// How many of the key records at `places` the keys topic's storage still holds (blocking).
    ///
    /// # Errors
    /// [`KafkaError`] when the topic cannot be read in time.
    pub fn records_still_held(&self, places: &[KeyPlace]) -> Result<usize, KafkaError> {
        crate::log::records_still_held(&self.settings, places)
    }

    /// Every erased customer, and what is known of its erasure.
    pub fn erasures(&self) -> Vec<(CustomerId, ErasedKeys)> {
        self.store.erasures()
    }

    /// Waits until the follower has read `customer`'s partition of the keys topic up to its
    /// end now: every key acknowledged before this call is then in the store.
    fn catch_up(&self, customer: CustomerId) -> Result<(), OpenError> {
        let (partition, end) = self
            .log
            .end_for(customer)
            .map_err(|error| OpenError::KeysUnreachable(error.to_string()))?;
        let deadline = Instant::now() + CATCH_UP;
        let mut read = self.next_offsets.lock();
        while read.get(&partition).copied().unwrap_or(0) < end {
            if self.stopped.load(Ordering::Relaxed)
                || self.advanced.wait_until(&mut read, deadline).timed_out()
            {
                return Err(OpenError::KeysUnreachable(
                    "the keys topic's follower did not reach its end in time".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Polls the keys topic through `tail` until every partition is read up to `ends`, handing
/// batches of up to [`LOAD_BATCH`] records, decoded, to `to_apply` in their order.
///
/// # Errors
/// [`KeysError::Read`] or [`KeysError::Stalled`] when the topic is not read to its end within
/// [`LOAD_PATIENCE`] of `started`.
fn read_to_end(
    tail: &KeyTail,
    ends: &BTreeMap<i32, i64>,
    started: Instant,
    to_apply: &mpsc::SyncSender<DecodedBatch>,
) -> Result<(), KeysError> {
    let mut outage = OutageLog::new("the keys topic");
    let mut read: BTreeMap<i32, i64> = BTreeMap::new();
    let at_end = |read: &BTreeMap<i32, i64>| {
        ends.iter()
            .all(|(partition, end)| read.get(partition).copied().unwrap_or(0) >= *end)
    };
    while !at_end(&read) {
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        match tail.next(Duration::from_millis(500)) {
            Some(Ok(record)) => batch.push(record),
            // A leader moving, a topic just created: passing, within the bound.
            Some(Err(error)) if started.elapsed() < LOAD_PATIENCE => outage.failed(&error),
            Some(Err(error)) => return Err(error.into()),
            None if started.elapsed() < LOAD_PATIENCE => {}
            None => return Err(KeysError::Stalled(LOAD_PATIENCE)),
        }
        // What else is already fetched joins the batch; an error ends it, and counts against
        // the bound as above when the next round meets no record either.
        while batch.len() < LOAD_BATCH {
            match tail.next(Duration::ZERO) {
                Some(Ok(record)) => batch.push(record),
                Some(Err(error)) => {
                    outage.failed(&error);
                    break;
                }
                None => break,
            }
        }
        advance(&mut read, &batch);
        let decoded = batch
            .iter()
            .map(|record| KeyRecord::decode(&record.key, record.value.as_deref()))
            .collect();
        if !batch.is_empty() && to_apply.send((batch, decoded)).is_err() {
            // The applier is gone: it panicked, which the caller's join resumes.
            break;
        }
    }
    Ok(())
}

/// Moves `read` (each partition's next offset) past every record of `batch`.
fn advance(read: &mut BTreeMap<i32, i64>, batch: &[KeyTopicRecord]) {
    for record in batch {
        read.insert(record.partition, record.offset + 1);
    }
}

/// Warns of the record at `place` of the keys topic, which this build does not read.
fn skipped((partition, offset): KeyPlace, error: &KeyRecordError) {
    tracing::warn!(
        partition,
        offset,
        %error,
        "a record of the keys topic is not one this build reads; skipped"
    );
}

impl Opener for Keys {
    /// Opens with the key the store holds; a key it does not hold yet is looked for by catching
    /// up with the keys topic once (the key was acknowledged before its event was appended, so
    /// it is there). A topic that cannot be read now is [`OpenError::KeysUnreachable`], which
    /// callers retry: nothing is decided about the event.
    fn open(
        &self,
        customer: CustomerId,
        personal: &SealedPersonal,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        match self.store.open(customer, personal, context) {
            Err(OpenError::KeyUnknown(_)) => {}
            opened => return opened,
        }
        self.catch_up(customer)?;
        self.store.open(customer, personal, context)
    }
}
