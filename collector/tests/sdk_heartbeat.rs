//! The SDK's worker heartbeat against the real collector: a wedged loop and a panicking
//! worker, as the collector (started by the test) sees them.
//!
//! Heartbeats every second with a one-second margin (the collector's unit), so the whole file
//! runs in a few seconds.

mod support;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Collector, poll};

const EVERY: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_secs(1);

/// The SDK's client is global: one test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

fn init(collector: &Collector) -> watchpost::ClientGuard {
    watchpost::init(watchpost::ClientOptions {
        dsn: Some(collector.dsn.clone()),
        ..Default::default()
    })
}

fn statuses(collector: &Collector, slug: &str) -> Vec<String> {
    let checkins = collector.checkins(slug);
    let status = |c: &Value| c["status"].as_str().unwrap_or_default().to_owned();
    checkins.iter().map(status).collect()
}

/// Waits until the collector has recorded `n` `ok` check-ins of `slug`.
fn wait_for_oks(collector: &Collector, slug: &str, n: usize) {
    poll(Duration::from_secs(10), "heartbeats to arrive", || {
        let oks = statuses(collector, slug)
            .iter()
            .filter(|s| *s == "ok")
            .count();
        (oks >= n).then_some(())
    });
}

#[test]
fn a_wedged_worker_loop_is_marked_missed_within_interval_plus_margin_plus_a_second() {
    let _serial = serial();
    let collector = Collector::start(None);
    let _guard = init(&collector);
    let wedged = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let worker = {
        let (wedged, done) = (Arc::clone(&wedged), Arc::clone(&done));
        thread::spawn(move || {
            let heartbeat = watchpost::heartbeat("sqs-worker", EVERY)
                .checkin_margin(MARGIN)
                .stall_after(Duration::from_millis(300));
            // The loop: beats while it makes progress; once wedged it holds the guard (the
            // process and the heartbeat thread live on) but never beats again.
            while !done.load(Relaxed) {
                if !wedged.load(Relaxed) {
                    heartbeat.beat();
                }
                thread::sleep(Duration::from_millis(20));
            }
            drop(heartbeat);
        })
    };
    wait_for_oks(&collector, "sqs-worker", 3);
    let monitor = collector.monitor("sqs-worker").pop().expect("the monitor");
    assert_eq!(monitor["status"], "ok", "{monitor}");

    wedged.store(true, Relaxed);
    let wedged_at = Instant::now();
    let bound = EVERY + MARGIN + Duration::from_secs(1);
    let monitor = poll(bound * 2, "the monitor to be missed", || {
        let monitor = collector.monitor("sqs-worker").pop()?;
        (monitor["status"] == "error").then_some(monitor)
    });
    let took = wedged_at.elapsed();
    assert!(took <= bound, "missed after {took:?}, more than {bound:?}");
    assert_eq!(monitor["open_incident"]["reason"], "missed_checkin");
    assert_eq!(statuses(&collector, "sqs-worker")[0], "missed");

    done.store(true, Relaxed);
    worker.join().expect("the worker ends");
}

#[test]
fn a_panicking_worker_reports_error_at_once() {
    let _serial = serial();
    let collector = Collector::start(None);
    let _guard = init(&collector);
    let worker = thread::spawn(|| {
        let heartbeat = watchpost::heartbeat("panicky-worker", EVERY).checkin_margin(MARGIN);
        for round in 0.. {
            heartbeat.beat();
            if round == 5 {
                panic!("poisoned message");
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    assert!(worker.join().is_err(), "the worker panicked");
    let panicked_at = Instant::now();
    let statuses = poll(Duration::from_secs(5), "the error check-in", || {
        let statuses = statuses(&collector, "panicky-worker");
        statuses.contains(&"error".to_owned()).then_some(statuses)
    });
    // `error` is sent from the unwinding guard, not found later by a deadline.
    assert!(panicked_at.elapsed() < EVERY + MARGIN, "{statuses:?}");
    assert_eq!(statuses[0], "error", "newest first: {statuses:?}");
    assert!(statuses[1..].iter().all(|s| s == "ok"), "{statuses:?}");
}

#[test]
fn a_dropped_heartbeat_stops_and_the_monitor_is_missed() {
    let _serial = serial();
    let collector = Collector::start(None);
    let _guard = init(&collector);
    let heartbeat = watchpost::heartbeat("finished-worker", EVERY).checkin_margin(MARGIN);
    heartbeat.beat();
    wait_for_oks(&collector, "finished-worker", 2);
    drop(heartbeat);
    let dropped_at = Instant::now();
    poll(Duration::from_secs(6), "the monitor to be missed", || {
        let monitor = collector.monitor("finished-worker").pop()?;
        (monitor["status"] == "error").then_some(())
    });
    assert!(dropped_at.elapsed() <= EVERY + MARGIN + Duration::from_secs(1));
    assert_eq!(statuses(&collector, "finished-worker")[0], "missed");
}
