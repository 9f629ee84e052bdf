//! Every class of bad input, through one table (docs/reliability.md, "Bad input"): each case must get the right
//! 4xx with a JSON `{"error": ...}` a person can act on, leave no state behind, keep the
//! collector's memory bounded, and leave it serving the next good check-in.

use crate::support;

use std::io::Write;

use reqwest::blocking::RequestBuilder;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{
    Collector, checkin, envelope, interval, json as response_json, peak_rss_kb, sentry_auth,
};

/// The slug every bad case aims at; it must never come into existence.
const VICTIM: &str = "victim";
/// The monitor the collector must keep serving between cases.
const ALIVE: &str = "alive";
/// How much the collector's peak RSS may grow during one case.
const RSS_BOUND_KB: u64 = 64 * 1024;

/// One bad request and what the collector must answer.
struct Case {
    name: &'static str,
    request: Box<dyn Fn(&Collector) -> RequestBuilder>,
    status: StatusCode,
    /// A phrase of the `error` sentence.
    needle: &'static str,
}

fn case(
    name: &'static str,
    status: StatusCode,
    needle: &'static str,
    request: impl Fn(&Collector) -> RequestBuilder + 'static,
) -> Case {
    Case {
        name,
        request: Box::new(request),
        status,
        needle,
    }
}

/// An envelope to project 1 with the collector's key, optionally content-encoded.
fn post_envelope(
    body: Vec<u8>,
    encoding: Option<&'static str>,
) -> impl Fn(&Collector) -> RequestBuilder {
    move |c| {
        let request = c
            .request(Method::POST, "/api/1/envelope/")
            .header("X-Sentry-Auth", sentry_auth(&c.key))
            .body(body.clone());
        match encoding {
            Some(encoding) => request.header("Content-Encoding", encoding),
            None => request,
        }
    }
}

/// An envelope of one check-in item with this raw payload.
fn one_checkin(payload: impl AsRef<str>) -> impl Fn(&Collector) -> RequestBuilder {
    post_envelope(envelope(&[("check_in", payload.as_ref())]), None)
}

/// A check-in of the victim whose `monitor_config` has `extra` on top of a valid schedule.
fn victim_with_config(extra: &Value) -> String {
    let mut config = interval(1, "hour");
    for (k, v) in extra.as_object().expect("object") {
        config[k] = v.clone();
    }
    checkin(VICTIM, "ok", None, Some(config))
}

/// A victim check-in with a field of the check-in itself replaced.
fn victim_with(field: &str, value: Value) -> String {
    let mut checkin: Value =
        serde_json::from_str(&checkin(VICTIM, "ok", None, Some(interval(1, "hour"))))
            .expect("json");
    checkin[field] = value;
    checkin.to_string()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

/// `decoded` bytes of zeros, gzipped at best compression: about a thousandth of the size.
fn gzip_bomb(decoded: usize) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..decoded / zeros.len() {
        encoder.write_all(&zeros).expect("gzip");
    }
    encoder.finish().expect("gzip")
}

/// Everything a bad request could have left behind, minus the `alive` monitor that the
/// liveness check-ins change on purpose.
fn state(c: &Collector) -> Value {
    let mut monitors = c.api_get("/api/v1/monitors");
    monitors
        .as_array_mut()
        .expect("monitor list")
        .retain(|m| m["slug"] != ALIVE);
    json!({
        "monitors": monitors,
        "victim": c.monitor(VICTIM),
        "victim_checkins": c.checkins(VICTIM),
        "incidents": c.api_get("/api/v1/incidents"),
        "issues": c.api_get("/api/v1/issues"),
    })
}

/// Sends one bad case and checks everything §3.10 promises about it.
#[track_caller]
fn check(c: &Collector, case: &Case) {
    let before = state(c);
    let rss_before = peak_rss_kb(c.pid());
    let alive_before = c.checkins(ALIVE).len();

    let response = (case.request)(c).send().expect("request");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = response_json(response);
    let name = case.name;
    assert_eq!(status, case.status, "{name}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "{name}: content type {content_type}"
    );
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(case.needle),
        "{name}: error {message:?} should contain {:?}",
        case.needle
    );

    let grown = peak_rss_kb(c.pid()).saturating_sub(rss_before);
    assert!(grown <= RSS_BOUND_KB, "{name}: peak RSS grew by {grown} kB");
    assert_eq!(state(c), before, "{name}: left state behind");

    let ping = c
        .request(Method::GET, &format!("/ping/{}/{ALIVE}", c.key))
        .send()
        .expect("ping");
    assert_eq!(
        ping.status(),
        StatusCode::OK,
        "{name}: the next good check-in failed"
    );
    assert_eq!(
        c.checkins(ALIVE).len(),
        alive_before + 1,
        "{name}: good check-in not kept"
    );
}

#[test]
fn every_class_of_bad_input_is_refused_whole() {
    let _heavy = support::heavy();
    let c = Collector::start(None);
    let (status, body) = c.post_envelope(envelope(&[(
        "check_in",
        &checkin(ALIVE, "ok", None, Some(interval(1, "hour"))),
    )]));
    assert_eq!(status, StatusCode::OK, "{body}");

    let good = checkin(VICTIM, "ok", None, Some(interval(1, "hour")));
    let good_envelope = envelope(&[("check_in", &good)]);
    let gzipped = gzip(&good_envelope);
    let wrong_key = "0123456789abcdef0123456789abcdef";
    // 1 GiB of zeros in about a megabyte: under the body limit, far over the decoded one.
    let bomb = gzip_bomb(1 << 30);
    let thousands: Vec<(&str, &str)> = vec![("check_in", good.as_str()); 10_000];
    // Gzipped: ten thousand items fit the body limit, as they would from a real client.
    let thousands = gzip(&envelope(&thousands));
    let mut not_utf8 = envelope(&[("check_in", &good)]);
    let at = not_utf8
        .windows(VICTIM.len())
        .position(|w| w == VICTIM.as_bytes())
        .expect("slug");
    not_utf8[at] = 0xff;

    use StatusCode as S;
    let cases = vec![
        // Malformed envelopes.
        case(
            "bad header JSON",
            S::BAD_REQUEST,
            "envelope header is not a JSON object",
            post_envelope(
                format!("{{not json\n{{\"type\":\"check_in\"}}\n{good}\n").into_bytes(),
                None,
            ),
        ),
        case(
            "item header without type",
            S::BAD_REQUEST,
            "string `type`",
            post_envelope(
                format!("{{}}\n{{\"length\":{}}}\n{good}\n", good.len()).into_bytes(),
                None,
            ),
        ),
        case(
            "length past the end",
            S::BAD_REQUEST,
            "runs past the end",
            post_envelope(
                format!("{{}}\n{{\"type\":\"check_in\",\"length\":9999}}\n{good}\n").into_bytes(),
                None,
            ),
        ),
        case(
            "truncated gzip",
            S::BAD_REQUEST,
            "not valid gzip",
            post_envelope(gzipped[..gzipped.len() / 2].to_vec(), Some("gzip")),
        ),
        case(
            "bad deflate",
            S::BAD_REQUEST,
            "not valid deflate",
            post_envelope(b"this is not zlib at all".to_vec(), Some("deflate")),
        ),
        case(
            "unsupported encoding",
            S::UNSUPPORTED_MEDIA_TYPE,
            "send identity, gzip or deflate",
            post_envelope(good_envelope, Some("br")),
        ),
        // Size limits.
        case(
            "decompression bomb",
            S::PAYLOAD_TOO_LARGE,
            "decompressed body exceeds the limit",
            post_envelope(bomb, Some("gzip")),
        ),
        case(
            "body over the limit",
            S::PAYLOAD_TOO_LARGE,
            "request body exceeds the limit",
            // One byte over: the collector answers before reading on, and a client still
            // sending megabytes could see the connection close instead of the 413.
            post_envelope(vec![b' '; (1 << 20) + 1], None),
        ),
        case(
            "10,000 items",
            S::PAYLOAD_TOO_LARGE,
            "the limit is 1000 per envelope",
            post_envelope(thousands, Some("gzip")),
        ),
        case(
            "invalid UTF-8 in JSON",
            S::BAD_REQUEST,
            "item 0 (check_in)",
            post_envelope(not_utf8, None),
        ),
        // Values.
        case(
            "invalid UUID",
            S::BAD_REQUEST,
            "invalid UUID `xyz`",
            one_checkin(checkin(
                VICTIM,
                "ok",
                Some("xyz"),
                Some(interval(1, "hour")),
            )),
        ),
        case(
            "bad slug",
            S::BAD_REQUEST,
            "monitor slug",
            one_checkin(checkin("!!!", "ok", None, Some(interval(1, "hour")))),
        ),
        case(
            "bad crontab",
            S::BAD_REQUEST,
            "not a valid crontab expression",
            one_checkin(checkin(
                VICTIM,
                "ok",
                None,
                Some(json!({"schedule": {"type": "crontab", "value": "61 * * * *"}})),
            )),
        ),
        case(
            "crontab extension Sentry refuses",
            S::BAD_REQUEST,
            "`W` (nearest weekday) is not supported",
            one_checkin(checkin(
                VICTIM,
                "ok",
                None,
                Some(json!({"schedule": {"type": "crontab", "value": "0 0 15W * *"}})),
            )),
        ),
        case(
            "max_runtime 0",
            S::BAD_REQUEST,
            "max_runtime must be at least 1 minute",
            one_checkin(victim_with_config(&json!({"max_runtime": 0}))),
        ),
        case(
            "bad timezone",
            S::BAD_REQUEST,
            "not a known IANA timezone",
            one_checkin(victim_with_config(&json!({"timezone": "Mars/Olympus"}))),
        ),
        case(
            "threshold too high",
            S::BAD_REQUEST,
            "between 1 and 720",
            one_checkin(victim_with_config(&json!({"failure_issue_threshold": 721}))),
        ),
        case(
            "threshold zero",
            S::BAD_REQUEST,
            "recovery_threshold",
            one_checkin(victim_with_config(&json!({"recovery_threshold": 0}))),
        ),
        case(
            "negative duration",
            S::BAD_REQUEST,
            "duration -5 is invalid",
            one_checkin(victim_with("duration", json!(-5))),
        ),
        case(
            "absurd duration",
            S::BAD_REQUEST,
            "give seconds between 0 and about 24.8 days",
            one_checkin(victim_with("duration", json!(1e15))),
        ),
        case(
            "negative max_runtime",
            S::BAD_REQUEST,
            "max_runtime must be a positive number",
            one_checkin(victim_with_config(&json!({"max_runtime": -1}))),
        ),
        case(
            "absurd checkin_margin",
            S::BAD_REQUEST,
            "checkin_margin is longer than 28 days",
            one_checkin(victim_with_config(&json!({"checkin_margin": 99_999_999}))),
        ),
        // Credentials.
        case(
            "unknown project",
            S::FORBIDDEN,
            "does not belong to project 999",
            |c| {
                c.request(Method::POST, "/api/999/envelope/")
                    .header("X-Sentry-Auth", sentry_auth(&c.key))
                    .body(envelope(&[(
                        "check_in",
                        &checkin(VICTIM, "ok", None, Some(interval(1, "hour"))),
                    )]))
            },
        ),
        case("wrong key", S::FORBIDDEN, "unknown project key", move |c| {
            c.request(Method::POST, "/api/1/envelope/")
                .header("X-Sentry-Auth", sentry_auth(wrong_key))
                .body(envelope(&[(
                    "check_in",
                    &checkin(VICTIM, "ok", None, Some(interval(1, "hour"))),
                )]))
        }),
        case("no key", S::UNAUTHORIZED, "missing credentials", |c| {
            c.request(Method::POST, "/api/1/envelope/")
                .body(envelope(&[(
                    "check_in",
                    &checkin(VICTIM, "ok", None, Some(interval(1, "hour"))),
                )]))
        }),
        case(
            "two auth sources",
            S::BAD_REQUEST,
            "send the key in exactly one",
            |c| {
                c.request(
                    Method::POST,
                    &format!("/api/1/envelope/?sentry_key={}", c.key),
                )
                .header("X-Sentry-Auth", sentry_auth(&c.key))
                .body(envelope(&[(
                    "check_in",
                    &checkin(VICTIM, "ok", None, Some(interval(1, "hour"))),
                )]))
            },
        ),
        // The cron endpoint and pings.
        case(
            "cron: invalid UUID",
            S::BAD_REQUEST,
            "`check_in_id` is not a UUID",
            |c| {
                c.request(
                    Method::GET,
                    &format!("/api/1/cron/{VICTIM}/{}/?status=ok&check_in_id=zz", c.key),
                )
            },
        ),
        case(
            "cron: unknown status",
            S::BAD_REQUEST,
            "must be in_progress, ok or error",
            |c| {
                c.request(
                    Method::GET,
                    &format!("/api/1/cron/{VICTIM}/{}/?status=done", c.key),
                )
            },
        ),
        case(
            "cron: invalid UTF-8",
            S::BAD_REQUEST,
            "invalid check-in JSON",
            |c| {
                c.request(Method::POST, &format!("/api/1/cron/{VICTIM}/{}/", c.key))
                    .header("Content-Type", "application/json")
                    .body(b"{\"status\":\"ok\",\"environment\":\"x\xff\"}".to_vec())
            },
        ),
        case(
            "cron: wrong key",
            S::FORBIDDEN,
            "unknown project key",
            move |c| {
                c.request(
                    Method::GET,
                    &format!("/api/1/cron/{VICTIM}/{wrong_key}/?status=ok"),
                )
            },
        ),
        case("ping: bad rid", S::BAD_REQUEST, "is not a UUID", |c| {
            c.request(Method::GET, &format!("/ping/{}/{VICTIM}?rid=nope", c.key))
        }),
        case("ping: exit code 256", S::BAD_REQUEST, "use 0 to 255", |c| {
            c.request(Method::GET, &format!("/ping/{}/{VICTIM}/256", c.key))
        }),
        case("ping: bad slug", S::BAD_REQUEST, "slug", |c| {
            c.request(Method::GET, &format!("/ping/{}/%21%21%21", c.key))
        }),
        case(
            "ping: wrong key",
            S::FORBIDDEN,
            "unknown project key",
            move |c| c.request(Method::GET, &format!("/ping/{wrong_key}/{VICTIM}")),
        ),
        // Management API.
        case(
            "api: bad crontab",
            S::BAD_REQUEST,
            "not a valid crontab expression",
            |c| {
                c.admin(Method::PUT, &format!("/api/v1/monitors/1/{VICTIM}"))
                    .json(&json!({"schedule": {"type": "crontab", "value": "61 * * * *"}}))
            },
        ),
        case(
            "api: threshold out of range",
            S::BAD_REQUEST,
            "between 1 and 720",
            |c| {
                c
            .admin(Method::PUT, &format!("/api/v1/monitors/1/{VICTIM}"))
            .json(&json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"}, "failure_issue_threshold": 0}))
            },
        ),
        case(
            "api: invalid JSON",
            S::BAD_REQUEST,
            "body is not valid JSON",
            |c| {
                c.admin(Method::PUT, &format!("/api/v1/monitors/1/{VICTIM}"))
                    .header("Content-Type", "application/json")
                    .body(b"{\"schedule\": \xff}".to_vec())
            },
        ),
        case(
            "api: wrong token",
            S::UNAUTHORIZED,
            "wrong admin token",
            |c| {
                c.request(Method::PUT, &format!("/api/v1/monitors/1/{VICTIM}"))
                    .bearer_auth("not-the-admin-token")
                    .json(&json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"}}))
            },
        ),
    ];
    for case in &cases {
        check(&c, case);
    }
    assert!(c.monitor(VICTIM).is_empty());
}
