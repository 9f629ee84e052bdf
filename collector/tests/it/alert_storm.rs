//! A real alert is never behind a storm, through the real binary: 5,000 monitors fail at once
//! and queue 5,000 webhook deliveries; one more monitor that fails afterwards reaches the
//! webhook within 30 s of its failure, ahead of the storm still queued, and so does its
//! recovery, after its failure. Then the storm drains: every one of the 5,000 alerts arrives.
//!
//! The webhook is a real HTTP server on loopback that answers each `POST` after 20 ms, a
//! plausible time for a remote receiver: at that pace the storm takes at least 100 s to
//! send, so an alert queued behind it could not arrive within 30 s. Once the real alert is in,
//! the fake answers at once, so the storm drains in seconds and the test stays short. Every
//! request is checked against the documented webhook JSON (`docs/alerts.md`, "Webhook JSON").

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode as HttpStatus, Uri};
use parking_lot::Mutex;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use support::{Collector, checkin, envelope, poll, sentry_auth};

const STORM: usize = 5_000;
const PER_ENVELOPE: usize = 1_000;
const SLOW: Duration = Duration::from_millis(20);

/// One request the webhook received.
struct Received {
    at: Instant,
    alert: Value,
}

struct Hook {
    received: Mutex<Vec<Received>>,
    /// How long to wait before answering, in milliseconds.
    delay_ms: AtomicU64,
    /// Requests that did not have the documented shape, with why.
    wrong: Mutex<Vec<String>>,
}

/// The keys `docs/alerts.md` documents for a monitor alert (besides `acknowledge_url`, which a
/// `monitor.failed` about an open incident carries), and for its `monitor` object.
const ALERT_KEYS: [&str; 11] = [
    "kind",
    "severity",
    "title",
    "message",
    "source",
    "project",
    "environment",
    "timestamp",
    "url",
    "monitor",
    "incident",
];
const MONITOR_KEYS: [&str; 8] = [
    "id",
    "slug",
    "name",
    "environment",
    "status",
    "reason",
    "config",
    "last_ok",
];

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Why `alert` (a request to the webhook) is not the documented JSON, if it is not.
fn shape_error(method: &Method, path: &str, headers: &HeaderMap, alert: &Value) -> Option<String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = alert["kind"].as_str().unwrap_or("");
    let monitor = &alert["monitor"];
    let fine = method == Method::POST
        && path == "/hook"
        && content_type.starts_with("application/json")
        && keys(alert)
            .into_iter()
            .filter(|key| *key != "acknowledge_url")
            .collect::<BTreeSet<_>>()
            == BTreeSet::from(ALERT_KEYS)
        && keys(monitor) == BTreeSet::from(MONITOR_KEYS)
        && alert["source"] == "monitor"
        && alert["project"] == 1
        && alert["environment"] == "production"
        && monitor["environment"] == "production"
        && monitor["id"] == format!("1/{}/production", monitor["slug"].as_str().unwrap_or("?"))
        && matches!(
            (kind, alert["severity"].as_str()),
            ("monitor.failed", Some("critical")) | ("monitor.recovered", Some("info"))
        )
        && alert["title"]
            .as_str()
            .is_some_and(|t| t.contains(monitor["slug"].as_str().unwrap_or("?")))
        && alert["timestamp"].is_string()
        && alert["url"]
            .as_str()
            .is_some_and(|u| u.contains("/monitors/1/"));
    (!fine).then(|| format!("{method} {path} ({content_type}): {alert}"))
}

async fn receive(
    State(hook): State<Arc<Hook>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> HttpStatus {
    let alert: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Some(wrong) = shape_error(&method, uri.path(), &headers, &alert) {
        hook.wrong.lock().push(wrong);
    }
    hook.received.lock().push(Received {
        at: Instant::now(),
        alert,
    });
    let delay = hook.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    HttpStatus::OK
}

/// A check-in that creates its monitor (hourly; one failure opens, one success resolves).
fn report(slug: &str, status: &str) -> String {
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "failure_issue_threshold": 1, "recovery_threshold": 1});
    checkin(slug, status, None, Some(config))
}

/// The `(kind, slug)` of each request so far, with when it arrived.
fn arrivals(hook: &Hook) -> Vec<(Instant, String, String)> {
    hook.received
        .lock()
        .iter()
        .map(|r| {
            (
                r.at,
                r.alert["kind"].as_str().unwrap_or("").to_owned(),
                r.alert["monitor"]["slug"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_new_failure_reaches_the_webhook_within_30_s_ahead_of_a_storm_of_5000() {
    let _heavy = support::heavy();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hook = Arc::new(Hook {
        received: Mutex::default(),
        delay_ms: AtomicU64::new(u64::try_from(SLOW.as_millis()).unwrap()),
        wrong: Mutex::default(),
    });
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(Arc::clone(&hook));
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let collector = Collector::start(Some(&format!(
        r#"
[[channels]]
name = "hook"
type = "webhook"
url = "{url}/hook"

[[rules]]
name = "jobs"
on = ["monitor.failed", "monitor.recovered"]
channels = ["hook"]

# The storm is 5,000 check-ins in five envelopes at once: more than the key's default budget
# per second (`quotas.rs` tests that budget).
[limits]
ingest_per_second = 100000
"#
    )));
    let ingest = collector.url("/api/1/envelope/");
    let auth = sentry_auth(&collector.key);
    let post = |client: &Client, items: &[String]| {
        let items: Vec<(&str, &str)> = items.iter().map(|c| ("check_in", c.as_str())).collect();
        let response = client
            .post(&ingest)
            .header("X-Sentry-Auth", &auth)
            .body(envelope(&items))
            .send()
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    };

    // The storm: 5,000 monitors fail at once, in envelopes of 1,000 from parallel clients.
    let started = Instant::now();
    std::thread::scope(|scope| {
        for part in 0..STORM / PER_ENVELOPE {
            let post = &post;
            scope.spawn(move || {
                let items: Vec<String> = (0..PER_ENVELOPE)
                    .map(|i| report(&format!("storm-{}", part * PER_ENVELOPE + i), "error"))
                    .collect();
                post(&Client::new(), &items);
            });
        }
    });
    eprintln!("{STORM} failures ingested in {:?}", started.elapsed());
    let client = Client::new();

    // The real failure, after the storm.
    let failed_at = Instant::now();
    post(&client, &[report("the-real-one", "error")]);
    let (failed, storm_before) = poll(
        Duration::from_secs(60),
        "the real failure at the webhook",
        || {
            let seen = arrivals(&hook);
            let at = seen
                .iter()
                .find(|(_, kind, slug)| slug == "the-real-one" && kind == "monitor.failed")?
                .0;
            Some((at, seen.iter().filter(|(t, ..)| *t < at).count()))
        },
    );
    let waited = failed - failed_at;
    eprintln!(
        "the real failure arrived {waited:?} after it happened, after {storm_before} of the \
         {STORM} storm alerts"
    );
    assert!(waited < Duration::from_secs(30), "it waited {waited:?}");
    assert!(
        storm_before < STORM,
        "it was not delivered ahead of the storm: {storm_before} storm alerts came first"
    );

    // Its recovery also goes ahead of the storm, and after its failure.
    let recovered_at = Instant::now();
    post(&client, &[report("the-real-one", "ok")]);
    let recovered = poll(
        Duration::from_secs(60),
        "the real recovery at the webhook",
        || {
            arrivals(&hook)
                .into_iter()
                .find(|(_, kind, slug)| slug == "the-real-one" && kind == "monitor.recovered")
                .map(|(at, ..)| at)
        },
    );
    assert!(recovered > failed);
    let waited = recovered - recovered_at;
    eprintln!("the recovery arrived {waited:?} after it happened");
    assert!(waited < Duration::from_secs(30), "it waited {waited:?}");

    // The receiver speeds up: the storm drains, every alert of it arrives.
    hook.delay_ms.store(0, Ordering::Relaxed);
    poll(Duration::from_secs(120), "the storm to drain", || {
        let pending = collector.api_get("/api/v1/alerts?state=pending&limit=1");
        pending.as_array().unwrap().is_empty().then_some(())
    });
    let mut per_slug: BTreeMap<String, usize> = BTreeMap::new();
    for (_, kind, slug) in arrivals(&hook) {
        if kind == "monitor.failed" {
            *per_slug.entry(slug).or_default() += 1;
        }
    }
    let missing: Vec<usize> = (0..STORM)
        .filter(|i| !per_slug.contains_key(&format!("storm-{i}")))
        .collect();
    assert!(missing.is_empty(), "storm alerts never sent: {missing:?}");
    eprintln!("storm drained {:?} after it began", started.elapsed());
    let wrong = hook.wrong.lock();
    assert!(
        wrong.is_empty(),
        "{} requests not in the documented shape, e.g. {}",
        wrong.len(),
        wrong[0]
    );
}
