//! Write-through caches of the records every check-in reads: the monitor environment's state
//! and the `in_progress` check-in a terminal check-in closes. Reading them from sled cost a
//! tree lookup and a decode per check-in; here they are a map lookup and a clone.
//!
//! **Coherence.** An entry is only ever put in by [`Store::commit`](super::Store::commit)
//! *after* its transaction succeeded, and removed by `delete_monitor` and retention (an
//! `in_progress` check-in that is no longer an open run may be pruned); a read that misses
//! goes to sled and does not fill the cache. So an entry is always the value sled holds (or
//! newer by the microseconds between the transaction and the update), and no reader can put
//! back a stale value it read before a concurrent commit. The writers of one monitor
//! environment are serialized by the processor, so two commits of the same key never race.
//! The check-in counts retention keeps follow the same rule, and a failed commit (which may
//! have applied part of its group until the store is reopened) forgets them all, so the next
//! prune counts again rather than trusting a count that may be too high.
//!
//! **Bounds.** Each map holds at most [`CAPACITY`] entries; when full it is cleared, which
//! only sends the next reads to sled. Open runs leave the cache when they are closed, timed
//! out or their monitor is deleted.

use std::collections::HashMap;
use std::hash::Hash;

use parking_lot::Mutex;
use uuid::Uuid;

use super::prepared::{Count, Counts};
use crate::engine::{CheckIn, CheckInStatus, MonitorEnv, MonitorKey, MonitorStatus, OpenRun};

/// Entries per map: 16,384 monitor environments (~10 MB) and as many open runs.
pub(super) const CAPACITY: usize = 16_384;

#[derive(Default)]
pub(super) struct HotCache {
    monitors: Bounded<MonitorKey, MonitorEnv>,
    /// Check-ins whose status is `in_progress`, by id.
    runs: Bounded<Uuid, CheckIn>,
    /// How many check-ins each monitor environment holds, once retention has counted them.
    counts: Bounded<MonitorKey, usize>,
}

impl HotCache {
    pub(super) fn monitor(&self, key: &MonitorKey) -> Option<MonitorEnv> {
        self.monitors.get(key)
    }

    /// The status and open runs of a cached monitor environment.
    pub(super) fn state(&self, key: &MonitorKey) -> Option<(MonitorStatus, Vec<OpenRun>)> {
        self.monitors
            .0
            .lock()
            .get(key)
            .map(|m| (m.status, m.open_runs.clone()))
    }

    pub(super) fn run(&self, id: Uuid) -> Option<CheckIn> {
        self.runs.get(&id)
    }

    /// Takes in what a successful commit wrote.
    pub(super) fn committed(&self, monitors: &[MonitorEnv], checkins: &[CheckIn]) {
        for monitor in monitors {
            self.monitors.put(monitor.key.clone(), monitor.clone());
        }
        for checkin in checkins {
            if checkin.status == CheckInStatus::InProgress {
                self.runs.put(checkin.id, checkin.clone());
            } else {
                self.runs.remove(&checkin.id);
            }
        }
    }

    /// Forgets check-ins retention removed.
    pub(super) fn pruned(&self, ids: impl IntoIterator<Item = Uuid>) {
        for id in ids {
            self.runs.remove(&id);
        }
    }

    /// How many check-ins `key` holds, if known.
    pub(super) fn count(&self, key: &MonitorKey) -> Option<usize> {
        self.counts.get(key)
    }

    /// Takes in how a successful commit changed the number of check-ins. An `Added` for a
    /// monitor environment whose count is not known leaves it unknown.
    pub(super) fn counted(&self, counts: &Counts) {
        if counts.forget_all {
            self.forget_counts();
            return;
        }
        if counts.changes.is_empty() {
            return;
        }
        let mut map = self.counts.0.lock();
        for (key, count) in &counts.changes {
            match *count {
                Count::Exact(n) => {
                    if map.len() >= CAPACITY && !map.contains_key(key) {
                        map.clear();
                    }
                    map.insert(key.clone(), n);
                }
                Count::Added(n) => {
                    if let Some(stored) = map.get_mut(key) {
                        *stored = stored.saturating_add_signed(n);
                    }
                }
                Count::Unknown => {
                    map.remove(key);
                }
            }
        }
    }

    /// Forgets every check-in count (after a failed commit).
    pub(super) fn forget_counts(&self) {
        self.counts.0.lock().clear();
    }

    /// Forgets a deleted monitor environment and its open runs.
    pub(super) fn deleted(&self, key: &MonitorKey) {
        self.counts.remove(key);
        self.monitors.remove(key);
        self.runs.0.lock().retain(|_, run| run.key != *key);
    }
}

/// A map cleared when it reaches [`CAPACITY`].
struct Bounded<K, V>(Mutex<HashMap<K, V>>);

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    fn get(&self, key: &K) -> Option<V> {
        self.0.lock().get(key).cloned()
    }

    fn put(&self, key: K, value: V) {
        let mut map = self.0.lock();
        if map.len() >= CAPACITY && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, value);
    }

    fn remove(&self, key: &K) {
        self.0.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_is_cleared_rather_than_grown() {
        let map: Bounded<usize, usize> = Bounded::default();
        for n in 0..CAPACITY {
            map.put(n, n);
        }
        // Replacing an existing key never clears.
        map.put(7, 70);
        assert_eq!(map.get(&7), Some(70));
        assert_eq!(map.0.lock().len(), CAPACITY);
        // A new key past the capacity starts over.
        map.put(CAPACITY, 1);
        assert_eq!(map.0.lock().len(), 1);
        assert_eq!(map.get(&7), None);
    }
}
