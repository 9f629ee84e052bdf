//! `watchpost serve` as a process: startup lines, identity kept across restarts, config errors,
//! graceful shutdown, health, metrics, and JSON errors for unknown routes.

use crate::support;

use std::os::unix::fs::PermissionsExt;

use reqwest::{Method, StatusCode};
use support::{Collector, assert_error, checkin, envelope, interval, json, run_to_exit};

const KEY: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn startup_prints_the_contract_lines_and_keeps_identity_across_restarts() {
    let mut collector = Collector::start(None);
    let lines = &collector.lines;
    assert!(
        lines[0].starts_with("watchpost: listening on http://127.0.0.1:"),
        "{lines:?}"
    );
    let addr = lines[0]
        .trim_start_matches("watchpost: listening on http://")
        .to_owned();
    assert_eq!(lines[1], format!("watchpost: dashboard http://{addr}/"));
    assert_eq!(
        lines[2],
        format!("watchpost: DSN http://{}@{addr}/1", collector.key)
    );
    assert!(collector.key.len() == 32 && collector.key.bytes().all(|b| b.is_ascii_hexdigit()));
    let token_file = collector.data_dir().join("data/admin_token");
    assert_eq!(
        lines[3],
        format!(
            "watchpost: admin token {} (saved in {})",
            collector.token,
            token_file.display()
        )
    );
    assert!(collector.token.len() >= 64, "32 random bytes in hex");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&collector.data_dir().join("data")), 0o700);
    assert_eq!(collector.api_get("/api/v1/monitors"), serde_json::json!([]));

    let (dsn, token) = (collector.dsn.clone(), collector.token.clone());
    collector.restart();
    assert_eq!(
        collector.lines.last().unwrap(),
        &format!("watchpost: admin token in {}", token_file.display()),
        "a known token is not printed again"
    );
    assert_eq!(collector.token, token);
    assert_eq!(
        collector.dsn.split_once('@').unwrap().0,
        dsn.split_once('@').unwrap().0
    );
    assert_eq!(collector.api_get("/api/v1/monitors"), serde_json::json!([]));
}

#[test]
fn an_admin_token_from_the_environment_is_never_printed() {
    let token = "env-token-0123456789abcdef";
    let collector = Collector::start_with_env(None, &[("WATCHPOST_ADMIN_TOKEN", token)]);
    assert_eq!(
        collector.lines.last().unwrap(),
        "watchpost: admin token from environment variable WATCHPOST_ADMIN_TOKEN"
    );
    assert!(collector.lines.iter().all(|l| !l.contains(token)));
    assert!(!collector.stderr().contains(token));
    assert!(!collector.data_dir().join("data/admin_token").exists());
    collector.api_get("/api/v1/monitors");
}

#[test]
fn configured_projects_and_monitors_are_served() {
    let config = format!(
        r#"
[[projects]]
id = 1
keys = ["{KEY}"]

[[projects]]
id = 7
name = "other"
keys = ["{}", "{}"]

[[monitors]]
project = 1
slug = "nightly-backup"
schedule = "0 3 * * *"
timezone = "Europe/Berlin"
checkin_margin = "5m"
max_runtime = "30m"
failure_issue_threshold = 2
"#,
        "a".repeat(32),
        "b".repeat(32)
    );
    let collector = Collector::start(Some(&config));
    let dsns: Vec<_> = collector
        .lines
        .iter()
        .filter(|l| l.starts_with("watchpost: DSN "))
        .collect();
    assert_eq!(dsns.len(), 3, "{dsns:?}");
    assert_eq!(collector.key, KEY);
    assert!(dsns[1].ends_with("/7") && dsns[1].contains(&"a".repeat(32)));
    let monitor = &collector.monitor("nightly-backup")[0];
    assert_eq!(monitor["status"], "active");
    assert_eq!(monitor["timezone"], "Europe/Berlin");
    assert_eq!(monitor["checkin_margin_s"], 300);
    assert_eq!(monitor["failure_issue_threshold"], 2);
    assert_eq!(
        monitor["schedule"],
        serde_json::json!({"type": "crontab", "value": "0 3 * * *"})
    );
}

#[test]
fn config_errors_exit_with_2_and_name_the_field() {
    let cases = [
        (
            format!("[[projects]]\nid = 1\nkeys = [\"{KEY}\", \"xyz\"]\n"),
            "config error: projects[0].keys[1]: expected 32 hex characters",
        ),
        ("[server]\nlisen = \"127.0.0.1:1\"\n".to_owned(), "server.lisen: unknown field `lisen`"),
        (
            "[[channels]]\nname = \"mail\"\ntype = \"email\"\nsmtp_url = \"smtps://x:465\"\nusername = \"u\"\npassword = \"env:WATCHPOST_TEST_UNSET_SECRET\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n".to_owned(),
            "channels[0].password: environment variable WATCHPOST_TEST_UNSET_SECRET is not set",
        ),
        (
            "[[monitors]]\nproject = 1\nslug = \"job\"\nschedule = \"0 3 * * *\"\ntimezone = \"Nowhere/City\"\n".to_owned(),
            "monitors[0].timezone: timezone `Nowhere/City` is not a known IANA timezone name",
        ),
        (
            "[[rules]]\nname = \"r\"\non = [\"monitor.failed\"]\nchannels = [\"nope\"]\n".to_owned(),
            "rules[0].channels[0]: no channel named `nope`",
        ),
    ];
    for (config, expected) in cases {
        let (status, stderr) = run_to_exit(&config, &[]);
        assert_eq!(
            status.code(),
            Some(2),
            "config:\n{config}\nstderr: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "stderr {stderr:?} should contain {expected:?}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one message: {stderr}");
    }
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut collector = Collector::start(None);
    let body = envelope(&[(
        "check_in",
        &checkin("job", "ok", None, Some(interval(1, "hour"))),
    )]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
    let status = collector.terminate();
    assert!(
        status.success(),
        "exit status {status}: {}",
        collector.stderr()
    );
    collector.restart();
    assert_eq!(collector.checkins("job").len(), 1);
}

#[test]
fn healthz_and_metrics_report_the_collector() {
    let collector = Collector::start(None);
    let (status, health) = json(collector.request(Method::GET, "/healthz").send().unwrap());
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"]["writable"], true);
    assert_eq!(health["sweeper"]["alive"], true);

    let body = envelope(&[(
        "check_in",
        &checkin("job", "ok", None, Some(interval(1, "hour"))),
    )]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
    let unauthenticated = collector
        .request(Method::POST, "/api/1/envelope/")
        .body(envelope(&[("check_in", &checkin("job", "ok", None, None))]))
        .send()
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    let text = collector
        .request(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    for line in [
        "watchpost_checkins_accepted_total 1",
        "watchpost_checkins_rejected_total{reason=\"unauthorized\"} 1",
        "watchpost_monitors{status=\"ok\"} 1",
        "watchpost_monitors{status=\"error\"} 0",
        "watchpost_deadlines 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("watchpost_sweep_lag_seconds ")),
        "{text}"
    );
}

#[test]
fn unknown_routes_and_methods_answer_json() {
    let collector = Collector::start(None);
    assert_error(
        collector.request(Method::GET, "/nope").send().unwrap(),
        StatusCode::NOT_FOUND,
        "no route for GET /nope",
    );
    assert_error(
        collector
            .request(Method::DELETE, "/api/1/envelope/")
            .send()
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "does not accept DELETE",
    );
    let index = collector.request(Method::GET, "/").send().unwrap();
    assert_eq!(index.status(), StatusCode::OK);
    assert!(index.text().unwrap().contains("Watchpost"));
}
