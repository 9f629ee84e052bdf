//! The alert outbox over sled, and the [`Outbox`] the dispatcher drains. Stores deliveries as
//! it is given them; never decides what to alert or when to send.
//!
//! Two trees: `outbox` holds every delivery by id, pending and finished; `outbox_pending`
//! indexes the pending ones by `(channel, id)`, so a worker's read costs what its channel has
//! pending, never the delivery history.
//!
//! New deliveries are written with the state change that caused them, atomically: by
//! [`insert_new`] inside a transaction (probes), or as the writes [`new_entry`] describes in
//! the group of the change (`redo.rs`), with ids drawn from sled's monotonic id generator.
//! The writers of one subject are serialized (per-monitor and per-issue locks, one task per
//! probe), so a subject's deliveries get increasing ids in commit order, which is the order
//! the dispatcher's dedup relies on; deliveries about different subjects committed at the
//! same moment may interleave.
//!
//! Finished deliveries (sent, failed, suppressed) are kept for `GET /api/v1/alerts` until more
//! than [`DELIVERIES_KEPT`] are stored; then the oldest finished ones go. A pending delivery is
//! never removed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, TransactionalTree, UnabortableTransactionError,
};

use super::{Store, StoreError, decode, encode, keys, transaction_error};
use crate::alert::{DeliveryState, NewDelivery, Outbox, OutboxEntry, OutboxError};

/// Deliveries kept, finished ones included. Past this (plus a tenth, so pruning is amortized)
/// the oldest finished ones are removed.
pub const DELIVERIES_KEPT: usize = 10_000;

/// Bookkeeping for pruning: how many deliveries the `outbox` tree holds, and one pruner at a
/// time.
#[derive(Debug)]
pub(super) struct OutboxCount {
    stored: AtomicUsize,
    pruning: Mutex<()>,
}

impl OutboxCount {
    pub(super) fn new(stored: usize) -> OutboxCount {
        OutboxCount {
            stored: AtomicUsize::new(stored),
            pruning: Mutex::new(()),
        }
    }

    /// Counts deliveries written by a committed transaction.
    pub(super) fn added(&self, n: usize) {
        if n > 0 {
            self.stored.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// A delivery as `GET /api/v1/alerts` filters them.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter<'a> {
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Only deliveries to this channel.
    pub channel: Option<&'a str>,
}

/// Writes `delivery` as a new pending entry from inside a transaction over the `outbox` and
/// `outbox_pending` trees. The caller counts it ([`OutboxCount::added`]) once the transaction
/// has committed.
pub(super) fn insert_new(
    outbox: &TransactionalTree,
    pending: &TransactionalTree,
    delivery: &NewDelivery,
    now: DateTime<Utc>,
) -> Result<(), UnabortableTransactionError> {
    let (id, entry, pending_key) = new_entry(outbox.generate_id()?, delivery, now);
    outbox.insert(&id, entry)?;
    pending.insert(pending_key, &[][..])?;
    Ok(())
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

impl Store {
    /// The newest `limit` deliveries matching `filter`, newest first.
    pub fn deliveries(
        &self,
        filter: &DeliveryFilter<'_>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        for value in self.trees().outbox.iter().values().rev() {
            if out.len() == limit {
                break;
            }
            let entry: OutboxEntry = decode("outbox", &value?)?;
            if filter.state.is_none_or(|state| entry.state == state)
                && filter
                    .channel
                    .is_none_or(|channel| entry.channel == channel)
            {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Pending deliveries per channel (channels with none are absent).
    pub fn outbox_pending(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut counts = BTreeMap::new();
        for key in self.trees().outbox_pending.iter().keys() {
            let key = key?;
            if let Some(channel) = keys::pending_channel(&key) {
                *counts.entry(channel.to_owned()).or_default() += 1;
            }
        }
        Ok(counts)
    }

    /// Pending deliveries, all channels together.
    pub fn outbox_backlog(&self) -> usize {
        self.trees().outbox_pending.len()
    }

    /// Removes the oldest finished deliveries beyond `keep`. Cleanup, not state: it runs
    /// outside any transaction, one pruner at a time. Returns how many went.
    fn prune_deliveries(&self, keep: usize) -> Result<usize, StoreError> {
        let count = &self.inner.outbox;
        let Some(_pruning) = count.pruning.try_lock() else {
            return Ok(0);
        };
        let mut excess = count.stored.load(Ordering::Relaxed).saturating_sub(keep);
        let mut finished = Vec::new();
        for item in self.trees().outbox.iter() {
            if excess == 0 {
                break;
            }
            let (key, value) = item?;
            let entry: OutboxEntry = decode("outbox", &value)?;
            if entry.state != DeliveryState::Pending {
                finished.push(key);
                excess -= 1;
            }
        }
        let mut removed = 0;
        for key in finished {
            if self.trees().outbox.remove(key)?.is_some() {
                removed += 1;
            }
        }
        count.stored.fetch_sub(removed, Ordering::Relaxed);
        Ok(removed)
    }

    fn save_entries(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        let writes: Vec<_> = entries
            .iter()
            .map(|entry| {
                (
                    entry.id.to_be_bytes(),
                    keys::pending(&entry.channel, entry.id),
                    encode(entry),
                    entry.state == DeliveryState::Pending,
                )
            })
            .collect();
        let t = self.trees();
        (&t.outbox, &t.outbox_pending)
            .transaction(|(tx_outbox, tx_pending)| {
                for (id, pending_key, value, pending) in &writes {
                    tx_outbox.insert(&id[..], value.as_slice())?;
                    if *pending {
                        tx_pending.insert(pending_key.as_slice(), &[][..])?;
                    } else {
                        tx_pending.remove(pending_key.as_slice())?;
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_error)?;
        self.inner.group.record_write();
        // Nobody waits for this write, but a delivery marked sent should reach the disk soon:
        // after a crash an unflushed `sent` is pending again and goes out a second time.
        self.inner.group.request();
        let stored = self.inner.outbox.stored.load(Ordering::Relaxed);
        if stored > DELIVERIES_KEPT + DELIVERIES_KEPT / 10 {
            self.prune_deliveries(DELIVERIES_KEPT)?;
        }
        Ok(())
    }
}

impl Outbox for Store {
    fn pending(&self, channel: &str, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let t = self.trees();
        let mut entries = Vec::new();
        for key in t
            .outbox_pending
            .scan_prefix(keys::channel(channel))
            .keys()
            .take(limit)
        {
            let key = key.map_err(outbox_error)?;
            let Some(id) = keys::pending_id(&key) else {
                continue;
            };
            // Index and entry are written in one transaction; an index key without its entry
            // would be a bug, and skipping it loses nothing that exists.
            if let Some(value) = t.outbox.get(id.to_be_bytes()).map_err(outbox_error)? {
                entries.push(decode("outbox", &value).map_err(outbox_error)?);
            }
        }
        Ok(entries)
    }

    fn save(&self, entries: &[OutboxEntry]) -> Result<(), OutboxError> {
        self.save_entries(entries).map_err(outbox_error)
    }
}

fn outbox_error(error: impl Into<StoreError>) -> OutboxError {
    OutboxError(Box::new(error.into()))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::engine::alerting::{Links, Payload, ProbeChange, probe_alert};
    use crate::store::WriteSet;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 3, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs)
    }

    fn delivery(channel: &str, probe: &str) -> NewDelivery {
        let change = ProbeChange {
            down: true,
            name: probe.to_owned(),
            url: "http://127.0.0.1:1/health".to_owned(),
            status_code: Some(503),
            error: None,
            since: None,
        };
        NewDelivery {
            channel: channel.to_owned(),
            rule: "uptime".to_owned(),
            payload: Payload::Alert(probe_alert(&change, &Links::new("http://x"), at(0))),
        }
    }

    fn commit(store: &Store, deliveries: Vec<NewDelivery>) {
        let set = WriteSet {
            deliveries,
            ..WriteSet::default()
        };
        store.commit(&set, at(0)).unwrap();
    }

    #[test]
    fn pending_is_per_channel_in_id_order_and_save_moves_entries_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(&store, vec![delivery("tg", "a"), delivery("tg-2", "b")]);
        commit(&store, vec![delivery("tg", "c")]);

        let tg = store.pending("tg", 10).unwrap();
        let ids: Vec<u64> = tg.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] < ids[1], "{ids:?}");
        assert_eq!(store.pending("tg", 1).unwrap().len(), 1, "limit");
        assert_eq!(store.pending("tg-2", 10).unwrap().len(), 1, "no spill");
        assert_eq!(
            store.outbox_pending().unwrap(),
            BTreeMap::from([("tg".to_owned(), 2), ("tg-2".to_owned(), 1)])
        );

        let mut sent = tg[0].clone();
        sent.state = DeliveryState::Sent;
        sent.attempts = 1;
        let mut retry = tg[1].clone();
        retry.attempts = 1;
        retry.last_error = Some("HTTP 500".to_owned());
        store.save(&[sent.clone(), retry.clone()]).unwrap();
        assert_eq!(store.pending("tg", 10).unwrap(), vec![retry]);
        assert_eq!(store.outbox_backlog(), 2);

        let all = store.deliveries(&DeliveryFilter::default(), 10).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let filter = DeliveryFilter {
            state: Some(DeliveryState::Sent),
            channel: None,
        };
        assert_eq!(store.deliveries(&filter, 10).unwrap(), vec![sent]);
    }

    #[test]
    fn pruning_removes_the_oldest_finished_deliveries_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(
            &store,
            (0..6).map(|i| delivery("hook", &i.to_string())).collect(),
        );
        let pending = store.pending("hook", 10).unwrap();
        // The oldest stays pending; the others are finished.
        let finished: Vec<OutboxEntry> = pending[1..]
            .iter()
            .map(|e| OutboxEntry {
                state: DeliveryState::Sent,
                ..e.clone()
            })
            .collect();
        store.save(&finished).unwrap();
        assert_eq!(store.prune_deliveries(3).unwrap(), 3);
        let left: Vec<u64> = store
            .deliveries(&DeliveryFilter::default(), 10)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, [pending[5].id, pending[4].id, pending[0].id]);
        assert_eq!(store.prune_deliveries(3).unwrap(), 0);
    }

    #[test]
    fn deliveries_survive_a_reopen_with_their_count() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            commit(&store, vec![delivery("hook", "a"), delivery("hook", "b")]);
            store.flush_blocking().unwrap();
        }
        // Retries while sled's threads of the first handle still hold the lock.
        let store = crate::store::tests::reopen(dir.path()).unwrap();
        assert_eq!(store.inner.outbox.stored.load(Ordering::Relaxed), 2);
        assert_eq!(store.pending("hook", 10).unwrap().len(), 2);
    }
}
