//! Interop: real clients against the real collector binary.
//!
//! Each test starts a collector on an ephemeral loopback port with a fresh data dir (the shared
//! harness in `support/`), drives it with a client people actually use — the Python
//! `sentry-sdk` 2.75.0, `sentry-cli monitors run` 3.8.2, our own `watchpost run`, `curl` pings
//! and the `watchpost` SDK — and reads the monitor, its check-ins and incidents (and, for
//! sentry-python's error events, the issues) back through the management API (docs/http-api.md).
//! Waits poll the API with a deadline; nothing sleeps for a fixed time.

use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Collector, poll, python};

/// How long a test waits for the collector to show what a client sent.
const SETTLE: Duration = Duration::from_secs(15);

/// Polls until `slug` has exactly `count` check-ins and none is `in_progress`; returns them
/// newest first.
#[track_caller]
fn settled_checkins(collector: &Collector, slug: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let checkins = collector.checkins(slug);
        if checkins.len() == count && checkins.iter().all(|c| c["status"] != "in_progress") {
            return checkins;
        }
        assert!(
            Instant::now() < deadline,
            "{slug}: expected {count} finished check-ins within {SETTLE:?}, have {checkins:#?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The monitor environment `slug`/`environment` as `GET /api/v1/monitors/1/{slug}` lists it.
#[track_caller]
fn monitor_env(collector: &Collector, slug: &str, environment: &str) -> Value {
    let envs = collector.monitor(slug);
    envs.iter()
        .find(|m| m["environment"] == environment)
        .cloned()
        .unwrap_or_else(|| panic!("no environment `{environment}` of `{slug}` in {envs:#?}"))
}

/// Incidents of `slug`; only open ones when `open`.
fn incidents_of(collector: &Collector, slug: &str, open: bool) -> Vec<Value> {
    let path = if open {
        "/api/v1/incidents?open=true"
    } else {
        "/api/v1/incidents"
    };
    let list = collector.api_get(path);
    let list = list.as_array().expect("incidents are an array");
    list.iter().filter(|i| i["slug"] == slug).cloned().collect()
}

/// `PUT /api/v1/monitors/1/{slug}`: creates the monitor a ping or cron request reports to.
fn put_monitor(collector: &Collector, slug: &str, config: &Value) {
    let response = collector
        .admin(Method::PUT, &format!("/api/v1/monitors/1/{slug}"))
        .json(config)
        .send()
        .expect("PUT monitor");
    let status = response.status();
    assert!(
        status.is_success(),
        "PUT {slug}: {status}: {}",
        response.text().unwrap_or_default()
    );
}

/// `"3ad871db-fc80-..."` and `"3ad871dbfc80..."` compare equal.
fn same_id(a: &Value, b: &str) -> bool {
    let norm = |s: &str| s.replace('-', "").to_ascii_lowercase();
    a.as_str().is_some_and(|a| norm(a) == norm(b))
}

fn statuses(checkins: &[Value]) -> Vec<&str> {
    checkins
        .iter()
        .map(|c| c["status"].as_str().unwrap_or("?"))
        .collect()
}

#[track_caller]
fn duration_ms(checkin: &Value) -> u64 {
    checkin["duration_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("check-in without a duration: {checkin}"))
}

#[track_caller]
fn time(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("expected an RFC 3339 time, got {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|err| panic!("{text}: {err}"))
        .with_timezone(&Utc)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------------
// sentry-python

#[test]
fn sentry_python_monitor_decorator_reports_success_and_failure() {
    let collector = Collector::start(None);
    python::run_python(
        r#"
import sentry_sdk
from sentry_sdk.crons import monitor

sentry_sdk.init(release="interop@1.0.0")  # DSN from SENTRY_DSN

nightly = {
    "schedule": {"type": "crontab", "value": "0 3 * * *"},
    "timezone": "Europe/Berlin",
    "checkin_margin": 5,
    "max_runtime": 30,
    "failure_issue_threshold": 1,
    "recovery_threshold": 1,
}

@monitor(monitor_slug="py-nightly", monitor_config=nightly)
def backup():
    return "done"

@monitor(monitor_slug="py-failing", monitor_config=dict(nightly, max_runtime=1.5))
def broken():
    raise RuntimeError("upstream returned 502")

assert backup() == "done"
try:
    broken()
    raise SystemExit("the decorator swallowed the exception")
except RuntimeError:
    pass
sentry_sdk.flush()
"#,
        &collector.dsn,
    );

    let ok = settled_checkins(&collector, "py-nightly", 1);
    assert_eq!(
        statuses(&ok),
        ["ok"],
        "in_progress and ok share one check_in_id: {ok:#?}"
    );
    assert!(duration_ms(&ok[0]) < 10_000, "{ok:#?}");
    assert_eq!(ok[0]["environment"], "production");

    let monitor = monitor_env(&collector, "py-nightly", "production");
    assert_eq!(monitor["status"], "ok");
    assert_eq!(monitor["timezone"], "Europe/Berlin");
    assert_eq!(monitor["checkin_margin_s"], 300);
    assert_eq!(monitor["max_runtime_s"], 1800);
    assert_eq!(monitor["failure_issue_threshold"], 1);
    assert!(monitor["open_incident"].is_null(), "{monitor:#}");
    // The crontab is evaluated in Europe/Berlin: the next run is at 03:00 there.
    let next = time(&monitor["next_checkin"]).with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!((next.hour(), next.minute()), (3, 0), "next_checkin {next}");
    assert!(time(&monitor["next_checkin_latest"]) > time(&monitor["next_checkin"]));

    let failed = settled_checkins(&collector, "py-failing", 1);
    assert_eq!(statuses(&failed), ["error"]);
    let monitor = monitor_env(&collector, "py-failing", "production");
    assert_eq!(monitor["status"], "error");
    assert_eq!(monitor["max_runtime_s"], 90, "fractional minutes are kept");
    let incidents = incidents_of(&collector, "py-failing", true);
    assert_eq!(
        incidents.len(),
        1,
        "threshold 1 opens an incident: {incidents:#?}"
    );
    assert_eq!(incidents[0]["kind"], "monitor");
    assert_eq!(incidents[0]["environment"], "production");
    assert!(incidents[0]["resolved_at"].is_null());
}

#[test]
fn sentry_python_capture_checkin_heartbeats_drive_thresholds() {
    let collector = Collector::start(None);
    // A heartbeat monitor with an interval schedule: an explicit in_progress/ok pair with a
    // client-side duration, then bare heartbeats (no in_progress) with failure threshold 2.
    let output = python::run_python(
        r#"
import sentry_sdk
from sentry_sdk.crons import capture_checkin

sentry_sdk.init(environment="staging")

config = {
    "schedule": {"type": "interval", "value": 10, "unit": "minute"},
    "checkin_margin": 2,
    "failure_issue_threshold": 2,
    "recovery_threshold": 1,
}
run = capture_checkin(monitor_slug="py-heartbeat", status="in_progress", monitor_config=config)
capture_checkin(monitor_slug="py-heartbeat", check_in_id=run, status="ok", duration=1.25)
print(run)
sentry_sdk.flush()
"#,
        &collector.dsn,
    );
    let run_id = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let first = settled_checkins(&collector, "py-heartbeat", 1);
    assert!(same_id(&first[0]["id"], &run_id), "{first:#?} vs {run_id}");
    assert_eq!(first[0]["status"], "ok");
    assert_eq!(first[0]["environment"], "staging");
    assert_eq!(
        duration_ms(&first[0]),
        1250,
        "the client's duration is kept"
    );
    let monitor = monitor_env(&collector, "py-heartbeat", "staging");
    assert_eq!(monitor["checkin_margin_s"], 120);
    // Interval schedules count from the last check-in.
    let after = time(&monitor["next_checkin"]) - time(&monitor["last_checkin"]);
    assert!(
        (Duration::from_secs(9 * 60)..=Duration::from_secs(10 * 60 + 1))
            .contains(&after.to_std().unwrap()),
        "next_checkin is 10 minutes after the last one: {monitor:#}"
    );

    let heartbeat = |status: &str| {
        python::run_python(
            &format!(
                r#"
import sentry_sdk
from sentry_sdk.crons import capture_checkin
sentry_sdk.init(environment="staging")
capture_checkin(monitor_slug="py-heartbeat", status="{status}")
sentry_sdk.flush()
"#
            ),
            &collector.dsn,
        )
    };

    heartbeat("error");
    settled_checkins(&collector, "py-heartbeat", 2);
    assert!(
        incidents_of(&collector, "py-heartbeat", true).is_empty(),
        "one failure is below failure_issue_threshold 2"
    );
    heartbeat("error");
    let checkins = settled_checkins(&collector, "py-heartbeat", 3);
    assert_eq!(statuses(&checkins), ["error", "error", "ok"]);
    let open = incidents_of(&collector, "py-heartbeat", true);
    assert_eq!(
        open.len(),
        1,
        "two failures in a row open one incident: {open:#?}"
    );
    assert_eq!(
        monitor_env(&collector, "py-heartbeat", "staging")["status"],
        "error"
    );

    heartbeat("ok");
    settled_checkins(&collector, "py-heartbeat", 4);
    assert!(
        incidents_of(&collector, "py-heartbeat", true).is_empty(),
        "recovery_threshold 1 resolves it"
    );
    let all = incidents_of(&collector, "py-heartbeat", false);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(time(&all[0]["resolved_at"]) >= time(&all[0]["opened_at"]));
    assert_eq!(
        monitor_env(&collector, "py-heartbeat", "staging")["status"],
        "ok"
    );
}

#[test]
fn sentry_python_errors_are_grouped_into_issues() {
    let collector = Collector::start(None);
    python::run_python(
        r#"
import sentry_sdk

sentry_sdk.init(release="interop@1.0.0")

def lookup(key):
    return {"a": 1}[key]

for _ in range(2):
    try:
        lookup("missing")
    except KeyError:
        sentry_sdk.capture_exception()
sentry_sdk.capture_message("disk usage above 90%", level="warning")
sentry_sdk.flush()
"#,
        &collector.dsn,
    );

    let issues = poll(SETTLE, "two issues from sentry-python", || {
        let issues = collector.api_get("/api/v1/issues?project=1");
        let issues = issues.as_array().expect("issues are an array").clone();
        let counted: u64 = issues.iter().filter_map(|i| i["count"].as_u64()).sum();
        (counted == 3).then_some(issues)
    });
    assert_eq!(
        issues.len(),
        2,
        "the same exception twice is one issue: {issues:#?}"
    );
    let key_error = issues
        .iter()
        .find(|i| i["title"].as_str().is_some_and(|t| t.contains("KeyError")))
        .unwrap_or_else(|| panic!("no KeyError issue in {issues:#?}"));
    assert_eq!(key_error["count"], 2);
    assert_eq!(key_error["level"], "error");
    assert_eq!(key_error["status"], "unresolved");
    let message = issues
        .iter()
        .find(|i| i["title"] == "disk usage above 90%")
        .unwrap_or_else(|| panic!("no message issue in {issues:#?}"));
    assert_eq!(
        (message["count"].as_u64(), &message["level"]),
        (Some(1), &json!("warning"))
    );

    let id = key_error["id"].as_str().unwrap();
    let events = collector.api_get(&format!("/api/v1/issues/{id}/events"));
    let events = events.as_array().expect("events are an array");
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events
            .iter()
            .all(|e| e["release"] == "interop@1.0.0" && e["platform"] == "python"),
        "events are kept as sentry-python sent them: {events:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// sentry-cli monitors run

fn sentry_cli_run(collector: &Collector, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(python::sentry_cli())
        .args(["monitors", "run"])
        .args(args)
        // DSN mode: no auth token, no config file from the developer's home.
        .env("SENTRY_DSN", &collector.dsn)
        .env("HOME", home.path())
        .env_remove("SENTRY_AUTH_TOKEN")
        .env_remove("WATCHPOST_DSN")
        .current_dir(home.path())
        .output()
        .expect("run sentry-cli")
}

#[test]
fn sentry_cli_monitors_run_reports_failing_then_succeeding_command() {
    let collector = Collector::start(None);

    let failed = sentry_cli_run(
        &collector,
        &[
            "-s",
            "*/5 * * * *",
            "--check-in-margin",
            "2",
            "--max-runtime",
            "10",
            "--timezone",
            "UTC",
            "--failure-issue-threshold",
            "1",
            "--recovery-threshold",
            "1",
            "cli-vacuum",
            "--",
            "false",
        ],
    );
    assert_eq!(
        failed.status.code(),
        Some(1),
        "sentry-cli exits with the command's code: {}",
        stderr(&failed)
    );
    let checkins = settled_checkins(&collector, "cli-vacuum", 1);
    assert_eq!(statuses(&checkins), ["error"]);
    duration_ms(&checkins[0]);
    let monitor = monitor_env(&collector, "cli-vacuum", "production");
    assert_eq!(monitor["checkin_margin_s"], 120);
    assert_eq!(monitor["max_runtime_s"], 600);
    assert_eq!(monitor["status"], "error");
    assert_eq!(incidents_of(&collector, "cli-vacuum", true).len(), 1);

    // sentry-cli sends no monitor_config without --schedule: the monitor keeps its config.
    let succeeded = sentry_cli_run(&collector, &["cli-vacuum", "--", "true"]);
    assert_eq!(succeeded.status.code(), Some(0), "{}", stderr(&succeeded));
    let checkins = settled_checkins(&collector, "cli-vacuum", 2);
    assert_eq!(statuses(&checkins), ["ok", "error"], "newest first");
    assert_ne!(
        checkins[0]["id"], checkins[1]["id"],
        "each run has its own check_in_id"
    );
    let monitor = monitor_env(&collector, "cli-vacuum", "production");
    assert_eq!(monitor["status"], "ok");
    assert_eq!(monitor["checkin_margin_s"], 120);
    assert!(
        incidents_of(&collector, "cli-vacuum", true).is_empty(),
        "the ok run resolved the incident"
    );
}

// ---------------------------------------------------------------------------------------------
// watchpost run (the binary under test)

fn watchpost_run(collector: &Collector, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .arg("run")
        .args(args)
        .env("WATCHPOST_DSN", &collector.dsn)
        .env_remove("SENTRY_DSN")
        .stdin(Stdio::null())
        .output()
        .expect("run watchpost")
}

#[test]
fn watchpost_run_passes_the_exit_code_through_and_reports_it() {
    let collector = Collector::start(None);

    let failed = watchpost_run(
        &collector,
        &[
            "wp-job",
            "--schedule",
            "0 * * * *",
            "--check-in-margin",
            "90s",
            "--max-runtime",
            "1.5",
            "--",
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; exit 3",
        ],
    );
    assert_eq!(failed.status.code(), Some(3), "{}", stderr(&failed));
    assert_eq!(
        String::from_utf8_lossy(&failed.stdout),
        "to-stdout\n",
        "stdout is inherited"
    );
    assert!(
        stderr(&failed).contains("to-stderr"),
        "stderr is inherited: {}",
        stderr(&failed)
    );
    let checkins = settled_checkins(&collector, "wp-job", 1);
    assert_eq!(statuses(&checkins), ["error"]);
    duration_ms(&checkins[0]);
    let monitor = monitor_env(&collector, "wp-job", "production");
    assert_eq!(monitor["checkin_margin_s"], 90);
    assert_eq!(monitor["max_runtime_s"], 90);
    assert_eq!(monitor["status"], "error");

    // Configuration belongs to a monitor environment: `staging` does not exist yet, so without
    // --schedule the collector refuses its check-ins. The command's result still stands.
    let refused = watchpost_run(&collector, &["wp-job", "-e", "staging", "--", "true"]);
    assert_eq!(refused.status.code(), Some(0), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("2 could not be delivered")
            && stderr(&refused).contains("--schedule"),
        "the person is told why: {}",
        stderr(&refused)
    );
    assert_eq!(
        collector.checkins("wp-job").len(),
        1,
        "nothing was recorded for staging"
    );

    let ok = watchpost_run(
        &collector,
        &["wp-job", "-e", "staging", "-s", "0 * * * *", "--", "true"],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(stderr(&ok), "", "nothing to warn about");
    let both = settled_checkins(&collector, "wp-job", 2);
    assert_eq!(statuses(&both), ["ok", "error"]);
    assert_eq!(both[0]["environment"], "staging");
    assert_eq!(monitor_env(&collector, "wp-job", "staging")["status"], "ok");
    assert_eq!(
        monitor_env(&collector, "wp-job", "production")["status"],
        "error"
    );
}

#[test]
fn watchpost_run_reports_a_missing_command_as_127() {
    let collector = Collector::start(None);
    let output = watchpost_run(
        &collector,
        &[
            "wp-missing",
            "-s",
            "@daily",
            "--",
            "watchpost-test-no-such-command",
        ],
    );
    assert_eq!(output.status.code(), Some(127));
    assert!(
        stderr(&output).contains("command not found: `watchpost-test-no-such-command`"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        statuses(&settled_checkins(&collector, "wp-missing", 1)),
        ["error"]
    );
}

#[test]
fn watchpost_run_forwards_sigterm_and_exits_128_plus_signal() {
    let collector = Collector::start(None);
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["run", "wp-term", "-s", "@hourly", "--"])
        .args(["sh", "-c", r#"touch "$1"; exec sleep 60"#, "sh"])
        .arg(&started)
        .env("WATCHPOST_DSN", &collector.dsn)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watchpost run");
    wait_for_file(&started);
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let output = wait_with_deadline(&mut child);
    assert_eq!(output.status.code(), Some(128 + 15), "{}", stderr(&output));
    assert_eq!(
        statuses(&settled_checkins(&collector, "wp-term", 1)),
        ["error"]
    );
}

#[test]
fn watchpost_run_without_a_dsn_exits_2_without_running_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let output = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["run", "wp-nodsn", "--", "touch"])
        .arg(&marker)
        .env_remove("WATCHPOST_DSN")
        .env_remove("SENTRY_DSN")
        .output()
        .expect("run watchpost");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("WATCHPOST_DSN"),
        "{}",
        stderr(&output)
    );
    assert!(
        !marker.exists(),
        "the command must not run unmonitored by surprise"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["run", "wp-nodsn", "--", "touch"])
        .arg(&marker)
        .env("WATCHPOST_DSN", "http://127.0.0.1:8470/1")
        .output()
        .expect("run watchpost");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid DSN"),
        "{}",
        stderr(&output)
    );
    assert!(!marker.exists());
}

fn wait_for_file(path: &Path) {
    poll(SETTLE, &format!("{} to be created", path.display()), || {
        path.exists().then_some(())
    });
}

fn wait_with_deadline(child: &mut std::process::Child) -> Output {
    let deadline = Instant::now() + SETTLE;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the process did not exit within {SETTLE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_end(&mut pipe, &mut stderr).expect("read stderr");
    }
    Output {
        status: child.wait().expect("wait"),
        stdout: Vec::new(),
        stderr,
    }
}

// ---------------------------------------------------------------------------------------------
// curl pings and the Sentry cron endpoint

/// Requests a URL with the real `curl` when the machine has it, else with reqwest.
/// Returns the HTTP status.
fn ping(method: &str, url: &str, body: Option<&str>) -> u16 {
    static HAVE_CURL: OnceLock<bool> = OnceLock::new();
    let have_curl = *HAVE_CURL.get_or_init(|| {
        let found = Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!("curl not found; pinging with reqwest instead");
        }
        found
    });
    if have_curl {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10"]);
        match (method, body) {
            ("HEAD", _) => curl.arg("-I"),
            (_, Some(body)) => curl.args(["-X", method, "--data-binary", body]),
            (_, None) => curl.args(["-X", method]),
        };
        let output = curl.arg(url).output().expect("run curl");
        assert!(output.status.success(), "curl {url}: {}", stderr(&output));
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("curl prints the status")
    } else {
        let client = reqwest::blocking::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = client.request(method, url);
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        request.send().expect("request").status().as_u16()
    }
}

#[test]
fn curl_pings_record_start_success_fail_and_exit_codes() {
    let collector = Collector::start(None);
    let base = collector.url(&format!("/ping/{}/ping-job", collector.key));
    put_monitor(
        &collector,
        "ping-job",
        &json!({"schedule": {"type": "crontab", "value": "*/5 * * * *"}, "checkin_margin": 5}),
    );

    // A start and its success paired by ?rid: one check-in with a server-measured duration.
    let rid = "6f0d1a4e-9c1b-4e47-9a35-0b8f4f1f2c11";
    assert_eq!(ping("GET", &format!("{base}/start?rid={rid}"), None), 200);
    assert_eq!(
        ping(
            "POST",
            &format!("{base}?rid={rid}"),
            Some("backup finished: 42 files")
        ),
        200
    );
    let checkins = settled_checkins(&collector, "ping-job", 1);
    assert_eq!(statuses(&checkins), ["ok"]);
    assert!(same_id(&checkins[0]["id"], rid), "{checkins:#?}");
    duration_ms(&checkins[0]);
    assert_eq!(
        checkins[0]["log"], "backup finished: 42 files",
        "the body is kept as the log"
    );

    // /fail, then exit codes: 0 is success, anything else a failure; HEAD works too.
    assert_eq!(
        ping("POST", &format!("{base}/fail"), Some("disk full")),
        200
    );
    assert_eq!(ping("GET", &format!("{base}/0"), None), 200);
    assert_eq!(ping("GET", &format!("{base}/7"), None), 200);
    assert_eq!(ping("HEAD", &base, None), 200);
    let checkins = settled_checkins(&collector, "ping-job", 5);
    assert_eq!(
        statuses(&checkins),
        ["ok", "error", "ok", "error", "ok"],
        "{checkins:#?}"
    );
    assert_eq!(checkins[3]["log"], "disk full");

    // Out-of-range exit codes are a client error, not a check-in.
    let status = ping("GET", &format!("{base}/256"), None);
    assert!((400..500).contains(&status), "/256 answered {status}");
    assert_eq!(collector.checkins("ping-job").len(), 5);

    let monitor = monitor_env(&collector, "ping-job", "production");
    assert_eq!(monitor["status"], "ok");
    assert!(incidents_of(&collector, "ping-job", true).is_empty());
    assert_eq!(
        incidents_of(&collector, "ping-job", false).len(),
        2,
        "each failure opened and the next ok resolved one"
    );
}

#[test]
fn curl_sentry_cron_endpoint_answers_202() {
    let collector = Collector::start(None);
    let url = collector.url(&format!("/api/1/cron/cron-job/{}/", collector.key));
    put_monitor(&collector, "cron-job", &json!({"schedule": "0 * * * *"}));
    let id = "0c3b5c1e2f7d4a5c9d0e1f2a3b4c5d6e";
    assert_eq!(
        ping(
            "GET",
            &format!("{url}?status=in_progress&check_in_id={id}"),
            None
        ),
        202
    );
    assert_eq!(
        ping(
            "GET",
            &format!("{url}?status=error&check_in_id={id}&duration=2.5"),
            None
        ),
        202
    );
    let checkins = settled_checkins(&collector, "cron-job", 1);
    assert_eq!(statuses(&checkins), ["error"]);
    assert!(same_id(&checkins[0]["id"], id));
    assert_eq!(duration_ms(&checkins[0]), 2500);
}

// ---------------------------------------------------------------------------------------------
// our SDK

#[test]
fn watchpost_sdk_start_and_finish_share_one_check_in() {
    use watchpost::checkin::MonitorConfig;
    use watchpost_protocol::{CheckInStatus, IntervalUnit};

    let collector = Collector::start(None);
    let guard = watchpost::init(watchpost::ClientOptions {
        dsn: Some(collector.dsn.clone()),
        environment: Some("sdk-test".to_owned()),
        ..Default::default()
    });
    let config = MonitorConfig::interval(5, IntervalUnit::Minute)
        .checkin_margin(Duration::from_secs(30))
        .max_runtime(Duration::from_secs(90))
        .failure_issue_threshold(2);
    let run = watchpost::checkin::start("sdk-job", Some(config));
    let id = run.id().simple().to_string();
    run.finish(CheckInStatus::Ok);
    assert!(
        watchpost::flush(Duration::from_secs(10)),
        "the SDK delivered within the bound"
    );
    drop(guard);

    let checkins = settled_checkins(&collector, "sdk-job", 1);
    assert_eq!(statuses(&checkins), ["ok"]);
    assert!(same_id(&checkins[0]["id"], &id), "{checkins:#?} vs {id}");
    duration_ms(&checkins[0]);
    assert_eq!(checkins[0]["environment"], "sdk-test");
    let monitor = monitor_env(&collector, "sdk-job", "sdk-test");
    assert_eq!(
        monitor["checkin_margin_s"], 30,
        "sub-minute margins survive the wire"
    );
    assert_eq!(monitor["max_runtime_s"], 90);
    assert_eq!(monitor["failure_issue_threshold"], 2);
    assert_eq!(monitor["status"], "ok");
}
