//! The deadline index: which monitor environment needs a sweep next, so the sweeper never scans
//! all monitors. An in-memory ordered set plus a per-monitor map for O(log n) replacement; the
//! caller persists entries and rebuilds the index on start. Never reads a clock or does I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{Handling, MonitorEnv, MonitorKey, OpenRun};

/// What is due at a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "checkin", rename_all = "snake_case")]
pub enum DeadlineKind {
    /// `next_checkin_latest` passed: call [`sweep_missed`](super::sweep_missed).
    Missed,
    /// The run with this check-in id may have timed out: load the check-in and call
    /// [`sweep_timeout`](super::sweep_timeout).
    Timeout(Uuid),
    /// The open incident's alert is due again: call
    /// [`sweep_repeat`](super::oncall::sweep_repeat).
    Repeat,
}

/// One point in time at which a monitor environment needs a sweep. Ordered by time first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Deadline {
    /// When it is due.
    pub at: DateTime<Utc>,
    /// Whose deadline it is.
    pub key: MonitorKey,
    /// What is due.
    pub kind: DeadlineKind,
}

/// The deadlines a monitor environment has now: missed at `next_checkin_latest` (once it has
/// checked in or was armed by a person's declaration), a timeout at each open run's
/// `timeout_at`, and the open incident's follow-up (its held alert, or its next repeat unless
/// it was acknowledged). None while disabled.
pub fn deadlines_of(monitor: &MonitorEnv) -> Vec<Deadline> {
    deadlines_from(
        &monitor.key,
        monitor.disabled,
        monitor.next_checkin_latest,
        &monitor.open_runs,
        monitor
            .open_incident
            .as_ref()
            .and_then(|incident| incident.handling.follow_up()),
    )
}

/// The fields of a stored [`MonitorEnv`] its deadlines derive from. Decoding only these skips
/// the rest of the record, for the index rebuilt from every monitor at startup.
#[derive(Debug, Deserialize)]
pub struct DeadlineSource {
    key: MonitorKey,
    disabled: bool,
    next_checkin_latest: Option<DateTime<Utc>>,
    open_runs: Vec<OpenRun>,
    #[serde(default)]
    open_incident: Option<RepeatSource>,
}

/// The fields of a stored open incident its repeat deadline derives from.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RepeatSource {
    handling: Handling,
}

impl DeadlineSource {
    /// [`deadlines_of`] the monitor environment this was decoded from.
    pub fn deadlines(&self) -> Vec<Deadline> {
        deadlines_from(
            &self.key,
            self.disabled,
            self.next_checkin_latest,
            &self.open_runs,
            self.open_incident
                .as_ref()
                .and_then(|incident| incident.handling.follow_up()),
        )
    }
}

fn deadlines_from(
    key: &MonitorKey,
    disabled: bool,
    next_checkin_latest: Option<DateTime<Utc>>,
    open_runs: &[OpenRun],
    repeat: Option<DateTime<Utc>>,
) -> Vec<Deadline> {
    if disabled {
        return Vec::new();
    }
    let missed = next_checkin_latest.map(|at| Deadline {
        at,
        key: key.clone(),
        kind: DeadlineKind::Missed,
    });
    let timeouts = open_runs.iter().map(|run| Deadline {
        at: run.timeout_at,
        key: key.clone(),
        kind: DeadlineKind::Timeout(run.id),
    });
    let repeat = repeat.map(|at| Deadline {
        at,
        key: key.clone(),
        kind: DeadlineKind::Repeat,
    });
    missed.into_iter().chain(timeouts).chain(repeat).collect()
}

/// An index entry; the key is shared with the per-monitor map.
type Entry = (DateTime<Utc>, Arc<MonitorKey>, DeadlineKind);

/// All pending deadlines, ordered by time, replaceable per monitor environment.
///
/// Costs: [`upsert_for`](Self::upsert_for) and [`remove`](Self::remove) are O(d log n) for a
/// monitor with d deadlines; [`pop_due`](Self::pop_due) is O(k log n) for k due entries;
/// [`next_deadline`](Self::next_deadline) is O(log n). Nothing scans all monitors.
#[derive(Debug, Default, Clone)]
pub struct DeadlineIndex {
    by_time: BTreeSet<Entry>,
    by_key: HashMap<Arc<MonitorKey>, Vec<(DateTime<Utc>, DeadlineKind)>>,
}

impl DeadlineIndex {
    /// An empty index.
    pub fn new() -> DeadlineIndex {
        DeadlineIndex::default()
    }

    /// Replaces the deadlines of `monitor` with [`deadlines_of`] it.
    pub fn upsert_for(&mut self, monitor: &MonitorEnv) {
        self.replace(&monitor.key, deadlines_of(monitor));
    }

    /// Replaces the deadlines of `key` with `deadlines` (e.g. entries loaded from the store).
    /// Entries whose `key` differs from `key` are ignored.
    pub fn replace(&mut self, key: &MonitorKey, deadlines: Vec<Deadline>) {
        let mut mine: Vec<(DateTime<Utc>, DeadlineKind)> = deadlines
            .into_iter()
            .filter(|d| &d.key == key)
            .map(|d| (d.at, d.kind))
            .collect();
        mine.sort_unstable();
        mine.dedup();
        if mine.is_empty() {
            self.remove(key);
            return;
        }
        // Only the entries that changed move in the ordered set: a check-in usually moves one
        // deadline (a run's timeout added or gone) and keeps the others.
        let Some((shared, old)) = self.by_key.get_key_value(key) else {
            let shared = Arc::new(key.clone());
            for &(at, kind) in &mine {
                self.by_time.insert((at, Arc::clone(&shared), kind));
            }
            self.by_key.insert(shared, mine);
            return;
        };
        if *old == mine {
            return;
        }
        let shared = Arc::clone(shared);
        for entry in old.iter().filter(|entry| !mine.contains(entry)) {
            self.by_time
                .remove(&(entry.0, Arc::clone(&shared), entry.1));
        }
        for entry in mine.iter().filter(|entry| !old.contains(entry)) {
            self.by_time.insert((entry.0, Arc::clone(&shared), entry.1));
        }
        self.by_key.insert(shared, mine);
    }

    /// Forgets every deadline of `key` (monitor deleted or disabled).
    pub fn remove(&mut self, key: &MonitorKey) {
        if let Some((shared, entries)) = self.by_key.remove_entry(key) {
            for (at, kind) in entries {
                self.by_time.remove(&(at, Arc::clone(&shared), kind));
            }
        }
    }

    /// Removes and returns every deadline with `at <= now`, earliest first.
    ///
    /// The caller runs the matching sweep for each and then calls
    /// [`upsert_for`](Self::upsert_for) with the resulting state (or the unchanged state when
    /// the sweep returned `None`), which puts the monitor's future deadlines back.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Vec<Deadline> {
        let mut due = Vec::new();
        while let Some(first) = self.by_time.first() {
            if first.0 > now {
                break;
            }
            let Some((at, key, kind)) = self.by_time.pop_first() else {
                break;
            };
            if let Some(entries) = self.by_key.get_mut(&*key) {
                entries.retain(|entry| *entry != (at, kind));
                if entries.is_empty() {
                    self.by_key.remove(&*key);
                }
            }
            due.push(Deadline {
                at,
                key: MonitorKey::clone(&key),
                kind,
            });
        }
        due
    }

    /// The deadlines with `at <= now`, earliest first, without removing them.
    pub fn due(&self, now: DateTime<Utc>) -> impl Iterator<Item = Deadline> + '_ {
        self.by_time
            .iter()
            .take_while(move |entry| entry.0 <= now)
            .map(|(at, key, kind)| Deadline {
                at: *at,
                key: MonitorKey::clone(key),
                kind: *kind,
            })
    }

    /// The earliest pending deadline: when the sweeper should wake next.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.by_time.first().map(|entry| entry.0)
    }

    /// The pending deadlines of `key`, earliest first.
    pub fn deadlines_for(&self, key: &MonitorKey) -> Vec<Deadline> {
        self.by_key
            .get(key)
            .map(|entries| {
                entries
                    .iter()
                    .map(|&(at, kind)| Deadline {
                        at,
                        key: key.clone(),
                        kind,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of pending deadlines.
    pub fn len(&self) -> usize {
        self.by_time.len()
    }

    /// Whether no deadline is pending.
    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }

    /// Number of monitor environments with at least one pending deadline.
    pub fn monitors(&self) -> usize {
        self.by_key.len()
    }
}
