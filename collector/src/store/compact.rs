//! Online compaction: the live data copied into a fresh sled database, which then replaces the
//! running one.
//!
//! **Why.** sled's log keeps 13 to 20 bytes on disk per live byte under a steady check-in
//! stream with retention, and its segment cleaner does not give them back, while a fresh copy
//! of the same records takes about 3.4 (`benches/README.md`, "Store size and memory"). A copy
//! is the only way sled 0.34 offers to reclaim that space.
//!
//! **How, online.** [`Store::compact`]:
//!
//! 1. *copy*: every tree of the running database is copied into a new database directory in
//!    the data dir (`db.<n+1>` beside `db` or `db.<n>`), while ingest goes on writing to the
//!    running one; then the copy catches up once with what was written meanwhile (the walk of
//!    step 2, without the lock);
//! 2. *reconcile*, with the store's handles locked for writing (every read, write and group of
//!    the committer waits: the pause): each tree of the copy is walked beside the original
//!    and every difference the writes made meanwhile is applied to the copy; the id floor
//!    (below) is written; the copy is flushed;
//! 3. *point*: `db.current` in the data dir is replaced (write a temporary file, fsync, rename,
//!    fsync the directory) to name the copy;
//! 4. *swap*: the store's handles are the copy's; the lock is released, and the old database
//!    directory is removed.
//!
//! **Crash safety.** `db.current` decides which database is the store. Until the rename of
//! step 3 it names the old one, complete (every acknowledged write is in it, made durable by
//! its own flushes); the copy is a leftover. After the rename it names the copy, which is
//! complete: everything the old one held when the lock was taken is in it, flushed before the
//! rename, and nothing was written between (the lock). On open, [`settle`] reads `db.current`
//! (a data dir without it has only `db`) and removes every other database directory, the
//! leftover of a compaction that crashed on either side of the rename.
//!
//! **Ids.** Outbox and upstream keys are ids from sled's generator (`Db::generate_id`), which
//! must keep growing: the dispatcher and the relay read them in order. A copy does not carry
//! the generator (a fresh database starts at 0, and sled 0.34 cannot set it), so the store
//! keeps a floor of its own in `meta` (`id_floor`): ids are floor + sled's id. A compaction
//! writes, into the copy, a floor above every id the old database handed out.

use std::cmp::Ordering;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Store;
use super::error::StoreError;
use super::generations::{CompactError, FIRST, point_at, successor};
use super::handles::{Handles, ID_FLOOR_KEY, Ids};
use super::trees::Trees;

/// Records per batch while copying: large enough that sled's per-batch cost vanishes, small
/// enough to keep each batch's memory small.
const COPY_BATCH: usize = 4096;
/// Environment variable, for crash tests only: the names of [`CompactStep`]s, separated by
/// commas, at which the compaction stops (it creates `compact.<step>` in the data dir and
/// waits, for at most [`HOLD_LIMIT`], until that file is removed), so that a test can write
/// at a given step, or kill the process exactly there.
pub const HOLD_ENV: &str = "WATCHPOST_TEST_COMPACT_HOLD";
/// How long a test hold lasts at most.
const HOLD_LIMIT: Duration = Duration::from_secs(120);

/// The points of a compaction at which a crash test may stop it ([`HOLD_ENV`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompactStep {
    /// The copy is made; ingest still writes to the old database.
    Copied,
    /// The copy is reconciled and flushed, `db.current` still names the old one; ingest is
    /// paused.
    Reconciled,
    /// `db.current` names the copy; the store still holds the old handles; ingest is paused.
    Pointed,
}

impl CompactStep {
    fn name(self) -> &'static str {
        match self {
            CompactStep::Copied => "copied",
            CompactStep::Reconciled => "reconciled",
            CompactStep::Pointed => "pointed",
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompactReport {
    /// The database directory before.
    pub from: String,
    /// The database directory now.
    pub to: String,
    /// Bytes of the old database's files.
    pub bytes_before: u64,
    /// Bytes of the new database's files, right after the swap.
    pub bytes_after: u64,
    /// Records copied, all trees.
    pub records: u64,
    /// Records the two reconcile passes changed (writes made during the copy).
    pub reconciled: u64,
    /// How long the copy took (ingest went on).
    pub copy_seconds: f64,
    /// How long the swap waited for the operations under way to finish (they go on).
    pub wait_seconds: f64,
    /// How long ingest paused: reconcile, flush, `db.current`, swap.
    pub pause_seconds: f64,
}

/// What [`Store::copy_and_swap`] did.
struct Made {
    records: u64,
    reconciled: u64,
    copy_took: Duration,
    waited: Duration,
    paused: Duration,
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|entry| match entry.metadata() {
                Ok(meta) if meta.is_dir() => walk(&entry.path()),
                Ok(meta) => meta.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir)
}

/// Copies every record of every tree of `from` into `to`; the number of records.
pub(super) fn copy(from: &sled::Db, to: &sled::Db) -> Result<u64, StoreError> {
    let mut records = 0;
    for name in from.tree_names() {
        let (source, target) = (from.open_tree(&name)?, to.open_tree(&name)?);
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for entry in source.iter() {
            let (key, value) = entry?;
            batch.insert(key, value);
            in_batch += 1;
            if in_batch == COPY_BATCH {
                target.apply_batch(std::mem::take(&mut batch))?;
                records += in_batch as u64;
                in_batch = 0;
            }
        }
        target.apply_batch(batch)?;
        records += in_batch as u64;
    }
    Ok(records)
}

/// Makes every tree of `to` hold exactly what the same tree of `from` holds, walking both in
/// key order; the number of records put or removed.
pub(super) fn reconcile(from: &sled::Db, to: &sled::Db) -> Result<u64, StoreError> {
    let mut changed = 0;
    for name in from.tree_names() {
        let (source, target) = (from.open_tree(&name)?, to.open_tree(&name)?);
        let mut batch = sled::Batch::default();
        let (mut old, mut new) = (source.iter(), target.iter());
        let (mut a, mut b) = (old.next().transpose()?, new.next().transpose()?);
        loop {
            let order = match (&a, &b) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
            };
            match order {
                // Only in the original: put it.
                Ordering::Less => {
                    let (key, value) = a.take().expect("compared");
                    batch.insert(key, value);
                    changed += 1;
                    a = old.next().transpose()?;
                }
                // Only in the copy: it was removed meanwhile.
                Ordering::Greater => {
                    let (key, _) = b.take().expect("compared");
                    batch.remove(key);
                    changed += 1;
                    b = new.next().transpose()?;
                }
                Ordering::Equal => {
                    let (key, value) = a.take().expect("compared");
                    let (_, copied) = b.take().expect("compared");
                    if value != copied {
                        batch.insert(key, value);
                        changed += 1;
                    }
                    a = old.next().transpose()?;
                    b = new.next().transpose()?;
                }
            }
        }
        target.apply_batch(batch)?;
    }
    Ok(changed)
}

/// Stops at `step` if a crash test asked for it ([`HOLD_ENV`]).
fn hold(data_dir: &Path, step: CompactStep) {
    let held = std::env::var(HOLD_ENV)
        .is_ok_and(|steps| steps.split(',').any(|s| s.trim() == step.name()));
    if !held {
        return;
    }
    let marker = data_dir.join(format!("compact.{}", step.name()));
    if fs::write(&marker, b"").is_err() {
        return;
    }
    tracing::warn!(
        step = step.name(),
        "compaction held for a test ({HOLD_ENV})"
    );
    let started = Instant::now();
    while marker.exists() && started.elapsed() < HOLD_LIMIT {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A new database in `dir`, configured like the running one.
fn open_copy(dir: &Path, cache_size: u64) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .cache_capacity(cache_size)
        .open()
        .map_err(|source| StoreError::Open {
            path: dir.to_owned(),
            source,
        })
}

impl Store {
    /// Compacts the store online (see the module's documentation): copies it into a fresh
    /// database while writes go on, pauses writes for the reconcile and the swap, and removes
    /// the old database. Blocking and long (a read and write of the whole store): callers run
    /// it on a thread of their own.
    pub fn compact(&self) -> Result<CompactReport, StoreError> {
        let _one = self.inner.compacting.try_lock().ok_or(CompactError::Busy)?;
        let data_dir = self.inner.data_dir.clone();
        let (old_db, old_dir) = {
            let handles = self.handles();
            (handles.db.clone(), handles.dir.clone())
        };
        let bytes_before = dir_bytes(&old_dir);
        self.inner.space.check()?;
        self.room_for_copy(&old_db)?;
        let new_dir = successor(&old_dir);
        if new_dir.exists() {
            fs::remove_dir_all(&new_dir).map_err(|source| CompactError::Io {
                what: "remove",
                path: new_dir.clone(),
                source,
            })?;
        }
        let made = self.copy_and_swap(&data_dir, &old_db, &new_dir);
        let made = match made {
            Ok(made) => made,
            Err(error) => {
                // The old database is still the store; the copy is a leftover.
                let _ = fs::remove_dir_all(&new_dir);
                return Err(error);
            }
        };
        drop(old_db);
        if let Err(error) = fs::remove_dir_all(&old_dir) {
            tracing::warn!(
                dir = %old_dir.display(),
                %error,
                "the compaction's old database could not be removed; the next start removes it"
            );
        }
        let report = CompactReport {
            from: name_of(&old_dir),
            to: name_of(&new_dir),
            bytes_before,
            bytes_after: dir_bytes(&new_dir),
            records: made.records,
            reconciled: made.reconciled,
            copy_seconds: made.copy_took.as_secs_f64(),
            wait_seconds: made.waited.as_secs_f64(),
            pause_seconds: made.paused.as_secs_f64(),
        };
        tracing::info!(
            from = %report.from,
            to = %report.to,
            bytes_before = report.bytes_before,
            bytes_after = report.bytes_after,
            records = report.records,
            reconciled = report.reconciled,
            copy_seconds = report.copy_seconds,
            wait_seconds = report.wait_seconds,
            pause_seconds = report.pause_seconds,
            "store compacted"
        );
        Ok(report)
    }

    /// Refuses a compaction whose copy would not fit: the copy takes up to about four times
    /// the live data (3.4 measured) on top of the reserve.
    fn room_for_copy(&self, db: &sled::Db) -> Result<(), StoreError> {
        let Some(space) = self.inner.space.measure() else {
            return Ok(());
        };
        // At most the old database's size; about four times the live data if it was counted.
        let old = db.size_on_disk().unwrap_or(0);
        let usage = self.inner.usage.latest();
        let expected = usage.map_or(old, |u| u.live_bytes.saturating_mul(4).min(old));
        let needed = expected.saturating_add(super::space::RESERVE);
        if space.available < needed {
            return Err(CompactError::NoRoom {
                needed,
                available: space.available,
            }
            .into());
        }
        Ok(())
    }

    /// Steps 1 to 4 of the module's documentation.
    fn copy_and_swap(
        &self,
        data_dir: &Path,
        old_db: &sled::Db,
        new_dir: &Path,
    ) -> Result<Made, StoreError> {
        let started = Instant::now();
        let new_db = open_copy(new_dir, self.inner.options.cache_size)?;
        let trees = Trees::open(&new_db)?;
        let records = copy(old_db, &new_db)?;
        // A first catch-up while writes go on, so that the one under the lock has only the
        // writes of this pass to apply, however long the copy took.
        let caught_up = reconcile(old_db, &new_db)?;
        new_db.flush()?;
        let copy_took = started.elapsed();
        hold(data_dir, CompactStep::Copied);

        let asked = Instant::now();
        let mut handles = self.inner.handles.write();
        let paused = Instant::now();
        // Readers take the lock recursively and do not yield to a waiting writer: how long the
        // swap waited for a moment without them is reported (`wait_seconds`).
        let waited = paused - asked;
        let reconciled = caught_up + reconcile(&handles.db, &new_db)?;
        let floor = handles.ids.successor_floor()?;
        trees.meta.insert(ID_FLOOR_KEY, &floor.to_be_bytes())?;
        new_db.flush()?;
        hold(data_dir, CompactStep::Reconciled);
        point_at(data_dir, new_dir)?;
        hold(data_dir, CompactStep::Pointed);
        // From here on nothing may fail: `db.current` names the copy.
        let ids = Ids {
            db: new_db.clone(),
            floor,
        };
        *handles = Handles {
            db: new_db,
            trees,
            dir: new_dir.to_owned(),
            ids,
        };
        drop(handles);
        let paused = paused.elapsed();
        self.inner.usage.clear();
        self.inner
            .compactions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.last_pause_micros.store(
            u64::try_from(paused.as_micros()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(Made {
            records,
            reconciled,
            copy_took,
            waited,
            paused,
        })
    }
}

fn name_of(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(FIRST)
        .to_owned()
}
