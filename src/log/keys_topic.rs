//! The keys topic's administration: created beside the event topic, compacted (a destroyed key
//! must leave the brokers' disks within a bound, which deletion by retention would not give and
//! which would also delete live keys), replicated as the event topic is, with one partition
//! (see `keys.rs`, which routes its records).

use super::keys::keys_topic;
use super::topic::{
    admin_client, check_durability, create_replicated, describe, durability_of, topic_configs,
    unreachable, wait_for_partitions, TopicError, TopicLayout, DURABLE_CLUSTER,
};
use super::EventLogSettings;

/// The keys topic's settings. Compaction never touches a segment still being written, so a
/// destroyed key's record can outlive its tombstone by `segment.ms` (the segment rolls) plus
/// `max.compaction.lag.ms` (the cleaner must then compact it) plus one cleaner pass: about two
/// hours. Tombstones themselves go after `delete.retention.ms` (the broker's default, a day).
pub const KEYS_TOPIC_CONFIGS: [(&str, &str); 3] = [
    ("cleanup.policy", "compact"),
    ("segment.ms", "3600000"),
    ("max.compaction.lag.ms", "3600000"),
];

/// Makes sure the keys topic of `settings.topic` exists and keeps keys as it must, creating it
/// when missing, with one partition.
///
/// # Errors
/// [`TopicError`] when the cluster cannot be reached, refuses, or the topic exists with settings
/// that could lose a key ([`TopicError::KeysNotCompacted`], [`TopicError::NotDurable`]) or too
/// few partitions.
pub async fn ensure_keys_topic(
    settings: &EventLogSettings,
    layout: &TopicLayout,
) -> Result<(), TopicError> {
    keys_topic_checked(settings, layout, true).await
}

/// The keys topic, which must exist: for the tools, which only read it.
///
/// # Errors
/// [`TopicError::Missing`] when it does not exist, and the errors of [`ensure_keys_topic`].
pub async fn existing_keys_topic(
    settings: &EventLogSettings,
    layout: &TopicLayout,
) -> Result<(), TopicError> {
    keys_topic_checked(settings, layout, false).await
}

async fn keys_topic_checked(
    settings: &EventLogSettings,
    layout: &TopicLayout,
    create_when_missing: bool,
) -> Result<(), TopicError> {
    let topic = keys_topic(&settings.topic);
    let admin = admin_client(settings)?;
    let mut found = describe(&admin, &topic).map_err(unreachable(settings))?;
    if found.partitions.is_empty() {
        if !create_when_missing {
            return Err(TopicError::Missing(topic));
        }
        create_replicated(
            &admin,
            settings,
            &topic,
            1,
            found.brokers,
            &KEYS_TOPIC_CONFIGS,
        )
        .await?;
        found = wait_for_partitions(&admin, &topic)
            .await
            .map_err(unreachable(settings))?;
    }
    let wanted = layout.partitioning.count();
    let partitions = i32::try_from(found.partitions.len()).unwrap_or(i32::MAX);
    // One partition, or (made before keys topics had one) at least as many as its records are
    // routed over, the event topic's count.
    if partitions != 1 && partitions < wanted {
        return Err(TopicError::Refused {
            action: "use",
            topic,
            reason: format!(
                "it has {partitions} partitions and its records are routed over one or over the \
                 event topic's {wanted}; delete it only if it holds no key, or give it {wanted} \
                 partitions"
            ),
        });
    }
    let configs = topic_configs(&admin, &topic).await?;
    let policy = configs.get("cleanup.policy").cloned().unwrap_or_default();
    if policy != "compact" {
        return Err(TopicError::KeysNotCompacted { topic, policy });
    }
    let (durability, unclean) = durability_of(&found, &configs);
    if durability.brokers < DURABLE_CLUSTER {
        // The event topic's check has said it once: one broker keeps no redundancy.
        return Ok(());
    }
    check_durability(&topic, durability, unclean, settings)
}
