//! What the `tracing` layer and the `log` logger cost an event below their breadcrumb level
//! (issue 20: ≤ 5 ns per filtered-out event), with the SDK enabled (a DSN to a closed loopback
//! port; nothing is sent, since nothing passes the filter):
//!
//! - `tracing/registry_only` and `tracing/filtered_out`: the same `tracing::debug!` with a bare
//!   `tracing_subscriber` registry as the thread's subscriber, then with
//!   `watchpost::tracing::layer()` on it (breadcrumbs from `INFO`); the difference is the
//!   layer's cost;
//! - `log/filtered_out`: `log::debug!` with `watchpost::log::logger()` installed (breadcrumbs
//!   from `Info`), which `log`'s own max-level check drops.
//!
//! Run: `cargo bench -p watchpost --features tracing,log --bench filtered_out`; figures in
//! `benches/README.md`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing_subscriber::prelude::*;

fn filtered_out(c: &mut Criterion) {
    let _guard = watchpost::init(watchpost::ClientOptions {
        dsn: Some("http://0123456789abcdef0123456789abcdef@127.0.0.1:9/1".to_owned()),
        ..Default::default()
    });
    assert!(watchpost::is_enabled());
    let mut group = c.benchmark_group("filtered_out");
    {
        let _registry = tracing::subscriber::set_default(tracing_subscriber::registry());
        group.bench_function("tracing/registry_only", |b| {
            b.iter(|| tracing::debug!(n = black_box(1_u64), "filtered out"))
        });
    }
    {
        let subscriber = tracing_subscriber::registry().with(watchpost::tracing::layer());
        let _layered = tracing::subscriber::set_default(subscriber);
        group.bench_function("tracing/filtered_out", |b| {
            b.iter(|| tracing::debug!(n = black_box(1_u64), "filtered out"))
        });
    }
    watchpost::log::logger()
        .init()
        .expect("the bench installs the only logger");
    group.bench_function("log/filtered_out", |b| {
        b.iter(|| log::debug!("filtered out {}", black_box(1_u64)))
    });
    group.finish();
}

criterion_group!(benches, filtered_out);
criterion_main!(benches);
