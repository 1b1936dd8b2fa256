//! Applying a replay of the log (`rebuild`, `audit`, `export`) as fast as the read model takes
//! it: records are decoded and prepared on a thread of their own, a batch ahead of the one being
//! applied.

use super::{apply_records, decode_record, RawRecord};
use crate::domain::{OpenError, Opener};
use crate::log::OutageLog;
use crate::read_model::{PreparedBatch, ReadModelError, ReadModelWriter};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Records a replay decodes and applies at once: larger than live batches, since nothing waits
/// on each. Up to four are held (queued, decoding, decoded, applied): at 1M customers, 5,000
/// peaked ~25 MiB lower than 10,000 at the same speed; 2,500 another ~20 MiB lower, ~3 % slower.
const REPLAY_BATCH: usize = 5_000;

/// Batches at least this long are decoded on two threads: decoding is most of a replay's work,
/// and the thread that applies waits on it.
const DECODED_IN_TWO_FROM: usize = 2_000;

/// Decodes `batch` (`opener` opening sealed events) and prepares it for the writer.
///
/// # Errors
/// A passing [`OpenError`] (see [`decode_record`]): the batch must be decoded again later.
pub(super) fn prepare(
    batch: &[RawRecord],
    opener: &(dyn Opener + Sync),
) -> Result<PreparedBatch, OpenError> {
    let decode = |records: &[RawRecord]| {
        records
            .iter()
            .map(|raw| decode_record(raw.partition, raw.offset, raw.payload.as_deref(), opener))
            .collect::<Result<Vec<_>, _>>()
    };
    let records = if batch.len() < DECODED_IN_TWO_FROM {
        decode(batch)?
    } else {
        let [first, second] = map_halves(batch, decode);
        let mut records = first?;
        records.extend(second?);
        records
    };
    Ok(PreparedBatch::new(records))
}

/// `work` applied to each half of `items`, the second half on a thread of its own; the two
/// results in the halves' order. A panic in either half is resumed on the caller's thread.
fn map_halves<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> R + Sync) -> [R; 2] {
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        let second = scope.spawn(|| work(second));
        let first = work(first);
        let second = second
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        [first, second]
    })
}

/// [`prepare`], again each second while the keys cannot be read: a replay never turns an event
/// it cannot open yet into a rejection.
fn prepare_patiently(batch: &[RawRecord], opener: &(dyn Opener + Sync)) -> PreparedBatch {
    let mut outage = OutageLog::new("the keys topic (replay waits)");
    loop {
        match prepare(batch, opener) {
            Ok(prepared) => return prepared,
            Err(error) => outage.failed(&error),
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Applies a replay's records in batches of [`REPLAY_BATCH`], decoding the next batch while it
/// applies one.
pub struct BatchApplier<'a> {
    writer: &'a mut ReadModelWriter,
    pending: Vec<RawRecord>,
    to_decode: Option<mpsc::SyncSender<Vec<RawRecord>>>,
    decoded: mpsc::Receiver<PreparedBatch>,
    decoder: Option<JoinHandle<()>>,
    /// Batches handed to the decoder and not yet applied.
    in_flight: usize,
}

impl<'a> BatchApplier<'a> {
    /// A batcher over `writer`, `opener` opening sealed events.
    pub fn new(writer: &'a mut ReadModelWriter, opener: Arc<dyn Opener + Send + Sync>) -> Self {
        let (to_decode, raw) = mpsc::sync_channel::<Vec<RawRecord>>(2);
        let (to_apply, decoded) = mpsc::sync_channel(2);
        let decoder = std::thread::Builder::new()
            .name("replay-decoder".into())
            .spawn(move || {
                for batch in raw {
                    if to_apply
                        .send(prepare_patiently(&batch, opener.as_ref()))
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .expect("the decoder thread starts");
        Self {
            writer,
            pending: Vec::with_capacity(REPLAY_BATCH),
            to_decode: Some(to_decode),
            decoded,
            decoder: Some(decoder),
            in_flight: 0,
        }
    }

    /// Queues the record at `partition`/`offset`; a full batch goes to the decoder, and the batch
    /// before it is applied.
    ///
    /// # Errors
    /// [`ReadModelError`] when the read model fails.
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
    ) -> Result<(), ReadModelError> {
        self.pending.push(RawRecord {
            partition,
            offset,
            payload: payload.map(<[u8]>::to_vec),
        });
        if self.pending.len() >= REPLAY_BATCH {
            self.hand_over();
            // One batch decodes while the one before it is applied.
            if self.in_flight > 1 {
                self.apply_next()?;
            }
        }
        Ok(())
    }

    fn hand_over(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(REPLAY_BATCH));
        self.to_decode
            .as_ref()
            .expect("the decoder runs until the applier finishes")
            .send(batch)
            .expect("the decoder runs until the applier finishes (decoding never panics)");
        self.in_flight += 1;
    }

    fn apply_next(&mut self) -> Result<(), ReadModelError> {
        let mut batch = self
            .decoded
            .recv()
            .expect("the decoder answers every batch it is handed");
        self.in_flight -= 1;
        apply_records(self.writer, &mut batch).map(drop)
    }

    /// Applies what is queued and stops the decoder, which lets go of the opener: a replay's
    /// keys are no longer needed once every record is applied.
    ///
    /// # Errors
    /// [`ReadModelError`] when the read model fails.
    pub fn apply_queued(&mut self) -> Result<(), ReadModelError> {
        self.hand_over();
        while self.in_flight > 0 {
            self.apply_next()?;
        }
        self.stop_decoder();
        Ok(())
    }

    /// Applies what is queued and commits everything to disk.
    ///
    /// # Errors
    /// [`ReadModelError`] when the read model fails.
    pub fn finish(mut self) -> Result<(), ReadModelError> {
        self.apply_queued()?;
        self.writer.flush_all()
    }

    /// Closes both channels, which ends the decoder's loop whether it waits for a batch or to
    /// hand one over, and waits for it to end.
    fn stop_decoder(&mut self) {
        self.to_decode = None;
        let (_, closed) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.decoded, closed));
        if let Some(decoder) = self.decoder.take() {
            let _ = decoder.join();
        }
    }
}

impl Drop for BatchApplier<'_> {
    /// Stops the decoder when a replay ends early (an error).
    fn drop(&mut self) {
        self.stop_decoder();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_half_is_worked_on_once_and_the_results_keep_their_order() {
        let items: Vec<u32> = (0..9).collect();
        let [first, second] = map_halves(&items, <[u32]>::to_vec);
        assert_eq!(first, vec![0, 1, 2, 3]);
        assert_eq!(second, vec![4, 5, 6, 7, 8]);
    }

    #[test]
    fn the_opener_is_let_go_once_every_record_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let (_model, mut writer) =
            crate::read_model::open_with(dir.path(), crate::read_model::FlushPolicy::replay())
                .unwrap();
        let opener: Arc<dyn Opener + Send + Sync> = Arc::new(crate::domain::NoKeys);
        let mut applier = BatchApplier::new(&mut writer, Arc::clone(&opener));
        applier.push(0, 0, None).unwrap();
        assert_eq!(
            Arc::strong_count(&opener),
            2,
            "the decoder holds it while it runs"
        );
        applier.apply_queued().unwrap();
        assert_eq!(Arc::strong_count(&opener), 1);
        applier.finish().unwrap();
    }

    #[test]
    fn a_panic_in_the_second_half_reaches_the_caller() {
        let items = [1, 2];
        let caught = std::panic::catch_unwind(|| {
            map_halves(&items, |half| assert!(half != [2], "the second half fails"))
        });
        assert!(caught.is_err());
    }
}
