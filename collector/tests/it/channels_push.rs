//! The push channels — ntfy, Pushover, PagerDuty — through the real dispatcher against
//! loopback fakes that check each provider's documented request shape and limits: long text
//! is cut within the limit, a `429` is retried when the provider allows it (after its
//! `Retry-After`), and a refusal that retrying cannot fix fails the delivery after one try.

use crate::alert_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alert_support::{
    Answer, Fake, MemoryOutbox, Seen, channel, fast_options, monitor_alert, probe_alert, run,
    status, wait_for,
};
use axum::http::StatusCode;
use serde_json::{Value, json};
use watchpost_collector::alert::{
    DeliveryState, NTFY_MAX, PAGERDUTY_SUMMARY_MAX, PUSHOVER_MESSAGE_MAX, PUSHOVER_TITLE_MAX,
    dedup_key,
};
use watchpost_collector::config::{ChannelKind, Secret};
use watchpost_collector::engine::alerting::Alert;

const LONG: Duration = Duration::from_secs(15);

/// A `monitor.failed` alert whose title and message are far beyond every provider's limit.
fn long_alert() -> Alert {
    let mut alert = monitor_alert("nightly-backup", false);
    alert.title = format!("<b>&</b> {}", "title ".repeat(200));
    alert.message = format!("{}\nend", "é message ".repeat(1000));
    alert
}

/// `429` (with `Retry-After: 1`) to the first request, `ok` after.
fn rate_limited_once(
    ok: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
) -> impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static {
    move |seen, n| {
        if n == 0 {
            (
                StatusCode::TOO_MANY_REQUESTS,
                vec![("retry-after", "1".to_owned())],
                "slow down".to_owned(),
            )
        } else {
            ok(seen)
        }
    }
}

/// Delivers `alerts` to one channel of `kind` and waits until none is pending.
async fn deliver(kind: ChannelKind, alerts: &[Alert]) -> Arc<MemoryOutbox> {
    let outbox = Arc::new(MemoryOutbox::default());
    for alert in alerts {
        outbox.push("c", "rule", alert);
    }
    let options = fast_options();
    let built = channel("c", kind, &options);
    let shown = format!("{built:?}");
    for secret in ["tk_secret", "app_secret", "user_secret", "routing_secret"] {
        assert!(!shown.contains(secret), "Debug shows {secret}: {shown}");
    }
    let dispatcher = run(&outbox, vec![built], options);
    wait_for("every delivery settled", LONG, || outbox.drained()).await;
    dispatcher.stop().await;
    outbox
}

/// The gap between the first (rate-limited) request and its retry.
fn retry_gap(seen: &[Seen]) -> Duration {
    seen[1].at.duration_since(seen[0].at)
}

/// A form body, decoded (`+` and `%XX`).
fn form(body: &str) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_publishes_json_with_token_priority_and_tags_within_the_size_limit() {
    let fake = Fake::start(rate_limited_once(|_| {
        (
            StatusCode::OK,
            Vec::new(),
            json!({"id": "x", "event": "message"}).to_string(),
        )
    }))
    .await;
    let alerts = [long_alert(), probe_alert("api-health", false)];
    let kind = ChannelKind::Ntfy {
        url: Secret::new(format!("{}/ops/watchpost-alerts", fake.url)),
        token: Some(Secret::new("tk_secret")),
        priority: None,
    };
    let outbox = deliver(kind, &alerts).await;

    assert!(
        outbox
            .entries()
            .iter()
            .all(|e| e.state == DeliveryState::Sent)
    );
    assert_eq!(outbox.entry(1).attempts, 2, "the 429 was retried");
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        retry_gap(&seen) >= Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        retry_gap(&seen)
    );
    for request in &seen {
        assert_eq!(
            request.path, "/ops/",
            "JSON publish goes to the server, the topic in the body"
        );
        assert_eq!(request.headers["authorization"], "Bearer tk_secret");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.json["topic"], "watchpost-alerts");
    }
    let failed = &seen[1].json;
    let message = failed["message"].as_str().unwrap();
    assert!(message.len() <= NTFY_MAX, "{} bytes", message.len());
    assert!(
        message.len() > NTFY_MAX - 8,
        "cut at the limit, not far below"
    );
    assert!(message.starts_with("é message é message") && message.ends_with('…'));
    assert!(
        failed["title"]
            .as_str()
            .unwrap()
            .starts_with("<b>&</b> title"),
        "plain text, unescaped"
    );
    assert_eq!(failed["priority"], 5, "critical is urgent");
    assert_eq!(failed["tags"], json!(["rotating_light"]));
    assert_eq!(failed["click"], alerts[0].url);
    let up = &seen[2].json;
    assert_eq!(up["priority"], 3);
    assert_eq!(up["tags"], json!(["white_check_mark"]));
    assert_eq!(up["title"], "Probe api-health is up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_refusing_the_token_fails_at_once_and_a_fixed_priority_is_sent() {
    let fake =
        Fake::start(|_, _| status(403, r#"{"code":40301,"http":403,"error":"forbidden"}"#)).await;
    let kind = ChannelKind::Ntfy {
        url: Secret::new(format!("{}/alerts", fake.url)),
        token: Some(Secret::new("tk_secret")),
        priority: Some(2),
    };
    let outbox = deliver(kind, &[monitor_alert("db", false)]).await;
    let entry = outbox.entry(1);
    assert_eq!((entry.state, entry.attempts), (DeliveryState::Failed, 1));
    assert!(entry.last_error.unwrap().contains("403"));
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "a 403 is not retried");
    assert_eq!(seen[0].json["priority"], 2, "the configured priority wins");
}

fn pushover(api_url: &str) -> ChannelKind {
    ChannelKind::Pushover {
        app_token: Secret::new("app_secret"),
        user_key: Secret::new("user_secret"),
        priority: None,
        retry: Duration::from_secs(60),
        expire: Duration::from_secs(3600),
        api_url: api_url.to_owned(),
    }
}

/// Pushover's documented checks: token and user present, limits, emergency parameters.
fn pushover_answer(seen: &Seen) -> Answer {
    let form = form(&seen.body);
    let mut errors = Vec::new();
    if seen.path != "/1/messages.json" {
        errors.push(format!("wrong path {}", seen.path));
    }
    if form.get("token").map(String::as_str) != Some("app_secret") {
        errors.push("application token is invalid".to_owned());
    }
    if form.get("user").map(String::as_str) != Some("user_secret") {
        errors.push("user identifier is invalid".to_owned());
    }
    let chars = |k: &str| form.get(k).map_or(0, |v| v.chars().count());
    if chars("message") == 0 || chars("message") > PUSHOVER_MESSAGE_MAX {
        errors.push("message is too long".to_owned());
    }
    if chars("title") > PUSHOVER_TITLE_MAX {
        errors.push("title is too long".to_owned());
    }
    if form.get("priority").map(String::as_str) == Some("2") {
        let retry: u64 = form.get("retry").and_then(|v| v.parse().ok()).unwrap_or(0);
        let expire: u64 = form.get("expire").and_then(|v| v.parse().ok()).unwrap_or(0);
        if retry < 30 || expire == 0 || expire > 10_800 {
            errors.push("retry and expire are required for emergency priority".to_owned());
        }
    }
    if errors.is_empty() {
        (
            StatusCode::OK,
            Vec::new(),
            json!({"status": 1, "request": "r"}).to_string(),
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            Vec::new(),
            json!({"status": 0, "errors": errors}).to_string(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushover_posts_the_form_with_emergency_priority_for_critical_within_its_limits() {
    let fake = Fake::start(rate_limited_once(pushover_answer)).await;
    let alerts = [long_alert(), probe_alert("api-health", false)];
    let outbox = deliver(pushover(&fake.url), &alerts).await;

    for entry in outbox.entries() {
        assert_eq!(entry.state, DeliveryState::Sent, "{entry:?}");
    }
    assert_eq!(outbox.entry(1).attempts, 2);
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert!(retry_gap(&seen) >= Duration::from_millis(950));
    assert!(
        seen.iter()
            .all(|s| s.headers["content-type"] == "application/x-www-form-urlencoded")
    );
    let critical = form(&seen[1].body);
    assert_eq!(critical["priority"], "2");
    assert_eq!(
        (critical["retry"].as_str(), critical["expire"].as_str()),
        ("60", "3600")
    );
    assert_eq!(
        critical["message"].chars().count(),
        PUSHOVER_MESSAGE_MAX,
        "cut at the limit"
    );
    assert!(critical["message"].ends_with('…'));
    assert_eq!(critical["title"].chars().count(), PUSHOVER_TITLE_MAX);
    assert_eq!(critical["url"], alerts[0].url);
    assert_eq!(
        critical["timestamp"],
        alerts[0].timestamp.timestamp().to_string()
    );
    let up = form(&seen[2].body);
    assert_eq!(up["priority"], "0");
    assert!(!up.contains_key("retry") && !up.contains_key("expire"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushover_rejecting_a_key_fails_at_once() {
    let fake = Fake::start(|seen, _| pushover_answer(seen)).await;
    let mut kind = pushover(&fake.url);
    if let ChannelKind::Pushover { user_key, .. } = &mut kind {
        *user_key = Secret::new("not-the-user");
    }
    let outbox = deliver(kind, &[monitor_alert("db", false)]).await;
    let entry = outbox.entry(1);
    assert_eq!((entry.state, entry.attempts), (DeliveryState::Failed, 1));
    assert!(
        entry
            .last_error
            .unwrap()
            .contains("user identifier is invalid")
    );
    assert_eq!(fake.seen().len(), 1, "Pushover asks not to repeat a 4xx");
}

/// PagerDuty Events API v2 as documented: `202` for a valid event, `400` naming what is wrong.
fn pagerduty_answer(seen: &Seen) -> Answer {
    let event = &seen.json;
    let mut errors: Vec<&str> = Vec::new();
    if seen.path != "/v2/enqueue" {
        errors.push("wrong path");
    }
    if event["routing_key"] != "routing_secret" {
        errors.push("'routing_key' is invalid");
    }
    let action = event["event_action"].as_str().unwrap_or("");
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push("'event_action' is invalid");
    }
    let key = event["dedup_key"].as_str().unwrap_or("");
    if key.is_empty() || key.len() > 255 {
        errors.push("'dedup_key' is invalid");
    }
    if action == "trigger" {
        let payload = &event["payload"];
        let summary = payload["summary"].as_str().unwrap_or("");
        if summary.is_empty() || summary.chars().count() > PAGERDUTY_SUMMARY_MAX {
            errors.push("'payload.summary' is invalid");
        }
        if payload["source"].as_str().unwrap_or("").is_empty() {
            errors.push("'payload.source' is missing");
        }
        if !["critical", "error", "warning", "info"]
            .contains(&payload["severity"].as_str().unwrap_or(""))
        {
            errors.push("'payload.severity' is invalid");
        }
        if payload["timestamp"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_err())
        {
            errors.push("'payload.timestamp' is invalid");
        }
    }
    if errors.is_empty() {
        (
            StatusCode::ACCEPTED,
            Vec::new(),
            json!({"status": "success", "message": "Event processed", "dedup_key": key})
                .to_string(),
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            Vec::new(),
            json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}).to_string(),
        )
    }
}

fn pagerduty(events_url: &str, routing_key: &str) -> ChannelKind {
    ChannelKind::PagerDuty {
        routing_key: Secret::new(routing_key),
        events_url: events_url.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_triggers_and_resolves_one_incident_with_the_same_dedup_key() {
    // PagerDuty's 429 carries no Retry-After: the dispatcher's backoff retries it.
    let fake = Fake::start(|seen, n| {
        if n == 0 {
            status(429, r#"{"status":"throttle event","message":"Requests for this service are arriving too quickly."}"#)
        } else {
            pagerduty_answer(seen)
        }
    })
    .await;
    let failed = long_alert();
    let recovered = monitor_alert("nightly-backup", true);
    let probe = probe_alert("api-health", true);
    let outbox = deliver(
        pagerduty(&fake.url, "routing_secret"),
        &[failed.clone(), recovered.clone(), probe.clone()],
    )
    .await;

    for entry in outbox.entries() {
        assert_eq!(entry.state, DeliveryState::Sent, "{entry:?}");
    }
    assert_eq!(outbox.entry(1).attempts, 2, "the 429 was retried");
    let accepted: Vec<Value> = fake.accepted().into_iter().map(|s| s.json).collect();
    assert_eq!(accepted.len(), 3);
    assert!(fake.accepted().iter().all(|s| s.status == 202));

    let (trigger, resolve, other) = (&accepted[0], &accepted[1], &accepted[2]);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(
        trigger["dedup_key"], resolve["dedup_key"],
        "one PagerDuty incident"
    );
    assert_eq!(trigger["dedup_key"], dedup_key(&failed));
    assert_eq!(dedup_key(&failed), dedup_key(&recovered));
    assert_ne!(
        other["dedup_key"], trigger["dedup_key"],
        "another subject, another incident"
    );
    assert_eq!(other["event_action"], "trigger");
    assert!(
        resolve.get("payload").is_none(),
        "a resolve carries only the key"
    );

    let payload = &trigger["payload"];
    let summary = payload["summary"].as_str().unwrap();
    assert_eq!(
        summary.chars().count(),
        PAGERDUTY_SUMMARY_MAX,
        "cut at the limit"
    );
    assert!(summary.starts_with("<b>&</b> title"));
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["source"], "1/nightly-backup/production");
    assert_eq!(payload["class"], "monitor.failed");
    assert_eq!(
        payload["custom_details"]["alert"]["monitor"]["slug"],
        "nightly-backup"
    );
    assert_eq!(trigger["links"][0]["href"], failed.url);
    assert_eq!(other["payload"]["severity"], "critical");
    assert_eq!(
        other["payload"]["source"], "https://api.example.com/health",
        "no credentials or query"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_refusing_the_event_fails_at_once_with_its_reason() {
    let fake = Fake::start(|seen, _| pagerduty_answer(seen)).await;
    let outbox = deliver(
        pagerduty(&fake.url, "wrong-key"),
        &[monitor_alert("db", false)],
    )
    .await;
    let entry = outbox.entry(1);
    assert_eq!((entry.state, entry.attempts), (DeliveryState::Failed, 1));
    let error = entry.last_error.unwrap();
    assert!(
        error.contains("400") && error.contains("routing_key"),
        "{error}"
    );
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_reaches_ntfy_as_one_digest_and_pagerduty_as_one_event_per_alert() {
    let ntfy = Fake::start(|_, _| (StatusCode::OK, Vec::new(), "{}".to_owned())).await;
    let pd = Fake::start(|seen, _| pagerduty_answer(seen)).await;
    let mut options = fast_options();
    options.digest_backlog = Some(3);
    let ntfy_channel = channel(
        "ntfy",
        ChannelKind::Ntfy {
            url: Secret::new(format!("{}/alerts", ntfy.url)),
            token: None,
            priority: None,
        },
        &options,
    );
    let pd_channel = channel("pd", pagerduty(&pd.url, "routing_secret"), &options);
    let outbox = Arc::new(MemoryOutbox::default());
    let alerts: Vec<Alert> = (0..8)
        .map(|i| monitor_alert(&format!("job-{i}"), false))
        .collect();
    for alert in &alerts {
        outbox.push("ntfy", "rule", alert);
        outbox.push("pd", "rule", alert);
    }
    let dispatcher = run(&outbox, vec![ntfy_channel, pd_channel], options);
    wait_for("every delivery settled", LONG, || outbox.drained()).await;
    dispatcher.stop().await;

    let ntfy_seen = ntfy.seen();
    assert_eq!(ntfy_seen.len(), 1, "one digest for the storm");
    let digest = &ntfy_seen[0].json;
    assert_eq!(digest["priority"], 5);
    assert!(
        digest["title"]
            .as_str()
            .unwrap()
            .starts_with("Watchpost digest: 8 alerts about 8 subjects (8 critical now)"),
        "{digest}"
    );
    let lines: Vec<&str> = digest["message"].as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 8, "one line per subject");
    assert!(
        lines[0].starts_with("🔴 Monitor job-0 (production) is failing"),
        "{lines:?}"
    );
    assert!(
        digest.get("click").is_none(),
        "a digest links nowhere in particular"
    );

    let events: Vec<Value> = pd.accepted().into_iter().map(|s| s.json).collect();
    assert_eq!(events.len(), 8, "PagerDuty never gets a digest");
    let keys: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["dedup_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 8, "one incident per monitor");
}
