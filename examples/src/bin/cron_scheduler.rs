//! `#[monitored_job]` jobs run by tokio-cron-scheduler, for a team that already schedules with
//! it. The schedule is written once, in the attribute: `watchpost::job!(f)` carries it, and the
//! tokio-cron-scheduler `Job` is built from it, so the scheduler fires exactly when the monitor
//! expects a run.
//!
//! ```sh
//! WATCHPOST_DSN=http://<public_key>@localhost:8080/1 cargo run -p watchpost-examples --bin cron_scheduler
//! ```
//!
//! Runs until Ctrl-C. With `--once` it builds the same cron jobs (so a schedule the scheduler
//! cannot read fails here too), then runs each job once, now, through a one-shot
//! tokio-cron-scheduler job, and exits: `examples/tests/smoke.rs` runs it that way against a
//! loopback recorder.

use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use watchpost::{ScheduledJob, monitored_job};

/// Every five minutes, Berlin time; an incident after two failed runs in a row.
#[monitored_job(
    schedule = "*/5 * * * *",
    timezone = "Europe/Berlin",
    max_runtime = "2m",
    failure_issue_threshold = 2
)]
async fn refresh_rates() -> anyhow::Result<f64> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(1.08)
}

/// Hourly. A plain `fn`: `ScheduledJob::run` puts it on tokio's blocking pool.
#[monitored_job(schedule = "@hourly", max_runtime = "10m")]
fn compact_uploads() -> std::io::Result<usize> {
    Ok(std::fs::read_dir(std::env::temp_dir())?.count())
}

/// The tokio-cron-scheduler job that runs `job` on the schedule of its attribute.
fn on_its_schedule(job: ScheduledJob) -> anyhow::Result<Job> {
    let crontab = job
        .crontab()
        .with_context(|| format!("job `{}` has no crontab", job.slug()))?;
    let timezone: chrono_tz::Tz = job
        .timezone()
        .unwrap_or("UTC")
        .parse()
        .map_err(|e| anyhow::anyhow!("job `{}`: {e}", job.slug()))?;
    let cron = watchpost_examples::with_seconds(crontab);
    Job::new_async_tz(cron.as_str(), timezone, move |_id, _scheduler| job.run())
        .with_context(|| format!("tokio-cron-scheduler cannot read `{cron}`"))
}

/// A one-shot job that runs `job` now and reports on `done` when the run has ended.
fn now_once(job: ScheduledJob, done: mpsc::Sender<&'static str>) -> anyhow::Result<Job> {
    Ok(Job::new_one_shot_async(
        Duration::ZERO,
        move |_id, _scheduler| {
            let (job, done) = (job.clone(), done.clone());
            Box::pin(async move {
                job.run().await;
                let _ = done.send(job.slug()).await;
            })
        },
    )?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Keep the guard alive: dropping it flushes what is still queued.
    let _watchpost = watchpost::init_from_env();
    let once = std::env::args().any(|a| a == "--once");
    let jobs = [
        watchpost::job!(refresh_rates),
        watchpost::job!(compact_uploads),
    ];

    let mut scheduler = JobScheduler::new().await?;
    let (done, mut finished) = mpsc::channel(jobs.len());
    for job in &jobs {
        let cron_job = on_its_schedule(job.clone())?;
        if once {
            scheduler.add(now_once(job.clone(), done.clone())?).await?;
        } else {
            scheduler.add(cron_job).await?;
        }
    }
    scheduler.start().await?;

    if once {
        for _ in 0..jobs.len() {
            let slug = finished.recv().await.context("the scheduler stopped")?;
            println!("ran {slug}");
        }
    } else {
        println!(
            "running {} jobs on their schedules; Ctrl-C stops",
            jobs.len()
        );
        tokio::signal::ctrl_c().await?;
    }
    scheduler.shutdown().await?;
    Ok(())
}
