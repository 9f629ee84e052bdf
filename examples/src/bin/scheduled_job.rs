//! Two scheduled jobs, one sync and one async, reporting every run as a cron check-in.
//!
//! ```sh
//! WATCHPOST_DSN=http://<public_key>@localhost:8080/1 cargo run -p watchpost-examples --bin scheduled_job
//! ```
//!
//! `SENTRY_DSN` works too. Without either, the jobs run the same and nothing is sent. A real
//! program would have cron or a scheduler call the jobs; here `main` runs three rounds.

use std::time::Duration;

use watchpost::monitored_job;

/// Every night at 03:00 Berlin time. An `Err` reports the run as `error` and sends the error.
#[monitored_job(
    schedule = "0 3 * * *",
    timezone = "Europe/Berlin",
    max_runtime = "30m"
)]
fn nightly_cleanup() -> std::io::Result<usize> {
    let entries = std::fs::read_dir(std::env::temp_dir())?;
    Ok(entries.count())
}

/// Every five minutes; an incident opens after three failed runs in a row.
#[monitored_job(
    schedule = "*/5 * * * *",
    checkin_margin = "2m",
    failure_issue_threshold = 3
)]
async fn refresh_rates(round: u32) -> anyhow::Result<f64> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    anyhow::ensure!(round != 2, "the rates provider timed out");
    Ok(1.08)
}

#[tokio::main]
async fn main() {
    // Keep the guard alive: dropping it flushes what is still queued.
    let _watchpost = watchpost::init_from_env();

    for round in 1..=3 {
        match nightly_cleanup() {
            Ok(count) => println!("round {round}: {count} entries in the temp dir"),
            Err(error) => eprintln!("round {round}: cleanup failed: {error}"),
        }
        match refresh_rates(round).await {
            Ok(rate) => println!("round {round}: EUR/USD {rate}"),
            Err(error) => eprintln!("round {round}: refresh failed: {error}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
