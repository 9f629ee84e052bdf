//! Maintenance windows and snooze through the real binary, with a webhook fake: inside a
//! window (or a snooze) incidents open and are tracked but nothing is alerted; an incident
//! still open when the quiet time ends is alerted then, once; monitors the window does not
//! select are alerted as usual. (Windows across DST changes, and the hold's rules with
//! explicit times, are `engine/src/maintenance.rs` and `engine/src/oncall.rs`.)

use crate::alert_support;
use crate::support;

use std::time::Duration;

use alert_support::{Fake, runtime, status};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Collector, assert_error, checkin, envelope, poll, run_to_exit};

const RULES: &str = r#"
[[rules]]
name = "jobs"
on = ["monitor.failed", "monitor.recovered"]
channels = ["hook"]
"#;

fn start(extra: &str) -> (tokio::runtime::Runtime, Fake, Collector) {
    let runtime = runtime();
    let hook = runtime.block_on(Fake::start(|_, _| status(200, "ok")));
    let collector = Collector::start(Some(&format!(
        "[[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}/hook\"\n{RULES}{extra}",
        hook.url
    )));
    (runtime, hook, collector)
}

fn report(collector: &Collector, slug: &str, status: &str) {
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "failure_issue_threshold": 1});
    let body = envelope(&[("check_in", &checkin(slug, status, None, Some(config)))]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
}

fn open_incidents(collector: &Collector) -> Vec<Value> {
    collector
        .api_get("/api/v1/incidents?open=true")
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_snoozed_monitors_incident_is_alerted_once_when_the_snooze_ends_if_still_open() {
    let (_runtime, hook, collector) = start("");
    report(&collector, "nightly-backup", "ok");
    let path = "/api/v1/monitors/1/nightly-backup";
    let (code, snoozed) = support::json(
        collector
            .admin(Method::PATCH, path)
            .json(&json!({"snooze": "3s"}))
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::OK, "{snoozed}");
    assert!(snoozed[0]["snoozed_until"].is_string(), "{snoozed}");
    assert_error(
        collector
            .admin(Method::PATCH, path)
            .json(&json!({"snooze": "forever"}))
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "snooze `forever` is not a duration",
    );

    report(&collector, "nightly-backup", "error");
    // Tracked: the incident is open; not alerted while snoozed.
    assert_eq!(open_incidents(&collector).len(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(hook.failures("nightly-backup").is_empty());

    let held = poll(Duration::from_secs(10), "the held alert", || {
        hook.failures("nightly-backup").into_iter().next()
    });
    assert!(
        held["message"]
            .as_str()
            .unwrap()
            .contains("this alert was held until now"),
        "{held:#}"
    );
    // Once.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(hook.failures("nightly-backup").len(), 1);
}

#[test]
fn inside_a_window_only_the_monitors_it_selects_are_quiet_and_a_recovery_inside_is_silent() {
    // A window that is always open (every minute, for an hour) for the `db-*` slugs.
    let (_runtime, hook, collector) = start(
        r#"
[[maintenance]]
name = "db-migration"
start = "* * * * *"
duration = "1h"
timezone = "Europe/Berlin"
project = 1
slug = "db-*"
"#,
    );
    report(&collector, "db-backup", "error");
    report(&collector, "db-vacuum", "error");
    report(&collector, "report", "error");
    poll(Duration::from_secs(10), "the alert of `report`", || {
        hook.failures("report").into_iter().next()
    });
    assert_eq!(open_incidents(&collector).len(), 3, "all three are tracked");
    report(&collector, "db-vacuum", "ok");
    std::thread::sleep(Duration::from_millis(1500));
    let kinds: Vec<(String, String)> = hook
        .seen()
        .into_iter()
        .map(|s| {
            (
                s.json["kind"].as_str().unwrap().to_owned(),
                s.json["monitor"]["slug"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("monitor.failed".to_owned(), "report".to_owned())],
        "nothing about db-backup or db-vacuum, not even db-vacuum's recovery"
    );
    let held: Vec<Value> = open_incidents(&collector)
        .into_iter()
        .filter(|i| i["slug"] == "db-backup")
        .collect();
    assert_eq!(held.len(), 1);
}

#[test]
fn a_bad_maintenance_window_is_refused_at_start_naming_the_field() {
    for (window, needle) in [
        (
            "start = \"61 * * * *\"\nduration = \"1h\"",
            "maintenance[0].start:",
        ),
        (
            "start = \"0 2 * * *\"\nduration = \"8d\"",
            "maintenance[0].duration: 8d is too long; a window lasts at most a week",
        ),
        (
            "start = \"0 2 * * *\"\nduration = \"1h\"\ntimezone = \"Mars/Olympus\"",
            "maintenance[0].timezone:",
        ),
        (
            "start = \"0 2 * * *\"\nduration = \"1h\"\nproject = 9",
            "maintenance[0].project: project 9 is not defined",
        ),
        (
            "start = \"0 2 * * *\"\nduration = \"1h\"\nprobe = \"api-*\"\nslug = \"db-*\"",
            "maintenance[0].probe: a window names either monitors",
        ),
        (
            "start = \"0 2 * * *\"\nduration = \"1h\"\nprobe = \" \"",
            "maintenance[0].probe: is empty",
        ),
    ] {
        let (exit, stderr) =
            run_to_exit(&format!("[[maintenance]]\nname = \"m\"\n{window}\n"), &[]);
        assert_eq!(exit.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{needle} in {stderr}");
    }
}
