//! What `#[monitored_job]` costs the caller's thread, in one run:
//!
//! - `plain`: an empty function, unannotated (the floor);
//! - `monitored/disabled`: the same function with `#[monitored_job]` and no DSN;
//! - `monitored/enabled`: with a DSN pointing at a loopback sink that answers `200` to
//!   everything: `in_progress` + `ok` with the duration, queued for the transport thread, which
//!   batches and sends them on the other core;
//! - `sentry/by_hand`: the same two check-ins (`in_progress`, then `ok` with the duration and the
//!   same id) written by hand with the `sentry` crate, as its docs suggest (`MonitorCheckIn` into
//!   an `Envelope`, `client.send_envelope`), through a transport that discards envelopes. Sentry's
//!   real transport would add a channel send per envelope, so this favours sentry slightly;
//! - `clock/std_instant` and `clock/quanta`: the two reads a run's duration needs (a start,
//!   then the time elapsed since it), with `std::time::Instant` (what the SDK read before) and
//!   with the `quanta` clock `sdk/src/clock.rs` reads now.
//!
//! Built without the SDK's `tracing` feature, as an app without it is: with it, every run also
//! enters a `watchpost.job` span. What the `tracing` layer and the `log` logger cost an event
//! they drop is `sdk/benches/filtered_out.rs`.
//!
//! The enabled case is timed in chunks smaller than the queue, flushing between chunks outside the
//! timed region, so every measured call takes the "queued" path and none the cheaper "queue full,
//! dropped" one. Run: `cargo bench -p watchpost-benches --bench hot_path`; figures in
//! `benches/README.md`.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use watchpost::monitored_job;

/// Queue capacity for the enabled case; chunks stay well below it.
const QUEUE_SIZE: usize = 1 << 16;
const CHUNK: u64 = (QUEUE_SIZE / 4) as u64;

#[inline(never)]
fn plain() -> u64 {
    black_box(1)
}

#[monitored_job(slug = "bench-job", schedule = "*/5 * * * *", max_runtime = "10m")]
#[inline(never)]
fn monitored() -> u64 {
    black_box(1)
}

/// The two check-ins of one run, by hand with the `sentry` crate.
#[inline(never)]
fn sentry_by_hand() -> u64 {
    use sentry::protocol::{MonitorCheckIn, MonitorCheckInStatus};

    fn send(check_in: MonitorCheckIn) {
        if let Some(client) = sentry::Hub::current().client() {
            client.send_envelope(check_in.into());
        }
    }

    let id = sentry::types::Uuid::new_v4();
    let start = Instant::now();
    send(MonitorCheckIn {
        check_in_id: id,
        monitor_slug: "bench-job".to_owned(),
        status: MonitorCheckInStatus::InProgress,
        environment: Some("production".to_owned()),
        duration: None,
        monitor_config: None,
    });
    let ret = black_box(1);
    send(MonitorCheckIn {
        check_in_id: id,
        monitor_slug: "bench-job".to_owned(),
        status: MonitorCheckInStatus::Ok,
        environment: Some("production".to_owned()),
        duration: Some(start.elapsed().as_secs_f64()),
        monitor_config: None,
    });
    ret
}

struct Discard;

impl sentry::Transport for Discard {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        black_box(envelope);
    }
}

/// A loopback HTTP/1.1 server answering `200` to every request, with keep-alive.
fn start_sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    format!("http://0123456789abcdef0123456789abcdef@{addr}/1")
}

fn serve(stream: TcpStream) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err()
            || writer
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .is_err()
        {
            return;
        }
    }
}

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("plain", |b| b.iter(plain));
    group.bench_function("clock/std_instant", |b| {
        b.iter(|| black_box(Instant::now()).elapsed())
    });
    let clock = quanta::Clock::new();
    group.bench_function("clock/quanta", |b| {
        b.iter(|| {
            let start = black_box(clock.raw());
            clock.delta(start, clock.raw())
        })
    });

    let disabled = watchpost::init(watchpost::ClientOptions::default());
    assert!(!watchpost::is_enabled());
    group.bench_function("monitored/disabled", |b| b.iter(monitored));
    drop(disabled);

    let guard = watchpost::init(watchpost::ClientOptions {
        dsn: Some(start_sink()),
        queue_size: QUEUE_SIZE,
        ..Default::default()
    });
    assert!(watchpost::is_enabled());
    group.bench_function("monitored/enabled", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let start = Instant::now();
                for _ in 0..n {
                    black_box(monitored());
                }
                timed += start.elapsed();
                left -= n;
                assert!(
                    watchpost::flush(Duration::from_secs(60)),
                    "the sink keeps up"
                );
            }
            timed
        })
    });
    let stats = watchpost::stats();
    eprintln!(
        "watchpost stats after monitored/enabled: queued {}, sent {}, dropped {}, failed {}",
        stats.queued, stats.sent, stats.dropped, stats.failed
    );
    drop(guard);

    let factory = |_: &sentry::ClientOptions| Arc::new(Discard) as Arc<dyn sentry::Transport>;
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(
        "http://0123456789abcdef0123456789abcdef@127.0.0.1:9/1"
            .parse()
            .unwrap(),
    );
    options.transport = Some(Arc::new(factory));
    let _sentry = sentry::init(options);
    group.bench_function("sentry/by_hand", |b| b.iter(sentry_by_hand));
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
