//! Fuzz targets for the parsers at the edge: the JSON body, the XML body, the query string and
//! the `X-Min-Log-Position` header. Each target replays every file of its corpus
//! (`fuzz/corpus/<target>/`, kept in the repo: the hostile cases and whatever a run
//! found worth keeping), then runs `FUZZ_CASES` (default 256) inputs made by mutating corpus
//! entries byte by byte and splicing them together. CI runs a larger count.
//!
//! What every input must get: an answer, never a panic; a refusal that renders as a 4xx problem
//! document; and for positions, a value that reads back the same after printing.

use super::negotiation::Format;
use super::{body, query_string, ApiError};
use crate::domain::{Customer, CustomerDetails};
use crate::log::LogPosition;
use crate::read_model::{parse_page, CustomerQuery};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::PathBuf;

/// The files of one target's corpus.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("the corpus {}: {error}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|file| std::fs::read(file).expect("a corpus file"))
        .collect();
    assert!(!seeds.is_empty(), "the corpus {} is empty", dir.display());
    seeds
}

/// How many mutated inputs each target runs.
fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

/// One edit of an input.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, u8),
    Remove(usize),
    Replace(usize, u8),
    /// Another seed's bytes from one point on, spliced in at a point of this one.
    Splice(usize, usize, usize),
}

/// Bytes that matter to these parsers, more often than chance would pick them.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        proptest::sample::select(
            b"{}[]<>\"'&;=%:,/\\!?-+. \t\r\n0123456789aZ\xc3\xa9\xff\x00".to_vec()
        ),
    ]
}

/// Inputs made from `seeds` by a few mutations.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    let mutation = prop_oneof![
        (any::<usize>(), interesting_byte()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), interesting_byte()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(seed, from, at)| Mutation::Splice(seed, from, at)),
    ];
    (0..count, proptest::collection::vec(mutation, 0..8)).prop_map(move |(seed, mutations)| {
        let mut input = seeds[seed].clone();
        for mutation in mutations {
            let len = input.len();
            match mutation {
                Mutation::Insert(at, byte) => input.insert(at % (len + 1), byte),
                Mutation::Remove(at) if len > 0 => {
                    input.remove(at % len);
                }
                Mutation::Replace(at, byte) if len > 0 => input[at % len] = byte,
                Mutation::Splice(other, from, at) => {
                    let other = &seeds[other % count];
                    let tail = &other[from % (other.len() + 1)..];
                    let at = at % (len + 1);
                    input.splice(at..at, tail.iter().copied());
                }
                _ => {}
            }
        }
        input
    })
}

/// Runs `check` on every corpus file of `target`, then on mutated inputs.
fn fuzz(target: &str, check: fn(&[u8])) {
    let seeds = corpus(target);
    for seed in &seeds {
        check(seed);
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&mutated(seeds), |input| {
            check(&input);
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("fuzz target {target}: {failure}"));
}

/// A refusal must render as a 4xx problem document.
fn assert_refusal(error: ApiError, input: &[u8]) {
    let response = error.into_response(Format::Json);
    let status = response.status();
    assert!(
        status.is_client_error(),
        "{status} for {:?}",
        String::from_utf8_lossy(input)
    );
}

fn check_body(format: Format, input: &[u8]) {
    let parsed = body::customer_fields(format, input)
        .and_then(|fields| CustomerDetails::parse(fields).map_err(ApiError::from));
    match parsed {
        Ok(details) => {
            // What passed the rules serialises in both formats.
            let customer = Customer::register(details);
            serde_json::to_vec(&customer).expect("a customer serialises");
            super::xml::customer_document(&customer);
        }
        Err(error) => assert_refusal(error, input),
    }
}

fn check_query(input: &[u8]) {
    // A query string reaches the handlers as text.
    let text = String::from_utf8_lossy(input);
    match query_string::decode(&text) {
        Ok(pairs) => {
            if let Err(errors) = CustomerQuery::parse(&pairs) {
                assert_refusal(errors.into(), input);
            }
            if let Err(errors) = parse_page(&pairs) {
                assert_refusal(errors.into(), input);
            }
        }
        Err(error) => assert_refusal(error, input),
    }
}

fn check_position(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    if let Ok(position) = LogPosition::parse(&text) {
        let printed = position.to_string();
        assert_eq!(
            LogPosition::parse(&printed).as_ref(),
            Ok(&position),
            "{text:?} printed as {printed:?}"
        );
    }
}

#[test]
fn json_bodies() {
    fuzz("json", |input| check_body(Format::Json, input));
}

#[test]
fn xml_bodies() {
    fuzz("xml", |input| check_body(Format::Xml, input));
}

#[test]
fn query_strings() {
    fuzz("query", check_query);
}

#[test]
fn position_headers() {
    fuzz("position", check_position);
}
