//! `customer-registry snapshot`: a read model's committed state in one file, for new replicas to
//! start from. With no `serve` on the data dir the tool opens the read model itself; with one
//! running (it holds the read model's lock) the tool asks it through the data dir's control
//! socket. Either way the file is written beside its name and moved there only once it is whole
//! and its checksum reads back.

use super::{live_read_model_dir, AuditError};
use crate::config::SnapshotSettings;
use crate::control;
use crate::read_model::{self, verify_snapshot, ReadModelError, SnapshotSummary};
use serde::Serialize;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotReport<'a> {
    file: String,
    taken_from: &'static str,
    topic: &'a str,
    cluster: &'a str,
    position: String,
    entries: u64,
    bytes: u64,
    seconds: f64,
}

/// Writes a snapshot of `settings.data_dir`'s read model to `settings.out`.
///
/// # Errors
/// [`AuditError`] when the data dir holds no read model, the read model or the running serve
/// fails, or the file cannot be written.
pub async fn snapshot(settings: &SnapshotSettings) -> Result<ExitCode, AuditError> {
    let started = Instant::now();
    let data_dir = settings.data_dir.clone();
    if !live_read_model_dir(&data_dir).exists() {
        return Err(AuditError::Usage(format!(
            "{} holds no read model",
            data_dir.display()
        )));
    }
    let out = settings.out.clone();
    let mut partial = out.clone().into_os_string();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let written = {
        let partial = partial.clone();
        tokio::task::spawn_blocking(move || write(&data_dir, &partial))
            .await
            .map_err(|_| AuditError::Usage("the snapshot was cancelled".into()))?
    };
    let (summary, taken_from) = match written {
        Ok(written) => written,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    crate::durable::rename(&partial, &out).map_err(AuditError::io(format!(
        "moving the snapshot to {}",
        out.display()
    )))?;
    let header = &summary.header;
    let report = SnapshotReport {
        file: out.display().to_string(),
        taken_from,
        topic: &header.topic,
        cluster: &header.cluster,
        position: crate::log::LogPosition::from_next_offsets(header.next_offsets.clone())
            .to_string(),
        entries: summary.entries,
        bytes: summary.bytes,
        seconds: started.elapsed().as_secs_f64(),
    };
    super::print_outcome(&report, settings.json, || {
        println!(
            "wrote {} ({} bytes, {} entries) from {}: topic {}, position {}, in {:.1} s",
            report.file,
            report.bytes,
            report.entries,
            report.taken_from,
            report.topic,
            report.position,
            report.seconds
        );
    });
    Ok(ExitCode::SUCCESS)
}

/// Writes the snapshot into `partial`, from the read model itself or from the serve holding it,
/// and reads it back; says which it came from.
fn write(data_dir: &Path, partial: &Path) -> Result<(SnapshotSummary, &'static str), AuditError> {
    let file =
        File::create(partial).map_err(AuditError::io(format!("creating {}", partial.display())))?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let taken_from = match read_model::open(&live_read_model_dir(data_dir)) {
        Ok((model, _writer)) => {
            model.write_snapshot(&mut out)?;
            "the read model (no serve running)"
        }
        Err(ReadModelError::Locked(_)) => {
            control::request_snapshot(data_dir, &mut out)?;
            "the running serve"
        }
        Err(error) => return Err(error.into()),
    };
    let file = out.into_inner().map_err(|error| AuditError::Io {
        what: format!("writing {}", partial.display()),
        source: error.into_error(),
    })?;
    file.sync_all()
        .map_err(AuditError::io(format!("syncing {}", partial.display())))?;
    let written = File::open(partial).map_err(AuditError::io(format!(
        "reading {} back",
        partial.display()
    )))?;
    let summary = verify_snapshot(written)?;
    Ok((summary, taken_from))
}
