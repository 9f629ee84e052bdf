//! The collector's own health, decided in one place for `GET /healthz` and the watchdog: the
//! store takes writes, the sweeper runs, the alert dispatcher runs (once started), and every
//! probe task checks on schedule. Reads and reports; never repairs anything.
//!
//! Long-running tasks that have no index of their own to inspect report through a
//! [`Heartbeat`]: the task holds the guard from [`Heartbeat::start`] for as long as it runs, so
//! a task that returns or panics is seen as stopped at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::deadlines::Deadlines;
use crate::engine::text::rfc3339_millis;
use crate::metrics::Metrics;
use crate::probe::{ProberHealth, Probes};
use crate::store::Store;

/// A store write or flush under way this long makes the collector `degraded`. A group write
/// takes milliseconds and an fsync rarely more than a second even on a busy disk; 5 s under
/// way means sled is stuck (it blocks without end when it cannot open a file) and every
/// write queued behind it will time out, so the watchdog must stop vouching for the
/// collector and an orchestrator should restart it.
pub const STORE_STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// Liveness of a long-running task, as the task itself reports it.
#[derive(Debug, Default)]
pub struct Heartbeat {
    started: AtomicBool,
    running: AtomicBool,
    /// Milliseconds since the epoch of the last [`Heartbeat::beat`]; 0 for never.
    last_beat: AtomicI64,
}

/// Held by a running task; dropping it (the task returned or panicked) marks the task stopped.
#[derive(Debug)]
#[must_use = "the task counts as running only while the guard is held"]
pub struct Running(Arc<Heartbeat>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Relaxed);
    }
}

impl Heartbeat {
    /// The task starts: keep the guard for as long as it runs.
    pub fn start(self: &Arc<Self>) -> Running {
        self.started.store(true, Ordering::Relaxed);
        self.running.store(true, Ordering::Relaxed);
        Running(Arc::clone(self))
    }

    /// The task did a round of work at `now` (optional; shown in `/healthz`).
    pub fn beat(&self, now: DateTime<Utc>) {
        self.last_beat
            .store(now.timestamp_millis(), Ordering::Relaxed);
    }

    /// Whether the task runs now.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Whether the task was ever started in this process.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// When the task last beat.
    pub fn last_beat(&self) -> Option<DateTime<Utc>> {
        match self.last_beat.load(Ordering::Relaxed) {
            0 => None,
            millis => DateTime::from_timestamp_millis(millis),
        }
    }
}

/// Everything health is judged from. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HealthSources {
    /// The store (a write probe goes through it).
    pub store: Store,
    /// The sweeper's index and liveness.
    pub deadlines: Arc<Deadlines>,
    /// Sweep lag.
    pub metrics: Arc<Metrics>,
    /// Set by the alert dispatcher's task while it runs.
    pub dispatcher: Arc<Heartbeat>,
    /// The prober's tasks.
    pub probes: Probes,
}

/// The verdict and its evidence: the JSON of `GET /healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// Whether the store takes writes (see [`StoreHealth`]).
    pub store: StoreHealth,
    /// The deadline sweeper.
    pub sweeper: SweeperHealth,
    /// The alert dispatcher.
    pub dispatcher: DispatcherHealth,
    /// Alert deliveries waiting.
    pub outbox: OutboxHealth,
    /// The uptime probes' tasks.
    pub prober: ProberHealth,
}

/// `store` in [`Health`].
#[derive(Debug, Clone, Serialize)]
pub struct StoreHealth {
    /// The last write and flush succeeded, none has been under way for
    /// [`STORE_STALLED_AFTER`], and a small write went through.
    pub writable: bool,
    /// Why not.
    pub error: Option<String>,
}

/// `sweeper` in [`Health`].
#[derive(Debug, Clone, Serialize)]
pub struct SweeperHealth {
    /// Its task runs and woke recently.
    pub alive: bool,
    /// When it last woke.
    pub last_wake: Option<String>,
    /// Pending deadlines.
    pub deadlines: usize,
    /// The earliest one.
    pub next_deadline: Option<String>,
    /// How late the last sweep ran after its deadline.
    pub lag_seconds: f64,
}

/// `dispatcher` in [`Health`].
#[derive(Debug, Clone, Serialize)]
pub struct DispatcherHealth {
    /// Its task runs.
    pub running: bool,
    /// `running`; `stopped` (it ran and ended: unhealthy); `not running` (not started yet, as
    /// during startup: alerts wait in the outbox, and that alone is not unhealthy).
    pub state: &'static str,
    /// When it last reported progress.
    pub last_beat: Option<String>,
}

/// `outbox` in [`Health`].
#[derive(Debug, Clone, Serialize)]
pub struct OutboxHealth {
    /// Deliveries pending, all channels together.
    pub backlog: usize,
}

impl HealthSources {
    /// Judges the collector's health at `now`. Writes one small record to prove the store
    /// takes writes.
    pub fn check(&self, now: DateTime<Utc>) -> Health {
        let store = self.store.check_writable(now, STORE_STALLED_AFTER);
        let sweeper = SweeperHealth {
            alive: self.deadlines.sweeper_alive(now),
            last_wake: self.deadlines.last_wake().map(rfc3339_millis),
            deadlines: self.deadlines.len(),
            next_deadline: self.deadlines.next_deadline().map(rfc3339_millis),
            lag_seconds: self.metrics.last_sweep_lag(),
        };
        let dispatcher = DispatcherHealth {
            running: self.dispatcher.running(),
            state: match (self.dispatcher.running(), self.dispatcher.started()) {
                (true, _) => "running",
                (false, true) => "stopped",
                (false, false) => "not running",
            },
            last_beat: self.dispatcher.last_beat().map(rfc3339_millis),
        };
        let prober = self.probes.health(now);
        let healthy =
            store.is_ok() && sweeper.alive && dispatcher.state != "stopped" && prober.alive;
        Health {
            status: if healthy { "ok" } else { "degraded" },
            store: StoreHealth {
                writable: store.is_ok(),
                error: store.err().map(|e| e.to_string()),
            },
            sweeper,
            dispatcher,
            outbox: OutboxHealth {
                backlog: self.store.outbox_backlog(),
            },
            prober,
        }
    }
}

impl Health {
    /// Whether every part is well.
    pub fn healthy(&self) -> bool {
        self.status == "ok"
    }

    /// What is wrong, one phrase per part, for log lines.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(error) = &self.store.error {
            problems.push(format!("store not writable: {error}"));
        }
        if !self.sweeper.alive {
            problems.push("sweeper not running".to_owned());
        }
        if self.dispatcher.state == "stopped" {
            problems.push("alert dispatcher stopped".to_owned());
        }
        if !self.prober.alive {
            problems.push(format!(
                "prober: {} of {} probe tasks running{}",
                self.prober.running,
                self.prober.probes,
                if self.prober.stale.is_empty() {
                    String::new()
                } else {
                    format!(", behind schedule: {}", self.prober.stale.join(", "))
                }
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_follows_its_guard() {
        let heartbeat = Arc::new(Heartbeat::default());
        assert!(!heartbeat.started() && !heartbeat.running());
        let guard = heartbeat.start();
        assert!(heartbeat.started() && heartbeat.running());
        let now = DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
        heartbeat.beat(now);
        assert_eq!(heartbeat.last_beat(), Some(now));
        drop(guard);
        assert!(heartbeat.started() && !heartbeat.running());
    }
}
