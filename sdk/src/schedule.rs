//! Schedules written once (feature `schedule`): [`schedule`] runs `#[monitored_job]` functions
//! on tokio at exactly the times their attribute declares, computed by the collector's own
//! schedule code (`watchpost_engine::Schedule::next_after`, the same crontab grammar, interval
//! arithmetic and DST rules), so the monitor never expects a run the app does not make.
//!
//! ```no_run
//! use watchpost::monitored_job;
//!
//! #[monitored_job(schedule = "0 3 * * *", timezone = "Europe/Berlin")]
//! async fn nightly_backup() -> Result<(), std::io::Error> {
//!     Ok(())
//! }
//!
//! #[monitored_job(interval = "10m")]
//! fn refresh_rates() {}
//!
//! # async fn demo() -> Result<(), watchpost::ScheduleError> {
//! watchpost::schedule()
//!     .job(watchpost::job!(nightly_backup))
//!     .job(watchpost::job!(refresh_rates))
//!     .run_until(async { tokio::signal::ctrl_c().await.ok(); })
//!     .await
//! # }
//! ```
//!
//! It is deliberately not a job framework: one process, no persistence, no retries, no
//! distribution. Policies:
//!
//! - **Overlap**: a slot that comes while the previous run still runs is skipped
//!   ([`Overlap::Skip`], the default; the monitor's `max_runtime` reports the long run), or the
//!   run starts anyway ([`Overlap::Allow`]).
//! - **Missed while down**: none. Slots that passed while the process was not running are not
//!   made up for at start (the collector has reported them missed already); the first run is
//!   the first slot after the start.
//! - **Stop**: once the future given to [`Scheduler::run_until`] completes, no run starts, and
//!   `run_until` returns when the runs under way have finished.
//!
//! Interval jobs run at the start (the anchor, as a first check-in anchors the collector's
//! grid) plus each interval after the previous run's slot.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::task::JoinSet;
use watchpost_engine::Schedule;

use crate::job::{AsyncJob, BlockingJob, JobSchedule, JobSite, JobSpec};

/// A job's run as the scheduler starts it.
type RunFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A `#[monitored_job]` function with its schedule, from [`job!`](crate::job).
///
/// Besides handing it to [`Scheduler::job`], a team whose jobs already run on another
/// scheduler (tokio-cron-scheduler, apalis) reads the schedule from it, so that scheduler
/// fires at the times the monitor expects, and spawns [`run`](Self::run) there: the
/// `examples/` crate has both (`cron_scheduler.rs`, `apalis_worker.rs`).
#[derive(Clone)]
pub struct ScheduledJob {
    site: &'static JobSite,
    run: RunFn,
}

impl std::fmt::Debug for ScheduledJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduledJob")
            .field("slug", &self.site.slug)
            .finish_non_exhaustive()
    }
}

impl ScheduledJob {
    /// The job's monitor slug.
    pub fn slug(&self) -> &'static str {
        self.site.slug
    }

    /// The job's crontab exactly as its attribute declares it (five fields, or a nickname such
    /// as `@hourly`); `None` for an `interval` job.
    pub fn crontab(&self) -> Option<&'static str> {
        match self.site.config.as_ref()?.schedule {
            JobSchedule::Crontab(crontab) => Some(crontab),
            JobSchedule::Interval(..) => None,
        }
    }

    /// The IANA timezone of the crontab (`None`: UTC).
    pub fn timezone(&self) -> Option<&'static str> {
        self.site.config.as_ref()?.timezone
    }

    /// One run of the job, as a future to spawn on any tokio runtime: an `async fn` is
    /// awaited, a plain `fn` runs on the blocking pool. The run reports itself (it is the
    /// `#[monitored_job]` function); the future's output is `()` whatever the job returned.
    pub fn run(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        (self.run)()
    }
}

/// How the scheduler runs a job of kind `Self` given as `F`: awaited, or on the blocking pool.
pub trait RunsAs<F> {
    /// The run, as a future the scheduler spawns.
    fn runner(f: F) -> RunFn;
}

impl<F, Fut> RunsAs<F> for AsyncJob
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
{
    fn runner(f: F) -> RunFn {
        Arc::new(move || {
            let run = f();
            Box::pin(async move {
                // The run reported its outcome itself (`#[monitored_job]`); the value is the
                // job's business.
                let _ = run.await;
            })
        })
    }
}

impl<F, R> RunsAs<F> for BlockingJob
where
    F: Fn() -> R + Clone + Send + Sync + 'static,
    R: Send + 'static,
{
    fn runner(f: F) -> RunFn {
        Arc::new(move || {
            let f = f.clone();
            Box::pin(async move {
                // A panic was reported by the job's run and the panic hook; the scheduler lives on.
                let _ = tokio::task::spawn_blocking(f).await;
            })
        })
    }
}

impl<K> JobSpec<K> {
    /// The job `f` with the schedule of its spec: what `watchpost::job!(f)` expands to.
    pub fn with<F>(spec: JobSpec<K>, f: F) -> ScheduledJob
    where
        K: RunsAs<F>,
    {
        ScheduledJob {
            site: spec.site,
            run: K::runner(f),
        }
    }
}

/// What to do with a slot that comes while the job's previous run is still running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overlap {
    /// Skip the slot (the default).
    #[default]
    Skip,
    /// Start another run beside the one still running.
    Allow,
}

/// Why [`Scheduler::run_until`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The job's schedule or timezone does not parse (the macro checks both, so this is only
    /// reachable through a hand-written site).
    #[error("job `{slug}` cannot be scheduled: {reason}")]
    Invalid {
        /// The job's slug.
        slug: &'static str,
        /// What is wrong, in words.
        reason: String,
    },
    /// The job has no schedule, so there is nothing to run it on.
    #[error("job `{slug}` has no schedule; give its #[monitored_job] a `schedule` or `interval`")]
    NoSchedule {
        /// The job's slug.
        slug: &'static str,
    },
}

/// A set of jobs to run on their schedules; built by [`schedule`].
#[derive(Debug, Default)]
#[must_use = "a Scheduler does nothing until `run_until(..).await`"]
pub struct Scheduler {
    jobs: Vec<ScheduledJob>,
    overlap: Overlap,
    start: Option<DateTime<Utc>>,
}

/// An empty scheduler: add jobs with [`Scheduler::job`], then [`Scheduler::run_until`].
pub fn schedule() -> Scheduler {
    Scheduler::default()
}

impl Scheduler {
    /// Adds a job: `watchpost::job!(nightly_backup)`.
    pub fn job(mut self, job: ScheduledJob) -> Scheduler {
        self.jobs.push(job);
        self
    }

    /// The overlap policy of every job (default [`Overlap::Skip`]).
    pub fn overlap(mut self, overlap: Overlap) -> Scheduler {
        self.overlap = overlap;
        self
    }

    /// Reads the wall clock as `start` at the moment `run_until` starts and from tokio's clock
    /// after that, instead of the system's. For tests with a paused tokio clock
    /// (`tokio::time::pause`), where the system clock would not move with it.
    pub fn starting_at(mut self, start: DateTime<Utc>) -> Scheduler {
        self.start = Some(start);
        self
    }

    /// Runs the jobs until `stop` completes, then waits for the runs under way and returns.
    /// Fails at once, running nothing, if a job cannot be scheduled.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> Result<(), ScheduleError> {
        let plans = self
            .jobs
            .into_iter()
            .map(Plan::new)
            .collect::<Result<Vec<_>, _>>()?;
        let clock = Clock::new(self.start);
        let mut loops = JoinSet::new();
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        for plan in plans {
            let (clock, stopped) = (clock, stopped.clone());
            loops.spawn(plan.run(clock, self.overlap, stopped));
        }
        stop.await;
        let _ = stopping.send(true);
        while loops.join_next().await.is_some() {}
        Ok(())
    }
}

/// One job with its parsed schedule.
struct Plan {
    job: ScheduledJob,
    schedule: Schedule,
    tz: Tz,
}

impl Plan {
    fn new(job: ScheduledJob) -> Result<Plan, ScheduleError> {
        let slug = job.site.slug;
        let Some(config) = &job.site.config else {
            return Err(ScheduleError::NoSchedule { slug });
        };
        let invalid = |reason: String| ScheduleError::Invalid { slug, reason };
        let schedule = match config.schedule {
            JobSchedule::Crontab(expr) => Schedule::crontab(expr),
            JobSchedule::Interval(n, unit) => Schedule::interval(n, unit),
        }
        .map_err(|e| invalid(e.to_string()))?;
        let tz = watchpost_engine::parse_timezone(config.timezone.unwrap_or("UTC"))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Plan { job, schedule, tz })
    }

    /// The job's loop: sleep until each slot, start a run (or skip it), until stopped; then
    /// wait for its runs.
    async fn run(
        self,
        clock: Clock,
        overlap: Overlap,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let running = Arc::new(AtomicBool::new(false));
        let mut runs = JoinSet::new();
        let mut after = clock.now();
        while let Some(slot) = self.schedule.next_after(self.tz, after) {
            tokio::select! {
                () = clock.sleep_until(slot) => {}
                _ = stopped.changed() => break,
            }
            after = slot;
            // Runs that ended are collected as we go, so the set stays small.
            while runs.try_join_next().is_some() {}
            if running.swap(true, Ordering::AcqRel) && overlap == Overlap::Skip {
                continue;
            }
            let (run, running) = ((self.job.run)(), Arc::clone(&running));
            runs.spawn(async move {
                run.await;
                running.store(false, Ordering::Release);
            });
        }
        while runs.join_next().await.is_some() {}
    }
}

/// The wall clock the schedules are read on: the system's, or (for tests) a start time moved
/// on by tokio's clock.
#[derive(Debug, Clone, Copy)]
enum Clock {
    System,
    Tokio {
        start: DateTime<Utc>,
        at: tokio::time::Instant,
    },
}

impl Clock {
    fn new(start: Option<DateTime<Utc>>) -> Clock {
        match start {
            None => Clock::System,
            Some(start) => Clock::Tokio {
                start,
                at: tokio::time::Instant::now(),
            },
        }
    }

    fn now(self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio { start, at } => {
                let elapsed = chrono::TimeDelta::from_std(at.elapsed()).unwrap_or_default();
                start + elapsed
            }
        }
    }

    /// Sleeps until the clock reads `when`. The system clock is read again after each sleep
    /// (at most a minute), so a clock adjusted meanwhile (NTP, a suspended VM) is followed.
    async fn sleep_until(self, when: DateTime<Utc>) {
        loop {
            let left = (when - self.now()).to_std().unwrap_or_default();
            if left.is_zero() {
                return;
            }
            let step = match self {
                Clock::System => left.min(Duration::from_secs(60)),
                Clock::Tokio { .. } => left,
            };
            tokio::time::sleep(step).await;
        }
    }
}
