use super::*;
use crate::alert::NewDelivery;
use crate::engine::alerting::{Links, Payload, monitor_alert};
use crate::engine::{
    CheckInStatus, DeadlineKind, FailureCounts, IncidentKind, IncidentReason, IntervalUnit,
    MonitorConfig, OpenRun, Schedule, deadlines_of,
};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn key(slug: &str) -> MonitorKey {
    MonitorKey {
        project: 1,
        slug: slug.into(),
        environment: "production".into(),
    }
}

fn monitor(slug: &str) -> MonitorEnv {
    let schedule = Schedule::interval(1, IntervalUnit::Minute).unwrap();
    let mut m = MonitorEnv::new(key(slug), MonitorConfig::new(schedule));
    m.next_checkin = Some(at(60));
    m.next_checkin_latest = Some(at(120));
    m
}

/// Every monitor environment (of one project), page by page.
fn all_monitors(store: &Store, project: Option<u64>) -> Vec<MonitorEnv> {
    let mut all = Vec::new();
    let mut from = Cursor::Start;
    loop {
        let page = store.monitors_page(project, &from, 7, 7, |_| true).unwrap();
        all.extend(page.items);
        match page.next {
            Some(next) => from = next,
            None => return all,
        }
    }
}

/// The tally, checked against a count of every record.
fn assert_tally(store: &Store, expected: [u64; 4]) {
    let counted = count_monitors(&store.trees()).unwrap();
    assert_eq!(store.monitor_counts().unwrap(), counted);
    assert_eq!(counted.by_status, expected);
}

fn checkin(slug: &str, id: u128, secs: i64) -> CheckIn {
    CheckIn {
        id: Uuid::from_u128(id),
        key: key(slug),
        status: CheckInStatus::Ok,
        duration_ms: Some(5),
        date_added: at(secs),
        date_updated: at(secs),
        expected_time: None,
        timeout_at: None,
        log: None,
    }
}

fn incident(slug: &str, resolved: bool) -> Incident {
    Incident {
        id: Uuid::from_u128(99),
        key: key(slug),
        kind: IncidentKind::Monitor,
        opened_at: at(10),
        resolved_at: resolved.then(|| at(20)),
        reason: IncidentReason::MissedCheckin,
        starting_checkin: Uuid::from_u128(1),
        starting_timestamp: at(0),
        resolving_checkin: None,
        failures: FailureCounts {
            missed: 1,
            ..FailureCounts::default()
        },
        notified: true,
        handling: Default::default(),
    }
}

/// Opens a store that was just dropped. sled's I/O threads may still hold the dropped
/// database (and its file lock) for a moment after the last handle is gone, so a lock
/// conflict is retried for up to two seconds; any other outcome is returned at once.
pub(crate) fn reopen(path: &std::path::Path) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match Store::open(path) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// A write set touching every tree a commit writes.
fn everything() -> (WriteSet, MonitorEnv) {
    let mut m = monitor("job");
    m.open_incident = Some(incident("job", false));
    let set = WriteSet {
        monitors: vec![m.clone()],
        checkins: vec![checkin("job", 1, 0)],
        effects: vec![Effect::IncidentOpened {
            incident: incident("job", false),
            notify: true,
        }],
        events: vec![RawEvent {
            issue: "a".repeat(32),
            event_id: Uuid::from_u128(5),
            received: at(0),
            payload: b"{}".to_vec(),
        }],
        deliveries: vec![NewDelivery {
            channel: "log".into(),
            rule: "default".into(),
            payload: Payload::Alert(
                monitor_alert(
                    &Effect::IncidentOpened {
                        incident: incident("job", false),
                        notify: true,
                    },
                    &m,
                    None,
                    &Links::new("http://127.0.0.1:8470"),
                    at(0),
                )
                .unwrap(),
            ),
        }],
        logs: vec![LogEntry {
            key: key("job"),
            id: Uuid::from_u128(6),
            received: at(1),
            body: "hello".into(),
        }],
        upstream: vec![b"{}\n".to_vec()],
        ..WriteSet::default()
    };
    (set, m)
}

/// Asserts that all of [`everything`] is stored, once.
fn assert_everything(store: &Store, m: &MonitorEnv) {
    assert_eq!(store.monitor(&key("job")).unwrap().as_ref(), Some(m));
    assert_eq!(
        store.checkin(Uuid::from_u128(1)).unwrap(),
        Some(checkin("job", 1, 0))
    );
    assert_eq!(store.checkins(&key("job"), 10).unwrap().len(), 1);
    assert_eq!(
        store.incidents(true, 1000).unwrap(),
        vec![incident("job", false)]
    );
    let pending = crate::alert::Outbox::pending(store, "log", 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].created_at, at(0));
    assert_eq!(
        store.issue_events(&"a".repeat(32), 10).unwrap(),
        vec![b"{}".to_vec()]
    );
    assert_eq!(store.logs(&key("job"), 10).unwrap()[0].body, "hello");
    assert_eq!(store.upstream_oldest(10).unwrap().len(), 1);
    let deadlines = store.deadlines().unwrap();
    assert_eq!(deadlines.len(), 1);
    assert_eq!(deadlines[0].1[0].kind, DeadlineKind::Missed);
    assert_eq!(deadlines[0].1[0].at, at(120));
}

#[test]
fn a_commit_is_read_back_whole() {
    let (_dir, store) = open();
    let (set, m) = everything();
    store.commit(&set, at(0)).unwrap();
    assert_everything(&store, &m);
}

#[test]
fn a_group_a_crash_cut_short_is_completed_on_open() {
    let (set, m) = everything();
    // The write set makes more than 11 writes; cut before the first, after one, in the middle
    // and after ten.
    for cut in [0, 1, 5, 10] {
        let (dir, store) = written_cut(&WriteSet::default(), &set, cut);
        assert_everything(&store, &m);
        // Completed once: opening again replays nothing more.
        drop(store);
        let store = reopen(dir.path()).unwrap();
        assert_everything(&store, &m);
    }
}

#[test]
fn a_complete_group_is_never_replayed_over_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut later = monitor("b");
    later.seq = 7;
    {
        let store = Store::open(dir.path()).unwrap();
        // A group whose redo records fill slots 0 and 1 (the first write set carries more than
        // a record's worth of bytes, so `b`'s ops start the second record), then a group of one
        // record (slot 0 again): slot 1 keeps a record of the first group.
        let prepared = |set: WriteSet| store.prepare(&set, at(0)).unwrap();
        let first = [
            prepared(WriteSet {
                monitors: vec![monitor("a")],
                upstream: vec![vec![b'x'; super::redo::RECORD_SIZE + 1]],
                ..WriteSet::default()
            }),
            prepared(WriteSet {
                monitors: vec![monitor("b")],
                ..WriteSet::default()
            }),
        ];
        let mut writer = store.inner.writer.lock();
        writer
            .write_group(&store.handles().ids, &store.trees(), &first)
            .unwrap();
        drop(writer);
        store
            .commit(
                &WriteSet {
                    monitors: vec![later.clone()],
                    ..WriteSet::default()
                },
                at(1),
            )
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.monitor(&key("b")).unwrap(), Some(later));
    assert_eq!(store.monitor(&key("a")).unwrap(), Some(monitor("a")));
}

#[test]
fn a_checkin_lives_under_one_key_even_when_its_time_changes() {
    let (_dir, store) = open();
    let first = checkin("job", 1, 0);
    let mut moved = first.clone();
    moved.date_added = at(-30);
    for c in [first, moved.clone()] {
        let set = WriteSet {
            checkins: vec![c],
            ..WriteSet::default()
        };
        store.commit(&set, at(0)).unwrap();
    }
    assert_eq!(store.checkins(&key("job"), 10).unwrap(), vec![moved]);
}

#[test]
fn listings_are_newest_first_and_scoped_to_their_monitor() {
    let (_dir, store) = open();
    let set = WriteSet {
        monitors: vec![monitor("job"), monitor("job-2")],
        checkins: vec![
            checkin("job", 1, 0),
            checkin("job", 2, 10),
            checkin("job-2", 3, 5),
        ],
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    let ids: Vec<_> = store
        .checkins(&key("job"), 10)
        .unwrap()
        .iter()
        .map(|c| c.id.as_u128())
        .collect();
    assert_eq!(ids, vec![2, 1]);
    assert_eq!(store.monitor_envs(1, "job").unwrap().len(), 1);
    assert_eq!(all_monitors(&store, Some(1)).len(), 2);
    assert!(all_monitors(&store, Some(2)).is_empty());
}

#[test]
fn retention_keeps_the_newest_and_open_runs() {
    let (_dir, store) = open();
    let set = WriteSet {
        checkins: (0..10).map(|i| checkin("job", i, i as i64)).collect(),
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    // Run 0 is the oldest but still open.
    assert!(
        store
            .prune_monitor(&key("job"), 3, &[Uuid::from_u128(0)])
            .unwrap()
    );
    let mut ids: Vec<_> = store
        .checkins(&key("job"), 100)
        .unwrap()
        .iter()
        .map(|c| c.id.as_u128())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![0, 7, 8, 9]);
    assert_eq!(store.checkin(Uuid::from_u128(3)).unwrap(), None);
    assert!(
        !store
            .prune_monitor(&key("job"), 3, &[Uuid::from_u128(0)])
            .unwrap()
    );
}

#[test]
fn delete_removes_a_monitor_and_its_history() {
    let (_dir, store) = open();
    let mut m = monitor("job");
    let mut run = checkin("job", 1, 0);
    run.status = CheckInStatus::InProgress;
    run.duration_ms = None;
    run.timeout_at = Some(at(1800));
    m.open_runs.push(OpenRun::of(&run, at(1800)));
    let set = WriteSet {
        monitors: vec![m, monitor("job-2")],
        // The open run's check-in is held by the monitor; the other is a record.
        checkins: vec![run, checkin("job", 2, 5)],
        effects: vec![Effect::IncidentOpened {
            incident: incident("job", false),
            notify: true,
        }],
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    assert_eq!(store.trees().checkins.len(), 1);
    assert_eq!(store.trees().checkin_ids.len(), 2);
    store.delete_monitor(&key("job")).unwrap();
    assert_eq!(store.monitor(&key("job")).unwrap(), None);
    assert_eq!(store.checkin(Uuid::from_u128(1)).unwrap(), None);
    assert_eq!(store.checkin(Uuid::from_u128(2)).unwrap(), None);
    assert!(store.trees().checkins.is_empty() && store.trees().checkin_ids.is_empty());
    assert!(store.incidents(false, 1000).unwrap().is_empty());
    let remaining: Vec<_> = store
        .deadlines()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(remaining, vec![key("job-2")]);
}

/// Commits the state `m` with `checkins`, at `at(0)`.
fn commit_state(store: &Store, m: &MonitorEnv, checkins: Vec<CheckIn>) {
    let set = WriteSet {
        monitors: vec![m.clone()],
        checkins,
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
}

/// `store` flushed and dropped, and its directory opened again (nothing cached).
fn reopened(store: Store, dir: &std::path::Path) -> Store {
    store.flush_blocking().unwrap();
    drop(store);
    reopen(dir).unwrap()
}

/// Records of one monitor environment in the `checkins` tree.
fn records(store: &Store, slug: &str) -> usize {
    store
        .trees()
        .checkins
        .scan_prefix(keys::monitor(&key(slug)))
        .count()
}

#[test]
fn an_open_runs_check_in_is_held_by_its_monitor_until_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (mut m, mut run) = running();
    commit_state(&store, &m, vec![run.clone()]);
    // One write less per run: no record, only the id index entry.
    assert_eq!(records(&store, "running"), 0);
    assert!(
        store
            .trees()
            .checkin_ids
            .contains_key(run.id.as_bytes())
            .unwrap()
    );
    // Read back without the cache: from the monitor record.
    let store = reopened(store, dir.path());
    assert_eq!(store.checkin(run.id).unwrap(), Some(run.clone()));
    assert_eq!(store.checkins(&m.key, 10).unwrap(), vec![run.clone()]);

    // A heartbeat rewrites only the monitor, and is what is read back.
    run.date_updated = at(600);
    run.timeout_at = Some(at(2400));
    m.open_runs = vec![OpenRun::of(&run, at(2400))];
    commit_state(&store, &m, vec![run.clone()]);
    assert_eq!(records(&store, "running"), 0);
    let store = reopened(store, dir.path());
    assert_eq!(store.checkin(run.id).unwrap(), Some(run.clone()));

    // Older records and the open run list in key order, newest first.
    let older = checkin("running", 5, 1);
    commit_state(&store, &m, vec![older.clone()]);
    assert_eq!(
        store.checkins(&m.key, 10).unwrap(),
        vec![run.clone(), older.clone()]
    );
    assert_eq!(store.checkins(&m.key, 1).unwrap(), vec![run.clone()]);

    // The run ends: its record is written under the same key, the index is unchanged.
    let mut ok = run.clone();
    ok.status = CheckInStatus::Ok;
    ok.duration_ms = Some(1000);
    ok.timeout_at = None;
    m.open_runs.clear();
    commit_state(&store, &m, vec![ok.clone()]);
    assert_eq!(records(&store, "running"), 2);
    let store = reopened(store, dir.path());
    assert_eq!(store.checkin(run.id).unwrap(), Some(ok.clone()));
    assert_eq!(store.checkins(&m.key, 10).unwrap(), vec![ok, older]);
}

#[test]
fn a_run_a_re_enable_forgets_gets_its_record_and_drops_it_when_open_again() {
    let (_dir, store) = open();
    let (mut m, run) = running();
    let prune = |keep| Prune {
        key: m.key.clone(),
        keep,
        checkins: true,
        protect: Vec::new(),
    };
    // Two finished runs, counted by a prune that keeps them.
    let set = WriteSet {
        monitors: vec![m.clone()],
        checkins: vec![
            run.clone(),
            checkin("running", 1, 1),
            checkin("running", 2, 2),
        ],
        prune: vec![prune(10)],
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    assert_eq!(records(&store, "running"), 2);
    assert_eq!(store.inner.cache.count(&m.key), Some(2));

    // Re-enabled: the monitor forgets the run, and the run's check-in becomes a record.
    m.open_runs.clear();
    commit_state(&store, &m, vec![]);
    assert_eq!(records(&store, "running"), 3);
    assert_eq!(store.inner.cache.count(&m.key), Some(3));
    assert_eq!(store.checkin(run.id).unwrap(), Some(run.clone()));

    // A heartbeat tracks it again: the monitor holds it, the record goes, and the count
    // follows, with and without a prune in the same write.
    m.open_runs.push(OpenRun::of(&run, at(1810)));
    commit_state(&store, &m, vec![run.clone()]);
    assert_eq!(records(&store, "running"), 2);
    assert_eq!(store.inner.cache.count(&m.key), Some(2));
    assert_eq!(store.checkin(run.id).unwrap(), Some(run.clone()));
    m.open_runs.clear();
    commit_state(&store, &m, vec![]);
    m.open_runs.push(OpenRun::of(&run, at(1810)));
    let set = WriteSet {
        monitors: vec![m.clone()],
        checkins: vec![run.clone()],
        prune: vec![prune(1)],
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    // Of the two finished ones the newest stays; the open run is not a record and not pruned.
    assert_eq!(records(&store, "running"), 1);
    assert_eq!(store.inner.cache.count(&m.key), Some(1));
    assert_eq!(
        store.checkin(Uuid::from_u128(2)).unwrap(),
        Some(checkin("running", 2, 2))
    );
    assert_eq!(store.checkin(run.id).unwrap(), Some(run));
}

#[test]
fn resolved_incidents_are_not_open() {
    let (_dir, store) = open();
    let set = WriteSet {
        effects: vec![Effect::IncidentResolved {
            incident: incident("job", true),
            notify: true,
        }],
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    assert!(store.incidents(true, 1000).unwrap().is_empty());
    assert_eq!(store.incidents(false, 1000).unwrap().len(), 1);
}

#[test]
fn another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .trees()
            .meta
            .insert(SCHEMA_KEY, &7u32.to_be_bytes())
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let error = reopen(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::Schema { found: 7 }), "{error}");
}

#[test]
fn version_1_is_upgraded_keeping_monitors_and_dropping_its_effects_and_raw_events() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let set = WriteSet {
            monitors: vec![monitor("job")],
            ..WriteSet::default()
        };
        store.commit(&set, at(0)).unwrap();
        let t = store.trees();
        // What version 1 wrote: an effect record and an event filed under its project.
        t.outbox
            .insert(7u64.to_be_bytes(), &b"{\"effect\":{}}"[..])
            .unwrap();
        t.events.insert(1u64.to_be_bytes(), &b"{}"[..]).unwrap();
        t.meta.insert(SCHEMA_KEY, &1u32.to_be_bytes()).unwrap();
        store.flush_blocking().unwrap();
    }
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.monitor(&key("job")).unwrap(), Some(monitor("job")));
    assert!(store.trees().outbox.is_empty() && store.trees().events.is_empty());
    assert_eq!(store.stats().events, 0);
    let version = store.trees().meta.get(SCHEMA_KEY).unwrap().unwrap();
    assert_eq!(version.as_ref(), SCHEMA_VERSION.to_be_bytes());
}

/// A monitor environment with one open run, and the run's `in_progress` check-in (with a log
/// and an expected time, which the run must hold too).
fn running() -> (MonitorEnv, CheckIn) {
    let mut m = monitor("running");
    let mut run = checkin("running", 77, 10);
    run.status = CheckInStatus::InProgress;
    run.duration_ms = None;
    run.date_updated = at(20);
    run.expected_time = Some(at(0));
    run.timeout_at = Some(at(1810));
    run.log = Some("started".into());
    m.open_runs.push(OpenRun::of(&run, at(1810)));
    (m, run)
}

#[test]
fn version_2_is_upgraded_completing_its_cut_group_and_deriving_the_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let t = store.trees();
        // Version 2's deadlines tree, with an entry for a monitor that no longer exists.
        let legacy = store.db().open_tree("deadlines").unwrap();
        legacy.insert(b"gone", &b"[]"[..]).unwrap();
        // A group a crash cut short: its redo record survived, none of its writes did. Version
        // 2 wrote each monitor, then its deadlines under tag 1; a monitor with an open run as
        // version 2 kept it (the run without the check-in's fields), its `in_progress`
        // check-in as a record, and that record's id index entry.
        let number = t.meta.get(b"redo_done").unwrap().map_or(0, |done| {
            u64::from_be_bytes(done.as_ref().try_into().unwrap())
        }) + 1;
        let (running, run) = running();
        let mut v2 = serde_json::to_value(&running).unwrap();
        for field in ["date_updated", "expected_time", "log"] {
            v2["open_runs"][0].as_object_mut().unwrap().remove(field);
        }
        let at = keys::timed(&keys::monitor(&running.key), run.date_added, run.id);
        let writes: [(u8, Vec<u8>, Vec<u8>); 6] = [
            (0, keys::monitor(&key("job")), encode(&monitor("job"))),
            (1, keys::monitor(&key("job")), b"[]".to_vec()),
            (
                0,
                keys::monitor(&running.key),
                serde_json::to_vec(&v2).unwrap(),
            ),
            (1, keys::monitor(&running.key), b"[]".to_vec()),
            (2, at.clone(), encode(&run)),
            (3, run.id.as_bytes().to_vec(), at),
        ];
        let mut record = number.to_be_bytes().to_vec();
        for (tag, key, value) in writes {
            record.push(tag);
            record.extend_from_slice(&(key.len() as u32).to_be_bytes());
            record.extend_from_slice(&key);
            record.push(0);
            record.extend_from_slice(&(value.len() as u32).to_be_bytes());
            record.extend_from_slice(&value);
        }
        t.redo.insert(0u32.to_be_bytes(), record).unwrap();
        t.meta.insert(SCHEMA_KEY, &2u32.to_be_bytes()).unwrap();
        store.flush_blocking().unwrap();
    }
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.monitor(&key("job")).unwrap(), Some(monitor("job")));
    // The run holds its check-in now; the record is gone, the index entry stays.
    let (running, run) = running();
    assert_eq!(store.monitor(&running.key).unwrap(), Some(running.clone()));
    assert_eq!(store.checkin(run.id).unwrap(), Some(run.clone()));
    assert_eq!(store.checkins(&running.key, 10).unwrap(), vec![run.clone()]);
    assert!(store.trees().checkins.is_empty());
    assert!(
        store
            .trees()
            .checkin_ids
            .contains_key(run.id.as_bytes())
            .unwrap()
    );
    let names = store.db().tree_names();
    assert!(!names.iter().any(|name| name.as_ref() == b"deadlines"));
    assert_eq!(
        store.deadlines().unwrap(),
        vec![
            (key("job"), deadlines_of(&monitor("job"))),
            (running.key.clone(), deadlines_of(&running))
        ]
    );
    let version = store.trees().meta.get(SCHEMA_KEY).unwrap().unwrap();
    assert_eq!(version.as_ref(), SCHEMA_VERSION.to_be_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_share_one_flush_and_writes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut seqs = Vec::new();
    for i in 0..10 {
        let set = WriteSet {
            checkins: vec![checkin("job", i, i as i64)],
            ..WriteSet::default()
        };
        seqs.push(store.commit(&set, at(0)).unwrap());
    }
    let waiters: Vec<_> = seqs
        .into_iter()
        .map(|seq| {
            let store = store.clone();
            tokio::spawn(async move { store.wait_durable(seq).await })
        })
        .collect();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let flusher = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .run_flusher(async {
                    let _ = stopped.await;
                })
                .await;
        }
    });
    for waiter in waiters {
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("durable in time")
            .unwrap()
            .unwrap();
    }
    assert_eq!(store.stats().flushes, 1, "ten waiters, one fsync");
    stop.send(()).unwrap();
    flusher.await.unwrap();
    drop(store);

    let reopened = reopen(dir.path()).unwrap();
    assert_eq!(reopened.checkins(&key("job"), 100).unwrap().len(), 10);
}

/// Concurrent requests go through the committer: every write set is stored whole, and each
/// becomes durable by the flush the committer asks its flush thread for after the group (no
/// flusher task runs here), groups sharing flushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_are_grouped_and_flushed_by_the_committer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let writers: Vec<_> = (0..200u128)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let slug = format!("job-{n}");
                let set = WriteSet {
                    monitors: vec![monitor(&slug)],
                    checkins: vec![checkin(&slug, n, 0)],
                    ..WriteSet::default()
                };
                let seq = store.commit_async(&set, at(0)).await.unwrap();
                tokio::time::timeout(std::time::Duration::from_secs(10), store.wait_durable(seq))
                    .await
                    .expect("durable without asking the flusher")
                    .unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let flushes = store.stats().flushes;
    assert!(
        (1..200).contains(&flushes),
        "200 concurrent writes, {flushes} flushes"
    );
    drop(store);

    let reopened = reopen(dir.path()).unwrap();
    assert_eq!(all_monitors(&reopened, Some(1)).len(), 200);
    for n in 0..200u128 {
        let slug = format!("job-{n}");
        assert_eq!(
            reopened.checkin(Uuid::from_u128(n)).unwrap(),
            Some(checkin(&slug, n, 0)),
        );
    }
}

/// The hot cache answers `monitor` and `checkin` reads, and the deadlines a fresh process
/// derives from the stored monitors must be exactly what the last commit said, through keep,
/// change, removal and deletion.
#[test]
fn cached_reads_and_derived_deadlines_match_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let persisted = |store: &Store| -> Vec<Deadline> {
        store
            .deadlines()
            .unwrap()
            .into_iter()
            .flat_map(|(_, deadlines)| deadlines)
            .collect()
    };
    let store = Store::open(dir.path()).unwrap();
    let mut m = monitor("job");
    let mut run = checkin("job", 1, 0);
    run.status = CheckInStatus::InProgress;
    m.open_runs.push(OpenRun::of(&run, at(1800)));
    commit_state(&store, &m, vec![run.clone()]);
    assert_eq!(store.checkin(run.id).unwrap(), Some(run.clone()));
    assert_eq!(persisted(&store), deadlines_of(&m));

    // Same deadlines, other state (a heartbeat): they stay right.
    m.last_checkin = Some(at(5));
    commit_state(&store, &m, vec![]);
    let store = reopened(store, dir.path());
    assert_eq!(store.monitor(&m.key).unwrap(), Some(m.clone()));
    assert_eq!(persisted(&store), deadlines_of(&m));

    // The run ends (cached again after the reopen): its timeout deadline goes, the ok is read
    // back rather than the cached in_progress.
    commit_state(&store, &m, vec![]);
    m.open_runs.clear();
    m.next_checkin_latest = Some(at(240));
    let mut ok = run.clone();
    ok.status = CheckInStatus::Ok;
    commit_state(&store, &m, vec![ok.clone()]);
    assert_eq!(store.checkin(run.id).unwrap(), Some(ok.clone()));
    let store = reopened(store, dir.path());
    assert_eq!(persisted(&store), deadlines_of(&m));
    assert_eq!(store.checkin(run.id).unwrap(), Some(ok));

    // Disabled: no deadlines at all.
    commit_state(&store, &m, vec![]);
    m.disabled = true;
    commit_state(&store, &m, vec![]);
    assert!(persisted(&store).is_empty());
    let store = reopened(store, dir.path());
    assert!(persisted(&store).is_empty());

    // Deleted while cached: gone for readers, and a monitor re-created later starts afresh.
    commit_state(&store, &m, vec![]);
    let mut open = checkin("job", 2, 10);
    open.status = CheckInStatus::InProgress;
    commit_state(&store, &m, vec![open.clone()]);
    store.delete_monitor(&m.key).unwrap();
    assert_eq!(store.monitor(&m.key).unwrap(), None);
    assert_eq!(store.checkin(open.id).unwrap(), None);
    let fresh = monitor("job");
    commit_state(&store, &fresh, vec![]);
    assert_eq!(persisted(&store), deadlines_of(&fresh));
}

/// An `in_progress` check-in that is no longer protected as an open run can be pruned; the
/// cache must not keep answering for it.
#[test]
fn a_pruned_run_is_not_answered_from_the_cache() {
    let (_dir, store) = open();
    let mut stale = checkin("job", 1, 0);
    stale.status = CheckInStatus::InProgress;
    let set = WriteSet {
        checkins: [stale.clone()]
            .into_iter()
            .chain((2..6).map(|i| checkin("job", i, i as i64)))
            .collect(),
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    assert_eq!(store.checkin(stale.id).unwrap(), Some(stale.clone()));
    assert!(store.prune_monitor(&key("job"), 2, &[]).unwrap());
    assert_eq!(store.checkin(stale.id).unwrap(), None);
}

#[test]
fn retention_with_a_write_counts_what_the_write_adds() {
    let (_dir, store) = open();
    let checkins: Vec<CheckIn> = (0..5).map(|n| checkin("job", n, n as i64)).collect();
    store
        .commit(
            &WriteSet {
                checkins,
                ..WriteSet::default()
            },
            at(0),
        )
        .unwrap();
    // A new check-in and an update of the newest one, with retention to 3, sparing id 0.
    let set = WriteSet {
        monitors: vec![monitor("job")],
        checkins: vec![checkin("job", 9, 9), checkin("job", 4, 4)],
        prune: vec![Prune {
            key: key("job"),
            keep: 3,
            checkins: true,
            protect: vec![Uuid::from_u128(0)],
        }],
        ..WriteSet::default()
    };
    store.commit(&set, at(9)).unwrap();
    let ids: Vec<u128> = store
        .checkins(&key("job"), 10)
        .unwrap()
        .iter()
        .map(|c| c.id.as_u128())
        .collect();
    assert_eq!(ids, vec![9, 4, 3, 0], "the newest 3 and the protected run");
    assert_eq!(store.checkin(Uuid::from_u128(1)).unwrap(), None);
    assert_eq!(store.checkin(Uuid::from_u128(2)).unwrap(), None);
    assert!(store.checkin(Uuid::from_u128(0)).unwrap().is_some());
}

#[test]
fn a_large_write_set_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let monitors: Vec<MonitorEnv> = (0..300).map(|n| monitor(&format!("job-{n}"))).collect();
    let checkins: Vec<CheckIn> = (0..300u128)
        .map(|n| checkin(&format!("job-{n}"), n, 0))
        .collect();
    {
        let store = Store::open(dir.path()).unwrap();
        let set = WriteSet {
            monitors,
            checkins,
            ..WriteSet::default()
        };
        // Hundreds of KB of writes: cut into several redo records, none a sled blob.
        assert!(store.prepare(&set, at(0)).unwrap().monitors.len() == 300);
        store.commit(&set, at(0)).unwrap();
        store.flush_blocking().unwrap();
    }
    let store = reopen(dir.path()).unwrap();
    assert_eq!(all_monitors(&store, Some(1)).len(), 300);
    assert_eq!(store.deadlines().unwrap().len(), 300);
    for n in 0..300u128 {
        assert_eq!(
            store.checkin(Uuid::from_u128(n)).unwrap(),
            Some(checkin(&format!("job-{n}"), n, 0))
        );
    }
}

/// Retention counts a monitor environment's check-ins once and then keeps the count through
/// every later write (added check-ins, rewrites that move a check-in's key, prunes); after a
/// reopen it counts again. Checked against a model over a long pseudo-random sequence.
#[test]
fn retention_keeps_exactly_the_newest_through_counted_writes_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    // The model: id -> time of every stored check-in of "job".
    let mut model: std::collections::BTreeMap<u128, i64> = std::collections::BTreeMap::new();
    let mut next_id = 0u128;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for step in 0..400i64 {
        let mut checkins = Vec::new();
        // A new check-in most of the time; sometimes a stored one rewritten, at a later time
        // (its key moves) or at the same time.
        if random(4) > 0 || model.is_empty() {
            checkins.push(checkin("job", next_id, step * 10));
            model.insert(next_id, step * 10);
            next_id += 1;
        } else {
            let ids: Vec<u128> = model.keys().copied().collect();
            let id = ids[random(ids.len() as u64) as usize];
            let secs = if random(2) == 0 {
                model[&id]
            } else {
                step * 10 + 1
            };
            checkins.push(checkin("job", id, secs));
            model.insert(id, secs);
        }
        let keep = 5 + random(6) as usize;
        let prune = random(3) == 0;
        let set = WriteSet {
            monitors: vec![monitor("job")],
            checkins: checkins.clone(),
            prune: if prune {
                vec![Prune {
                    key: key("job"),
                    keep,
                    checkins: true,
                    protect: Vec::new(),
                }]
            } else {
                Vec::new()
            },
            ..WriteSet::default()
        };
        store.commit(&set, at(step)).unwrap();
        if prune {
            // The newest `keep` by (time, id), the order of the keys; what was just written
            // always stays.
            let mut by_age: Vec<(i64, u128)> = model.iter().map(|(id, s)| (*s, *id)).collect();
            by_age.sort();
            let written: Vec<u128> = checkins.iter().map(|c| c.id.as_u128()).collect();
            let cut = by_age.len().saturating_sub(keep);
            for (_, id) in &by_age[..cut] {
                if !written.contains(id) {
                    model.remove(id);
                }
            }
        }
        if step == 200 {
            drop(store);
            store = reopen(dir.path()).unwrap();
        }
        let mut stored: Vec<(u128, i64)> = store
            .checkins(&key("job"), 1000)
            .unwrap()
            .iter()
            .map(|c| (c.id.as_u128(), c.date_added.timestamp() - 1_800_000_000))
            .collect();
        stored.sort();
        let expected: Vec<(u128, i64)> = model.iter().map(|(id, s)| (*id, *s)).collect();
        assert_eq!(stored, expected, "after step {step}");
        for id in model.keys() {
            assert!(store.checkin(Uuid::from_u128(*id)).unwrap().is_some());
        }
    }
}

/// A prune that is not told the monitor's open runs (a ping's log entry) leaves check-ins
/// alone and prunes only log entries.
#[test]
fn a_log_only_prune_keeps_every_checkin() {
    let (_dir, store) = open();
    let logs = (0..6u128)
        .map(|n| LogEntry {
            key: key("job"),
            id: Uuid::from_u128(100 + n),
            received: at(n as i64),
            body: format!("line {n}"),
        })
        .collect();
    let set = WriteSet {
        checkins: (0..6).map(|n| checkin("job", n, n as i64)).collect(),
        logs,
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    let prune = WriteSet {
        prune: vec![Prune {
            key: key("job"),
            keep: 2,
            checkins: false,
            protect: Vec::new(),
        }],
        ..WriteSet::default()
    };
    store.commit(&prune, at(9)).unwrap();
    assert_eq!(store.checkins(&key("job"), 100).unwrap().len(), 6);
    let logs: Vec<u128> = store
        .logs(&key("job"), 100)
        .unwrap()
        .iter()
        .map(|l| l.id.as_u128())
        .collect();
    assert_eq!(logs, vec![105, 104]);
}

/// A check-in id reused under another monitor environment moves the check-in there; the count
/// retention kept for the first one is then forgotten, not trusted, so its next prune still
/// keeps exactly `keep`.
#[test]
fn a_checkin_moved_to_another_monitor_does_not_leave_a_stale_count() {
    let (_dir, store) = open();
    let prune = |slug: &str, keep| Prune {
        key: key(slug),
        keep,
        checkins: true,
        protect: Vec::new(),
    };
    let set = WriteSet {
        checkins: (0..5).map(|n| checkin("a", n, n as i64)).collect(),
        prune: vec![prune("a", 10)],
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    let moved = WriteSet {
        checkins: vec![checkin("b", 4, 4)],
        ..WriteSet::default()
    };
    store.commit(&moved, at(5)).unwrap();
    assert_eq!(store.checkins(&key("a"), 100).unwrap().len(), 4);
    let more = WriteSet {
        checkins: (10..16).map(|n| checkin("a", n, n as i64)).collect(),
        prune: vec![prune("a", 8)],
        ..WriteSet::default()
    };
    store.commit(&more, at(20)).unwrap();
    let mut ids: Vec<u128> = store
        .checkins(&key("a"), 100)
        .unwrap()
        .iter()
        .map(|c| c.id.as_u128())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![2, 3, 10, 11, 12, 13, 14, 15]);
    assert_eq!(store.checkins(&key("b"), 100).unwrap().len(), 1);
}

/// A group write stuck inside sled is answered and reported, never waited on. Here the
/// committer thread blocks on the writer's lock, which the test holds, exactly where a write
/// stuck in sled blocks (sled did when the process was out of file descriptors): the
/// request waiting on it, and one queued behind it, get `Stalled` after the write deadline
/// instead of hanging; `check_writable` (what `/healthz` judges the store by) reports the
/// stall; the queued write set, given up on before its group started, is never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_write_is_answered_and_reported_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let set = |slug: &str, id: u128| WriteSet {
        monitors: vec![monitor(slug)],
        checkins: vec![checkin(slug, id, 0)],
        ..WriteSet::default()
    };
    let (stuck, queued) = (set("stuck", 1), set("queued", 2));
    // Held on a thread of its own, as sled would hold the committer: not across our awaits.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let store = store.clone();
        move || {
            let _held = store.inner.writer.lock();
            locked.send(()).unwrap();
            let _ = released.recv();
        }
    });
    is_locked.recv().unwrap();
    let started = std::time::Instant::now();
    let (first, second) = tokio::join!(store.commit_async(&stuck, at(0)), async {
        // After the committer has taken the first write set and blocked on it.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        store.commit_async(&queued, at(0)).await
    });
    let waited = started.elapsed();
    for result in [first, second] {
        assert!(
            matches!(result, Err(StoreError::Stalled { what: "write", .. })),
            "{result:?}"
        );
    }
    assert!(
        waited >= committer::WRITE_DEADLINE && waited < committer::WRITE_DEADLINE * 2,
        "answered after {waited:?}"
    );
    let second = std::time::Duration::from_secs(1);
    let verdict = store.check_writable(at(0), second);
    assert!(
        matches!(verdict, Err(StoreError::Stalled { what: "write", waited }) if waited >= committer::WRITE_DEADLINE),
        "{verdict:?}"
    );
    // Only the stall makes it unwritable: with a longer patience it passes.
    store
        .check_writable(at(0), std::time::Duration::from_secs(3600))
        .unwrap();

    release.send(()).unwrap();
    holder.join().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.check_writable(at(0), second).is_err() {
        assert!(std::time::Instant::now() < deadline, "still stalled");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stored = |slug: &str| {
        store
            .trees()
            .monitors
            .get(keys::monitor(&key(slug)))
            .unwrap()
            .is_some()
    };
    // The first group had started: it lands, as a write not confirmed durable may.
    assert!(stored("stuck"));
    assert!(!stored("queued"), "a write set given up on was written");
}

#[test]
fn monitor_counts_follow_writes_and_deletions_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let set = WriteSet {
            monitors: (0..5).map(|n| monitor(&format!("job-{n}"))).collect(),
            ..WriteSet::default()
        };
        store.commit(&set, at(0)).unwrap();
        assert_tally(&store, [5, 0, 0, 0]);
        let mut ok = monitor("job-0");
        ok.status = MonitorStatus::Ok;
        let mut failing = monitor("job-1");
        failing.status = MonitorStatus::Error;
        // Written twice in one set: counted once.
        let set = WriteSet {
            monitors: vec![ok.clone(), failing.clone(), failing],
            ..WriteSet::default()
        };
        store.commit(&set, at(1)).unwrap();
        assert_tally(&store, [3, 1, 1, 0]);
        // Rewriting an unchanged status changes nothing.
        let set = WriteSet {
            monitors: vec![ok],
            ..WriteSet::default()
        };
        store.commit(&set, at(2)).unwrap();
        assert_tally(&store, [3, 1, 1, 0]);
        store.delete_monitor(&key("job-1")).unwrap();
        store.delete_monitor(&key("job-4")).unwrap();
        assert_tally(&store, [2, 1, 0, 0]);
        store.flush_blocking().unwrap();
    }
    let store = reopen(dir.path()).unwrap();
    assert_tally(&store, [2, 1, 0, 0]);
}

/// Incident `n` of monitor `slug`, opened at `n * 10` s, resolved at `n * 10 + 5` s if asked.
fn incident_at(slug: &str, n: u32, resolved: bool) -> Incident {
    let mut incident = incident(slug, false);
    incident.id = Uuid::from_u128(u128::from(n) + 1000);
    incident.opened_at = at(i64::from(n) * 10);
    incident.resolved_at = resolved.then(|| at(i64::from(n) * 10 + 5));
    incident
}

fn write_incidents(store: &Store, incidents: &[Incident]) {
    let set = WriteSet {
        effects: incidents
            .iter()
            .map(|incident| match incident.resolved_at {
                None => Effect::IncidentOpened {
                    incident: incident.clone(),
                    notify: false,
                },
                Some(_) => Effect::IncidentResolved {
                    incident: incident.clone(),
                    notify: false,
                },
            })
            .collect(),
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
}

fn incident_ids(page: &Page<Incident>) -> Vec<u128> {
    page.items.iter().map(|i| i.id.as_u128() - 1000).collect()
}

#[test]
fn incidents_are_paged_newest_first_from_their_time_indexes() {
    let (dir, store) = open();
    // Incidents 0..6 of two monitors, interleaved in time; 1 and 4 resolved.
    let all: Vec<Incident> = (0..6)
        .map(|n| incident_at(if n % 2 == 0 { "a" } else { "b" }, n, n == 1 || n == 4))
        .collect();
    write_incidents(&store, &all);
    let first = store
        .incidents_page(false, None, &Cursor::Start, 4, 4)
        .unwrap();
    assert_eq!(incident_ids(&first), [5, 4, 3, 2]);
    let second = store
        .incidents_page(false, None, first.next.as_ref().unwrap(), 4, 4)
        .unwrap();
    assert_eq!(incident_ids(&second), [1, 0]);
    assert!(second.next.is_none());
    let open = store
        .incidents_page(true, None, &Cursor::Start, 10, 10)
        .unwrap();
    assert_eq!(incident_ids(&open), [5, 3, 2, 0]);

    // Resolving one takes it out of the open index; reopening keeps both indexes.
    write_incidents(&store, &[incident_at("b", 3, true)]);
    let store = reopened(store, dir.path());
    assert_eq!(
        incident_ids(
            &store
                .incidents_page(true, None, &Cursor::Start, 10, 10)
                .unwrap()
        ),
        [5, 2, 0]
    );
    let of_a = store
        .monitor_incidents_page(&[key("a")], &Cursor::Start, 10)
        .unwrap();
    assert_eq!(incident_ids(&of_a), [4, 2, 0]);

    // Deleting a monitor takes its incidents out of both indexes.
    store.delete_monitor(&key("b")).unwrap();
    assert_eq!(
        incident_ids(
            &store
                .incidents_page(false, None, &Cursor::Start, 10, 10)
                .unwrap()
        ),
        [4, 2, 0]
    );
    assert_eq!(store.trees().incident_times.len(), 3);
    assert_eq!(store.trees().open_incidents.len(), 2);
}

#[test]
fn version_3_is_upgraded_by_indexing_incidents_and_issues_by_time() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        write_incidents(
            &store,
            &[incident_at("a", 0, false), incident_at("a", 1, true)],
        );
        let issue = Issue {
            id: "a".repeat(32),
            project: 1,
            fingerprint: vec!["{{ default }}".into()],
            title: "disk full".into(),
            culprit: None,
            level: watchpost_protocol::Level::Error,
            status: crate::engine::IssueStatus::Unresolved,
            first_seen: at(3),
            last_seen: at(3),
            count: 1,
            environment: "production".into(),
            release: None,
            resolved_at: None,
            spikes: Default::default(),
        };
        let set = WriteSet {
            issues: vec![issue],
            ..WriteSet::default()
        };
        store.commit(&set, at(3)).unwrap();
        // What version 3 had: the records without their indexes.
        let t = store.trees();
        for index in [&t.incident_times, &t.open_incidents, &t.issue_times] {
            index.clear().unwrap();
        }
        t.meta.insert(SCHEMA_KEY, &3u32.to_be_bytes()).unwrap();
        store.flush_blocking().unwrap();
    }
    let store = reopen(dir.path()).unwrap();
    let all = store
        .incidents_page(false, None, &Cursor::Start, 10, 10)
        .unwrap();
    assert_eq!(incident_ids(&all), [1, 0]);
    let open = store
        .incidents_page(true, None, &Cursor::Start, 10, 10)
        .unwrap();
    assert_eq!(incident_ids(&open), [0]);
    let issues = store
        .issues_page(None, None, &Cursor::Start, 10, 10)
        .unwrap();
    assert_eq!(issues.items.len(), 1);
    let version = store.trees().meta.get(SCHEMA_KEY).unwrap().unwrap();
    assert_eq!(version.as_ref(), SCHEMA_VERSION.to_be_bytes());
}

/// `before` written whole, then `set` written as a group a crash cut after `cut` of its
/// writes, then the store reopened.
fn written_cut(before: &WriteSet, set: &WriteSet, cut: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.commit(before, at(0)).unwrap();
        write_cut(&store, set, cut);
    }
    let store = reopen(dir.path()).unwrap();
    (dir, store)
}

/// Writes `set` as a group cut short after `cut` of its writes (a crash), and flushes that.
fn write_cut(store: &Store, set: &WriteSet, cut: usize) {
    let prepared = store.prepare(set, at(0)).unwrap();
    store
        .inner
        .writer
        .lock()
        .write_group_cut(
            &store.handles().ids,
            &store.trees(),
            std::slice::from_ref(&prepared),
            cut,
        )
        .unwrap();
    store.flush_blocking().unwrap();
}

/// Probe checks and deletions are write sets like every other change: a crash in the middle of
/// one is completed from its redo records, never left half written.
#[test]
fn a_probe_check_and_a_deletion_cut_by_a_crash_are_completed_on_open() {
    use crate::engine::probes::{
        Check, Expectation, Observation, ProbeRules, ProbeState, record_check,
    };
    let rules = ProbeRules {
        url: "http://127.0.0.1:1/health".to_owned(),
        failure_threshold: 1,
        success_threshold: 1,
        expect: Expectation::status(200),
    };
    let check = Check {
        id: Uuid::from_u128(5),
        started: at(0),
        latency: std::time::Duration::from_millis(3),
        observation: Observation::ConnectFailed("connection refused".into()),
    };
    let transition = record_check(&ProbeState::new("api"), &rules, &check, at(0));
    assert_eq!(transition.effects.len(), 1, "the check opens an incident");
    let probe = WriteSet {
        probes: vec![ProbeWrite::Checked {
            state: Box::new(transition.state.clone()),
            result: Box::new(transition.result.clone()),
            keep: 10,
        }],
        effects: transition
            .effects
            .iter()
            .map(|e| e.effect.clone())
            .collect(),
        ..WriteSet::default()
    };
    // Incident, its two index entries, state, result: cut before the first, in the middle and
    // before the last.
    for cut in [0, 2, 4] {
        let (_dir, store) = written_cut(&WriteSet::default(), &probe, cut);
        assert_eq!(
            store.probe_state("api").unwrap(),
            Some(transition.state.clone())
        );
        assert_eq!(
            store.probe_results("api", 10).unwrap(),
            vec![transition.result.clone()]
        );
        assert_eq!(store.incidents(true, 10).unwrap().len(), 1, "cut {cut}");
    }

    let (everything, _) = everything();
    let deletion = WriteSet {
        deletes: vec![key("job")],
        ..WriteSet::default()
    };
    // The monitor, its check-in with its id entry, its incident with its two index entries and
    // its log entry: eight removals at least.
    for cut in [0, 1, 4, 7] {
        let (_dir, store) = written_cut(&everything, &deletion, cut);
        assert_eq!(store.monitor(&key("job")).unwrap(), None, "cut {cut}");
        assert_eq!(store.checkin(Uuid::from_u128(1)).unwrap(), None);
        assert!(store.incidents(false, 10).unwrap().is_empty());
        assert!(store.trees().incident_times.is_empty() && store.trees().open_incidents.is_empty());
        assert!(store.logs(&key("job"), 10).unwrap().is_empty());
        assert_tally(&store, [0, 0, 0, 0]);
    }
}

/// A channel worker's save and the collector's own records (config origins, refusals, the
/// liveness mark) are write sets too: cut by a crash anywhere, they are completed on open, the
/// pending index and its count with them.
#[test]
fn a_delivery_save_and_the_collectors_own_records_cut_by_a_crash_are_completed_on_open() {
    use crate::alert::outbox::{DeliveryState, Outbox};
    use crate::engine::{Outage, OutageKind};

    let (everything, _) = everything();
    let refusal = RefusalRecord {
        id: 9,
        at: at(5),
        project: 1,
        reason: "monitors_per_project".into(),
        slug: Some("other".into()),
        environment: Some("production".into()),
        message: "too many monitors".into(),
    };
    let outage = Outage {
        from: at(1),
        to: Some(at(2)),
        kind: OutageKind::Down,
    };
    // Puts: the entry, the origin, the refusal, the outages, the mark; one removal: the
    // pending index entry. Cut before the first, in the middle and before the last.
    for cut in [0, 3, 5] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.commit(&everything, at(0)).unwrap();
            let mut entry = store.pending("log", 10).unwrap().remove(0);
            entry.state = DeliveryState::Sent;
            entry.sent_at = Some(at(3));
            let set = WriteSet {
                saved: vec![entry],
                meta: vec![
                    MetaWrite::Managed {
                        key: key("job"),
                        managed: true,
                    },
                    MetaWrite::Refusal(refusal.clone()),
                    MetaWrite::Alive {
                        at: at(4),
                        outages: Some(vec![outage]),
                    },
                ],
                ..WriteSet::default()
            };
            write_cut(&store, &set, cut);
        }
        let store = reopen(dir.path()).unwrap();
        assert!(store.pending("log", 10).unwrap().is_empty(), "cut {cut}");
        assert_eq!(
            store.pending_count("log"),
            0,
            "the count comes from the index"
        );
        let sent = store
            .deliveries(&DeliveryFilter::default(), 10, 10)
            .unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].state, DeliveryState::Sent);
        assert_eq!(store.managed_monitors().unwrap(), vec![key("job")]);
        assert_eq!(store.refusals().unwrap(), vec![refusal.clone()]);
        assert_eq!(store.liveness().unwrap(), (Some(at(4)), vec![outage]));
    }

    // Deleting a monitor environment removes its origin with it.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.commit(&everything, at(0)).unwrap();
    store
        .write_meta(MetaWrite::Managed {
            key: key("job"),
            managed: true,
        })
        .unwrap();
    assert_eq!(store.managed_monitors().unwrap(), vec![key("job")]);
    store.delete_monitor(&key("job")).unwrap();
    assert!(store.managed_monitors().unwrap().is_empty());
}

#[test]
fn usage_counts_exactly_the_records_written_and_their_encoded_bytes() {
    let (dir, store) = open();
    let monitors: Vec<MonitorEnv> = (0..5).map(|n| monitor(&format!("job-{n}"))).collect();
    let checkins: Vec<CheckIn> = (0..500u128)
        .map(|i| checkin(&format!("job-{}", i % 5), i, i as i64))
        .collect();
    let set = WriteSet {
        monitors: monitors.clone(),
        checkins: checkins.clone(),
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();

    let usage = store.usage().unwrap();
    let tree = |name: &str| usage.tree(name).unwrap().clone();
    // What was written, encoded as the store encodes it: keys and values byte for byte.
    let checkin_bytes: u64 = checkins
        .iter()
        .map(|c| {
            let key = keys::timed(&keys::monitor(&c.key), c.date_added, c.id);
            (key.len() + codec::encode_checkin(c).len()) as u64
        })
        .sum();
    let monitor_bytes: u64 = monitors
        .iter()
        .map(|m| (keys::monitor(&m.key).len() + codec::encode_monitor(m).len()) as u64)
        .sum();
    assert_eq!(tree("checkins").records, 500);
    assert_eq!(tree("checkins").live_bytes(), checkin_bytes);
    assert_eq!(tree("checkin_ids").records, 500);
    assert_eq!(tree("monitors").records, 5);
    assert_eq!(tree("monitors").live_bytes(), monitor_bytes);
    assert_eq!(tree("incidents").records, 0);
    assert_eq!(
        usage.live_bytes,
        usage.trees.iter().map(TreeUsage::live_bytes).sum::<u64>()
    );
    // The files are measured, the log among them, and sled's own size is part of them.
    assert!(usage.files.iter().any(|f| f.file == "db" && f.bytes > 0));
    assert!(usage.files_bytes >= usage.size_on_disk && usage.size_on_disk > 0);
    assert!(usage.amplification > 0.0);

    // Retention shows: 100 records of one monitor pruned to 10.
    assert!(store.prune_monitor(&key("job-0"), 10, &[]).unwrap());
    let after = store.usage().unwrap();
    assert_eq!(after.tree("checkins").unwrap().records, 410);
    assert_eq!(after.tree("checkin_ids").unwrap().records, 410);

    // The cache answers within its age and counts again after it.
    let now = std::time::Instant::now();
    let minute = std::time::Duration::from_secs(60);
    let first = store.usage_within(now, minute).unwrap();
    store.prune_monitor(&key("job-1"), 10, &[]).unwrap();
    assert_eq!(store.usage_within(now + minute, minute).unwrap(), first);
    let later = store.usage_within(now + minute * 2, minute).unwrap();
    assert_eq!(later.tree("checkins").unwrap().records, 320);

    // The same counts after a reopen, as `watchpost store stats --data-dir` sees them; only
    // the redo records of the last group are gone (the open clears them).
    let store = reopened(store, dir.path());
    let data = |usage: &Usage| -> Vec<TreeUsage> {
        let trees = usage.trees.iter().filter(|t| t.tree != "redo");
        trees.cloned().collect()
    };
    assert_eq!(data(&store.usage().unwrap()), data(&later));
    assert_eq!(store.usage().unwrap().tree("redo").unwrap().records, 0);
}

#[test]
fn a_small_group_after_a_large_one_leaves_only_its_own_redo_records() {
    let (_dir, store) = open();
    let monitors: Vec<MonitorEnv> = (0..300).map(|n| monitor(&format!("job-{n}"))).collect();
    let large = WriteSet {
        monitors,
        ..WriteSet::default()
    };
    store.commit(&large, at(0)).unwrap();
    let after_large = store.trees().redo.len();
    assert!(after_large > 1, "{after_large} redo records");
    let small = WriteSet {
        monitors: vec![monitor("job-0")],
        ..WriteSet::default()
    };
    store.commit(&small, at(1)).unwrap();
    assert_eq!(store.trees().redo.len(), 1);
    // The remaining record is the small group's: its number (the first 8 bytes) is the last
    // complete group, so a reopen has nothing to replay.
    let record = store.trees().redo.get(0u32.to_be_bytes()).unwrap().unwrap();
    let done = store.trees().meta.get(b"redo_done").unwrap().unwrap();
    assert_eq!(&record[..8], &done[..]);
    assert!(record.len() < 1024, "{} bytes", record.len());
}

/// A repeat is a deadline like the others: written with the monitor record, back in the
/// index after a restart, and gone once the incident is acknowledged. The open incident is
/// found by its id through the `open_incidents` index.
#[test]
fn an_incidents_repeat_and_acknowledgement_survive_a_restart() {
    let (dir, store) = open();
    let mut m = monitor("job");
    let mut open = incident("job", false);
    open.handling.next_repeat = Some(at(1800));
    m.open_incident = Some(open.clone());
    let set = WriteSet {
        monitors: vec![m.clone()],
        ..WriteSet::default()
    };
    store.commit(&set, at(0)).unwrap();
    let store = reopened(store, dir.path());
    let kinds: Vec<(DeadlineKind, DateTime<Utc>)> = store.deadlines().unwrap()[0]
        .1
        .iter()
        .map(|d| (d.kind, d.at))
        .collect();
    assert_eq!(
        kinds,
        [
            (DeadlineKind::Missed, at(120)),
            (DeadlineKind::Repeat, at(1800))
        ]
    );
    assert_eq!(store.open_incident(open.id).unwrap(), Some(open.clone()));
    assert_eq!(store.open_incident(Uuid::from_u128(12_345)).unwrap(), None);

    let (acked, incident) =
        crate::engine::oncall::acknowledge(&m, open.id, "alice", at(60)).unwrap();
    let set = WriteSet {
        monitors: vec![acked.clone()],
        ..WriteSet::default()
    };
    store.commit(&set, at(60)).unwrap();
    let store = reopened(store, dir.path());
    assert_eq!(store.monitor(&key("job")).unwrap(), Some(acked));
    assert_eq!(store.open_incident(open.id).unwrap(), Some(incident));
    let kinds: Vec<DeadlineKind> = store.deadlines().unwrap()[0]
        .1
        .iter()
        .map(|d| d.kind)
        .collect();
    assert_eq!(kinds, [DeadlineKind::Missed]);
}
