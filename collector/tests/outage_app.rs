//! The collector goes away under a running app: SIGKILL for a window, then back on the same
//! data dir and port. The app (this process, through the SDK, as examples/src/bin/outage_app.rs
//! does it) runs a `#[monitored_job]` every 50 ms and times each call.
//!
//! Asserted: the job never waits on the collector (a loose bound on the 90th percentile, not
//! a speed claim); the SDK holds what it could not send and delivers it after the restart, so
//! every check-in is either delivered or counted as `dropped` (`sent + dropped` = what the app
//! produced; nothing `failed` or `rate_limited`), and every run is stored unless a check-in of
//! it was dropped; with the default queue a 10 s outage drops nothing, with a tiny queue the
//! overflow shows up as `dropped`. The latency percentiles per phase are printed for
//! docs/reliability.md ("Outages"). `WATCHPOST_OUTAGE_SECS` sets the window (default 10; the
//! issue's full run is 60).
//!
//! One test: the SDK client is process-global.

mod support;

use std::time::{Duration, Instant};

use support::{Collector, poll};
use watchpost::{ClientOptions, Stats, monitored_job};

const INTERVAL: Duration = Duration::from_millis(50);
/// The app runs this long before the outage and after the restart.
const CALM: Duration = Duration::from_secs(3);
/// Far above any honest per-call cost (microseconds), far below a network timeout (seconds).
const LATENCY_BOUND: Duration = Duration::from_millis(250);
/// The most check-ins `GET .../checkins` lists.
const CHECKINS_LISTED: u64 = 1000;

#[monitored_job(slug = "outage-tick", schedule = "* * * * *", checkin_margin = "5m")]
fn tick(round: u64) -> std::io::Result<u64> {
    Ok((0..1_000u64).fold(round, |acc, x| acc.wrapping_mul(31).wrapping_add(x)))
}

/// Per-call latencies of one phase, in microseconds.
#[derive(Default)]
struct Phase(Vec<u64>);

impl Phase {
    /// Runs the job every [`INTERVAL`] for `length`, timing each call.
    fn run(length: Duration, next_round: &mut u64) -> Phase {
        let mut samples = Vec::new();
        let end = Instant::now() + length;
        let mut next = Instant::now();
        while Instant::now() < end {
            let started = Instant::now();
            std::hint::black_box(tick(*next_round)).expect("the job succeeds");
            samples.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
            *next_round += 1;
            next += INTERVAL;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        samples.sort_unstable();
        Phase(samples)
    }

    fn percentile(&self, p: usize) -> u64 {
        let rank = (self.0.len() * p).div_ceil(100).max(1);
        self.0[rank - 1]
    }

    fn report(&self, name: &str) -> String {
        format!(
            "{name}: {} runs, p50 {} µs, p99 {} µs, max {} µs",
            self.0.len(),
            self.percentile(50),
            self.percentile(99),
            self.0.last().unwrap()
        )
    }
}

fn outage_secs() -> u64 {
    std::env::var("WATCHPOST_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// The SDK's guarantee through an outage: each check-in delivered or counted as dropped.
fn assert_delivered_or_dropped(stats: &Stats, produced: u64) {
    assert_eq!(
        (stats.failed, stats.rate_limited),
        (0, 0),
        "an outage fails nothing: {stats:?}"
    );
    assert_eq!(
        stats.sent + stats.dropped,
        produced,
        "every check-in delivered or counted as dropped: {stats:?}"
    );
}

#[test]
fn app_outlives_a_collector_outage() {
    let outage = Duration::from_secs(outage_secs());
    // Keep every run (the default keeps the newest 100 per monitor). The job runs every 50 ms,
    // 2,400 check-ins a minute on one monitor: far over the default per-monitor rate (120 a
    // minute), which this test does not measure.
    let mut collector = Collector::start(Some(
        "[retention]\ncheckins_per_monitor = 100000\n[limits]\nmonitor_checkins_per_minute = 6000\n",
    ));
    let slug = "outage-tick";

    // 1. The default queue: what fits is delivered, what does not is counted.
    let guard = watchpost::init(ClientOptions {
        dsn: Some(collector.dsn.clone()),
        ..ClientOptions::default()
    });
    let mut rounds = 0;
    let before = Phase::run(CALM, &mut rounds);
    collector.kill();
    let during = Phase::run(outage, &mut rounds);
    collector.restart_on_same_port();
    let after = Phase::run(CALM, &mut rounds);
    assert!(
        guard.flush(Duration::from_secs(30)),
        "the SDK flushes after the restart"
    );
    let stats = watchpost::stats();
    drop(guard);

    let produced = rounds * 2; // in_progress + ok per run
    println!("outage {outage:?}, default queue:");
    for (name, phase) in [("before", &before), ("during", &during), ("after", &after)] {
        println!("  {}", phase.report(name));
        // The 90th percentile, not the maximum: a job that waited on the collector would wait
        // on most calls, while on a loaded machine any single call may lose its core for a
        // moment.
        assert!(
            Duration::from_micros(phase.percentile(90)) < LATENCY_BOUND,
            "{name}: a job call waited on the collector: {}",
            phase.report(name)
        );
    }
    println!(
        "  check-ins produced {produced}: sent {}, dropped {}, failed {}, rate_limited {}",
        stats.sent, stats.dropped, stats.failed, stats.rate_limited
    );
    assert_delivered_or_dropped(&stats, produced);
    // What the outage produced fits in the default queue (1024) unless the window is long.
    let outage_check_ins = during.0.len() as u64 * 2;
    if outage_check_ins < watchpost::DEFAULT_QUEUE_SIZE as u64 {
        assert_eq!(
            stats.dropped, 0,
            "everything fitted in the SDK's buffer: {stats:?}"
        );
    }
    // A run is stored if either of its two check-ins arrived; each dropped check-in can cost at
    // most one run. When the outage overfills the hold, its oldest check-ins make room for the
    // newest, so the runs after the restart are never the ones lost (docs/reliability.md,
    // "Outages"). The API lists at most the newest 1000 runs (a 60 s outage makes more).
    let visible = rounds.min(CHECKINS_LISTED);
    let stored = poll(Duration::from_secs(30), "the delivered runs", || {
        let stored = collector.checkins(slug).len() as u64;
        (stored + stats.dropped >= visible).then_some(stored)
    });
    println!("  runs {rounds}, stored {stored}");
    assert!(stored <= visible, "no run stored twice");
    if stats.dropped == 0 {
        assert_eq!(stored, visible, "every run delivered");
    }
    let latest = &collector.checkins(slug)[0];
    assert_eq!(
        latest["status"], "ok",
        "the last run after the restart: {latest}"
    );

    // 2. A tiny queue during the outage: what does not fit in the SDK's buffer (a hold of 4)
    // is dropped and counted; the rest is delivered after the restart.
    collector.kill();
    let guard = watchpost::init(ClientOptions {
        dsn: Some(collector.dsn.clone()),
        queue_size: 4,
        ..ClientOptions::default()
    });
    let mut small_rounds = 0;
    let small = Phase::run(Duration::from_secs(3), &mut small_rounds);
    collector.restart_on_same_port();
    let tail = Phase::run(Duration::from_secs(1), &mut small_rounds);
    assert!(
        guard.flush(Duration::from_secs(30)),
        "the SDK flushes after the restart"
    );
    let stats = watchpost::stats();
    drop(guard);
    let produced = small_rounds * 2;
    println!("queue_size 4, collector down for 3 s:");
    println!("  {}\n  {}", small.report("during"), tail.report("after"));
    println!(
        "  check-ins produced {produced}: sent {}, dropped {}, failed {}, rate_limited {}",
        stats.sent, stats.dropped, stats.failed, stats.rate_limited
    );
    assert!(
        stats.dropped > 0,
        "a full queue drops and counts: {stats:?}"
    );
    assert_delivered_or_dropped(&stats, produced);
}
