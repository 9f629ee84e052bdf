//! How the transport behaves when the server does not simply say `200`: rate limits (`429` +
//! `Retry-After`, `X-Sentry-Rate-Limits` per category), server errors, refusals, an outage (no
//! server, then one on the same port), a server that never answers, and batching. Against a real loopback HTTP server with scripted answers.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Recorder, Reply, serial};
use watchpost::protocol::{CheckInStatus, Level};
use watchpost::{ClientGuard, ClientOptions};

fn init_with(server: &Recorder, queue_size: usize) -> ClientGuard {
    watchpost::init(ClientOptions {
        dsn: Some(server.dsn()),
        queue_size,
        debug: true,
        ..Default::default()
    })
}

fn heartbeat(slug: &str) {
    watchpost::capture_checkin(slug, CheckInStatus::Ok, None).expect("the SDK is enabled");
}

fn slugs(requests: &[support::Request]) -> Vec<String> {
    support::check_ins(requests)
        .into_iter()
        .map(|c| c.monitor_slug)
        .collect()
}

#[test]
fn a_429_with_retry_after_defers_everything_until_it_expires() {
    let _serial = serial();
    let server = Recorder::start();
    server.script([Reply::Status(429, vec![("Retry-After", "1".into())])]);
    let guard = init_with(&server, 64);

    heartbeat("first");
    let rejected = server.wait_for(Duration::from_secs(5), |r| !r.is_empty());
    let limited_at = rejected[0].at;
    assert_eq!(rejected[0].status, 429);
    heartbeat("second");
    heartbeat("third");

    let requests = server.wait_for(Duration::from_secs(5), |r| slugs(r).len() == 3);
    assert_eq!(
        slugs(&requests),
        ["first", "second", "third"],
        "nothing lost, order kept"
    );
    for request in &requests[1..] {
        assert!(
            request.at >= limited_at + Duration::from_millis(950),
            "sent {:?} after the 429, before Retry-After expired",
            request.at - limited_at
        );
    }
    assert_eq!(requests.len(), 2, "the held check-ins go out together");
    assert!(guard.flush(Duration::from_secs(5)));
    let stats = watchpost::stats();
    assert_eq!((stats.queued, stats.sent, stats.rate_limited), (3, 3, 0));
}

#[test]
fn a_category_limit_holds_events_while_check_ins_keep_flowing() {
    let _serial = serial();
    let server = Recorder::start();
    let limit = (
        "X-Sentry-Rate-Limits",
        "2:error:organization:quota_exceeded".to_owned(),
    );
    server.script([Reply::Status(429, vec![limit])]);
    let _guard = init_with(&server, 64);

    watchpost::capture_message("over quota", Level::Error);
    let rejected = server.wait_for(Duration::from_secs(5), |r| !r.is_empty());
    let limited_at = rejected[0].at;
    heartbeat("still-flowing");

    let requests = server.wait_for(Duration::from_secs(10), |r| !support::events(r).is_empty());
    let check_in = requests.iter().find(|r| !r.check_ins().is_empty()).unwrap();
    let event = requests.iter().rfind(|r| !r.events().is_empty()).unwrap();
    assert_eq!(event.status, 200);
    assert!(
        check_in.at < limited_at + Duration::from_secs(2),
        "check-ins are not limited"
    );
    assert!(
        event.at >= limited_at + Duration::from_millis(1950),
        "the event waited"
    );
    assert!(check_in.at < event.at);
}

#[test]
fn server_errors_are_retried_then_delivered() {
    let _serial = serial();
    let server = Recorder::start();
    server.script([Reply::Status(503, vec![]), Reply::Status(502, vec![])]);
    let guard = init_with(&server, 64);

    heartbeat("flaky-server");
    assert!(guard.flush(Duration::from_secs(10)));

    let requests = server.requests();
    let statuses: Vec<_> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 502, 200]);
    assert!(
        requests
            .iter()
            .all(|r| r.check_ins() == requests[0].check_ins()),
        "the same check-in each time (only the envelope's `sent_at` is new)"
    );
    let stats = watchpost::stats();
    assert_eq!((stats.sent, stats.failed), (1, 0));
}

#[test]
fn a_refusal_is_final_and_counted_as_failed() {
    let _serial = serial();
    let server = Recorder::start();
    server.script([Reply::Status(400, vec![])]);
    let guard = init_with(&server, 64);

    heartbeat("refused");
    assert!(guard.flush(Duration::from_secs(5)));
    heartbeat("accepted");
    assert!(guard.flush(Duration::from_secs(5)));

    let statuses: Vec<_> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 200], "no retry after a 4xx");
    let stats = watchpost::stats();
    assert_eq!((stats.sent, stats.failed), (1, 1));
}

/// An address nothing listens on (yet): bind, note it, close.
fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn init_at(addr: std::net::SocketAddr, queue_size: usize) -> ClientGuard {
    watchpost::init(ClientOptions {
        dsn: Some(format!("http://{}@{addr}/42", support::KEY)),
        queue_size,
        debug: true,
        ..Default::default()
    })
}

/// Sends `n` heartbeats `outage-0`, `outage-1`, … spread over `over`.
fn heartbeats_over(n: usize, over: Duration) -> Vec<String> {
    let slugs: Vec<_> = (0..n).map(|i| format!("outage-{i}")).collect();
    for slug in &slugs {
        heartbeat(slug);
        std::thread::sleep(over / n as u32);
    }
    slugs
}

#[test]
fn reports_sent_during_an_outage_are_delivered_once_the_server_is_back() {
    let _serial = serial();
    let addr = free_addr();
    let guard = init_at(addr, 1024);

    let sent = heartbeats_over(60, Duration::from_secs(3));
    let asked = Instant::now();
    assert!(
        !guard.flush(Duration::from_millis(300)),
        "nothing can be delivered yet"
    );
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "flush kept its bound: {waited:?}"
    );
    let stats = watchpost::stats();
    assert_eq!(
        (stats.sent, stats.failed, stats.dropped),
        (0, 0, 0),
        "held: {stats:?}"
    );

    let server = Recorder::start_at(addr);
    let up = Instant::now();
    let requests = server.wait_for(Duration::from_secs(10), |r| slugs(r).len() >= sent.len());
    let resumed = requests[0].at - up;
    eprintln!("delivery resumed {resumed:?} after the server came back");
    assert!(
        resumed < Duration::from_millis(5500),
        "the backoff is capped: {resumed:?}"
    );
    assert_eq!(slugs(&requests), sent, "everything held, in order");
    assert!(guard.flush(Duration::from_secs(5)));
    let stats = watchpost::stats();
    assert_eq!(
        (
            stats.queued,
            stats.sent,
            stats.dropped,
            stats.failed,
            stats.rate_limited
        ),
        (60, 60, 0, 0, 0)
    );
}

#[test]
fn an_outage_longer_than_the_buffer_drops_the_oldest_and_counts_them() {
    let _serial = serial();
    let addr = free_addr();
    let guard = init_at(addr, 4);

    let produced = heartbeats_over(60, Duration::from_secs(3));
    let server = Recorder::start_at(addr);
    assert!(
        guard.flush(Duration::from_secs(10)),
        "delivered after the restart"
    );

    let stats = watchpost::stats();
    let delivered = slugs(&server.requests());
    eprintln!("{stats:?}");
    assert!(stats.dropped > 0, "the overflow is counted: {stats:?}");
    assert_eq!((stats.failed, stats.rate_limited), (0, 0));
    assert_eq!(stats.sent, delivered.len() as u64);
    assert_eq!(
        stats.sent + stats.dropped,
        produced.len() as u64,
        "every check-in delivered or counted: {stats:?}"
    );
    let order: Vec<_> = delivered
        .iter()
        .map(|s| produced.iter().position(|p| p == s).unwrap())
        .collect();
    assert!(order.is_sorted(), "in order, no duplicates: {order:?}");
    assert!(!order.windows(2).any(|w| w[0] == w[1]));
    // The oldest made room: the newest heartbeats of the outage are the ones delivered.
    assert_eq!(
        delivered.last(),
        produced.last(),
        "the newest survives the overflow: {delivered:?}"
    );
    assert!(
        order[0] >= produced.len() - 4,
        "only the newest fit in the hold of 4: {order:?}"
    );
}

#[test]
fn shutdown_during_an_outage_ends_at_its_bound() {
    let _serial = serial();
    let guard = watchpost::init(ClientOptions {
        dsn: Some(format!("http://{}@{}/42", support::KEY, free_addr())),
        shutdown_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    heartbeat("nobody-home");
    std::thread::sleep(Duration::from_millis(200)); // tried and failed at least once
    let stats = watchpost::stats();
    assert_eq!(
        (stats.queued, stats.sent, stats.failed),
        (1, 0, 0),
        "held, not failed"
    );

    let started = Instant::now();
    drop(guard);
    let took = started.elapsed();
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(2)).contains(&took),
        "shutdown waited for its timeout, not longer: {took:?}"
    );
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let _serial = serial();
    let server = Recorder::start();
    server.script([Reply::Stall]);
    let guard = init_with(&server, 4);

    // The transport takes the first check-in and hangs on the stalled request.
    heartbeat("stuck");
    server.wait_for(Duration::from_secs(5), |_| true);
    std::thread::sleep(Duration::from_millis(200));

    // If recording blocked on a full queue this thread would hang until the release below;
    // the watchdog turns that into a failure instead.
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        for _ in 0..100 {
            let _ = watchpost::capture_checkin("burst", CheckInStatus::Ok, None);
        }
        done.send(start.elapsed()).unwrap();
    });
    let elapsed = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("recording returned while the queue was full");
    let dropped = watchpost::stats().dropped;
    assert!(dropped >= 96, "{dropped} dropped");
    eprintln!("100 check-ins against a full queue took {elapsed:?}");

    server.release();
    assert!(guard.flush(Duration::from_secs(10)));
    let stats = watchpost::stats();
    assert_eq!(stats.dropped, dropped);
    assert_eq!(stats.queued + stats.dropped, 101, "{stats:?}");
    assert_eq!(stats.sent, stats.queued, "{stats:?}");
}

#[test]
fn queued_check_ins_are_batched_into_few_envelopes() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init_with(&server, 1024);

    for i in 0..200 {
        heartbeat(&format!("job-{i}"));
    }
    assert!(guard.flush(Duration::from_secs(10)));

    let requests = server.requests();
    let expected: Vec<_> = (0..200).map(|i| format!("job-{i}")).collect();
    assert_eq!(slugs(&requests), expected);
    assert!(
        requests.len() < 20,
        "{} requests for 200 check-ins",
        requests.len()
    );
    assert!(requests.iter().all(|r| r.envelope.items.len() <= 100));
}
