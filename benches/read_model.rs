//! Micro-benchmarks of the read model's hot paths: index key encode/decode, search folding, the
//! query planner on a sled read model of 20,000 customers, and the write path against sled
//! alone. `cargo bench --bench read_model`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use customer_registry::domain::{AccountId, Customer, CustomerCreated, CustomerDetails, TextField};
use customer_registry::read_model::keys::{customer_id_of, order_key, order_key_of, text_key};
use customer_registry::read_model::search::search_form;
use customer_registry::read_model::{CustomerQuery, LogRecord, ReadModel, RecordChange};
use std::hint::black_box;

/// The allocator the service runs with (see `src/main.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const LAST_NAMES: [&str; 8] = [
    "Müller",
    "Smith",
    "Smithers",
    "Hamilton",
    "Hamel",
    "Nguyễn",
    "Søndergaard",
    "Lee",
];

fn customer(n: u32) -> Customer {
    let account = if n % 4 == 0 { 1 } else { 2 + i64::from(n % 50) };
    let mut details =
        CustomerDetails::for_account(AccountId::parse(account).expect("a valid account"));
    let set = |details: &mut CustomerDetails, field, value: &str| {
        details.set_text(field, value).expect("valid")
    };
    set(&mut details, TextField::FirstName, "José");
    set(
        &mut details,
        TextField::LastName,
        LAST_NAMES[n as usize % LAST_NAMES.len()],
    );
    set(
        &mut details,
        TextField::Email,
        &format!("customer{n}@example.com"),
    );
    set(
        &mut details,
        TextField::City,
        if n % 3 == 0 {
            "New York"
        } else {
            "Saint-Étienne"
        },
    );
    set(&mut details, TextField::State, "NY");
    Customer::register(details)
}

fn keys(c: &mut Criterion) {
    let sample = customer(7);
    let account = Some(sample.details.account_id);
    c.bench_function("order_key encode", |b| {
        b.iter(|| order_key(black_box(&sample)))
    });
    let key = text_key(TextField::LastName, account, "muller", &sample);
    c.bench_function("text_key encode", |b| {
        b.iter(|| {
            text_key(
                TextField::LastName,
                black_box(account),
                black_box("muller"),
                &sample,
            )
        })
    });
    c.bench_function("index key decode", |b| {
        b.iter(|| {
            (
                order_key_of(black_box(&key)),
                customer_id_of(black_box(&key)),
            )
        })
    });
    c.bench_function("search_form fold", |b| {
        b.iter(|| search_form(TextField::LastName, black_box("Søndergaard-Müller Nguyễn")))
    });
}

fn planner(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let model = ReadModel::open(dir.path()).expect("a read model");
    let records: Vec<LogRecord> = (0..20_000)
        .map(|n| LogRecord {
            partition: 0,
            offset: i64::from(n),
            change: RecordChange::Created(Box::new(CustomerCreated::new(customer(n)))),
        })
        .collect();
    for batch in records.chunks(1_000) {
        model.apply_batch(batch).expect("applied");
    }
    let query = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        CustomerQuery::parse(&pairs).expect("a valid query")
    };
    let cases = [
        ("parse", None),
        ("account only", Some(query(&[("accountId", "1")]))),
        (
            "email in account",
            Some(query(&[("accountId", "3"), ("email", "customer1")])),
        ),
        (
            "lastName prefix in largest account",
            Some(query(&[("accountId", "1"), ("lastName", "mul")])),
        ),
        (
            "city + state in largest account",
            Some(query(&[
                ("accountId", "1"),
                ("city", "new"),
                ("state", "NY"),
            ])),
        ),
    ];
    for (name, parsed) in cases {
        match parsed {
            None => c.bench_function("planner: parse a query", |b| {
                b.iter(|| {
                    query(black_box(&[
                        ("accountId", "1"),
                        ("lastName", "Müll"),
                        ("limit", "50"),
                    ]))
                })
            }),
            Some(parsed) => c.bench_function(&format!("planner: {name}"), |b| {
                b.iter(|| model.find(black_box(&parsed)).expect("a page"))
            }),
        };
    }
}

/// The write path's cost per customer against sled's own cost per key: the evidence for where
/// projection throughput ends (docs/performance.md).
fn storage(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage");
    group.sample_size(10);
    let dir = tempfile::tempdir().expect("a temp dir");
    let model = ReadModel::open(dir.path()).expect("a read model");
    let mut offset = 0i64;
    group.bench_function("apply a batch of 1,000 customers", |b| {
        b.iter_batched(
            || {
                (0..1_000u32)
                    .map(|n| {
                        offset += 1;
                        LogRecord {
                            partition: 0,
                            offset,
                            change: RecordChange::Created(Box::new(CustomerCreated::new(
                                customer(n),
                            ))),
                        }
                    })
                    .collect::<Vec<_>>()
            },
            |records| model.apply_batch(&records).expect("applied"),
            BatchSize::PerIteration,
        )
    });
    let bare = tempfile::tempdir().expect("a temp dir");
    let tree = sled::open(bare.path())
        .and_then(|db| db.open_tree("keys"))
        .expect("a sled tree");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    group.bench_function("sled alone: insert 1,000 random 40-byte keys", |b| {
        b.iter_batched(
            || {
                let mut batch = sled::Batch::default();
                for _ in 0..1_000 {
                    let mut key = [0u8; 40];
                    for chunk in key.chunks_mut(8) {
                        // xorshift64: cheap, deterministic, spread over the whole key space.
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        chunk.copy_from_slice(&state.to_be_bytes());
                    }
                    batch.insert(&key[..], &[]);
                }
                batch
            },
            |batch| tree.apply_batch(batch).expect("inserted"),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let json = serde_json::to_vec(&customer(3)).expect("a customer's JSON");
    c.bench_function("decode a stored customer", |b| {
        b.iter(|| Customer::from_trusted_json(black_box(&json)).expect("a customer"))
    });
    c.bench_function("decode a customer, checking every field", |b| {
        b.iter(|| serde_json::from_slice::<Customer>(black_box(&json)).expect("a customer"))
    });
}

criterion_group!(benches, keys, planner, storage);
criterion_main!(benches);
