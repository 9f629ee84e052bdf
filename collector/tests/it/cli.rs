//! The client commands of the `watchpost` binary against a real collector: every command, its
//! `--json` output parsed, and the exit codes scripts rely on (0 ok, 1 server, 2 usage,
//! 3 not found, 4 auth). The `issues` commands are checked against a stand-in that speaks the
//! §3.2 contract, so they are right before and after the collector serves `/api/v1/issues`.

use crate::support;
// The SDK's recording server and its check of what Sentry accepts, for `checkin` and `run`.
use crate::{sdk_support, sentry_rules};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Collector, checkin, envelope, interval};

/// `watchpost <args>` in `cwd` with only the given environment of ours.
fn watchpost_in(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_watchpost"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("WATCHPOST_URL")
        .env_remove("WATCHPOST_ADMIN_TOKEN")
        .env_remove("WATCHPOST_DSN");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run watchpost")
}

/// A collector and a clean working directory (no `./watchpost-data` to fall back on).
struct Cli {
    collector: Collector,
    cwd: tempfile::TempDir,
}

impl Cli {
    fn start() -> Cli {
        Cli {
            collector: Collector::start(None),
            cwd: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs with `WATCHPOST_URL`, `WATCHPOST_ADMIN_TOKEN` and `WATCHPOST_DSN` set.
    fn run(&self, args: &[&str]) -> Output {
        let c = &self.collector;
        watchpost_in(
            self.cwd.path(),
            &[
                ("WATCHPOST_URL", &c.base),
                ("WATCHPOST_ADMIN_TOKEN", &c.token),
                ("WATCHPOST_DSN", &c.dsn),
            ],
            args,
        )
    }

    /// Runs, expects success, returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "watchpost {args:?}: {:?}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs with `--json`, expects success, parses stdout.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }
}

#[track_caller]
fn assert_exit(output: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
}

fn put_monitor(collector: &Collector, slug: &str) {
    let response = collector
        .admin(Method::PUT, &format!("/api/v1/monitors/1/{slug}"))
        .json(&json!({"schedule": "0 3 * * *", "timezone": "Europe/Berlin"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[test]
fn checkin_pairs_a_run_and_monitors_commands_manage_it() {
    let cli = Cli::start();
    put_monitor(&cli.collector, "nightly-backup");

    // A run from a shell script: the id printed by `in_progress` closes it.
    let id = cli.ok(&["checkin", "nightly-backup", "--status", "in_progress"]);
    let id = id.trim();
    assert_eq!(id.len(), 32, "{id}");
    let closed = cli.json(&[
        "checkin",
        "nightly-backup",
        "--status",
        "ok",
        "--check-in-id",
        id,
        "--duration",
        "1.5",
    ]);
    assert_eq!(closed["id"], id);

    let list = cli.json(&["monitors", "list"]);
    assert_eq!(list[0]["slug"], "nightly-backup");
    assert_eq!(list[0]["status"], "ok");
    let table = cli.ok(&["monitors", "list"]);
    assert!(table.starts_with("PROJECT"), "{table}");
    assert!(
        table.contains("every day at 03:00 (Europe/Berlin)"),
        "{table}"
    );
    assert_eq!(
        cli.json(&["monitors", "list", "--status", "error"]),
        json!([])
    );

    let shown = cli.json(&["monitors", "show", "1", "nightly-backup"]);
    assert_eq!(shown["environments"][0]["environment"], "production");
    let checkins = shown["checkins"].as_array().unwrap();
    assert_eq!(checkins.len(), 1, "in_progress and ok are one check-in");
    assert_eq!(checkins[0]["id"], id);
    assert_eq!(checkins[0]["status"], "ok");
    assert_eq!(checkins[0]["duration_ms"], 1500);
    let shown = cli.ok(&["monitors", "show", "1", "nightly-backup"]);
    assert!(
        shown.contains("1.5 s") && shown.contains("CHECK-IN"),
        "{shown}"
    );

    for (command, field, value) in [
        ("mute", "muted", json!(true)),
        ("unmute", "muted", json!(false)),
        ("disable", "status", json!("disabled")),
        ("enable", "disabled", json!(false)),
    ] {
        let envs = cli.json(&["monitors", command, "1", "nightly-backup"]);
        assert_eq!(envs[0][field], value, "{command}");
    }
    let said = cli.ok(&[
        "monitors",
        "mute",
        "1",
        "nightly-backup",
        "-e",
        "production",
    ]);
    assert_eq!(said.trim(), "muted monitor `nightly-backup` (production)");

    let deleted = cli.json(&["monitors", "delete", "1", "nightly-backup"]);
    assert_eq!(deleted["deleted"][0]["slug"], "nightly-backup");
    assert_exit(
        &cli.run(&["monitors", "show", "1", "nightly-backup"]),
        3,
        "does not exist",
    );
}

#[test]
fn incidents_list_shows_what_failed() {
    let cli = Cli::start();
    assert_eq!(cli.json(&["incidents", "list"]), json!([]));
    assert_eq!(cli.ok(&["incidents", "list"]).trim(), "no incidents");
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "failure_issue_threshold": 1});
    let (status, body) = cli.collector.post_envelope(envelope(&[(
        "check_in",
        &checkin("db-vacuum", "error", None, Some(config)),
    )]));
    assert_eq!(status, StatusCode::OK, "{body}");
    let open = cli.json(&["incidents", "list", "--open"]);
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["slug"], "db-vacuum");
    assert_eq!(open[0]["reason"], "error");
    assert_eq!(open[0]["resolved_at"], Value::Null);
    let table = cli.ok(&["incidents", "list", "--project", "1"]);
    assert!(
        table.contains("db-vacuum") && table.contains("open"),
        "{table}"
    );
}

#[test]
fn exit_codes_tell_scripts_what_went_wrong() {
    let cli = Cli::start();
    let c = &cli.collector;
    let cwd = cli.cwd.path();

    // 4: a wrong token, no token at all, a DSN key the collector does not know.
    let wrong = watchpost_in(
        cwd,
        &[
            ("WATCHPOST_URL", &c.base),
            ("WATCHPOST_ADMIN_TOKEN", "x".repeat(32).as_str()),
        ],
        &["monitors", "list"],
    );
    assert_exit(&wrong, 4, "wrong admin token");
    let none = watchpost_in(cwd, &[("WATCHPOST_URL", &c.base)], &["monitors", "list"]);
    assert_exit(&none, 4, "no admin token");
    let bad_key = c.dsn.replace(&c.key, &"f".repeat(32));
    let output = watchpost_in(
        cwd,
        &[("WATCHPOST_DSN", &bad_key)],
        &["checkin", "job", "--status", "ok"],
    );
    assert_eq!(output.status.code(), Some(4), "{output:?}");

    // The token file of a collector started in this directory is found on its own.
    std::fs::create_dir(cwd.join("watchpost-data")).unwrap();
    std::fs::write(
        cwd.join("watchpost-data/admin_token"),
        format!("{}\n", c.token),
    )
    .unwrap();
    let found = watchpost_in(cwd, &[("WATCHPOST_URL", &c.base)], &["monitors", "list"]);
    assert!(found.status.success(), "{found:?}");

    // 3: no such monitor (management and ingest alike).
    assert_exit(&cli.run(&["monitors", "mute", "1", "nope"]), 3, "nope");
    assert_exit(
        &cli.run(&["checkin", "never-configured", "--status", "ok"]),
        3,
        "never-configured",
    );

    // 2: usage, from the arguments or from the collector refusing the input.
    assert_exit(&cli.run(&["monitors", "frobnicate"]), 2, "frobnicate");
    assert_exit(
        &cli.run(&["checkin", "job", "--status", "sideways"]),
        2,
        "sideways",
    );
    assert_exit(
        &cli.run(&["checkin", "job", "--status", "ok", "--dsn", "not-a-dsn"]),
        2,
        "DSN",
    );
    assert_exit(
        &cli.run(&["monitors", "list", "--url", "ftp://x"]),
        2,
        "http://",
    );
    assert_exit(
        &cli.run(&["monitors", "list", "--environment", "a/b"]),
        2,
        "environment",
    );

    // 1: the collector is not there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = format!("http://127.0.0.1:{port}");
    assert_exit(
        &cli.run(&["monitors", "list", "--url", &gone]),
        1,
        "cannot reach the collector",
    );

    // The help documents all of it.
    let help = cli.ok(&["monitors", "--help"]);
    for line in ["Exit codes:", "3  not found", "4  authentication"] {
        assert!(help.contains(line), "{help}");
    }
}

#[test]
fn issues_commands_against_the_collector() {
    let cli = Cli::start();
    assert_eq!(cli.json(&["issues", "list"]), json!([]));
    let event = json!({"event_id": "c0ffee00c0ffee00c0ffee00c0ffee02", "level": "error",
        "timestamp": 1_800_000_000, "message": "disk full"});
    let (status, body) = cli
        .collector
        .post_envelope(envelope(&[("event", &event.to_string())]));
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = cli.json(&["issues", "list", "--project", "1"]);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["status"], "unresolved");
    let shown = cli.json(&["issues", "show", &id]);
    assert_eq!(shown["issue"]["count"], 1);
    assert_eq!(shown["events"].as_array().unwrap().len(), 1);
    assert_eq!(cli.json(&["issues", "resolve", &id])["status"], "resolved");
    assert!(cli.ok(&["issues", "list"]).contains("resolved"));
    assert_exit(
        &cli.run(&["issues", "resolve", &"0".repeat(32)]),
        3,
        "no issue",
    );
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: String,
    body: String,
}

/// A stand-in for a collector that serves the issues API of docs/http-api.md
fn issues_api() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let issue = json!({"id": "7d3c5a2b9e1f4c6a8b0d2e4f6a8c0e12", "project": 1,
        "title": "KeyError: 'invoice_id'", "culprit": "billing::export", "level": "error",
        "status": "unresolved", "first_seen": "2026-11-20T10:00:00.000Z",
        "last_seen": "2026-11-21T10:00:00.000Z", "count": 12});
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            );
            let (mut length, mut authorization) = (0, String::new());
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "authorization" => authorization = value.trim().to_owned(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push(Seen {
                method: method.clone(),
                path: path.clone(),
                authorization,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let (status, reply) = match (method.as_str(), path.as_str()) {
                ("GET", "/api/v1/issues" | "/api/v1/issues?project=1") => {
                    ("200 OK", json!([issue]))
                }
                ("GET", "/api/v1/issues/7d3c5a2b9e1f4c6a8b0d2e4f6a8c0e12") => {
                    ("200 OK", issue.clone())
                }
                ("GET", "/api/v1/issues/7d3c5a2b9e1f4c6a8b0d2e4f6a8c0e12/events") => {
                    ("200 OK", json!([{"event_id": "a"}, {"event_id": "b"}]))
                }
                ("PATCH", "/api/v1/issues/7d3c5a2b9e1f4c6a8b0d2e4f6a8c0e12") => {
                    let mut changed = issue.clone();
                    changed["status"] =
                        serde_json::from_slice::<Value>(&body).unwrap()["status"].clone();
                    ("200 OK", changed)
                }
                _ => ("404 Not Found", json!({"error": "no issue has this id"})),
            };
            let reply = reply.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (base, seen)
}

#[test]
fn issues_commands_speak_the_contract() {
    let (base, seen) = issues_api();
    let cwd = tempfile::tempdir().unwrap();
    let env = [
        ("WATCHPOST_URL", base.as_str()),
        ("WATCHPOST_ADMIN_TOKEN", "0123456789abcdef0123"),
    ];
    let run = |args: &[&str]| watchpost_in(cwd.path(), &env, args);
    let stdout = |output: Output| {
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let id = "7d3c5a2b9e1f4c6a8b0d2e4f6a8c0e12";

    let list: Value = serde_json::from_str(&stdout(run(&[
        "issues",
        "list",
        "--project",
        "1",
        "--json",
    ])))
    .unwrap();
    assert_eq!(list[0]["title"], "KeyError: 'invoice_id'");
    let table = stdout(run(&["issues", "list"]));
    assert!(table.contains(id) && table.contains("KeyError"), "{table}");

    let shown: Value =
        serde_json::from_str(&stdout(run(&["issues", "show", id, "--json"]))).unwrap();
    assert_eq!(shown["issue"]["count"], 12);
    assert_eq!(shown["events"].as_array().unwrap().len(), 2);
    assert!(stdout(run(&["issues", "show", id])).contains("2 recent event(s)"));

    let resolved: Value =
        serde_json::from_str(&stdout(run(&["issues", "resolve", id, "--json"]))).unwrap();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        stdout(run(&["issues", "ignore", id])).trim(),
        format!("issue {id} is ignored")
    );
    // The API's own sentence for an unknown id, passed through.
    assert_exit(&run(&["issues", "show", "nope"]), 3, "no issue has this id");
    assert_exit(
        &run(&["issues", "resolve", "nope"]),
        3,
        "no issue has this id",
    );

    let seen = seen.lock().unwrap();
    let patch = seen.iter().find(|s| s.method == "PATCH").expect("a PATCH");
    assert_eq!(patch.path, format!("/api/v1/issues/{id}"));
    assert_eq!(
        serde_json::from_str::<Value>(&patch.body).unwrap(),
        json!({"status": "resolved"})
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization == "Bearer 0123456789abcdef0123")
    );
}

#[test]
fn monitors_list_follows_the_api_pages_to_the_end() {
    let cli = Cli::start();
    // More than two pages of the API's default 100.
    let payloads: Vec<String> = (0..250)
        .map(|n| checkin(&format!("job-{n:03}"), "ok", None, Some(interval(1, "day"))))
        .collect();
    let items: Vec<(&str, &str)> = payloads.iter().map(|p| ("check_in", p.as_str())).collect();
    let (status, body) = cli.collector.post_envelope(envelope(&items));
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = cli.json(&["monitors", "list"]);
    let slugs: std::collections::BTreeSet<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["slug"].as_str().unwrap())
        .collect();
    assert_eq!(list.as_array().unwrap().len(), 250);
    assert_eq!(slugs.len(), 250);
}

#[test]
fn checkin_and_run_send_what_sentry_accepts_unchanged() {
    let recorder = sdk_support::Recorder::start();
    let dsn = recorder.dsn();
    let cwd = tempfile::tempdir().unwrap();
    let env = [("WATCHPOST_DSN", dsn.as_str())];
    let watchpost = |args: &[&str]| {
        let output = watchpost_in(cwd.path(), &env, args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let id = watchpost(&["checkin", "db-backup", "--status", "in_progress"]);
    watchpost(&[
        "checkin",
        "db-backup",
        "--status",
        "ok",
        "--check-in-id",
        id.trim(),
        "--duration",
        "1.5",
        "-e",
        "staging",
    ]);
    // Margin and runtime Sentry's whole minutes cannot hold, and a plain run without config.
    watchpost(&[
        "run",
        "nightly",
        "--schedule",
        "*/5 * * * *",
        "--check-in-margin",
        "90s",
        "--max-runtime",
        "0.5",
        "--timezone",
        "Europe/Berlin",
        "--failure-issue-threshold",
        "2",
        "--",
        "true",
    ]);
    watchpost(&["run", "nightly", "--", "true"]);

    let mut check_ins = Vec::new();
    for request in recorder.requests() {
        check_ins.extend(sentry_rules::check_envelope(&request.body).check_ins);
    }
    let summary: Vec<_> = check_ins
        .iter()
        .map(|c| {
            (
                c["monitor_slug"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("db-backup", "in_progress"),
            ("db-backup", "ok"),
            ("nightly", "in_progress"),
            ("nightly", "ok"),
            ("nightly", "in_progress"),
            ("nightly", "ok"),
        ]
    );
    assert_eq!(check_ins[1]["duration"], 1.5);
    assert_eq!(check_ins[1]["environment"], "staging");
    assert_eq!(
        check_ins[2]["monitor_config"],
        json!({
            "schedule": {"type": "crontab", "value": "*/5 * * * *"},
            "checkin_margin": 2,
            "max_runtime": 1,
            "timezone": "Europe/Berlin",
            "failure_issue_threshold": 2,
            "watchpost": {"checkin_margin": "90s", "max_runtime": "30s"}
        })
    );
}
