//! customer-registry: the customers resource of a payment gateway's Management API, event-sourced.
//!
//! # Layout, in the order a create travels
//! - [`config`]: typed settings from flags and environment, validated once.
//! - [`domain`]: the [`domain::Customer`], its validated parts, and the events of the public contract.
//! - [`write`]: turns a create command into a `CustomerCreated` event and appends it to Kafka;
//!   the event log's only writer.
//! - [`projection`]: consumes the topic and applies each event to the read model, recording the
//!   next offset of every partition in the same sled batch.
//! - [`read_model`]: the sled trees, their indexes and the query that `find` runs.
//! - [`http`]: warp routes and handlers, and the one place where errors become HTTP answers.
//! - [`app`]: wires the parts together, binds the listener and runs until shut down.

pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod projection;
pub mod read_model;
pub mod write;
