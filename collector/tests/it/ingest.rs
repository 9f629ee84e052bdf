//! Ingest over real HTTP: envelopes (identity, gzip, deflate, with and without `length`), the
//! five auth forms and their rejections, Sentry's cron endpoint, healthchecks-style pings, and
//! bad input that must be refused without leaving any state behind.

use crate::support;

use std::io::Write;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{
    Collector, assert_error, checkin, envelope, interval, json as response_json, sentry_auth,
};

const RUN_ID: &str = "3ad871dbfc804c93bd5485af1060f1f4";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn statuses(collector: &Collector, slug: &str) -> Vec<String> {
    collector
        .checkins(slug)
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn envelopes_in_every_encoding_and_framing() {
    let collector = Collector::start(None);
    let config = Some(interval(1, "hour"));
    let with_length = envelope(&[("check_in", &checkin("plain", "ok", None, config.clone()))]);
    assert_eq!(collector.post_envelope(with_length).0, StatusCode::OK);

    let payload = checkin("no-length", "ok", None, config.clone());
    let without_length = format!("{{}}\n{{\"type\":\"check_in\"}}\n{payload}\n").into_bytes();
    assert_eq!(collector.post_envelope(without_length).0, StatusCode::OK);

    // What sentry-python sends: an envelope header with event_id, gzip, a content type.
    let body = format!(
        "{{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"2026-11-21T18:56:17.852564Z\"}}\n{{\"type\":\"check_in\",\"content_type\":\"application/json\"}}\n{}",
        checkin("gzipped", "ok", None, config.clone())
    );
    let response = collector
        .request(Method::POST, "/api/1/envelope/")
        .header("X-Sentry-Auth", sentry_auth(&collector.key))
        .header("Content-Type", "application/x-sentry-envelope")
        .header("Content-Encoding", "gzip")
        .body(gzip(body.as_bytes()))
        .send()
        .unwrap();
    let (status, reply) = response_json(response);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, json!({"id": "9ec79c33ec9942ab8353589fcb2e04dc"}));

    let body = envelope(&[("check_in", &checkin("deflated", "ok", None, config))]);
    let response = collector
        .request(Method::POST, "/api/1/envelope")
        .header("X-Sentry-Auth", sentry_auth(&collector.key))
        .header("Content-Encoding", "deflate")
        .body(zlib(&body))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    for slug in ["plain", "no-length", "gzipped", "deflated"] {
        assert_eq!(statuses(&collector, slug), ["ok"], "{slug}");
    }

    // Events are accepted (stored raw for now), other item types ignored.
    let event = json!({"event_id": "ee7e3a8684564dfc8e47cc0a05360ffd", "timestamp": 1_795_287_378.5,
        "platform": "python", "level": "error", "message": "disk full"});
    let body = envelope(&[
        ("event", &event.to_string()),
        ("client_report", "{\"discarded_events\":[]}"),
        ("attachment", "line 1\nline 2"),
    ]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
}

#[test]
fn every_auth_form_is_accepted_and_misuse_refused() {
    let collector = Collector::start(None);
    let key = collector.key.clone();
    let make = |slug: &str| {
        envelope(&[(
            "check_in",
            &checkin(slug, "ok", None, Some(interval(1, "hour"))),
        )])
    };
    let post = |path: &str| collector.request(Method::POST, path);

    let sentry_header = post("/api/1/envelope/")
        .header("X-Sentry-Auth", sentry_auth(&key))
        .body(make("a1"));
    let authorization_sentry = post("/api/1/envelope/")
        .header("Authorization", sentry_auth(&key))
        .body(make("a2"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    let authorization_basic = post("/api/1/envelope/")
        .header("Authorization", format!("Basic {basic}"))
        .body(make("a3"));
    let query = post(&format!(
        "/api/1/envelope/?sentry_key={key}&sentry_version=7"
    ))
    .body(make("a4"));
    let path = collector.request(Method::GET, &format!("/api/1/cron/a5/{key}/?status=ok"));
    for (name, request) in [
        ("X-Sentry-Auth", sentry_header),
        ("Authorization: Sentry", authorization_sentry),
        ("Authorization: Basic", authorization_basic),
        ("sentry_key query", query),
    ] {
        let (status, body) = response_json(request.send().unwrap());
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
    // The path form is the cron endpoint's; its monitor must exist first.
    let create = post(&format!("/api/1/cron/a5/{key}/"))
        .header("Content-Type", "application/json")
        .body(json!({"status": "in_progress", "monitor_config": interval(1, "hour")}).to_string());
    assert_eq!(create.send().unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(path.send().unwrap().status(), StatusCode::ACCEPTED);
    for slug in ["a1", "a2", "a3", "a4"] {
        assert_eq!(statuses(&collector, slug), ["ok"], "{slug}");
    }
    assert_eq!(
        statuses(&collector, "a5"),
        ["ok"],
        "the ok closed the open run"
    );

    assert_error(
        post("/api/1/envelope/").body(make("n1")).send().unwrap(),
        StatusCode::UNAUTHORIZED,
        "missing credentials",
    );
    assert_error(
        post("/api/1/envelope/")
            .header("X-Sentry-Auth", sentry_auth(&"f".repeat(32)))
            .body(make("n2"))
            .send()
            .unwrap(),
        StatusCode::FORBIDDEN,
        "unknown project key",
    );
    assert_error(
        post("/api/2/envelope/")
            .header("X-Sentry-Auth", sentry_auth(&key))
            .body(make("n3"))
            .send()
            .unwrap(),
        StatusCode::FORBIDDEN,
        "does not belong to project 2",
    );
    assert_error(
        post(&format!("/api/1/envelope/?sentry_key={key}"))
            .header("X-Sentry-Auth", sentry_auth(&key))
            .body(make("n4"))
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "the X-Sentry-Auth header, the sentry_key query parameter",
    );
    assert_error(
        collector
            .request(Method::GET, &format!("/api/1/cron/a5/{key}/?status=ok"))
            .header("Authorization", sentry_auth(&key))
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "the Authorization header, the URL path",
    );
    assert_error(
        post("/api/1/envelope/")
            .header("X-Sentry-Auth", "Sentry sentry_version=7")
            .body(make("n5"))
            .send()
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "sentry_key",
    );
    for slug in ["n1", "n2", "n3", "n4", "n5"] {
        assert!(collector.monitor(slug).is_empty(), "{slug} must not exist");
    }
}

#[test]
fn a_key_of_another_project_is_forbidden() {
    let one = "1".repeat(32);
    let two = "2".repeat(32);
    let config = format!(
        "[[projects]]\nid = 1\nkeys = [\"{one}\"]\n[[projects]]\nid = 2\nkeys = [\"{two}\"]\n"
    );
    let collector = Collector::start(Some(&config));
    let body = envelope(&[(
        "check_in",
        &checkin("job", "ok", None, Some(interval(1, "hour"))),
    )]);
    let response = collector
        .request(Method::POST, "/api/1/envelope/")
        .header("X-Sentry-Auth", sentry_auth(&two))
        .body(body.clone())
        .send()
        .unwrap();
    assert_error(
        response,
        StatusCode::FORBIDDEN,
        "does not belong to project 1",
    );
    let response = collector
        .request(Method::POST, "/api/2/envelope/")
        .header("X-Sentry-Auth", sentry_auth(&two))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[test]
fn the_cron_endpoint_takes_queries_and_json() {
    let collector = Collector::start(None);
    let key = collector.key.clone();
    // A JSON body carries monitor_config: that creates the monitor (upsert over plain HTTP).
    let response = collector
        .request(Method::POST, &format!("/api/1/cron/nightly/{key}/"))
        .header("Content-Type", "application/json")
        .body(
            json!({
                "check_in_id": RUN_ID,
                "status": "in_progress",
                "environment": "staging",
                "monitor_config": {"schedule": {"type": "crontab", "value": "0 3 * * *"},
                                   "checkin_margin": 5, "max_runtime": 10}
            })
            .to_string(),
        )
        .send()
        .unwrap();
    let (status, reply) = response_json(response);
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["id"], RUN_ID);

    // The query form, authenticated by header on the key-less route.
    let response = collector
        .request(
            Method::GET,
            &format!("/api/1/cron/nightly?check_in_id={RUN_ID}&status=ok&environment=staging&duration=2.5"),
        )
        .header("X-Sentry-Auth", sentry_auth(&key))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let checkins = collector.checkins("nightly");
    assert_eq!(checkins.len(), 1);
    assert_eq!(checkins[0]["status"], "ok");
    assert_eq!(checkins[0]["duration_ms"], 2500);
    assert_eq!(checkins[0]["environment"], "staging");
    let monitor = &collector.monitor("nightly")[0];
    assert_eq!(monitor["checkin_margin_s"], 300);
    assert_eq!(monitor["max_runtime_s"], 600);

    // Query mistakes are 400s with a reason.
    for (query, needle) in [
        ("", "`status` is required"),
        ("status=missed", "must be in_progress, ok or error"),
        ("status=ok&check_in_id=nope", "not a UUID"),
        ("status=ok&duration=long", "number of seconds"),
    ] {
        let response = collector
            .request(Method::GET, &format!("/api/1/cron/nightly/{key}/?{query}"))
            .send()
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, needle);
    }
    // A check-in for a monitor that does not exist, without config, is a 404.
    let response = collector
        .request(Method::GET, &format!("/api/1/cron/ghost/{key}/?status=ok"))
        .send()
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "does not exist");
}

/// Slugs reach the monitor as they reach Sentry's: an all-digit slug is kept, and a long one is
/// cut to 50 characters (Relay) before it is slugified (Sentry's consumer).
#[test]
fn slugs_are_normalized_as_relay_and_sentry_do() {
    let collector = Collector::start(None);
    let key = collector.key.clone();
    let long = "db.backup.".repeat(10);
    for (slug, stored) in [
        ("12345", "12345"),
        (long.as_str(), "dbbackupdbbackupdbbackupdbbackupdbbackup"),
    ] {
        let response = collector
            .request(Method::POST, &format!("/api/1/cron/{slug}/{key}/"))
            .header("Content-Type", "application/json")
            .body(
                json!({
                    "status": "ok",
                    "monitor_config": {"schedule": {"type": "crontab", "value": "0 3 * * *"}}
                })
                .to_string(),
            )
            .send()
            .unwrap();
        let (status, reply) = response_json(response);
        assert_eq!(status, StatusCode::ACCEPTED, "{slug}: {reply}");
        assert_eq!(
            statuses(&collector, stored),
            ["ok"],
            "{slug} is stored as {stored}"
        );
    }
}

#[test]
fn pings_start_finish_fail_and_log() {
    let collector = Collector::start(None);
    let key = collector.key.clone();
    let create = envelope(&[(
        "check_in",
        &checkin("backup", "ok", None, Some(interval(1, "day"))),
    )]);
    assert_eq!(collector.post_envelope(create).0, StatusCode::OK);
    let ping = |method: Method, path: &str| {
        collector
            .request(method, &format!("/ping/{key}/backup{path}"))
            .send()
            .unwrap()
    };

    let rid = "5c5b3d4e-8f2a-4b7e-9d3c-2a1b0c9d8e7f";
    let response = ping(Method::GET, &format!("/start?rid={rid}"));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().unwrap(), "OK");
    assert_eq!(statuses(&collector, "backup"), ["in_progress", "ok"]);
    let response = collector
        .request(Method::POST, &format!("/ping/{key}/backup?rid={rid}"))
        .body("dumped 12 tables")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let newest = &collector.checkins("backup")[0];
    assert_eq!(
        newest["id"],
        rid.replace('-', ""),
        "rid pairs the start with its end"
    );
    assert_eq!(newest["status"], "ok");
    assert_eq!(newest["log"], "dumped 12 tables");
    assert!(newest["duration_ms"].is_u64(), "{newest}");

    assert_eq!(ping(Method::HEAD, "/fail").status(), StatusCode::OK);
    assert_eq!(ping(Method::GET, "/0").status(), StatusCode::OK);
    assert_eq!(ping(Method::POST, "/3").status(), StatusCode::OK);
    let checkins = collector.checkins("backup");
    assert_eq!(checkins[0]["status"], "error");
    assert_eq!(checkins[0]["log"], "exit code 3");
    assert_eq!(checkins[1]["status"], "ok");
    assert_eq!(checkins[2]["status"], "error");

    // /log records text and changes nothing.
    let before = collector.monitor("backup");
    let count = collector.checkins("backup").len();
    let response = collector
        .request(Method::POST, &format!("/ping/{key}/backup/log"))
        .body("disk at 91%")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(collector.checkins("backup").len(), count);
    assert_eq!(collector.monitor("backup"), before);
    let logs = collector.api_get("/api/v1/monitors/1/backup/logs");
    assert_eq!(logs[0]["log"], "disk at 91%");

    // Bodies past 10 000 bytes are truncated, not refused.
    let response = collector
        .request(Method::POST, &format!("/ping/{key}/backup"))
        .body("x".repeat(50_000))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let newest = &collector.checkins("backup")[0];
    assert_eq!(newest["log"].as_str().unwrap().len(), 10_000);

    for (path, status, needle) in [
        ("/256", StatusCode::BAD_REQUEST, "0 to 255"),
        ("/stop", StatusCode::BAD_REQUEST, "unknown ping action"),
        ("?rid=not-a-uuid", StatusCode::BAD_REQUEST, "not a UUID"),
    ] {
        assert_error(ping(Method::GET, path), status, needle);
    }
    assert_error(
        collector
            .request(Method::GET, &format!("/ping/{}/backup", "e".repeat(32)))
            .send()
            .unwrap(),
        StatusCode::FORBIDDEN,
        "unknown project key",
    );
    assert_error(
        collector
            .request(Method::GET, &format!("/ping/{key}/ghost"))
            .send()
            .unwrap(),
        StatusCode::NOT_FOUND,
        "does not exist",
    );
}

#[test]
fn pings_take_a_trailing_slash_as_healthchecks_does() {
    let collector = Collector::start(None);
    let key = collector.key.clone();
    let create = envelope(&[(
        "check_in",
        &checkin("nightly", "ok", None, Some(interval(1, "day"))),
    )]);
    assert_eq!(collector.post_envelope(create).0, StatusCode::OK);
    let rid = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
    // Each form with a trailing slash, in an order whose statuses tell them apart.
    for (method, path) in [
        (Method::GET, format!("/start/?rid={rid}")),
        (Method::POST, format!("/?rid={rid}")),
        (Method::GET, "/fail/".to_owned()),
        (Method::HEAD, "/0/".to_owned()),
        (Method::POST, "/4/".to_owned()),
    ] {
        let response = collector
            .request(method.clone(), &format!("/ping/{key}/nightly{path}"))
            .send()
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
    }
    let checkins = collector.checkins("nightly");
    let newest: Vec<_> = checkins
        .iter()
        .map(|c| (c["status"].as_str().unwrap(), c["log"].as_str()))
        .take(4)
        .collect();
    assert_eq!(
        newest,
        [
            ("error", Some("exit code 4")),
            ("ok", None),
            ("error", None),
            ("ok", None)
        ]
    );
    assert_eq!(checkins[3]["id"], rid.replace('-', ""));

    let response = collector
        .request(Method::POST, &format!("/ping/{key}/nightly/log/"))
        .body("rotated logs")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let logs = collector.api_get("/api/v1/monitors/1/nightly/logs");
    assert_eq!(logs[0]["log"], "rotated logs");
    // A slash does not turn an unknown action into a success.
    assert_error(
        collector
            .request(Method::GET, &format!("/ping/{key}/nightly/stop/"))
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "unknown ping action",
    );
}

#[test]
fn bad_input_is_refused_and_leaves_no_state() {
    let collector = Collector::start(None);
    let good = checkin("must-not-exist", "ok", None, Some(interval(1, "hour")));
    let config = |extra: Value| {
        let mut config = json!({"schedule": {"type": "crontab", "value": "0 * * * *"}});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        checkin("must-not-exist", "ok", None, Some(config))
    };
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b'{'; 50 << 20]).unwrap();
    let bomb = bomb.finish().unwrap();

    /// Name, body, Content-Encoding, expected status, a phrase of the expected message.
    type Case = (
        &'static str,
        Vec<u8>,
        Option<&'static str>,
        StatusCode,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "not an envelope",
            b"hello\n".to_vec(),
            None,
            StatusCode::BAD_REQUEST,
            "malformed envelope",
        ),
        (
            "bad gzip",
            b"\x1f\x8b\x08\x00garbage".to_vec(),
            Some("gzip"),
            StatusCode::BAD_REQUEST,
            "not valid gzip",
        ),
        (
            "unsupported encoding",
            envelope(&[("check_in", &good)]),
            Some("br"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Encoding",
        ),
        (
            "decompression bomb",
            bomb,
            Some("gzip"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds the limit",
        ),
        (
            "body too large",
            vec![b' '; 2 << 20],
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds the limit",
        ),
        (
            "length past the end",
            format!("{{}}\n{{\"type\":\"check_in\",\"length\":9999}}\n{good}\n").into_bytes(),
            None,
            StatusCode::BAD_REQUEST,
            "runs past the end",
        ),
        (
            "invalid UUID",
            envelope(&[(
                "check_in",
                &checkin(
                    "must-not-exist",
                    "ok",
                    Some("xyz"),
                    Some(interval(1, "hour")),
                ),
            )]),
            None,
            StatusCode::BAD_REQUEST,
            "invalid UUID `xyz`",
        ),
        (
            "bad slug",
            envelope(&[(
                "check_in",
                &checkin("!!!", "ok", None, Some(interval(1, "hour"))),
            )]),
            None,
            StatusCode::BAD_REQUEST,
            "monitor slug",
        ),
        (
            "bad cron",
            envelope(&[(
                "check_in",
                &config(json!({"schedule": {"type": "crontab", "value": "61 * * * *"}})),
            )]),
            None,
            StatusCode::BAD_REQUEST,
            "not a valid crontab expression",
        ),
        (
            "bad timezone",
            envelope(&[("check_in", &config(json!({"timezone": "Mars/Olympus"})))]),
            None,
            StatusCode::BAD_REQUEST,
            "not a known IANA timezone",
        ),
        (
            "threshold out of range",
            envelope(&[("check_in", &config(json!({"failure_issue_threshold": 721})))]),
            None,
            StatusCode::BAD_REQUEST,
            "between 1 and 720",
        ),
        (
            "missed status",
            envelope(&[(
                "check_in",
                &checkin("must-not-exist", "missed", None, Some(interval(1, "hour"))),
            )]),
            None,
            StatusCode::BAD_REQUEST,
            "cannot be sent",
        ),
        (
            "bad event",
            envelope(&[("check_in", &good), ("event", "{\"event_id\":\"nope\"}")]),
            None,
            StatusCode::BAD_REQUEST,
            "item 1 (event)",
        ),
        // A good check-in followed by a bad one: nothing of the envelope is applied.
        (
            "second item bad",
            envelope(&[
                ("check_in", &good),
                ("check_in", &config(json!({"recovery_threshold": 0}))),
            ]),
            None,
            StatusCode::BAD_REQUEST,
            "item 1 (check_in)",
        ),
        // The engine refuses the second terminal status of one run: the first is not kept either.
        (
            "run finished twice",
            envelope(&[
                (
                    "check_in",
                    &checkin(
                        "must-not-exist",
                        "ok",
                        Some(RUN_ID),
                        Some(interval(1, "hour")),
                    ),
                ),
                (
                    "check_in",
                    &checkin("must-not-exist", "error", Some(RUN_ID), None),
                ),
            ]),
            None,
            StatusCode::CONFLICT,
            "already finished",
        ),
    ];
    for (name, body, encoding, status, needle) in cases {
        let mut request = collector
            .request(Method::POST, "/api/1/envelope/")
            .header("X-Sentry-Auth", sentry_auth(&collector.key))
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header("Content-Encoding", encoding);
        }
        let (got, reply) = response_json(request.send().unwrap());
        let message = reply["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{name}: {reply}");
        assert!(
            message.contains(needle),
            "{name}: {message:?} should contain {needle:?}"
        );
    }
    assert_eq!(
        collector.api_get("/api/v1/monitors"),
        json!([]),
        "no monitor was created"
    );
    assert!(collector.checkins("must-not-exist").is_empty());
}
