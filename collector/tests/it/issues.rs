//! Errors become issues, through the real binary: grouping visible in the issues API, events
//! kept per issue newest first, resolve → regress alerting once, ignore staying silent, bad
//! input refused without a trace, and the events `sentry-sdk` (Python) really sends.

// Both harnesses are needed: the collector's (`support`) and the fake destinations
// (`alert_support`); each carries its own copy of `support/python.rs`.
use crate::alert_support;
use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use alert_support::{Fake, status};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Collector, assert_error, checkin, envelope, interval, json as response_json, poll};

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// An exception event as a Python SDK sends a handled error.
fn key_error(event_id: &str, line: u64) -> String {
    json!({
        "event_id": event_id,
        "timestamp": chrono::Utc::now().timestamp(),
        "platform": "python",
        "level": "error",
        "exception": {"values": [{
            "type": "KeyError",
            "value": "'invoice_id'",
            "stacktrace": {"frames": [
                {"function": "handle", "module": "billing.views", "filename": "billing/views.py",
                 "lineno": line, "in_app": true},
                {"function": "total", "module": "billing.invoice", "filename": "billing/invoice.py",
                 "lineno": 12, "in_app": true}
            ]}
        }]}
    })
    .to_string()
}

fn issues(collector: &Collector, query: &str) -> Vec<Value> {
    collector
        .api_get(&format!("/api/v1/issues{query}"))
        .as_array()
        .unwrap()
        .clone()
}

fn patch(collector: &Collector, id: &str, body: &str) -> reqwest::blocking::Response {
    collector
        .admin(Method::PATCH, &format!("/api/v1/issues/{id}"))
        .body(body.to_owned())
        .send()
        .unwrap()
}

fn post_event(collector: &Collector, event: &str) {
    let (status, body) = collector.post_envelope(envelope(&[("event", event)]));
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn one_error_twice_is_one_issue_and_a_resolved_issue_regresses_with_one_alert() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hook = runtime.block_on(Fake::start(|_, _| status(200, "ok")));
    let collector = Collector::start(Some(&format!(
        r#"
[[channels]]
name = "hook"
type = "webhook"
url = "{}/hook"

[[rules]]
name = "new errors"
on = ["issue.first_seen", "issue.regressed"]
channels = ["hook"]
"#,
        hook.url
    )));

    // The same error twice (another line: a new release moved it) is one issue.
    let first_id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
    let second_id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2";
    post_event(&collector, &key_error(first_id, 40));
    post_event(&collector, &key_error(second_id, 41));
    let listed = issues(&collector, "");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let issue = &listed[0];
    let documented: BTreeSet<&str> = [
        "id",
        "project",
        "title",
        "culprit",
        "level",
        "status",
        "first_seen",
        "last_seen",
        "count",
    ]
    .into();
    assert_eq!(keys(issue), documented);
    assert_eq!(issue["title"], "KeyError: 'invoice_id'");
    assert_eq!(issue["culprit"], "total in billing.invoice");
    assert_eq!(issue["level"], "error");
    assert_eq!(issue["status"], "unresolved");
    assert_eq!(issue["project"], 1);
    assert_eq!(issue["count"], 2);
    assert!(issue["first_seen"].as_str() <= issue["last_seen"].as_str());
    let id = issue["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);

    // Its events, newest first, as sent.
    let events = collector.api_get(&format!("/api/v1/issues/{id}/events"));
    let ids: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second_id, first_id]);
    assert_eq!(events[0]["exception"]["values"][0]["type"], "KeyError");
    let one = collector.api_get(&format!("/api/v1/issues/{id}/events?limit=1"));
    assert_eq!(one.as_array().unwrap().len(), 1);

    // One issue.first_seen, however many events.
    let first = poll(Duration::from_secs(10), "issue.first_seen", || {
        hook.seen().into_iter().next()
    });
    assert_eq!(first.json["kind"], "issue.first_seen");
    assert_eq!(first.json["issue"]["id"], id.as_str());
    assert_eq!(first.json["issue"]["title"], "KeyError: 'invoice_id'");
    assert_eq!(first.json["url"], collector.url(&format!("/issues/{id}")));

    // Resolved, then seen again: regressed, alerted once.
    let response = patch(&collector, &id, r#"{"status":"resolved"}"#);
    let (code, body) = response_json(response);
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    assert_eq!(issues(&collector, "?status=resolved").len(), 1);
    assert!(issues(&collector, "?status=unresolved").is_empty());
    post_event(
        &collector,
        &key_error("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3", 40),
    );
    post_event(
        &collector,
        &key_error("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa4", 40),
    );
    let listed = issues(&collector, "?project=1");
    assert_eq!(listed[0]["status"], "unresolved");
    assert_eq!(listed[0]["count"], 4);
    let regressed = poll(Duration::from_secs(10), "issue.regressed", || {
        hook.seen().get(1).cloned()
    });
    assert_eq!(regressed.json["kind"], "issue.regressed");
    assert_eq!(regressed.json["issue"]["count"], 3);
    // Deliveries are written with the event that caused them, so once the event is
    // acknowledged the outbox is complete: two alerts, no third.
    let planned = collector.api_get("/api/v1/alerts?channel=hook");
    let kinds: Vec<&str> = planned
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["issue.regressed", "issue.first_seen"],
        "newest first"
    );

    // Ignored: counted, never alerted.
    let (code, _) = response_json(patch(&collector, &id, r#"{"status":"ignored"}"#));
    assert_eq!(code, StatusCode::OK);
    post_event(
        &collector,
        &key_error("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa5", 40),
    );
    assert_eq!(issues(&collector, "")[0]["count"], 5);
    assert_eq!(issues(&collector, "")[0]["status"], "ignored");
    assert_eq!(
        collector
            .api_get("/api/v1/alerts?channel=hook")
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Mistakes get a 4xx that says what is wrong.
    assert_error(
        patch(&collector, &id, r#"{"status":"fixed"}"#),
        StatusCode::BAD_REQUEST,
        "unknown issue status `fixed`",
    );
    assert_error(
        patch(&collector, &id, r#"{"status":"resolved","owner":"me"}"#),
        StatusCode::BAD_REQUEST,
        "unknown field",
    );
    assert_error(
        patch(&collector, "0123", r#"{"status":"resolved"}"#),
        StatusCode::NOT_FOUND,
        "no issue has id `0123`",
    );
    assert_error(
        collector
            .admin(Method::GET, "/api/v1/issues/0123/events")
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
        "no issue",
    );
    assert_error(
        collector
            .admin(Method::GET, "/api/v1/issues?status=open")
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "unknown issue status",
    );
    assert_error(
        collector
            .admin(Method::GET, "/api/v1/alerts?state=lost")
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "unknown state `lost`",
    );
    assert_error(
        collector
            .request(Method::GET, "/api/v1/issues")
            .send()
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "admin token",
    );
}

#[test]
fn an_envelope_with_an_invalid_event_is_refused_whole() {
    let collector = Collector::start(None);
    let good_checkin = checkin("nightly", "ok", None, Some(interval(1, "day")));
    let good_event = key_error("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1", 1);
    for (bad, needle) in [
        ("{\"event_id\":\"nope\"}", "item 2 (event)"),
        ("[1,2]", "item 2 (event)"),
        (
            "{\"event_id\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2\"}",
            "timestamp",
        ),
    ] {
        let body = envelope(&[
            ("check_in", &good_checkin),
            ("event", &good_event),
            ("event", bad),
        ]);
        let response = collector
            .request(Method::POST, "/api/1/envelope/")
            .header("X-Sentry-Auth", support::sentry_auth(&collector.key))
            .body(body)
            .send()
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, needle);
    }
    assert!(
        collector.monitor("nightly").is_empty(),
        "no check-in applied"
    );
    assert!(issues(&collector, "").is_empty(), "no event applied");
    assert!(
        collector
            .api_get("/api/v1/alerts")
            .as_array()
            .unwrap()
            .is_empty(),
        "no alert planned"
    );
}

/// The body of a captured request (`sdk/tests/fixtures`): after the first blank line.
fn fixture_body(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sdk/tests/fixtures/sentry-python-2.75.0")
        .join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let split = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("a blank line after the headers");
    raw[split + 2..].to_vec()
}

#[test]
fn sentry_python_exception_and_message_events_become_issues_with_their_titles() {
    let collector = Collector::start(None);
    // Captured from sentry-sdk 2.75.0: `capture_exception()` of a KeyError raised in `inner`,
    // and `capture_message("disk usage above 90%", level="warning")`.
    for fixture in ["06.request.txt", "07.request.txt"] {
        let (status, body) = collector.post_envelope(fixture_body(fixture));
        assert_eq!(status, StatusCode::OK, "{fixture}: {body}");
        assert!(body["id"].is_string(), "{fixture}: {body}");
    }
    let listed = issues(&collector, "?project=1");
    let mut seen: Vec<(String, String, Value)> = listed
        .iter()
        .map(|i| {
            (
                i["title"].as_str().unwrap().to_owned(),
                i["level"].as_str().unwrap().to_owned(),
                i["culprit"].clone(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            (
                "KeyError: 'missing'".to_owned(),
                "error".to_owned(),
                json!("inner in __main__")
            ),
            (
                "disk usage above 90%".to_owned(),
                "warning".to_owned(),
                Value::Null
            ),
        ]
    );
    let exception = listed
        .iter()
        .find(|i| i["title"] == "KeyError: 'missing'")
        .unwrap();
    let events = collector.api_get(&format!(
        "/api/v1/issues/{}/events",
        exception["id"].as_str().unwrap()
    ));
    assert_eq!(events[0]["event_id"], "3519eabd8c9a4fad92fe9621e3db405e");
    assert_eq!(events[0]["sdk"]["name"], "sentry.python");

    // The default rule sends the two new issues to the `log` channel.
    let logged = poll(Duration::from_secs(10), "two deliveries to the log", || {
        let sent = collector.api_get("/api/v1/alerts?channel=log&state=sent");
        (sent.as_array().unwrap().len() == 2).then_some(sent)
    });
    assert!(
        logged
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["kind"] == "issue.first_seen" && d["rule"] == "default")
    );
}
