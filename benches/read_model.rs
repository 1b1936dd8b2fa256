//! Micro-benchmarks of the read model's hot paths: search folding, posting-list merge and
//! intersection, the planner on a read model of 200,000 customers flushed to sled, and the write
//! path (applying in memory, flushing to sled). `cargo bench --bench read_model`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use customer_registry::crypto::data_key::DataKey;
use customer_registry::domain::{
    AccountId, Customer, CustomerCreated, CustomerDetails, CustomerId, OpenError, Opener,
    RegistryEvent, SealedPersonal, TextField,
};
use customer_registry::read_model::fold::search_form;
use customer_registry::read_model::{
    open, CustomerQuery, LogRecord, ReadModelWriter, RecordChange, Work, MAX_WORK,
};
use roaring::RoaringBitmap;
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

fn records(range: std::ops::Range<u32>) -> Vec<LogRecord> {
    range
        .map(|n| LogRecord {
            partition: 0,
            offset: i64::from(n),
            change: RecordChange::Event(Box::new(RegistryEvent::CustomerCreated(
                CustomerCreated::new(customer(n)),
            ))),
        })
        .collect()
}

fn load(writer: &mut ReadModelWriter, customers: u32) {
    for batch in records(0..customers).chunks(10_000) {
        writer.apply_batch(batch).expect("applied");
    }
    writer.flush_all().expect("flushed");
}

fn fold(c: &mut Criterion) {
    c.bench_function("search_form fold", |b| {
        b.iter(|| search_form(TextField::LastName, black_box("Søndergaard-Müller Nguyễn")))
    });
    let event = RegistryEvent::CustomerCreated(CustomerCreated::new(customer(7))).encode();
    c.bench_function("decode an event from the log", |b| {
        b.iter(|| RegistryEvent::decode(black_box(&event)).expect("an event"))
    });
    let key = OneKey(DataKey::mint().expect("a key"));
    let sealed = RegistryEvent::CustomerCreated(CustomerCreated::new(customer(7)))
        .encode_sealed(|plaintext, context| {
            key.0.seal(plaintext, context).map(|sealed| SealedPersonal {
                key_id: "0123456789abcdef".into(),
                sealed,
            })
        })
        .expect("sealed");
    c.bench_function("decode a sealed event from the log", |b| {
        b.iter(|| RegistryEvent::decode_with(black_box(&sealed), &key).expect("an event"))
    });
}

/// Opens every sealed event with one data key, as a key store would once it found the key.
struct OneKey(DataKey);

impl Opener for OneKey {
    fn open(
        &self,
        _: CustomerId,
        personal: &SealedPersonal,
        context: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, OpenError> {
        self.0
            .open(&personal.sealed, context)
            .map_err(|_| OpenError::Inauthentic)
    }
}

/// What a find does with postings: a prefix is the union of its terms' sets, filters intersect.
fn postings(c: &mut Criterion) {
    // A spread-out set of `len` ordinals out of 1M, seeded by `step`.
    let spread = |len: u32, step: u32| -> RoaringBitmap {
        (0..len).map(|n| (n * step) % 1_000_000).collect()
    };
    let terms: Vec<RoaringBitmap> = (0..200).map(|n| spread(50, 7_919 + n * 2)).collect();
    c.bench_function("postings: union of 200 terms of 50", |b| {
        b.iter(|| {
            let mut union = RoaringBitmap::new();
            for term in black_box(&terms) {
                union |= term;
            }
            union
        })
    });
    let account = spread(300_000, 3);
    let prefix = spread(3_000, 331);
    let state = spread(100_000, 10);
    c.bench_function("postings: account 300k ∩ prefix 3k ∩ state 100k", |b| {
        b.iter(|| (black_box(&account) & black_box(&prefix)) & black_box(&state))
    });
    c.bench_function("postings: account 300k ∩ state 100k, cardinality", |b| {
        b.iter(|| black_box(&account).intersection_len(black_box(&state)))
    });
}

fn planner(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (model, mut writer) = open(dir.path()).expect("a read model");
    load(&mut writer, 200_000);
    let query = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        CustomerQuery::parse(&pairs).expect("a valid query")
    };
    c.bench_function("planner: parse a query", |b| {
        b.iter(|| {
            query(black_box(&[
                ("accountId", "1"),
                ("lastName", "Müll"),
                ("limit", "50"),
            ]))
        })
    });
    let cases = [
        ("no filter", query(&[])),
        ("no filter, offset 150,000", query(&[("offset", "150000")])),
        ("account only (largest)", query(&[("accountId", "1")])),
        (
            "email in account",
            query(&[("accountId", "3"), ("email", "customer1")]),
        ),
        (
            "lastName prefix in largest account",
            query(&[("accountId", "1"), ("lastName", "mul")]),
        ),
        (
            "city + state in largest account",
            query(&[("accountId", "1"), ("city", "new"), ("state", "NY")]),
        ),
        (
            "state in largest account, offset 20,000",
            query(&[("accountId", "1"), ("state", "NY"), ("offset", "20000")]),
        ),
    ];
    // Gets of customers spread over the registry, ten at each of 100 places in answer order.
    let ids: Vec<_> = (0..100)
        .flat_map(|place| {
            let page = query(&[("offset", &(place * 1_999).to_string()), ("limit", "10")]);
            let found = model
                .find(&page, &Work::limited_to(MAX_WORK))
                .expect("a page");
            found.customers.into_iter().map(|customer| customer.id)
        })
        .collect();
    let mut next = ids.iter().cycle();
    c.bench_function("planner: get by id", |b| {
        b.iter(|| model.get(*next.next().expect("endless")).expect("a get"))
    });
    for (name, parsed) in cases {
        c.bench_function(&format!("planner: {name}"), |b| {
            b.iter(|| {
                model
                    .find(black_box(&parsed), &Work::limited_to(MAX_WORK))
                    .expect("a page")
            })
        });
    }
}

/// The write path: applying in memory (what a create waits for) and flushing to sled (what the
/// flusher does in the background).
fn storage(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage");
    group.sample_size(10);
    let dir = tempfile::tempdir().expect("a temp dir");
    let (_model, mut writer) = open(dir.path()).expect("a read model");
    let mut next = 0u32;
    group.bench_function("apply a batch of 1,000 customers", |b| {
        b.iter_batched(
            || {
                next += 1_000;
                records(next - 1_000..next)
            },
            |records| writer.apply_batch(&records).expect("applied"),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("apply and flush 50,000 customers", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("a temp dir");
                let opened = open(dir.path()).expect("a read model");
                (dir, opened, records(0..50_000))
            },
            |(_dir, (_model, mut writer), records)| {
                for batch in records.chunks(10_000) {
                    writer.apply_batch(batch).expect("applied");
                }
                writer.flush_all().expect("flushed");
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, fold, postings, planner, storage);
criterion_main!(benches);
