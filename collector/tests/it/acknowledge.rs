//! Acknowledge and repeat through the real binary: a failing monitor's alert reaches a webhook
//! fake with a signed acknowledge link and is repeated; the link's `GET` only shows a
//! confirmation page; a wrong or cut link does nothing; its `POST` acknowledges, which stops
//! the repeats, sends `monitor.acknowledged`, and makes the recovery say who it was; a reused
//! link does nothing. The API and the CLI acknowledge too, with admin auth. (The story with
//! explicit times is `engine/src/oncall.rs`; expiry is `collector/src/ack.rs`'s tests.)

use crate::alert_support;
use crate::support;

use std::process::Command;
use std::time::Duration;

use alert_support::{Fake, Seen, runtime, status};
use reqwest::blocking::Client;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Collector, assert_error, checkin, envelope, poll};

/// A webhook fake and a collector whose `oncall` rule repeats failures every second.
fn start(repeat: &str) -> (tokio::runtime::Runtime, Fake, Collector) {
    let runtime = runtime();
    let hook = runtime.block_on(Fake::start(|_, _| status(200, "ok")));
    let collector = Collector::start(Some(&format!(
        r#"
[alerts]
dedup_window = "0s"

[[channels]]
name = "hook"
type = "webhook"
url = "{}/hook"

[[rules]]
name = "oncall"
on = ["monitor.failed", "monitor.recovered", "monitor.acknowledged"]
channels = ["hook"]
repeat = "{repeat}"
"#,
        hook.url
    )));
    (runtime, hook, collector)
}

/// A check-in of `slug` (hourly; one failure opens an incident, one ok resolves it).
fn report(collector: &Collector, slug: &str, status: &str) {
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "failure_issue_threshold": 1});
    let body = envelope(&[("check_in", &checkin(slug, status, None, Some(config)))]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
}

/// The alerts of `kind` the hook received, oldest first.
fn received(hook: &Fake, kind: &str) -> Vec<Value> {
    hook.seen()
        .into_iter()
        .map(|seen: Seen| seen.json)
        .filter(|alert| alert["kind"] == kind)
        .collect()
}

/// The open incident of the collector (there is one).
fn open_incident(collector: &Collector) -> Value {
    let list = collector.api_get("/api/v1/incidents?open=true");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    list[0].clone()
}

/// The confirmation form's `POST`, as a browser sends it, naming `by`.
fn submit(browser: &Client, url: &str, by: &str) -> reqwest::blocking::Response {
    browser
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("by={}", by.replace(' ', "+")))
        .send()
        .unwrap()
}

fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[test]
fn the_link_shows_a_page_on_get_and_acknowledges_once_on_post_which_stops_the_repeats() {
    let (_runtime, hook, collector) = start("1s");
    report(&collector, "nightly-backup", "error");

    let first = poll(Duration::from_secs(10), "the monitor.failed alert", || {
        received(&hook, "monitor.failed").into_iter().next()
    });
    let link = first["acknowledge_url"]
        .as_str()
        .expect("a failure alert carries an acknowledge link")
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/ack/", collector.base)),
        "{link}"
    );
    let incident_id = first["incident"]["id"].as_str().unwrap().replace('-', "");
    assert_eq!(open_incident(&collector)["id"], incident_id.as_str());
    assert_eq!(first["incident"]["repeat"], 0);

    // Repeated while nobody acknowledges, each with a fresh link and how long it has failed.
    let repeat = poll(Duration::from_secs(10), "a repeat", || {
        received(&hook, "monitor.failed")
            .into_iter()
            .find(|alert| alert["incident"]["repeat"] == 1)
    });
    assert!(
        repeat["title"]
            .as_str()
            .unwrap()
            .ends_with("is still failing"),
        "{repeat:#}"
    );
    assert!(
        repeat["message"]
            .as_str()
            .unwrap()
            .starts_with("Still failing after"),
        "{repeat:#}"
    );
    assert!(repeat["acknowledge_url"].is_string());

    // A previewer's GET, twice: a confirmation page, and nothing acknowledged.
    let browser = browser();
    for _ in 0..2 {
        let page = browser.get(&link).send().unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().unwrap();
        assert!(html.contains("Acknowledge this incident?"), "{html}");
        assert!(html.contains("method=\"post\""), "{html}");
    }
    assert_eq!(open_incident(&collector)["acknowledged"], Value::Null);

    // A link with a wrong signature or cut short does nothing, and says so.
    let (head, signature) = link.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    let forged = format!("{head}.{flipped}{}", &signature[1..]);
    let refused = submit(&browser, &forged, "mallory");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().unwrap().contains("signature does not match"));
    let cut = submit(&browser, &link[..link.len() - 5], "mallory");
    assert_eq!(cut.status(), StatusCode::BAD_REQUEST);
    assert!(cut.text().unwrap().contains("incomplete or damaged"));
    let nameless = submit(&browser, &link, " ");
    assert_eq!(nameless.status(), StatusCode::BAD_REQUEST);
    assert!(nameless.text().unwrap().contains("give a name"));
    assert_eq!(open_incident(&collector)["acknowledged"], Value::Null);

    // A snooze the page does not offer is refused before anything is written.
    let odd = browser
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("by=alice&snooze=1y")
        .send()
        .unwrap();
    assert_eq!(odd.status(), StatusCode::BAD_REQUEST);
    assert_eq!(open_incident(&collector)["acknowledged"], Value::Null);

    // The form's POST acknowledges (and, as asked, snoozes the monitor for an hour).
    let done = browser
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("by=alice&snooze=1h")
        .send()
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let page = done.text().unwrap();
    assert!(page.contains("Acknowledged by alice"), "{page}");
    assert!(page.contains("snoozed for 1h"), "{page}");
    let monitor = collector.monitor("nightly-backup");
    assert!(monitor[0]["snoozed_until"].is_string(), "{monitor:?}");
    let incident = open_incident(&collector);
    assert_eq!(incident["acknowledged"]["by"], "alice");
    assert_eq!(incident["next_repeat"], Value::Null);
    let acknowledged = poll(Duration::from_secs(10), "monitor.acknowledged", || {
        received(&hook, "monitor.acknowledged").into_iter().next()
    });
    assert_eq!(
        acknowledged["title"],
        "Monitor nightly-backup (production) acknowledged by alice"
    );
    assert_eq!(acknowledged["incident"]["acknowledged"]["by"], "alice");

    // No repeat after it (one may have been on its way while the POST was written).
    let failures = received(&hook, "monitor.failed").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(received(&hook, "monitor.failed").len() <= failures + 1);
    let settled = received(&hook, "monitor.failed").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(received(&hook, "monitor.failed").len(), settled);

    // Reused: does nothing, says who acknowledged.
    let reused = submit(&browser, &link, "bob");
    assert_eq!(reused.status(), StatusCode::CONFLICT);
    assert!(
        reused
            .text()
            .unwrap()
            .contains("already acknowledged by alice")
    );
    assert_eq!(open_incident(&collector)["acknowledged"]["by"], "alice");

    // The recovery says who acknowledged and when.
    report(&collector, "nightly-backup", "ok");
    let recovered = poll(Duration::from_secs(10), "monitor.recovered", || {
        received(&hook, "monitor.recovered").into_iter().next()
    });
    assert!(
        recovered["message"]
            .as_str()
            .unwrap()
            .contains("Acknowledged by alice "),
        "{recovered:#}"
    );
    assert_eq!(recovered["incident"]["acknowledged"]["by"], "alice");
    assert!(recovered.get("acknowledge_url").is_none());
    // Resolved: the link has nothing left to do.
    let after = browser.get(&link).send().unwrap();
    assert_eq!(after.status(), StatusCode::CONFLICT);
    assert!(after.text().unwrap().contains("not open any more"));
}

#[test]
fn the_api_and_the_cli_acknowledge_with_admin_auth_and_say_why_when_they_cannot() {
    let (_runtime, hook, collector) = start("1h");
    report(&collector, "db-backup", "error");
    report(&collector, "log-rotate", "error");
    let open = collector.api_get("/api/v1/incidents?open=true");
    let id_of = |slug: &str| {
        open.as_array()
            .unwrap()
            .iter()
            .find(|i| i["slug"] == slug)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (db, logs) = (id_of("db-backup"), id_of("log-rotate"));
    assert!(
        open[0]["next_repeat"].is_string(),
        "an hourly repeat is due: {open:#}"
    );

    let path = format!("/api/v1/incidents/{db}/ack");
    let anonymous = collector.request(Method::POST, &path).send().unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_error(
        collector
            .admin(Method::POST, "/api/v1/incidents/not-an-id/ack")
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "is not an incident id",
    );
    assert_error(
        collector
            .admin(Method::POST, &path)
            .body("{\"who\": \"carol\"}")
            .send()
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid body",
    );
    let (code, incident) = support::json(
        collector
            .admin(Method::POST, &path)
            .json(&json!({"by": "carol"}))
            .send()
            .unwrap(),
    );
    assert_eq!(code, StatusCode::OK, "{incident}");
    assert_eq!(incident["acknowledged"]["by"], "carol");
    assert_eq!(incident["next_repeat"], Value::Null);
    assert_error(
        collector.admin(Method::POST, &path).send().unwrap(),
        StatusCode::CONFLICT,
        "already acknowledged by carol",
    );

    // The CLI, with the name it is given.
    let output = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["incidents", "ack", &logs, "--by", "dave"])
        .env("WATCHPOST_URL", &collector.base)
        .env("WATCHPOST_ADMIN_TOKEN", &collector.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("incident {logs} acknowledged by dave")
    );
    let again = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["incidents", "ack", &logs, "--by", "dave"])
        .env("WATCHPOST_URL", &collector.base)
        .env("WATCHPOST_ADMIN_TOKEN", &collector.token)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already acknowledged by dave"));

    let acknowledged = poll(Duration::from_secs(10), "two monitor.acknowledged", || {
        let all = received(&hook, "monitor.acknowledged");
        (all.len() == 2).then_some(all)
    });
    let mut who: Vec<&str> = acknowledged
        .iter()
        .map(|a| a["incident"]["acknowledged"]["by"].as_str().unwrap())
        .collect();
    who.sort_unstable();
    assert_eq!(who, ["carol", "dave"]);
}
