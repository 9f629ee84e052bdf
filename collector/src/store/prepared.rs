//! A write set as the committer writes it ([`Prepared`]): every key and value, encoded on the
//! caller's thread, with what the write changes besides sled (caches, counters) once it is
//! written.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::{StoreError, decode_monitor, encode};
use super::keys;
use super::tally::MonitorCounts;
use super::trees::{TreeId, Trees};
use crate::alert::outbox::NewDelivery;
use crate::engine::{Incident, MonitorKey, MonitorStatus};

/// A [`WriteSet`] encoded for sled: every key and value it writes, computed on the caller's
/// thread rather than on the committer thread, which every write waits for.
pub(super) struct Prepared {
    pub(super) monitors: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) checkins: Vec<PreparedCheckIn>,
    pub(super) incidents: Vec<IncidentWrite>,
    pub(super) deliveries: Vec<NewDelivery>,
    pub(super) issues: Vec<(Vec<u8>, Vec<u8>)>,
    /// Each written issue's `issue_times` entry: the one it replaces (if it moved) and its own.
    pub(super) issue_times: Vec<IndexMove>,
    pub(super) events: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) logs: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) upstream: Vec<Vec<u8>>,
    /// Other puts (probes), before the removals.
    pub(super) puts: Vec<RawPut>,
    /// Keys retention, deletes and retired probes remove, after the writes above.
    pub(super) removes: Vec<(TreeId, Vec<u8>)>,
    /// Monitor environments deleted, with their status before (for the tally).
    pub(super) deleted: Vec<(MonitorKey, Option<MonitorStatus>)>,
    /// The check-ins among them.
    pub(super) pruned: Vec<Uuid>,
    /// How the write changes the number of check-ins of the monitor environments it touches.
    pub(super) counts: Counts,
    /// How it changes the monitors' statuses (applied to the tally once written).
    pub(super) moves: Vec<StatusMove>,
    /// When deliveries are created.
    /// How the saved deliveries move the pending counts, per channel (`+1` in, `-1` out).
    pub(super) pending_moves: HashMap<String, isize>,
    pub(super) now: DateTime<Utc>,
}

/// A check-in as the committer writes it.
pub(super) struct PreparedCheckIn {
    pub(super) id: Uuid,
    /// Its `checkins` key.
    pub(super) key: Vec<u8>,
    /// Its record, or `None` for the `in_progress` check-in of a run that is open after the
    /// write: the monitor record holds that one ([`OpenRun`]), and its id index entry points
    /// at the key the record will have.
    pub(super) value: Option<Vec<u8>>,
    /// Its `checkins` key before this write, if it was stored (its time, hence its key, may
    /// change).
    pub(super) previous: Option<Vec<u8>>,
    /// Whether a record was stored under `previous` (not so for an open run).
    pub(super) had_record: bool,
}

/// The check-ins of a write set, prepared ([`Store::prepare_checkins`]).
pub(super) struct PreparedCheckIns<'a> {
    pub(super) checkins: Vec<PreparedCheckIn>,
    /// The monitor environment of each, in the same order.
    pub(super) owners: Vec<&'a MonitorKey>,
    /// Check-in records added less records removed without a replacement, per monitor
    /// environment.
    pub(super) net: HashMap<&'a MonitorKey, isize>,
    /// A check-in moved in from another monitor environment (see [`Counts::forget_all`]).
    pub(super) forget_all: bool,
    /// Each written monitor's status before and after the write.
    pub(super) moves: Vec<StatusMove>,
}

/// A monitor environment's stored status before a write (`None`: new) and the one it writes.
pub(super) type StatusMove = (Option<MonitorStatus>, MonitorStatus);

/// Monitor environments by status, counted by decoding every record (at open, or after a
/// failed write made the tally stale).
pub(super) fn count_monitors(trees: &Trees) -> Result<MonitorCounts, StoreError> {
    let mut counts = MonitorCounts::default();
    for value in trees.monitors.iter().values() {
        counts.add(decode_monitor(&value?)?.status);
    }
    Ok(counts)
}

/// What a write does to the number of check-ins a monitor environment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    /// It holds exactly this many after the write (counted by retention).
    Exact(usize),
    /// It holds this many more (or fewer: a run open again after a re-enable drops its
    /// record).
    Added(isize),
    /// Not known any more (retention failed part way).
    Unknown,
}

/// What a write does to the check-in counts the cache keeps.
#[derive(Debug, Clone, Default)]
pub(super) struct Counts {
    /// Per monitor environment, at most one each.
    pub(super) changes: Vec<(MonitorKey, Count)>,
    /// A check-in moved in from another monitor environment: forget every count.
    pub(super) forget_all: bool,
}

impl Counts {
    pub(super) fn set(&mut self, key: &MonitorKey, count: Count) {
        self.changes.push((key.clone(), count));
    }
}

/// A put of a value under a key of a tree, as the committer writes it.
pub(super) type RawPut = (TreeId, Vec<u8>, Vec<u8>);

/// An index entry that moves: the key it had (if any, and if different) and the key it gets.
pub(super) type IndexMove = (Option<Vec<u8>>, Vec<u8>);

/// What a successful write changes besides sled: caches and counters ([`Store::committed`]).
pub(super) struct Committed {
    pub(super) pruned: Vec<Uuid>,
    pub(super) counts: Counts,
    pub(super) moves: Vec<StatusMove>,
    pub(super) deleted: Vec<(MonitorKey, Option<MonitorStatus>)>,
    pub(super) pending_moves: HashMap<String, isize>,
}

impl Prepared {
    /// What [`Store::committed`] takes in once this is written.
    pub(super) fn committed(&self) -> Committed {
        Committed {
            pruned: self.pruned.clone(),
            counts: self.counts.clone(),
            moves: self.moves.clone(),
            deleted: self.deleted.clone(),
            pending_moves: self.pending_moves.clone(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.monitors.is_empty()
            && self.checkins.is_empty()
            && self.incidents.is_empty()
            && self.deliveries.is_empty()
            && self.issues.is_empty()
            && self.events.is_empty()
            && self.logs.is_empty()
            && self.upstream.is_empty()
            && self.puts.is_empty()
            && self.removes.is_empty()
    }
}

/// What a write set stores, indexed for its retention.
pub(super) struct Written<'a> {
    /// Check-in records the write adds (none stored before) less those it removes because
    /// their run is open again (held by the monitor), per monitor environment.
    pub(super) net: &'a HashMap<&'a MonitorKey, isize>,
    /// The keys of every check-in it adds or rewrites, per monitor environment, sorted.
    pub(super) keys: HashMap<&'a MonitorKey, Vec<Vec<u8>>>,
    /// Ids of every check-in it adds or rewrites.
    pub(super) ids: std::collections::HashSet<Uuid>,
    /// Log entries per monitor environment.
    pub(super) logs: HashMap<&'a MonitorKey, usize>,
}

/// An incident as written: its record under its key, indexed by time in `incident_times`, and
/// in `open_incidents` while it is open.
pub(super) struct IncidentWrite {
    pub(super) key: Vec<u8>,
    pub(super) value: Vec<u8>,
    pub(super) open: bool,
}

impl IncidentWrite {
    pub(super) fn of(incident: &Incident) -> IncidentWrite {
        IncidentWrite {
            key: incident_key(incident),
            value: encode(incident),
            open: incident.resolved_at.is_none(),
        }
    }

    /// Its key in the time indexes.
    pub(super) fn time_key(&self) -> &[u8] {
        keys::timed_suffix(&self.key)
    }
}

pub(super) fn incident_key(incident: &Incident) -> Vec<u8> {
    keys::timed(
        &keys::monitor(&incident.key),
        incident.opened_at,
        incident.id,
    )
}
