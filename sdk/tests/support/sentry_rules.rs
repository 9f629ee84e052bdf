//! Whether a Sentry server takes an envelope we wrote without rewriting or dropping anything
//! we rely on, judged by real references rather than by our reading of them:
//!
//! - the whole envelope must parse with the `sentry-types` crate (the Rust SDK's own model of
//!   the protocol: its check-in types are Relay's — minutes as unsigned integers, interval
//!   units from `minute` up — so a fractional margin or a `second` unit fails here as it makes
//!   Relay refuse the check-in), and what it parsed must equal what we sent;
//! - every event is run through Relay's own normalizer (`sentry_relay.processing.
//!   StoreNormalizer` from the `sentry-relay` package in the test virtualenv, see
//!   `scripts/setup-test-env.sh`): it must keep the fields we rely on unchanged and record no
//!   `_meta` note (Relay notes there every value it rewrote or removed), and the platform
//!   must be one of Relay's `VALID_PLATFORMS`;
//! - check-ins must also satisfy the rules Relay and Sentry apply after parsing (slug and
//!   environment lengths, statuses a client may send, Sentry's validator bounds for the
//!   config's numbers).
//!
//! Shared by the SDK's tests and the collector's CLI tests (`#[path]`), which need the
//! `sentry-types` dev-dependency and `support/python.rs`'s virtualenv.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a part of the rules"
)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// A Python program: the events (a JSON array on stdin) as Relay's store normalizer leaves
/// them, with the platforms Relay knows.
const RELAY_NORMALIZE: &str = r#"
import json, sys
from sentry_relay.processing import StoreNormalizer, VALID_PLATFORMS
events = json.load(sys.stdin)
normalizer = StoreNormalizer()
json.dump({
    "platforms": sorted(VALID_PLATFORMS),
    "normalized": [normalizer.normalize_event(event) for event in events],
}, sys.stdout)
"#;

/// What one envelope carried, for the checks that run once for all envelopes.
#[derive(Debug, Default)]
pub struct Carried {
    /// The events, as sent.
    pub events: Vec<Value>,
    /// The check-ins, as sent.
    pub check_ins: Vec<Value>,
}

/// Checks one envelope body (decoded, not gzipped) with `sentry-types` and the check-in
/// rules; returns what it carried so the events can go through Relay together
/// ([`assert_relay_keeps_events`]).
pub fn check_envelope(body: &[u8]) -> Carried {
    let text = String::from_utf8_lossy(body);
    let parsed = sentry_types::protocol::v7::Envelope::from_slice(body)
        .unwrap_or_else(|e| panic!("sentry-types refuses the envelope ({e}):\n{text}"));
    let ours = watchpost_protocol::Envelope::parse(body).expect("our own parser reads it");

    // `sent_at` lets Sentry correct the client's clock; sentry-types reads it as a time.
    let headers = serde_json::to_value(parsed.headers()).unwrap();
    assert!(
        headers["sent_at"].is_string(),
        "no sent_at sentry-types understands in {:?}",
        ours.headers
    );
    let instant = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or("")).ok();
    assert_eq!(
        instant(&headers["sent_at"]),
        instant(&ours.headers["sent_at"]),
        "sent_at changed"
    );

    let mut carried = Carried::default();
    let typed: Vec<_> = parsed.items().collect();
    assert_eq!(typed.len(), ours.items.len(), "items lost:\n{text}");
    for (item, raw) in typed.into_iter().zip(&ours.items) {
        let sent: Value = raw.json().expect("our items are JSON");
        use sentry_types::protocol::v7::EnvelopeItem;
        match item {
            EnvelopeItem::MonitorCheckIn(check_in) => {
                let kept = serde_json::to_value(check_in).unwrap();
                assert_check_in_kept(&sent, &kept);
                assert_check_in_rules(&sent);
                carried.check_ins.push(sent);
            }
            EnvelopeItem::Event(event) => {
                let kept = serde_json::to_value(event).unwrap();
                assert_event_kept_by_sentry_types(&sent, &kept);
                carried.events.push(sent);
            }
            other => panic!("an item Sentry would not expect from us: {other:?}"),
        }
    }
    carried
}

/// Every field of the check-in we sent, as `sentry-types` parsed it (it knows every field
/// Relay keeps, so the comparison covers what reaches Sentry), except `monitor_config.
/// watchpost`, the member Sentry ignores by design.
fn assert_check_in_kept(sent: &Value, kept: &Value) {
    let mut expected = sent.clone();
    if let Some(config) = expected
        .get_mut("monitor_config")
        .and_then(Value::as_object_mut)
    {
        config.remove("watchpost");
    }
    let mut kept = kept.clone();
    // Fields sentry-types writes that we do not send: its defaults, not a change.
    if let Some(object) = kept.as_object_mut() {
        object.retain(|k, v| !(v.is_null() || (k == "contexts" && sent.get(k).is_none())));
    }
    assert_eq!(kept, expected, "sentry-types changed the check-in");
}

/// What Relay's `process_check_in` and Sentry's monitor validator refuse or rewrite, beyond
/// the types: a status a client may not send (Relay turns `missed` into `unknown`), an empty
/// slug or one over 50 characters (Relay cuts it), an environment over 64 characters (Relay
/// refuses it), a `max_runtime` below 1 minute (Sentry's validator), thresholds out of
/// Sentry's 1..=720.
fn assert_check_in_rules(sent: &Value) {
    let status = sent["status"].as_str().unwrap_or_default();
    assert!(
        ["in_progress", "ok", "error"].contains(&status),
        "status {status} in {sent}"
    );
    let slug = sent["monitor_slug"].as_str().unwrap_or_default();
    assert!(
        !slug.is_empty() && slug.chars().count() <= 50,
        "slug {slug:?}"
    );
    if let Some(environment) = sent["environment"].as_str() {
        assert!(
            environment.chars().count() <= 64,
            "environment {environment:?}"
        );
    }
    let Some(config) = sent.get("monitor_config") else {
        return;
    };
    for field in ["checkin_margin", "max_runtime"] {
        if let Some(minutes) = config.get(field) {
            assert!(minutes.is_u64(), "{field} {minutes} is not whole minutes");
        }
    }
    if let Some(max_runtime) = config["max_runtime"].as_u64() {
        assert!(max_runtime >= 1, "max_runtime {max_runtime} < 1 minute");
    }
    for field in ["failure_issue_threshold", "recovery_threshold"] {
        if let Some(n) = config.get(field) {
            assert!(
                n.as_u64().is_some_and(|n| (1..=720).contains(&n)),
                "{field} {n}"
            );
        }
    }
}

/// The fields `sentry-types` models, as it read them: ids, level, platform, environment,
/// release, exceptions with their frames.
fn assert_event_kept_by_sentry_types(sent: &Value, kept: &Value) {
    for field in ["platform", "environment", "release", "server_name"] {
        assert_eq!(
            kept.get(field),
            sent.get(field),
            "sentry-types changed {field}"
        );
    }
    // sentry-types leaves out its default level, `error`, when it writes an event.
    let level = kept.get("level").cloned().unwrap_or_else(|| json!("error"));
    assert_eq!(
        Some(&level),
        sent.get("level"),
        "sentry-types changed level"
    );
    assert_eq!(
        kept["event_id"].as_str().map(|id| id.replace('-', "")),
        sent["event_id"].as_str().map(str::to_owned)
    );
    assert_eq!(
        exceptions(kept),
        exceptions(sent),
        "sentry-types changed the exceptions"
    );
}

/// The exceptions as `(type, value, mechanism, frames)`, each frame as the fields we send.
fn exceptions(event: &Value) -> Value {
    let values = event["exception"]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let exceptions = values.iter().map(|exception| {
        let frames: Vec<Value> = exception["stacktrace"]["frames"]
            .as_array()
            .map(|frames| {
                frames
                    .iter()
                    .map(|frame| {
                        json!([
                            frame["function"],
                            frame["module"],
                            frame["filename"],
                            frame["abs_path"],
                            frame["lineno"],
                            frame["colno"],
                            frame["in_app"]
                        ])
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!([
            exception["type"],
            exception["value"],
            exception["module"],
            exception["mechanism"]["type"],
            exception["mechanism"]["handled"],
            frames
        ])
    });
    Value::Array(exceptions.collect())
}

/// Runs the events through Relay's normalizer and asserts it kept every field we rely on,
/// noted no change (`_meta`), and knows the platform.
pub fn assert_relay_keeps_events(python: &std::path::Path, events: &[Value]) {
    assert!(!events.is_empty(), "no event to check");
    let mut child = Command::new(python)
        .args(["-c", RELAY_NORMALIZE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(events).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "Relay's normalizer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    let platforms = answer["platforms"].as_array().unwrap();
    for (sent, normalized) in events.iter().zip(answer["normalized"].as_array().unwrap()) {
        assert!(
            platforms.contains(&sent["platform"]),
            "platform {} is not one Sentry knows: {platforms:?}",
            sent["platform"]
        );
        assert_eq!(
            normalized.get("_meta"),
            None,
            "Relay rewrote or removed something:\n{normalized:#}"
        );
        for field in [
            "platform",
            "level",
            "environment",
            "release",
            "fingerprint",
            "culprit",
            "transaction",
        ] {
            assert_eq!(
                normalized.get(field),
                sent.get(field),
                "Relay changed {field}:\n{normalized:#}"
            );
        }
        // Relay keeps `server_name` as a tag (that is where Sentry shows and searches it),
        // and writes tags as pairs.
        let tags = normalized["tags"].as_array().cloned().unwrap_or_default();
        if let Some(server_name) = sent.get("server_name") {
            assert!(
                tags.contains(&json!(["server_name", server_name])),
                "Relay lost server_name:\n{normalized:#}"
            );
        }
        if let Some(sent_tags) = sent.get("tags").and_then(Value::as_object) {
            for (key, value) in sent_tags {
                assert!(
                    tags.contains(&json!([key, value])),
                    "Relay lost tag {key}:\n{normalized:#}"
                );
            }
        }
        assert_eq!(
            normalized["event_id"], sent["event_id"],
            "Relay changed the event id"
        );
        let (kept, sent_exceptions) = (exceptions(normalized), exceptions(sent));
        if let Some((k, s)) = first_difference(&kept, &sent_exceptions) {
            panic!("Relay changed the exceptions: {k} instead of {s}");
        }
        assert_eq!(
            message(normalized),
            message(sent),
            "Relay lost the message:\n{normalized:#}"
        );
        // Relay writes the time as seconds since the epoch; the instant must be the same.
        let sent_at = chrono::DateTime::parse_from_rfc3339(sent["timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_micros() as f64
            / 1e6;
        let kept = normalized["timestamp"].as_f64().unwrap();
        assert!(
            (kept - sent_at).abs() < 1e-3,
            "timestamp {kept} vs {sent_at}"
        );
    }
}

/// The message text, from `logentry` or `message` (Relay moves a plain `message` into
/// `logentry.formatted`).
fn message(event: &Value) -> Option<String> {
    let entry = |v: &Value| {
        v["formatted"]
            .as_str()
            .or(v["message"].as_str())
            .map(str::to_owned)
    };
    event
        .get("logentry")
        .and_then(entry)
        .or_else(|| event["message"].as_str().map(str::to_owned))
        .or_else(|| event.get("message").and_then(entry))
}

/// The first place where `kept` differs from `sent`, as the two sides there. What we did not
/// send (`null`) may be filled in: Relay derives a frame's `filename` from its `abs_path`.
fn first_difference(kept: &Value, sent: &Value) -> Option<(Value, Value)> {
    let (a, b) = (kept, sent);
    match (a, b) {
        (_, Value::Null) => None,
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).find_map(|(x, y)| first_difference(x, y))
        }
        _ if a == b => None,
        _ => Some((a.clone(), b.clone())),
    }
}
