//! The dashboard in a real browser: headless Chromium driven over chromedriver's W3C WebDriver
//! HTTP API (a few calls with reqwest, no browser crate). Logs in with the admin token, finds a
//! failing monitor seeded through the ingest API, opens its page, mutes it with the form and sees
//! the state change; a log reading `<script>alert(1)</script>` stays text. Screenshots of the
//! overview and the monitor page land in `target/screenshots/` for review (docs/screenshots/
//! holds the committed ones).
//!
//! Chromium comes from Debian (`scripts/install-browser.sh`); when it is missing and the test
//! runs as root it installs it, otherwise it fails saying how: it never skips.

use crate::support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use support::{Collector, checkin, envelope, poll};

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium flags this machine needs (no sandbox as root, no network beyond loopback).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Chromium and chromedriver, installed by the project's script when missing.
fn ensure_browser() {
    if installed("chromium") && installed("chromedriver") {
        return;
    }
    let script = workspace().join("scripts/install-browser.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run scripts/install-browser.sh");
    assert!(
        status.success() && installed("chromium") && installed("chromedriver"),
        "the browser tests need Debian's chromium and chromium-driver: run {} as root",
        script.display()
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A chromedriver process and one browser session in it.
struct Browser {
    driver: Child,
    http: Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        ensure_browser();
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        poll(Duration::from_secs(20), "chromedriver to be ready", || {
            let status: Value = http
                .get(format!("{base}/status"))
                .send()
                .ok()?
                .json()
                .ok()?;
            status["value"]["ready"].as_bool().filter(|ready| *ready)
        });
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push("--window-size=1280,1100".to_owned());
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            }}}))
            .send()
            .expect("new session")
            .json()
            .unwrap();
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"));
        Browser {
            session: format!("{base}/session/{id}"),
            driver,
            http,
            _profile: profile,
        }
    }

    /// A WebDriver command; panics on a WebDriver error.
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        let (ok, value) = self.try_call(method, path, body);
        assert!(ok, "WebDriver {what}: {value}");
        value
    }

    /// A WebDriver command: success and its `value`.
    fn try_call(&self, method: Method, path: &str, body: Option<Value>) -> (bool, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("WebDriver request");
        let ok = response.status().is_success();
        let body: Value = response.json().unwrap_or(Value::Null);
        (ok, body["value"].clone())
    }

    fn open(&self, url: &str) {
        self.call(Method::POST, "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call(Method::GET, "/url", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn find(&self, css: &str) -> String {
        let found = self.call(
            Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element `{css}`: {found}"))
            .to_owned()
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.call(
            Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    /// Clicks a link or submit button and waits until the next page has loaded (a click does
    /// not wait for the navigation it starts).
    fn click_through(&self, css: &str) {
        let before = self.find("html");
        self.click(css);
        // Mid-navigation the old document is gone and the new one may not have its root yet,
        // so a failed lookup here means "not loaded yet", not a test failure.
        poll(Duration::from_secs(20), "the next page", || {
            let (found, now) = self.try_call(
                Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": "html"})),
            );
            let (ok, ready) = self.try_call(
                Method::POST,
                "/execute/sync",
                Some(json!({"script": "return document.readyState;", "args": []})),
            );
            (found && ok && now[ELEMENT] != before.as_str() && ready == "complete").then_some(())
        });
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call(
            Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn source(&self) -> String {
        self.call(Method::GET, "/source", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Visible text of the whole page.
    fn text(&self) -> String {
        let body = self.find("body");
        self.call(Method::GET, &format!("/element/{body}/text"), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn resize(&self, width: u32, height: u32) {
        self.call(
            Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// Whether a JavaScript dialog (an `alert`) is open.
    fn dialog_open(&self) -> bool {
        self.try_call(Method::GET, "/alert/text", None).0
    }

    /// Saves a PNG of the viewport.
    fn screenshot(&self, path: &Path) {
        let png = self.call(Method::GET, "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("decode PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).expect("write screenshot");
    }

    /// The page's width beyond the viewport, in CSS pixels (0: nothing to scroll sideways).
    fn horizontal_overflow(&self) -> i64 {
        let value = self.call(
            Method::POST,
            "/execute/sync",
            Some(json!({
                "script": "return document.documentElement.scrollWidth - window.innerWidth;",
                "args": [],
            })),
        );
        value.as_i64().unwrap_or(i64::MAX)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.session).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    workspace().join("target/screenshots")
}

/// Monitors with some history, so the pages show what they are for. `nightly-backup` fails
/// (threshold 1) and its last check-in carries a script as its log.
fn seed(collector: &Collector) {
    let post = |items: Vec<String>| {
        let items: Vec<(&str, &str)> = items.iter().map(|p| ("check_in", p.as_str())).collect();
        let (status, body) = collector.post_envelope(envelope(&items));
        assert_eq!(status, 200, "{body}");
    };
    let crontab = |expr: &str, tz: &str| {
        json!({"schedule": {"type": "crontab", "value": expr}, "timezone": tz,
               "failure_issue_threshold": 1})
    };
    let history = |slug: &str, config: Value, statuses: &[&str]| {
        // Later items ran shorter, so back-dating each by its duration keeps them in order.
        let items = statuses
            .iter()
            .enumerate()
            .map(|(i, status)| {
                let config = (i == 0).then(|| config.clone());
                let mut item: Value =
                    serde_json::from_str(&checkin(slug, status, None, config)).unwrap();
                item["duration"] = json!(0.3 * (statuses.len() - i) as f64 + 0.04 * (i % 5) as f64);
                item.to_string()
            })
            .collect();
        post(items);
    };
    let mut vacuum = vec!["ok"; 38];
    vacuum[12] = "error";
    vacuum[25] = "error";
    history(
        "db-vacuum",
        json!({"schedule": {"type": "interval", "value": 10, "unit": "minute"},
               "failure_issue_threshold": 2}),
        &vacuum,
    );
    history(
        "send-invoices",
        crontab("0 9 * * 1-5", "America/New_York"),
        &["ok"; 20],
    );
    let mut backup = vec!["ok"; 14];
    backup.push("error");
    history(
        "nightly-backup",
        crontab("0 3 * * *", "Europe/Berlin"),
        &backup,
    );
    let response = collector
        .request(
            Method::POST,
            &format!("/ping/{}/nightly-backup/fail", collector.key),
        )
        .body("<script>alert(1)</script>")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let created = collector
        .admin(Method::PUT, "/api/v1/monitors/1/cache-warmup")
        .json(&json!({"schedule": "*/15 * * * *"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
}

#[test]
fn a_person_logs_in_finds_the_failing_monitor_and_mutes_it() {
    let collector = Collector::start(None);
    seed(&collector);
    let browser = Browser::start();

    // Not logged in: the login form, which returns to the page asked for.
    browser.open(&collector.url("/"));
    assert!(
        browser.url().ends_with("/login?next=/"),
        "{} {}",
        browser.url(),
        browser.source()
    );
    browser.type_into("input[name=token]", "not-the-token");
    browser.click_through("button[type=submit]");
    assert!(browser.text().contains("That is not the admin token."));
    browser.type_into("input[name=token]", &collector.token);
    browser.click_through("button[type=submit]");
    assert_eq!(browser.url(), collector.url("/"));

    let overview = browser.text();
    assert!(overview.contains("Failing monitors"), "{overview}");
    assert!(overview.contains("nightly-backup"), "{overview}");
    assert!(
        overview.contains("every day at 03:00 (Europe/Berlin)"),
        "{overview}"
    );
    assert!(
        !browser.source().contains(&collector.token),
        "the token is never in a page"
    );
    // An error event becomes an issue, shown on the overview and the issues page.
    let event = json!({"event_id": "c0ffee00c0ffee00c0ffee00c0ffee00", "level": "error",
        "timestamp": chrono::Utc::now().timestamp(),
        "exception": {"values": [{"type": "KeyError", "value": "'invoice_id'"}]}});
    let (status, body) = collector.post_envelope(envelope(&[("event", &event.to_string())]));
    assert_eq!(status, 200, "{body}");
    browser.open(&collector.url("/"));
    let overview = browser.text();
    assert!(
        overview.contains("unresolved issues") && overview.contains("KeyError"),
        "{overview}"
    );
    browser.screenshot(&screenshot_dir().join("overview.png"));
    browser.open(&collector.url("/issues"));
    assert!(browser.text().contains("KeyError"));
    browser.click_through("button[value=resolve]");
    assert!(browser.url().ends_with("/issues"));
    browser.find("button[value=unresolve]");
    browser.open(&collector.url("/"));

    // The monitor's page: the script in its log is text, and nothing ran.
    browser.click_through("a[href='/monitors/1/nightly-backup']");
    assert_eq!(browser.url(), collector.url("/monitors/1/nightly-backup"));
    let source = browser.source();
    assert!(
        source.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the log is escaped"
    );
    assert!(!source.contains("<script>alert(1)</script>"));
    assert!(!browser.dialog_open(), "no script ran");
    browser.click("details summary");
    assert!(browser.text().contains("<script>alert(1)</script>"));
    browser.screenshot(&screenshot_dir().join("monitor.png"));

    // Mute through the form: the page says so, and so does the API.
    assert!(!browser.text().contains("muted"));
    browser.click_through("button[value=mute]");
    assert!(
        browser
            .url()
            .ends_with("/monitors/1/nightly-backup?done=mute")
    );
    let page = browser.text();
    assert!(page.contains("Muted: check-ins and incidents"), "{page}");
    browser.find("button[value=unmute]");
    assert_eq!(collector.monitor("nightly-backup")[0]["muted"], true);

    // On a phone: nothing scrolls sideways.
    browser.resize(390, 844);
    browser.open(&collector.url("/"));
    assert!(browser.horizontal_overflow() <= 0, "overview overflows");
    browser.screenshot(&screenshot_dir().join("overview-phone.png"));
    browser.open(&collector.url("/monitors/1/nightly-backup"));
    assert!(browser.horizontal_overflow() <= 0, "monitor page overflows");

    // Logging out ends the session.
    browser.resize(1280, 1100);
    browser.click_through("nav button[type=submit]");
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    browser.open(&collector.url("/monitors"));
    assert!(browser.url().ends_with("/login?next=/monitors"));
}
