//! Wires the parts together: read model, topic, event log, projector and HTTP server, and stops
//! them in order on SIGTERM or SIGINT.

use crate::auth::{self, key_file::KeyFileError, Authenticator};
use crate::config::ServeSettings;
use crate::control;
use crate::crypto::Encryption;
use crate::http::{self, ApiState};
use crate::log::{
    self, ClusterHealth, EventLog, EventLogError, EventLogSettings, HistoryReader, LogPosition,
    TopicError, TopicLayout,
};
use crate::metrics::Metrics;
use crate::projection::{readiness, ProjectionError, Projector};
use crate::read_model::{self, ReadModel, ReadModelError, SnapshotError};
use crate::shutdown;
use crate::write::Registrar;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long shutdown lets requests in flight finish. With the producer flush after it, shutdown
/// stays well inside 10 s.
const SERVER_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long shutdown waits for the producer to confirm records still in flight.
const PRODUCER_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a replica looks for erasures cut short (a replica killed between an erasure's
/// marker and its event) to finish them.
const ERASURE_SWEEP: Duration = Duration::from_secs(30);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Neither a key file nor `--no-auth`: the registry does not serve unauthenticated by
    /// accident.
    #[error(
        "serve needs API keys: --api-keys FILE (REGISTRY_API_KEYS; create one with \
         `customer-registry keys add --file FILE --name NAME --admin`), or --no-auth \
         (REGISTRY_NO_AUTH=1) to serve without authentication"
    )]
    NoKeyFile,
    /// Both a key file and `--no-auth`.
    #[error("--api-keys and --no-auth exclude each other; give one")]
    AuthConflict,
    /// Neither a KEK file nor `--no-encryption`: personal data is not written in plain text
    /// by accident.
    #[error(
        "serve needs a key-encryption key file: --kek-file FILE (REGISTRY_KEK_FILE; create one \
         with `customer-registry kek add --file FILE`), or --no-encryption \
         (REGISTRY_NO_ENCRYPTION=1) to write events in plain text"
    )]
    NoKekFile,
    /// Both a KEK file and `--no-encryption`.
    #[error("--kek-file and --no-encryption exclude each other; give one")]
    EncryptionConflict,
    /// The KEK file or the keys topic cannot be used.
    #[error("cannot use the data keys: {0}")]
    Keys(String),
    /// The key file is missing, unreadable or invalid.
    #[error("cannot use the API key file: {0}")]
    KeyFile(#[from] KeyFileError),
    /// The read model's directory could not be opened.
    #[error("cannot open the read model in {dir}: {source}")]
    ReadModel {
        /// The directory.
        dir: String,
        /// What sled said.
        source: ReadModelError,
    },
    /// The topic is unreachable or unfit.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The producer could not be set up.
    #[error(transparent)]
    EventLog(#[from] EventLogError),
    /// The projector could not be set up.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// `--restore-from` could not be restored.
    #[error("cannot restore the snapshot {file}: {source}")]
    Restore {
        /// The snapshot.
        file: String,
        /// Why.
        source: SnapshotError,
    },
    /// The listen address is unusable.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
}

/// A running registry: HTTP server and projector, until [`Application::run_until_stopped`] ends.
pub struct Application {
    address: SocketAddr,
    stop_server: watch::Sender<bool>,
    stop_projector: watch::Sender<bool>,
    server: JoinHandle<()>,
    projector: JoinHandle<Result<(), ProjectionError>>,
    key_file_watch: JoinHandle<()>,
    control_socket: Option<JoinHandle<()>>,
    metrics_server: Option<JoinHandle<()>>,
    event_log: Arc<EventLog>,
    encryption: Encryption,
}

impl Application {
    /// Opens the read model, makes sure the topic exists with unlimited retention, starts the
    /// projector and binds the HTTP listener.
    ///
    /// # Errors
    /// [`StartupError`] naming the part that could not start.
    pub async fn build(settings: ServeSettings) -> Result<Self, StartupError> {
        let authenticator = match (&settings.api_keys, settings.no_auth) {
            (Some(_), true) => return Err(StartupError::AuthConflict),
            (None, false) => return Err(StartupError::NoKeyFile),
            (Some(path), false) => Authenticator::from_file(path)?,
            (None, true) => {
                tracing::warn!(
                    "serving WITHOUT authentication (--no-auth): anyone who reaches the port \
                     may read and write every account"
                );
                Authenticator::disabled()
            }
        };
        let event_log_settings = settings.event_log.settings();
        let read_model_dir = settings.data_dir.join("read-model");
        let restored = match &settings.restore_from {
            // The topic must exist already: a snapshot is of a replica of it (and a mistyped
            // --topic must not create an empty one).
            Some(snapshot) if !read_model_dir.exists() => {
                let layout = log::existing_topic(&event_log_settings).await?;
                // The keys topic is read while the snapshot is restored: at a million
                // customers each takes seconds, and they need neither each other nor one core.
                let (restored, encryption) = tokio::join!(
                    restore(
                        snapshot,
                        &read_model_dir,
                        &event_log_settings.topic,
                        &layout,
                    ),
                    encryption_of(&settings, &event_log_settings, &layout)
                );
                restored?;
                Some((layout, encryption?))
            }
            Some(snapshot) => {
                tracing::info!(
                    snapshot = %snapshot.display(),
                    "the data dir holds a read model already: --restore-from is ignored"
                );
                None
            }
            None => None,
        };
        let (read_model, writer) = read_model::open_with(&read_model_dir, settings.flush_policy())
            .map_err(|source| StartupError::ReadModel {
                dir: read_model_dir.display().to_string(),
                source,
            })?;
        let (layout, restored_encryption) = match restored {
            Some((layout, encryption)) => (layout, Some(encryption)),
            None => (log::ensure_topic(&event_log_settings).await?, None),
        };
        read_model
            .bind_to_log(&event_log_settings.topic, &layout.cluster_id)
            .map_err(|source| StartupError::ReadModel {
                dir: read_model_dir.display().to_string(),
                source,
            })?;
        follows_origin(&read_model, &event_log_settings, &layout, &read_model_dir)?;
        let encryption = match restored_encryption {
            Some(encryption) => encryption,
            None => encryption_of(&settings, &event_log_settings, &layout).await?,
        };
        let health = ClusterHealth::new(layout.durability.min_insync_replicas);
        let event_log = Arc::new(EventLog::connect(
            &event_log_settings,
            layout.partitioning,
            health.clone(),
        )?);
        let metrics = Metrics::new();
        let (projector, progress) = Projector::new(
            &event_log_settings,
            &layout.partitions,
            settings.partition_check(),
            read_model.clone(),
            writer,
            metrics.clone(),
            encryption.opener(),
        )?;

        let (stop_projector, projector_stopped) = watch::channel(false);
        let readiness = readiness::spawn(
            &event_log_settings.kafka_bootstrap,
            &event_log_settings.topic,
            progress.clone(),
            settings.ready_max_lag,
            health,
            stop_projector.subscribe(),
        )
        .map_err(ProjectionError::Consumer)?;
        let projector = tokio::spawn(projector.run(projector_stopped));
        let control_socket = match control::listen(
            &settings.data_dir,
            read_model.clone(),
            stop_projector.subscribe(),
        ) {
            Ok(listening) => Some(listening),
            Err(error) => {
                tracing::warn!(
                    %error,
                    socket = %control::socket_path(&settings.data_dir).display(),
                    "no control socket: `customer-registry snapshot` cannot reach this serve \
                     (GET /api/v01/admin/snapshot still can)"
                );
                None
            }
        };
        let key_file_watch = tokio::spawn(auth::watch_key_file(
            authenticator.clone(),
            stop_projector.subscribe(),
        ));
        let history = Arc::new(HistoryReader::new(event_log_settings.clone()));
        let registrar = Registrar::new(
            event_log.clone(),
            read_model.clone(),
            progress.clone(),
            settings.projection_wait(),
            Arc::clone(&history),
            encryption.clone(),
        );
        let first_ready = readiness.clone();
        let registrar = Arc::new(registrar);
        let finishing = Arc::clone(&registrar);
        let state = ApiState {
            registrar,
            event_log: Arc::clone(&event_log),
            read_model: read_model.clone(),
            progress: progress.clone(),
            catch_up_wait: settings.projection_wait(),
            history,
            readiness,
            auth: authenticator.clone(),
            metrics,
            opener: encryption.opener(),
        };
        let (stop_server, server_stopped) = watch::channel(false);
        let limits = settings.server_limits();
        let metrics_server = match settings.metrics_listen {
            Some(listen) => {
                let (listener, address) = bind(listen).await?;
                tracing::info!("metrics (no key needed) on http://{address}/metrics");
                Some(tokio::spawn(http::serve_metrics(
                    listener,
                    state.clone(),
                    limits,
                    server_stopped.clone(),
                )))
            }
            None => None,
        };
        let (listener, address) = bind(settings.listen).await?;
        let server = http::serve_api(listener, state, limits, server_stopped);
        tracing::info!(
            topic = %event_log_settings.topic,
            partitions = layout.partitions.len(),
            partitioning = %layout.partitioning,
            brokers = layout.durability.brokers,
            replication = layout.durability.replication_factor,
            min_insync_replicas = layout.durability.min_insync_replicas,
            data_dir = %settings.data_dir.display(),
            authentication = if authenticator.is_enabled() { "api keys" } else { "off" },
            "customer-registry listening on http://{address}"
        );
        let catching_up = progress.clone();
        let mut stopping = stop_projector.subscribe();
        tokio::spawn(async move {
            // Said once /readyz says so too: a client that waits for this line (a test, an
            // operator) never meets a 503 "not checked yet" after it.
            first_ready.ready().await;
            tracing::info!(
                log_end = %catching_up.log_end_at_start(),
                "ready: the projection has caught up with the log; serving reads"
            );
            // Erasures a replica was killed in the middle of are finished by whichever replica
            // comes next: once caught up (it then knows which ones stopped short), then now and
            // then.
            loop {
                match finishing.complete_erasures().await {
                    Ok(0) => {}
                    Ok(completed) => tracing::info!(completed, "erasures cut short completed"),
                    Err(error) => tracing::warn!(%error, "erasures cut short not completed yet"),
                }
                tokio::select! {
                    _ = stopping.changed() => break,
                    () = tokio::time::sleep(ERASURE_SWEEP) => {}
                }
            }
        });
        Ok(Self {
            address,
            stop_server,
            stop_projector,
            server: tokio::spawn(server),
            projector,
            key_file_watch,
            control_socket,
            metrics_server,
            event_log,
            encryption,
        })
    }

    /// The address the HTTP API is bound to (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until SIGTERM or SIGINT (or until the projector fails), then stops accepting,
    /// finishes in-flight requests, stops the projector (which commits the read model), and
    /// flushes the producer.
    ///
    /// # Errors
    /// When the projector failed, or state could not be flushed on the way out.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        let failed_projector = tokio::select! {
            () = shutdown::stop_signal() => None,
            outcome = &mut self.projector => Some(outcome),
        };
        tracing::info!("shutting down");
        // The server drains first, while the projector still runs, so creates in flight can see
        // their events projected; a connection that will not finish is cut off at the deadline.
        let _ = self.stop_server.send(true);
        if tokio::time::timeout(SERVER_DRAIN_TIMEOUT, &mut self.server)
            .await
            .is_err()
        {
            tracing::warn!("requests still open after {SERVER_DRAIN_TIMEOUT:?}; closing them");
            self.server.abort();
        }
        if let Some(metrics_server) = self.metrics_server {
            metrics_server.abort();
        }
        let _ = self.stop_projector.send(true);
        let _ = self.key_file_watch.await;
        if let Some(control_socket) = self.control_socket {
            let _ = control_socket.await;
        }
        let projector_outcome = match failed_projector {
            Some(outcome) => outcome,
            None => self.projector.await,
        };
        self.encryption.stop();
        let event_log = self.event_log;
        let flushed =
            tokio::task::spawn_blocking(move || event_log.flush(PRODUCER_FLUSH_TIMEOUT)).await?;
        if let Err(error) = flushed {
            // Records still unconfirmed were never acknowledged to a client; their creates
            // answered 503 or will be retried. The read model must still be persisted.
            tracing::warn!(%error, "the producer could not flush before shutdown");
        }
        projector_outcome??;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Refuses a read model (in `dir`) built from an earlier topic of the same name (deleted and
/// created again, its offsets perhaps grown past the read model's): the record the read model
/// noted as the topic's origin must still be where it was. A read model that has applied records
/// without noting one (built before origins were noted) notes the topic's first record now; an
/// empty one notes the first record its projector receives.
fn follows_origin(
    read_model: &ReadModel,
    settings: &EventLogSettings,
    layout: &TopicLayout,
    dir: &Path,
) -> Result<(), StartupError> {
    let refused = |source| StartupError::ReadModel {
        dir: dir.display().to_string(),
        source,
    };
    match read_model.origin().map_err(refused)? {
        Some(noted) => {
            let now = log::origin_now(settings, &noted)?;
            if now.as_deref() == Some(noted.as_str()) {
                return Ok(());
            }
            Err(refused(ReadModelError::OtherLog {
                setting: "first record",
                stored: noted,
                wanted: now.unwrap_or_else(|| "none there".into()),
            }))
        }
        None if read_model.next_offsets().map_err(refused)?.is_empty() => Ok(()),
        None => match log::first_origin(settings, &layout.partitions)? {
            Some(first) => read_model.note_origin(&first).map_err(refused),
            None => Ok(()),
        },
    }
}

/// How events are written and read: sealed under the keys of `settings`' KEK file (the keys
/// topic read to its end), or in plain text with `--no-encryption`.
async fn encryption_of(
    settings: &ServeSettings,
    event_log_settings: &EventLogSettings,
    layout: &TopicLayout,
) -> Result<Encryption, StartupError> {
    Ok(match (&settings.kek_file, settings.no_encryption) {
        (Some(_), true) => return Err(StartupError::EncryptionConflict),
        (Some(file), false) => Encryption::load(file, event_log_settings, layout, true)
            .await
            .map_err(StartupError::Keys)?,
        (None, true) => {
            if log::existing_keys_topic(event_log_settings, layout)
                .await
                .is_ok()
            {
                return Err(StartupError::Keys(format!(
                    "{} has a keys topic: its events are sealed, and a registry without \
                     the KEK file could read none of them. Serve it with --kek-file",
                    event_log_settings.topic
                )));
            }
            tracing::warn!(
                "writing events in plain text (--no-encryption): personal data in the log \
                 cannot be erased"
            );
            Encryption::Off
        }
        (None, false) => return Err(StartupError::NoKekFile),
    })
}

/// Restores the snapshot `file` into `dir`, checked against `topic` on `layout`'s cluster.
async fn restore(
    file: &Path,
    dir: &Path,
    topic: &str,
    layout: &log::TopicLayout,
) -> Result<(), StartupError> {
    let failed = |source| StartupError::Restore {
        file: file.display().to_string(),
        source,
    };
    let started = std::time::Instant::now();
    let (file_path, dir_path, topic, cluster) = (
        file.to_owned(),
        dir.to_owned(),
        topic.to_owned(),
        layout.cluster_id.clone(),
    );
    let restored = tokio::task::spawn_blocking(move || {
        if let Some(parent) = dir_path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let snapshot = std::fs::File::open(&file_path)?;
        read_model::restore_snapshot(snapshot, &dir_path, &topic, &cluster)
    })
    .await
    .map_err(|_| {
        failed(SnapshotError::Io(std::io::Error::other(
            "the restore was cancelled",
        )))
    })?
    .map_err(failed)?;
    tracing::info!(
        snapshot = %file.display(),
        entries = restored.entries,
        bytes = restored.bytes,
        position = %LogPosition::from_next_offsets(restored.header.next_offsets),
        taken_at = %restored.header.taken_at.to_rfc3339(),
        ms = started.elapsed().as_millis() as u64,
        "restored the read model from a snapshot; catching up with the log from its position"
    );
    Ok(())
}

/// A listener on `address`, and the address it got (a port 0 becomes a free port).
async fn bind(address: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), StartupError> {
    let bound = |source| StartupError::Bind { address, source };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(bound)?;
    let local = listener.local_addr().map_err(bound)?;
    Ok((listener, local))
}
