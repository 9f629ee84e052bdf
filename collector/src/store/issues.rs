//! Issues and their recent events: reads, and retention per issue. Writes go through
//! [`Store::commit`], so an event, its issue's new state and the alerts it caused are one
//! transaction. Stores what the engine decided; never groups or counts anything itself.
//!
//! An event is keyed `issue ++ received ++ event id`: an issue's events are one prefix scan in
//! the order they arrived, and retention trims that prefix alone.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use super::Store;
use super::error::{StoreError, decode};
use super::keys;
use super::page::{self, Cursor, Page};
use crate::engine::{Issue, IssueStatus};

impl Store {
    /// One issue.
    pub fn issue(&self, id: &str) -> Result<Option<Issue>, StoreError> {
        self.trees()
            .issues
            .get(keys::issue(id))?
            .map(|v| decode("issues", &v))
            .transpose()
    }

    /// A page of issues, of one project and in one status if given, most recently seen first,
    /// read from the `issue_times` index. The filters examine at most `examine` records per
    /// page (a page may then hold fewer than `limit` and still have a next one). The order is
    /// by a time that changes: an issue seen again while a client walks the pages moves to the
    /// first page, so the walk may miss it (it is newer than the cursor) or, never, list it
    /// twice.
    pub fn issues_page(
        &self,
        project: Option<u64>,
        status: Option<IssueStatus>,
        from: &Cursor,
        limit: usize,
        examine: usize,
    ) -> Result<Page<Issue>, StoreError> {
        let issues = &self.trees().issues;
        page::timeline(
            &self.trees().issue_times,
            vec![page::Lane::of(Vec::new())],
            from,
            limit,
            examine,
            |key, _| {
                let Some(value) = issues.get(&key[8..])? else {
                    return Ok(None);
                };
                let issue: Issue = decode("issues", &value)?;
                let wanted = project.is_none_or(|p| issue.project == p)
                    && status.is_none_or(|s| issue.status == s);
                Ok(wanted.then_some(issue))
            },
        )
    }

    /// The newest `limit` events of an issue, newest first, as sent (JSON).
    pub fn issue_events(&self, id: &str, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.issue_events_page(id, &Cursor::Start, limit)?.items)
    }

    /// A page of the events of an issue, newest first, as sent (JSON).
    pub fn issue_events_page(
        &self,
        id: &str,
        from: &Cursor,
        limit: usize,
    ) -> Result<Page<Vec<u8>>, StoreError> {
        page::timeline(
            &self.trees().events,
            vec![page::Lane::of(keys::issue(id))],
            from,
            limit,
            limit,
            |_, v| Ok(Some(v.to_vec())),
        )
    }

    /// When the newest `limit` events of an issue were received, newest first. Reads keys only.
    pub fn issue_event_times(
        &self,
        id: &str,
        limit: usize,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let mut times = Vec::new();
        for key in self
            .trees()
            .events
            .scan_prefix(keys::issue(id))
            .keys()
            .rev()
            .take(limit)
        {
            times.extend(keys::timed_at(&key?));
        }
        Ok(times)
    }

    /// Drops all but the newest `keep` events of an issue. Cleanup, not state: it need not be
    /// atomic with the write that made it necessary. Returns how many were removed.
    pub fn prune_issue_events(&self, id: &str, keep: usize) -> Result<usize, StoreError> {
        let events = &self.trees().events;
        let old: Vec<_> = events
            .scan_prefix(keys::issue(id))
            .keys()
            .rev()
            .skip(keep)
            .collect::<Result<_, _>>()?;
        let mut removed = 0;
        for key in old {
            if events.remove(key)?.is_some() {
                removed += 1;
            }
        }
        if removed > 0 {
            self.inner.events.fetch_sub(removed, Ordering::Relaxed);
            self.inner.group.record_write();
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};
    use uuid::Uuid;
    use watchpost_protocol::Event;

    use super::*;
    use crate::engine::issues::process_event;
    use crate::store::{RawEvent, WriteSet};

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    fn event(id: u128, message: &str) -> (Event, Vec<u8>) {
        let json = serde_json::json!({
            "event_id": Uuid::from_u128(id).simple().to_string(),
            "timestamp": 1_777_636_800,
            "message": message,
        });
        let payload = serde_json::to_vec(&json).unwrap();
        (serde_json::from_slice(&payload).unwrap(), payload)
    }

    /// Stores events one commit each, as the processor does; returns the issue.
    fn ingest(store: &Store, project: u64, events: &[(u128, &str, i64)]) -> Vec<Issue> {
        let mut out = Vec::new();
        for &(id, message, secs) in events {
            let (event, payload) = event(id, message);
            let issue_id = crate::engine::issues::event_issue_id(project, &event);
            let stored = store.issue(&issue_id).unwrap();
            let (issue, _) = process_event(stored, &event, project, at(secs), &[]);
            let set = WriteSet {
                issues: vec![issue.clone()],
                events: vec![RawEvent {
                    issue: issue.id.clone(),
                    event_id: event.event_id,
                    received: at(secs),
                    payload,
                }],
                ..WriteSet::default()
            };
            store.commit(&set, at(secs)).unwrap();
            out.push(issue);
        }
        out
    }

    #[test]
    fn issues_and_their_events_are_read_back_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stored = ingest(
            &store,
            1,
            &[(1, "disk full", 0), (2, "disk full", 5), (3, "no route", 3)],
        );
        ingest(&store, 2, &[(4, "disk full", 9)]);
        let disk = &stored[1];
        assert_eq!(store.issue(&disk.id).unwrap().as_ref(), Some(disk));
        assert_eq!(disk.count, 2);

        let issues = |project, status| {
            store
                .issues_page(project, status, &Cursor::Start, 100, 100)
                .unwrap()
                .items
        };
        let titles = |project| -> Vec<String> {
            issues(project, None).into_iter().map(|i| i.title).collect()
        };
        assert_eq!(
            titles(Some(1)),
            ["disk full", "no route"],
            "most recently seen first"
        );
        assert_eq!(issues(None, None).len(), 3);
        assert!(issues(None, Some(IssueStatus::Resolved)).is_empty());
        // Seen again, an issue moves to the front of the index, listed once.
        ingest(&store, 1, &[(5, "no route", 7)]);
        assert_eq!(titles(Some(1)), ["no route", "disk full"]);
        assert_eq!(issues(None, None).len(), 3);

        let ids: Vec<String> = store
            .issue_events(&disk.id, 10)
            .unwrap()
            .iter()
            .map(|raw| {
                serde_json::from_slice::<Event>(raw)
                    .unwrap()
                    .event_id
                    .to_string()
            })
            .collect();
        assert_eq!(
            ids,
            [
                Uuid::from_u128(2).to_string(),
                Uuid::from_u128(1).to_string()
            ]
        );
        assert_eq!(
            store.issue_event_times(&disk.id, 10).unwrap(),
            [at(5), at(0)],
            "receive times from the keys, newest first"
        );
        assert_eq!(store.issue_event_times(&disk.id, 1).unwrap(), [at(5)]);
        assert!(store.issue("nope").unwrap().is_none());
        assert!(
            store.issue_events(&disk.id[..4], 10).unwrap().is_empty(),
            "exact prefix"
        );
    }

    #[test]
    fn retention_keeps_the_newest_events_of_each_issue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let events: Vec<(u128, &str, i64)> = (0..5).map(|i| (i, "boom", i as i64)).collect();
        let issue = ingest(&store, 1, &events).pop().unwrap();
        ingest(&store, 1, &[(9, "other", 0)]);
        assert_eq!(store.stats().events, 6);
        assert_eq!(store.prune_issue_events(&issue.id, 2).unwrap(), 3);
        assert_eq!(store.issue_events(&issue.id, 10).unwrap().len(), 2);
        assert_eq!(store.stats().events, 3);
        assert_eq!(store.prune_issue_events(&issue.id, 2).unwrap(), 0);
    }
}
