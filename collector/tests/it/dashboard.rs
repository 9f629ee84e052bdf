//! The dashboard over plain HTTP (no browser): the login and its cookie, CSRF on every action,
//! escaping of what SDKs send, security headers, and status badges behind their key.

use crate::support;

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode, redirect};
use serde_json::{Value, json};
use support::{Collector, checkin, envelope};

/// A browser-like client that shows redirects instead of following them.
fn client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An `application/x-www-form-urlencoded` body, as a browser sends a form.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

trait Form {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self;
}

impl Form for reqwest::blocking::RequestBuilder {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self {
        self.header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(pairs))
    }
}

/// Logs in; returns the `Cookie` header value for the session.
fn log_in(collector: &Collector) -> String {
    let response = client()
        .post(collector.url("/login"))
        .form_body(&[("token", collector.token.as_str()), ("next", "/monitors")])
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/monitors");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

fn get(collector: &Collector, path: &str, cookie: &str) -> Response {
    client()
        .get(collector.url(path))
        .header("Cookie", cookie)
        .send()
        .unwrap()
}

fn page(collector: &Collector, path: &str, cookie: &str) -> String {
    let response = get(collector, path, cookie);
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.text().unwrap()
}

/// The value of the first `name="csrf"` field of a page.
fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF field")
        + 19;
    html[at..at + 64].to_owned()
}

/// A monitor that failed once (threshold 1), with a script as the log of its last check-in.
fn failing_monitor(collector: &Collector, slug: &str) {
    let config = json!({"schedule": {"type": "crontab", "value": "0 3 * * *"},
                        "timezone": "Europe/Berlin", "failure_issue_threshold": 1});
    let (status, body) = collector.post_envelope(envelope(&[(
        "check_in",
        &checkin(slug, "error", None, Some(config)),
    )]));
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = collector
        .request(
            Method::POST,
            &format!("/ping/{}/{slug}/fail", collector.key),
        )
        .body("<script>alert(1)</script> & \"quotes\"")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[test]
fn pages_need_a_login_whose_cookie_is_http_only_strict_and_not_the_token() {
    let collector = Collector::start(None);
    for path in ["/", "/monitors", "/monitors/1/x", "/incidents", "/issues"] {
        let response = get(&collector, path, "");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[LOCATION], format!("/login?next={path}"));
    }
    let forged = get(&collector, "/", "watchpost_session=0123");
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);

    let login = client().get(collector.url("/login")).send().unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let csp = login.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(login.text().unwrap().contains("name=\"token\""));

    let wrong = client()
        .post(collector.url("/login"))
        .form_body(&[("token", "not-the-admin-token")])
        .send()
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());

    // A login link cannot send the browser to another site.
    let away = client()
        .post(collector.url("/login"))
        .form_body(&[
            ("token", collector.token.as_str()),
            ("next", "//evil.example/"),
        ])
        .send()
        .unwrap();
    assert_eq!(away.headers()[LOCATION], "/");
    let set_cookie = away.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    assert!(!set_cookie.contains(&collector.token));

    let cookie = log_in(&collector);
    let html = page(&collector, "/", &cookie);
    assert!(html.contains("Overview"));
    assert!(
        !html.contains(&collector.token),
        "the token never reaches a page"
    );

    // Logging out (with the form's CSRF token) ends the session.
    let token = csrf(&html);
    let out = client()
        .post(collector.url("/logout"))
        .header("Cookie", &cookie)
        .form_body(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        get(&collector, "/", &cookie).status(),
        StatusCode::SEE_OTHER
    );
}

#[test]
fn actions_need_the_sessions_csrf_token_and_go_through_the_processor() {
    let collector = Collector::start(None);
    failing_monitor(&collector, "nightly-backup");
    let cookie = log_in(&collector);
    let html = page(&collector, "/monitors/1/nightly-backup", &cookie);
    let token = csrf(&html);
    let act = |csrf: &str, action: &str| {
        client()
            .post(collector.url("/monitors/1/nightly-backup"))
            .header("Cookie", &cookie)
            .form_body(&[
                ("csrf", csrf),
                ("action", action),
                ("environment", "production"),
            ])
            .send()
            .unwrap()
    };

    let forged = act(&"0".repeat(64), "mute");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(collector.monitor("nightly-backup")[0]["muted"], false);
    // Another session's token is no good either.
    let other = log_in(&collector);
    let other_token = csrf(&page(&collector, "/", &other));
    assert_eq!(act(&other_token, "mute").status(), StatusCode::FORBIDDEN);

    for (action, field, value) in [
        ("mute", "muted", json!(true)),
        ("unmute", "muted", json!(false)),
        ("disable", "status", json!("disabled")),
        ("enable", "disabled", json!(false)),
    ] {
        let response = act(&token, action);
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{action}");
        assert_eq!(
            response.headers()[LOCATION],
            format!("/monitors/1/nightly-backup?done={action}")
        );
        assert_eq!(
            collector.monitor("nightly-backup")[0][field],
            value,
            "{action}"
        );
    }
    assert_eq!(act(&token, "explode").status(), StatusCode::BAD_REQUEST);
    let unknown = client()
        .post(collector.url("/monitors/1/no-such-job"))
        .header("Cookie", &cookie)
        .form_body(&[("csrf", token.as_str()), ("action", "mute")])
        .send()
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // Issues the same way: an error event makes one, the form resolves it.
    let event = json!({"event_id": "c0ffee00c0ffee00c0ffee00c0ffee01", "level": "error",
        "timestamp": chrono::Utc::now().timestamp(), "message": "disk full"});
    let (status, body) = collector.post_envelope(envelope(&[("event", &event.to_string())]));
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = collector.api_get("/api/v1/issues")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resolve = |csrf: &str, id: &str| {
        client()
            .post(collector.url(&format!("/issues/{id}")))
            .header("Cookie", &cookie)
            .form_body(&[("csrf", csrf), ("action", "resolve")])
            .send()
            .unwrap()
    };
    assert_eq!(resolve("forged", &id).status(), StatusCode::FORBIDDEN);
    assert_eq!(
        collector.api_get("/api/v1/issues")[0]["status"],
        "unresolved"
    );
    assert_eq!(resolve(&token, &id).status(), StatusCode::SEE_OTHER);
    assert_eq!(collector.api_get("/api/v1/issues")[0]["status"], "resolved");
    assert_eq!(
        resolve(&token, &"0".repeat(32)).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn what_sdks_send_is_shown_as_text() {
    let collector = Collector::start(None);
    failing_monitor(&collector, "nightly-backup");
    let cookie = log_in(&collector);
    let response = get(&collector, "/monitors/1/nightly-backup", &cookie);
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"));
    for words in [
        "every day at 03:00 (Europe/Berlin)",
        "failing",
        "Incidents",
        "Status badge",
    ] {
        assert!(html.contains(words), "{words}");
    }
    let overview = page(&collector, "/", &cookie);
    assert!(overview.contains("nightly-backup") && overview.contains("open incidents"));
    assert!(page(&collector, "/monitors", &cookie).contains("<svg class=\"timeline\""));
    assert!(page(&collector, "/incidents", &cookie).contains("nightly-backup"));
    assert_eq!(
        get(&collector, "/monitors/1/no-such-job", &cookie).status(),
        StatusCode::NOT_FOUND
    );
}

/// The badge URLs shown on a monitor's page.
fn badge_urls(collector: &Collector, cookie: &str, slug: &str) -> (String, String) {
    let html = page(collector, &format!("/monitors/1/{slug}"), cookie);
    let url = |ext: &str| {
        let needle = format!("/badge/1/{slug}.{ext}?key=");
        let at = html.find(&needle).expect("badge URL") + needle.len();
        format!("{needle}{}", &html[at..at + 32])
    };
    (url("svg"), url("json"))
}

#[test]
fn badges_need_their_key_and_reveal_nothing_without_it() {
    let mut collector = Collector::start(None);
    failing_monitor(&collector, "nightly-backup");
    let cookie = log_in(&collector);
    let (svg, json_url) = badge_urls(&collector, &cookie, "nightly-backup");

    let response = collector.request(Method::GET, &svg).send().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "image/svg+xml; charset=utf-8"
    );
    let body = response.text().unwrap();
    assert!(
        body.starts_with("<svg") && body.contains("failing"),
        "{body}"
    );

    let shield: Value = collector
        .request(Method::GET, &json_url)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        shield,
        json!({"schemaVersion": 1, "label": "nightly-backup", "message": "failing",
               "color": "red"})
    );

    // Wrong, missing or another monitor's key: the same 404 as a path that does not exist.
    let (other_svg, _) = {
        failing_monitor(&collector, "other-job");
        badge_urls(&collector, &cookie, "other-job")
    };
    let other_key = other_svg.rsplit('=').next().unwrap();
    let no_route = collector
        .request(Method::GET, "/badge/1/nightly-backup.svg")
        .send()
        .unwrap();
    assert_eq!(no_route.status(), StatusCode::NOT_FOUND);
    let expected: Value = no_route.json().unwrap();
    for path in [
        format!("/badge/1/nightly-backup.svg?key={}", "0".repeat(32)),
        format!("/badge/1/nightly-backup.svg?key={other_key}"),
        format!("/badge/2/nightly-backup.svg?key={other_key}"),
        "/badge/1/nightly-backup.png".to_owned(),
    ] {
        let response = collector.request(Method::GET, &path).send().unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().unwrap();
        let path_only = path.split('?').next().unwrap();
        assert_eq!(
            body["error"],
            expected["error"]
                .as_str()
                .unwrap()
                .replace("/badge/1/nightly-backup.svg", path_only),
            "{path}"
        );
    }

    // Keys are stable across restarts: the secret lives in the data dir.
    collector.restart();
    let again = collector.request(Method::GET, &svg).send().unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    // Deleting the secret revokes every badge URL.
    collector.kill();
    std::fs::remove_file(collector.data_dir().join("data/badge_secret")).unwrap();
    collector.restart();
    let revoked = collector.request(Method::GET, &svg).send().unwrap();
    assert_eq!(revoked.status(), StatusCode::NOT_FOUND);
}

/// The issue page (exception chain and frames, escaped text), the issues list's sparkline,
/// the probes page and the alert deliveries page, all behind the login.
#[test]
fn issue_probe_and_alert_pages_show_what_happened_as_text() {
    let collector = Collector::start(Some(
        r#"
[[channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[rules]]
name = "new errors"
on = ["issue.first_seen"]
channels = ["hook"]

[[probes]]
name = "api"
url = "http://127.0.0.1:9/health?token=s3cret"
interval = "200ms"
timeout = "200ms"
"#,
    ));
    for path in ["/issues/0123abcd", "/probes", "/alerts"] {
        let response = get(&collector, path, "");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[LOCATION], format!("/login?next={path}"));
    }
    let now = chrono::Utc::now().timestamp();
    let crash = json!({"event_id": "c0ffee00c0ffee00c0ffee00c0ffee11", "level": "error",
        "platform": "python", "timestamp": now,
        "exception": {"values": [{"type": "ValueError", "value": "bad <b>input</b>",
            "module": "builtins",
            "stacktrace": {"frames": [
                {"function": "main", "module": "app", "filename": "app.py", "lineno": 3,
                 "in_app": true},
                {"function": "parse_config", "module": "app.config",
                 "filename": "app/config.py", "lineno": 42, "in_app": true},
                {"function": "loads", "module": "json", "filename": "json/__init__.py",
                 "lineno": 346, "in_app": false}]}}]}});
    let script = json!({"event_id": "c0ffee00c0ffee00c0ffee00c0ffee12", "level": "error",
        "timestamp": now, "message": "<script>alert(1)</script> & \"quotes\""});
    for event in [&crash, &script] {
        let (status, body) = collector.post_envelope(envelope(&[("event", &event.to_string())]));
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let issues = collector.api_get("/api/v1/issues");
    let id_of = |needle: &str| {
        issues
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["title"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("an issue titled with {needle}: {issues}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (crash_id, script_id) = (id_of("ValueError"), id_of("alert(1)"));
    let cookie = log_in(&collector);

    let list = page(&collector, "/issues", &cookie);
    assert!(list.contains("<svg class=\"spark\""), "{list}");
    assert!(
        list.contains(&format!("href=\"/issues/{crash_id}\"")),
        "{list}"
    );
    assert!(
        list.contains("href=\"/probes\""),
        "probes are configured: {list}"
    );
    assert!(list.contains("href=\"/alerts\""), "{list}");
    let overview = page(&collector, "/", &cookie);
    assert!(overview.contains(&format!("href=\"/issues/{script_id}\"")));

    let html = page(&collector, &format!("/issues/{crash_id}"), &cookie);
    assert!(html.contains("ValueError"), "{html}");
    assert!(html.contains("bad &lt;b&gt;input&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<b>input"), "{html}");
    assert!(html.contains("parse_config"), "{html}");
    assert!(html.contains("app/config.py"), "{html}");
    assert!(
        html.contains("<li class=\"app\">"),
        "in-app frames stand out: {html}"
    );
    let (crashing, outer) = (html.find(">loads<").unwrap(), html.find(">main<").unwrap());
    assert!(crashing < outer, "the crashing frame comes first");
    assert!(html.contains("value=\"resolve\""), "{html}");
    assert!(html.contains("<svg class=\"spark\""), "{html}");

    let html = page(&collector, &format!("/issues/{script_id}"), &cookie);
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert_eq!(
        get(&collector, &format!("/issues/{}", "0".repeat(32)), &cookie).status(),
        StatusCode::NOT_FOUND
    );

    // Resolving from the issue's page comes back to it.
    let response = client()
        .post(collector.url(&format!("/issues/{crash_id}")))
        .header("Cookie", &cookie)
        .form_body(&[
            ("csrf", csrf(&html).as_str()),
            ("action", "resolve"),
            ("from", "issue"),
        ])
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[LOCATION],
        format!("/issues/{crash_id}").as_str()
    );

    let alerts = page(&collector, "/alerts", &cookie);
    assert!(alerts.contains("issue.first_seen"), "{alerts}");
    assert!(alerts.contains("hook"), "{alerts}");
    assert!(alerts.contains("ValueError"), "{alerts}");
    assert!(!alerts.contains("<script>"), "{alerts}");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while collector
        .api_get("/api/v1/probes/api/results")
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "the probe never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let probes = page(&collector, "/probes", &cookie);
    assert!(probes.contains("api"), "{probes}");
    assert!(probes.contains("127.0.0.1:9/health"), "{probes}");
    assert!(
        !probes.contains("s3cret"),
        "the URL is shown redacted: {probes}"
    );
    assert!(probes.contains("<svg class=\"spark\""), "{probes}");
}

#[test]
fn without_probes_the_nav_has_no_probes_link() {
    let collector = Collector::start(None);
    let cookie = log_in(&collector);
    let html = page(&collector, "/alerts", &cookie);
    assert!(!html.contains("href=\"/probes\""), "{html}");
    assert!(html.contains("None yet."), "{html}");
    let probes = page(&collector, "/probes", &cookie);
    assert!(probes.contains("No probes are configured"), "{probes}");
}
