//! Security (docs/reliability.md, "Security"): every management, dashboard and badge route refuses a missing or
//! wrong credential; secrets from the config never show in logs, API responses, pages or
//! `/metrics`, even while deliveries to them fail; loopback by default; private files; and
//! per-key ingest rate limiting.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::{Method, StatusCode, redirect};
use support::{Collector, checkin, envelope, interval, json as response_json, poll, sentry_auth};

const ADMIN_TOKEN: &str = "admin-token-5ecret-do-not-leak-0001";
const HOOK_SECRET: &str = "hook-5ecret-do-not-leak-0002";
const TELEGRAM_TOKEN: &str = "123456:telegram-5ecret-do-not-leak-0003";
const SMTP_PASSWORD: &str = "smtp-5ecret-do-not-leak-0004";
const UPSTREAM_KEY: &str = "5ecde5ecde5ecde5ecde5ecde5ecde00";

/// Every secret-bearing part of the config comes from the environment, as docs recommend.
const CONFIG: &str = r#"
[[channels]]
name = "hook"
type = "webhook"
url = "env:WP_HOOK_URL"

[[channels]]
name = "tg"
type = "telegram"
bot_token = "env:WP_TELEGRAM"
chat_id = 1
api_url = "http://127.0.0.1:1"

[[channels]]
name = "mail"
type = "email"
smtp_url = "smtp://127.0.0.1:1"
username = "watchpost"
password = "env:WP_SMTP_PASSWORD"
from = "Watchpost <alerts@example.com>"
to = ["ops@example.com"]

[[rules]]
name = "everything"
on = ["monitor.failed", "monitor.recovered"]
channels = ["hook", "tg", "mail"]

[upstream]
dsn = "env:WP_UPSTREAM_DSN"
"#;

fn start() -> Collector {
    let hook = format!("http://127.0.0.1:1/hook?secret={HOOK_SECRET}");
    let upstream = format!("http://{UPSTREAM_KEY}@127.0.0.1:1/42");
    Collector::start_with_env(
        Some(CONFIG),
        &[
            ("WATCHPOST_ADMIN_TOKEN", ADMIN_TOKEN),
            ("WP_HOOK_URL", &hook),
            ("WP_TELEGRAM", TELEGRAM_TOKEN),
            ("WP_SMTP_PASSWORD", SMTP_PASSWORD),
            ("WP_UPSTREAM_DSN", &upstream),
            // Everything the collector has to say, so a leak at any level is caught.
            (
                "RUST_LOG",
                "debug,sled=warn,hyper=warn,reqwest=warn,h2=warn",
            ),
        ],
    )
}

/// A client that shows redirects instead of following them.
fn raw_client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

#[test]
fn every_protected_route_refuses_a_missing_or_wrong_credential() {
    let c = Collector::start(None);
    let client = raw_client();
    let (status, _) = c.post_envelope(envelope(&[(
        "check_in",
        &checkin("guarded", "ok", None, Some(interval(1, "hour"))),
    )]));
    assert_eq!(status, StatusCode::OK);

    // Management: `Authorization: Bearer <admin token>`, else 401 with a JSON error.
    let management = [
        (Method::GET, "/api/v1/monitors"),
        (Method::GET, "/api/v1/monitors/1/guarded"),
        (Method::PUT, "/api/v1/monitors/1/guarded"),
        (Method::PATCH, "/api/v1/monitors/1/guarded"),
        (Method::DELETE, "/api/v1/monitors/1/guarded"),
        (Method::GET, "/api/v1/monitors/1/guarded/checkins"),
        (Method::GET, "/api/v1/monitors/1/guarded/logs"),
        (Method::GET, "/api/v1/incidents"),
        (Method::GET, "/api/v1/probes"),
        (Method::GET, "/api/v1/probes/any/results"),
        (Method::GET, "/api/v1/issues"),
        (Method::PATCH, "/api/v1/issues/1"),
        (Method::GET, "/api/v1/issues/1/events"),
        (Method::GET, "/api/v1/alerts"),
    ];
    for (i, (method, path)) in management.iter().enumerate() {
        // Each route from its own loopback address: two wrong tokens per address stay below
        // the five after which an address is locked out with 429 (`holes.rs` tests that).
        let client = Client::builder()
            .local_address(std::net::IpAddr::from([
                127,
                0,
                1,
                u8::try_from(i + 1).unwrap(),
            ]))
            .redirect(redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let credentials: [(&str, Option<String>); 4] = [
            ("none", None),
            ("wrong token", Some("Bearer not-the-admin-token".into())),
            (
                "token of another scheme",
                Some(format!("Basic {}", c.token)),
            ),
            ("project key", Some(format!("Bearer {}", c.key))),
        ];
        for (what, header) in credentials {
            let mut request = client
                .request(method.clone(), c.url(path))
                .header("Content-Type", "application/json")
                .body("{}");
            if let Some(header) = header {
                request = request.header("Authorization", header);
            }
            let (status, body) = response_json(request.send().expect("request"));
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {what}: {body}"
            );
            assert!(body["error"].is_string(), "{method} {path}: {body}");
        }
    }
    // Nothing was changed by any of them.
    let guarded = c.monitor("guarded");
    assert_eq!(guarded.len(), 1);

    // Dashboard: no session (or a forged one) is sent to the login form, for pages and actions.
    let dashboard = [
        (Method::GET, "/"),
        (Method::GET, "/monitors"),
        (Method::GET, "/monitors/1/guarded"),
        (Method::POST, "/monitors/1/guarded"),
        (Method::GET, "/incidents"),
        (Method::GET, "/issues"),
        (Method::GET, "/issues/1"),
        (Method::POST, "/issues/1"),
        (Method::GET, "/probes"),
        (Method::GET, "/alerts"),
    ];
    for (method, path) in &dashboard {
        for cookie in [None, Some("watchpost_session=forged-session-id")] {
            let mut request = client
                .request(method.clone(), c.url(path))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("action=pause&csrf=guess");
            if let Some(cookie) = cookie {
                request = request.header("Cookie", cookie);
            }
            // The admin token as a bearer does not open the dashboard either: it is not a session.
            let response = request.send().expect("request");
            let status = response.status();
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let refused = (status.is_redirection() && location.starts_with("/login"))
                || status == StatusCode::UNAUTHORIZED
                || status == StatusCode::FORBIDDEN;
            assert!(
                refused,
                "{method} {path} with cookie {cookie:?}: {status} {location}"
            );
        }
    }
    assert_eq!(
        c.monitor("guarded"),
        guarded,
        "a dashboard action went through without a session"
    );
    // Logging in with a wrong token gets no session cookie.
    let response = client
        .post(c.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("token=not-the-admin-token&next=%2F")
        .send()
        .expect("login");
    assert!(response.headers().get("set-cookie").is_none());

    // Badges: without the right key they are indistinguishable from a missing route.
    for path in [
        "/badge/1/guarded.svg",
        "/badge/1/guarded.svg?key=wrong",
        "/badge/1/guarded.json?key=",
        &format!("/badge/1/guarded.json?key={}", c.token),
    ] {
        let response = client.get(c.url(path)).send().expect("badge");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[test]
fn secrets_never_appear_in_logs_responses_pages_or_metrics() {
    let c = start();
    assert_eq!(c.token, ADMIN_TOKEN);
    // A failing run opens an incident: three deliveries to unreachable destinations, each
    // failing and logged, and an envelope queued for the unreachable upstream.
    for status in ["error", "ok"] {
        let (got, body) = c.post_envelope(envelope(&[(
            "check_in",
            &checkin("leaky", status, None, Some(interval(1, "hour"))),
        )]));
        assert_eq!(got, StatusCode::OK, "{body}");
    }
    poll(
        Duration::from_secs(30),
        "every delivery and the relay to fail",
        || {
            let log = c.stderr();
            (log.matches("alert delivery failed").count() >= 3
                && log.contains("upstream unavailable"))
            .then_some(())
        },
    );

    // Everything a person or a scraper can see.
    let client = raw_client();
    let mut seen = c.lines.join("\n");
    for path in [
        "/api/v1/monitors",
        "/api/v1/monitors/1/leaky",
        "/api/v1/monitors/1/leaky/checkins",
        "/api/v1/incidents",
        "/api/v1/alerts",
        "/api/v1/issues",
        "/api/v1/probes",
    ] {
        let response = c.admin(Method::GET, path).send().expect(path);
        seen.push_str(&response.text().expect("body"));
    }
    for path in ["/healthz", "/metrics"] {
        let response = client.get(c.url(path)).send().expect(path);
        seen.push_str(&response.text().expect("body"));
    }
    let login = client
        .post(c.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}&next=%2F"))
        .send()
        .expect("login");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    seen.push_str(&cookie);
    for page in [
        "/",
        "/monitors",
        "/monitors/1/leaky",
        "/incidents",
        "/issues",
    ] {
        let response = client
            .get(c.url(page))
            .header("Cookie", &cookie)
            .send()
            .expect(page);
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        seen.push_str(&response.text().expect("page"));
    }
    seen.push_str(&c.stderr());

    for (name, secret) in [
        ("admin token", ADMIN_TOKEN),
        ("webhook URL secret", HOOK_SECRET),
        ("telegram bot token", TELEGRAM_TOKEN),
        ("SMTP password", SMTP_PASSWORD),
        ("upstream DSN key", UPSTREAM_KEY),
    ] {
        assert!(!seen.contains(secret), "the {name} leaked:\n{seen}");
    }
}

#[test]
fn listens_on_loopback_and_keeps_its_files_private() {
    let default: std::net::SocketAddr = watchpost_collector::config::DEFAULT_LISTEN
        .parse()
        .expect("default listen address");
    assert!(default.ip().is_loopback(), "default listen {default}");

    let c = Collector::start(None);
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    let data = c.data_dir().join("data");
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("admin_token")), 0o600, "admin token file");
    assert!(c.base.starts_with("http://127.0.0.1:"));
}

#[test]
fn ingest_is_rate_limited_per_key() {
    let c = Collector::start(Some("[limits]\ningest_per_second = 1\ningest_burst = 3\n"));
    let body = || {
        envelope(&[(
            "check_in",
            &checkin("busy", "ok", None, Some(interval(1, "hour"))),
        )])
    };
    // The burst passes; then the envelope endpoint answers 429 with both headers.
    let mut accepted = 0;
    let refused = poll(
        Duration::from_secs(10),
        "an envelope to be rate limited",
        || {
            let response = c
                .request(Method::POST, "/api/1/envelope/")
                .header("X-Sentry-Auth", sentry_auth(&c.key))
                .body(body())
                .send()
                .expect("envelope");
            match response.status() {
                StatusCode::OK => {
                    accepted += 1;
                    None
                }
                StatusCode::TOO_MANY_REQUESTS => Some(response),
                other => panic!("envelope: {other}"),
            }
        },
    );
    let header = |name: &str| {
        refused
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("retry-after"), "1");
    assert_eq!(header("x-sentry-rate-limits"), "1::key");
    let (_, reply) = response_json(refused);
    let message = reply["error"].as_str().unwrap_or_default();
    assert!(message.contains("rate limit exceeded"), "{reply}");
    let kept = c.checkins("busy").len();
    assert!(accepted >= 3, "only {accepted} of a burst of 3 accepted");
    assert_eq!(
        kept, accepted,
        "every accepted check-in is kept, no refused one"
    );

    // Pings and the cron endpoint share the key's bucket; the cron endpoint answers 429 too,
    // not Relay's 202 that a crontab's curl cannot tell from success.
    let ping = c
        .request(Method::GET, &format!("/ping/{}/busy", c.key))
        .send()
        .expect("ping");
    assert_eq!(ping.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(ping.headers().contains_key("retry-after"));
    let cron = c
        .request(
            Method::GET,
            &format!("/api/1/cron/busy/{}/?status=ok", c.key),
        )
        .send()
        .expect("cron");
    assert_eq!(cron.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        c.checkins("busy").len(),
        kept,
        "a rate-limited check-in was recorded"
    );
    let metrics = c
        .request(Method::GET, "/metrics")
        .send()
        .expect("metrics")
        .text()
        .expect("body");
    assert!(
        metrics.contains("watchpost_checkins_rejected_total{reason=\"rate_limited\"}"),
        "{metrics}"
    );

    // A second later the key may send again.
    poll(Duration::from_secs(5), "the bucket to refill", || {
        let (status, _) = c.post_envelope(body());
        (status == StatusCode::OK).then_some(())
    });
}
