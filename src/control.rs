//! The data dir's control socket, `<data-dir>/control.sock` (readable and writable by the data
//! dir's owner only): how a local tool reaches a running `serve`, which holds the read model's
//! lock so that no other process can open it. One request a connection, a line of text:
//! `snapshot` answers `ok` and a line break, then the read model's snapshot, streamed; anything
//! else answers `error: ...`. File permissions are its authentication, as for the data dir.

use crate::read_model::{ReadModel, SnapshotError};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// The socket's file name in the data dir.
pub const SOCKET: &str = "control.sock";

/// How long a connection may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest request line read.
const MAX_REQUEST: u64 = 64;

/// How long one write of a snapshot may wait for the tool to read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The control socket of `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Why a tool's request through the control socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be reached, or the connection broke.
    #[error("the control socket {path} of the running serve failed: {source}")]
    Io {
        /// The socket.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// The running serve refused the request.
    #[error("the running serve refused: {0}")]
    Refused(String),
}

/// Listens on `data_dir`'s control socket until `stop` turns true, answering each connection
/// from `read_model`. A socket file left by a process that died is replaced: only the process
/// holding the data dir's lock gets this far.
///
/// # Errors
/// When the socket cannot be bound (a path longer than the system allows, say).
pub fn listen(
    data_dir: &Path,
    read_model: ReadModel,
    mut stop: watch::Receiver<bool>,
) -> io::Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(answer(stream, read_model.clone()));
                    }
                    Err(error) => tracing::warn!(%error, "the control socket failed to accept"),
                },
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

/// Answers one connection.
async fn answer(stream: UnixStream, read_model: ReadModel) {
    let mut reader = tokio::io::BufReader::new(stream);
    let mut request = String::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        (&mut reader).take(MAX_REQUEST).read_line(&mut request),
    )
    .await;
    let mut stream = reader.into_inner();
    if !matches!(read, Ok(Ok(_))) {
        return;
    }
    if request.trim() != "snapshot" {
        let _ = stream
            .write_all(b"error: the only request is `snapshot`\n")
            .await;
        return;
    }
    if stream.write_all(b"ok\n").await.is_err() {
        return;
    }
    let started = std::time::Instant::now();
    let written = async {
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        // A reader that stops reading gives the store back after this long, not never.
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        tokio::task::spawn_blocking(move || read_model.write_snapshot(stream))
            .await
            .map_err(io::Error::other)?
            .map_err(|error| match error {
                SnapshotError::Io(error) => error,
                other => io::Error::other(other.to_string()),
            })
    };
    match written.await {
        Ok(summary) => tracing::info!(
            entries = summary.entries,
            bytes = summary.bytes,
            ms = started.elapsed().as_millis() as u64,
            "wrote a snapshot through the control socket"
        ),
        // The tool sees a snapshot that ends early, and says so.
        Err(error) => tracing::warn!(%error, "a snapshot through the control socket failed"),
    }
}

/// Asks the `serve` running on `data_dir` for a snapshot and copies it into `out`; returns the
/// bytes copied. A blocking call.
///
/// # Errors
/// [`ControlError`] when the socket cannot be reached or the serve refuses.
pub fn request_snapshot(data_dir: &Path, mut out: impl Write) -> Result<u64, ControlError> {
    let path = socket_path(data_dir);
    let failed = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(failed)?;
    stream.write_all(b"snapshot\n").map_err(failed)?;
    let mut reader = io::BufReader::with_capacity(1 << 16, stream);
    let mut status = String::new();
    (&mut reader)
        .take(MAX_REQUEST * 4)
        .read_line(&mut status)
        .map_err(failed)?;
    if status.trim_end() != "ok" {
        return Err(ControlError::Refused(
            status.trim_end().trim_start_matches("error: ").to_owned(),
        ));
    }
    io::copy(&mut reader, &mut out).map_err(failed)
}
