//! The sweep as the collector runs it: 1,000 monitors overdue in a sled store of 100,000, swept
//! through the `Processor` — load each state, run `sweep_missed`, open its incident, commit the
//! `missed` check-in, the monitor and the incident, re-index, and wait until durable (one
//! fsync for the batch). `engine.rs` measures the pure part against an index of 1,000,000; the
//! store part costs per *due* monitor (sled lookups are B-tree lookups), which is what this
//! bench shows. A second bench times the deadline index rebuilt from that store at startup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use watchpost_collector::alert::Planner;
use watchpost_collector::config::Retention;
use watchpost_collector::deadlines::Deadlines;
use watchpost_collector::processor::Processor;
use watchpost_collector::store::{Store, WriteSet};
use watchpost_engine::{
    Deadline, DeadlineKind, MonitorConfig, MonitorEnv, MonitorKey, Schedule, deadlines_of,
};

const MONITORS: u64 = 100_000;
const DUE: u64 = 1_000;

fn now() -> DateTime<Utc> {
    "2026-03-29T00:30:00Z".parse().unwrap()
}

fn monitor(n: u64, due: bool) -> MonitorEnv {
    let key = MonitorKey {
        project: 1,
        slug: format!("job-{n}"),
        environment: "production".into(),
    };
    let mut config = MonitorConfig::new(Schedule::crontab("0 * * * *").unwrap());
    config.timezone = "Europe/Berlin".into();
    let mut monitor = MonitorEnv::new(key, config);
    let expected = if due {
        now() - TimeDelta::minutes(30)
    } else {
        now() + TimeDelta::seconds((n % 86_400) as i64 + 1)
    };
    monitor.last_checkin = Some(expected - TimeDelta::hours(1));
    monitor.next_checkin = Some(expected);
    monitor.next_checkin_latest = Some(expected + TimeDelta::minutes(1));
    monitor
}

fn sweep(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let flusher = {
        let store = store.clone();
        runtime.spawn(async move {
            store
                .run_flusher(async {
                    let _ = stopped.await;
                })
                .await;
        })
    };

    let is_due = |n: u64| n.is_multiple_of(MONITORS / DUE);
    let due_monitors: Vec<MonitorEnv> = (0..MONITORS)
        .filter(|&n| is_due(n))
        .map(|n| monitor(n, true))
        .collect();
    for chunk in (0..MONITORS).collect::<Vec<_>>().chunks(1_000) {
        let set = WriteSet {
            monitors: chunk.iter().map(|&n| monitor(n, is_due(n))).collect(),
            ..WriteSet::default()
        };
        store.commit(&set, now()).unwrap();
    }
    store.flush_blocking().unwrap();
    let deadlines = Arc::new(Deadlines::load(&store).unwrap());
    assert_eq!(deadlines.len() as u64, MONITORS);
    let planner = Arc::new(Planner::default_rule());
    let processor = Processor::new(
        store.clone(),
        Arc::clone(&deadlines),
        Retention::default(),
        planner,
    );
    let due: Vec<Deadline> = due_monitors.iter().flat_map(deadlines_of).collect();
    assert!(due.iter().all(|d| d.kind == DeadlineKind::Missed));

    c.bench_function("sweep/store_1000_due_of_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let report = runtime
                    .block_on(processor.sweep(due.clone(), now()))
                    .unwrap();
                total += start.elapsed();
                assert_eq!(report.missed, DUE);
                // Make them overdue again, untimed.
                let set = WriteSet {
                    monitors: due_monitors.clone(),
                    ..WriteSet::default()
                };
                store.commit(&set, now()).unwrap();
                for monitor in &due_monitors {
                    deadlines.upsert_for(monitor);
                }
            }
            total
        })
    });
    // What a restart adds: the deadline index rebuilt from the 100,000 stored monitors.
    c.bench_function("startup/deadline_index_of_100k", |b| {
        b.iter(|| {
            let loaded = Deadlines::load(&store).unwrap();
            assert_eq!(loaded.len() as u64, MONITORS);
        })
    });
    let _ = stop.send(());
    runtime.block_on(flusher).unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(20));
    targets = sweep
}
criterion_main!(benches);
