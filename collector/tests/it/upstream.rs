//! Upstream forwarding with a loopback HTTP server standing in for Sentry: every accepted
//! envelope arrives exactly once, also when the upstream was down for a while and when the
//! collector crashed in between; ingest keeps answering at once while the upstream is down (its
//! backlog metric grows); a full queue drops the oldest. Ingest latencies are reported, not
//! asserted: tests do not assert speed.

use crate::support;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Collector, checkin, envelope, interval, poll};
use watchpost_protocol::Envelope;

/// What the stand-in upstream received, in order.
#[derive(Debug, Clone)]
struct Received {
    /// `sentry_key` of the auth header.
    key: String,
    envelope: Envelope,
}

/// A Sentry-like envelope endpoint on a fixed loopback port, run on its own thread.
struct Upstream {
    received: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Upstream {
    fn start(addr: SocketAddr) -> Upstream {
        let received = Arc::new(Mutex::new(Vec::new()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let app = Router::new()
            .route("/api/{project}/envelope/", post(accept))
            .with_state(Arc::clone(&received));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind the upstream port again");
        runtime.spawn(async move { axum::serve(listener, app).await });
        Upstream {
            received,
            _runtime: runtime,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn accept(
    State(received): State<Arc<Mutex<Vec<Received>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut decoded = Vec::new();
    let body: &[u8] = match headers.get("content-encoding").map(|v| v.as_bytes()) {
        Some(b"gzip") => {
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut decoded)
                .expect("gzip body");
            &decoded
        }
        _ => &body,
    };
    let auth = headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| watchpost_protocol::Auth::parse(v).ok());
    let (Some(auth), Ok(envelope)) = (auth, Envelope::parse(body)) else {
        return StatusCode::BAD_REQUEST;
    };
    received.lock().unwrap().push(Received {
        key: auth.key,
        envelope,
    });
    StatusCode::OK
}

/// A loopback address nothing listens on (yet).
fn vacant() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

const UPSTREAM_KEY: &str = "5e11ab1e5e11ab1e5e11ab1e5e11ab1e";

fn config(addr: SocketAddr, extra: &str) -> String {
    format!("[upstream]\ndsn = \"http://{UPSTREAM_KEY}@{addr}/42\"\n{extra}")
}

/// The value of an unlabelled (or exactly labelled) sample in `/metrics`.
fn metric(collector: &Collector, name: &str) -> f64 {
    let text = collector
        .request(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// A unique marker per envelope, as the upstream will see it: the envelope's own `event_id`
/// header, else the check-in or event id of its item (`None` for a check-in without an id).
fn marker(envelope: &Envelope) -> Option<String> {
    if let Some(Value::String(id)) = envelope.headers.get("event_id") {
        return Some(id.clone());
    }
    let item: Value = serde_json::from_slice(&envelope.items.first()?.payload).ok()?;
    item["check_in_id"]
        .as_str()
        .or(item["event_id"].as_str())
        .map(str::to_owned)
}

/// Sends envelope number `n` of a mixed stream (check-ins, events, other item types, a `dsn`
/// header naming this collector); returns its marker and how long ingest took.
fn send(collector: &Collector, n: usize) -> (String, Duration) {
    let id = format!("{n:032x}");
    let body = match n % 4 {
        0 => envelope(&[(
            "check_in",
            &json!({"check_in_id": id, "monitor_slug": "relay-job", "status": "ok"}).to_string(),
        )]),
        1 => {
            let event = json!({"event_id": id, "timestamp": 1_800_000_000, "level": "error",
                               "message": format!("boom {n}")});
            envelope(&[("event", &event.to_string())])
        }
        2 => {
            let mut body =
                format!("{{\"event_id\":\"{id}\",\"dsn\":\"{}\"}}\n", collector.dsn).into_bytes();
            body.extend_from_slice(b"{\"type\":\"transaction\",\"length\":2}\n{}\n");
            body
        }
        _ => {
            let mut body = format!("{{\"event_id\":\"{id}\"}}\n").into_bytes();
            body.extend_from_slice(b"{\"type\":\"session\"}\n{\"sid\":\"x\",\"status\":\"ok\"}\n");
            body
        }
    };
    let started = Instant::now();
    let (status, reply) = collector.post_envelope(body);
    let took = started.elapsed();
    assert_eq!(status, 200, "envelope {n}: {reply}");
    (id, took)
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn create_monitor(collector: &Collector) {
    let (status, body) = collector.post_envelope(envelope(&[(
        "check_in",
        &checkin("relay-job", "ok", None, Some(interval(1, "hour"))),
    )]));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn every_envelope_arrives_once_even_after_the_upstream_was_down() {
    let addr = vacant();
    let collector = Collector::start(Some(&config(addr, "")));
    create_monitor(&collector);
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();

    // The upstream is down: ingest still answers at once and the backlog grows.
    let mut down = Vec::new();
    for n in 0..24 {
        let (id, took) = send(&collector, n);
        expected.insert(id, 0);
        down.push(took);
    }
    // The cron endpoint and pings are relayed too, as check-in envelopes.
    let cron_id = "0000000000000000000000000000c0de";
    let cron = collector
        .request(
            Method::GET,
            &format!(
                "/api/1/cron/relay-job/{}/?status=ok&check_in_id={cron_id}",
                collector.key
            ),
        )
        .send()
        .unwrap();
    assert_eq!(cron.status(), 202);
    expected.insert(cron_id.to_owned(), 0);
    let ping = collector
        .request(
            Method::GET,
            &format!(
                "/ping/{}/relay-job?rid=0000000000000000000000000000abcd",
                collector.key
            ),
        )
        .send()
        .unwrap();
    assert_eq!(ping.status(), 200);
    expected.insert("0000000000000000000000000000abcd".to_owned(), 0);
    // One more for the monitor-creating check-in, which has no id of ours.
    let total = expected.len() + 1;
    assert_eq!(
        metric(&collector, "watchpost_upstream_backlog"),
        total as f64
    );
    poll(Duration::from_secs(10), "a failed relay attempt", || {
        (metric(&collector, "watchpost_upstream_failed_total") > 0.0).then_some(())
    });

    // The upstream comes up; more envelopes arrive meanwhile.
    let upstream = Upstream::start(addr);
    for n in 24..36 {
        let (id, _) = send(&collector, n);
        expected.insert(id, 0);
    }
    let total = total + 12;
    poll(Duration::from_secs(60), "every envelope upstream", || {
        (upstream.received().len() >= total).then_some(())
    });
    // Give a duplicate the chance to show up.
    std::thread::sleep(Duration::from_millis(500));

    let received = upstream.received();
    assert_eq!(received.len(), total, "each envelope exactly once");
    for r in &received {
        assert_eq!(r.key, UPSTREAM_KEY);
        assert!(
            !r.envelope.headers.contains_key("dsn"),
            "the local DSN is not relayed"
        );
        // The monitor-creating check-in has no id of ours.
        if let Some(count) = marker(&r.envelope).and_then(|id| expected.get_mut(&id)) {
            *count += 1;
        }
    }
    let wrong: Vec<_> = expected.iter().filter(|(_, n)| **n != 1).collect();
    assert!(wrong.is_empty(), "not exactly once: {wrong:?}");
    assert_eq!(metric(&collector, "watchpost_upstream_backlog"), 0.0);
    assert_eq!(
        metric(&collector, "watchpost_upstream_sent_total"),
        total as f64
    );

    // The figures, for the record: the same envelopes against a collector without upstream.
    let plain = Collector::start(None);
    create_monitor(&plain);
    let baseline: Vec<Duration> = (0..24).map(|n| send(&plain, n).1).collect();
    eprintln!(
        "ingest p50: {:?} with the upstream down, {:?} without an upstream",
        p50(down),
        p50(baseline)
    );
}

#[test]
fn the_queue_survives_a_crash_and_a_full_queue_drops_the_oldest() {
    let addr = vacant();
    let mut collector = Collector::start(Some(&config(addr, "max_backlog = 6\n")));
    create_monitor(&collector);
    let ids: Vec<String> = (0..9).map(|n| send(&collector, n).0).collect();
    // 10 accepted (with the creating check-in), 6 kept: the oldest 4 are gone.
    assert_eq!(metric(&collector, "watchpost_upstream_backlog"), 6.0);
    assert_eq!(
        metric(
            &collector,
            "watchpost_upstream_dropped_total{reason=\"overflow\"}"
        ),
        4.0
    );

    // Acknowledged means durably queued: a SIGKILL loses nothing. Dropping for overflow is
    // cleanup that the next flush makes durable, so the last drop may come undone.
    collector.kill();
    collector.restart();
    let kept = metric(&collector, "watchpost_upstream_backlog") as usize;
    assert!((6..=7).contains(&kept), "{kept} queued after the crash");
    let upstream = Upstream::start(addr);
    poll(Duration::from_secs(60), "the queue upstream", || {
        (upstream.received().len() >= kept).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let markers: Vec<String> = upstream
        .received()
        .iter()
        .filter_map(|r| marker(&r.envelope))
        .collect();
    assert_eq!(
        markers,
        ids[ids.len() - kept..],
        "the newest, in order, once each"
    );
}
