//! Persistence in sled: trees, keys, codecs and group commit. The only module that imports sled.
//! It stores what it is given, atomically, and never decides anything: no engine rules, no
//! clock reads beyond what the caller passes in.
//!
//! Layout (values are JSON unless noted; keys are described in `keys.rs`; monitor states and
//! check-ins in the compact encoding of `codec.rs`, or JSON if written before it):
//!
//! | tree          | key                                          | value                        |
//! |---------------|----------------------------------------------|------------------------------|
//! | `meta`        | `schema_version`                             | u32 BE                       |
//! | `meta`        | `project/` ++ id u64 BE                      | [`ProjectRecord`]            |
//! | `monitors`    | monitor key (project, slug, environment)     | `engine::MonitorEnv`         |
//! | `checkins`    | monitor key ++ date_added ++ id              | `engine::CheckIn` (*)        |
//! | `checkin_ids` | check-in id (16 bytes)                       | its `checkins` key (raw)     |
//! | `incidents`   | monitor key ++ opened_at ++ id               | `engine::Incident`           |
//! | `incident_times` | opened_at ++ id                           | its `incidents` key: index, newest first by a reverse scan |
//! | `open_incidents` | opened_at ++ id                           | its `incidents` key, while it is open |
//! | `outbox`      | sled-generated id u64 BE                     | `alert::OutboxEntry`         |
//! | `outbox_pending` | channel (u16 BE len ++ name) ++ id u64 BE | empty: index of pending deliveries |
//! | `issues`      | issue id (u8 len ++ 32 hex digits)           | `engine::Issue`              |
//! | `issue_times` | last_seen ++ issue id key                    | empty: index, most recently seen first |
//! | `events`      | issue id key ++ received ++ event id         | raw event payload (bytes)    |
//! | `ping_logs`   | monitor key ++ received ++ id                | [`LogEntry`]                 |
//! | `upstream`    | sled-generated id u64 BE                     | raw envelope to relay (bytes)|
//! | `probes`      | probe name                                   | `engine::probes::ProbeState` |
//! | `probe_results` | name len u16 BE ++ name ++ ring slot u32 BE | `engine::probes::ProbeResult` |
//! | `redo`        | slot in the group u32 BE                     | redo record (`redo.rs`)      |
//! | `meta`        | `redo_done`                                  | last complete group, u64 BE  |
//! | `meta`        | `alive`                                      | liveness mark (`liveness.rs`)|
//! | `meta`        | `outages`                                    | `Vec<engine::Outage>`        |
//!
//! (*) Except the `in_progress` check-in of a run that is still open: the monitor record holds
//! it (`engine::OpenRun`), so a run's start and heartbeats write only the monitor, and its
//! record is written when the run ends (or when a re-enable makes the monitor forget it). Its
//! id index entry is written at the start and already names the key the record will have.
//!
//! Every state change goes through [`Store::commit_async`] (or [`Store::commit`]), written
//! atomically with the other write sets of its group (`committer.rs`, `redo.rs`), and is
//! acknowledged only after [`Store::wait_durable`] (group commit, see `durability.rs`). The
//! alert deliveries a change causes are written in that same write set (`outbox.rs`).

mod cache;
mod codec;
mod committer;
mod compact;
#[cfg(test)]
mod compact_tests;
mod durability;
mod error;
mod generations;
mod handles;
mod issues;
mod keys;
mod liveness;
mod migrate;
mod outbox;
mod page;
mod pending;
mod postgres;
mod prepared;
mod probes;
mod redo;
mod refusals;
mod space;
mod tally;
mod trees;
mod upstream;
mod usage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use codec::CodecError;
pub use compact::{CompactReport, CompactStep, HOLD_ENV};
use durability::GroupCommit;
pub use durability::Seq;
pub use error::StoreError;
pub use generations::{CURRENT_FILE, CompactError};
pub use outbox::{DELIVERIES_KEPT, DeliveryFilter};
pub use page::{BadCursor, Cursor, Page};
pub use refusals::RefusalRecord;
pub use space::DiskSpace;
pub use tally::{MonitorCounts, STATUSES};
pub use upstream::QueuedEnvelope;
pub use usage::{FileUsage, TreeUsage, Usage};

use crate::alert::outbox::{NewDelivery, OutboxEntry};
use crate::engine::probes::{ProbeResult, ProbeState};
use crate::engine::{
    CheckIn, CheckInStatus, Deadline, DeadlineSource, Effect, Incident, Issue, MonitorEnv,
    MonitorKey, MonitorStatus, OpenRun, Outage, deadlines_of,
};
use error::{decode, decode_checkin, decode_monitor, encode};
use handles::Handles;
use pending::OutboxCount;
use prepared::{
    Committed, Count, Counts, IncidentWrite, IndexMove, Prepared, PreparedCheckIn,
    PreparedCheckIns, RawPut, StatusMove, Written, count_monitors, incident_key,
};
pub use trees::SCHEMA_VERSION;
use trees::{SCHEMA_KEY, TreeId, Trees};

/// How long [`Store::open`] waits for sled to open and recover the database before it judges
/// the file damaged. A sound store opens in well under a second per hundred megabytes (sled
/// replays only the log written since its last snapshot); this bound is for a recovery stuck
/// on damage, which would otherwise keep `serve` from ever listening, without a log line.
pub const OPEN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// sled's page cache unless configured (`[store] cache_size`). 32 MiB: in the measured curve
/// (`benches/README.md`, "Store size and memory") throughput and CPU per check-in were the same
/// from 8 to 128 MiB at 1,000 monitors (about 23 MB of live data), so the default keeps room
/// for a few times that data set and gives back the rest of the 128 MiB it used to be.
pub const DEFAULT_CACHE_SIZE: u64 = 32 << 20;

/// How the database is opened: what `[store]` configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Bytes of sled's page cache.
    pub cache_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

const HEALTH_KEY: &[u8] = b"healthz";

/// A project and its public keys, as persisted for a config-less start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// Project id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Public keys (32 lowercase hex characters).
    pub keys: Vec<String>,
}

/// An error event as sent, filed under its issue.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// The issue it belongs to.
    pub issue: String,
    /// The event's `event_id`.
    pub event_id: Uuid,
    /// When the collector received it.
    pub received: DateTime<Utc>,
    /// The item payload, exactly as sent.
    pub payload: Vec<u8>,
}

/// A `/ping/.../log` entry: text attached to a monitor environment without changing its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The monitor environment.
    pub key: MonitorKey,
    /// Unique id of the entry.
    pub id: Uuid,
    /// When it was received.
    pub received: DateTime<Utc>,
    /// The request body (truncated by ingest).
    pub body: String,
}

/// Everything one input changes, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct WriteSet {
    /// Monitor environments to store; their deadlines and open incident are stored with them.
    pub monitors: Vec<MonitorEnv>,
    /// Check-ins to insert or replace (by id).
    pub checkins: Vec<CheckIn>,
    /// Effects: the incidents they carry are stored (their alerts are in `deliveries`).
    pub effects: Vec<Effect>,
    /// Issues to store, after the events below were folded in.
    pub issues: Vec<Issue>,
    /// Events, each under its issue.
    pub events: Vec<RawEvent>,
    /// Alert deliveries for the outbox, caused by this change.
    pub deliveries: Vec<NewDelivery>,
    /// Ping log entries.
    pub logs: Vec<LogEntry>,
    /// Accepted envelopes for the upstream relay queue (see `upstream.rs`), raw.
    pub upstream: Vec<Vec<u8>>,
    /// Retention to apply with this write (see [`Prune`]).
    pub prune: Vec<Prune>,
    /// Ids among `checkins` the caller looked up and found not stored, holding the monitor's
    /// lock since: the store skips their index lookup. A hint; empty is always correct.
    pub unstored: Vec<Uuid>,
    /// Probe changes: a check's outcome, or a probe that left the config.
    pub probes: Vec<ProbeWrite>,
    /// Monitor environments to delete, with their check-ins, incidents and log entries. The
    /// caller holds each one's lock.
    pub deletes: Vec<MonitorKey>,
    /// Deliveries whose state their channel's worker changed (sent, failed, suppressed, or
    /// still pending after an attempt), each with its place in the pending index. The caller
    /// is the only worker of each entry's channel.
    pub saved: Vec<OutboxEntry>,
    /// The collector's own records: refusals, config origins, the liveness mark, projects.
    pub meta: Vec<MetaWrite>,
}

/// A change of one of the collector's own records (`WriteSet::meta`).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaWrite {
    /// A person set this monitor environment's config (`managed`), or a check-in's config
    /// rules it again. Deleting the monitor environment removes the mark too.
    Managed {
        /// The monitor environment.
        key: MonitorKey,
        /// Whether a person set its config.
        managed: bool,
    },
    /// A refusal kept for people to see.
    Refusal(RefusalRecord),
    /// A refusal pushed out of its project's last ones.
    RefusalGone {
        /// Its project.
        project: u64,
        /// Its id.
        id: u64,
    },
    /// A project and its keys, for a config-less start.
    Project(ProjectRecord),
    /// The collector was watching at `at`; with the outages known so far when they changed.
    Alive {
        /// The moment of the mark.
        at: DateTime<Utc>,
        /// The outages to keep, when they changed.
        outages: Option<Vec<Outage>>,
    },
}

/// A change of a probe, written like every other change (`WriteSet::probes`).
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeWrite {
    /// A check: the probe's new state, and the check's result in the ring slot its number
    /// falls in (`(checks - 1) % keep`), replacing the oldest result.
    Checked {
        state: Box<ProbeState>,
        result: Box<ProbeResult>,
        keep: usize,
    },
    /// Someone handled the probe's open incident (acknowledged it): its new state, and its
    /// open incident's record rewritten with it. No check, no result.
    Handled { state: Box<ProbeState> },
    /// The probe left the config: its state and every result go.
    Retired { name: String },
    /// Result slots at or beyond `keep` go (`retention.probe_results` shrank).
    Trimmed { name: String, keep: usize },
}

/// Retention for one monitor environment, applied with a write: after the write, all but its
/// newest `keep` log entries and (if `checkins`) check-ins are gone, sparing the check-ins in
/// `protect` (open runs) and those the write itself stores. Part of the write's group, so it
/// costs no transaction of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prune {
    /// The monitor environment.
    pub key: MonitorKey,
    /// How many of each to keep.
    pub keep: usize,
    /// Whether check-ins are pruned too, not only log entries. A writer that does not know the
    /// monitor's open runs (a ping's log entry) prunes only logs, so it never drops a run.
    pub checkins: bool,
    /// Check-ins never removed.
    pub protect: Vec<Uuid>,
}

impl WriteSet {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
            && self.checkins.is_empty()
            && self.effects.is_empty()
            && self.issues.is_empty()
            && self.events.is_empty()
            && self.deliveries.is_empty()
            && self.logs.is_empty()
            && self.upstream.is_empty()
            && self.prune.is_empty()
            && self.probes.is_empty()
            && self.deletes.is_empty()
            && self.saved.is_empty()
            && self.meta.is_empty()
    }
}

/// Counters for `/metrics` and `/healthz`.
#[derive(Debug, Clone, Copy)]
pub struct StoreStats {
    /// fsyncs performed.
    pub flushes: u64,
    /// Duration of the last fsync.
    pub last_flush_seconds: f64,
    /// Events held, all issues together.
    pub events: usize,
    /// Bytes on disk.
    pub size_on_disk: u64,
    /// Compactions done since the start (`compact.rs`).
    pub compactions: u64,
    /// How long ingest paused in the last compaction, in seconds.
    pub last_compaction_pause_seconds: f64,
}

struct Inner {
    /// First, so that it is dropped (its thread joined) first.
    committer: committer::Committer,
    /// The database and its trees. Behind a lock only so that a compaction can swap them for
    /// a fresh copy (`compact.rs`): everything else takes it for reading, recursively, for
    /// the length of one operation; the swap takes it for writing, which is the moment ingest
    /// pauses.
    handles: Arc<parking_lot::RwLock<Handles>>,
    /// The data dir (`db.current` and the database directories are in it).
    data_dir: PathBuf,
    /// sled's page cache, for the database a compaction opens.
    options: Options,
    /// Held by the compaction under way: one at a time.
    compacting: parking_lot::Mutex<()>,
    /// Compactions done, and the last one's pause in microseconds, for `/metrics`.
    compactions: std::sync::atomic::AtomicU64,
    last_pause_micros: std::sync::atomic::AtomicU64,
    group: Arc<GroupCommit>,
    /// Writes groups; shared with the committer thread.
    writer: Arc<parking_lot::Mutex<redo::Writer>>,
    cache: cache::HotCache,
    events: AtomicUsize,
    outbox: OutboxCount,
    space: space::Space,
    /// Monitor environments by status (`tally.rs`).
    tally: tally::Tally,
    /// The last [`Store::usage`] count, for `/metrics`.
    usage: usage::UsageCache,
}

/// The sled store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database in `dir`. sled's own periodic flush is off: durability
    /// comes from the group-commit flusher, which must be running ([`Store::run_flusher`]).
    /// (sled's flusher also runs its segment cleaner; turned on every second it did not make
    /// the store any smaller: `benches/README.md`, "Store size and memory".)
    ///
    /// Runs on a thread of its own, so that a damaged file ends in an error naming it rather
    /// than in a stuck or crashed process: sled 0.34 answers some damage (a zeroed region in
    /// its log) with a panic during recovery, which is caught here, and an open still not done
    /// after [`OPEN_DEADLINE`] is given up as damaged (the thread is left behind: the caller is
    /// expected to exit).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, Options::default())
    }

    /// Whether `data_dir` holds a store: the database `db.current` names (or `db`) exists.
    /// Creates nothing.
    pub fn exists(data_dir: &Path) -> bool {
        generations::current(data_dir).is_ok_and(|dir| dir.join("db").is_file())
    }

    /// [`Store::open`] with the options `[store]` configures.
    pub fn open_with(dir: &Path, options: Options) -> Result<Store, StoreError> {
        let file = generations::current(dir)
            .unwrap_or_else(|_| dir.join("db"))
            .join("db");
        let (done, result) = std::sync::mpsc::channel();
        let opener = std::thread::Builder::new()
            .name("watchpost-open".to_owned())
            .spawn({
                let dir = dir.to_owned();
                move || {
                    let _ = done.send(Store::open_here(&dir, options));
                }
            })
            .map_err(|error| StoreError::Open {
                path: dir.to_owned(),
                source: error.into(),
            })?;
        match result.recv_timeout(OPEN_DEADLINE) {
            Ok(opened) => opened,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let panic = opener.join().err();
                let what = panic
                    .as_deref()
                    .and_then(|p| {
                        p.downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| p.downcast_ref::<&str>().copied())
                    })
                    .unwrap_or("no reason given");
                Err(StoreError::Damaged {
                    file,
                    detail: format!("sled crashed while recovering it: {what}"),
                })
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(StoreError::Damaged {
                file,
                detail: format!(
                    "sled's recovery did not finish within {} s",
                    OPEN_DEADLINE.as_secs()
                ),
            }),
        }
    }

    /// [`Store::open`] on the calling thread, with sled's errors told apart: a held lock, a
    /// damaged file, anything else.
    fn open_here(dir: &Path, options: Options) -> Result<Store, StoreError> {
        // The database `db.current` names, without what a compaction that crashed left.
        let path = generations::settle(dir)?;
        let file = path.join("db");
        let damaged = |error: StoreError| match error {
            StoreError::Sled(sled::Error::Corruption { .. }) => StoreError::Damaged {
                file: file.clone(),
                detail: "sled found a corrupt record".to_owned(),
            },
            other => other,
        };
        let db = sled::Config::new()
            .path(&path)
            .flush_every_ms(None)
            .cache_capacity(options.cache_size)
            .open()
            .map_err(|source| match source {
                sled::Error::Io(ref error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    StoreError::Locked { path: path.clone() }
                }
                sled::Error::Corruption { .. } => damaged(StoreError::Sled(source)),
                source => StoreError::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        Store::open_db(dir, &path, db, options).map_err(damaged)
    }

    /// The rest of [`Store::open`] once sled has opened: trees, schema check, redo recovery,
    /// upgrades, counts, the committer.
    fn open_db(
        dir: &Path,
        db_dir: &Path,
        db: sled::Db,
        options: Options,
    ) -> Result<Store, StoreError> {
        let trees = Trees::open(&db)?;
        let found = trees
            .meta
            .get(SCHEMA_KEY)?
            .map(|found| <[u8; 4]>::try_from(found.as_ref()).map_or(0, u32::from_be_bytes));
        if let Some(found) = found
            && !(1..=SCHEMA_VERSION).contains(&found)
        {
            return Err(StoreError::Schema { found });
        }
        // Before anything reads, counts or upgrades: a group a crash interrupted is completed
        // first, in the layout it was written in (redo records hold raw writes; a schema 2
        // group's deadline writes are skipped), so the upgrade below sees it whole.
        let writer = Arc::new(parking_lot::Mutex::new(redo::recover(&trees)?));
        match found {
            None => {
                trees
                    .meta
                    .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(1) => {
                migrate::from_v1(&db, &trees)?;
                migrate::from_v2(&db, &trees)?;
                migrate::from_v3(&db, &trees)?;
                migrate::from_v4(&db, &trees)?;
            }
            Some(2) => {
                migrate::from_v2(&db, &trees)?;
                migrate::from_v3(&db, &trees)?;
                migrate::from_v4(&db, &trees)?;
            }
            Some(3) => {
                migrate::from_v3(&db, &trees)?;
                migrate::from_v4(&db, &trees)?;
            }
            Some(4) => migrate::from_v4(&db, &trees)?,
            Some(_) => {}
        }
        let events = AtomicUsize::new(trees.events.len());
        let tally = tally::Tally::default();
        tally.reset(&count_monitors(&trees)?);
        let outbox = OutboxCount::load(trees.outbox.len(), &trees.outbox_pending)?;
        let group = Arc::new(GroupCommit::new());
        let space = space::Space::new(dir.to_owned());
        let ids = handles::Ids::load(&db, &trees)?;
        let handles = Arc::new(parking_lot::RwLock::new(Handles {
            db,
            trees,
            dir: db_dir.to_owned(),
            ids,
        }));
        Ok(Store {
            inner: Arc::new(Inner {
                committer: committer::Committer::start(
                    handles.clone(),
                    space.clone(),
                    group.clone(),
                    writer.clone(),
                ),
                writer,
                handles,
                data_dir: dir.to_owned(),
                options,
                compacting: parking_lot::Mutex::new(()),
                compactions: std::sync::atomic::AtomicU64::new(0),
                last_pause_micros: std::sync::atomic::AtomicU64::new(0),
                group,
                cache: cache::HotCache::default(),
                events,
                outbox,
                space,
                tally,
                usage: usage::UsageCache::default(),
            }),
        })
    }

    /// The database, for one operation. Recursive, so that an operation may call another
    /// while a compaction waits to swap (`compact.rs`).
    fn handles(&self) -> parking_lot::RwLockReadGuard<'_, Handles> {
        self.inner.handles.read_recursive()
    }

    /// The trees, for one operation (see [`Store::handles`]).
    fn trees(&self) -> parking_lot::MappedRwLockReadGuard<'_, Trees> {
        parking_lot::RwLockReadGuard::map(self.handles(), |handles| &handles.trees)
    }

    /// sled's handle, for one operation.
    fn db(&self) -> sled::Db {
        self.handles().db.clone()
    }

    // ---- group commit -------------------------------------------------------------------

    /// The flusher: passes requests for a flush (from writes made outside the committer) to
    /// the committer's flush thread, which does one fsync at a time, each covering every write
    /// made before it started. Returns (after a final flush) when `shutdown` resolves.
    pub async fn run_flusher(&self, shutdown: impl Future<Output = ()>) {
        let group = &self.inner.group;
        let committer = &self.inner.committer;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = group.requested() => {
                    match committer.flush(committer::WRITE_DEADLINE).await {
                        Ok(()) => {}
                        // Health reports the stuck flush; the next request asks again.
                        Err(StoreError::Stalled { .. }) => {}
                        Err(_) => break,
                    }
                }
                () = &mut shutdown => break,
            }
        }
        let _ = committer.flush(committer::WRITE_DEADLINE).await;
    }

    /// Waits until write `seq` (from [`Store::commit`]) is on disk.
    pub async fn wait_durable(&self, seq: Seq) -> Result<(), StoreError> {
        self.inner.group.wait(seq).await
    }

    /// Flushes everything now, without the flusher (for shutdown and startup).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db().flush()?;
        Ok(())
    }

    /// [`Store::flush_blocking`] for shutdown, given up after `deadline` with
    /// [`StoreError::Stalled`]; also `Stalled` if the committer's write or flush is still under
    /// way then, since dropping the store waits for it. sled cannot be interrupted, so the
    /// flush runs on a thread of its own that is left behind if it never returns; the caller
    /// then exits the process without dropping the store.
    pub async fn flush_within(&self, deadline: std::time::Duration) -> Result<(), StoreError> {
        let started = tokio::time::Instant::now();
        let (done, answer) = tokio::sync::oneshot::channel();
        let db = self.db();
        std::thread::Builder::new()
            .name("watchpost-final-flush".into())
            .spawn(move || {
                let _ = done.send(db.flush().map(drop));
            })
            .map_err(|e| StoreError::Flush(format!("cannot start the final flush: {e}")))?;
        match tokio::time::timeout(deadline, answer).await {
            Ok(Ok(flushed)) => flushed?,
            Ok(Err(_)) => return Err(StoreError::Closed),
            Err(_) => {
                return Err(StoreError::Stalled {
                    what: "flush",
                    waited: deadline,
                });
            }
        }
        while let Some(stall) = self.inner.group.stalled(std::time::Duration::ZERO) {
            if started.elapsed() >= deadline {
                return Err(StoreError::Stalled {
                    what: stall.what,
                    waited: stall.for_,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Checks that the store takes writes: the last flush and the last group write
    /// succeeded, no write or flush has been under way for `stalled_after` or more (sled
    /// blocks without end when it cannot open a file, and every later write queues behind
    /// it), there is free space, and a small write goes through. The last is only a write to
    /// sled's memory; the first three are what tell a stuck store from a healthy one.
    pub fn check_writable(
        &self,
        now: DateTime<Utc>,
        stalled_after: std::time::Duration,
    ) -> Result<(), StoreError> {
        if let Some(why) = self.inner.group.failure() {
            return Err(StoreError::Flush(why));
        }
        if let Some(stall) = self.inner.group.stalled(stalled_after) {
            return Err(StoreError::Stalled {
                what: stall.what,
                waited: stall.for_,
            });
        }
        if let Some(why) = self.inner.group.write_failure() {
            return Err(StoreError::Flush(format!("the last write failed: {why}")));
        }
        self.inner.space.check()?;
        self.trees().meta.insert(HEALTH_KEY, &keys::time(now))?;
        Ok(())
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            flushes: self.inner.group.flushes(),
            last_flush_seconds: self.inner.group.last_flush_seconds(),
            events: self.inner.events.load(Ordering::Relaxed),
            size_on_disk: self.handles().db.size_on_disk().unwrap_or(0),
            compactions: self.inner.compactions.load(Ordering::Relaxed),
            last_compaction_pause_seconds: self.inner.last_pause_micros.load(Ordering::Relaxed)
                as f64
                / 1e6,
        }
    }

    /// Where the bytes go: records and live bytes per tree, and the database's files. Walks
    /// every record (`usage.rs`), so callers run it on a blocking thread.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let (db, dir) = {
            let handles = self.handles();
            (handles.db.clone(), handles.dir.clone())
        };
        usage::measure(&db, &dir)
    }

    /// [`Store::usage`], or the last count if it was taken at most `max_age` before `now`.
    pub fn usage_within(
        &self,
        now: std::time::Instant,
        max_age: std::time::Duration,
    ) -> Result<Arc<Usage>, StoreError> {
        if let Some(usage) = self.inner.usage.fresh(now, max_age) {
            return Ok(usage);
        }
        let usage = Arc::new(self.usage()?);
        self.inner.usage.put(now, usage.clone());
        Ok(usage)
    }

    /// Free and total space of the data dir's file system, if it says.
    pub fn disk_space(&self) -> Option<DiskSpace> {
        self.inner.space.measure()
    }

    // ---- projects -----------------------------------------------------------------------

    /// Projects persisted by an earlier start, by id.
    pub fn projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        self.trees()
            .meta
            .scan_prefix(b"project/")
            .values()
            .map(|v| decode("meta", &v?))
            .collect()
    }

    /// Persists a project durably (it must survive a crash before the DSN is printed).
    pub fn save_project(&self, project: &ProjectRecord) -> Result<(), StoreError> {
        self.write_meta(MetaWrite::Project(project.clone()))?;
        self.db().flush()?;
        Ok(())
    }

    /// Writes one change of the collector's own records as a write set of its own.
    pub(crate) fn write_meta(&self, write: MetaWrite) -> Result<Seq, StoreError> {
        let set = WriteSet {
            meta: vec![write],
            ..WriteSet::default()
        };
        // Records carry their own times.
        self.commit(&set, DateTime::UNIX_EPOCH)
    }

    // ---- reads --------------------------------------------------------------------------

    /// One monitor environment.
    pub fn monitor(&self, key: &MonitorKey) -> Result<Option<MonitorEnv>, StoreError> {
        if let Some(monitor) = self.inner.cache.monitor(key) {
            return Ok(Some(monitor));
        }
        self.trees()
            .monitors
            .get(keys::monitor(key))?
            .map(|v| decode_monitor(&v))
            .transpose()
    }

    /// One page of monitor environments (all, or one project's) in key order — project, slug,
    /// environment — from `from`: a range scan from the cursor, never a scan and skip. At most
    /// `limit` that `keep` accepts, after examining at most `examine` records, so a filter that
    /// matches little still costs a bounded read per page (such a page may hold fewer than
    /// `limit` and still have a next one).
    pub fn monitors_page(
        &self,
        project: Option<u64>,
        from: &Cursor,
        limit: usize,
        examine: usize,
        keep: impl Fn(&MonitorEnv) -> bool,
    ) -> Result<Page<MonitorEnv>, StoreError> {
        let prefix = project
            .map(|id| id.to_be_bytes().to_vec())
            .unwrap_or_default();
        page::scan(
            &self.trees().monitors,
            &prefix,
            from,
            limit,
            examine,
            |_, value| {
                let monitor = decode_monitor(value)?;
                Ok(keep(&monitor).then_some(monitor))
            },
        )
    }

    /// Monitor environments by status, from counters the writes maintain (`tally.rs`): no scan,
    /// unless a failed write left them possibly wrong.
    pub fn monitor_counts(&self) -> Result<MonitorCounts, StoreError> {
        if self.inner.tally.is_stale() {
            self.inner.tally.reset(&count_monitors(&self.trees())?);
        }
        Ok(self.inner.tally.read())
    }

    /// Every environment of one monitor.
    pub fn monitor_envs(&self, project: u64, slug: &str) -> Result<Vec<MonitorEnv>, StoreError> {
        self.trees()
            .monitors
            .scan_prefix(keys::monitor_prefix(project, slug))
            .values()
            .map(|v| decode_monitor(&v?))
            .collect()
    }

    /// A check-in by id, in whichever monitor environment it is.
    pub fn checkin(&self, id: Uuid) -> Result<Option<CheckIn>, StoreError> {
        if let Some(run) = self.inner.cache.run(id) {
            return Ok(Some(run));
        }
        let Some(key) = self.trees().checkin_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        if let Some(value) = self.trees().checkins.get(&key)? {
            return decode_checkin(&value).map(Some);
        }
        // No record: an open run, held by its monitor, whose key prefixes the check-in's.
        let Some(monitor) = keys::timed_prefix(&key)
            .map(|prefix| self.trees().monitors.get(prefix))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        let monitor = decode_monitor(&monitor)?;
        Ok(monitor.open_run(id).map(|run| run.checkin(&monitor.key)))
    }

    /// The newest `limit` check-ins of a monitor environment, newest first (the first page of
    /// [`Store::checkins_page`]).
    pub fn checkins(&self, key: &MonitorKey, limit: usize) -> Result<Vec<CheckIn>, StoreError> {
        Ok(self
            .checkins_page(std::slice::from_ref(key), &Cursor::Start, limit)?
            .items)
    }

    /// A page of the check-ins of one or more environments of a monitor, newest first, merged
    /// by time: their records and the `in_progress` check-ins of their open runs (held by the
    /// monitor records), each where its key would be. The cursor names a time and id, so the
    /// same cursor walks every environment (`page::timeline`); each environment reads at most
    /// `limit + 1` records per page.
    pub fn checkins_page(
        &self,
        envs: &[MonitorKey],
        from: &Cursor,
        limit: usize,
    ) -> Result<Page<CheckIn>, StoreError> {
        let mut lanes = Vec::with_capacity(envs.len());
        for key in envs {
            let held = self
                .open_runs(key)?
                .iter()
                .map(|run| (keys::timed(&[], run.started, run.id), run.checkin(key)))
                .collect();
            lanes.push(page::Lane {
                prefix: keys::monitor(key),
                held,
            });
        }
        page::timeline(&self.trees().checkins, lanes, from, limit, limit, |_, v| {
            decode_checkin(v).map(Some)
        })
    }

    /// The newest `limit` ping log entries of a monitor environment, newest first.
    pub fn logs(&self, key: &MonitorKey, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        Ok(self
            .logs_page(std::slice::from_ref(key), &Cursor::Start, limit)?
            .items)
    }

    /// A page of the ping log entries of one or more environments of a monitor, newest first,
    /// like [`Store::checkins_page`].
    pub fn logs_page(
        &self,
        envs: &[MonitorKey],
        from: &Cursor,
        limit: usize,
    ) -> Result<Page<LogEntry>, StoreError> {
        let lanes = envs
            .iter()
            .map(|key| page::Lane::of(keys::monitor(key)))
            .collect();
        page::timeline(
            &self.trees().ping_logs,
            lanes,
            from,
            limit,
            limit,
            |_, v| decode("ping_logs", v).map(Some),
        )
    }

    /// A page of incidents, newest first, read from the `incident_times` index (all) or the
    /// `open_incidents` one (only open ones), of every project or one. The project filter
    /// examines at most `examine` records per page (a page may then hold fewer than `limit`
    /// and still have a next one).
    pub fn incidents_page(
        &self,
        open_only: bool,
        project: Option<u64>,
        from: &Cursor,
        limit: usize,
        examine: usize,
    ) -> Result<Page<Incident>, StoreError> {
        let incidents = &self.trees().incidents;
        let index = if open_only {
            &self.trees().open_incidents
        } else {
            &self.trees().incident_times
        };
        page::timeline(
            index,
            vec![page::Lane::of(Vec::new())],
            from,
            limit,
            examine,
            |_, at| {
                // An index entry whose record went (a monitor deleted since) is skipped.
                let Some(value) = incidents.get(at)? else {
                    return Ok(None);
                };
                let incident: Incident = decode("incidents", &value)?;
                let wanted = (!open_only || incident.resolved_at.is_none())
                    && project.is_none_or(|p| incident.key.project == p);
                Ok(wanted.then_some(incident))
            },
        )
    }

    /// The open incident with this id, if there is one. Reads the `open_incidents` index,
    /// whose keys end in the id, so only open incidents are looked at and only the match is
    /// decoded (acknowledging is a person's action, not a per-check-in cost).
    pub fn open_incident(&self, id: Uuid) -> Result<Option<Incident>, StoreError> {
        for entry in self.trees().open_incidents.iter() {
            let (at, key) = entry?;
            if keys::timed_id(&at) != Some(id) {
                continue;
            }
            let Some(value) = self.trees().incidents.get(&key)? else {
                continue;
            };
            let incident: Incident = decode("incidents", &value)?;
            if incident.resolved_at.is_none() {
                return Ok(Some(incident));
            }
        }
        Ok(None)
    }

    /// The newest `limit` incidents, all or only open ones.
    pub fn incidents(&self, open_only: bool, limit: usize) -> Result<Vec<Incident>, StoreError> {
        Ok(self
            .incidents_page(open_only, None, &Cursor::Start, limit, limit)?
            .items)
    }

    /// A page of the incidents of one or more environments of a monitor, newest first.
    pub fn monitor_incidents_page(
        &self,
        envs: &[MonitorKey],
        from: &Cursor,
        limit: usize,
    ) -> Result<Page<Incident>, StoreError> {
        let lanes = envs
            .iter()
            .map(|key| page::Lane::of(keys::monitor(key)))
            .collect();
        page::timeline(
            &self.trees().incidents,
            lanes,
            from,
            limit,
            limit,
            |_, v| decode("incidents", v).map(Some),
        )
    }

    /// A page of the environments of one monitor, in key order.
    pub fn monitor_envs_page(
        &self,
        project: u64,
        slug: &str,
        from: &Cursor,
        limit: usize,
    ) -> Result<Page<MonitorEnv>, StoreError> {
        page::scan(
            &self.trees().monitors,
            &keys::monitor_prefix(project, slug),
            from,
            limit,
            limit,
            |_, value| decode_monitor(value).map(Some),
        )
    }

    /// Every deadline of every monitor environment, to rebuild the in-memory index at startup.
    /// Deadlines are derived from the monitor records, which are written anyway (see
    /// `deadlines_of`), rather than kept in a tree of their own: that tree cost one more sled
    /// write per check-in (`ARCHITECTURE.md`, "Store").
    pub fn deadlines(&self) -> Result<Vec<(MonitorKey, Vec<Deadline>)>, StoreError> {
        let mut all = Vec::new();
        for value in self.trees().monitors.iter().values() {
            let value = value?;
            let deadlines = if codec::is_json(&value) {
                // Written as JSON (before the compact encoding): only these fields.
                decode::<DeadlineSource>("monitors", &value)?.deadlines()
            } else {
                deadlines_of(&decode_monitor(&value)?)
            };
            if let Some(first) = deadlines.first() {
                all.push((first.key.clone(), deadlines));
            }
        }
        Ok(all)
    }

    // ---- writes -------------------------------------------------------------------------

    /// Writes `set` atomically: each monitor with its open incident,
    /// each check-in with its id index entry, each effect's incident, issues with their
    /// events, alert deliveries (new outbox entries, created at `now`), log entries and
    /// envelopes to relay. Returns the sequence number to pass to [`Store::wait_durable`].
    ///
    /// The caller serializes writers per monitor environment: what is written depends on the
    /// cached previous state of each monitor (see `prepared.rs`).
    pub fn commit(&self, set: &WriteSet, now: DateTime<Utc>) -> Result<Seq, StoreError> {
        let prepared = self.prepare(set, now)?;
        self.write_now(set, &prepared)
    }

    /// Writes what [`Store::prepare`] made of `set` on this thread, as a group of one.
    fn write_now(&self, set: &WriteSet, prepared: &Prepared) -> Result<Seq, StoreError> {
        if !prepared.is_empty() {
            self.inner.space.check()?;
            let handles = self.handles();
            let written = self.inner.writer.lock().write_group(
                &handles.ids,
                &handles.trees,
                std::slice::from_ref(prepared),
            );
            drop(handles);
            if written.is_err() {
                self.inner.cache.forget_counts();
                self.inner.tally.mark_stale();
            }
            written?;
        }
        self.committed(set, &prepared.committed());
        Ok(self.inner.group.record_write())
    }

    /// [`Store::commit`] for the request path: the write set is encoded on the caller's
    /// thread, then written by the committer thread in one group together with every other
    /// write set submitted meanwhile (see `committer.rs`). Same result, same atomicity
    /// for `set`; far cheaper per write under concurrent load.
    pub async fn commit_async(
        &self,
        set: &WriteSet,
        now: DateTime<Utc>,
    ) -> Result<Seq, StoreError> {
        let prepared = self.prepare(set, now)?;
        let committed = prepared.committed();
        let seq = if prepared.is_empty() {
            self.inner.group.record_write()
        } else {
            let submitted = self
                .inner
                .committer
                .submit(prepared, committer::WRITE_DEADLINE)
                .await;
            if submitted.is_err() {
                self.inner.cache.forget_counts();
                self.inner.tally.mark_stale();
            }
            submitted?
        };
        self.committed(set, &committed);
        Ok(seq)
    }

    /// Encodes `set` for sled, deciding which old check-ins and log entries its retention removes.
    fn prepare(&self, set: &WriteSet, now: DateTime<Utc>) -> Result<Prepared, StoreError> {
        let monitors = set
            .monitors
            .iter()
            .map(|m| (keys::monitor(&m.key), codec::encode_monitor(m)))
            .collect();
        let mut counts = Counts::default();
        let PreparedCheckIns {
            checkins,
            owners,
            net,
            forget_all,
            moves,
        } = self.prepare_checkins(set)?;
        counts.forget_all = forget_all;
        let incidents = set
            .monitors
            .iter()
            .filter_map(|m| m.open_incident.as_ref())
            .chain(set.effects.iter().map(|effect| match effect {
                Effect::IncidentOpened { incident, .. }
                | Effect::IncidentResolved { incident, .. } => incident,
            }))
            // A probe incident someone handled (acknowledged): its record follows the state.
            .chain(set.probes.iter().filter_map(|write| match write {
                ProbeWrite::Handled { state } => state.open_incident.as_ref(),
                _ => None,
            }))
            // The incident an effect opened is also the monitor's open incident: one write per
            // key (the last mention, the effect's, wins; they are equal).
            .map(|i| (incident_key(i), i))
            .collect::<HashMap<_, _>>()
            .into_values()
            .map(IncidentWrite::of)
            .collect();
        let issues = set
            .issues
            .iter()
            .map(|i| (keys::issue(&i.id), encode(i)))
            .collect();
        let issue_times = self.issue_times(&set.issues)?;
        let events = set
            .events
            .iter()
            .map(|e| {
                let key = keys::timed(&keys::issue(&e.issue), e.received, e.event_id);
                (key, e.payload.clone())
            })
            .collect();
        let logs = set
            .logs
            .iter()
            .map(|l| {
                (
                    keys::timed(&keys::monitor(&l.key), l.received, l.id),
                    encode(l),
                )
            })
            .collect();
        let mut removes = Vec::new();
        let mut pruned = Vec::new();
        if !set.prune.is_empty() {
            // Indexed once: a sweep's write set prunes hundreds of monitors.
            let written = Written {
                net: &net,
                keys: {
                    let mut by: HashMap<&MonitorKey, Vec<Vec<u8>>> = HashMap::new();
                    for (owner, prepared) in owners.iter().zip(&checkins) {
                        if prepared.value.is_some() {
                            by.entry(*owner).or_default().push(prepared.key.clone());
                        }
                    }
                    by.values_mut().for_each(|keys| keys.sort());
                    by
                },
                ids: checkins.iter().map(|c| c.id).collect(),
                logs: set.logs.iter().fold(HashMap::new(), |mut by, l| {
                    *by.entry(&l.key).or_insert(0) += 1;
                    by
                }),
            };
            let mut seen = std::collections::HashSet::new();
            for prune in &set.prune {
                if !seen.insert(&prune.key) {
                    continue;
                }
                // Retention is cleanup: a failed scan loses nothing and must not fail the write.
                match self.retention(&written, prune, &mut removes, &mut pruned) {
                    Ok(Some(count)) => counts.set(&prune.key, Count::Exact(count)),
                    Ok(None) => {}
                    Err(error) => {
                        // It may have planned some removals: the count is no longer known.
                        counts.set(&prune.key, Count::Unknown);
                        tracing::warn!(%error, "retention failed");
                    }
                }
            }
        }
        for (key, n) in net {
            if !counts.changes.iter().any(|(counted, _)| counted == key) {
                counts.set(key, Count::Added(n));
            }
        }
        let mut puts = self.prepare_probes(&set.probes, &mut removes)?;
        let pending_moves = self.prepare_saved(&set.saved, &mut puts, &mut removes)?;
        prepare_meta(&set.meta, &mut puts, &mut removes);
        let deleted = self.prepare_deletes(&set.deletes, &mut removes)?;
        Ok(Prepared {
            monitors,
            checkins,
            incidents,
            deliveries: set.deliveries.clone(),
            issues,
            issue_times,
            events,
            logs,
            upstream: set.upstream.clone(),
            puts,
            removes,
            deleted,
            pruned,
            counts,
            moves,
            pending_moves,
            now,
        })
    }

    /// The removals that delete each monitor environment of `deletes` with everything kept
    /// under it; returns each one with its stored status before. The caller holds their locks.
    fn prepare_deletes(
        &self,
        deletes: &[MonitorKey],
        removes: &mut Vec<(TreeId, Vec<u8>)>,
    ) -> Result<Vec<(MonitorKey, Option<MonitorStatus>)>, StoreError> {
        let t = self.trees();
        let keys_under = |tree: &sled::Tree, prefix: &[u8]| -> Result<Vec<Vec<u8>>, StoreError> {
            Ok(tree
                .scan_prefix(prefix)
                .keys()
                .map(|k| k.map(|k| k.to_vec()))
                .collect::<Result<_, _>>()?)
        };
        let mut deleted = Vec::with_capacity(deletes.len());
        for key in deletes {
            let prefix = keys::monitor(key);
            let before = self.stored_state(key)?;
            let mut checkins = keys_under(&t.checkins, &prefix)?;
            // Open runs have no record, only an id index entry: remove it too.
            for run in before.iter().flat_map(|(_, runs)| runs) {
                checkins.push(keys::timed(&prefix, run.started, run.id));
            }
            for at in checkins {
                if let Some(id) = keys::timed_id(&at)
                    && t.checkin_ids.get(id.as_bytes())?.as_deref() == Some(at.as_slice())
                {
                    removes.push((TreeId::CheckinIds, id.as_bytes().to_vec()));
                }
                removes.push((TreeId::Checkins, at));
            }
            for at in keys_under(&t.incidents, &prefix)? {
                let time = keys::timed_suffix(&at).to_vec();
                removes.push((TreeId::IncidentTimes, time.clone()));
                removes.push((TreeId::OpenIncidents, time));
                removes.push((TreeId::Incidents, at));
            }
            for at in keys_under(&t.ping_logs, &prefix)? {
                removes.push((TreeId::PingLogs, at));
            }
            removes.push((TreeId::Monitors, prefix));
            removes.push((TreeId::Meta, keys::origin(key)));
            deleted.push((key.clone(), before.map(|(status, _)| status)));
        }
        Ok(deleted)
    }

    /// The check-ins of `set` as the committer writes them. Open runs keep their `in_progress`
    /// check-in in the monitor record, not in a check-in record of their own; a run that stops
    /// being open without a check-in in this write (a re-enable forgets the monitor's runs)
    /// gets its record here.
    fn prepare_checkins<'a>(&self, set: &'a WriteSet) -> Result<PreparedCheckIns<'a>, StoreError> {
        // Which runs were open before this write, and which are after.
        // and how each monitor's status changes (for the tally), from one read of each.
        let mut was_open: HashMap<(&MonitorKey, Uuid), OpenRun> = HashMap::new();
        let mut moves: HashMap<&MonitorKey, StatusMove> = HashMap::new();
        for m in &set.monitors {
            let (before, runs) = match self.stored_state(&m.key)? {
                Some((status, runs)) => (Some(status), runs),
                None => (None, Vec::new()),
            };
            for run in runs {
                was_open.insert((&m.key, run.id), run);
            }
            // Listed twice, the last state is what is stored; `before` is the same for both.
            moves.insert(&m.key, (before, m.status));
        }
        let is_open: std::collections::HashSet<(&MonitorKey, Uuid)> = set
            .monitors
            .iter()
            .flat_map(|m| m.open_runs.iter().map(move |run| (&m.key, run.id)))
            .collect();
        let mut out = PreparedCheckIns {
            checkins: Vec::with_capacity(set.checkins.len()),
            owners: Vec::with_capacity(set.checkins.len()),
            net: HashMap::new(),
            forget_all: false,
            moves: moves.into_values().collect(),
        };
        for c in &set.checkins {
            let prefix = keys::monitor(&c.key);
            let key = keys::timed(&prefix, c.date_added, c.id);
            let previous = self.stored_key(c.id, &set.unstored)?;
            // A run that was open had no record; anything else stored had one.
            let had_record = previous.is_some() && !was_open.contains_key(&(&c.key, c.id));
            let record =
                !(c.status == CheckInStatus::InProgress && is_open.contains(&(&c.key, c.id)));
            match &previous {
                // An id reused from another monitor environment moves the check-in here; that
                // one's count is not known by key.
                Some(old) if !old.starts_with(&prefix) => out.forget_all = true,
                _ if record && !had_record => *out.net.entry(&c.key).or_default() += 1,
                _ if !record && had_record => *out.net.entry(&c.key).or_default() -= 1,
                _ => {}
            }
            out.checkins.push(PreparedCheckIn {
                id: c.id,
                value: record.then(|| codec::encode_checkin(c)),
                key,
                previous,
                had_record,
            });
            out.owners.push(&c.key);
        }
        let written: std::collections::HashSet<Uuid> = set.checkins.iter().map(|c| c.id).collect();
        for ((monitor, id), run) in &was_open {
            if is_open.contains(&(*monitor, *id)) || written.contains(id) {
                continue;
            }
            let key = keys::timed(&keys::monitor(monitor), run.started, *id);
            out.checkins.push(PreparedCheckIn {
                id: *id,
                value: Some(codec::encode_checkin(&run.checkin(monitor))),
                previous: Some(key.clone()),
                key,
                had_record: false,
            });
            out.owners.push(*monitor);
            *out.net.entry(*monitor).or_default() += 1;
        }
        Ok(out)
    }

    /// The open runs of a monitor environment as stored (none if it is not).
    fn open_runs(&self, key: &MonitorKey) -> Result<Vec<OpenRun>, StoreError> {
        Ok(self
            .stored_state(key)?
            .map(|(_, runs)| runs)
            .unwrap_or_default())
    }

    /// The `issue_times` entries of the issues a write stores: each one's new entry, and the
    /// entry of its stored state if that was seen at another time. The caller holds each
    /// issue's lock, so the stored state is the one this write replaces.
    fn issue_times(&self, issues: &[Issue]) -> Result<Vec<IndexMove>, StoreError> {
        let mut out: Vec<IndexMove> = Vec::with_capacity(issues.len());
        for issue in issues {
            let new = keys::issue_time(issue.last_seen, &issue.id);
            // Listed twice, the first mention's stored state is what the last one replaces.
            if let Some(at) = out
                .iter()
                .position(|(_, key)| key.ends_with(&keys::issue(&issue.id)))
            {
                let (old, _) = out.remove(at);
                out.push((old, new));
                continue;
            }
            let old = self
                .issue(&issue.id)?
                .map(|stored| keys::issue_time(stored.last_seen, &stored.id))
                .filter(|old| *old != new);
            out.push((old, new));
        }
        Ok(out)
    }

    /// The stored status and open runs of a monitor environment, if it is stored.
    fn stored_state(
        &self,
        key: &MonitorKey,
    ) -> Result<Option<(MonitorStatus, Vec<OpenRun>)>, StoreError> {
        if let Some(state) = self.inner.cache.state(key) {
            return Ok(Some(state));
        }
        match self.trees().monitors.get(keys::monitor(key))? {
            Some(value) => {
                let monitor = decode_monitor(&value)?;
                Ok(Some((monitor.status, monitor.open_runs)))
            }
            None => Ok(None),
        }
    }

    /// Where check-in `id` is stored now (its `checkins` key), if it is. The caller holds the
    /// lock of the check-in's monitor environment.
    fn stored_key(&self, id: Uuid, unstored: &[Uuid]) -> Result<Option<Vec<u8>>, StoreError> {
        if unstored.contains(&id) {
            return Ok(None);
        }
        // An open run in the cache is exactly what sled holds (see `cache.rs`).
        if let Some(run) = self.inner.cache.run(id) {
            return Ok(Some(keys::timed(
                &keys::monitor(&run.key),
                run.date_added,
                run.id,
            )));
        }
        Ok(self
            .trees()
            .checkin_ids
            .get(id.as_bytes())?
            .map(|key| key.to_vec()))
    }

    /// The removals `prune` makes: keys beyond the newest `keep` of its monitor environment's
    /// check-ins (with their id index entries) and log entries. Returns how many check-ins the
    /// monitor environment holds after the write, if it pruned them. The caller holds the
    /// monitor's lock, so nothing changes between this scan and the write.
    ///
    /// The check-ins are counted (once per monitor environment; the count is then kept in the
    /// cache), so a prune reads only the oldest keys it removes, not the newest `keep` it
    /// skips: the key order is oldest first.
    fn retention(
        &self,
        written: &Written<'_>,
        prune: &Prune,
        removes: &mut Vec<(TreeId, Vec<u8>)>,
        pruned: &mut Vec<Uuid>,
    ) -> Result<Option<usize>, StoreError> {
        let t = self.trees();
        let prefix = keys::monitor(&prune.key);
        let added = written.logs.get(&prune.key).copied().unwrap_or(0);
        let keep = prune.keep.saturating_sub(added);
        for entry in t.ping_logs.scan_prefix(&prefix).keys().rev().skip(keep) {
            removes.push((TreeId::PingLogs, entry?.to_vec()));
        }
        if !prune.checkins {
            return Ok(None);
        }
        let stored = match self.inner.cache.count(&prune.key) {
            Some(stored) => stored,
            None => t
                .checkins
                .scan_prefix(&prefix)
                .keys()
                .try_fold(0, |n, key| key.map(|_| n + 1))?,
        };
        // After the write it holds `total`; the oldest `total - keep` are beyond the newest
        // `keep`. What this write adds or rewrites is never among those removed.
        let net = written.net.get(&prune.key).copied().unwrap_or(0);
        let total = stored.saturating_add_signed(net);
        // An entry goes if its place among the entries after the write, oldest first, is below
        // `total - keep`. The entries this write stores are never removed, and their place is
        // their new key (a rewritten check-in may move), not the stored one.
        let limit = total.saturating_sub(prune.keep);
        let mine: &[Vec<u8>] = written.keys.get(&prune.key).map_or(&[], Vec::as_slice);
        let (mut place, mut below) = (0, 0);
        let mut removed = 0;
        for entry in t.checkins.scan_prefix(&prefix).keys() {
            let key = entry?;
            let id = keys::timed_id(&key);
            if id.is_some_and(|id| written.ids.contains(&id)) {
                continue;
            }
            while below < mine.len() && mine[below].as_slice() < &key[..] {
                below += 1;
            }
            if place + below >= limit {
                break;
            }
            place += 1;
            let Some(id) = id else {
                continue;
            };
            if prune.protect.contains(&id) {
                continue;
            }
            if t.checkin_ids.get(id.as_bytes())?.as_deref() == Some(&key[..]) {
                removes.push((TreeId::CheckinIds, id.as_bytes().to_vec()));
            }
            removes.push((TreeId::Checkins, key.to_vec()));
            pruned.push(id);
            removed += 1;
        }
        Ok(Some(total - removed))
    }

    /// Takes in what a successful write of `set` changed: caches and counters.
    fn committed(&self, set: &WriteSet, prepared: &Committed) {
        let Committed {
            pruned,
            counts,
            moves,
            deleted,
            pending_moves,
        } = prepared;
        self.inner.cache.committed(&set.monitors, &set.checkins);
        for (before, after) in moves {
            self.inner.tally.moved(*before, Some(*after));
        }
        for (key, before) in deleted {
            self.inner.cache.deleted(key);
            self.inner.tally.moved(*before, None);
        }
        self.inner.cache.pruned(pruned.iter().copied());
        self.inner.cache.counted(counts);
        if !set.events.is_empty() {
            self.inner
                .events
                .fetch_add(set.events.len(), Ordering::Relaxed);
        }
        self.inner.outbox.added(&set.deliveries);
        if !pending_moves.is_empty() {
            let deltas = pending_moves
                .iter()
                .map(|(channel, delta)| (channel.as_str(), *delta))
                .collect();
            self.inner.outbox.changed(&deltas);
        }
    }

    /// Drops all but the newest `keep` check-ins and log entries of a monitor environment,
    /// sparing the check-ins in `protect` (open runs), now rather than with a write (see
    /// [`Prune`]). Returns whether anything was removed.
    pub fn prune_monitor(
        &self,
        key: &MonitorKey,
        keep: usize,
        protect: &[Uuid],
    ) -> Result<bool, StoreError> {
        let set = WriteSet {
            prune: vec![Prune {
                key: key.clone(),
                keep,
                checkins: true,
                protect: protect.to_vec(),
            }],
            ..WriteSet::default()
        };
        let prepared = self.prepare(&set, DateTime::UNIX_EPOCH)?;
        let removed = !prepared.removes.is_empty();
        self.write_now(&set, &prepared)?;
        Ok(removed)
    }

    /// Deletes a monitor environment with its check-ins, incidents, deadlines and log entries:
    /// a write set of one deletion, written like every other change. The caller holds its lock.
    pub fn delete_monitor(&self, key: &MonitorKey) -> Result<Seq, StoreError> {
        let set = WriteSet {
            deletes: vec![key.clone()],
            ..WriteSet::default()
        };
        // Nothing in a deletion is stamped with a time.
        self.commit(&set, DateTime::UNIX_EPOCH)
    }
}

/// The puts and removals of the collector's own records (`WriteSet::meta`), all in `meta`.
fn prepare_meta(meta: &[MetaWrite], puts: &mut Vec<RawPut>, removes: &mut Vec<(TreeId, Vec<u8>)>) {
    for write in meta {
        match write {
            MetaWrite::Managed { key, managed: true } => {
                puts.push((TreeId::Meta, keys::origin(key), encode(key)));
            }
            MetaWrite::Managed {
                key,
                managed: false,
            } => {
                removes.push((TreeId::Meta, keys::origin(key)));
            }
            MetaWrite::Refusal(refusal) => puts.push((
                TreeId::Meta,
                keys::refusal(refusal.project, refusal.id),
                encode(refusal),
            )),
            MetaWrite::RefusalGone { project, id } => {
                removes.push((TreeId::Meta, keys::refusal(*project, *id)));
            }
            MetaWrite::Project(project) => {
                puts.push((TreeId::Meta, keys::project(project.id), encode(project)));
            }
            MetaWrite::Alive { at, outages } => {
                if let Some(outages) = outages {
                    puts.push((TreeId::Meta, keys::OUTAGES.to_vec(), encode(outages)));
                }
                puts.push((TreeId::Meta, keys::ALIVE.to_vec(), keys::time(*at).to_vec()));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
