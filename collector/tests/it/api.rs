//! The management API over real HTTP: the admin token, every documented field, filters,
//! PUT/PATCH/DELETE, and a silent monitor marked missed with its incident opened in seconds.

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Collector, assert_error, checkin, envelope, interval, json as response_json, poll};

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn is_rfc3339_utc(value: &Value) -> bool {
    value
        .as_str()
        .and_then(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|_| s.ends_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn the_management_api_needs_the_admin_token() {
    let collector = Collector::start(None);
    for path in [
        "/api/v1/monitors",
        "/api/v1/incidents",
        "/api/v1/monitors/1/job/checkins",
    ] {
        assert_error(
            collector.request(Method::GET, path).send().unwrap(),
            StatusCode::UNAUTHORIZED,
            "missing admin token",
        );
        assert_error(
            collector
                .request(Method::GET, path)
                .bearer_auth("not-the-token")
                .send()
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "wrong admin token",
        );
    }
    let put = collector
        .request(Method::PUT, "/api/v1/monitors/1/job")
        .bearer_auth(format!("{}x", collector.token))
        .json(&interval(1, "hour"))
        .send()
        .unwrap();
    assert_eq!(put.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(collector.api_get("/api/v1/monitors"), json!([]));
}

#[test]
fn a_monitor_from_a_checkin_shows_every_documented_field() {
    let collector = Collector::start(None);
    let config = json!({
        "schedule": {"type": "crontab", "value": "*/5 * * * *"},
        "checkin_margin": 2, "max_runtime": 10, "timezone": "America/New_York",
        "failure_issue_threshold": 3, "recovery_threshold": 2
    });
    let body = envelope(&[(
        "check_in",
        &json!({"check_in_id": "45215841053c4af78c9c37ed88b9937a", "monitor_slug": "db-vacuum",
                "status": "ok", "environment": "production", "duration": 0.25,
                "monitor_config": config})
        .to_string(),
    )]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);

    let monitors = collector.api_get("/api/v1/monitors");
    assert_eq!(monitors.as_array().unwrap().len(), 1);
    let monitor = &monitors[0];
    let documented: BTreeSet<&str> = [
        "project",
        "slug",
        "environment",
        "status",
        "muted",
        "disabled",
        "schedule",
        "timezone",
        "checkin_margin_s",
        "max_runtime_s",
        "failure_issue_threshold",
        "recovery_threshold",
        "last_checkin",
        "next_checkin",
        "next_checkin_latest",
        "open_incident",
        "snoozed_until",
    ]
    .into();
    assert_eq!(keys(monitor), documented);
    assert_eq!(monitor["project"], 1);
    assert_eq!(monitor["slug"], "db-vacuum");
    assert_eq!(monitor["environment"], "production");
    assert_eq!(monitor["status"], "ok");
    assert_eq!(monitor["muted"], false);
    assert_eq!(monitor["disabled"], false);
    assert_eq!(
        monitor["schedule"],
        json!({"type": "crontab", "value": "*/5 * * * *"})
    );
    assert_eq!(monitor["timezone"], "America/New_York");
    assert_eq!(monitor["checkin_margin_s"], 120);
    assert_eq!(monitor["max_runtime_s"], 600);
    assert_eq!(monitor["failure_issue_threshold"], 3);
    assert_eq!(monitor["recovery_threshold"], 2);
    for field in ["last_checkin", "next_checkin", "next_checkin_latest"] {
        assert!(
            is_rfc3339_utc(&monitor[field]),
            "{field}: {}",
            monitor[field]
        );
    }
    assert_eq!(monitor["open_incident"], Value::Null);

    let checkins =
        collector.api_get("/api/v1/monitors/1/db-vacuum/checkins?environment=production&limit=5");
    let checkin = &checkins[0];
    let documented: BTreeSet<&str> = [
        "id",
        "status",
        "duration_ms",
        "date_added",
        "expected_time",
        "environment",
        "log",
    ]
    .into();
    assert_eq!(keys(checkin), documented);
    assert_eq!(checkin["id"], "45215841053c4af78c9c37ed88b9937a");
    assert_eq!(checkin["status"], "ok");
    assert_eq!(checkin["duration_ms"], 250);
    assert!(is_rfc3339_utc(&checkin["date_added"]));

    for (query, count) in [
        ("project=1", 1),
        ("project=2", 0),
        ("environment=production", 1),
        ("environment=staging", 0),
        ("status=ok", 1),
        ("status=error", 0),
        ("project=1&environment=production&status=ok", 1),
    ] {
        let found = collector.api_get(&format!("/api/v1/monitors?{query}"));
        assert_eq!(found.as_array().unwrap().len(), count, "{query}");
    }
    assert_error(
        collector
            .admin(Method::GET, "/api/v1/monitors?status=sleepy")
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "not one of active, ok, error, disabled",
    );
    assert_error(
        collector
            .admin(Method::GET, "/api/v1/monitors/1/db-vacuum/checkins?limit=0")
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_error(
        collector
            .admin(Method::GET, "/api/v1/monitors/1/nothing-here")
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
        "does not exist",
    );
}

#[test]
fn put_patch_and_delete_manage_monitors() {
    let collector = Collector::start(None);
    let send = |method: Method, path: &str, body: Value| {
        response_json(collector.admin(method, path).json(&body).send().unwrap())
    };
    let config = json!({"schedule": {"type": "interval", "value": 10, "unit": "minute"},
                        "checkin_margin": "90s"});
    let (status, created) = send(Method::PUT, "/api/v1/monitors/1/api-job", config.clone());
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created[0]["status"], "active");
    assert_eq!(created[0]["environment"], "production");
    assert_eq!(created[0]["checkin_margin_s"], 90);
    assert_eq!(created[0]["max_runtime_s"], 1800, "default 30 minutes");

    let (status, replaced) = send(
        Method::PUT,
        "/api/v1/monitors/1/api-job",
        json!({"schedule": "0 4 * * *", "timezone": "Europe/Berlin"}),
    );
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(
        replaced[0]["schedule"],
        json!({"type": "crontab", "value": "0 4 * * *"})
    );
    assert_eq!(
        replaced[0]["checkin_margin_s"], 60,
        "PUT replaces: back to the default"
    );

    let (status, patched) = send(
        Method::PATCH,
        "/api/v1/monitors/1/api-job",
        json!({"muted": true, "max_runtime": 5}),
    );
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched[0]["muted"], true);
    assert_eq!(patched[0]["max_runtime_s"], 300);
    assert_eq!(
        patched[0]["timezone"], "Europe/Berlin",
        "PATCH keeps other fields"
    );

    let (_, disabled) = send(
        Method::PATCH,
        "/api/v1/monitors/1/api-job",
        json!({"disabled": true}),
    );
    assert_eq!(disabled[0]["status"], "disabled");
    // A check-in for a disabled monitor is dropped, not an error for the job that sent it.
    let body = envelope(&[("check_in", &checkin("api-job", "ok", None, None))]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
    assert!(collector.checkins("api-job").is_empty());
    let (_, enabled) = send(
        Method::PATCH,
        "/api/v1/monitors/1/api-job",
        json!({"disabled": false}),
    );
    assert_eq!(enabled[0]["status"], "active");

    for (method, path, body, status, needle) in [
        (
            Method::PATCH,
            "/api/v1/monitors/1/api-job",
            json!({"timezone": "Nowhere/City"}),
            StatusCode::BAD_REQUEST,
            "not a known IANA timezone",
        ),
        (
            Method::PATCH,
            "/api/v1/monitors/1/api-job",
            json!({"muted": "yes"}),
            StatusCode::BAD_REQUEST,
            "muted must be true or false",
        ),
        (
            Method::PATCH,
            "/api/v1/monitors/1/ghost",
            json!({"muted": true}),
            StatusCode::NOT_FOUND,
            "does not exist",
        ),
        (
            Method::PUT,
            "/api/v1/monitors/1/api-job",
            json!({"schedule": "61 * * * *"}),
            StatusCode::BAD_REQUEST,
            "not a valid crontab",
        ),
        (
            Method::PUT,
            "/api/v1/monitors/1/api-job",
            json!({"checkin_margin": 5}),
            StatusCode::BAD_REQUEST,
            "schedule is required",
        ),
        (
            Method::PUT,
            "/api/v1/monitors/1/api-job",
            json!([1, 2]),
            StatusCode::BAD_REQUEST,
            "JSON object",
        ),
        (
            Method::PUT,
            "/api/v1/monitors/x/api-job",
            json!({}),
            StatusCode::BAD_REQUEST,
            "positive integer",
        ),
    ] {
        let (got, reply) = send(method.clone(), path, body);
        assert_eq!(got, status, "{method} {path}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains(needle), "{reply}");
    }

    let mut staging = config;
    staging["environment"] = "staging".into();
    let (status, _) = send(Method::PUT, "/api/v1/monitors/1/api-job", staging);
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(collector.monitor("api-job").len(), 2);

    let response = collector
        .admin(
            Method::DELETE,
            "/api/v1/monitors/1/api-job?environment=staging",
        )
        .send()
        .unwrap();
    let (status, deleted) = response_json(response);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["deleted"][0]["environment"], "staging");
    assert_eq!(collector.monitor("api-job").len(), 1);
    let response = collector
        .admin(Method::DELETE, "/api/v1/monitors/1/api-job")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(collector.monitor("api-job").is_empty());
    assert_error(
        collector
            .admin(Method::DELETE, "/api/v1/monitors/1/api-job")
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
        "does not exist",
    );
}

#[test]
fn a_silent_monitor_is_marked_missed_and_its_incident_opened_within_4_seconds() {
    let collector = Collector::start(None);
    let config = json!({"schedule": {"type": "interval", "value": 2, "unit": "second"},
                        "checkin_margin": "1s"});
    let body = envelope(&[("check_in", &checkin("heartbeat", "ok", None, Some(config)))]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
    let acknowledged = Instant::now();

    let monitor = poll(Duration::from_secs(4), "the monitor to fail", || {
        let monitor = collector.monitor("heartbeat").pop()?;
        (monitor["status"] == "error").then_some(monitor)
    });
    assert!(
        acknowledged.elapsed() < Duration::from_secs(4),
        "{:?}",
        acknowledged.elapsed()
    );
    let incident = &monitor["open_incident"];
    assert_eq!(incident["reason"], "missed_checkin");
    assert_eq!(collector.checkins("heartbeat")[0]["status"], "missed");

    let open = collector.api_get("/api/v1/incidents?open=true");
    assert_eq!(open.as_array().unwrap().len(), 1);
    let documented: BTreeSet<&str> = [
        "id",
        "project",
        "slug",
        "environment",
        "kind",
        "opened_at",
        "resolved_at",
        "reason",
        "acknowledged",
        "next_repeat",
        "repeats",
    ]
    .into();
    assert_eq!(keys(&open[0]), documented);
    assert_eq!(open[0]["kind"], "monitor");
    assert_eq!(open[0]["slug"], "heartbeat");
    assert_eq!(open[0]["resolved_at"], Value::Null);
    assert!(is_rfc3339_utc(&open[0]["opened_at"]));
    assert_eq!(open[0]["id"], incident["id"]);

    // One ok resolves it (recovery_threshold 1).
    let body = envelope(&[("check_in", &checkin("heartbeat", "ok", None, None))]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
    assert_eq!(collector.monitor("heartbeat")[0]["status"], "ok");
    assert_eq!(collector.api_get("/api/v1/incidents?open=true"), json!([]));
    let all = collector.api_get("/api/v1/incidents");
    assert!(is_rfc3339_utc(&all[0]["resolved_at"]), "{all}");
}
