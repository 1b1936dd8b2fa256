//! `customer-registry events tail`: the records of the topic as JSON Lines, with partition, offset
//! and timestamp, exactly as a downstream consumer receives them.

use super::{keys_for, AuditError};
use crate::config::TailSettings;
use crate::crypto::Encryption;
use crate::domain::open_published;
use crate::log::{client_config, existing_topic, KafkaLogs, LogReadError, PublishedRecord};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Prints records as they arrive (from the end, or `--from-beginning`) until SIGINT or SIGTERM.
///
/// # Errors
/// [`AuditError`] when the topic cannot be read.
pub async fn tail(settings: &TailSettings) -> Result<ExitCode, AuditError> {
    let event_log = &settings.event_log.settings();
    // Without a KEK file, sealed events are printed as published.
    let opener = match &settings.kek_file {
        Some(file) => {
            let layout = existing_topic(event_log).await?;
            keys_for(Some(file), event_log, &layout).await?.opener()
        }
        None => Encryption::Off.opener(),
    };
    let consumer: StreamConsumer<KafkaLogs> = client_config(&event_log.kafka_bootstrap)
        .set("group.id", "customer-registry.tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .create_with_context(KafkaLogs)?;
    let metadata = consumer.fetch_metadata(Some(&event_log.topic), Duration::from_secs(10))?;
    // The end is resolved to an offset now, so "after it started" means after this line.
    let mut assignment = TopicPartitionList::new();
    for topic in metadata.topics() {
        for partition in topic.partitions() {
            let (low, high) = consumer.fetch_watermarks(
                &event_log.topic,
                partition.id(),
                Duration::from_secs(10),
            )?;
            let start = if settings.from_beginning { low } else { high };
            assignment.add_partition_offset(
                &event_log.topic,
                partition.id(),
                Offset::Offset(start),
            )?;
        }
    }
    if assignment.count() == 0 {
        return Err(LogReadError::NoTopic(event_log.topic.clone()).into());
    }
    consumer.assign(&assignment)?;
    eprintln!("following {} (Ctrl-C to stop)", event_log.topic);
    let stop = crate::shutdown::stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(ExitCode::SUCCESS),
            received = consumer.recv() => {
                let message = match received {
                    Ok(message) => message,
                    // librdkafka reconnects by itself; say so and keep following.
                    Err(error) => {
                        eprintln!("warning: {error}; retrying");
                        continue;
                    }
                };
                let mut record = PublishedRecord::of(&message);
                open_published(&mut record.event, opener.as_ref());
                if settings.wants(&record.event) {
                    let line = serde_json::to_string(&record).expect("a record serialises");
                    let mut stdout = std::io::stdout().lock();
                    // A closed pipe (`| head`) ends the tail quietly.
                    if writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_err() {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
        }
    }
}
