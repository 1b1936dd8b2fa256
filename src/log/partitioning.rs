//! Which partition holds a customer's events, for the life of the topic.
//!
//! A hash of the key modulo the topic's *current* partition count (the Kafka clients' default)
//! moves most customers the moment a partition is added: a customer's later events land on
//! another partition than its create, and a replay that reads partitions interleaved can meet
//! version 2 before version 1. So the registry routes every record itself: CRC-32 (IEEE) of the
//! key, the customer id's text form, modulo a count written on every record (header [`HEADER`],
//! e.g. `crc32/12`). Every replica and tool reads the count back from the newest records (the
//! topic's own count while it is empty); partitions added later receive nothing until the log is
//! copied into a new topic (`customer-registry repartition`).
//!
//! CRC-32 modulo the count is also what librdkafka's default partitioner (`consistent_random`)
//! computes for a keyed record, so a topic written before the header existed, and never grown,
//! keeps every customer where it was.

use crate::domain::CustomerId;
use std::fmt;

/// The record header that names the partitioning a record was routed by.
pub const HEADER: &str = "partitioning";

/// How customers are spread over partitions: CRC-32 of the customer id modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partitioning {
    count: i32,
}

impl Partitioning {
    /// Routing over partitions `0..count`.
    ///
    /// # Panics
    /// When `count` is not positive: a topic has at least one partition.
    pub fn over(count: i32) -> Self {
        assert!(count > 0, "a topic has at least one partition");
        Self { count }
    }

    /// How many partitions customers are spread over.
    pub fn count(&self) -> i32 {
        self.count
    }

    /// The partition that holds every event about `customer`.
    pub fn partition_of(&self, customer: CustomerId) -> i32 {
        self.partition_of_key(customer.to_string().as_bytes())
    }

    /// The partition of a record keyed `key` (a customer id's text form).
    pub fn partition_of_key(&self, key: &[u8]) -> i32 {
        let count = u32::try_from(self.count).expect("a positive count");
        i32::try_from(crc32fast::hash(key) % count).expect("below an i32 count")
    }

    /// Reads the header's value.
    ///
    /// # Errors
    /// A sentence saying what is wrong, when `text` is not `crc32/<count>` with a count in
    /// `1..=1_000_000`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let count = text
            .strip_prefix("crc32/")
            .and_then(|count| count.parse::<i32>().ok())
            .filter(|count| (1..=1_000_000).contains(count));
        count
            .map(Self::over)
            .ok_or_else(|| format!("{text:?} is not crc32/<partition count>"))
    }
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "crc32/{}", self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_header_form_reads_back() {
        let twelve = Partitioning::over(12);
        assert_eq!(twelve.to_string(), "crc32/12");
        assert_eq!(Partitioning::parse("crc32/12"), Ok(twelve));
        for bad in [
            "",
            "crc32/",
            "crc32/0",
            "crc32/-3",
            "murmur2/12",
            "crc32/12 ",
            "12",
        ] {
            assert!(Partitioning::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn routing_is_crc32_of_the_key_text() {
        // CRC-32 (IEEE) of "123456789" is the standard check value 0xCBF43926.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        let partitioning = Partitioning::over(12);
        assert_eq!(
            partitioning.partition_of_key(b"123456789"),
            (0xCBF4_3926u32 % 12) as i32
        );
        let id: CustomerId = "0199b000-0000-7000-8000-000000000002".parse().unwrap();
        assert_eq!(
            partitioning.partition_of(id),
            partitioning.partition_of_key(b"0199b000-0000-7000-8000-000000000002")
        );
    }

    proptest! {
        #[test]
        fn a_customer_stays_on_one_partition_below_the_count(bytes in any::<[u8; 16]>(), count in 1..500i32) {
            let id = CustomerId::from_bytes(bytes);
            let partitioning = Partitioning::over(count);
            let partition = partitioning.partition_of(id);
            prop_assert!((0..count).contains(&partition));
            prop_assert_eq!(partition, partitioning.partition_of(id));
        }
    }
}
