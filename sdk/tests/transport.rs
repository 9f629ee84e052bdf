//! How the transport behaves when the server does not simply say `200`: rate limits (`429` +
//! `Retry-After`, `X-Sentry-Rate-Limits` per category), server errors, refusals, a server that
//! never answers, and batching. Against a real loopback HTTP server with scripted answers.

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
        requests.iter().all(|r| r.body == requests[0].body),
        "the same envelope each time"
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

#[test]
fn an_unreachable_server_is_retried_a_bounded_number_of_times() {
    let _serial = serial();
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let guard = watchpost::init(ClientOptions {
        dsn: Some(format!("http://{}@127.0.0.1:{port}/1", support::KEY)),
        ..Default::default()
    });

    heartbeat("nobody-home");
    assert!(guard.flush(Duration::from_secs(10)));
    let stats = watchpost::stats();
    assert_eq!((stats.queued, stats.sent, stats.failed), (1, 0, 1));
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
