//! Heartbeats for long-running workers: [`heartbeat`] starts a [`Heartbeat`] that sends an `ok`
//! check-in with an interval monitor config every `every`, for as long as the guard lives *and*
//! the worker's loop keeps calling [`Heartbeat::beat`].
//!
//! A queue worker has no schedule and no HTTP route a probe could call; what catches its death
//! is a heartbeat that stops. Three ways it stops, each seen by the server as a missed check-in
//! (or an `error`):
//!
//! - the process dies: nothing sends any more;
//! - the loop is wedged (a dead lock, a hung call without a timeout): the heartbeat thread is
//!   still alive, but the last [`beat`](Heartbeat::beat) is older than
//!   [`stall_after`](Heartbeat::stall_after), so it skips its check-ins until the loop beats
//!   again;
//! - the worker's task panics: the guard is dropped while unwinding and sends `error` at once.
//!
//! The sending happens on a `watchpost-heartbeat` thread of its own (a parked thread, woken
//! once per interval), so it works the same in sync and async workers and needs no runtime;
//! `beat` is one clock read and one relaxed atomic store.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::client;
use crate::monitor_config::MonitorConfig;
use crate::protocol::CheckInStatus;
use crate::protocol::IntervalUnit;
use crate::record::{CheckInRecord, Monitor};

/// The shortest interval a heartbeat sends at: the collector's schedule unit.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Starts a heartbeat for the monitor `slug`: an `ok` check-in now and then every `every`
/// (rounded up to whole seconds, at least [`MIN_HEARTBEAT_INTERVAL`]), each carrying an
/// interval monitor config of `every`, so the server creates the monitor and expects it.
///
/// Keep the returned guard in the worker's loop and call [`Heartbeat::beat`] once per
/// iteration; if the loop does not beat for [`stall_after`](Heartbeat::stall_after) (default:
/// twice `every`) the check-ins stop until it does. Dropping the guard stops the heartbeat (the
/// server then reports the monitor missed, as for a dead worker); dropping it while its thread
/// panics sends `error`.
///
/// With the SDK disabled this is one relaxed atomic load and the guard does nothing.
///
/// ```no_run
/// # fn next_message() -> Option<u32> { None }
/// use std::time::Duration;
///
/// let heartbeat = watchpost::heartbeat("sqs-worker", Duration::from_secs(30))
///     .stall_after(Duration::from_secs(120));
/// while let Some(message) = next_message() {
///     heartbeat.beat();
///     // ... handle `message` ...
/// #   let _ = message;
/// }
/// ```
pub fn heartbeat(slug: &str, every: Duration) -> Heartbeat {
    let every = whole_seconds(every);
    let config = MonitorConfig::interval(every.as_secs(), IntervalUnit::Second);
    let mut heartbeat = Heartbeat {
        slug: slug.to_owned(),
        every,
        stall_after: every * 2,
        checkin_margin: None,
        shared: Arc::new(Beats {
            epoch: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            stall_after_ms: AtomicU64::new(millis(every * 2)),
            monitor: Mutex::new(Monitor::spec(slug, Some(config))),
        }),
        stop: None,
    };
    if client::is_enabled() {
        heartbeat.spawn();
    }
    heartbeat
}

/// A running heartbeat from [`heartbeat`]. See there.
#[must_use = "dropping the Heartbeat stops it at once; keep it for as long as the worker runs"]
pub struct Heartbeat {
    slug: String,
    every: Duration,
    stall_after: Duration,
    checkin_margin: Option<Duration>,
    shared: Arc<Beats>,
    /// Dropping it tells the thread to stop (its receiver sees the channel disconnected).
    stop: Option<mpsc::Sender<Stop>>,
}

/// Why the sending thread stops.
enum Stop {
    /// The worker panicked: send `error`, then stop.
    Panicked,
}

/// What the worker's loop and the sending thread share.
struct Beats {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last [`Heartbeat::beat`] (0: the start).
    last_beat_ms: AtomicU64,
    stall_after_ms: AtomicU64,
    /// The monitor and its config, read by the sending thread at every check-in (so a later
    /// [`Heartbeat::checkin_margin`] applies from the next one).
    monitor: Mutex<Monitor>,
}

impl Heartbeat {
    /// Tells the heartbeat the worker's loop is making progress. Call it once per iteration (or
    /// at least once per [`stall_after`](Self::stall_after)).
    #[inline]
    pub fn beat(&self) {
        let now = millis(self.shared.epoch.elapsed());
        self.shared.last_beat_ms.store(now, Relaxed);
    }

    /// How long the loop may go without a [`beat`](Self::beat) before the check-ins stop
    /// (default: twice the interval). The server then reports the monitor missed after this,
    /// plus the interval, plus its margin.
    pub fn stall_after(mut self, bound: Duration) -> Heartbeat {
        self.stall_after = bound;
        self.shared.stall_after_ms.store(millis(bound), Relaxed);
        self
    }

    /// The monitor's `checkin_margin`: how late a heartbeat may be before it counts as missed
    /// (the server's default, 1 minute, when not given). Sent from the next check-in on.
    pub fn checkin_margin(mut self, margin: Duration) -> Heartbeat {
        self.checkin_margin = Some(margin);
        let monitor = Monitor::spec(&self.slug, Some(self.config()));
        *self
            .shared
            .monitor
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = monitor;
        self
    }

    /// The interval check-ins are sent at.
    pub fn every(&self) -> Duration {
        self.every
    }

    fn config(&self) -> MonitorConfig {
        let config = MonitorConfig::interval(self.every.as_secs(), IntervalUnit::Second);
        match self.checkin_margin {
            Some(margin) => config.checkin_margin(margin),
            None => config,
        }
    }

    /// Starts the sending thread. If the thread cannot be spawned the heartbeat sends nothing,
    /// which the server reports as missed: the same as a worker that never started.
    fn spawn(&mut self) {
        let (tx, rx) = mpsc::channel();
        let sender = Sender {
            every: self.every,
            shared: Arc::clone(&self.shared),
        };
        let spawned = std::thread::Builder::new()
            .name("watchpost-heartbeat".to_owned())
            .spawn(move || sender.run(&rx));
        if spawned.is_ok() {
            self.stop = Some(tx);
        }
    }
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("slug", &self.slug)
            .field("every", &self.every)
            .field("stall_after", &self.stall_after)
            .field("running", &self.stop.is_some())
            .finish()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take()
            && std::thread::panicking()
        {
            // Sent by the sending thread, so this drop (on a panicking thread) never waits.
            let _ = stop.send(Stop::Panicked);
        }
    }
}

/// The sending thread's half.
struct Sender {
    every: Duration,
    shared: Arc<Beats>,
}

impl Sender {
    /// Sends `ok` now and at every interval after (on a fixed grid, so sends do not drift) while
    /// the loop beats, until the guard is dropped.
    fn run(self, stop: &mpsc::Receiver<Stop>) {
        let start = Instant::now();
        let mut tick: u32 = 0;
        loop {
            if self.loop_is_alive() {
                self.send(CheckInStatus::Ok);
            }
            tick = tick.saturating_add(1);
            let next = start + self.every * tick;
            match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(Stop::Panicked) => {
                    self.send(CheckInStatus::Error);
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Whether the worker's loop beat within the stall bound.
    fn loop_is_alive(&self) -> bool {
        let now = millis(self.shared.epoch.elapsed());
        let last = self.shared.last_beat_ms.load(Relaxed);
        now.saturating_sub(last) <= self.shared.stall_after_ms.load(Relaxed)
    }

    fn send(&self, status: CheckInStatus) -> Option<Uuid> {
        let id = crate::rng::uuid_v4();
        let monitor = self
            .shared
            .monitor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        client::send_check_in_now(CheckInRecord {
            monitor,
            id,
            status,
            duration: None,
        })
        .then_some(id)
    }
}

/// `d` rounded up to whole seconds, at least [`MIN_HEARTBEAT_INTERVAL`].
fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs).max(MIN_HEARTBEAT_INTERVAL)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_whole_seconds_and_at_least_one() {
        assert_eq!(
            whole_seconds(Duration::from_millis(10)),
            MIN_HEARTBEAT_INTERVAL
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            whole_seconds(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn a_loop_that_stops_beating_is_seen_as_stalled_after_the_bound() {
        let heartbeat = heartbeat("unit", Duration::from_secs(1)).stall_after(Duration::ZERO);
        let sender = Sender {
            every: heartbeat.every,
            shared: Arc::clone(&heartbeat.shared),
        };
        heartbeat.beat();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!sender.loop_is_alive(), "no beat for longer than the bound");
        heartbeat
            .shared
            .stall_after_ms
            .store(millis(Duration::from_secs(60)), Relaxed);
        assert!(sender.loop_is_alive(), "within a minute's bound");
    }
}
