//! The new channel kinds through the real binary, configured in TOML as docs/alerts.md shows
//! them: a job that fails and then succeeds reaches PagerDuty as a trigger and a resolve with
//! one `dedup_key`, and an ntfy topic with a `template` as the template's text, both marked
//! `sent` in the API. The destinations are loopback fakes.

// Both harnesses are needed: the collector's (`support`) and the fake destinations
// (`alert_support`); each carries its own copy of `support/python.rs`.
use crate::alert_support;
use crate::support;

use std::time::Duration;

use alert_support::{Fake, runtime};
use axum::http::StatusCode as FakeStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Collector, checkin, envelope, poll};

#[test]
fn a_failing_then_recovered_job_triggers_and_resolves_pagerduty_and_reaches_ntfy_templated() {
    let runtime = runtime();
    let pagerduty = runtime.block_on(Fake::start(|seen, _| {
        let body = json!({"status": "success", "message": "Event processed",
                          "dedup_key": seen.json["dedup_key"]});
        (FakeStatus::ACCEPTED, Vec::new(), body.to_string())
    }));
    let ntfy = runtime.block_on(Fake::start(|_, _| {
        (FakeStatus::OK, Vec::new(), json!({"id": "m"}).to_string())
    }));
    let collector = Collector::start_with_env(
        Some(&format!(
            r#"
[[channels]]
name = "pager"
type = "pagerduty"
routing_key = "env:TEST_PAGERDUTY_KEY"
events_url = "{pd}"

[[channels]]
name = "phone"
type = "ntfy"
url = "{ntfy}/ops-alerts"
template = "{{{{ alert.kind }}}}: {{{{ alert.monitor.slug }}}} is {{{{ alert.monitor.status }}}}"

[[rules]]
name = "jobs"
on = ["monitor.failed", "monitor.recovered"]
channels = ["pager", "phone"]
"#,
            pd = pagerduty.url,
            ntfy = ntfy.url,
        )),
        &[("TEST_PAGERDUTY_KEY", "routing-key-from-env")],
    );
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "failure_issue_threshold": 1});
    let failing = envelope(&[("check_in", &checkin("nightly", "error", None, Some(config)))]);
    assert_eq!(collector.post_envelope(failing).0, StatusCode::OK);
    poll(Duration::from_secs(10), "the trigger", || {
        (pagerduty.seen().len() == 1 && ntfy.seen().len() == 1).then_some(())
    });
    let ok = envelope(&[("check_in", &checkin("nightly", "ok", None, None))]);
    assert_eq!(collector.post_envelope(ok).0, StatusCode::OK);
    poll(Duration::from_secs(10), "the resolve", || {
        (pagerduty.seen().len() == 2 && ntfy.seen().len() == 2).then_some(())
    });

    let events: Vec<Value> = pagerduty.seen().into_iter().map(|s| s.json).collect();
    assert_eq!(events[0]["event_action"], "trigger");
    assert_eq!(events[1]["event_action"], "resolve");
    assert_eq!(events[0]["dedup_key"], events[1]["dedup_key"]);
    assert_eq!(events[0]["routing_key"], "routing-key-from-env");
    assert_eq!(events[0]["payload"]["source"], "1/nightly/production");
    assert!(pagerduty.seen().iter().all(|s| s.path == "/v2/enqueue"));

    let messages: Vec<Value> = ntfy.seen().into_iter().map(|s| s.json).collect();
    assert_eq!(messages[0]["message"], "monitor.failed: nightly is error");
    assert_eq!(messages[1]["message"], "monitor.recovered: nightly is ok");
    assert_eq!(messages[0]["topic"], "ops-alerts");

    let deliveries = collector.api_get("/api/v1/alerts?limit=100");
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 4, "{deliveries:#?}");
    for delivery in deliveries {
        assert_eq!(delivery["state"], "sent", "{delivery:#}");
    }
    let stderr = collector.stderr();
    assert!(
        !stderr.contains("routing-key-from-env"),
        "the key never reaches a log"
    );
}

/// Issue 19, item 4 end to end: an incident triggers a loopback PagerDuty Events API v2 fake,
/// is acknowledged through the API, then resolves; the fake sees trigger → acknowledge →
/// resolve with one `dedup_key`, each in the documented shape (`payload` with `summary`,
/// `severity` and `source` on the trigger only).
#[test]
fn an_incident_acknowledged_through_the_api_reaches_pagerduty_as_trigger_acknowledge_resolve() {
    let runtime = runtime();
    let pagerduty = runtime.block_on(Fake::start(|seen, _| {
        let body = json!({"status": "success", "message": "Event processed",
                          "dedup_key": seen.json["dedup_key"]});
        (FakeStatus::ACCEPTED, Vec::new(), body.to_string())
    }));
    let collector = Collector::start(Some(&format!(
        r#"
[[channels]]
name = "pager"
type = "pagerduty"
routing_key = "r0utingkey0123456789abcdef012345"
events_url = "{pd}"

[[rules]]
name = "oncall"
on = ["monitor.failed", "monitor.acknowledged", "monitor.recovered"]
channels = ["pager"]
"#,
        pd = pagerduty.url,
    )));
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "failure_issue_threshold": 1});
    let failing = envelope(&[("check_in", &checkin("nightly", "error", None, Some(config)))]);
    assert_eq!(collector.post_envelope(failing).0, StatusCode::OK);
    poll(Duration::from_secs(10), "the trigger", || {
        (pagerduty.seen().len() == 1).then_some(())
    });

    let open = collector.api_get("/api/v1/incidents?open=true");
    let id = open[0]["id"].as_str().expect("an open incident").to_owned();
    let (code, acknowledged) = support::json(
        collector
            .admin(
                reqwest::Method::POST,
                &format!("/api/v1/incidents/{id}/ack"),
            )
            .json(&json!({"by": "alice"}))
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::OK, "{acknowledged}");
    poll(Duration::from_secs(10), "the acknowledge", || {
        (pagerduty.seen().len() == 2).then_some(())
    });
    let ok = envelope(&[("check_in", &checkin("nightly", "ok", None, None))]);
    assert_eq!(collector.post_envelope(ok).0, StatusCode::OK);
    poll(Duration::from_secs(10), "the resolve", || {
        (pagerduty.seen().len() == 3).then_some(())
    });

    let seen = pagerduty.seen();
    assert!(
        seen.iter()
            .all(|s| s.path == "/v2/enqueue" && s.method == axum::http::Method::POST)
    );
    let events: Vec<Value> = seen.into_iter().map(|s| s.json).collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    let key = events[0]["dedup_key"].as_str().unwrap();
    assert!(key.starts_with("watchpost-"), "{key}");
    for event in &events {
        assert_eq!(event["routing_key"], "r0utingkey0123456789abcdef012345");
        assert_eq!(event["dedup_key"], key, "one dedup_key: {event:#}");
    }
    let payload = &events[0]["payload"];
    assert!(
        payload["summary"]
            .as_str()
            .unwrap()
            .starts_with("Monitor nightly (production) is failing"),
        "{payload:#}"
    );
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["source"], "1/nightly/production");
    // Only a trigger carries a payload (the Events API ignores it otherwise).
    assert!(events[1].get("payload").is_none(), "{:#}", events[1]);
    assert!(events[2].get("payload").is_none(), "{:#}", events[2]);
    // The fake has answered; the channel worker marks the delivery sent just after.
    let deliveries = poll(
        Duration::from_secs(10),
        "three deliveries marked sent",
        || {
            let deliveries = collector.api_get("/api/v1/alerts?limit=100");
            let all = deliveries.as_array().unwrap().clone();
            all.iter().all(|d| d["state"] == "sent").then_some(all)
        },
    );
    assert_eq!(deliveries.len(), 3, "{deliveries:#?}");
}
