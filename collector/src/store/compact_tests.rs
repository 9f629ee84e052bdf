//! Compaction (`compact.rs`) against real sled databases on disk: what it keeps, what it gives
//! back, writes made while it copies, ids, and the data dir a crash leaves on either side of
//! `db.current`'s rename.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::compact;
use super::generations::CURRENT_FILE;
use super::{Prune, Store, WriteSet};
use crate::engine::{CheckIn, CheckInStatus, MonitorKey};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn key(m: usize) -> MonitorKey {
    MonitorKey {
        project: 1,
        slug: format!("job-{m}"),
        environment: "production".into(),
    }
}

fn checkin(m: usize, id: u128, secs: i64) -> CheckIn {
    CheckIn {
        id: Uuid::from_u128(id),
        key: key(m),
        status: CheckInStatus::Ok,
        duration_ms: Some(5),
        date_added: at(secs),
        date_updated: at(secs),
        expected_time: None,
        timeout_at: None,
        log: None,
    }
}

/// One check-in for each of `monitors` monitors, keeping the newest `keep` of each.
fn round(round: usize, monitors: usize, keep: usize) -> WriteSet {
    WriteSet {
        checkins: (0..monitors)
            .map(|m| checkin(m, (round * monitors + m) as u128 + 1, round as i64))
            .collect(),
        prune: (0..monitors)
            .map(|m| Prune {
                key: key(m),
                keep,
                checkins: true,
                protect: Vec::new(),
            })
            .collect(),
        ..WriteSet::default()
    }
}

/// Every record of every tree, but the id floor (which only a compaction writes) and the redo
/// records (of a complete group, which an open clears).
fn dump(store: &Store) -> BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>> {
    let db = store.db();
    let mut all = BTreeMap::new();
    for name in db.tree_names() {
        if name.as_ref() == b"redo" {
            continue;
        }
        for entry in db.open_tree(&name).unwrap().iter() {
            let (k, v) = entry.unwrap();
            if name.as_ref() == b"meta" && k.as_ref() == b"id_floor" {
                continue;
            }
            all.insert((name.to_vec(), k.to_vec()), v.to_vec());
        }
    }
    all
}

/// Asserts two dumps equal, naming the records that differ rather than printing them all.
#[track_caller]
fn assert_same(
    a: &BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>,
    b: &BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>,
    what: &str,
) {
    let differ: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|(tree, key)| format!("{}/{key:?}", String::from_utf8_lossy(tree)))
        .take(10)
        .collect();
    assert!(differ.is_empty(), "{what}: records differ: {differ:?}");
}

fn reopen(store: Store, dir: &Path) -> Store {
    store.flush_blocking().unwrap();
    drop(store);
    Store::open(dir).unwrap()
}

#[test]
fn compaction_gives_back_the_space_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // 40,000 check-ins through retention: sled's log grows far past the 200 kept.
    for r in 0..2000 {
        store.commit(&round(r, 20, 10), at(r as i64)).unwrap();
    }
    store.flush_blocking().unwrap();
    let before = dump(&store);
    let usage = store.usage().unwrap();
    assert_eq!(usage.tree("checkins").unwrap().records, 200, "{usage:?}");

    let report = store.compact().unwrap();

    assert_eq!((report.from.as_str(), report.to.as_str()), ("db", "db.1"));
    assert_eq!(report.bytes_before, usage.files_bytes);
    let after = store.usage().unwrap();
    assert!(
        after.files_bytes * 2 < usage.files_bytes,
        "{} bytes on disk after, {} before",
        after.files_bytes,
        usage.files_bytes
    );
    assert_same(&dump(&store), &before, "the running store after the swap");
    assert!(
        !dir.path().join("db").exists(),
        "the old database is removed"
    );
    let store = reopen(store, dir.path());
    assert_same(&dump(&store), &before, "the store opened again");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(CURRENT_FILE)).unwrap(),
        "db.1\n"
    );
    // And it keeps taking writes, into the copy.
    store.commit(&round(2000, 20, 10), at(2000)).unwrap();
    let store = reopen(store, dir.path());
    assert!(
        store
            .checkin(Uuid::from_u128(2000 * 20 + 1))
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.usage().unwrap().tree("checkins").unwrap().records,
        200
    );
}

#[test]
fn reconcile_applies_what_changed_after_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let old = sled::open(dir.path().join("old")).unwrap();
    let new = sled::open(dir.path().join("new")).unwrap();
    let tree = old.open_tree("t").unwrap();
    for i in 0u32..100 {
        tree.insert(i.to_be_bytes(), &b"v"[..]).unwrap();
    }
    compact::copy(&old, &new).unwrap();
    // Meanwhile: a put, a change, a removal, and a tree created after the copy.
    tree.insert(500u32.to_be_bytes(), &b"new"[..]).unwrap();
    tree.insert(7u32.to_be_bytes(), &b"changed"[..]).unwrap();
    tree.remove(3u32.to_be_bytes()).unwrap();
    old.open_tree("later").unwrap().insert("k", "v").unwrap();
    assert_eq!(compact::reconcile(&old, &new).unwrap(), 4);
    for name in old.tree_names() {
        let a: Vec<_> = old
            .open_tree(&name)
            .unwrap()
            .iter()
            .map(Result::unwrap)
            .collect();
        let b: Vec<_> = new
            .open_tree(&name)
            .unwrap()
            .iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(a, b, "tree {:?}", String::from_utf8_lossy(&name));
    }
    assert_eq!(
        compact::reconcile(&old, &new).unwrap(),
        0,
        "nothing left to do"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_acknowledged_during_a_compaction_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for r in 0..500 {
        store.commit(&round(r, 20, 1000), at(r as i64)).unwrap();
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            let mut acked = Vec::new();
            let mut r = 500;
            while !*stopped.borrow() {
                let set = round(r, 5, 1000);
                let seq = store.commit_async(&set, at(r as i64)).await.unwrap();
                store.wait_durable(seq).await.unwrap();
                acked.extend(set.checkins.iter().map(|c| c.id));
                r += 1;
            }
            acked
        }
    });
    let report = tokio::task::spawn_blocking({
        let store = store.clone();
        move || store.compact()
    })
    .await
    .unwrap()
    .unwrap();
    // A few more after the swap, into the copy.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stop.send(true).unwrap();
    let acked = writer.await.unwrap();
    assert!(!acked.is_empty());
    let missing = |store: &Store| {
        acked
            .iter()
            .filter(|id| store.checkin(**id).unwrap().is_none())
            .count()
    };
    assert_eq!(missing(&store), 0, "{report:?}");
    let store = reopen(store, dir.path());
    assert_eq!(missing(&store), 0, "after a reopen; {report:?}");
}

#[test]
fn ids_keep_growing_across_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let relay = |store: &Store| {
        let set = WriteSet {
            upstream: vec![b"envelope".to_vec(); 3],
            ..WriteSet::default()
        };
        store.commit(&set, at(0)).unwrap();
    };
    let highest = |store: &Store| {
        let (key, _) = store.trees().upstream.last().unwrap().unwrap();
        u64::from_be_bytes(<[u8; 8]>::try_from(key.as_ref()).unwrap())
    };
    relay(&store);
    let before = highest(&store);
    store.compact().unwrap();
    let store = reopen(store, dir.path());
    relay(&store);
    assert!(
        highest(&store) > before,
        "{} after, {before} before",
        highest(&store)
    );
    // The floor also survives a second compaction (it is carried, and raised, again).
    let second = highest(&store);
    store.compact().unwrap();
    relay(&store);
    assert!(highest(&store) > second);
    assert_eq!(store.trees().upstream.len(), 9);
}

/// A data dir as a crash leaves it before the rename: `db.current` (absent here) still names
/// the old database; the copy and a half-written `db.current.tmp` are leftovers.
#[test]
fn a_crash_before_the_rename_opens_the_old_database_and_removes_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.commit(&round(0, 3, 10), at(0)).unwrap();
    let before = dump(&store);
    drop(store);
    let copy = sled::open(dir.path().join("db.1")).unwrap();
    copy.insert("half", "copied").unwrap();
    copy.flush().unwrap();
    drop(copy);
    std::fs::write(dir.path().join("db.current.tmp"), "db.").unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert_same(&dump(&store), &before, "after the open");
    assert!(!dir.path().join("db.1").exists());
    assert!(!dir.path().join("db.current.tmp").exists());
}

/// After the rename: `db.current` names the copy, which is complete; the old database is the
/// leftover.
#[test]
fn a_crash_after_the_rename_opens_the_copy_and_removes_the_old_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.commit(&round(0, 3, 10), at(0)).unwrap();
    store.compact().unwrap();
    let before = dump(&store);
    drop(store);
    // The old database as the swap left it, not yet removed.
    let old = sled::open(dir.path().join("db")).unwrap();
    old.insert("stale", "old").unwrap();
    old.flush().unwrap();
    drop(old);

    let store = Store::open(dir.path()).unwrap();
    assert_same(&dump(&store), &before, "after the open");
    assert!(!dir.path().join("db").exists());
    assert!(dir.path().join("db.1").join("db").is_file());
}

#[test]
fn a_db_current_naming_no_database_is_refused_with_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    std::fs::write(dir.path().join(CURRENT_FILE), "../elsewhere\n").unwrap();
    let error = Store::open(dir.path()).err().unwrap().to_string();
    assert!(
        error.contains("names `../elsewhere`, which is not a watchpost database"),
        "{error}"
    );
    std::fs::write(dir.path().join(CURRENT_FILE), "db.4\n").unwrap();
    let error = Store::open(dir.path()).err().unwrap().to_string();
    assert!(
        error.contains("names `db.4`, but there is no such directory"),
        "{error}"
    );
    // Nothing was removed on the way: the database is still there.
    assert!(dir.path().join("db").join("db").is_file());
}
