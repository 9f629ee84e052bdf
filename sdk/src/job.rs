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

/// What `#[monitored_job]` emits beside a function the SDK's scheduler can run (see
/// `watchpost::job!`): its site, and in `K` whether it is `async` ([`AsyncJob`]) or not
/// ([`BlockingJob`]), so the scheduler picks how to run it at compile time.
pub struct JobSpec<K> {
    /// The job's monitor: slug, schedule and timezone.
    pub site: &'static JobSite,
    kind: std::marker::PhantomData<K>,
}

// By hand: a derive would ask `K: Copy` of the marker.
impl<K> Clone for JobSpec<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for JobSpec<K> {}

impl<K> JobSpec<K> {
    /// A spec for `site`.
    pub const fn new(site: &'static JobSite) -> JobSpec<K> {
        JobSpec {
            site,
            kind: std::marker::PhantomData,
        }
    }
}

/// [`JobSpec`] of an `async fn`: the scheduler awaits it on the runtime.
#[derive(Debug)]
pub struct AsyncJob;

/// [`JobSpec`] of a plain `fn`: the scheduler runs it on tokio's blocking pool.
#[derive(Debug)]
pub struct BlockingJob;
