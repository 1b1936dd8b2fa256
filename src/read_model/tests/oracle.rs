//! The oracle: random histories of creates, replacements, removals, flushes and crashes, then
//! random finds, each answered by the read model exactly as by a naive filter over the customers
//! a plain map holds.

use super::*;

/// Small pools, so filters hit, miss, tie and fold into each other often.
const FIRST_NAMES: &[&str] = &[
    "José",
    "Jose",
    "JOSÉ",
    "Jo",
    "Joséphine",
    "Ann",
    "Anne",
    "Ὀδυσσεύς",
    "Øystein",
];
const LAST_NAMES: &[&str] = &[
    "Müller",
    "Muller",
    "Mull",
    "Hamilton",
    "Hamel",
    "hamilton",
    "Yılmaz",
    "Straße",
    "O’Brien",
];
const CITIES: &[&str] = &[
    "New York",
    "Newark",
    "Paris",
    "Saint-Étienne",
    "Århus",
    "Łódź",
];
const STATES: &[&str] = &["NY", "ny", "CA", "75", "N"];
const COUNTRIES: &[&str] = &["US", "FR", "DK"];
const PHONES: &[&str] = &[
    "212-555-0101",
    "(212) 555-0199",
    "+33 1 23 45 67 89",
    "2125",
];
const EMAILS: &[&str] = &["ann@example.com", "Ann.B@example.com", "jo@müller.de"];
const ZIPS: &[&str] = &["10001", "10001-1234", "75007", "SW1A 1AA"];

/// Every value a filter may take: each pool value, and prefixes of every length of it.
fn needles(field: TextField) -> Vec<String> {
    let pool: &[&str] = match field {
        TextField::FirstName => FIRST_NAMES,
        TextField::LastName => LAST_NAMES,
        TextField::City => CITIES,
        TextField::State => STATES,
        TextField::CountryCode => COUNTRIES,
        TextField::Phone => PHONES,
        TextField::Email => EMAILS,
        TextField::ZipCode => ZIPS,
        TextField::OrganizationName | TextField::Street => &[],
    };
    let mut needles: Vec<String> = Vec::new();
    for value in pool {
        for (end, _) in value.char_indices().skip(1).chain([(value.len(), ' ')]) {
            let prefix = &value[..end];
            if field.parse_filter(prefix).is_ok() && !needles.iter().any(|n| n == prefix) {
                needles.push(prefix.to_owned());
            }
        }
    }
    needles.extend(["zz".to_owned(), "o'b".to_owned(), "strasse".to_owned()]);
    needles.retain(|needle| field.parse_filter(needle).is_ok());
    needles
}

fn maybe(pool: &'static [&'static str]) -> impl Strategy<Value = Option<&'static str>> {
    proptest::option::of(proptest::sample::select(pool))
}

/// Codes creates give (few, so that creates of one code meet, and one differs by case only).
const CODES: &[&str] = &["A-1", "B-2", "c-3", "a-1"];

fn details() -> impl Strategy<Value = CustomerDetails> {
    (
        (1i64..=3, maybe(CODES)),
        (
            maybe(FIRST_NAMES),
            maybe(LAST_NAMES),
            maybe(CITIES),
            maybe(STATES),
        ),
        (maybe(COUNTRIES), maybe(PHONES), maybe(EMAILS), maybe(ZIPS)),
    )
        .prop_map(
            |((account, code), (first, last, city, state), (country, phone, email, zip))| {
                let mut details = CustomerDetails::for_account(AccountId::parse(account).unwrap());
                details.code = code.map(|code| CustomerCode::parse(code).unwrap());
                for (field, value) in [
                    (TextField::FirstName, first),
                    (TextField::LastName, last),
                    (TextField::City, city),
                    (TextField::State, state),
                    (TextField::CountryCode, country),
                    (TextField::Phone, phone),
                    (TextField::Email, email),
                    (TextField::ZipCode, zip),
                ] {
                    if let Some(value) = value {
                        details.set_text(field, value).unwrap();
                    }
                }
                details
            },
        )
}

#[derive(Debug, Clone)]
enum Step {
    /// Create a customer (few distinct times, so ties are common and ids break them).
    Create(CustomerDetails, i64),
    /// Apply again the event of an earlier step (a duplicate, or refused again).
    Repeat(usize),
    /// Update the nth customer created so far to these fields (its account stays); with
    /// `true`, naming the version it has rather than the next (a lost race).
    Update(usize, CustomerDetails, bool),
    /// Delete the nth customer created so far; `true` as for `Update`.
    Delete(usize, bool),
    /// Flush everything to the store.
    Flush,
    /// Start a flush and go on while it runs.
    FlushInBackground,
    /// Lose what is not flushed, reopen, and apply the lost steps again.
    Crash,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        6 => (details(), 0i64..4).prop_map(|(details, millis)| Step::Create(details, millis)),
        1 => any::<usize>().prop_map(Step::Repeat),
        3 => (any::<usize>(), details(), proptest::bool::weighted(0.2))
            .prop_map(|(n, details, stale)| Step::Update(n, details, stale)),
        1 => (any::<usize>(), proptest::bool::weighted(0.2))
            .prop_map(|(n, stale)| Step::Delete(n, stale)),
        1 => Just(Step::Flush),
        1 => Just(Step::FlushInBackground),
        1 => Just(Step::Crash),
    ];
    proptest::collection::vec(step, 0..60)
}

/// Query-string pairs, and the accounts an API key confines the find to.
fn queries() -> impl Strategy<Value = (Vec<(String, String)>, Option<Vec<AccountId>>)> {
    let fields = [
        TextField::FirstName,
        TextField::LastName,
        TextField::City,
        TextField::State,
        TextField::CountryCode,
        TextField::Phone,
        TextField::Email,
        TextField::ZipCode,
    ];
    let filters = proptest::sample::subsequence(fields.to_vec(), 0..=3).prop_flat_map(|chosen| {
        chosen
            .into_iter()
            .map(|field| {
                proptest::sample::select(needles(field))
                    .prop_map(move |needle| (field.name().to_owned(), needle))
            })
            .collect::<Vec<_>>()
    });
    // Codes given at create, and ids (the code of a customer created without one).
    let codes: Vec<String> = CODES
        .iter()
        .map(|code| code.to_string())
        .chain((0u8..4).map(|at| CustomerId::from_bytes([at; 16]).to_string()))
        .collect();
    (
        (
            filters,
            proptest::option::of(proptest::sample::select(codes)),
        ),
        proptest::option::of(1u32..=3),
        0usize..8,
        1usize..8,
        // The accounts an API key confines the find to.
        proptest::option::of(proptest::collection::btree_set(1i64..=4, 1..=3)),
    )
        .prop_map(|((mut pairs, code), account, offset, limit, scope)| {
            if let Some(code) = code {
                pairs.push(("code".into(), code));
            }
            if let Some(account) = account {
                pairs.push(("accountId".into(), account.to_string()));
            }
            pairs.push(("offset".into(), offset.to_string()));
            pairs.push(("limit".into(), limit.to_string()));
            let scope = scope.map(|accounts| {
                accounts
                    .into_iter()
                    .map(|id| AccountId::parse(id).unwrap())
                    .collect()
            });
            (pairs, scope)
        })
}

/// What the model should hold: every event applied so far, the customers created, and each
/// customer as it stands (with whether it was deleted).
#[derive(Debug, Clone, Default)]
struct Oracle {
    events: Vec<RegistryEvent>,
    created: Vec<CustomerId>,
    customers: BTreeMap<CustomerId, (Customer, bool)>,
}

/// The changes that take `from` to `to`'s text fields.
fn changes_between(from: &CustomerDetails, to: &CustomerDetails) -> Vec<FieldChange> {
    TextField::ALL
        .into_iter()
        .filter(|field| from.text(*field) != to.text(*field))
        .map(|field| FieldChange {
            field,
            value: to.text(field).map(str::to_owned),
        })
        .collect()
}

/// Applies `step` (the `at`th) to the model and to the oracle. Ids and times derive from
/// the step, so a replay after a crash writes the same events.
fn apply(step: &Step, at: usize, writer: &mut ReadModelWriter, oracle: &mut Oracle) {
    let offset = at as i64;
    let event_id = uuid::Uuid::from_u128(0xee00_0000_0000_0000_0000_0000_0000_0000 | at as u128);
    let occurred_at = DateTime::from_timestamp_millis(1_800_000_000_000 + offset).unwrap();
    let pick = |n: &usize, oracle: &Oracle| oracle.created[n % oracle.created.len()];
    match step {
        Step::Create(details, millis) => {
            let mut customer = Customer::register(details.clone());
            customer.created_at =
                DateTime::from_timestamp_millis(1_700_000_000_000 + millis).unwrap();
            customer.updated_at = customer.created_at;
            customer.id = match &details.code {
                // A code names its customer: a second create of it in the account is a
                // conflict.
                Some(code) => code.customer_id(details.account_id),
                None => CustomerId::from_bytes([at as u8; 16]),
            };
            let event = CustomerCreated::with_event_id(event_id, customer.clone());
            let outcomes = writer.apply_batch(&[created(&event, 0, offset)]).unwrap();
            let taken = oracle.customers.contains_key(&customer.id);
            let expected = if taken {
                ApplyOutcome::Conflict
            } else {
                ApplyOutcome::Applied
            };
            assert_eq!(outcomes, vec![expected]);
            oracle.events.push(RegistryEvent::CustomerCreated(event));
            if taken {
                return;
            }
            oracle.created.push(customer.id);
            oracle.customers.insert(customer.id, (customer, false));
        }
        Step::Repeat(n) if !oracle.events.is_empty() => {
            let event = oracle.events[n % oracle.events.len()].clone();
            let outcomes = writer.apply_batch(&[record_of(event, 1, offset)]).unwrap();
            assert_ne!(
                outcomes,
                vec![ApplyOutcome::Applied],
                "nothing applies twice"
            );
        }
        Step::Update(n, details, stale) if !oracle.created.is_empty() => {
            let id = pick(n, oracle);
            let (current, deleted) = oracle.customers[&id].clone();
            let changes = changes_between(&current.details, details);
            if changes.is_empty() {
                return;
            }
            let version = current.version + u64::from(!stale);
            let event = CustomerUpdated {
                event_id,
                occurred_at,
                audit: Default::default(),
                customer_id: id,
                account_id: current.details.account_id,
                version,
                changes,
            };
            let after = event.applied_to(&current);
            let event = RegistryEvent::CustomerUpdated(event);
            let outcomes = writer
                .apply_batch(&[record_of(event.clone(), 0, offset)])
                .unwrap();
            let expected = match (deleted, stale) {
                (true, _) => ApplyOutcome::Absent,
                (false, true) => ApplyOutcome::Stale,
                (false, false) => {
                    oracle.customers.insert(id, (after, false));
                    ApplyOutcome::Applied
                }
            };
            assert_eq!(outcomes, vec![expected]);
            oracle.events.push(event);
        }
        Step::Delete(n, stale) if !oracle.created.is_empty() => {
            let id = pick(n, oracle);
            let (current, deleted) = oracle.customers[&id].clone();
            let version = current.version + u64::from(!stale);
            let event = RegistryEvent::CustomerDeleted(CustomerDeleted {
                event_id,
                occurred_at,
                audit: Default::default(),
                customer_id: id,
                account_id: current.details.account_id,
                version,
            });
            let outcomes = writer
                .apply_batch(&[record_of(event.clone(), 0, offset)])
                .unwrap();
            let expected = match (deleted, stale) {
                (true, _) => ApplyOutcome::Absent,
                (false, true) => ApplyOutcome::Stale,
                (false, false) => {
                    let mut tombstone = current;
                    tombstone.version = version;
                    tombstone.updated_at = occurred_at;
                    oracle.customers.insert(id, (tombstone, true));
                    ApplyOutcome::Applied
                }
            };
            assert_eq!(outcomes, vec![expected]);
            oracle.events.push(event);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_find_equals_a_naive_filter(
        steps in steps(),
        finds in proptest::collection::vec(queries(), 1..12),
        replay in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        // A live writer keeps its postings ordered; a replay's appends them.
        let policy = if replay { FlushPolicy::replay() } else { FlushPolicy::default() };
        let (mut model, mut writer) = open_with(dir.path(), policy).unwrap();
        let mut oracle = Oracle::default();
        // The oracle as of the last flush, and the steps since: what a crash loses.
        let mut flushed = Oracle::default();
        let mut since_flush: Vec<usize> = Vec::new();
        for (at, step) in steps.iter().enumerate() {
            match step {
                Step::Flush | Step::FlushInBackground => {
                    if matches!(step, Step::Flush) {
                        writer.flush_all().unwrap();
                    } else {
                        // A crash waits for a flush under way: it is as good as done.
                        writer.flush_if_due(true).unwrap();
                    }
                    flushed = oracle.clone();
                    since_flush.clear();
                }
                Step::Crash => {
                    drop((model, writer));
                    (model, writer) = reopen_with(dir.path(), policy);
                    oracle = flushed.clone();
                    for &lost in &since_flush {
                        apply(&steps[lost], lost, &mut writer, &mut oracle);
                    }
                }
                _ => {
                    apply(step, at, &mut writer, &mut oracle);
                    since_flush.push(at);
                }
            }
        }
        for (pairs, scope) in finds {
            let mut query = CustomerQuery::parse(&pairs).unwrap();
            query.within_accounts = scope;
            let mut naive: Vec<&Customer> = oracle
                .customers
                .values()
                .filter(|(customer, deleted)| !deleted && query.matches(customer))
                .map(|(customer, _)| customer)
                .collect();
            naive.sort_by_key(|customer| directory::OrderKey::of(customer));
            let expected: Vec<Customer> = naive
                .iter()
                .skip(query.offset)
                .take(query.limit)
                .map(|customer| (*customer).clone())
                .collect();
            let page = model.find(&query, &Work::limited_to(MAX_WORK)).unwrap();
            prop_assert_eq!(&page.customers, &expected, "{:?}", pairs);
            prop_assert_eq!(page.total, naive.len(), "{:?}", pairs);
            // Within a smaller bound, the same page or a refusal, never another answer.
            match model.find(&query, &Work::limited_to(200)) {
                Ok(bounded) => prop_assert_eq!(bounded, page),
                Err(ReadModelError::OverBudget) => {}
                Err(other) => prop_assert!(false, "unexpected error {}", other),
            }
        }
        for (id, (customer, deleted)) in &oracle.customers {
            let expected = (!deleted).then(|| customer.clone());
            prop_assert_eq!(model.get(*id).unwrap(), expected);
            let record = model.record(*id).unwrap().unwrap();
            prop_assert_eq!(&record.customer, customer, "tombstones keep the last state");
        }
        prop_assert_eq!(
            model.len(),
            oracle.customers.values().filter(|(_, deleted)| !deleted).count()
        );
    }
}
