//! The collector's own outages: the windows in which it was not watching (stopped, or
//! refusing writes), and the grace rules that keep its downtime from being reported as the
//! jobs' failures. A job's check-in sent while the collector was down was lost or is still
//! being retried by its client; the collector cannot tell which, so a deadline that fell
//! inside such a window — or shortly after it, while clients' retries are still arriving — is
//! not a failure yet.
//!
//! Pure like the rest of the engine: the windows are an input (the collector learns them from
//! its liveness mark and from its own refused writes), time is the `now` parameter.
//!
//! The rules, for a deadline `d` (a monitor's `next_checkin_latest` or a run's `timeout_at`)
//! and the monitor's grace `g = max(checkin_margin, floor)`:
//! - `d` before every window, or later than `g` after a window's end: the usual rules.
//! - `from <= d <= to + g` for a window and `now < to + g`: not a failure yet. The monitor
//!   gets until `to + g` (the end of the grace) to check in. The missed sweep records the
//!   slots whose deadline passed while it could not watch as `unknown` check-ins (Sentry's
//!   status for "could not be determined"; they feed no threshold), except the newest, which
//!   stays expected until the end of the grace: a check-in before then counts for it, and
//!   without one it is `missed` then, once. A run's timeout moves to the end of the grace.
//! - A failure recorded for a deadline near a window carries that window, so its alert says
//!   when the collector was not watching.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::config::MonitorConfig;

/// The grace floor when none is configured: time for clients that retry with backoff (our
/// SDK's transport caps its backoff at 5 s; curl's `--retry` doubles from 1 s) to deliver what
/// they held through a restart.
pub const DEFAULT_OUTAGE_GRACE: Duration = Duration::from_secs(30);

/// Most `unknown` check-ins one sweep records for the slots of one outage: a long outage of a
/// job with a short interval is summarized by its newest slots (the API and dashboard show
/// the newest check-ins anyway) instead of thousands of records.
pub const MAX_UNKNOWN_SLOTS: usize = 60;

/// Why the collector was not watching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageKind {
    /// The process was not running (stopped, crashed, or starting).
    Down,
    /// It was running but could not write (store unwritable, disk full): it answered
    /// check-ins with `503`.
    Refusing,
}

/// A window in which the collector was not watching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Outage {
    /// Since when: the last moment it is known to have been watching.
    pub from: DateTime<Utc>,
    /// Until when; `None` while it is still going on (treated as `now`).
    pub to: Option<DateTime<Utc>>,
    /// Why.
    pub kind: OutageKind,
}

/// The outages the rules consider, with the grace floor. The default knows no outage: every
/// rule is then exactly the usual one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outages {
    /// Known windows, in any order.
    pub windows: Vec<Outage>,
    /// The least grace any monitor gets after a window (`[server] outage_grace`).
    pub floor: Duration,
}

impl Outage {
    /// The window's end as of `now`.
    pub fn end(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.to.unwrap_or(now).max(self.from)
    }

    /// One line for a person: "the collector was down from … to …".
    pub fn describe(&self) -> String {
        let what = match self.kind {
            OutageKind::Down => "was down",
            OutageKind::Refusing => "refused writes",
        };
        let from = when(self.from);
        match self.to {
            Some(to) => format!(
                "the collector {what} from {from} to {}",
                when(to.max(self.from))
            ),
            None => format!("the collector {what} since {from}"),
        }
    }
}

impl Outages {
    /// Outages with these windows and floor.
    pub fn new(windows: Vec<Outage>, floor: Duration) -> Outages {
        Outages { windows, floor }
    }

    /// A monitor's grace after a window: its own margin, at least the floor.
    pub fn grace(&self, config: &MonitorConfig) -> TimeDelta {
        let grace = config.checkin_margin.max(self.floor);
        TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX)
    }

    /// The window `deadline` fell into or within `grace` after, with the end of its grace
    /// (the latest such end if several windows qualify), regardless of `now`.
    pub fn near(
        &self,
        deadline: DateTime<Utc>,
        grace: TimeDelta,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, &Outage)> {
        self.windows
            .iter()
            .filter_map(|window| {
                let end = window.end(now);
                let until = end
                    .checked_add_signed(grace)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                (window.from <= deadline && deadline <= until).then_some((until, window))
            })
            .max_by_key(|(until, _)| *until)
    }

    /// When a deadline that passed (`deadline <= now`) is not a failure yet: the end of the
    /// grace it is deferred to, and the window that defers it; `None` when the usual rules
    /// apply.
    pub fn deferral(
        &self,
        deadline: DateTime<Utc>,
        grace: TimeDelta,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, &Outage)> {
        self.near(deadline, grace, now)
            .filter(|(until, _)| now < *until)
    }
}

/// A time as people read it in alerts and check-in logs: `2026-05-01 03:00:00 UTC`.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
