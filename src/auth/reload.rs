//! Keeps the keys in use equal to the key file: read again on SIGHUP and when the file changes,
//! so `keys add` and `keys revoke` take effect without a restart.

use super::Authenticator;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often the key file's metadata is looked at for a change.
const CHANGE_CHECK: Duration = Duration::from_secs(1);

/// What identifies one version of the file without reading it.
type Fingerprint = Option<(SystemTime, u64, u64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some((metadata.modified().ok()?, metadata.len(), inode))
}

/// Reloads `auth`'s keys on SIGHUP and whenever the key file changes, until `stop` turns true.
/// A file that cannot be read keeps the keys in use, with an error in the log.
pub async fn watch_key_file(auth: Authenticator, mut stop: watch::Receiver<bool>) {
    let Some(path) = auth.key_file().map(Path::to_owned) else {
        return;
    };
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; the key file is reloaded when it changes");
            None
        }
    };
    let mut seen = fingerprint(&path);
    let mut ticks = tokio::time::interval(CHANGE_CHECK);
    loop {
        #[cfg(unix)]
        let hangup_received = async {
            match hangup.as_mut() {
                Some(hangup) => hangup.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup_received = std::future::pending::<Option<()>>();
        let why = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = hangup_received => "SIGHUP",
            _ = ticks.tick() => {
                let now = fingerprint(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                "the file changed"
            }
        };
        match auth.reload() {
            Ok(keys) => {
                tracing::info!(file = %path.display(), keys, reason = why, "API keys reloaded")
            }
            Err(error) => tracing::error!(
                %error,
                reason = why,
                "the key file cannot be read; the keys loaded before stay in use"
            ),
        }
    }
}
