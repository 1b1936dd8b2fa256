//! customer-registry: the customers resource of a payment gateway's Management API, event-sourced.
//!
//! # Layout, in the order a create travels
//! - [`config`]: typed settings from flags and environment, validated once.
//! - [`domain`]: the [`domain::Customer`], its validated parts, and the events of the public contract.
//! - [`log`](mod@log): the event log as every layer uses it: Kafka clients, positions, the topic,
//!   the producer (the topic's only writer), replays and single-record reads. Depends on no layer
//!   above it.
//! - [`write`](mod@write): the commands ([`write::Registrar`]): create, update and delete, each
//!   an event appended to the log, idempotency keys and codes, and the wait for the projection.
//! - [`projection`]: consumes the topic and applies each event to the read model, recording the
//!   next offset of every partition with the changes it covers; progress and readiness.
//! - [`read_model`]: the sled trees, their indexes and the query that `find` runs.
//! - [`auth`]: API keys (hashes in a key file), each scoped to accounts or admin; the caller of
//!   a request, and the `keys` tool that edits the file.
//! - [`http`]: one route table, the handlers, the wire formats (JSON, XML, problem documents),
//!   the OpenAPI document built from them, and the one place where errors become HTTP answers.
//! - [`app`]: wires the parts together, binds the listener and runs until shut down.
//! - [`shutdown`]: the stop signal (SIGTERM, SIGINT) the service and the tools wait for.
//! - [`control`]: the data dir's control socket, through which local tools reach a running
//!   `serve` (a snapshot of the read model it holds locked).
//! - [`audit`]: tools that replay the log (rebuild, audit, export, tail, repartition) or copy the
//!   read model (snapshot).
//! - [`metrics`]: Prometheus series, counted where things happen and read at scrape time.
//! - [`crypto`]: the key-encryption keys that wrap each customer's data key (issue 21, being built).
//! - [`durable`]: renames followed by a sync of their directory, and files only their owner reads.
//! - [`hex`]: lower-case hex for digests and keys.
//! - [`shares`]: how many places of a bounded resource each holder (key, account) has taken.

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod control;
pub mod crypto;
pub mod domain;
pub mod durable;
pub mod hex;
pub mod http;
pub mod log;
pub mod metrics;
pub mod projection;
pub mod read_model;
pub mod shares;
pub mod shutdown;
pub mod write;

#[cfg(test)]
mod tidy;
