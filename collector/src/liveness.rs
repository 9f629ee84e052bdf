//! How the collector knows when it was not watching, so that its own downtime is not reported
//! as its jobs' failures (the rules are the engine's, `engine::outage`).
//!
//! Two kinds of window:
//! - **Down**: a task marks the store `alive` about once a second; at start, the gap between
//!   the last durable mark and now is the window the process was not running (SIGTERM,
//!   SIGKILL, a crash or a host reboot alike; a graceful stop marks once more on its way out).
//! - **Refusing**: while running, the first write that fails (a request answered `503`, a
//!   sweep, a liveness mark) opens a window, and the next write that succeeds closes it.
//!
//! Windows are kept in the store (the newest [`MAX_WINDOWS`], none older than
//! [`KEEP_FOR`]), so a restart inside a grace still knows the outage before it. The processor
//! hands a snapshot ([`Liveness::outages`]) to the pure sweeps.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::engine::{Outage, OutageKind, Outages};
use crate::store::{Store, StoreError};

/// How often the liveness mark is written.
pub(crate) const MARK_EVERY: Duration = Duration::from_secs(1);
/// A gap since the last mark shorter than this is not an outage: the mark's own period, a
/// flush and the start itself.
const SLACK: TimeDelta = TimeDelta::seconds(3);
/// A liveness mark that has not returned after this long counts as a refused write.
const STUCK_AFTER: TimeDelta = TimeDelta::seconds(5);
/// A refusal that starts this soon after the last one ended continues it.
const MERGE_WITHIN: TimeDelta = TimeDelta::seconds(5);
/// Most windows kept.
pub(crate) const MAX_WINDOWS: usize = 32;
/// Windows that ended longer ago than this are forgotten: longer than any monitor's margin
/// or runtime can reach (28 days).
const KEEP_FOR: TimeDelta = TimeDelta::days(30);

/// A liveness mark under way: when it was taken, and the blocking task writing it.
type Mark = (DateTime<Utc>, JoinHandle<Result<(), StoreError>>);

/// The collector's outages, and the task that marks it alive.
#[derive(Debug)]
pub struct Liveness {
    store: Option<Store>,
    floor: Duration,
    windows: Mutex<Vec<Outage>>,
    /// A window is open (a write was refused and none succeeded since).
    refusing: AtomicBool,
    /// `windows` changed since they were last saved.
    dirty: AtomicBool,
}

impl Liveness {
    /// Knows no outage and saves nothing: the usual rules everywhere (tests, tools).
    pub fn none() -> Liveness {
        Liveness {
            store: None,
            floor: Duration::ZERO,
            windows: Mutex::new(Vec::new()),
            refusing: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
        }
    }

    /// At start: reads the last mark and the known windows, adds the window since the mark if
    /// the gap is one, and marks the store alive with them. `floor` is `[server] outage_grace`.
    pub fn start(
        store: &Store,
        floor: Duration,
        now: DateTime<Utc>,
    ) -> Result<Liveness, StoreError> {
        let (alive, mut windows) = store.liveness()?;
        // A refusal still open when the last run stopped ended when it did.
        for window in windows.iter_mut().filter(|w| w.to.is_none()) {
            window.to = Some(alive.unwrap_or(window.from).max(window.from));
        }
        if let Some(alive) = alive
            && now - alive > SLACK
        {
            tracing::warn!(
                since = %alive.to_rfc3339(),
                seconds = (now - alive).num_seconds(),
                "the collector was not running; deadlines that fell in that window get a grace before they count as missed"
            );
            windows.push(Outage {
                from: alive,
                to: Some(now),
                kind: OutageKind::Down,
            });
        }
        prune(&mut windows, now);
        let liveness = Liveness {
            store: Some(store.clone()),
            floor,
            windows: Mutex::new(windows),
            refusing: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
        };
        // A store that takes no writes (a full disk) still lets the collector start, serve
        // reads and answer `503`: that is a refusal from the start.
        let saved = store.mark_alive(now, Some(&liveness.windows.lock().clone()));
        if let Err(error) = saved {
            tracing::error!(%error, "cannot write the liveness mark at start");
            liveness.dirty.store(true, Ordering::Release);
            liveness.refused(now);
        }
        Ok(liveness)
    }

    /// What the sweeps need to know: the windows (an open one ends `now`) and the floor.
    pub fn outages(&self) -> Outages {
        Outages::new(self.windows.lock().clone(), self.floor)
    }

    /// A write was refused at `at`: opens a window unless one is open.
    pub fn refused(&self, at: DateTime<Utc>) {
        if self.refusing.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut windows = self.windows.lock();
        match windows.last_mut() {
            Some(last)
                if last.kind == OutageKind::Refusing
                    && last.to.is_some_and(|to| at - to <= MERGE_WITHIN) =>
            {
                last.to = None;
            }
            _ => windows.push(Outage {
                from: at,
                to: None,
                kind: OutageKind::Refusing,
            }),
        }
        tracing::warn!(since = %at.to_rfc3339(), "writes are refused; deadlines in this window will get a grace");
        self.dirty.store(true, Ordering::Release);
    }

    /// A write succeeded at `at`: closes the open window, if any. One atomic load otherwise.
    pub fn accepted(&self, at: DateTime<Utc>) {
        if !self.refusing.load(Ordering::Acquire) || !self.refusing.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut windows = self.windows.lock();
        if let Some(open) = windows.iter_mut().find(|w| w.to.is_none()) {
            open.to = Some(at.max(open.from));
            tracing::info!(since = %open.from.to_rfc3339(), "writes are accepted again");
        }
        prune(&mut windows, at);
        self.dirty.store(true, Ordering::Release);
    }

    /// Marks the store alive every [`MARK_EVERY`] (saving the windows when they changed)
    /// until `shutdown`, then once more. A mark runs on a blocking thread, so a store that
    /// hangs delays no other task; one that fails or hangs is a refused write.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(MARK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut pending: Option<Mark> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut shutdown => break,
            }
            if let Some((at, handle)) = pending.take() {
                if !handle.is_finished() {
                    if Utc::now() - at > STUCK_AFTER {
                        self.refused(at);
                    }
                    pending = Some((at, handle));
                    continue;
                }
                self.settle(at, handle.await);
            }
            pending = Some(self.mark(&store, Utc::now()));
        }
        // One last mark on the way out, so the next start measures its gap from here; bounded,
        // so a store that hangs cannot hold up the shutdown.
        if let Some((at, handle)) = pending.take()
            && let Ok(done) = tokio::time::timeout(Duration::from_secs(1), handle).await
        {
            self.settle(at, done);
        }
        let (at, handle) = self.mark(&store, Utc::now());
        if let Ok(done) = tokio::time::timeout(Duration::from_secs(1), handle).await {
            self.settle(at, done);
        }
    }

    fn mark(&self, store: &Store, now: DateTime<Utc>) -> Mark {
        let windows = self
            .dirty
            .swap(false, Ordering::AcqRel)
            .then(|| self.windows.lock().clone());
        let store = store.clone();
        let handle = tokio::task::spawn_blocking(move || store.mark_alive(now, windows.as_deref()));
        (now, handle)
    }

    fn settle(
        &self,
        at: DateTime<Utc>,
        done: Result<Result<(), StoreError>, tokio::task::JoinError>,
    ) {
        match done {
            Ok(Ok(())) => self.accepted(at),
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot write the liveness mark");
                // The windows were not saved: save them with the next mark.
                self.dirty.store(true, Ordering::Release);
                self.refused(at);
            }
            Err(error) => {
                tracing::error!(%error, "the liveness mark task failed");
                self.dirty.store(true, Ordering::Release);
                self.refused(at);
            }
        }
    }
}

/// Drops windows that ended before [`KEEP_FOR`] and all but the newest [`MAX_WINDOWS`].
fn prune(windows: &mut Vec<Outage>, now: DateTime<Utc>) {
    windows.retain(|w| w.to.is_none_or(|to| now - to <= KEEP_FOR));
    windows.sort_by_key(|w| w.from);
    let excess = windows.len().saturating_sub(MAX_WINDOWS);
    windows.drain(..excess);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    /// Opens the store in `dir`, starts liveness at `now`, flushes, closes; the windows seen.
    fn restart(dir: &std::path::Path, now: DateTime<Utc>) -> Outages {
        let store = crate::store::tests::reopen(dir).unwrap();
        let outages = Liveness::start(&store, Duration::from_secs(30), now)
            .unwrap()
            .outages();
        store.flush_blocking().unwrap();
        outages
    }

    #[test]
    fn the_gap_since_the_last_mark_is_a_down_window_and_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            restart(dir.path(), at(0)).windows,
            [],
            "a new store has no outage"
        );
        assert_eq!(
            restart(dir.path(), at(2)).windows,
            [],
            "a gap within the slack is no outage"
        );
        let down = Outage {
            from: at(2),
            to: Some(at(40)),
            kind: OutageKind::Down,
        };
        let outages = restart(dir.path(), at(40));
        assert_eq!(outages.windows, [down]);
        assert_eq!(outages.floor, Duration::from_secs(30));
        assert_eq!(
            restart(dir.path(), at(41)).windows,
            [down],
            "kept across the next restart"
        );
    }

    #[test]
    fn a_refusal_opens_a_window_the_next_accepted_write_closes() {
        let liveness = Liveness::none();
        liveness.accepted(at(0));
        assert!(liveness.outages().windows.is_empty());
        liveness.refused(at(10));
        liveness.refused(at(11));
        let open = Outage {
            from: at(10),
            to: None,
            kind: OutageKind::Refusing,
        };
        assert_eq!(liveness.outages().windows, [open]);
        liveness.accepted(at(15));
        let closed = Outage {
            to: Some(at(15)),
            ..open
        };
        assert_eq!(liveness.outages().windows, [closed]);
        liveness.refused(at(18));
        assert_eq!(
            liveness.outages().windows,
            [open],
            "a refusal right after the last one continues it"
        );
        liveness.accepted(at(19));
        liveness.refused(at(60));
        assert_eq!(liveness.outages().windows.len(), 2);
    }

    #[test]
    fn old_and_excess_windows_are_dropped() {
        let mut windows: Vec<Outage> = (0..40)
            .map(|i| Outage {
                from: at(i * 100),
                to: Some(at(i * 100 + 10)),
                kind: OutageKind::Down,
            })
            .collect();
        windows.insert(
            0,
            Outage {
                from: at(-40 * 86_400),
                to: Some(at(-31 * 86_400)),
                kind: OutageKind::Down,
            },
        );
        prune(&mut windows, at(4_000));
        assert_eq!(windows.len(), MAX_WINDOWS);
        assert_eq!(windows[0].from, at(800), "the newest are kept");
    }
}
