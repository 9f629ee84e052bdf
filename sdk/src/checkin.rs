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

use uuid::Uuid;

use crate::client;
use crate::protocol::CheckInStatus;
use crate::record::Monitor;
use crate::run::ActiveRun;

pub use crate::monitor_config::MonitorConfig;
pub use crate::protocol::IntervalUnit;

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
