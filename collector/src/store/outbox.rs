//! The alert outbox over sled, and the [`Outbox`] the dispatcher drains. Stores deliveries as
//! it is given them; never decides what to alert or when to send.
//!
//! Two trees: `outbox` holds every delivery by id, pending and finished; `outbox_pending`
//! indexes the pending ones by `(channel, id)`, so a worker reads a bounded page of its
//! channel (from the oldest, or after an id it has seen) at the cost of a seek, never the
//! delivery history nor the rest of the backlog. How many a channel has pending is a counter
//! in memory ([`OutboxCount`]): counted once from the index at open, then kept exact by every
//! write that adds or finishes a pending delivery, so neither the dispatcher nor `/metrics`
//! scans a backlog to count it.
//!
//! New deliveries are written with the state change that caused them, atomically: as the
//! writes [`new_entry`] describes in the group of the change (`redo.rs`), with ids drawn from
//! sled's monotonic id generator.
//! The writers of one subject are serialized (per-monitor and per-issue locks, one task per
//! probe), so a subject's deliveries get increasing ids in commit order, which is the order
//! the dispatcher's dedup relies on; deliveries about different subjects committed at the
//! same moment may interleave.
//!
//! Finished deliveries (sent, failed, suppressed) are kept for `GET /api/v1/alerts` until more
//! than [`DELIVERIES_KEPT`] of them are stored; then the oldest finished ones go. A pending
//! delivery is never removed, nor counted against that limit: counting it made every save
//! during a backlog of more than that many prune, and each prune decode the whole backlog.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use chrono::DateTime;

use super::error::{StoreError, decode, encode};
use super::keys;
use super::page::{self, Cursor, Page};
use super::prepared::RawPut;
use super::trees::TreeId;
use super::{Store, WriteSet};
use crate::alert::outbox::{DeliveryState, Outbox, OutboxEntry, OutboxError};

/// Finished deliveries kept. Past this (plus a tenth, so pruning is amortized) the oldest
/// finished ones are removed.
pub const DELIVERIES_KEPT: usize = 10_000;

/// A delivery as `GET /api/v1/alerts` filters them.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter<'a> {
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Only deliveries to this channel.
    pub channel: Option<&'a str>,
}

impl Store {
    /// The newest `limit` deliveries matching `filter`, newest first, examining at most
    /// `examine` of them.
    pub fn deliveries(
        &self,
        filter: &DeliveryFilter<'_>,
        limit: usize,
        examine: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self
            .deliveries_page(filter, &Cursor::Start, limit, examine)?
            .items)
    }

    /// A page of the deliveries matching `filter`, newest first (by id, which sled hands out
    /// in increasing order). Pending ones are read from the pending index (one lane per
    /// channel, merged by id), so `state=pending` finds every pending delivery however many
    /// finished ones are newer. Other filters examine at most `examine` entries per page (a
    /// page may then hold fewer than `limit` and still have a next one).
    pub fn deliveries_page(
        &self,
        filter: &DeliveryFilter<'_>,
        from: &Cursor,
        limit: usize,
        examine: usize,
    ) -> Result<Page<OutboxEntry>, StoreError> {
        if filter.state == Some(DeliveryState::Pending) {
            let channels: Vec<String> = match filter.channel {
                Some(channel) => vec![channel.to_owned()],
                None => self.inner.outbox.pending.lock().keys().cloned().collect(),
            };
            let lanes = channels
                .iter()
                .map(|channel| page::Lane::of(keys::channel(channel)))
                .collect();
            let outbox = &self.trees().outbox;
            // Every entry of the index is pending but one a worker finished since the index
            // was read: nothing to bound, and an empty page means none is pending.
            return page::timeline(
                &self.trees().outbox_pending,
                lanes,
                from,
                limit,
                usize::MAX,
                |key, _| {
                    let Some(id) = keys::pending_id(key) else {
                        return Ok(None);
                    };
                    // Index and entry are written together; an entry finished since the index
                    // was read is skipped.
                    let Some(value) = outbox.get(id.to_be_bytes())? else {
                        return Ok(None);
                    };
                    let entry: OutboxEntry = decode("outbox", &value)?;
                    Ok((entry.state == DeliveryState::Pending).then_some(entry))
                },
            );
        }
        page::timeline(
            &self.trees().outbox,
            vec![page::Lane::of(Vec::new())],
            from,
            limit,
            examine,
            |_, value| {
                let entry: OutboxEntry = decode("outbox", value)?;
                let wanted = filter.state.is_none_or(|state| entry.state == state)
                    && filter
                        .channel
                        .is_none_or(|channel| entry.channel == channel);
                Ok(wanted.then_some(entry))
            },
        )
    }

    /// Pending deliveries per channel (channels with none are absent), from the counters.
    pub fn outbox_pending(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let pending = self.inner.outbox.pending.lock();
        Ok(pending.iter().map(|(c, n)| (c.clone(), *n)).collect())
    }

    /// Pending deliveries, all channels together.
    pub fn outbox_backlog(&self) -> usize {
        self.trees().outbox_pending.len()
    }

    /// Removes the oldest finished deliveries beyond `keep` finished ones. Cleanup, not
    /// state: it runs outside any transaction, one pruner at a time. Returns how many went.
    ///
    /// It reads from the oldest and skips pending entries, so its cost is what it removes
    /// plus the pending entries older than those; it runs once per `keep / 10` finished.
    fn prune_deliveries(&self, keep: usize) -> Result<usize, StoreError> {
        let count = &self.inner.outbox;
        let Some(_pruning) = count.pruning.try_lock() else {
            return Ok(0);
        };
        let mut excess = count.finished().saturating_sub(keep);
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

    /// The puts and removals that store `saved` deliveries with their pending index entries,
    /// and how they move each channel's pending count. Reads the index outside the write:
    /// right, because the caller is the only worker of each entry's channel, and other writes
    /// only add new ids to the index.
    pub(super) fn prepare_saved(
        &self,
        saved: &[OutboxEntry],
        puts: &mut Vec<RawPut>,
        removes: &mut Vec<(TreeId, Vec<u8>)>,
    ) -> Result<HashMap<String, isize>, StoreError> {
        let index = &self.trees().outbox_pending;
        let mut moves: HashMap<String, isize> = HashMap::new();
        for entry in saved {
            let pending_key = keys::pending(&entry.channel, entry.id);
            let indexed = index.contains_key(&pending_key)?;
            puts.push((
                TreeId::Outbox,
                entry.id.to_be_bytes().to_vec(),
                encode(entry),
            ));
            let delta = match (entry.state == DeliveryState::Pending, indexed) {
                (true, false) => {
                    puts.push((TreeId::OutboxPending, pending_key, Vec::new()));
                    1
                }
                (false, true) => {
                    removes.push((TreeId::OutboxPending, pending_key));
                    -1
                }
                _ => 0,
            };
            if delta != 0 {
                *moves.entry(entry.channel.clone()).or_default() += delta;
            }
        }
        Ok(moves)
    }

    /// Stores deliveries a channel worker changed, through the one write path (a write set,
    /// atomic with its index entries and redo records), then prunes finished ones if too many.
    fn save_entries(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        let set = WriteSet {
            saved: entries.to_vec(),
            ..WriteSet::default()
        };
        // Nothing in a save is stamped with the write's time.
        self.commit(&set, DateTime::UNIX_EPOCH)?;
        // Nobody waits for this write, but a delivery marked sent should reach the disk soon:
        // after a crash an unflushed `sent` is pending again and goes out a second time.
        self.inner.group.request();
        if self.inner.outbox.finished() > DELIVERIES_KEPT + DELIVERIES_KEPT / 10 {
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

    fn pending_after(
        &self,
        channel: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, OutboxError> {
        let Some(from) = after.map_or(Some(0), |after| after.checked_add(1)) else {
            return Ok(Vec::new());
        };
        let t = self.trees();
        let prefix = keys::channel(channel);
        let mut entries = Vec::new();
        for key in t
            .outbox_pending
            .range(keys::pending(channel, from)..)
            .keys()
            .take(limit)
        {
            let key = key.map_err(outbox_error)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let Some(id) = keys::pending_id(&key) else {
                continue;
            };
            // As in `pending`: an index key without its entry would be a bug.
            if let Some(value) = t.outbox.get(id.to_be_bytes()).map_err(outbox_error)? {
                entries.push(decode("outbox", &value).map_err(outbox_error)?);
            }
        }
        Ok(entries)
    }

    fn pending_count(&self, channel: &str) -> usize {
        self.inner.outbox.pending(channel)
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
    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::alert::outbox::NewDelivery;
    use crate::engine::alerting::{Links, Payload, probe_alert};
    use crate::engine::probes::ProbeNotice;
    use crate::store::WriteSet;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 3, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs)
    }

    fn delivery(channel: &str, probe: &str) -> NewDelivery {
        let change = ProbeNotice {
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

        let all = store
            .deliveries(&DeliveryFilter::default(), 10, 10)
            .unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let filter = DeliveryFilter {
            state: Some(DeliveryState::Sent),
            channel: None,
        };
        assert_eq!(store.deliveries(&filter, 10, 10).unwrap(), vec![sent]);
    }

    /// `state=pending` reads the pending index: an old pending delivery behind many newer
    /// finished ones is on the first page, whatever the examine bound.
    #[test]
    fn pending_deliveries_are_paged_from_their_index_behind_newer_finished_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(&store, vec![delivery("tg", "old"), delivery("mail", "old")]);
        for n in 0..30 {
            commit(&store, vec![delivery("tg", &format!("new-{n}"))]);
        }
        let mut newer = store.pending("tg", 100).unwrap();
        newer.remove(0);
        for entry in &mut newer {
            entry.state = DeliveryState::Sent;
        }
        store.save(&newer).unwrap();
        let pending = DeliveryFilter {
            state: Some(DeliveryState::Pending),
            channel: None,
        };
        let first = store
            .deliveries_page(&pending, &Cursor::Start, 1, 1)
            .unwrap();
        assert_eq!(first.items.len(), 1);
        let second = store
            .deliveries_page(&pending, first.next.as_ref().unwrap(), 1, 1)
            .unwrap();
        assert_eq!(second.items.len(), 1);
        assert!(second.next.is_none());
        assert!(first.items[0].id > second.items[0].id, "newest first");
        let channels: Vec<&str> = [&first, &second]
            .iter()
            .map(|p| p.items[0].channel.as_str())
            .collect();
        assert_eq!(channels, ["mail", "tg"]);
        let tg = DeliveryFilter {
            state: Some(DeliveryState::Pending),
            channel: Some("tg"),
        };
        let only = store.deliveries_page(&tg, &Cursor::Start, 10, 1).unwrap();
        assert_eq!(only.items.len(), 1);
        assert_eq!(only.items[0].channel, "tg");
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
        assert_eq!(store.prune_deliveries(3).unwrap(), 2, "5 finished, 3 kept");
        let left: Vec<u64> = store
            .deliveries(&DeliveryFilter::default(), 10, 10)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            left,
            [pending[5].id, pending[4].id, pending[3].id, pending[0].id]
        );
        assert_eq!(store.prune_deliveries(3).unwrap(), 0);
    }

    #[test]
    fn pending_counts_stay_exact_through_commits_saves_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            commit(
                &store,
                (0..5).map(|i| delivery("hook", &i.to_string())).collect(),
            );
            commit(&store, vec![delivery("tg", "a")]);
            assert_eq!(
                (store.pending_count("hook"), store.pending_count("tg")),
                (5, 1)
            );
            assert_eq!(store.pending_count("nowhere"), 0);

            let hook = store.pending("hook", 10).unwrap();
            let mut sent = hook[0].clone();
            sent.state = DeliveryState::Sent;
            let mut retry = hook[1].clone();
            retry.attempts = 1;
            store.save(&[sent.clone(), retry]).unwrap();
            assert_eq!(store.pending_count("hook"), 4, "a retry stays pending");
            // Saving a finished entry again (a save retried after an error) counts nothing.
            store.save(&[sent]).unwrap();
            assert_eq!(store.pending_count("hook"), 4);

            let tg = store.pending("tg", 10).unwrap();
            let suppressed = OutboxEntry {
                state: DeliveryState::Suppressed,
                ..tg[0].clone()
            };
            store.save(&[suppressed]).unwrap();
            assert_eq!(store.pending_count("tg"), 0);
            assert_eq!(
                store.outbox_pending().unwrap(),
                BTreeMap::from([("hook".to_owned(), 4)]),
                "a channel with nothing pending is absent"
            );
            // Pages after an id: bounded, in order, only this channel.
            let after = store.pending_after("hook", Some(hook[1].id), 2).unwrap();
            let ids: Vec<u64> = after.iter().map(|e| e.id).collect();
            assert_eq!(ids, [hook[2].id, hook[3].id]);
            assert!(
                store
                    .pending_after("hook", Some(hook[4].id), 10)
                    .unwrap()
                    .is_empty()
            );
            assert!(
                store
                    .pending_after("hook", Some(u64::MAX), 10)
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                store.pending_after("hook", None, 10).unwrap()[0].id,
                hook[1].id
            );
            store.flush_blocking().unwrap();
        }
        let store = crate::store::tests::reopen(dir.path()).unwrap();
        assert_eq!(
            (store.pending_count("hook"), store.pending_count("tg")),
            (4, 0)
        );
        assert_eq!(store.pending("hook", 10).unwrap().len(), 4);
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
