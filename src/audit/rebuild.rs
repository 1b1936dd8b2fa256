//! `customer-registry rebuild`: a fresh projection from offset 0, built beside the live one and
//! swapped in atomically once complete. A crash mid-way leaves the live one as it was.

use super::{check_follows, keys_for, live_read_model_dir, AuditError};
use crate::config::ToolSettings;
use crate::log::{existing_topic, reader, replay, replay_ends};
use crate::projection::BatchApplier;
use crate::read_model::{self, FlushPolicy, ReadModelError};
use rdkafka::message::Message;
use serde::Serialize;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RebuildReport {
    events_read: u64,
    customers: usize,
    rejected_events: usize,
    seconds: f64,
    read_model: String,
}

/// Rebuilds the read model of `settings.data_dir` from the log.
///
/// # Errors
/// [`AuditError`] when the log cannot be read, the data dir is in use by a `serve`, or the new
/// read model cannot be written or swapped in.
pub async fn rebuild(settings: &ToolSettings) -> Result<ExitCode, AuditError> {
    let started = Instant::now();
    let layout = existing_topic(&settings.event_log.settings()).await?;
    let keys = keys_for(
        settings.kek_file.as_deref(),
        &settings.event_log.settings(),
        &layout,
    )
    .await?;
    let live_dir = live_read_model_dir(&settings.data_dir);
    // Holding the live read model open keeps a `serve` from starting on it mid-rebuild, and
    // refuses at once when one already runs.
    let live = if live_dir.exists() {
        let (live, _) = read_model::open(&live_dir).map_err(in_use(&settings.data_dir))?;
        check_follows(&live, &settings.event_log.topic, &layout.cluster_id)?;
        // Only while holding the live lock is it certain no other rebuild is running.
        remove_abandoned_rebuilds(&settings.data_dir)?;
        Some(live)
    } else {
        None
    };
    let new_dir = settings.data_dir.join(format!(
        "read-model.rebuild-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let settings_for_replay = settings.event_log.settings();
    let new_dir_for_replay = new_dir.clone();
    let cluster_id = layout.cluster_id.clone();
    let replayed = tokio::task::spawn_blocking(move || {
        let (model, mut writer) =
            read_model::open_with(&new_dir_for_replay, FlushPolicy::replay())?;
        model.bind_to_log(&settings_for_replay.topic, &cluster_id)?;
        let ends = replay_ends(
            &reader(&settings_for_replay)?,
            &settings_for_replay.topic,
            None,
        )?;
        let mut applier = BatchApplier::new(&mut writer, keys.opener());
        let events_read = replay::<AuditError>(&settings_for_replay, &ends, |message| {
            Ok(applier.push(message.partition(), message.offset(), message.payload())?)
        })?;
        // Every event is applied: the keys (~160 MiB at 1M customers) go before the final merge,
        // the replay's peak of memory.
        applier.apply_queued()?;
        keys.stop();
        drop(keys);
        applier.finish()?;
        let customers = model.len();
        // Counted by key: none is decoded.
        let (_, rejected) = model.rejected_events_page(0, 0)?;
        Ok::<_, AuditError>((events_read, customers, rejected))
    })
    .await
    .map_err(|_| AuditError::Usage("the rebuild task was cancelled".into()))?;
    let (events_read, customers, rejected_events) = match replayed {
        Ok(counts) => counts,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&new_dir);
            return Err(error);
        }
    };
    if live.is_some() {
        exchange(&new_dir, &live_dir)?;
        crate::durable::sync_parent(&live_dir)
            .map_err(AuditError::io("syncing the data dir after the swap"))?;
        drop(live);
        std::fs::remove_dir_all(&new_dir).map_err(AuditError::io("removing the old read model"))?;
    } else {
        crate::durable::rename(&new_dir, &live_dir)
            .map_err(AuditError::io("moving the new read model in place"))?;
    }
    let report = RebuildReport {
        events_read,
        customers,
        rejected_events,
        seconds: started.elapsed().as_secs_f64(),
        read_model: live_dir.display().to_string(),
    };
    super::print_outcome(&report, settings.json, || {
        println!(
            "rebuilt {}: {} events read, {} customers, {} rejected events, in {:.1} s",
            report.read_model, events_read, customers, rejected_events, report.seconds
        );
    });
    Ok(ExitCode::SUCCESS)
}

/// Removes what an earlier rebuild that crashed mid-way left beside the live read model. Called
/// while this process holds the data dir, so no other rebuild is running.
fn remove_abandoned_rebuilds(data_dir: &Path) -> Result<(), AuditError> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("read-model.rebuild-")
        {
            std::fs::remove_dir_all(entry.path()).map_err(AuditError::io(format!(
                "removing {}",
                entry.path().display()
            )))?;
        }
    }
    Ok(())
}

/// Turns "locked" into the message a person needs.
pub(super) fn in_use(data_dir: &Path) -> impl FnOnce(ReadModelError) -> AuditError + '_ {
    move |error| match error {
        ReadModelError::Locked(_) => AuditError::Usage(format!(
            "{} is in use by a running `customer-registry serve`; stop it first",
            data_dir.display()
        )),
        other => AuditError::ReadModel(other),
    }
}

/// Swaps two directories in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`), so the live
/// path names the old read model or the new one, never neither.
fn exchange(new: &Path, live: &Path) -> Result<(), AuditError> {
    let to_c = |path: &Path| {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| AuditError::Usage(format!("{} contains a NUL byte", path.display())))
    };
    let (new_c, live_c) = (to_c(new)?, to_c(live)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call, which does
    // not keep them.
    let result = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            new_c.as_ptr(),
            libc::AT_FDCWD,
            live_c.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(AuditError::Io {
            what: format!("swapping {} into {}", new.display(), live.display()),
            source: std::io::Error::last_os_error(),
        })
    }
}
