//! A page of the monitor list and the `/metrics` text at 100,000 monitor environments (issue 15):
//! both must cost what one page or one scrape holds, not what the store holds.
//!
//! - `pages/monitors_page_deep_of_100k`: 100 monitors read from a cursor in the middle of the
//!   store (`Store::monitors_page`, a sled range scan from the cursor) and encoded as the API's
//!   JSON array.
//! - `pages/metrics_render_of_100k`: the monitor gauges from the store's counters
//!   (`Store::monitor_counts`) and the exposition text rendered.
//! - `pages/status_scan_of_100k`: what `/metrics` did before, for comparison: every monitor
//!   record read and decoded to count them by status.
//! - `pages/incidents_page_deep_of_100k`: 50 incidents from a cursor half way through 100,000
//!   (`Store::incidents_page`, a range scan of the `incident_times` index).
//! - `pages/open_incidents_first_page_of_100k`: the 10 open incidents among 100,000 (the
//!   overview's read, from the `open_incidents` index).
//! - `pages/incidents_all_of_100k`: every incident read and sorted, what `GET
//!   /api/v1/incidents` and the overview did before, for comparison.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use watchpost_collector::api::views::MonitorView;
use watchpost_collector::metrics::{Metrics, Snapshot};
use watchpost_collector::store::{Cursor, STATUSES, Store, WriteSet};
use watchpost_engine::{
    Effect, FailureCounts, Incident, IncidentKind, IncidentReason, IntervalUnit, MonitorConfig,
    MonitorEnv, MonitorKey, MonitorStatus, Schedule,
};

const MONITORS: u64 = 100_000;
const PAGE: usize = 100;

fn now() -> DateTime<Utc> {
    "2026-12-07T12:00:00Z".parse().unwrap()
}

fn monitor(n: u64) -> MonitorEnv {
    let key = MonitorKey {
        project: 1,
        slug: format!("job-{n:06}"),
        environment: "production".into(),
    };
    let mut monitor = MonitorEnv::new(
        key,
        MonitorConfig::new(Schedule::interval(1, IntervalUnit::Day).unwrap()),
    );
    monitor.status = if n.is_multiple_of(100) {
        MonitorStatus::Error
    } else {
        MonitorStatus::Ok
    };
    monitor.last_checkin = Some(now());
    monitor
}

/// Incident `n` of monitor `n`, opened `n` seconds after the epoch of the bench; open for
/// every 10,000th, resolved otherwise.
fn incident(n: u64) -> Incident {
    let opened_at = now() - chrono::TimeDelta::seconds(MONITORS as i64 - n as i64);
    Incident {
        id: uuid::Uuid::from_u128(u128::from(n) + 1),
        key: monitor(n).key,
        kind: IncidentKind::Monitor,
        opened_at,
        resolved_at: (!n.is_multiple_of(10_000)).then_some(opened_at),
        reason: IncidentReason::MissedCheckin,
        starting_checkin: uuid::Uuid::from_u128(u128::from(n) + 1),
        starting_timestamp: opened_at,
        resolving_checkin: None,
        failures: FailureCounts::default(),
        notified: true,
        handling: Default::default(),
    }
}

fn incidents(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for chunk in (0..MONITORS).collect::<Vec<_>>().chunks(1_000) {
        let set = WriteSet {
            effects: chunk
                .iter()
                .map(|&n| Effect::IncidentResolved {
                    incident: incident(n),
                    notify: false,
                })
                .collect(),
            ..WriteSet::default()
        };
        store.commit(&set, now()).unwrap();
    }
    store.flush_blocking().unwrap();
    let mut middle = Cursor::Start;
    for _ in 0..(MONITORS as usize / 2 / 1_000) {
        middle = store
            .incidents_page(false, None, &middle, 1_000, 1_000)
            .unwrap()
            .next
            .unwrap();
    }
    group.bench_function("incidents_page_deep_of_100k", |b| {
        b.iter(|| {
            let page = store.incidents_page(false, None, &middle, 50, 50).unwrap();
            assert!(page.items.len() == 50 && page.next.is_some());
            page.items.len()
        })
    });
    group.bench_function("open_incidents_first_page_of_100k", |b| {
        b.iter(|| {
            let page = store
                .incidents_page(true, None, &Cursor::Start, 50, 50)
                .unwrap();
            assert!(page.items.len() == 10 && page.next.is_none());
            page.items.len()
        })
    });
    group.bench_function("incidents_all_of_100k", |b| {
        b.iter(|| {
            let mut all = store
                .incidents_page(false, None, &Cursor::Start, 200_000, 200_000)
                .unwrap()
                .items;
            all.sort_by(|a, b| b.opened_at.cmp(&a.opened_at).then(a.id.cmp(&b.id)));
            assert_eq!(all.len(), MONITORS as usize);
            all.len()
        })
    });
}

fn pages(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for chunk in (0..MONITORS).collect::<Vec<_>>().chunks(1_000) {
        let set = WriteSet {
            monitors: chunk.iter().map(|&n| monitor(n)).collect(),
            ..WriteSet::default()
        };
        store.commit(&set, now()).unwrap();
    }
    store.flush_blocking().unwrap();

    // The cursor of the page after the first half: where a client walking the list would be.
    let mut middle = Cursor::Start;
    for _ in 0..(MONITORS as usize / 2 / 1_000) {
        middle = store
            .monitors_page(None, &middle, 1_000, 1_000, |_| true)
            .unwrap()
            .next
            .unwrap();
    }
    let mut group = c.benchmark_group("pages");
    group.bench_function("monitors_page_deep_of_100k", |b| {
        b.iter(|| {
            let page = store
                .monitors_page(None, &middle, PAGE, PAGE, |_| true)
                .unwrap();
            let views: Vec<MonitorView<'_>> = page.items.iter().map(MonitorView::from).collect();
            let body = serde_json::to_vec(&views).unwrap();
            assert!(page.items.len() == PAGE && page.next.is_some());
            body.len()
        })
    });
    let metrics = Metrics::default();
    let render = |monitors: BTreeMap<MonitorStatus, u64>| {
        metrics.render(&Snapshot {
            monitors,
            deadlines: 0,
            store: store.stats(),
            outbox_pending: BTreeMap::new(),
        })
    };
    group.bench_function("metrics_render_of_100k", |b| {
        b.iter(|| {
            let counts = store.monitor_counts().unwrap();
            assert_eq!(counts.total(), MONITORS);
            render(STATUSES.iter().map(|s| (*s, counts.of(*s))).collect())
        })
    });
    group.sample_size(10);
    group.bench_function("status_scan_of_100k", |b| {
        b.iter(|| {
            let mut by_status = BTreeMap::new();
            let mut from = Cursor::Start;
            loop {
                let page = store
                    .monitors_page(None, &from, 10_000, 10_000, |_| true)
                    .unwrap();
                for m in &page.items {
                    *by_status.entry(m.status).or_insert(0) += 1;
                }
                match page.next {
                    Some(next) => from = next,
                    None => break,
                }
            }
            render(by_status)
        })
    });
    incidents(&mut group);
    group.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
