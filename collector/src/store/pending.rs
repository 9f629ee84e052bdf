//! The pending deliveries as the write path sees them: the writes that add a new delivery
//! ([`new_entry`]) and how many deliveries are stored and pending per channel
//! ([`OutboxCount`]), kept apart from the outbox's reads (`outbox.rs`) so the committer and
//! the redo records need nothing from the store's façade.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::error::{StoreError, encode};
use super::keys;
use crate::alert::outbox::{NewDelivery, OutboxEntry};

/// Bookkeeping: how many deliveries the `outbox` tree holds (for pruning, one pruner at a
/// time), and how many each channel has pending.
#[derive(Debug)]
pub(super) struct OutboxCount {
    pub(super) stored: AtomicUsize,
    pub(super) pruning: Mutex<()>,
    /// Pending deliveries per channel; a channel with none has no entry. Changed only after
    /// the write that changed the index succeeded, by the delta that write made.
    pub(super) pending: Mutex<HashMap<String, usize>>,
}

impl OutboxCount {
    /// The counts of a store just opened: `stored` deliveries, and the pending ones counted
    /// from the `outbox_pending` index (keys only, once).
    pub(super) fn load(stored: usize, index: &sled::Tree) -> Result<OutboxCount, StoreError> {
        let mut pending: HashMap<String, usize> = HashMap::new();
        for key in index.iter().keys() {
            let key = key?;
            if let Some(channel) = keys::pending_channel(&key) {
                *pending.entry(channel.to_owned()).or_default() += 1;
            }
        }
        Ok(OutboxCount {
            stored: AtomicUsize::new(stored),
            pruning: Mutex::new(()),
            pending: Mutex::new(pending),
        })
    }

    /// Counts deliveries written (pending) by a committed write.
    pub(super) fn added(&self, deliveries: &[NewDelivery]) {
        if deliveries.is_empty() {
            return;
        }
        self.stored.fetch_add(deliveries.len(), Ordering::Relaxed);
        let mut pending = self.pending.lock();
        for delivery in deliveries {
            *pending.entry(delivery.channel.clone()).or_default() += 1;
        }
    }

    /// Applies what a committed save changed in the index: `+1` for an entry that became
    /// pending, `-1` for one that left it.
    pub(super) fn changed(&self, deltas: &HashMap<&str, isize>) {
        let mut pending = self.pending.lock();
        for (&channel, &delta) in deltas {
            let count = pending.entry(channel.to_owned()).or_default();
            *count = count.saturating_add_signed(delta);
            if *count == 0 {
                pending.remove(channel);
            }
        }
    }

    pub(super) fn pending(&self, channel: &str) -> usize {
        self.pending.lock().get(channel).copied().unwrap_or(0)
    }

    /// Finished deliveries stored: all stored minus all pending.
    pub(super) fn finished(&self) -> usize {
        let pending: usize = self.pending.lock().values().sum();
        self.stored.load(Ordering::Relaxed).saturating_sub(pending)
    }
}

/// The writes that add `delivery` as new pending entry `id`: its `outbox` key and value and
/// its `outbox_pending` key (the value is empty).
pub(super) fn new_entry(
    id: u64,
    delivery: &NewDelivery,
    now: DateTime<Utc>,
) -> ([u8; 8], Vec<u8>, Vec<u8>) {
    let entry = OutboxEntry::new(id, delivery.clone(), now);
    let pending = keys::pending(&entry.channel, id);
    (id.to_be_bytes(), encode(&entry), pending)
}
