//! customer-registry: the customers resource of a payment gateway's Management API, event-sourced.
//!
//! # Layout, in the order a create travels
//! - [`config`]: typed settings from flags and environment, validated once.
//! - [`domain`]: the [`domain::Customer`], its validated parts, and the events of the public contract.
//! - [`write`](mod@write): the create command ([`write::Registrar`]): a `CustomerCreated` event appended to
//!   Kafka (the event log's only writer), idempotency keys, and the wait for the projection.
//! - [`projection`]: consumes the topic and applies each event to the read model, recording the
//!   next offset of every partition in the same sled transaction; log positions and progress.
//! - [`read_model`]: the sled trees, their indexes and the query that `find` runs.
//! - [`auth`]: API keys (hashes in a key file), each scoped to accounts or admin; the caller of
//!   a request, and the `keys` tool that edits the file.
//! - [`http`]: warp routes and handlers, and the one place where errors become HTTP answers.
//! - [`app`]: wires the parts together, binds the listener and runs until shut down.
//! - [`audit`]: tools that replay the log: rebuild, audit, export, tail, a customer's history.
//! - [`metrics`]: Prometheus series, counted where things happen and read at scrape time.
//! - [`kafka_logs`]: librdkafka's own logs kept at debug level; outages logged once per change.

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod domain;
pub mod http;
pub mod kafka_logs;
pub mod metrics;
pub mod projection;
pub mod read_model;
pub mod write;
