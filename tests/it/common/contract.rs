//! The public event contract in `events/`: its files, and its JSON Schemas as validators.

use serde_json::Value;
use std::path::Path;

/// The file at `path` in the repository, parsed as JSON; fails the test, naming the file, when it
/// cannot be read or parsed.
pub fn load(path: &str) -> Value {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The published v1 schema of `CustomerCreated`, `CustomerUpdated` or `CustomerDeleted` (by the
/// word after `Customer`, lower case), with its formats checked.
pub fn schema(kind: &str) -> jsonschema::Validator {
    schema_file(&format!("customer-{kind}.v1"))
}

/// The published schema `events/<name>.schema.json`, with its formats checked.
pub fn schema_file(name: &str) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&load(&format!("events/{name}.schema.json")))
        .expect("the published schema is a valid JSON Schema")
}

/// Fails the test, listing every problem, unless `event` validates against `validator`.
pub fn assert_valid(validator: &jsonschema::Validator, event: &Value) {
    let problems: Vec<String> = validator
        .iter_errors(event)
        .map(|error| format!("{} at {}", error, error.instance_path))
        .collect();
    assert!(
        problems.is_empty(),
        "{event} breaks the schema: {problems:#?}"
    );
}
