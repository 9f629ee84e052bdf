//! Dependencies through the real binary (issue 19, item 3): a probe of a database goes down,
//! ten monitors that depend on it miss their check-ins; a webhook fake receives one alert
//! naming the ten instead of ten pages; the probe recovers while one monitor still fails, and
//! that one alerts on its own. And `depends_on` names that resolve to nothing, or go round in
//! a cycle, stop the start with a sentence. (The folding rules with explicit times are
//! `engine/src/dependencies.rs`; the hold and release of a probe's own alert are
//! `engine/src/probes.rs`.)

use crate::alert_support;
use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use alert_support::{Fake, runtime, status};
use reqwest::StatusCode;
use serde_json::Value;
use support::{Collector, checkin, envelope, poll, run_to_exit};

/// How long any awaited alert may take on a loaded machine.
const WITHIN: Duration = Duration::from_secs(40);

fn jobs() -> Vec<String> {
    (0..10).map(|i| format!("import-{i}")).collect()
}

/// Alerts about the probe that name dependents.
fn folds(hook: &Fake) -> Vec<Value> {
    hook.seen()
        .into_iter()
        .map(|seen| seen.json)
        .filter(|a| a["kind"] == "probe.down" && a.get("dependents").is_some())
        .collect()
}

/// One envelope with an `ok` check-in of each of `slugs`: the jobs ran fine.
fn report_ok(collector: &Collector, slugs: &[String]) {
    let checkins: Vec<String> = slugs
        .iter()
        .map(|slug| checkin(slug, "ok", None, None))
        .collect();
    let items: Vec<(&str, &str)> = checkins.iter().map(|c| ("check_in", c.as_str())).collect();
    let (code, body) = collector.post_envelope(envelope(&items));
    assert_eq!(code, StatusCode::OK, "{body}");
}

#[test]
fn a_database_outage_pages_once_naming_its_ten_jobs_and_a_job_still_failing_after_alerts_alone() {
    let runtime = runtime();
    let hook = runtime.block_on(Fake::start(|_, _| status(200, "ok")));
    // The database's health endpoint: down from the start.
    let health = Arc::new(AtomicU16::new(503));
    let target = runtime.block_on(Fake::start({
        let health = Arc::clone(&health);
        move |_, _| status(health.load(Ordering::Relaxed), "db")
    }));
    let monitors: String = jobs()
        .iter()
        .map(|slug| {
            format!(
                "[[monitors]]\nproject = 1\nslug = \"{slug}\"\ninterval = \"5s\"\ncheckin_margin = \"1s\"\nfailure_issue_threshold = 1\ndepends_on = [\"database-health\"]\n\n"
            )
        })
        .collect();
    let collector = Collector::start(Some(&format!(
        r#"
[alerts]
dependency_recheck = "2s"

[[channels]]
name = "hook"
type = "webhook"
url = "{hook}/hook"

[[rules]]
name = "oncall"
on = ["monitor.failed", "monitor.recovered", "probe.down", "probe.up"]
channels = ["hook"]

[[probes]]
name = "database-health"
url = "{target}/health"
interval = "200ms"
timeout = "150ms"
failure_threshold = 1
success_threshold = 1

{monitors}"#,
        hook = hook.url,
        target = target.url,
    )));

    let down = poll(WITHIN, "the probe's down alert", || {
        hook.seen()
            .into_iter()
            .map(|seen| seen.json)
            .find(|a| a["kind"] == "probe.down")
    });
    assert_eq!(down["title"], "Probe database-health is down", "{down:#}");

    // The ten miss their first check-ins: one follow-up names all of them.
    let fold = poll(WITHIN, "the follow-up naming the ten", || {
        folds(&hook).into_iter().next()
    });
    let mut named: Vec<String> = fold["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    named.sort();
    let mut expected: Vec<String> = jobs()
        .iter()
        .map(|slug| format!("{slug} (production)"))
        .collect();
    expected.sort();
    assert_eq!(named, expected, "{fold:#}");
    assert_eq!(
        fold["title"], "Probe database-health is down; 10 dependents are failing",
        "{fold:#}"
    );
    assert!(
        fold["message"]
            .as_str()
            .unwrap()
            .contains("10 dependents are failing: import-0 (production), import-1 (production)"),
        "{fold:#}"
    );
    // Each dependent is tracked: its incident is open, its own alert held.
    let open: Vec<Value> = collector
        .api_get("/api/v1/incidents?open=true")
        .as_array()
        .unwrap()
        .clone();
    let open_jobs = open
        .iter()
        .filter(|i| i["slug"].as_str().is_some_and(|s| s.starts_with("import-")))
        .count();
    assert_eq!(open_jobs, 10, "{open:#?}");
    for slug in jobs() {
        assert!(hook.failures(&slug).is_empty(), "{slug} paged on its own");
    }

    // Nine jobs succeed again (silently: their failure was never announced), then the database
    // recovers while import-0 still fails: it alerts on its own, once.
    let recovered = &jobs()[1..];
    report_ok(&collector, recovered);
    health.store(200, Ordering::Relaxed);
    let mut last = Instant::now();
    let alone = poll(WITHIN, "import-0 alerting on its own", || {
        // The nine keep running fine meanwhile (every second: their schedule is 5 s).
        if last.elapsed() >= Duration::from_secs(1) {
            report_ok(&collector, recovered);
            last = Instant::now();
        }
        hook.failures("import-0").into_iter().next()
    });
    assert!(
        alone["message"]
            .as_str()
            .unwrap()
            .contains("probe database-health it depends on was failing"),
        "{alone:#}"
    );
    assert!(alone["acknowledge_url"].is_string(), "{alone:#}");
    poll(WITHIN, "the probe's up alert", || {
        hook.seen()
            .into_iter()
            .find(|seen| seen.json["kind"] == "probe.up")
    });
    report_ok(&collector, recovered);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.failures("import-0").len(), 1, "once");
    for slug in recovered {
        assert!(hook.failures(slug).is_empty(), "{slug} paged on its own");
        let recovered_alerts = hook
            .seen()
            .into_iter()
            .filter(|s| s.json["kind"] == "monitor.recovered" && s.json["monitor"]["slug"] == *slug)
            .count();
        assert_eq!(
            recovered_alerts, 0,
            "{slug}: an unannounced failure recovers silently"
        );
    }
    assert_eq!(folds(&hook).len(), 1, "one alert named the ten");
}

#[test]
fn unknown_names_and_cycles_in_depends_on_stop_the_start_with_a_sentence() {
    let probe = "[[probes]]\nname = \"database-health\"\nurl = \"http://127.0.0.1:9/\"\n";
    let monitor = |slug: &str, deps: &str| {
        format!(
            "[[monitors]]\nproject = 1\nslug = \"{slug}\"\ninterval = \"1h\"\ndepends_on = [{deps}]\n"
        )
    };
    for (config, needle) in [
        (
            format!("{probe}{}", monitor("import", "\"databse-health\"")),
            "monitors[0].depends_on: `databse-health` is neither a [[probes]] name nor a [[monitors]] slug",
        ),
        (
            format!("{}{}", monitor("a", "\"b\""), monitor("b", "\"a\"")),
            "depends_on goes round in a cycle (monitor a → monitor b → monitor a)",
        ),
        (
            format!("{probe}depends_on = [\"database-health\"]\n"),
            "depends_on goes round in a cycle (probe database-health → probe database-health)",
        ),
    ] {
        let (exit, stderr) = run_to_exit(&config, &[]);
        assert_eq!(exit.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{needle} in {stderr}");
    }
}

/// A monitor as the dependency: while its incident is open a dependent's alert is held, its
/// repeats name the dependent, and once it recovers the dependent still failing alerts on its
/// own, once.
#[test]
fn a_failing_monitor_holds_its_dependents_and_names_them_in_its_repeats() {
    let runtime = runtime();
    let hook = runtime.block_on(Fake::start(|_, _| status(200, "ok")));
    let collector = Collector::start(Some(&format!(
        r#"
[alerts]
dedup_window = "0s"
dependency_recheck = "1s"

[[channels]]
name = "hook"
type = "webhook"
url = "{hook}/hook"

[[rules]]
name = "oncall"
on = ["monitor.failed", "monitor.recovered"]
channels = ["hook"]
repeat = "2s"

[[monitors]]
project = 1
slug = "db-migrate"
interval = "1h"
failure_issue_threshold = 1

[[monitors]]
project = 1
slug = "import"
interval = "1h"
failure_issue_threshold = 1
depends_on = ["db-migrate"]
"#,
        hook = hook.url,
    )));
    let send = |slug: &str, status: &str| {
        let body = envelope(&[("check_in", &checkin(slug, status, None, None))]);
        let (code, body) = collector.post_envelope(body);
        assert_eq!(code, StatusCode::OK, "{body}");
    };
    send("db-migrate", "error");
    poll(WITHIN, "db-migrate's alert", || {
        hook.failures("db-migrate").into_iter().next()
    });
    send("import", "error");
    let repeat = poll(WITHIN, "a repeat naming import", || {
        hook.failures("db-migrate")
            .into_iter()
            .find(|a| a.get("dependents").is_some())
    });
    assert_eq!(
        repeat["dependents"],
        serde_json::json!(["import (production)"]),
        "{repeat:#}"
    );
    assert_eq!(
        repeat["title"],
        "Monitor db-migrate (production) is still failing; 1 dependent is failing"
    );
    assert!(hook.failures("import").is_empty(), "import is held");

    send("db-migrate", "ok");
    let alone = poll(WITHIN, "import alerting on its own", || {
        hook.failures("import").into_iter().next()
    });
    assert!(
        alone["message"]
            .as_str()
            .unwrap()
            .contains("monitor db-migrate it depends on was failing"),
        "{alone:#}"
    );
}
