// Stacked with `#[tokio::main]`: the whole program run is one monitored job.
#![deny(warnings)]

use watchpost::monitored_job;

#[tokio::main(flavor = "current_thread")]
#[monitored_job(slug = "batch-run")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tokio::task::yield_now().await;
    Ok(())
}
