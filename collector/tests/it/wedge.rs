//! Never wedged, never silently (issue 14): the collector out of file descriptors, slow or
//! idle clients holding connections, and bodies that never arrive. Each must end in an answer
//! (a `4xx`/`503` a person can act on, a closed connection, a `/healthz` that is not `ok`),
//! never in a hang; and SIGTERM must always end the process within its bound.
//!
//! Run with `--nocapture` to see the figures each test measures.

use crate::support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Collector, checkin, envelope, interval, poll, sentry_auth};

/// `127.0.0.1:PORT` of `collector`.
fn addr(collector: &Collector) -> String {
    collector
        .base
        .strip_prefix("http://")
        .expect("an http base")
        .to_owned()
}

/// Creates monitor `slug` (a daily interval) with an `ok` check-in.
fn create_monitor(collector: &Collector, slug: &str) {
    let create = envelope(&[(
        "check_in",
        &checkin(slug, "ok", None, Some(interval(1, "day"))),
    )]);
    let (status, body) = collector.post_envelope(create);
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Whether the server closes `stream` (end of file or reset) by `deadline`; whatever it sends
/// first (a `408`, say) is read and discarded.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Everything `stream` receives until the server closes it or `within` passes.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Open descriptors of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Files in sled's blob directory: sled writes each value over 64 KiB (an eighth of its
/// 512 KiB segment) to a new file of its own there.
fn blob_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("data/db/blobs")).map_or(0, Iterator::count)
}

/// Opens idle connections to `collector` until opening one fails (its accept backlog is
/// full), at most `most`; how many were opened, and how long that took.
fn hold_connections(collector: &Collector, most: usize) -> (Vec<TcpStream>, (usize, Duration)) {
    let target = addr(collector).parse().expect("a socket address");
    let opening = Instant::now();
    let held: Vec<TcpStream> = (0..most)
        .map_while(|_| TcpStream::connect_timeout(&target, Duration::from_secs(2)).ok())
        .collect();
    let opened = (held.len(), opening.elapsed());
    // Time for the collector to accept what it will.
    std::thread::sleep(Duration::from_millis(500));
    (held, opened)
}

/// An error event of about 130 KB, as a Python SDK would send one with a large `extra`.
fn large_event() -> String {
    json!({
        "event_id": "9f6c1b2a3d4e4f5a8b7c6d5e4f3a2b1c",
        "timestamp": chrono::Utc::now().timestamp(),
        "platform": "python",
        "level": "error",
        "message": "report generation failed",
        "extra": {"report": "x".repeat(130_000)}
    })
    .to_string()
}

/// What this proves. On main, with 1,010 idle connections holding the process's 1,024
/// descriptors, a ~130 KB event (which sled stores in a new blob file) made sled fail to open
/// that file and every later write hang, while `/healthz` said `ok`.
///
/// Here the collector may open only 256 files (soft and hard limit, so raising the soft
/// limit cannot help) and the test opens idle connections until opening one fails, at most
/// 400, more than the collector may open files. With
/// the connection cap, the collector serves at most 128 of them at once and leaves the rest
/// in the accept backlog, and the header timeout closes idle ones, so:
/// - it never runs out of descriptors (the peak stays below the limit, no accept fails),
/// - the large event sent during the attack is stored (sled did open a new blob file),
/// - after the connections are released, within 30 s writes work or `/healthz` is not `ok`
///   (the criterion: never wedged *silently*; with the cap it is the former),
/// - SIGTERM ends it within 10 s.
///
/// Without the cap and timeouts the idle connections are never closed and take every
/// descriptor: the event is not answered and the test fails.
#[test]
fn out_of_descriptors_the_collector_stays_writable_or_says_so() {
    const NOFILE: u64 = 256;
    const HELD: usize = 400;
    let collector =
        Collector::start_with_nofile(Some("[server]\nheader_timeout = \"3s\"\n"), NOFILE);
    create_monitor(&collector, "backup");
    let pid = collector.pid();
    let blobs_before = blob_files(collector.data_dir());

    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while stopped.recv_timeout(Duration::from_millis(10)).is_err() {
            peak = peak.max(open_files(pid));
        }
        peak
    });
    let (held, opened) = hold_connections(&collector, HELD);

    let started = Instant::now();
    let event = large_event();
    let (status, body) = collector.post_envelope(envelope(&[("event", &event)]));
    let event_latency = started.elapsed();
    assert_eq!(
        status,
        StatusCode::OK,
        "the event sent during the attack ({opened:?} connections opened): {body}\n{}",
        collector.stderr()
    );
    assert!(
        blob_files(collector.data_dir()) > blobs_before,
        "the event did not make sled open a new file, so this test tested nothing"
    );

    drop(held);
    let released = Instant::now();
    let key = collector.key.clone();
    let verdict = poll(
        Duration::from_secs(30),
        "writes to work or /healthz to say so",
        || {
            let ping = collector
                .request(Method::GET, &format!("/ping/{key}/backup"))
                .send()
                .ok()?;
            if ping.status() == StatusCode::OK {
                return Some("writes work");
            }
            let health = collector.request(Method::GET, "/healthz").send().ok()?;
            (health.status() != StatusCode::OK).then_some("/healthz is not ok")
        },
    );
    let recovered = released.elapsed();
    stop.send(()).expect("sampler running");
    let peak = sampler.join().expect("sampler");
    assert_eq!(
        verdict, "writes work",
        "with the cap the store never wedges"
    );
    assert!(
        peak < NOFILE as usize,
        "peak of {peak} open files: the collector ran out of descriptors"
    );
    assert!(
        !collector.stderr().contains("cannot accept connections"),
        "an accept failed:\n{}",
        collector.stderr()
    );

    let mut collector = collector;
    let terminating = Instant::now();
    let exit = collector.terminate();
    let shutdown = terminating.elapsed();
    assert!(
        shutdown < Duration::from_secs(10),
        "SIGTERM took {shutdown:?}"
    );
    assert!(exit.success(), "{exit}");
    eprintln!(
        "nofile {NOFILE}, {} idle connections held (opened in {:?}): event answered in {event_latency:?}, \
         peak {peak} open files, {verdict} {recovered:?} after release, SIGTERM took {shutdown:?}",
        opened.0, opened.1
    );
}

/// 500 connections that send part of a request head and stall, and 100 that send nothing,
/// are all closed by the header timeout (2 s here) well within a minute, and a ping sent while
/// they are open is acknowledged. Without the timeout they stay open for good.
#[test]
fn slow_header_and_idle_connections_are_closed_while_pings_go_through() {
    const SLOW: usize = 500;
    const IDLE: usize = 100;
    let collector = Collector::start(Some("[server]\nheader_timeout = \"2s\"\n"));
    create_monitor(&collector, "backup");
    let target = addr(&collector);

    let attack = Instant::now();
    let mut open: Vec<TcpStream> = (0..SLOW + IDLE)
        .map(|n| {
            let mut stream = TcpStream::connect(&target).expect("connect");
            if n < SLOW {
                stream
                    .write_all(b"POST /api/1/envelope/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    .expect("send a partial head");
            }
            stream
        })
        .collect();

    let pinged = Instant::now();
    let response = collector
        .request(Method::GET, &format!("/ping/{}/backup", collector.key))
        .send()
        .expect("ping");
    let ping_latency = pinged.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        collector.checkins("backup").len(),
        2,
        "the ping was recorded"
    );

    let deadline = attack + Duration::from_secs(60);
    let still_open = open
        .iter_mut()
        .filter_map(|stream| (!closed_by(stream, deadline)).then_some(()))
        .count();
    let all_closed = attack.elapsed();
    assert_eq!(still_open, 0, "connections still open after a minute");
    eprintln!(
        "{SLOW} slow-header + {IDLE} idle connections: ping acknowledged in {ping_latency:?}, \
         all closed {all_closed:?} after the attack began"
    );
}

/// A request whose body does not arrive within `server.body_timeout` is answered `408` with
/// a sentence, and its connection closed.
#[test]
fn a_body_that_does_not_arrive_in_time_is_a_408() {
    let collector = Collector::start(Some("[server]\nbody_timeout = \"1s\"\n"));
    let mut stream = TcpStream::connect(addr(&collector)).expect("connect");
    let head = format!(
        "POST /api/1/envelope/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Sentry-Auth: {}\r\n\
         Content-Length: 1000\r\n\r\n{{}}\n",
        sentry_auth(&collector.key)
    );
    let sent = Instant::now();
    stream.write_all(head.as_bytes()).expect("send head");
    let response = read_until_closed(&mut stream, Duration::from_secs(10));
    let answered = sent.elapsed();
    assert!(
        response.starts_with("HTTP/1.1 408"),
        "after {answered:?}: {response}"
    );
    assert!(response.contains("did not arrive within 1 s"), "{response}");
    assert!(
        answered < Duration::from_secs(5),
        "answered after {answered:?}"
    );
    eprintln!("a stalled body answered 408 after {answered:?}");
}

/// What this proves: should the collector run out of descriptors all the same (here the
/// connection cap is lifted with `server.max_connections`, as the defaults never would), it
/// is never wedged *silently*. The large event then makes sled fail to open its blob file, as
/// on main, and sled's flush thread stays stuck after the connections are released. Every
/// write is still answered, with a `503 ... retry later` within the store's 5 s + 5 s bounds,
/// never a hang; within 30 s writes work or `/healthz` is not `ok` (so the `[watchdog]` stops
/// vouching for the collector and an orchestrator restarts it); and SIGTERM ends the process
/// within 10 s, saying, if the final flush is what is stuck, that nothing acknowledged is lost.
///
/// Without the deadlines the ping hangs and `/healthz` says `ok`; without the shutdown bound
/// SIGTERM waits for the stuck flush for good.
#[test]
fn when_descriptors_run_out_anyway_the_collector_says_so_and_still_stops() {
    const NOFILE: u64 = 256;
    const REQUEST_BOUND: Duration = Duration::from_secs(12);
    let mut collector = Collector::start_with_nofile(
        // Idle connections kept until the test lets them go.
        Some("[server]\nheader_timeout = \"10m\"\nmax_connections = 4096\n"),
        NOFILE,
    );
    create_monitor(&collector, "backup");
    let (held, opened) = hold_connections(&collector, 400);

    let started = Instant::now();
    let event = large_event();
    let (status, body) = collector.post_envelope(envelope(&[("event", &event)]));
    let event_latency = started.elapsed();
    assert!(
        status == StatusCode::OK
            || (status == StatusCode::SERVICE_UNAVAILABLE
                && body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("retry later"))),
        "{status} {body}"
    );
    assert!(
        event_latency < REQUEST_BOUND,
        "answered after {event_latency:?}"
    );

    drop(held);
    let released = Instant::now();
    let key = collector.key.clone();
    let mut slowest = Duration::ZERO;
    let verdict = poll(
        Duration::from_secs(30),
        "writes to work or /healthz to say so",
        || {
            let pinged = Instant::now();
            let ping = collector
                .request(Method::GET, &format!("/ping/{key}/backup"))
                .send()
                .expect("a ping is answered, not left hanging");
            slowest = slowest.max(pinged.elapsed());
            let status = ping.status();
            let text = ping.text().unwrap_or_default();
            if status == StatusCode::OK {
                return Some(("writes work".to_owned(), text));
            }
            assert!(
                status == StatusCode::SERVICE_UNAVAILABLE && text.contains("retry later"),
                "{status} {text}"
            );
            let health = collector.request(Method::GET, "/healthz").send().ok()?;
            (health.status() != StatusCode::OK).then(|| {
                (
                    "/healthz is not ok".to_owned(),
                    health.text().unwrap_or_default(),
                )
            })
        },
    );
    let said_so = released.elapsed();
    assert!(slowest < REQUEST_BOUND, "a ping took {slowest:?}");

    let terminating = Instant::now();
    let exit = collector.terminate();
    let shutdown = terminating.elapsed();
    assert!(
        shutdown < Duration::from_secs(10),
        "SIGTERM took {shutdown:?}"
    );
    if !exit.success() {
        assert!(
            collector.stderr().contains("Nothing acknowledged is lost"),
            "{exit} without saying why:\n{}",
            collector.stderr()
        );
    }
    eprintln!(
        "nofile {NOFILE}, no cap, {} idle connections held (opened in {:?}): event {status} \
         in {event_latency:?}; {} {said_so:?} after release ({}); slowest ping {slowest:?}; \
         SIGTERM took {shutdown:?}, {exit}",
        opened.0, opened.1, verdict.0, verdict.1
    );
}

/// A request head over 32 KiB is refused with `431` rather than buffered (on main, 1,000
/// half-sent 380 KB heads pinned 410 MB); one just under it is served.
#[test]
fn a_request_head_over_32_kib_is_refused() {
    let collector = Collector::start(None);
    let head = |filler: usize| {
        let mut stream = TcpStream::connect(addr(&collector)).expect("connect");
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(filler)
        );
        // The server may close before reading all of an oversized head.
        let _ = stream.write_all(request.as_bytes());
        read_until_closed(&mut stream, Duration::from_secs(10))
    };
    let refused = head(40 * 1024);
    assert!(refused.starts_with("HTTP/1.1 431"), "{refused}");
    let served = head(24 * 1024);
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}
