//! [`MonitorConfig`]: a monitor's schedule and thresholds as an app writes them, and their wire
//! form. Its own module so the run records (`record.rs`) and the check-in API (`checkin.rs`)
//! both use it without importing each other.

use std::time::Duration;

use crate::protocol::{self, IntervalUnit, MonitorSchedule};

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
