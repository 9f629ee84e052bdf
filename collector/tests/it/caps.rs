//! Caps per project and the reconfiguration policy, through the real binary: what the public
//! project key may create and change, the `403` and sentence of a refusal, nothing of a
//! refused envelope stored, the refusals counted in `/metrics` and listed by the API (across a
//! restart), and a real Sentry SDK (Python `sentry-sdk`) kept from reconfiguring a monitor
//! declared in `[[monitors]]`.

use crate::support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Collector, checkin, envelope, interval, poll, python};

/// Asserts `/healthz` answers `200` within 200 ms.
#[track_caller]
fn healthz_is_fast(collector: &Collector) {
    let started = Instant::now();
    let response = collector
        .request(Method::GET, "/healthz")
        .send()
        .expect("healthz");
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(took < Duration::from_millis(200), "/healthz took {took:?}");
}

fn refusals(collector: &Collector) -> Vec<Value> {
    collector
        .api_get("/api/v1/refusals")
        .as_array()
        .expect("a list")
        .clone()
}

/// The value of one sample of `/metrics`, 0 if absent.
fn metric(collector: &Collector, sample: &str) -> u64 {
    let text = collector
        .request(Method::GET, "/metrics")
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0)
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

fn message_event(event_id: &str, fingerprint: &str) -> String {
    json!({
        "event_id": event_id,
        "timestamp": chrono::Utc::now().timestamp(),
        "level": "error",
        "message": format!("failure {fingerprint}"),
        "fingerprint": [fingerprint],
    })
    .to_string()
}

#[test]
fn monitors_past_the_cap_are_refused_whole_counted_and_listed() {
    let mut collector = Collector::start(Some(
        "[caps]\nmonitors_per_project = 20\nenvironments_per_monitor = 2\n",
    ));
    let config = Some(interval(1, "hour"));
    // 20 monitors through the public key, 5 per envelope.
    for batch in 0..4 {
        let items: Vec<String> = (0..5)
            .map(|i| checkin(&format!("m-{}", batch * 5 + i), "ok", None, config.clone()))
            .collect();
        let items: Vec<(&str, &str)> = items.iter().map(|c| ("check_in", c.as_str())).collect();
        let (status, body) = collector.post_envelope(envelope(&items));
        assert_eq!(status, StatusCode::OK, "{body}");
        healthz_is_fast(&collector);
    }
    assert_eq!(collector.monitor("m-19").len(), 1);

    // The 21st is refused with the sentence naming the cap and its setting.
    let (status, body) = collector.post_envelope(envelope(&[(
        "check_in",
        &checkin("m-extra", "ok", None, config.clone()),
    )]));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        error_of(&body)
            .contains("project 1 already has 20 monitors, the cap caps.monitors_per_project"),
        "{body}"
    );
    assert!(collector.monitor("m-extra").is_empty());
    healthz_is_fast(&collector);

    // An envelope mixing an allowed check-in, an event and an over-cap check-in stores none
    // of them.
    let before = collector.checkins("m-0").len();
    let (status, body) = collector.post_envelope(envelope(&[
        ("check_in", &checkin("m-0", "ok", None, None)),
        (
            "event",
            &message_event("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "mixed"),
        ),
        ("check_in", &checkin("m-21", "ok", None, config.clone())),
    ]));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        error_of(&body).contains("caps.monitors_per_project"),
        "{body}"
    );
    assert_eq!(
        collector.checkins("m-0").len(),
        before,
        "the allowed check-in was not stored"
    );
    assert!(collector.monitor("m-21").is_empty());
    assert_eq!(
        collector.api_get("/api/v1/issues"),
        json!([]),
        "the event was not stored"
    );

    // Environments of an existing monitor count against their own cap.
    let staging = json!({"monitor_slug": "m-0", "status": "ok", "environment": "staging",
        "monitor_config": interval(1, "hour")});
    let (status, body) = collector.post_envelope(envelope(&[("check_in", &staging.to_string())]));
    assert_eq!(status, StatusCode::OK, "{body}");
    let dev = json!({"monitor_slug": "m-0", "status": "ok", "environment": "dev",
        "monitor_config": interval(1, "hour")});
    let (status, body) = collector.post_envelope(envelope(&[("check_in", &dev.to_string())]));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        error_of(&body)
            .contains("already has 2 environments, the cap caps.environments_per_monitor"),
        "{body}"
    );
    healthz_is_fast(&collector);

    // Counted, and listed newest first with the sentence the sender was given.
    assert_eq!(
        metric(
            &collector,
            "watchpost_refusals_total{reason=\"monitors_per_project\"}"
        ),
        2
    );
    assert_eq!(
        metric(
            &collector,
            "watchpost_refusals_total{reason=\"environments_per_monitor\"}"
        ),
        1
    );
    let listed = refusals(&collector);
    let slugs: Vec<&str> = listed.iter().map(|r| r["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["m-0", "m-21", "m-extra"], "{listed:#?}");
    assert_eq!(listed[1]["reason"], "monitors_per_project");
    assert_eq!(listed[1]["project"], 1);
    assert_eq!(listed[1]["environment"], "production");
    assert!(
        listed[1]["message"]
            .as_str()
            .unwrap()
            .contains("caps.monitors_per_project")
    );
    assert_eq!(listed[0]["environment"], "dev");

    // After a restart the counts are rebuilt from the store and the refusals are still listed.
    collector.restart();
    let (status, body) = collector.post_envelope(envelope(&[(
        "check_in",
        &checkin("m-after-restart", "ok", None, config),
    )]));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let listed = refusals(&collector);
    assert_eq!(listed.len(), 4, "{listed:#?}");
    healthz_is_fast(&collector);
}

#[test]
fn new_fingerprints_past_the_issues_cap_land_in_the_overflow_issue() {
    let collector = Collector::start(Some("[caps]\nissues_per_project = 3\n"));
    for i in 0..5 {
        let (status, body) = collector.post_envelope(envelope(&[(
            "event",
            &message_event(&format!("{i:032x}"), &format!("fp-{i}")),
        )]));
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A known fingerprint still goes to its own issue once the cap is reached.
    let (status, body) = collector.post_envelope(envelope(&[(
        "event",
        &message_event(&format!("{:032x}", 99), "fp-0"),
    )]));
    assert_eq!(status, StatusCode::OK, "{body}");

    let issues = collector.api_get("/api/v1/issues");
    let issues = issues.as_array().unwrap();
    assert_eq!(
        issues.len(),
        4,
        "three issues and the overflow: {issues:#?}"
    );
    let overflow = issues
        .iter()
        .find(|i| {
            i["title"]
                .as_str()
                .unwrap()
                .contains("caps.issues_per_project")
        })
        .expect("an overflow issue");
    assert_eq!(overflow["count"], 2, "fp-3 and fp-4");
    let first = issues
        .iter()
        .find(|i| i["title"] == "failure fp-0")
        .expect("fp-0's issue");
    assert_eq!(first["count"], 2);
    // The overflowed events are kept, as sent, under the overflow issue.
    let events = collector.api_get(&format!(
        "/api/v1/issues/{}/events",
        overflow["id"].as_str().unwrap()
    ));
    let fingerprints: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fingerprint"][0])
        .collect();
    assert_eq!(fingerprints, [&json!("fp-4"), &json!("fp-3")]);
    // Visible: one refusal per request that overflowed.
    let listed = refusals(&collector);
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert_eq!(listed[0]["reason"], "issues_per_project");
    assert!(
        listed[0]["message"]
            .as_str()
            .unwrap()
            .contains("project 1 already has 3 issues, the cap caps.issues_per_project")
    );
    assert_eq!(
        metric(
            &collector,
            "watchpost_refusals_total{reason=\"issues_per_project\"}"
        ),
        2
    );
}

#[test]
fn sentry_python_cannot_reconfigure_a_declared_monitor_but_its_check_in_counts() {
    let collector = Collector::start(Some(
        r#"
[[monitors]]
project = 1
slug = "declared"
schedule = { type = "interval", value = 1, unit = "hour" }
"#,
    ));
    python::run_python(
        r#"
import sentry_sdk
from sentry_sdk.crons import capture_checkin

sentry_sdk.init()
silence = {"schedule": {"type": "crontab", "value": "0 0 1 1 *"}, "checkin_margin": 40320}
capture_checkin(monitor_slug="declared", status="ok", monitor_config=silence)
# A monitor the SDK created itself may still be updated by the SDK (upsert = "create_update").
capture_checkin(monitor_slug="sdk-made", status="ok",
                monitor_config={"schedule": {"type": "interval", "value": 10, "unit": "minute"}})
capture_checkin(monitor_slug="sdk-made", status="ok",
                monitor_config={"schedule": {"type": "interval", "value": 20, "unit": "minute"}})
sentry_sdk.flush()
"#,
        &collector.dsn,
    );
    let checkins = poll(Duration::from_secs(10), "the declared check-in", || {
        Some(collector.checkins("declared")).filter(|c| !c.is_empty())
    });
    assert_eq!(checkins.len(), 1);
    assert_eq!(checkins[0]["status"], "ok", "the check-in itself counts");
    poll(
        Duration::from_secs(10),
        "sdk-made's second check-in",
        || (collector.checkins("sdk-made").len() == 2).then_some(()),
    );

    let declared = &collector.monitor("declared")[0];
    assert_eq!(
        declared["schedule"],
        json!({"type": "interval", "value": 1, "unit": "hour"}),
        "the declared schedule is kept"
    );
    assert_eq!(collector.monitor("sdk-made")[0]["schedule"]["value"], 20);

    let listed = refusals(&collector);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["reason"], "upsert_update");
    assert_eq!(listed[0]["slug"], "declared");
    let message = listed[0]["message"].as_str().unwrap();
    assert!(
        message.contains("declared in [[monitors]]")
            && message.contains("the check-in itself was recorded"),
        "{message}"
    );
    assert_eq!(
        metric(
            &collector,
            "watchpost_refusals_total{reason=\"upsert_update\"}"
        ),
        1
    );

    // The dashboard shows it too, escaped.
    let page = dashboard_page(&collector, "/refusals");
    assert!(page.contains("<td>declared"), "{page}");
    assert!(
        page.contains("upsert = &quot;create_update&quot; lets check-ins change only monitors"),
        "{page}"
    );
}

/// A dashboard page, after logging in with the admin token.
fn dashboard_page(collector: &Collector, path: &str) -> String {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token: String = collector
        .token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let login = client
        .post(collector.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=%2F"))
        .send()
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let response = client
        .get(collector.url(path))
        .header("Cookie", cookie)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().unwrap()
}
