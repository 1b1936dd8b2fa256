//! Shares of a bounded resource per holder (an API key, an account): how many places each
//! holder has taken, so that one holder can be kept to its share of slots others need too.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

/// Places taken, by holder.
#[derive(Debug)]
pub struct Shares<K> {
    held: Mutex<HashMap<K, usize>>,
}

impl<K> Default for Shares<K> {
    fn default() -> Self {
        Self {
            held: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> Shares<K> {
    /// A place for `holder`, unless it holds `max` already.
    pub fn take(self: &Arc<Self>, holder: K, max: usize) -> Option<Share<K>> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(holder.clone()).or_default();
        if *count >= max {
            if *count == 0 {
                held.remove(&holder);
            }
            return None;
        }
        *count += 1;
        Some(Share {
            shares: Arc::clone(self),
            holder,
        })
    }
}

/// One place in a holder's share, given back when dropped.
#[derive(Debug)]
pub struct Share<K: Hash + Eq> {
    shares: Arc<Shares<K>>,
    holder: K,
}

impl<K: Hash + Eq> Drop for Share<K> {
    fn drop(&mut self) {
        let mut held = self
            .shares
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.holder) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_keeps_to_its_share_and_gets_places_back() {
        let shares = Arc::new(Shares::default());
        let first = shares.take("a", 2).expect("a first place");
        let second = shares.take("a", 2).expect("a second place");
        assert!(shares.take("a", 2).is_none(), "past the share");
        assert!(shares.take("b", 2).is_some(), "another holder has its own");
        drop(first);
        assert!(shares.take("a", 2).is_some(), "a place given back");
        drop(second);
        assert!(shares.held.lock().unwrap().is_empty(), "nothing left held");
    }
}
