//! What an app sees while its collector is down: a monitored job every ~50 ms, timed per call.
//!
//! ```sh
//! WATCHPOST_DSN=http://<public_key>@127.0.0.1:8080/1 cargo run -p watchpost-examples --bin outage_app
//! ```
//!
//! Type (or pipe) `outage` when you stop the collector and `restored` when it is back: latencies
//! are reported per phase (`before`, `during`, `after`). `stop` or end of input ends the loop,
//! flushes for up to `OUTAGE_APP_FLUSH_SECS` (default 30) and prints one JSON line with the runs,
//! the latency percentiles in microseconds and the SDK's own counters. `OUTAGE_APP_QUEUE_SIZE`
//! sets the SDK's queue size, so a small one shows overflow being counted rather than blocking.
//! collector/tests/outage_app.rs drives it.

use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use watchpost::{ClientOptions, monitored_job};

const PHASES: [&str; 3] = ["before", "during", "after"];
const INTERVAL: Duration = Duration::from_millis(50);

/// The phase the app is in, an index into [`PHASES`]; set from stdin.
static PHASE: AtomicUsize = AtomicUsize::new(0);

/// A job that does a little real work and is reported as a check-in pair (start, finish).
#[monitored_job(schedule = "* * * * *", checkin_margin = "5m")]
fn tick(round: u64) -> std::io::Result<u64> {
    Ok((0..1_000u64).fold(round, |acc, x| acc.wrapping_mul(31).wrapping_add(x)))
}

fn main() -> anyhow::Result<()> {
    let env_number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let mut options = ClientOptions {
        dsn: std::env::var("WATCHPOST_DSN").ok(),
        ..ClientOptions::default()
    };
    if let Some(size) = env_number("OUTAGE_APP_QUEUE_SIZE") {
        options.queue_size = usize::try_from(size)?;
    }
    let flush = Duration::from_secs(env_number("OUTAGE_APP_FLUSH_SECS").unwrap_or(30));
    let guard = watchpost::init(options);

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line.as_deref().map(str::trim) {
                Ok("outage") => PHASE.store(1, Ordering::Relaxed),
                Ok("restored") => PHASE.store(2, Ordering::Relaxed),
                Ok("stop") | Err(_) => break,
                Ok(other) => eprintln!("outage_app: unknown command {other:?}"),
            }
        }
        let _ = stop_tx.send(());
    });

    let mut latencies: [Vec<u64>; 3] = Default::default();
    let mut runs = 0u64;
    let mut next = Instant::now();
    while stop_rx.try_recv().is_err() {
        let phase = PHASE.load(Ordering::Relaxed);
        let started = Instant::now();
        std::hint::black_box(tick(runs))?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        latencies[phase].push(micros);
        runs += 1;
        next += INTERVAL;
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }

    let flushed = guard.flush(flush);
    let stats = watchpost::stats();
    let phases: Vec<String> = PHASES
        .iter()
        .zip(&mut latencies)
        .map(|(name, samples)| {
            samples.sort_unstable();
            format!(
                "\"{name}\":{{\"runs\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
                samples.len(),
                percentile(samples, 50),
                percentile(samples, 99),
                samples.last().copied().unwrap_or(0),
            )
        })
        .collect();
    println!(
        "{{\"runs\":{runs},\"checkins_sent_by_app\":{},\"flushed\":{flushed},\"latency\":{{{}}},\
         \"stats\":{{\"queued\":{},\"sent\":{},\"dropped\":{},\"rate_limited\":{},\"failed\":{}}}}}",
        runs * 2,
        phases.join(","),
        stats.queued,
        stats.sent,
        stats.dropped,
        stats.rate_limited,
        stats.failed,
    );
    Ok(())
}

/// The `p`th percentile of sorted `samples` (nearest rank), 0 when there are none.
fn percentile(samples: &[u64], p: usize) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let rank = (samples.len() * p).div_ceil(100).max(1);
    samples[rank - 1]
}
