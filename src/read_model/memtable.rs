//! A layer of changes not yet in the store: what the writer applied since the last flush, held in
//! memory and read by finds and gets like the store beneath it. When it is large or old enough
//! the writer freezes it, and the flusher writes it to the store as one index segment plus record
//! and column blocks, committed with the log position it reaches.
//!
//! A layer changes what lies beneath it in two ways: it adds postings and records, and it
//! *supersedes* ordinals, whose postings beneath it no longer hold (the customer was replaced or
//! removed after they were written). A term's postings, seen through a layer, are
//! `(beneath − superseded) ∪ own`.

use super::directory::{ColumnEntry, Listing};
use super::postings::{LayerPostings, PostingVisitor};
use super::record::CustomerRecord;
use super::terms::{TermRange, Terms};
use hashbrown::HashMap;
use roaring::RoaringBitmap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// One layer of changes; see the module doc.
#[derive(Debug)]
pub struct Memtable {
    /// Term key → the ordinals this layer indexes under it.
    postings: LayerPostings,
    /// Records this layer wrote (a deleted customer's tombstone included).
    records: HashMap<u32, Arc<CustomerRecord>>,
    /// Column slots this layer wrote.
    column: BTreeMap<u32, ColumnEntry>,
    /// Ordinals whose postings beneath this layer are void.
    superseded: RoaringBitmap,
    /// The first ordinal this layer assigned (everything below it was assigned beneath).
    first_ordinal: u32,
    /// The ordinal after the last one this layer assigned.
    next_ordinal: u32,
    /// The next offset of every partition this layer (and everything beneath) covers.
    next_offsets: BTreeMap<i32, i64>,
    /// When the first change landed.
    since: Option<Instant>,
}

impl Memtable {
    /// An empty layer over a store (or layers) that assigned ordinals up to `first_ordinal` and
    /// covers the log up to `next_offsets`, keeping its postings as `postings` does.
    pub fn new(
        first_ordinal: u32,
        next_offsets: BTreeMap<i32, i64>,
        postings: LayerPostings,
    ) -> Self {
        Self {
            postings,
            records: HashMap::new(),
            column: BTreeMap::new(),
            superseded: RoaringBitmap::new(),
            first_ordinal,
            next_ordinal: first_ordinal,
            next_offsets,
            since: None,
        }
    }

    /// How many records and column slots this layer changed: what a flush writes.
    pub fn changes(&self) -> usize {
        self.records.len().max(self.column.len())
    }

    /// When its first change landed, or its first record that changed nothing (a rejected or
    /// duplicate record still moves the position a restart resumes from).
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// The ordinals assigned before this layer.
    pub fn first_ordinal(&self) -> u32 {
        self.first_ordinal
    }

    /// The ordinal after the last one assigned, in this layer or beneath.
    pub fn next_ordinal(&self) -> u32 {
        self.next_ordinal
    }

    /// The log position this layer reaches.
    pub fn next_offsets(&self) -> &BTreeMap<i32, i64> {
        &self.next_offsets
    }

    /// Records that the layer has applied the record at `partition`/`offset`.
    pub fn reach(&mut self, partition: i32, offset: i64) {
        let next = self.next_offsets.entry(partition).or_insert(0);
        if offset + 1 > *next {
            *next = offset + 1;
            self.touch();
        }
    }

    /// The next layer on top of this one: empty, over what this one reaches.
    pub fn successor(&self) -> Self {
        Self::new(
            self.next_ordinal,
            self.next_offsets.clone(),
            self.postings.empty_like(),
        )
    }

    /// Adds to `into` its ordinals under every term in `range`; returns how many terms.
    pub fn add_postings_in(&self, range: &TermRange, into: &mut RoaringBitmap) -> usize {
        self.postings.add_in(range, into)
    }

    /// Calls `visit` for each of its terms, in order, with the term's ordinals ascending.
    ///
    /// # Errors
    /// The first error `visit` returns.
    pub fn for_each_posting<E>(&self, visit: &mut PostingVisitor<'_, E>) -> Result<(), E> {
        self.postings.for_each(visit)
    }

    /// Ordinals whose postings beneath are void.
    pub fn superseded(&self) -> &RoaringBitmap {
        &self.superseded
    }

    /// The record this layer wrote for `ordinal`, if any.
    pub fn record(&self, ordinal: u32) -> Option<&Arc<CustomerRecord>> {
        self.records.get(&ordinal)
    }

    /// The records this layer wrote, by ordinal (for the flusher).
    pub fn records(&self) -> &HashMap<u32, Arc<CustomerRecord>> {
        &self.records
    }

    /// The column slots this layer wrote (for the flusher).
    pub fn column(&self) -> &BTreeMap<u32, ColumnEntry> {
        &self.column
    }

    /// Adds a new customer at `ordinal` (at or past [`Memtable::first_ordinal`]).
    pub fn add(
        &mut self,
        ordinal: u32,
        record: Arc<CustomerRecord>,
        terms: &Terms,
        entry: ColumnEntry,
    ) {
        self.touch();
        self.postings.add(ordinal, terms);
        self.records.insert(ordinal, record);
        self.column.insert(ordinal, entry);
        self.next_ordinal = self.next_ordinal.max(ordinal + 1);
    }

    /// Replaces the record at `ordinal` with one whose postings stay as they were (a duplicate
    /// record added to its history).
    pub fn rewrite(&mut self, ordinal: u32, record: Arc<CustomerRecord>) {
        self.touch();
        self.records.insert(ordinal, record);
    }

    /// Replaces the customer at `ordinal`, indexed under `old_terms`, with `record`, indexed
    /// under `new_terms`.
    pub fn replace(
        &mut self,
        ordinal: u32,
        old_terms: &Terms,
        record: Arc<CustomerRecord>,
        new_terms: &Terms,
    ) {
        self.touch();
        self.unindex(ordinal, old_terms);
        self.postings.add(ordinal, new_terms);
        self.records.insert(ordinal, record);
    }

    /// Deletes the customer at `ordinal`, indexed under `old_terms`: `tombstone` (listed as
    /// `listing`) takes its place, under no term.
    pub fn delete(
        &mut self,
        ordinal: u32,
        old_terms: &Terms,
        tombstone: Arc<CustomerRecord>,
        listing: Listing,
    ) {
        self.touch();
        self.unindex(ordinal, old_terms);
        self.records.insert(ordinal, tombstone);
        self.column.insert(ordinal, ColumnEntry::Deleted(listing));
    }

    fn touch(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    /// Takes `ordinal` out of `terms` in this layer, and voids whatever beneath indexes it.
    fn unindex(&mut self, ordinal: u32, terms: &Terms) {
        self.postings.remove(ordinal, terms);
        if ordinal < self.first_ordinal {
            self.superseded.insert(ordinal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Customer, CustomerDetails, TextField};
    use crate::read_model::directory::OrderKey;
    use crate::read_model::record::{History, HistoryEntry, LogPlace};

    fn named(last_name: &str) -> (Arc<CustomerRecord>, Terms) {
        let mut details = CustomerDetails::for_account(AccountId::parse(1).unwrap());
        details.set_text(TextField::LastName, last_name).unwrap();
        let customer = Customer::register(details);
        let terms = Terms::of(&customer);
        let record = CustomerRecord {
            customer,
            deleted: false,
            erased: false,
            history: History::from_iter([HistoryEntry {
                place: LogPlace {
                    partition: 0,
                    offset: 0,
                },
                event_id: uuid::Uuid::now_v7(),
            }]),
        };
        (Arc::new(record), terms)
    }

    fn listing() -> Listing {
        Listing {
            key: OrderKey::default(),
            account: AccountId::parse(1).unwrap(),
        }
    }

    fn key() -> ColumnEntry {
        ColumnEntry::Live(listing())
    }

    fn under(layer: &Memtable, last_name: &str) -> Vec<u32> {
        let mut found = RoaringBitmap::new();
        layer.add_postings_in(
            &TermRange::of(TextField::LastName, last_name, true),
            &mut found,
        );
        found.iter().collect()
    }

    #[test]
    fn a_replaced_customer_moves_between_terms_and_voids_what_is_beneath() {
        let mut layer = Memtable::new(10, BTreeMap::new(), LayerPostings::ordered());
        let ((a, a_terms), (b, b_terms)) = (named("a"), named("b"));
        layer.add(10, a.clone(), &a_terms, key());
        layer.replace(10, &a_terms, b.clone(), &b_terms);
        layer.replace(3, &a_terms, b.clone(), &b_terms);
        assert_eq!(under(&layer, "a"), Vec::<u32>::new());
        assert_eq!(under(&layer, "b"), vec![3, 10]);
        assert_eq!(
            layer.superseded().iter().collect::<Vec<_>>(),
            vec![3],
            "only what lies beneath"
        );
        let mut tombstone = b.as_ref().clone();
        tombstone.deleted = true;
        let tombstone = Arc::new(tombstone);
        layer.delete(10, &b_terms, tombstone.clone(), listing());
        assert_eq!(under(&layer, "b"), vec![3]);
        assert_eq!(layer.record(10), Some(&tombstone));
        assert_eq!(
            layer.column().get(&10),
            Some(&ColumnEntry::Deleted(listing()))
        );
    }
}
