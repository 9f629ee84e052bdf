//! What travels through the queue from callers to the transport thread.
//!
//! A check-in is recorded as a [`CheckInRecord`]: a reference to its monitor (a `&'static` job
//! site for `#[monitored_job]`, so recording allocates nothing), an id, a status and a duration.
//! Turning it into a wire [`CheckIn`] happens on the transport thread, never on the caller's.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use uuid::Uuid;

use crate::job::{JobConfig, JobSchedule, JobSite};
use crate::protocol::{CheckIn, CheckInStatus, Event, MonitorConfig, MonitorSchedule};

/// One unit of work for the transport thread.
pub(crate) enum Task {
    /// A check-in to batch and send.
    CheckIn(CheckInRecord),
    /// An event, already built on the caller's thread (it borrowed the error it describes).
    Event(Box<Event>),
    /// Acknowledge on this channel once everything queued before it was handled.
    Flush(SyncSender<()>),
    /// Stop after handling everything queued before it.
    Shutdown,
}

/// The monitor a check-in is about.
#[derive(Clone)]
pub(crate) enum Monitor {
    /// A `#[monitored_job]` call site: static, so recording it costs a pointer copy.
    Site(&'static JobSite),
    /// A monitor named at run time (`checkin::start`, `capture_checkin`).
    Spec(Arc<MonitorSpec>),
}

/// A monitor named at run time.
pub(crate) struct MonitorSpec {
    pub(crate) slug: String,
    pub(crate) config: Option<MonitorConfig>,
}

/// A check-in as the caller records it.
pub(crate) struct CheckInRecord {
    pub(crate) monitor: Monitor,
    pub(crate) id: Uuid,
    pub(crate) status: CheckInStatus,
    pub(crate) duration: Option<Duration>,
}

impl Monitor {
    /// A run-time monitor for `slug`.
    pub(crate) fn spec(
        slug: &str,
        config: Option<crate::monitor_config::MonitorConfig>,
    ) -> Monitor {
        Monitor::Spec(Arc::new(MonitorSpec {
            slug: slug.to_owned(),
            config: config.map(crate::monitor_config::MonitorConfig::into_protocol),
        }))
    }

    /// The monitor's slug.
    pub(crate) fn slug(&self) -> &str {
        match self {
            Monitor::Site(site) => site.slug,
            Monitor::Spec(spec) => &spec.slug,
        }
    }
}

impl CheckInRecord {
    /// The wire check-in, with `environment` unless the job site names its own.
    pub(crate) fn to_check_in(&self, environment: &str) -> CheckIn {
        let (environment, monitor_config) = match &self.monitor {
            Monitor::Site(site) => (
                site.environment.unwrap_or(environment),
                site.config.as_ref().map(JobConfig::to_protocol),
            ),
            Monitor::Spec(spec) => (environment, spec.config.clone()),
        };
        CheckIn {
            check_in_id: Some(self.id),
            monitor_slug: self.monitor.slug().to_owned(),
            status: self.status,
            environment: Some(environment.to_owned()),
            duration: self.duration.map(|d| d.as_secs_f64()),
            monitor_config,
            contexts: None,
        }
    }
}

impl JobConfig {
    pub(crate) fn to_protocol(&self) -> MonitorConfig {
        let schedule = match self.schedule {
            JobSchedule::Crontab(value) => MonitorSchedule::Crontab {
                value: value.to_owned(),
            },
            JobSchedule::Interval(value, unit) => MonitorSchedule::Interval { value, unit },
        };
        // Sentry-valid standard fields, exact values aside (see `MonitorConfig::for_sentry`).
        MonitorConfig {
            timezone: self.timezone.map(str::to_owned),
            failure_issue_threshold: self.failure_issue_threshold,
            recovery_threshold: self.recovery_threshold,
            ..MonitorConfig::for_sentry(schedule, self.checkin_margin, self.max_runtime)
        }
    }
}
