//! Group commit: writers number their writes, the committer's flush thread makes them durable
//! with `db.flush()`, and every writer waiting meanwhile is released by that one fsync. The
//! committer asks for a flush after each group it writes; writes made outside it (sweeps, API
//! edits, delivery bookkeeping) ask the flusher task, which passes the request on. Never calls
//! sled's `flush_async` (it deadlocks in 0.34) and never flushes from two places.
//!
//! It also keeps what health needs to tell a store that is stuck from one that is merely idle:
//! when the group write and the flush now under way started ([`GroupCommit::stalled`]), and
//! whether the last group write failed. sled can block without end inside a write or a flush
//! (it did when it could not open a file with the process out of descriptors); nothing can
//! interrupt it, so the collector must at least stop claiming to be healthy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::error::StoreError;

/// The write sequence number a writer waits on.
pub type Seq = u64;

/// What the flusher has achieved so far.
#[derive(Debug, Clone, Default)]
struct Flushed {
    /// Every write numbered up to here is durable.
    seq: Seq,
    /// The last flush failed: writes numbered up to `.0` may be lost; `.1` says why.
    failure: Option<(Seq, Arc<str>)>,
}

/// Shared between the store (writers) and the flusher task.
#[derive(Debug)]
pub(super) struct GroupCommit {
    /// Number of the last completed write. Incremented only after the write is in sled.
    written: AtomicU64,
    /// Writes numbered up to here are covered by a flush the committer has asked for (or
    /// one already done): waiting for them needs no request.
    flushing: AtomicU64,
    /// Wakes the flusher; a permit is kept if it is busy, so no request is lost.
    wake: Notify,
    flushed: watch::Sender<Flushed>,
    flushes: AtomicU64,
    last_flush_micros: AtomicU64,
    /// What [`GroupCommit::since`] counts from.
    origin: Instant,
    /// When the group write under way started, in microseconds after `origin` plus one; 0
    /// while none is.
    writing_since: AtomicU64,
    /// Likewise for the flush under way.
    flushing_since: AtomicU64,
    /// Why the last group write failed; `None` once one succeeded.
    write_failure: parking_lot::Mutex<Option<Arc<str>>>,
}

/// A write or flush of the store that has been under way for a while (see
/// [`GroupCommit::stalled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stall {
    /// `write` or `flush`.
    pub(super) what: &'static str,
    /// How long it has been under way.
    pub(super) for_: Duration,
}

impl GroupCommit {
    pub(super) fn new() -> GroupCommit {
        GroupCommit {
            written: AtomicU64::new(0),
            flushing: AtomicU64::new(0),
            wake: Notify::new(),
            flushed: watch::Sender::new(Flushed::default()),
            flushes: AtomicU64::new(0),
            last_flush_micros: AtomicU64::new(0),
            origin: Instant::now(),
            writing_since: AtomicU64::new(0),
            flushing_since: AtomicU64::new(0),
            write_failure: parking_lot::Mutex::new(None),
        }
    }

    /// Now, as stored in `writing_since` / `flushing_since` (never 0, which means idle).
    fn since(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// Runs `write` (a group write of the committer thread), noting when it started so that
    /// [`GroupCommit::stalled`] sees it if it never returns, and whether it failed.
    pub(super) fn writing<T>(
        &self,
        write: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.writing_since.store(self.since(), Ordering::Release);
        let result = write();
        self.writing_since.store(0, Ordering::Release);
        *self.write_failure.lock() = result.as_ref().err().map(|e| Arc::from(e.to_string()));
        result
    }

    /// The oldest write or flush under way, if it started at least `after` ago.
    pub(super) fn stalled(&self, after: Duration) -> Option<Stall> {
        let now = self.since();
        [
            ("write", self.writing_since.load(Ordering::Acquire)),
            ("flush", self.flushing_since.load(Ordering::Acquire)),
        ]
        .into_iter()
        .filter(|(_, since)| *since != 0)
        .map(|(what, since)| Stall {
            what,
            for_: Duration::from_micros(now.saturating_sub(since)),
        })
        .filter(|stall| stall.for_ >= after)
        .max_by_key(|stall| stall.for_)
    }

    /// Why the last group write failed, unless a later one succeeded.
    pub(super) fn write_failure(&self) -> Option<String> {
        self.write_failure
            .lock()
            .as_ref()
            .map(|why| why.to_string())
    }

    /// Numbers a write that has just completed.
    pub(super) fn record_write(&self) -> Seq {
        self.written.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Waits until write `seq` is durable, sharing the flush with every other waiter.
    pub(super) async fn wait(&self, seq: Seq) -> Result<(), StoreError> {
        let mut rx = self.flushed.subscribe();
        let mut asked = false;
        loop {
            {
                let flushed = rx.borrow_and_update();
                if flushed.seq >= seq {
                    return Ok(());
                }
                if let Some((upto, why)) = &flushed.failure
                    && *upto >= seq
                {
                    return Err(StoreError::Flush(why.to_string()));
                }
            }
            // The committer asks for a flush after every group: only other writes need asking.
            if !asked && seq > self.flushing.load(Ordering::Acquire) {
                self.wake.notify_one();
                asked = true;
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Closed);
            }
        }
    }

    /// Announces that a flush covering everything up to `seq` has been asked for.
    pub(super) fn will_flush(&self, seq: Seq) {
        self.flushing.fetch_max(seq, Ordering::AcqRel);
    }

    /// Asks for a flush without waiting for it: for writes nobody waits on that should still
    /// reach the disk soon (a delivery marked sent, so a crash does not send it again).
    pub(super) fn request(&self) {
        self.wake.notify_one();
    }

    /// Waits for a flush request (or returns at once if one is pending).
    pub(super) async fn requested(&self) {
        self.wake.notified().await;
    }

    /// The number of the last completed write.
    pub(super) fn written(&self) -> Seq {
        self.written.load(Ordering::Acquire)
    }

    /// Flushes `db`, making the writes numbered up to `target` durable, unless they already
    /// are; all of them are in `db` (or were copied into it, flushed, by a compaction:
    /// `compact.rs`). Called only by the committer's flush thread, so there is one fsync at a
    /// time.
    pub(super) fn flush_upto(&self, db: &sled::Db, target: Seq) {
        if target <= self.flushed.borrow().seq {
            return;
        }
        let started = Instant::now();
        self.flushing_since.store(self.since(), Ordering::Release);
        let result = db.flush();
        self.flushing_since.store(0, Ordering::Release);
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_flush_micros.store(micros, Ordering::Relaxed);
        match result {
            Ok(_) => self.flushed.send_modify(|f| {
                f.seq = f.seq.max(target);
                f.failure = None;
            }),
            Err(e) => self.fail(target, &e.to_string()),
        }
    }

    fn fail(&self, target: Seq, why: &str) {
        tracing::error!(
            error = why,
            "store flush failed; acknowledging no writes until one succeeds"
        );
        let why: Arc<str> = Arc::from(why);
        self.flushed
            .send_modify(|f| f.failure = Some((target, why)));
    }

    /// The last flush error, if the last flush failed.
    pub(super) fn failure(&self) -> Option<String> {
        self.flushed
            .borrow()
            .failure
            .as_ref()
            .map(|(_, why)| why.to_string())
    }

    /// Flushes performed so far.
    pub(super) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Duration of the last flush, in seconds.
    pub(super) fn last_flush_seconds(&self) -> f64 {
        self.last_flush_micros.load(Ordering::Relaxed) as f64 / 1e6
    }
}
