//! Inputs from the fuzz targets in `fuzz/`, kept as ordinary tests: each must be refused with a
//! clean error (or accepted), never panic. A crash found by `scripts/fuzz.sh` lands here with its
//! bytes inline, next to the fix. The first runs found one bug (schedules evaluated at far-future
//! or far-past instants panicked inside chrono, see `far_future_instants_...`); the 10-minute
//! runs found a second (a crontab field of only commas took seconds to refuse, see the last
//! test); the other cases are the edges the targets were seeded with.

use watchpost_collector::config::{Config, Overrides};
use watchpost_collector::engine::{IntervalUnit, Schedule};
use watchpost_collector::ingest::ping::parse_action;
use watchpost_protocol::{ContentEncoding, DecodeError, Envelope, decode_body};

/// The `envelope` target's checks on one input.
fn envelope(bytes: &[u8]) {
    for encoding in [
        ContentEncoding::Gzip,
        ContentEncoding::Deflate,
        ContentEncoding::Identity,
    ] {
        match decode_body(bytes, encoding, 64 * 1024) {
            Ok(body) => assert!(body.len() <= 64 * 1024),
            Err(DecodeError::TooLarge { limit }) => assert_eq!(limit, 64 * 1024),
            Err(error @ DecodeError::Corrupt { .. }) => assert!(!error.to_string().is_empty()),
        }
    }
    if let Ok(parsed) = Envelope::parse(bytes) {
        Envelope::parse(&parsed.to_vec()).expect("a written envelope parses");
    }
}

#[test]
fn envelope_edges() {
    // Truncated gzip header; a zlib header with no stream; a header line with a huge length.
    envelope(&[0x1f, 0x8b, 0x08]);
    envelope(&[0x78, 0x9c]);
    envelope(b"{}\n{\"type\":\"event\",\"length\":18446744073709551615}\n{}");
    envelope(b"{}\n{\"type\":\"check_in\",\"length\":2}\n{}");
}

#[test]
fn schedule_edges() {
    for expr in [
        "",
        "* * * * * * *",
        "0 0 30 2 *",
        "@reboot",
        "60 * * * *",
        "*/0 * * * *",
    ] {
        let error = Schedule::crontab(expr).unwrap_err();
        assert!(!error.to_string().is_empty(), "{expr:?}");
    }
    assert!(Schedule::interval(0, IntervalUnit::Minute).is_err());
    assert!(Schedule::interval(u64::MAX, IntervalUnit::Year).is_err());
}

#[test]
fn ping_action_edges() {
    for raw in ["", "256", "99999999999999999999", "-1", "Start"] {
        let error = parse_action(Some(raw)).unwrap_err();
        assert!(
            error.status.is_client_error() && !error.message.is_empty(),
            "{raw:?}"
        );
    }
}

#[test]
fn config_edges() {
    for text in [
        "[server",
        "[[monitors]]\nslug = 1",
        "[retention]\ncheckins_per_monitor = -1",
    ] {
        let error = Config::parse(text, &Overrides::default(), &|_| None).unwrap_err();
        assert!(!error.to_string().is_empty(), "{text:?}");
    }
}

/// Found by the `schedule` and `envelope` targets: evaluating a schedule at a far-future instant
/// (here chrono's own maximum and minimum) converted it to the monitor's timezone past what chrono can
/// represent and panicked inside chrono, from croner's walk and from interval stepping alike.
/// Outside the years 1 to 4999 a schedule now simply has no next slot.
#[test]
fn far_future_instants_have_no_next_slot_instead_of_panicking() {
    use chrono::{DateTime, Utc};
    let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let schedules = [
        Schedule::crontab("0 3 * * *").unwrap(),
        Schedule::interval(1, IntervalUnit::Day).unwrap(),
        Schedule::interval(3, IntervalUnit::Year).unwrap(),
        Schedule::interval(90, IntervalUnit::Second).unwrap(),
    ];
    for schedule in &schedules {
        for at in [
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MIN_UTC,
            "5000-01-01T00:00:00Z".parse().unwrap(),
        ] {
            assert_eq!(schedule.next_after(tz, at), None, "{schedule} after {at}");
        }
        let ordinary: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        assert!(
            schedule.next_after(tz, ordinary).unwrap() > ordinary,
            "{schedule}"
        );
    }
}

/// Found by the `schedule` target (a timeout: one input ran past libFuzzer's 10 s) and the
/// `envelope` target (a 12 s slow unit, through a check-in's `monitor_config`): croner skips
/// empty elements of a comma-separated list, so a field of only commas parsed as a field that
/// matches nothing, and the check that a crontab ever matches then walked croner's whole search
/// range before refusing it, seconds of CPU for each request that sent one. Such a field was then
/// refused before croner saw it; since croner gave way to Sentry's grammar (`crontab.rs`), an
/// empty list item is refused while parsing, as cronsim refuses it.
#[test]
fn a_crontab_field_of_only_commas_is_refused_at_once() {
    use std::time::{Duration, Instant};
    use watchpost_collector::engine::ConfigPatch;
    use watchpost_protocol::CheckIn;

    let started = Instant::now();
    // The `schedule` input (its crontab) and variants in the other fields.
    for expr in [
        ", 0 * * *",
        "0 , * * *",
        "0 0 ,, * *",
        "0 0 * , *",
        "0 0 * * ,",
    ] {
        let error = Schedule::crontab(expr).unwrap_err().to_string();
        assert!(error.contains("a value is missing"), "{expr:?}: {error}");
    }
    // The `envelope` input as found.
    let bytes: &[u8] = b"{\"event*id\":\"9ec79c33ec)942ab8357178fcb2e04dc\"}\n\
        {\"type\":\"event\"}\n\
        {\"message\":\"boom\",\"level\":\"err\x00\x00\x01\ror\"}\n\
        {\"type\":\"check_in\"}\n\
        {\"monitor_slug\":\"job\",\"status\":\"in_progress\",\"monitor_config\":{\"schedule\":\
        {\"type\":\"crontab\",\"value\":\"0 , * * *\"},\"timezone\":\"Europe/Berlin\",\
        \"checkin_margin\":5,\"max_runtime\":\"90s\"}}\n";
    envelope(bytes);
    let parsed = Envelope::parse(bytes).expect("the input is an envelope");
    let item = parsed
        .items
        .iter()
        .find(|item| item.ty() == "check_in")
        .expect("a check-in item");
    let wire: CheckIn = item.json().expect("a check-in");
    let config = wire.monitor_config.expect("a monitor_config");
    let error = ConfigPatch::from_protocol(&config).unwrap_err().to_string();
    assert!(error.contains("a value is missing"), "{error}");
    // Before the fix each of these took seconds even in a release build.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused in {:?}",
        started.elapsed()
    );
}
