//! Encryption of personal data (issue 21, being built): each customer's data key seals its
//! personal fields (`data_key`); the key-encryption keys (KEKs) wrap the data keys. A KEK never
//! enters Kafka: it lives in a file of the operator's (`kek_file`), which `customer-registry kek
//! add` appends to.

pub mod data_key;
pub mod kek_file;
