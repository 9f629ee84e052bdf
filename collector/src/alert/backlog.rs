//! A channel worker's view of its pending deliveries, kept in memory so that taking the next
//! delivery and finishing one cost a map operation, not a read of the whole backlog.
//!
//! The outbox stays the source of truth: the view is loaded from it once when the worker
//! starts (one pass over the channel's pending entries) and then only follows it: new entries
//! are read after the highest id seen (the *tail*), and the entries to send are read a page at
//! a time after the last one read (the *page*). Each entry is read and decoded about twice in
//! its life (once when learned, once when its page comes), whatever the backlog.
//!
//! Two lanes:
//! - the **page**: the oldest pending entries, in id order, at most `batch`; sent oldest first;
//! - the **fresh lane**: entries learned during a storm about a subject (monitor, probe,
//!   issue) that has nothing older pending on the channel, or only entries in this lane. It
//!   goes before the page, newest subject first, so an alert raised after a storm began is
//!   next, not queued behind thousands of alerts about other subjects (the storm's own late
//!   arrivals are new subjects too; newest first keeps them from standing in front of it).
//!   One subject's alerts stay in order: an entry enters the lane only if every older entry
//!   about its subject is in it, and the lane sends a subject's entries oldest first. The lane
//!   holds at most `batch` entries (memory stays bounded): when full, its oldest subject goes
//!   back to waiting in id order with the page, all of its entries together.
//!
//! For that, the view knows the subject of every pending entry of the channel (`subjects`, a
//! set of `(subject, id)`: exact, and idempotent when an entry is seen twice).
//!
//! One gap is accepted: ids are drawn before the write that makes them visible, so an entry
//! written by a probe's transaction can appear below an id the tail already passed. The tail
//! does not see it; the page does when it reaches its place (a page read from the start
//! happens whenever the page is empty and the outbox's count says entries are unaccounted
//! for), so it is delayed, never lost. Should a newer alert about its subject have gone out
//! first, the dispatcher's dedup marks the older one superseded rather than sending it late.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::outbox::{DeliveryState, Outbox, OutboxEntry, OutboxError};
use crate::engine::alerting::Payload;

/// The subject an entry is about: an alert's subject key; a digest has none (it stands for
/// many, and only channels that never prefer fresh entries carry digests).
fn subject(entry: &OutboxEntry) -> Option<String> {
    match &entry.payload {
        Payload::Alert(alert) => Some(alert.subject_key()),
        Payload::Digest(_) => None,
    }
}

/// Whether `entry` may be tried at `now` or holds up the ones behind it: anything but an
/// entry dedup deferred to later (a backoff does hold the lane, see the dispatcher).
fn ready(entry: &OutboxEntry, now: DateTime<Utc>) -> bool {
    !(entry.deferred && entry.next_attempt_at > now)
}

/// One channel's pending deliveries, as its worker sees them.
#[derive(Debug)]
pub(super) struct Backlog {
    channel: String,
    batch: usize,
    loaded: bool,
    /// The oldest pending entries read so far, by id.
    page: BTreeMap<u64, OutboxEntry>,
    /// The page has read the outbox up to this id (`None`: nothing read yet).
    page_end: Option<u64>,
    /// The highest id learned.
    tail: Option<u64>,
    /// Entries that go before the page (see the module docs), by id.
    fresh: BTreeMap<u64, OutboxEntry>,
    /// `(subject, id)` of every pending entry learned.
    subjects: BTreeSet<(String, u64)>,
}

impl Backlog {
    /// An empty view of `channel`, holding at most `batch` entries per lane; it loads on the
    /// first [`Backlog::learn`].
    pub(super) fn new(channel: &str, batch: usize) -> Backlog {
        Backlog {
            channel: channel.to_owned(),
            batch: batch.max(1),
            loaded: false,
            page: BTreeMap::new(),
            page_end: None,
            tail: None,
            fresh: BTreeMap::new(),
            subjects: BTreeSet::new(),
        }
    }

    /// Reads what was added to the outbox since the last call (at most one `batch`; returns
    /// whether more may be waiting). The first call loads the channel's whole backlog
    /// instead. During a `storm`, a new entry whose subject has nothing older pending outside
    /// the fresh lane joins that lane.
    pub(super) fn learn(&mut self, outbox: &dyn Outbox, storm: bool) -> Result<bool, OutboxError> {
        if !self.loaded {
            self.load(outbox)?;
            return Ok(false);
        }
        let new = outbox.pending_after(&self.channel, self.tail, self.batch)?;
        let more = new.len() == self.batch;
        for entry in new {
            let caught_up = self.page_end >= self.tail;
            self.tail = Some(entry.id);
            let key = subject(&entry);
            let fresh = storm && self.may_go_first(&entry);
            if let Some(key) = key {
                self.subjects.insert((key, entry.id));
            }
            if fresh {
                self.make_room();
                if caught_up {
                    self.page_end = Some(entry.id);
                }
                self.fresh.insert(entry.id, entry);
            } else if caught_up && self.page.len() < self.batch {
                self.page_end = Some(entry.id);
                self.page.insert(entry.id, entry);
            }
            // Otherwise the page reads it when it gets there.
        }
        Ok(more)
    }

    /// Whether every older pending entry about `entry`'s subject is in the fresh lane.
    fn may_go_first(&self, entry: &OutboxEntry) -> bool {
        let Some(key) = subject(entry) else {
            return false;
        };
        let older = (key.clone(), 0)..(key, entry.id);
        self.subjects
            .range(older)
            .all(|(_, id)| self.fresh.contains_key(id))
    }

    /// Sends the fresh lane's oldest subject back to wait with the page while the lane is
    /// full. Its entries join the page if the page has read past them, or the page reads them
    /// when it gets there; either way after the older entries, like any entry in id order.
    fn make_room(&mut self) {
        while self.fresh.len() >= self.batch {
            let Some(oldest) = self.fresh.values().next().and_then(subject) else {
                // Only alerts enter the lane; a digest cannot be there.
                return;
            };
            let ids: Vec<u64> = self
                .subjects
                .range((oldest.clone(), 0)..=(oldest, u64::MAX))
                .map(|(_, id)| *id)
                .filter(|id| self.fresh.contains_key(id))
                .collect();
            for id in ids {
                if let Some(entry) = self.fresh.remove(&id)
                    && self.page_end.is_some_and(|end| id <= end)
                {
                    self.page.insert(id, entry);
                }
            }
        }
    }

    /// The startup pass: every pending entry once, for the subjects; the first page kept.
    fn load(&mut self, outbox: &dyn Outbox) -> Result<(), OutboxError> {
        let mut after = None;
        loop {
            let entries = outbox.pending_after(&self.channel, after, self.batch)?;
            let done = entries.len() < self.batch;
            for entry in entries {
                after = Some(entry.id);
                if let Some(key) = subject(&entry) {
                    self.subjects.insert((key, entry.id));
                }
                if self.page.len() < self.batch {
                    self.page_end = Some(entry.id);
                    self.page.insert(entry.id, entry);
                }
            }
            if done {
                break;
            }
        }
        self.tail = after;
        self.loaded = true;
        Ok(())
    }

    /// Tops the page up when it runs below half a batch: the entries after the last one it
    /// read, or, when it is empty and the outbox counts `pending` entries the view does not
    /// hold, from the oldest (see the module docs on the gap).
    pub(super) fn refill(
        &mut self,
        outbox: &dyn Outbox,
        pending: usize,
    ) -> Result<(), OutboxError> {
        if self.page.len() >= self.batch / 2 {
            return Ok(());
        }
        if self.page_end < self.tail {
            let room = self.batch - self.page.len();
            for entry in outbox.pending_after(&self.channel, self.page_end, room)? {
                self.page_end = Some(entry.id);
                self.keep(entry);
            }
        }
        if self.page.is_empty() && pending > self.fresh.len() {
            for entry in outbox.pending(&self.channel, self.batch)? {
                self.page_end = self.page_end.max(Some(entry.id));
                self.tail = self.tail.max(Some(entry.id));
                self.keep(entry);
            }
        }
        Ok(())
    }

    /// Takes a page entry in, unless the fresh lane has it.
    fn keep(&mut self, entry: OutboxEntry) {
        if self.fresh.contains_key(&entry.id) {
            return;
        }
        if let Some(key) = subject(&entry) {
            self.subjects.insert((key, entry.id));
        }
        self.page.insert(entry.id, entry);
    }

    /// The entry to try next: from the fresh lane, the newest ready entry that is the oldest
    /// of its subject there; else the oldest ready entry of the page.
    pub(super) fn next(&self, now: DateTime<Utc>) -> Option<&OutboxEntry> {
        let first_of_subject = |entry: &&OutboxEntry| {
            subject(entry).is_some_and(|key| {
                !self
                    .subjects
                    .range((key.clone(), 0)..(key, entry.id))
                    .any(|(_, id)| self.fresh.contains_key(id))
            })
        };
        self.fresh
            .values()
            .rev()
            .filter(|e| ready(e, now))
            .find(first_of_subject)
            .or_else(|| self.page.values().find(|e| ready(e, now)))
    }

    /// The page's ready entries, oldest first (what a digest would collapse).
    pub(super) fn ready_page(&self, now: DateTime<Utc>) -> Vec<&OutboxEntry> {
        self.page.values().filter(|e| ready(e, now)).collect()
    }

    /// When the first entry held back by dedup comes due.
    pub(super) fn first_deferred(&self) -> Option<DateTime<Utc>> {
        self.page
            .values()
            .chain(self.fresh.values())
            .map(|e| e.next_attempt_at)
            .min()
    }

    /// Entries in the fresh lane.
    #[cfg(test)]
    fn fresh_len(&self) -> usize {
        self.fresh.len()
    }

    /// Takes in entries the outbox saved: a pending one replaces its old version in its lane,
    /// a finished one leaves the view.
    pub(super) fn saved(&mut self, entries: &[OutboxEntry]) {
        for entry in entries {
            let in_fresh = self.fresh.contains_key(&entry.id);
            let old = if in_fresh {
                self.fresh.remove(&entry.id)
            } else {
                self.page.remove(&entry.id)
            };
            if let Some(key) = old.as_ref().and_then(subject) {
                self.subjects.remove(&(key, entry.id));
            }
            if entry.state == DeliveryState::Pending {
                if let Some(key) = subject(entry) {
                    self.subjects.insert((key, entry.id));
                }
                let lane = if in_fresh {
                    &mut self.fresh
                } else {
                    &mut self.page
                };
                lane.insert(entry.id, entry.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::alert::NewDelivery;
    use crate::engine::alerting::{Links, probe_alert};
    use crate::engine::probes::ProbeNotice;
    use crate::store::{Store, WriteSet};

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 3, 0, 0).unwrap()
    }

    fn delivery(probe: &str, down: bool) -> NewDelivery {
        let change = ProbeNotice {
            down,
            name: probe.to_owned(),
            url: "http://127.0.0.1:1/health".to_owned(),
            status_code: Some(503),
            error: None,
            since: None,
        };
        NewDelivery {
            channel: "hook".to_owned(),
            rule: "uptime".to_owned(),
            payload: Payload::Alert(probe_alert(&change, &Links::new("http://x"), at())),
        }
    }

    fn commit(store: &Store, deliveries: Vec<NewDelivery>) {
        let set = WriteSet {
            deliveries,
            ..WriteSet::default()
        };
        store.commit(&set, at()).unwrap();
    }

    fn name(entry: &OutboxEntry) -> String {
        subject(entry).unwrap()
    }

    /// Sends what `backlog` offers next, marking it sent in the store and the view.
    fn send_next(store: &Store, backlog: &mut Backlog) -> String {
        let mut entry = backlog.next(at()).expect("an entry").clone();
        entry.state = DeliveryState::Sent;
        store.save(std::slice::from_ref(&entry)).unwrap();
        backlog.saved(&[entry.clone()]);
        name(&entry)
    }

    #[test]
    fn a_new_subject_goes_before_a_storm_but_never_before_its_own_older_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(
            &store,
            (0..50)
                .map(|i| delivery(&format!("storm-{i}"), true))
                .collect(),
        );
        let mut backlog = Backlog::new("hook", 8);
        assert!(!backlog.learn(&store, true).unwrap(), "loads");
        assert_eq!(send_next(&store, &mut backlog), "probe/storm-0");

        // During the storm: a new subject, a storm subject's recovery, the new one's recovery.
        commit(&store, vec![delivery("fresh", true)]);
        commit(&store, vec![delivery("storm-30", false)]);
        commit(&store, vec![delivery("fresh", false)]);
        backlog.learn(&store, true).unwrap();
        assert_eq!(backlog.fresh_len(), 2, "fresh's two alerts, not storm-30's");
        let first: Vec<String> = (0..3).map(|_| send_next(&store, &mut backlog)).collect();
        assert_eq!(first, ["probe/fresh", "probe/fresh", "probe/storm-1"]);
        backlog.refill(&store, store.pending_count("hook")).unwrap();

        // The rest in id order: storm-30's recovery after its failure.
        let mut rest = Vec::new();
        while backlog.next(at()).is_some() {
            rest.push(send_next(&store, &mut backlog));
            backlog.refill(&store, store.pending_count("hook")).unwrap();
        }
        assert_eq!(rest.len(), 49, "{rest:?}");
        let failed = rest.iter().position(|s| s == "probe/storm-30").unwrap();
        let recovered = rest.iter().rposition(|s| s == "probe/storm-30").unwrap();
        assert!(failed < recovered, "{rest:?}");
        assert_eq!(recovered, 48, "the recovery came last: {rest:?}");
        assert_eq!(store.pending_count("hook"), 0);
    }

    #[test]
    fn the_newest_subject_goes_first_and_a_full_lane_sends_its_oldest_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(
            &store,
            (0..10)
                .map(|i| delivery(&format!("old-{i}"), true))
                .collect(),
        );
        let mut backlog = Backlog::new("hook", 4);
        backlog.learn(&store, true).unwrap();
        // Late arrivals of the storm, then the alert that matters.
        commit(
            &store,
            (0..5)
                .map(|i| delivery(&format!("late-{i}"), true))
                .collect(),
        );
        commit(&store, vec![delivery("real", true)]);
        while backlog.learn(&store, true).unwrap() {}
        assert_eq!(backlog.fresh_len(), 4, "the lane holds at most a batch");
        let mut order = Vec::new();
        while backlog.next(at()).is_some() {
            order.push(send_next(&store, &mut backlog));
            backlog.refill(&store, store.pending_count("hook")).unwrap();
        }
        let want: Vec<String> = ["real", "late-4", "late-3", "late-2"]
            .into_iter()
            .map(str::to_owned)
            .chain((0..10).map(|i| format!("old-{i}")))
            .chain(["late-0".to_owned(), "late-1".to_owned()])
            .map(|s| format!("probe/{s}"))
            .collect();
        assert_eq!(order, want);
    }

    #[test]
    fn without_a_storm_everything_goes_in_order_and_a_restart_reloads_the_view() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(&store, vec![delivery("a", true), delivery("b", true)]);
        let mut backlog = Backlog::new("hook", 4);
        backlog.learn(&store, false).unwrap();
        commit(&store, vec![delivery("c", true)]);
        backlog.learn(&store, false).unwrap();
        assert_eq!(backlog.fresh_len(), 0);
        assert_eq!(send_next(&store, &mut backlog), "probe/a");

        // A second view (a restart) sees the same pending entries, in order, and the page
        // tops up past its first batch.
        commit(
            &store,
            (0..6).map(|i| delivery(&format!("x{i}"), true)).collect(),
        );
        let mut again = Backlog::new("hook", 4);
        again.learn(&store, false).unwrap();
        let mut order = Vec::new();
        while again.next(at()).is_some() {
            order.push(send_next(&store, &mut again));
            again.refill(&store, store.pending_count("hook")).unwrap();
        }
        assert_eq!(
            order,
            ["b", "c", "x0", "x1", "x2", "x3", "x4", "x5"].map(|s| format!("probe/{s}"))
        );
    }
}
