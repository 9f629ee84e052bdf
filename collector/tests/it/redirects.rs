//! Outbound requests to configured URLs follow no redirect, through the real binary: the
//! watchdog, the upstream relay and a webhook channel each send to a loopback server that
//! answers `307` pointing at a second loopback server. The second server must see nothing
//! (the URLs carry secrets), the failure must name the new location so the operator can fix
//! the URL, and the sender must keep trying.

// Both harnesses are needed: the collector's (`support`) and the fake destinations
// (`alert_support`); each carries its own copy of `support/python.rs`.
use crate::alert_support;
use crate::support;

use std::time::Duration;

use alert_support::{Answer, Fake, status};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Collector, checkin, envelope, interval, poll};
use tokio::runtime::Runtime;

/// Runs the fakes.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Where the redirect points, and the server that answers it.
struct Redirect {
    /// Answers `307` with `Location: {target}/moved` to everything.
    from: Fake,
    /// Must never see a request.
    target: Fake,
    /// `http://127.0.0.1:PORT/moved`, as it must be named in the failure.
    location: String,
}

fn redirect(runtime: &Runtime) -> Redirect {
    let target = runtime.block_on(Fake::start(|_, _| status(200, "ok")));
    let location = format!("{}/moved", target.url);
    let answer = location.clone();
    let from = runtime.block_on(Fake::start(move |_, _| -> Answer {
        (
            StatusCode::TEMPORARY_REDIRECT,
            vec![("location", answer.clone())],
            String::new(),
        )
    }));
    Redirect {
        from,
        target,
        location,
    }
}

/// Waits until the redirecting server has been asked `n` times; asserts the target never was.
fn asked_again(redirect: &Redirect, n: usize, what: &str) {
    poll(Duration::from_secs(20), what, || {
        (redirect.from.seen().len() >= n).then_some(())
    });
    assert!(
        redirect.target.seen().is_empty(),
        "the redirect was followed: {:?}",
        redirect.target.seen()
    );
}

#[test]
fn the_watchdog_does_not_follow_a_redirect_and_names_the_new_location() {
    let runtime = runtime();
    let redirect = redirect(&runtime);
    let collector = Collector::start(Some(&format!(
        "[watchdog]\nurl = \"{}/ping/secret-check-id\"\ninterval = \"1s\"\n",
        redirect.from.url
    )));
    // One heartbeat per interval, each refused and tried again at the next.
    asked_again(&redirect, 3, "three watchdog heartbeats");
    let log = collector.stderr();
    let line = log
        .lines()
        .find(|line| line.contains("watchdog heartbeat not accepted"))
        .unwrap_or_else(|| panic!("no failure logged:\n{log}"));
    assert!(
        line.contains("307") && line.contains(&redirect.location),
        "the failure names the new location: {line}"
    );
    assert!(!log.contains("secret-check-id"), "the URL leaked:\n{log}");
}

#[test]
fn the_upstream_relay_does_not_follow_a_redirect_and_keeps_the_envelope() {
    let runtime = runtime();
    let redirect = redirect(&runtime);
    let key = "5e11ab1e5e11ab1e5e11ab1e5e11ab1e";
    let collector = Collector::start(Some(&format!(
        "[upstream]\ndsn = \"http://{key}@{}/42\"\n",
        redirect.from.addr
    )));
    let (status, body) = collector.post_envelope(envelope(&[(
        "check_in",
        &checkin("relayed", "ok", None, Some(interval(1, "hour"))),
    )]));
    assert_eq!(status, StatusCode::OK, "{body}");
    // Backoff from 1 s: the second and third attempts come within about 3 s.
    asked_again(&redirect, 3, "three relay attempts");
    let metrics = collector
        .request(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("watchpost_upstream_backlog"), 1.0, "kept for a retry");
    assert!(value("watchpost_upstream_failed_total") >= 2.0);
    assert_eq!(
        value("watchpost_upstream_dropped_total{reason=\"rejected\"}"),
        0.0
    );
    let log = collector.stderr();
    let line = log
        .lines()
        .find(|line| line.contains("upstream unavailable"))
        .unwrap_or_else(|| panic!("no failure logged:\n{log}"));
    assert!(
        line.contains("307") && line.contains(&redirect.location),
        "the failure names the new location: {line}"
    );
}

#[test]
fn a_webhook_channel_does_not_follow_a_redirect_and_retries_with_the_location_in_last_error() {
    let runtime = runtime();
    let redirect = redirect(&runtime);
    let collector = Collector::start(Some(&format!(
        r#"
[[channels]]
name = "hook"
type = "webhook"
url = "{}/hook/secret-path"

[[rules]]
name = "jobs"
on = ["monitor.failed"]
channels = ["hook"]
"#,
        redirect.from.url
    )));
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "failure_issue_threshold": 1});
    let (status, body) = collector.post_envelope(envelope(&[(
        "check_in",
        &checkin("failing", "error", None, Some(config)),
    )]));
    assert_eq!(status, StatusCode::OK, "{body}");
    asked_again(&redirect, 3, "three delivery attempts");
    let delivery: Value = poll(
        Duration::from_secs(10),
        "the third attempt recorded",
        || {
            let list = collector.api_get("/api/v1/alerts?channel=hook");
            list.as_array()
                .and_then(|list| list.first().cloned())
                .filter(|d| d["attempts"].as_u64() >= Some(3))
        },
    );
    assert_eq!(delivery["state"], "pending", "still retried: {delivery}");
    let last_error = delivery["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("307") && last_error.contains(&redirect.location),
        "last_error names the new location: {delivery}"
    );
    assert!(!last_error.contains("secret-path"), "{delivery}");
}
