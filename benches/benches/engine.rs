//! Benchmarks of the pure engine: check-in processing throughput, schedule math, and the sweep
//! over a deadline index of 1,000,000 monitors of which 1,000 are due (target ≤ 50 ms).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use uuid::Uuid;
use watchpost_engine::{
    CheckInInput, CheckInStatus, ConfigPatch, Deadline, DeadlineIndex, DeadlineKind, MonitorConfig,
    MonitorEnv, MonitorKey, Outages, Schedule, process_checkin, sweep_missed,
};

const MONITORS: u64 = 1_000_000;
const DUE: u64 = 1_000;

fn now() -> DateTime<Utc> {
    "2026-03-29T00:30:00Z".parse().unwrap()
}

fn key(n: u64) -> MonitorKey {
    MonitorKey {
        project: 1,
        slug: format!("job-{n}"),
        environment: "production".into(),
    }
}

/// An hourly monitor in Berlin that has checked in once.
fn checked_in_monitor(n: u64) -> MonitorEnv {
    let mut config = MonitorConfig::new(Schedule::crontab("0 * * * *").unwrap());
    config.timezone = "Europe/Berlin".into();
    let monitor = MonitorEnv::new(key(n), config);
    let input = input(n, None, CheckInStatus::Ok);
    process_checkin(Some(monitor), None, input, now() - TimeDelta::hours(3))
        .unwrap()
        .monitor
}

fn input(n: u64, id: Option<Uuid>, status: CheckInStatus) -> CheckInInput {
    CheckInInput {
        key: key(n),
        id,
        status,
        duration: Some(1.5),
        config: None,
        log: None,
    }
}

fn checkins(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_checkin");
    let monitor = checked_in_monitor(0);

    let ok = input(0, None, CheckInStatus::Ok);
    group.bench_function("closing_only_ok", |b| {
        b.iter(|| process_checkin(Some(monitor.clone()), None, ok.clone(), black_box(now())))
    });

    let run = Some(Uuid::from_u128(7));
    let started = process_checkin(
        Some(monitor.clone()),
        None,
        input(0, run, CheckInStatus::InProgress),
        now(),
    )
    .unwrap();
    let finish = input(0, run, CheckInStatus::Ok);
    group.bench_function("finish_open_run", |b| {
        b.iter(|| {
            process_checkin(
                Some(started.monitor.clone()),
                Some(started.checkin.clone()),
                finish.clone(),
                black_box(now() + TimeDelta::minutes(5)),
            )
        })
    });

    // SDKs send their monitor_config with every check-in; an unchanged upsert is the common case.
    let wire: watchpost_protocol::MonitorConfig = serde_json::from_value(serde_json::json!({
        "schedule": {"type": "crontab", "value": "0 * * * *"}, "timezone": "Europe/Berlin"
    }))
    .unwrap();
    group.bench_function("ok_with_unchanged_upsert", |b| {
        b.iter(|| {
            let mut upsert = ok.clone();
            upsert.config = Some(ConfigPatch::from_protocol(black_box(&wire)).unwrap());
            process_checkin(Some(monitor.clone()), None, upsert, now())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("schedule");
    let tz = monitor.config.tz();
    let daily = Schedule::crontab("30 2 * * *").unwrap();
    group.bench_function("next_after_daily", |b| {
        b.iter(|| daily.next_after(tz, black_box(now() - TimeDelta::days(60))))
    });
    // 02:30 falls in the spring-forward gap, which the evaluation steps through by the minute.
    group.bench_function("next_after_daily_on_dst_day", |b| {
        b.iter(|| daily.next_after(tz, black_box(now())))
    });
    let hourly = Schedule::crontab("@hourly").unwrap();
    group.bench_function("next_after_hourly", |b| {
        b.iter(|| hourly.next_after(tz, black_box(now())))
    });
    group.finish();
}

/// The sweeper's work when it wakes: pop the due deadlines of a 1M-monitor index, run
/// `sweep_missed` on each, and put each monitor's new deadlines back.
fn sweep(c: &mut Criterion) {
    let template = checked_in_monitor(0);
    let now = now();
    let mut index = DeadlineIndex::new();
    let mut due_monitors: HashMap<MonitorKey, MonitorEnv> = HashMap::new();
    for n in 0..MONITORS {
        let key = key(n);
        // Every 1000th monitor is due; the rest are spread over the next day.
        if n % (MONITORS / DUE) == 0 {
            let mut monitor = MonitorEnv {
                key: key.clone(),
                ..template.clone()
            };
            monitor.next_checkin = Some(now - TimeDelta::minutes(30));
            monitor.next_checkin_latest = Some(now - TimeDelta::minutes(29));
            index.upsert_for(&monitor);
            due_monitors.insert(key, monitor);
            continue;
        }
        let at = now + TimeDelta::seconds((n % 86_400) as i64 + 1);
        index.replace(
            &key,
            vec![Deadline {
                at,
                key: key.clone(),
                kind: DeadlineKind::Missed,
            }],
        );
    }
    assert_eq!(index.len() as u64, MONITORS);

    c.bench_function("sweep/1000_due_of_1m", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let due = index.pop_due(now);
                for deadline in &due {
                    let monitor = &due_monitors[&deadline.key];
                    let transition = sweep_missed(monitor, now, &Outages::default()).expect("due");
                    index.upsert_for(&transition.monitor);
                    black_box(transition);
                }
                total += start.elapsed();
                assert_eq!(due.len() as u64, DUE);
                // Put the due deadlines back, untimed.
                for monitor in due_monitors.values() {
                    index.upsert_for(monitor);
                }
            }
            total
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = checkins, sweep
}
criterion_main!(benches);
