//! The black-box tests, one module a subject, in one test binary: one link of rdkafka and the
//! library for all of them (a file beside `it/` in `tests/` would be a binary of its own). They
//! share [`common`] and run in parallel threads of this one process, so whatever one test changes
//! for the whole process, or for a broker that others use, is taken in turns: the three-node
//! cluster ([`common::cluster`]), the failpoints ([`common::failpoints`]). One module alone:
//! `cargo test --test it MODULE::`.

mod common;

mod api;
mod audit_tools;
mod auth;
mod balancer;
mod cluster_faults;
mod cluster_topic;
mod crash_recovery;
mod customer_code;
mod encryption;
mod erasure;
mod event_contract;
mod failpoints;
mod fault_campaign;
mod formats;
mod idempotency;
mod kafka_cluster_script;
mod kafka_outage;
mod kafka_script;
mod kek;
mod lifecycle;
mod limits;
mod metrics;
mod migrate;
mod partitions;
mod poison;
mod recovery;
mod repartition;
mod replicas;
mod snapshot;
mod startup;
