//! Monitor environments by status, kept as counters so `/metrics` and the dashboard's totals
//! cost the same at 10 monitors as at 500,000 (they used to scan and decode every monitor
//! record per scrape or page view: 0.25–0.38 s at 200,000 monitors, on a tokio worker).
//!
//! **How it stays true.** Counted once when the store opens (after redo recovery and upgrades,
//! before any write), then changed by every successful write by the difference between each
//! monitor's stored status before the write (read from the hot cache, or sled on a miss, while
//! the processor holds the monitor's lock) and the status it writes; a deletion subtracts the
//! deleted status. A failed write may have applied part of its group (see `cache.rs`), so it
//! marks the tally stale and the next reader counts again: one scan after a failure rather than
//! a figure that is silently wrong until the next restart.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::engine::MonitorStatus;

/// The statuses, in the order of `Tally::index`.
pub const STATUSES: [MonitorStatus; 4] = [
    MonitorStatus::Active,
    MonitorStatus::Ok,
    MonitorStatus::Error,
    MonitorStatus::Disabled,
];

/// Monitor environments by status, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorCounts {
    /// Counts in the order of [`STATUSES`].
    pub by_status: [u64; 4],
}

impl MonitorCounts {
    /// How many have `status`.
    pub fn of(&self, status: MonitorStatus) -> u64 {
        self.by_status[Tally::index(status)]
    }

    /// All monitor environments.
    pub fn total(&self) -> u64 {
        self.by_status.iter().sum()
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub(super) struct Tally {
    by_status: [AtomicI64; 4],
    stale: AtomicBool,
}

impl Tally {
    fn index(status: MonitorStatus) -> usize {
        match status {
            MonitorStatus::Active => 0,
            MonitorStatus::Ok => 1,
            MonitorStatus::Error => 2,
            MonitorStatus::Disabled => 3,
        }
    }

    /// Replaces every count (the scan at open, or after a failure) and clears the stale mark.
    pub(super) fn reset(&self, counts: &MonitorCounts) {
        for (slot, n) in self.by_status.iter().zip(counts.by_status) {
            slot.store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
        self.stale.store(false, Ordering::Relaxed);
    }

    /// One monitor went from `before` (`None`: it did not exist) to `after` (`None`: deleted).
    pub(super) fn moved(&self, before: Option<MonitorStatus>, after: Option<MonitorStatus>) {
        if before == after {
            return;
        }
        if let Some(before) = before {
            self.by_status[Self::index(before)].fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(after) = after {
            self.by_status[Self::index(after)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Marks the counts as possibly wrong (a write failed part way).
    pub(super) fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Whether the next reader must count again.
    pub(super) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// The counts now.
    pub(super) fn read(&self) -> MonitorCounts {
        let mut counts = MonitorCounts::default();
        for (n, slot) in counts.by_status.iter_mut().zip(&self.by_status) {
            *n = u64::try_from(slot.load(Ordering::Relaxed)).unwrap_or(0);
        }
        counts
    }
}

impl MonitorCounts {
    /// Adds one monitor environment of `status` (used while counting).
    pub(super) fn add(&mut self, status: MonitorStatus) {
        self.by_status[Tally::index(status)] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_follow_status_changes_and_deletions() {
        let tally = Tally::default();
        tally.moved(None, Some(MonitorStatus::Active));
        tally.moved(None, Some(MonitorStatus::Active));
        tally.moved(Some(MonitorStatus::Active), Some(MonitorStatus::Ok));
        tally.moved(Some(MonitorStatus::Ok), Some(MonitorStatus::Ok));
        tally.moved(Some(MonitorStatus::Active), Some(MonitorStatus::Error));
        tally.moved(Some(MonitorStatus::Error), None);
        let counts = tally.read();
        assert_eq!(counts.by_status, [0, 1, 0, 0]);
        assert_eq!(counts.total(), 1);
    }
}
