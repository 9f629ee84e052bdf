//! The dashboard's acknowledge and snooze buttons over plain HTTP: each needs the session's
//! CSRF token and goes through the processor like the API; the incident lists then say who
//! acknowledged, the monitor page that it is snoozed.

use crate::support;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use serde_json::json;
use support::{Collector, checkin, envelope};

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Posts a form (names and values here need no escaping beyond spaces). These helpers are
/// shared with the other dashboard action tests (`probe_ack.rs`).
pub(crate) fn post(
    collector: &Collector,
    path: &str,
    cookie: &str,
    pairs: &[(&str, &str)],
) -> StatusCode {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
        .collect();
    client()
        .post(collector.url(path))
        .header("Cookie", cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .unwrap()
        .status()
}

pub(crate) fn log_in(collector: &Collector) -> String {
    let response = client()
        .post(collector.url("/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={}&next=/incidents", collector.token))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

pub(crate) fn page(collector: &Collector, path: &str, cookie: &str) -> String {
    let response = client()
        .get(collector.url(path))
        .header("Cookie", cookie)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.text().unwrap()
}

pub(crate) fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF field")
        + 19;
    html[at..at + 64].to_owned()
}

#[test]
fn the_acknowledge_and_snooze_buttons_need_the_session_token_and_show_what_they_did() {
    let collector = Collector::start(None);
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "failure_issue_threshold": 1});
    let body = envelope(&[(
        "check_in",
        &checkin("db-backup", "error", None, Some(config)),
    )]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
    let id = collector.api_get("/api/v1/incidents?open=true")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let cookie = log_in(&collector);
    let incidents = page(&collector, "/incidents", &cookie);
    let action = format!("/incidents/{id}/ack");
    assert!(incidents.contains(&action), "an Acknowledge form");
    let token = csrf(&incidents);

    let forged = post(
        &collector,
        &action,
        &cookie,
        &[("csrf", &"0".repeat(64)), ("by", "mallory")],
    );
    assert_eq!(forged, StatusCode::FORBIDDEN);
    let nameless = post(
        &collector,
        &action,
        &cookie,
        &[("csrf", &token), ("by", "")],
    );
    assert_eq!(nameless, StatusCode::BAD_REQUEST);
    let open = collector.api_get("/api/v1/incidents?open=true");
    assert_eq!(open[0]["acknowledged"], serde_json::Value::Null);

    let done = client()
        .post(collector.url(&action))
        .header("Cookie", &cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={token}&by=erin"))
        .send()
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[LOCATION], "/incidents");
    let open = collector.api_get("/api/v1/incidents?open=true");
    assert_eq!(open[0]["acknowledged"]["by"], "erin");
    let incidents = page(&collector, "/incidents", &cookie);
    assert!(incidents.contains("erin"));
    assert!(!incidents.contains(&action), "no button once acknowledged");
    let again = post(
        &collector,
        &action,
        &cookie,
        &[("csrf", &token), ("by", "erin")],
    );
    assert_eq!(again, StatusCode::CONFLICT);

    // Snooze for an hour from the monitor's page, then end it.
    let monitor_page = "/monitors/1/db-backup";
    let form = |action: &'static str| {
        [
            ("csrf", token.as_str()),
            ("action", action),
            ("environment", "production"),
        ]
    };
    assert_eq!(
        post(&collector, monitor_page, &cookie, &form("snooze1h")),
        StatusCode::SEE_OTHER
    );
    let snoozed = collector.monitor("db-backup")[0]["snoozed_until"].clone();
    let until = snoozed.as_str().expect("snoozed");
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap();
    let left = until.signed_duration_since(chrono::Utc::now());
    assert!(
        left > chrono::TimeDelta::minutes(59) && left <= chrono::TimeDelta::hours(1),
        "{left}"
    );
    assert!(page(&collector, monitor_page, &cookie).contains("snoozed until"));
    assert_eq!(
        post(&collector, monitor_page, &cookie, &form("unsnooze")),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        collector.monitor("db-backup")[0]["snoozed_until"],
        serde_json::Value::Null
    );
}
