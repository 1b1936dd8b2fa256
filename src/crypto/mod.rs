//! Encryption of personal data (issue 21, being built): the key-encryption keys (KEKs) that wrap
//! each customer's data key. A KEK never enters Kafka: it lives in a file of the operator's
//! (`kek_file`), which `customer-registry kek add` appends to.

pub mod kek_file;
