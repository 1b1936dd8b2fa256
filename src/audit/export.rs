//! `customer-registry export`: the registry as it stood at a moment (or at a log position), from
//! the log alone, as JSON Lines or CSV.

use super::{opener_for, AuditError, ScratchReadModel};
use crate::config::{ExportFormat, ExportSettings};
use crate::domain::{Customer, TextField};
use crate::log::{existing_topic, reader, replay, replay_ends, LogPosition};
use crate::projection::BatchApplier;
use rdkafka::message::Message;
use std::io::Write;
use std::process::ExitCode;

/// Customers read from the scratch read model at once.
const EXPORT_BATCH: usize = 1_000;

/// Writes every customer the log holds up to the bound, in answer order.
///
/// # Errors
/// [`AuditError`] when the log cannot be read or the output written.
pub async fn export(settings: &ExportSettings) -> Result<ExitCode, AuditError> {
    let until = settings
        .until
        .as_deref()
        .map(LogPosition::parse)
        .transpose()
        .map_err(|reason| AuditError::Usage(format!("--until: {reason}")))?;
    let as_of = settings.as_of;
    let event_log = settings.tool.event_log.settings();
    let layout = existing_topic(&event_log).await?;
    let opener = opener_for(&settings.tool, &layout).await?;
    let format = settings.format;
    let output = settings.output.clone();
    let scratch_dir = std::env::temp_dir().join(format!(
        "customer-registry-export-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let (events_read, customers) = tokio::task::spawn_blocking(move || {
        let mut scratch = ScratchReadModel::create(scratch_dir)?;
        let ends = replay_ends(&reader(&event_log)?, &event_log.topic, until.as_ref())?;
        let mut applier = BatchApplier::new(&mut scratch.writer, opener);
        let events_read = replay::<AuditError>(&event_log, &ends, |message| {
            let written_at = message.timestamp().to_millis();
            let after_bound = as_of.is_some_and(|bound| {
                written_at.is_some_and(|millis| millis > bound.timestamp_millis())
            });
            if after_bound {
                return Ok(());
            }
            Ok(applier.push(message.partition(), message.offset(), message.payload())?)
        })?;
        applier.finish()?;
        let mut sink: Box<dyn Write> = match &output {
            Some(path) => Box::new(
                std::fs::File::create(path)
                    .map_err(AuditError::io(format!("creating {}", path.display())))?,
            ),
            None => Box::new(std::io::stdout().lock()),
        };
        let written = write_customers(
            &mut sink,
            format,
            scratch.model.customers_in_order(EXPORT_BATCH),
        )?;
        sink.flush().map_err(AuditError::io("writing the export"))?;
        Ok::<_, AuditError>((events_read, written))
    })
    .await
    .map_err(|_| AuditError::Usage("the export task was cancelled".into()))??;
    if settings.tool.json {
        eprintln!(
            "{}",
            serde_json::json!({"eventsRead": events_read, "customers": customers})
        );
    } else {
        eprintln!("exported {customers} customers from {events_read} events");
    }
    Ok(ExitCode::SUCCESS)
}

fn write_customers(
    sink: &mut dyn Write,
    format: ExportFormat,
    customers: impl Iterator<Item = Result<Customer, crate::read_model::ReadModelError>>,
) -> Result<usize, AuditError> {
    let write_error = AuditError::io("writing the export");
    let mut written = 0;
    match format {
        ExportFormat::Jsonl => {
            for customer in customers {
                let line = serde_json::to_string(&customer?).expect("a customer serialises");
                if let Err(error) = writeln!(sink, "{line}") {
                    return Err(write_error(error));
                }
                written += 1;
            }
        }
        ExportFormat::Csv => {
            let mut csv = csv::Writer::from_writer(sink);
            let mut header = vec!["id", "code", "accountId"];
            header.extend(TextField::ALL.map(TextField::name));
            header.extend(["createdAt", "updatedAt", "version"]);
            let csv_error = |error: csv::Error| AuditError::Usage(format!("writing CSV: {error}"));
            csv.write_record(&header).map_err(csv_error)?;
            for customer in customers {
                let customer = customer?;
                let mut row = vec![
                    customer.id.to_string(),
                    customer.code().to_string(),
                    customer.details.account_id.to_string(),
                ];
                row.extend(
                    TextField::ALL
                        .map(|field| customer.details.text(field).unwrap_or_default().to_owned()),
                );
                for time in [customer.created_at, customer.updated_at] {
                    row.push(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                }
                row.push(customer.version.to_string());
                csv.write_record(&row).map_err(csv_error)?;
                written += 1;
            }
            csv.flush().map_err(write_error)?;
        }
    }
    Ok(written)
}
