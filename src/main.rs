//! The `customer-registry` binary: parse the command line, run the chosen command.

use clap::Parser;
use customer_registry::app::Application;
use customer_registry::config::{Cli, Command, EventsCommand, KekCommand, LogFormat};
use customer_registry::{audit, auth, crypto};
use std::io::IsTerminal;
use std::process::ExitCode;

/// jemalloc rather than the system allocator: the projector and the finds allocate many small,
/// short-lived buffers (sled's pages, JSON), and with glibc's malloc the projector applied
/// 40,000 customers at 5,000/s against 8,700/s with jemalloc (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Has jemalloc return freed pages to the system within a second (its default: ten), for the
/// tools (`rebuild`, `audit`, `export`, ...): a replay frees one layer's allocations after
/// another, and a 1M rebuild peaked 30-57 MiB lower so (docs/performance.md). `serve` keeps the
/// default, which spares its requests the system calls.
fn return_freed_memory_sooner() {
    // "arenas.*" for the arenas threads create from now on, "arena.4096.*" for those that exist.
    let settings: [(&[u8], isize); 4] = [
        (b"arenas.dirty_decay_ms\0", 1_000),
        (b"arenas.muzzy_decay_ms\0", 0),
        (b"arena.4096.dirty_decay_ms\0", 1_000),
        (b"arena.4096.muzzy_decay_ms\0", 0),
    ];
    for (name, value) in settings {
        // SAFETY: each name is a jemalloc setting that takes a signed size (`ssize_t`).
        if let Err(error) = unsafe { tikv_jemalloc_ctl::raw::write(name, value) } {
            tracing::debug!(%error, "jemalloc kept its decay setting");
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Failpoints named in `FAILPOINTS` (a test build's only: see tests/it/failpoints.rs).
    let _failpoints = std::env::var_os("FAILPOINTS").map(|_| fail::FailScenario::setup());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }

    if !matches!(cli.command, Command::Serve(_)) {
        return_freed_memory_sooner();
    }
    match cli.command {
        Command::Serve(settings) => match Application::build(settings).await {
            Ok(app) => match app.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            },
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Rebuild(settings) => tool_exit(audit::rebuild(&settings).await),
        Command::Audit(settings) => tool_exit(audit::audit(&settings).await),
        Command::Export(settings) => tool_exit(audit::export(&settings).await),
        Command::Repartition(settings) => tool_exit(audit::repartition(&settings).await),
        Command::Snapshot(settings) => tool_exit(audit::snapshot(&settings).await),
        Command::Erasures(settings) => tool_exit(audit::erasures(&settings).await),
        Command::Migrate(settings) => tool_exit(audit::migrate(&settings).await),
        Command::Events {
            command: EventsCommand::Tail(settings),
        } => tool_exit(audit::tail(&settings).await),
        Command::Kek {
            command: KekCommand::Add(args),
        } => match crypto::kek_file::add(&args.file) {
            Ok(id) => {
                println!("{id}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(2)
            }
        },
        Command::Keys { command } => {
            match auth::keys_tool::run(&command.action(), &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// A tool's exit code: its own on success, 2 with one line on stderr on error.
fn tool_exit(result: Result<ExitCode, audit::AuditError>) -> ExitCode {
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })
}
