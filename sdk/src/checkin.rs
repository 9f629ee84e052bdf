//! Check-ins by hand: [`start`] a [`Run`] and [`finish`](Run::finish) it, with an optional
//! [`MonitorConfig`] that creates or updates the monitor on the server.
//!
//! ```no_run
//! use std::time::Duration;
//! use watchpost::checkin::{self, IntervalUnit, MonitorConfig};
//! use watchpost::protocol::CheckInStatus;
//!
//! let config = MonitorConfig::crontab("0 3 * * *")
//!     .timezone("Europe/Berlin")
//!     .max_runtime(Duration::from_secs(30 * 60));
//! let run = checkin::start("nightly-backup", Some(config));
//! // ... the job ...
//! run.finish(CheckInStatus::Ok);
//!
//! // A heartbeat every 10 minutes:
//! let every_ten = MonitorConfig::interval(10, IntervalUnit::Minute);
//! watchpost::capture_checkin("queue-consumer", CheckInStatus::Ok, Some(&every_ten));
//! ```
//!
//! `#[monitored_job]` does all of this for a function. Like every SDK call, these are no-ops when
//! the SDK is disabled, and never block: the check-ins are queued for the transport thread.

use std::time::Duration;

use uuid::Uuid;

use crate::client;
use crate::protocol::{self, CheckInStatus, MonitorSchedule};
use crate::record::Monitor;
use crate::run::ActiveRun;

pub use crate::protocol::IntervalUnit;

/// The schedule and thresholds of a monitor, sent with its check-ins so the server creates or
/// updates the monitor (upsert).
///
/// What goes on the wire is accepted by Sentry unchanged, whichever server the DSN points at:
/// durations in whole minutes (Sentry's unit), and a [`IntervalUnit::Second`] interval (a
/// Watchpost extension) as whole minutes. A value finer than that is rounded *up* in those
/// fields, so Sentry never expects the job sooner than it runs, and sent exactly beside them
/// in `monitor_config.watchpost`, which the Watchpost collector reads and Sentry ignores: a
/// 90-second interval with a 30-second margin is every 2 minutes with a 1-minute margin for
/// Sentry and exactly what you configured for Watchpost (see
/// [`protocol::MonitorConfig::for_sentry`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    schedule: MonitorSchedule,
    timezone: Option<String>,
    checkin_margin: Option<Duration>,
    max_runtime: Option<Duration>,
    failure_issue_threshold: Option<u32>,
    recovery_threshold: Option<u32>,
}

impl MonitorConfig {
    /// A monitor expected on a crontab schedule (5 fields or a lowercase `@hourly`-style alias),
    /// evaluated in [`timezone`](Self::timezone) (UTC by default) as Sentry evaluates it. The
    /// server validates the expression and refuses what Sentry refuses (`?`, `15W`, `@Daily`).
    pub fn crontab(expression: &str) -> Self {
        Self::with_schedule(MonitorSchedule::Crontab {
            value: expression.to_owned(),
        })
    }

    /// A monitor expected every `value` `unit`s.
    pub fn interval(value: u64, unit: IntervalUnit) -> Self {
        Self::with_schedule(MonitorSchedule::Interval { value, unit })
    }

    fn with_schedule(schedule: MonitorSchedule) -> Self {
        MonitorConfig {
            schedule,
            timezone: None,
            checkin_margin: None,
            max_runtime: None,
            failure_issue_threshold: None,
            recovery_threshold: None,
        }
    }

    /// The IANA timezone the crontab is evaluated in, e.g. `Europe/Berlin`.
    pub fn timezone(mut self, timezone: &str) -> Self {
        self.timezone = Some(timezone.to_owned());
        self
    }

    /// How late a check-in may be before it counts as missed.
    pub fn checkin_margin(mut self, margin: Duration) -> Self {
        self.checkin_margin = Some(margin);
        self
    }

    /// How long a run may stay `in_progress` before it times out. Must be more than zero: the
    /// server refuses a runtime of 0, as Sentry does, and with it the check-in.
    pub fn max_runtime(mut self, max_runtime: Duration) -> Self {
        self.max_runtime = Some(max_runtime);
        self
    }

    /// How many consecutive failures open an incident.
    pub fn failure_issue_threshold(mut self, n: u32) -> Self {
        self.failure_issue_threshold = Some(n);
        self
    }

    /// How many consecutive successes resolve it.
    pub fn recovery_threshold(mut self, n: u32) -> Self {
        self.recovery_threshold = Some(n);
        self
    }

    /// The wire form (`monitor_config`).
    pub fn to_protocol(&self) -> protocol::MonitorConfig {
        self.clone().into_protocol()
    }

    pub(crate) fn into_protocol(self) -> protocol::MonitorConfig {
        protocol::MonitorConfig {
            timezone: self.timezone,
            failure_issue_threshold: self.failure_issue_threshold,
            recovery_threshold: self.recovery_threshold,
            ..protocol::MonitorConfig::for_sentry(
                self.schedule,
                self.checkin_margin,
                self.max_runtime,
            )
        }
    }
}

/// Starts a run of the monitor `slug`: sends `in_progress` with a fresh check-in id (and
/// `config`, if given). Finish it with [`Run::finish`]; a `Run` dropped unfinished reports
/// `error`.
///
/// A `Run` is not tied to a thread, so it may be held across `.await`s. The flip side: the panic
/// hook does not know about it, and under `panic = "abort"` an open `Run` is never closed (the
/// server times it out after `max_runtime`). `#[monitored_job]` has no such gap.
pub fn start(slug: &str, config: Option<MonitorConfig>) -> Run {
    let generation = client::generation();
    if generation == 0 {
        return Run { active: None };
    }
    Run {
        active: Some(ActiveRun::begin(
            generation,
            Monitor::spec(slug, config),
            false,
        )),
    }
}

/// An open run from [`start`].
#[must_use = "a Run reports `error` when dropped without `finish`"]
pub struct Run {
    active: Option<ActiveRun>,
}

impl Run {
    /// The check-in id shared by this run's `in_progress` and its end (nil when the SDK is
    /// disabled).
    pub fn id(&self) -> Uuid {
        self.active.as_ref().map_or(Uuid::nil(), |a| a.id)
    }

    /// Ends the run with `status` (normally `Ok` or `Error`), sending the same check-in id with
    /// the run's duration.
    pub fn finish(self, status: CheckInStatus) {
        if let Some(active) = &self.active {
            active.end(status, || None);
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Run");
        if let Some(active) = &self.active {
            d.field("slug", &active.monitor.slug())
                .field("id", &active.id);
        }
        d.finish_non_exhaustive()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(active) = &self.active {
            active.end(CheckInStatus::Error, || None);
        }
    }
}
