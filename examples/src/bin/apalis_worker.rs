//! A `#[monitored_job]` job run by an apalis worker, for a team that already runs its jobs
//! with apalis. The schedule is written once, in the attribute: `watchpost::job!(f)` carries
//! it, and apalis-cron's `CronScheduler` (the worker's backend) is built from it, so the worker
//! gets a tick exactly when the monitor expects a run. The handler runs the job once per
//! tick; the job reports its own check-ins, and an error it returns is also the handler's
//! error (apalis's retries and events see it as before).
//!
//! ```sh
//! WATCHPOST_DSN=http://<public_key>@localhost:8080/1 cargo run -p watchpost-examples --bin apalis_worker
//! ```
//!
//! Runs until Ctrl-C. With `--once` it builds the same schedule (so a schedule apalis-cron
//! cannot read fails here too), but gives the same handler one tick through apalis's in-memory
//! storage instead, and stops the worker once it is handled: `examples/tests/smoke.rs` runs it
//! that way against a loopback recorder. A team that wants ticks persisted pipes the
//! `CronScheduler` into a SQL storage (`pipe_to`); the handler stays the same.

use std::str::FromStr as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use apalis::prelude::{
    BoxDynError, Data, MemoryStorage, TaskSink as _, WorkerBuilder, WorkerContext,
};
use apalis_cron::{CronScheduler, Tick};
use chrono_tz::Tz;
use watchpost::monitored_job;

/// Every fifteen minutes, UTC.
#[monitored_job(schedule = "*/15 * * * *", max_runtime = "5m", checkin_margin = "2m")]
async fn sync_invoices() -> anyhow::Result<usize> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(12)
}

/// Whether the worker stops after its first task (`--once`).
#[derive(Debug, Clone, Copy)]
struct Mode {
    once: bool,
}

/// The apalis handler: one tick, one monitored run.
async fn on_tick(
    tick: Tick<Tz>,
    mode: Data<Mode>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let outcome = sync_invoices().await;
    if mode.once {
        worker.stop()?;
    }
    let synced = outcome?;
    println!("tick {}: synced {synced} invoices", tick.get_timestamp());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Keep the guard alive: dropping it flushes what is still queued.
    let _watchpost = watchpost::init_from_env();
    let once = std::env::args().any(|a| a == "--once");

    let job = watchpost::job!(sync_invoices);
    let crontab = job.crontab().context("sync_invoices has a crontab")?;
    let six = watchpost_examples::with_seconds(crontab);
    let schedule = cron::Schedule::from_str(&six)
        .with_context(|| format!("apalis-cron cannot read `{six}`"))?;
    let timezone: Tz = job
        .timezone()
        .unwrap_or("UTC")
        .parse()
        .map_err(|e| anyhow::anyhow!("job `{}`: {e}", job.slug()))?;

    let builder = WorkerBuilder::new(job.slug());
    if once {
        let mut queue = MemoryStorage::new();
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        queue.push(Tick::<Tz>::new(now)).await?;
        builder
            .backend(queue)
            .data(Mode { once: true })
            .build(on_tick)
            .run()
            .await?;
        println!("ran {}", job.slug());
    } else {
        println!(
            "running {} on `{crontab}` ({timezone}); Ctrl-C stops",
            job.slug()
        );
        builder
            .backend(CronScheduler::new(schedule).with_timezone(timezone))
            .data(Mode { once: false })
            .build(on_tick)
            .run_until(tokio::signal::ctrl_c())
            .await?;
    }
    Ok(())
}
