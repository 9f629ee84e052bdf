//! Acknowledging a probe's open incident through the real binary: `probe.down` reaches a
//! webhook fake with the incident's id and a signed acknowledge link; the API, the CLI and
//! the link's confirmation page acknowledge it; `probe.acknowledged` goes out; the
//! acknowledgement survives the probe's next checks (its task owns its state and records the
//! acknowledgement itself); the recovery (`probe.up`) says who acknowledged and when. A
//! snoozed probe is tracked without alerts, and alerts once when the snooze ends.

use crate::alert_support;
use crate::support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use alert_support::{Fake, runtime, status};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Collector, assert_error, poll};

const WITHIN: Duration = Duration::from_secs(20);

/// A target answering what `code` holds, a webhook fake, and a collector probing the target
/// every 200ms (one failure is down, one success is up) and routing probe alerts to the hook.
struct Setup {
    collector: Collector,
    code: Arc<AtomicU16>,
    _target: Fake,
    hook: Fake,
    _runtime: tokio::runtime::Runtime,
}

fn start() -> Setup {
    start_answering(503, "")
}

/// [`start`] with a target that answers `200` until told otherwise.
fn start_healthy() -> Setup {
    start_answering(200, "")
}

/// A setup whose config ends with `extra` TOML.
fn start_answering(initial: u16, extra: &str) -> Setup {
    let runtime = runtime();
    let code = Arc::new(AtomicU16::new(initial));
    let answer = Arc::clone(&code);
    let target = runtime.block_on(Fake::start(move |_, _| {
        status(answer.load(Ordering::Relaxed), "")
    }));
    let hook = runtime.block_on(Fake::start(|_, _| status(200, "ok")));
    let collector = Collector::start(Some(&format!(
        r#"
[alerts]
dedup_window = "0s"

[[channels]]
name = "hook"
type = "webhook"
url = "{}/hook"

[[rules]]
name = "oncall"
on = ["probe.down", "probe.up", "probe.acknowledged"]
channels = ["hook"]

[[probes]]
name = "api-health"
url = "{}/health"
interval = "200ms"
timeout = "150ms"
failure_threshold = 1
success_threshold = 1
{extra}
"#,
        hook.url, target.url
    )));
    Setup {
        _target: target,
        _runtime: runtime,
        code,
        hook,
        collector,
    }
}

/// The alerts of `kind` the hook received, oldest first.
fn received(hook: &Fake, kind: &str) -> Vec<Value> {
    hook.seen()
        .into_iter()
        .map(|seen| seen.json)
        .filter(|alert| alert["kind"] == kind)
        .collect()
}

/// The probe's checks so far, as `GET /api/v1/probes` counts them.
/// The probe as `GET /api/v1/probes` shows it.
fn probe_view(collector: &Collector) -> Value {
    collector.api_get("/api/v1/probes")[0].clone()
}

fn last_check(collector: &Collector) -> Value {
    let probes = collector.api_get("/api/v1/probes");
    probes[0]["checks"].clone()
}

/// Waits until the probe has been checked again `n` times (its stored check count moved on).
fn wait_checks(collector: &Collector, n: usize) {
    for _ in 0..n {
        let before = last_check(collector);
        poll(WITHIN, "another probe check", || {
            (last_check(collector) != before).then_some(())
        });
    }
}

/// The first `probe.down` alert.
fn down_alert(setup: &Setup) -> Value {
    poll(WITHIN, "the probe.down alert", || {
        received(&setup.hook, "probe.down").into_iter().next()
    })
}

fn open_probe_incident(collector: &Collector) -> Value {
    let open = collector.api_get("/api/v1/incidents?open=true");
    let probes: Vec<&Value> = open
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "probe")
        .collect();
    assert_eq!(probes.len(), 1, "{open:#}");
    probes[0].clone()
}

#[test]
fn the_api_acknowledges_a_probe_incident_which_survives_its_next_checks_and_the_recovery_says_who()
{
    let setup = start();
    let collector = &setup.collector;
    let down = down_alert(&setup);
    let id = down["incident"]["id"]
        .as_str()
        .expect("probe.down names its incident")
        .to_owned();
    assert_eq!(open_probe_incident(collector)["id"], id.as_str());
    assert_eq!(down["incident"]["acknowledged"], Value::Null);

    let path = format!("/api/v1/incidents/{id}/ack");
    let (code, incident) = support::json(
        collector
            .admin(Method::POST, &path)
            .json(&json!({"by": "carol"}))
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::OK, "{incident}");
    assert_eq!(incident["acknowledged"]["by"], "carol");

    // Checks go on while it is down; each writes the probe's state, and keeps the acknowledgement.
    wait_checks(collector, 3);
    assert_eq!(
        open_probe_incident(collector)["acknowledged"]["by"],
        "carol"
    );
    assert_error(
        collector.admin(Method::POST, &path).send().unwrap(),
        StatusCode::CONFLICT,
        "already acknowledged by carol",
    );
    // The CLI says the same, and fails.
    let again = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["incidents", "ack", &id, "--by", "dave"])
        .env("WATCHPOST_URL", &collector.base)
        .env("WATCHPOST_ADMIN_TOKEN", &collector.token)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already acknowledged by carol"));

    let acknowledged = poll(WITHIN, "probe.acknowledged", || {
        received(&setup.hook, "probe.acknowledged")
            .into_iter()
            .next()
    });
    assert_eq!(
        acknowledged["title"],
        "Probe api-health acknowledged by carol"
    );
    assert_eq!(acknowledged["incident"]["acknowledged"]["by"], "carol");
    assert_eq!(acknowledged["probe"]["name"], "api-health");
    assert_eq!(received(&setup.hook, "probe.acknowledged").len(), 1);

    // The recovery says who acknowledged and when.
    setup.code.store(200, Ordering::Relaxed);
    let up = poll(WITHIN, "probe.up", || {
        received(&setup.hook, "probe.up").into_iter().next()
    });
    assert!(
        up["message"]
            .as_str()
            .unwrap()
            .contains("Acknowledged by carol "),
        "{up:#}"
    );
    assert_eq!(up["incident"]["acknowledged"]["by"], "carol");
    assert!(up.get("acknowledge_url").is_none());
    let resolved = collector.api_get("/api/v1/incidents");
    let record = resolved
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(record["acknowledged"]["by"], "carol", "{record:#}");
    assert!(record["resolved_at"].is_string(), "{record:#}");
}

#[test]
fn the_cli_acknowledges_a_probe_incident() {
    let setup = start();
    let collector = &setup.collector;
    let id = down_alert(&setup)["incident"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let output = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["incidents", "ack", &id, "--by", "dave"])
        .env("WATCHPOST_URL", &collector.base)
        .env("WATCHPOST_ADMIN_TOKEN", &collector.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), format!("incident {id} acknowledged by dave"));
    wait_checks(collector, 2);
    assert_eq!(open_probe_incident(collector)["acknowledged"]["by"], "dave");
}

#[test]
fn the_link_on_probe_down_shows_a_page_on_get_and_acknowledges_on_post() {
    let setup = start();
    let collector = &setup.collector;
    let down = down_alert(&setup);
    let link = down["acknowledge_url"]
        .as_str()
        .expect("probe.down carries an acknowledge link")
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/ack/", collector.base)),
        "{link}"
    );
    let browser = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // A previewer's GET: a confirmation page, nothing acknowledged.
    let page = browser.get(&link).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().unwrap().contains("Probe api-health"));
    assert_eq!(open_probe_incident(collector)["acknowledged"], Value::Null);

    // A snooze the page does not offer is refused and changes nothing.
    let refused = browser
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("by=alice&snooze=forever")
        .send()
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(open_probe_incident(collector)["acknowledged"], Value::Null);
    assert_eq!(probe_view(collector)["snoozed_until"], Value::Null);

    // Acknowledged and snoozed for an hour from the link.
    let posted = browser
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("by=alice&snooze=1h")
        .send()
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK);
    assert!(
        posted
            .text()
            .unwrap()
            .contains("The probe is snoozed for 1h"),
        "the page says what was done"
    );
    let until = probe_view(collector)["snoozed_until"]
        .as_str()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
        .expect("the probe is snoozed");
    let hour = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    assert!(
        until <= hour && until > hour - chrono::TimeDelta::minutes(5),
        "snoozed for an hour: {until}"
    );
    wait_checks(collector, 2);
    assert_eq!(
        open_probe_incident(collector)["acknowledged"]["by"],
        "alice"
    );
    let acknowledged = poll(WITHIN, "probe.acknowledged", || {
        received(&setup.hook, "probe.acknowledged")
            .into_iter()
            .next()
    });
    assert_eq!(acknowledged["incident"]["acknowledged"]["by"], "alice");

    // Reused: does nothing, says who acknowledged.
    let reused = browser
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("by=mallory")
        .send()
        .unwrap();
    assert_eq!(reused.status(), StatusCode::CONFLICT);
    assert_eq!(
        open_probe_incident(collector)["acknowledged"]["by"],
        "alice"
    );
}

#[test]
fn a_snoozed_probe_is_tracked_without_alerts_and_alerts_once_when_the_snooze_ends() {
    let setup = start_healthy();
    let collector = &setup.collector;
    // The prober runs once the probe has been checked.
    poll(WITHIN, "the first check", || {
        (last_check(collector) != json!(0)).then_some(())
    });
    let path = "/api/v1/probes/api-health/snooze";
    assert_error(
        collector
            .admin(Method::POST, path)
            .json(&json!({"snooze": "forever"}))
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "is not a duration",
    );
    assert_error(
        collector
            .admin(Method::POST, "/api/v1/probes/nope/snooze")
            .json(&json!({"snooze": "1h"}))
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
        "no probe `nope`",
    );
    let (code, snoozed) = support::json(
        collector
            .admin(Method::POST, path)
            .json(&json!({"snooze": "1h"}))
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::OK, "{snoozed}");
    assert!(snoozed["snoozed_until"].is_string(), "{snoozed}");
    let cli = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["probes", "snooze", "api-health", "--for", "2h"])
        .env("WATCHPOST_URL", &collector.base)
        .env("WATCHPOST_ADMIN_TOKEN", &collector.token)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        String::from_utf8_lossy(&cli.stdout).starts_with("probe `api-health` snoozed until "),
        "{}",
        String::from_utf8_lossy(&cli.stdout)
    );

    // Down while snoozed: the incident opens, checks go on, no alert.
    setup.code.store(503, Ordering::Relaxed);
    poll(WITHIN, "the probe's incident", || {
        let open = collector.api_get("/api/v1/incidents?open=true");
        open.as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "probe")
            .then_some(())
    });
    wait_checks(collector, 3);
    assert!(received(&setup.hook, "probe.down").is_empty());

    // The snooze ends (through the CLI) while it is still down: its alert goes out, once.
    let output = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["probes", "unsnooze", "api-health"])
        .env("WATCHPOST_URL", &collector.base)
        .env("WATCHPOST_ADMIN_TOKEN", &collector.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "probe `api-health` is not snoozed");
    let down = down_alert(&setup);
    assert_eq!(down["incident"]["id"], open_probe_incident(collector)["id"]);
    wait_checks(collector, 3);
    assert_eq!(received(&setup.hook, "probe.down").len(), 1);
}

#[test]
fn a_maintenance_window_naming_a_probe_holds_its_alerts_but_not_its_incident() {
    // Starts every minute and lasts a minute: always open.
    let setup = start_answering(
        503,
        r#"
[[maintenance]]
name = "api-deploys"
start = "* * * * *"
duration = "1m"
probe = "api-*"
"#,
    );
    let collector = &setup.collector;
    poll(WITHIN, "the probe's incident", || {
        let open = collector.api_get("/api/v1/incidents?open=true");
        open.as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "probe")
            .then_some(())
    });
    wait_checks(collector, 3);
    assert!(received(&setup.hook, "probe.down").is_empty());
    setup.code.store(200, Ordering::Relaxed);
    poll(WITHIN, "the probe's recovery", || {
        let open = collector.api_get("/api/v1/incidents?open=true");
        open.as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] != "probe")
            .then_some(())
    });
    wait_checks(collector, 2);
    assert!(received(&setup.hook, "probe.up").is_empty());
    assert!(setup.hook.seen().is_empty(), "no alert at all");
}

#[test]
fn the_dashboard_acknowledges_and_snoozes_a_probe_with_the_session_token() {
    use crate::dashboard_oncall::{csrf, log_in, page, post};
    let setup = start();
    let collector = &setup.collector;
    down_alert(&setup);
    let cookie = log_in(collector);

    // The incident list offers the acknowledge form for the probe's incident.
    let incidents = page(collector, "/incidents", &cookie);
    let id = open_probe_incident(collector)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let action = format!("/incidents/{id}/ack");
    assert!(
        incidents.contains(&action),
        "no acknowledge form for the probe"
    );
    let token = csrf(&incidents);
    assert_eq!(
        post(
            collector,
            &action,
            &cookie,
            &[("csrf", &"0".repeat(64)), ("by", "mallory")]
        ),
        StatusCode::FORBIDDEN,
        "a forged form does nothing"
    );
    assert_eq!(open_probe_incident(collector)["acknowledged"], Value::Null);
    assert_eq!(
        post(
            collector,
            &action,
            &cookie,
            &[("csrf", &token), ("by", "dana")]
        ),
        StatusCode::SEE_OTHER
    );
    wait_checks(collector, 2);
    assert_eq!(open_probe_incident(collector)["acknowledged"]["by"], "dana");

    // The probes page snoozes and unsnoozes it.
    let probes = page(collector, "/probes", &cookie);
    assert!(probes.contains("Snooze 1 h"), "no snooze button on /probes");
    let snooze = |action: &str| {
        post(
            collector,
            "/probes",
            &cookie,
            &[("csrf", &token), ("name", "api-health"), ("action", action)],
        )
    };
    assert_eq!(snooze("forever"), StatusCode::BAD_REQUEST);
    assert_eq!(probe_view(collector)["snoozed_until"], Value::Null);
    assert_eq!(
        post(
            collector,
            "/probes",
            &cookie,
            &[("csrf", &token), ("name", "nope"), ("action", "snooze1h")]
        ),
        StatusCode::NOT_FOUND
    );
    assert_eq!(snooze("snooze1h"), StatusCode::SEE_OTHER);
    assert!(probe_view(collector)["snoozed_until"].is_string());
    assert!(page(collector, "/probes", &cookie).contains("snoozed until"));
    assert_eq!(snooze("unsnooze"), StatusCode::SEE_OTHER);
    assert_eq!(probe_view(collector)["snoozed_until"], Value::Null);
}
