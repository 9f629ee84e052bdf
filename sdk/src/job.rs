//! The static description of a `#[monitored_job]` function ([`JobSite`]), built by the macro
//! as a `static` so a check-in refers to it by a `&'static` reference.
//!
//! Its own module, depending on nothing of the SDK but the protocol types, so that the
//! queue's records (`record.rs`), runs (`run.rs`) and the macro's entry points
//! (`__private.rs`) can all use it without importing each other.

use std::time::Duration;

use crate::protocol::IntervalUnit;

/// A `#[monitored_job]` function: its monitor slug, environment override and configuration.
/// Built by the macro as a `static`, so check-ins refer to it by a `&'static` reference.
#[derive(Debug)]
pub struct JobSite {
    /// The monitor slug.
    pub slug: &'static str,
    /// Overrides the client's environment for this job.
    pub environment: Option<&'static str>,
    /// Sent as `monitor_config` with every check-in (upsert).
    pub config: Option<JobConfig>,
}

/// The monitor configuration given to the macro.
#[derive(Debug)]
pub struct JobConfig {
    /// When the job is expected to run.
    pub schedule: JobSchedule,
    /// IANA timezone for the crontab.
    pub timezone: Option<&'static str>,
    /// How late a check-in may be.
    pub checkin_margin: Option<Duration>,
    /// How long a run may last.
    pub max_runtime: Option<Duration>,
    /// Consecutive failures that open an incident.
    pub failure_issue_threshold: Option<u32>,
    /// Consecutive successes that resolve it.
    pub recovery_threshold: Option<u32>,
}

/// A schedule given to the macro.
#[derive(Debug, Clone, Copy)]
pub enum JobSchedule {
    /// A crontab expression (validated at compile time by the macro).
    Crontab(&'static str),
    /// Every `n` units.
    Interval(u64, IntervalUnit),
}
