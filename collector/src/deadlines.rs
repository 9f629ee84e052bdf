//! The in-memory deadline index shared by the processor (which updates it after every
//! committed change, under the monitor's lock) and the sweeper (which pops what is due): its
//! own module, so neither imports the other for it.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::engine::{Deadline, DeadlineIndex, MonitorEnv, MonitorKey};
use crate::store::{Store, StoreError};

/// The sweeper wakes at least this often even with nothing due, to prove it is alive; missing
/// three wakes makes it not alive.
pub(crate) const IDLE_WAKE: Duration = Duration::from_secs(30);

/// The shared deadline index. The processor updates it (under the monitor's lock) after every
/// committed change; the sweeper task pops from it.
#[derive(Debug, Default)]
pub struct Deadlines {
    index: Mutex<DeadlineIndex>,
    wake: Notify,
    heartbeat: AtomicI64,
    running: AtomicBool,
}

impl Deadlines {
    /// Rebuilds the index from the deadlines persisted in the store.
    pub fn load(store: &Store) -> Result<Deadlines, StoreError> {
        let mut index = DeadlineIndex::new();
        for (key, deadlines) in store.deadlines()? {
            index.replace(&key, deadlines);
        }
        Ok(Deadlines {
            index: Mutex::new(index),
            ..Deadlines::default()
        })
    }

    /// Replaces the deadlines of `monitor` with those of its current state; wakes the sweeper
    /// if that made the earliest deadline earlier.
    pub fn upsert_for(&self, monitor: &MonitorEnv) {
        let (before, after) = {
            let mut index = self.index.lock();
            let before = index.next_deadline();
            index.upsert_for(monitor);
            (before, index.next_deadline())
        };
        if let Some(after) = after
            && before.is_none_or(|before| after < before)
        {
            self.wake.notify_one();
        }
    }

    /// Puts back deadlines popped for a sweep that failed, next to those still indexed.
    pub fn restore(&self, popped: &[Deadline]) {
        let mut index = self.index.lock();
        let before = index.next_deadline();
        let mut keys: Vec<&MonitorKey> = popped.iter().map(|d| &d.key).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let mut deadlines = index.deadlines_for(key);
            for deadline in popped.iter().filter(|d| &d.key == key) {
                if !deadlines.contains(deadline) {
                    deadlines.push(deadline.clone());
                }
            }
            index.replace(key, deadlines);
        }
        let after = index.next_deadline();
        drop(index);
        if after.is_some_and(|after| before.is_none_or(|before| after < before)) {
            self.wake.notify_one();
        }
    }

    /// Forgets a deleted monitor environment.
    pub fn remove(&self, key: &MonitorKey) {
        self.index.lock().remove(key);
    }

    /// Pending deadlines.
    pub fn len(&self) -> usize {
        self.index.lock().len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.index.lock().is_empty()
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.index.lock().next_deadline()
    }

    /// Takes the deadlines due at `now` out of the index (the sweeper hands them on).
    pub(crate) fn pop_due(&self, now: DateTime<Utc>) -> Vec<Deadline> {
        self.index.lock().pop_due(now)
    }

    /// Whether the sweeper task runs and has woken recently.
    pub fn sweeper_alive(&self, now: DateTime<Utc>) -> bool {
        let last = self.heartbeat.load(Ordering::Relaxed);
        self.running.load(Ordering::Relaxed)
            && now.timestamp() - last <= 3 * IDLE_WAKE.as_secs() as i64
    }

    /// When the sweeper last woke, while it runs.
    pub fn last_wake(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.heartbeat.load(Ordering::Relaxed), 0)
            .filter(|_| self.running.load(Ordering::Relaxed))
    }
    /// Marks the sweeper running until the guard is dropped, however its task ends.
    pub(crate) fn running(&self) -> Running<'_> {
        self.running.store(true, Ordering::Relaxed);
        Running(&self.running)
    }

    /// The sweeper's heartbeat, read by `/healthz` through [`Deadlines::last_wake`].
    pub(crate) fn beat(&self, now: DateTime<Utc>) {
        self.heartbeat.store(now.timestamp(), Ordering::Relaxed);
    }

    /// Resolves when an earlier deadline than the sweeper sleeps for was added.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}

/// Marks the sweeper as not running when its task ends, however it ends.
pub(crate) struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{IntervalUnit, MonitorConfig, Schedule, deadlines_of};

    #[test]
    fn deadlines_of_a_failed_sweep_are_put_back_once() {
        let deadlines = Deadlines::default();
        let t0: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().unwrap();
        let mut monitor = MonitorEnv::new(
            MonitorKey {
                project: 1,
                slug: "job".into(),
                environment: "production".into(),
            },
            MonitorConfig::new(Schedule::interval(1, IntervalUnit::Minute).unwrap()),
        );
        monitor.next_checkin = Some(t0);
        monitor.next_checkin_latest = Some(t0);
        deadlines.upsert_for(&monitor);
        let popped = deadlines.pop_due(t0);
        assert_eq!(popped, deadlines_of(&monitor));
        assert!(deadlines.is_empty());
        deadlines.restore(&popped);
        deadlines.restore(&popped);
        assert_eq!(deadlines.len(), 1, "restoring twice does not duplicate");
        assert_eq!(deadlines.pop_due(t0), popped, "due again at the next wake");
    }
}
