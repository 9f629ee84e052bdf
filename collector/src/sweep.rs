//! The sweeper: the timer task that sleeps until the earliest deadline of the index
//! (`deadlines.rs`, rebuilt from the store at startup) and hands what is due to the processor.
//! It never scans all monitors and never polls on a fixed tick: cost is proportional to what
//! is due, and an earlier deadline wakes it early.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::deadlines::{Deadlines, IDLE_WAKE};
use crate::metrics::Metrics;
use crate::processor::Processor;

/// After a failed sweep, wait this long before retrying what was due.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The timer task. Returns when `shutdown` resolves.
pub async fn run(
    deadlines: Arc<Deadlines>,
    processor: Arc<Processor>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let _running = deadlines.running();
    tokio::pin!(shutdown);
    loop {
        let now = Utc::now();
        deadlines.beat(now);
        let due = deadlines.pop_due(now);
        if !due.is_empty() {
            let lag = due
                .iter()
                .map(|d| (now - d.at).num_milliseconds())
                .max()
                .unwrap_or(0);
            metrics.sweep_lag(lag as f64 / 1000.0);
            match processor.sweep(due, now).await {
                Ok(report) => metrics.swept(report.missed, report.timeouts),
                Err(error) => {
                    // The processor put the deadlines back; back off instead of spinning on a
                    // store that cannot write.
                    tracing::error!(%error, "sweep failed; retrying shortly");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_AFTER) => continue,
                        () = &mut shutdown => break,
                    }
                }
            }
        }
        let wait = deadlines.next_deadline().map_or(IDLE_WAKE, |next| {
            (next - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(IDLE_WAKE)
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = deadlines.woken() => {}
            () = &mut shutdown => break,
        }
    }
}
