//! Table-driven tests of the engine, one small `check…` helper per feature. Times are explicit;
//! nothing sleeps. Scenario tests drive the engine the way the IO side does (deadline index,
//! stored check-ins by id) and compare a readable trace, one line per step.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;

// ---------------------------------------------------------------------------------------------
// Times

/// The day scenario times without a date fall on (a Monday).
const BASE_DAY: &str = "2026-01-05";

/// `"HH:MM[:SS]"` on [`BASE_DAY`], or a full `"YYYY-MM-DD HH:MM[:SS]"`, in UTC.
fn at(text: &str) -> DateTime<Utc> {
    let full = if text.len() <= 8 {
        format!("{BASE_DAY} {text}")
    } else {
        text.to_owned()
    };
    let full = if full.len() == 16 {
        format!("{full}:00")
    } else {
        full
    };
    NaiveDateTime::parse_from_str(&full, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("bad test time {text:?}: {e}"))
        .and_utc()
}

/// Inverse of [`at`], as short as it can be.
fn show(t: DateTime<Utc>) -> String {
    let base = NaiveDate::parse_from_str(BASE_DAY, "%Y-%m-%d").unwrap();
    let time = if t.time().format("%S").to_string() == "00" && t.timestamp_subsec_nanos() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S%.3f")
            .to_string()
            .trim_end_matches(".000")
            .to_owned()
    };
    if t.date_naive() == base {
        time
    } else {
        format!("{} {time}", t.format("%Y-%m-%d"))
    }
}

fn show_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), show)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn key() -> MonitorKey {
    MonitorKey {
        project: 1,
        slug: "job".to_owned(),
        environment: "production".to_owned(),
    }
}

/// A config patch from JSON, which must be valid.
fn patch(json: &Value) -> ConfigPatch {
    ConfigPatch::from_json(json).unwrap_or_else(|e| panic!("bad test config {json}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Slugs, environments, config validation

fn check_slug(raw: &str, expected: Result<&str, &str>) {
    let got = normalize_slug(raw).map_err(|e| e.to_string());
    match (got, expected) {
        (Ok(slug), Ok(want)) => assert_eq!(slug, want, "slug {raw:?}"),
        (Err(err), Err(want)) => assert!(err.contains(want), "slug {raw:?}: {err}"),
        (got, want) => panic!("slug {raw:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn slug_normalization() {
    let long = "a".repeat(60);
    let cases: &[(&str, Result<&str, &str>)] = &[
        ("nightly-backup", Ok("nightly-backup")),
        ("My Job!", Ok("my-job")),
        ("  Spaces   and\ttabs ", Ok("spaces-and-tabs")),
        ("db.backup", Ok("dbbackup")),
        ("snake_case_job", Ok("snake_case_job")),
        ("--dashes--around--", Ok("dashes-around")),
        ("_under_", Ok("under")),
        ("a - b", Ok("a-b")),
        ("Café Crème", Ok("cafe-creme")),
        ("Łódź ĳssel", Ok("odz-ijssel")),
        ("日本 job", Ok("job")),
        ("job 42", Ok("job-42")),
        (&long, Ok(&long[..50])),
        ("", Err("has no letters or digits")),
        ("!!!", Err("has no letters or digits")),
        ("日本", Err("has no letters or digits")),
        // Sentry's check-in upsert keeps an all-digit slug (only its API refuses one).
        ("12345", Ok("12345")),
        (" 12 34 ", Ok("12-34")),
        // Django's own slugify cases (ASCII mode), as Sentry's consumer applies it.
        ("Hello, World!", Ok("hello-world")),
        ("spam & eggs", Ok("spam-eggs")),
        (
            " multiple---dash and  space ",
            Ok("multiple-dash-and-space"),
        ),
        ("\t whitespace-in-value \n", Ok("whitespace-in-value")),
        (
            "__strip__underscore-value___",
            Ok("strip__underscore-value"),
        ),
        ("_ -strip-mixed-value _-", Ok("strip-mixed-value")),
        ("spam & ıçüş", Ok("spam-cus")),
        ("İstanbul", Ok("istanbul")),
        (
            "Un \u{e9}l\u{e9}phant \u{e0} l'or\u{e9}e",
            Ok("un-elephant-a-loree"),
        ),
        // A no-break or ideographic space decomposes to a space; Python's `\s` has `\x1c`.
        ("tout\u{a0}est bien", Ok("tout-est-bien")),
        ("a\u{3000}b", Ok("a-b")),
        ("a\u{1c}b", Ok("a-b")),
    ];
    for &(raw, expected) in cases {
        check_slug(raw, expected);
    }
    // Slugified, cut at 50, then trailing dashes trimmed, as `slugify(s)[:50].strip("-")`.
    check_slug(&format!("{}-tail", "a".repeat(49)), Ok(&"a".repeat(49)));
}

/// Relay cuts a check-in's slug to its first 50 characters before Sentry slugifies it, so
/// characters slugify drops still count towards the 50 (Relay's own cases: `"test_"` 50 times
/// keeps 50 characters, a row of 60 crabs keeps 50 crabs, which slugify then empties).
#[test]
fn slug_cut_to_50_characters_before_slugify() {
    let cases: &[(String, Result<&str, &str>)] = &[
        (
            "db.backup.".repeat(10),
            // Not the first 50 of the 80-letter slugified whole.
            Ok("dbbackupdbbackupdbbackupdbbackupdbbackup"),
        ),
        (
            "test_".repeat(50),
            // The cut ends on `_`, which slugify then trims.
            Ok("test_test_test_test_test_test_test_test_test_test"),
        ),
        (
            format!("{}-----yyyy", "x".repeat(45)),
            Ok("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ),
        (
            "0".repeat(60),
            Ok("00000000000000000000000000000000000000000000000000"),
        ),
        ("🦀".repeat(60), Err("has no letters or digits")),
        (format!("{}job", "日".repeat(48)), Ok("jo")),
    ];
    for (raw, expected) in cases {
        check_slug(raw, *expected);
    }
}

#[test]
fn environment_validation() {
    let cases: &[(Option<&str>, Result<&str, &str>)] = &[
        (None, Ok("production")),
        (Some(""), Ok("production")),
        (Some("staging"), Ok("staging")),
        (Some("eu-west_1.Prod"), Ok("eu-west_1.Prod")),
        // Sentry forbids neither; pages and alerts escape them.
        (Some("a<b>"), Ok("a<b>")),
        (Some(&"é".repeat(64)), Ok(&"é".repeat(64))),
        (Some(&"e".repeat(65)), Err("longer than 64")),
        (Some("a/b"), Err("contains `/`")),
        (Some("Prod EU"), Err("contains a space")),
        (Some("a\tb"), Err("contains a space")),
        (Some("a\u{a0}b"), Err("contains a space")),
        (Some("a\nb"), Err("line break")),
        (Some("a\u{7f}b"), Err("control character")),
        (Some("None"), Err("reserved")),
        (Some("none"), Err("reserved")),
        (Some(".."), Err("reserved")),
        (Some("."), Err("reserved")),
    ];
    for &(raw, expected) in cases {
        let got = normalize_environment(raw).map_err(|e| e.to_string());
        match (got, expected) {
            (Ok(env), Ok(want)) => assert_eq!(env, want),
            (Err(err), Err(want)) => assert!(err.contains(want), "{raw:?}: {err}"),
            (got, want) => panic!("{raw:?}: got {got:?}, want {want:?}"),
        }
    }
}

/// `expected`: `Ok(config)` as the new monitor would get it, or `Err(substring of the message)`.
fn check_config(json: &Value, expected: Result<MonitorConfig, &str>) {
    let got = ConfigPatch::from_json(json)
        .and_then(|patch| patch.to_config())
        .map_err(|e| e.to_string());
    match (got, expected) {
        (Ok(config), Ok(want)) => assert_eq!(config, want, "{json}"),
        (Err(err), Err(want)) => assert!(err.contains(want), "{json}: {err}"),
        (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn config_validation() {
    let daily = |expr: &str| MonitorConfig::new(Schedule::Crontab(expr.to_owned()));
    let every = |value, unit| MonitorConfig::new(Schedule::Interval { value, unit });
    let with = |mut c: MonitorConfig, f: &dyn Fn(&mut MonitorConfig)| {
        f(&mut c);
        c
    };
    let cases: Vec<(Value, Result<MonitorConfig, &str>)> = vec![
        // Schedules in every accepted form.
        (json!({"schedule": "0  3 * * *"}), Ok(daily("0 3 * * *"))),
        (
            json!({"schedule": {"type": "crontab", "value": "*/5 * * * 1-5"}}),
            Ok(daily("*/5 * * * 1-5")),
        ),
        (json!({"schedule": "@daily"}), Ok(daily("0 0 * * *"))),
        (json!({"schedule": "@hourly"}), Ok(daily("0 * * * *"))),
        (json!({"schedule": "@annually"}), Ok(daily("0 0 1 1 *"))),
        (json!({"schedule": "@weekly"}), Ok(daily("0 0 * * 0"))),
        (json!({"schedule": "0 0 29 2 *"}), Ok(daily("0 0 29 2 *"))),
        (
            json!({"schedule": [10, "minute"], "schedule_type": 2}),
            Ok(every(10, IntervalUnit::Minute)),
        ),
        (
            json!({"schedule": {"type": "interval", "value": 2, "unit": "Hours"}}),
            Ok(every(2, IntervalUnit::Hour)),
        ),
        (
            json!({"schedule": {"type": "interval", "value": 30, "unit": "second"}}),
            Ok(every(30, IntervalUnit::Second)),
        ),
        (
            json!({"interval": "10m"}),
            Ok(every(10, IntervalUnit::Minute)),
        ),
        (
            json!({"interval": "90s"}),
            Ok(every(90, IntervalUnit::Second)),
        ),
        (json!({"interval": "1d"}), Ok(every(1, IntervalUnit::Day))),
        (
            json!({"interval": "2h", "schedule": null}),
            Ok(every(2, IntervalUnit::Hour)),
        ),
        // Every other field.
        (
            json!({"schedule": "0 3 * * *", "timezone": "Europe/Berlin", "checkin_margin": 5,
                   "max_runtime": "1h 30m", "failure_issue_threshold": 3, "recovery_threshold": 720,
                   "owner": "team:1", "alert_rule_id": null}),
            Ok(with(daily("0 3 * * *"), &|c| {
                c.timezone = "Europe/Berlin".into();
                c.checkin_margin = Duration::from_secs(300);
                c.max_runtime = Duration::from_secs(5400);
                c.failure_issue_threshold = 3;
                c.recovery_threshold = 720;
            })),
        ),
        (
            json!({"schedule": "@daily", "checkin_margin": 1.5}),
            Ok(with(daily("0 0 * * *"), &|c| {
                c.checkin_margin = Duration::from_secs(90)
            })),
        ),
        (
            json!({"schedule": "@daily", "checkin_margin": "90s"}),
            Ok(with(daily("0 0 * * *"), &|c| {
                c.checkin_margin = Duration::from_secs(90)
            })),
        ),
        (
            json!({"schedule": "@daily", "max_runtime": "5"}),
            Ok(with(daily("0 0 * * *"), &|c| {
                c.max_runtime = Duration::from_secs(300)
            })),
        ),
        // Sentry: a margin of 0 is coerced to the default (1 minute), null means the default.
        (
            json!({"schedule": "@daily", "checkin_margin": 0, "max_runtime": null, "timezone": ""}),
            Ok(daily("0 0 * * *")),
        ),
        // Sentry's validator refuses a runtime of 0 (minimum 1), as a number or a string.
        (
            json!({"schedule": "@daily", "max_runtime": 0}),
            Err("max_runtime must be at least 1 minute"),
        ),
        (
            json!({"schedule": "@daily", "max_runtime": "0"}),
            Err("max_runtime must be at least 1 minute"),
        ),
        (
            json!({"schedule": "@daily", "max_runtime": 40320}),
            Ok(with(daily("0 0 * * *"), &|c| {
                c.max_runtime = MAX_CONFIG_DURATION
            })),
        ),
        // Rejections name the field.
        (json!({}), Err("schedule is required")),
        (json!({"schedule": "not a cron"}), Err("has 3 fields")),
        (
            json!({"schedule": "61 * * * *"}),
            Err("is not a valid crontab expression"),
        ),
        (
            json!({"schedule": "0 0 3 * * *"}),
            Err("has 6 fields; only 5-field"),
        ),
        (json!({"schedule": "0 0 3 * * * 2026"}), Err("has 7 fields")),
        (
            json!({"schedule": "@reboot"}),
            Err("`@reboot` is not supported"),
        ),
        (
            json!({"schedule": "0 0 30 2 *"}),
            Err("no selected month has that day of the month"),
        ),
        (json!({"schedule": "0 0 */20 * 5L"}), Err("never matches")),
        // What Sentry refuses: `?`, `W`, aliases in other cases.
        (
            json!({"schedule": "0 0 ? * MON"}),
            Err("`?` is not supported, use `*`"),
        ),
        (
            json!({"schedule": "0 0 15W * *"}),
            Err("`W` (nearest weekday) is not supported"),
        ),
        (
            json!({"schedule": "@Hourly"}),
            Err("aliases are lowercase: write `@hourly`"),
        ),
        (json!({"schedule": ""}), Err("it is empty")),
        (
            json!({"schedule": [0, "minute"]}),
            Err("interval 0 minute is out of range"),
        ),
        (
            json!({"schedule": [5, "fortnight"]}),
            Err("unit `fortnight`"),
        ),
        (
            json!({"schedule": {"type": "interval", "value": -1, "unit": "day"}}),
            Err("whole number greater than 0"),
        ),
        (json!({"schedule": [200, "year"]}), Err("at most 100 years")),
        (
            json!({"schedule": "@daily", "interval": "5m"}),
            Err("both given"),
        ),
        (
            json!({"schedule": "@daily", "timezone": "Mars/Olympus"}),
            Err("timezone `Mars/Olympus` is not a known IANA"),
        ),
        (
            json!({"schedule": "@daily", "timezone": "europe/berlin"}),
            Err("is not a known IANA"),
        ),
        (
            json!({"schedule": "@daily", "failure_issue_threshold": 0}),
            Err("failure_issue_threshold must be a whole number between 1 and 720, got 0"),
        ),
        (
            json!({"schedule": "@daily", "recovery_threshold": 721}),
            Err("recovery_threshold must be a whole number between 1 and 720, got 721"),
        ),
        (
            json!({"schedule": "@daily", "recovery_threshold": 1.5}),
            Err("recovery_threshold must be"),
        ),
        (
            json!({"schedule": "@daily", "checkin_margin": -5}),
            Err("checkin_margin must be a positive number"),
        ),
        (
            json!({"schedule": "@daily", "max_runtime": 40321}),
            Err("max_runtime is longer than 28 days"),
        ),
        (
            json!({"schedule": "@daily", "max_runtime": "1000 years"}),
            Err("max_runtime is longer than 28 days"),
        ),
        (
            json!({"schedule": "@daily", "max_runtime": "0s"}),
            Err("max_runtime must be greater than 0"),
        ),
        (
            json!({"schedule": "@daily", "checkin_margin": "soon"}),
            Err("checkin_margin is not a duration"),
        ),
        (
            json!({"schedule": "@daily", "checkin_margin": true}),
            Err("checkin_margin is neither"),
        ),
        (
            json!({"schedule": "@daily", "schedul": 1}),
            Err("unknown monitor config field `schedul`"),
        ),
        (json!("0 3 * * *"), Err("must be a JSON object")),
    ];
    for (json, expected) in cases {
        check_config(&json, expected);
    }
}

#[test]
fn config_from_protocol() {
    let wire: watchpost_protocol::MonitorConfig = serde_json::from_value(json!({
        "schedule": {"type": "interval", "value": 10, "unit": "second"},
        "checkin_margin": "90s", "max_runtime": 1.5, "timezone": "America/New_York",
        "failure_issue_threshold": 2
    }))
    .unwrap();
    let config = ConfigPatch::from_protocol(&wire)
        .unwrap()
        .to_config()
        .unwrap();
    assert_eq!(
        config.schedule,
        Schedule::Interval {
            value: 10,
            unit: IntervalUnit::Second
        }
    );
    assert_eq!(config.checkin_margin, Duration::from_secs(90));
    assert_eq!(config.max_runtime, Duration::from_secs(90));
    assert_eq!(config.timezone, "America/New_York");
    assert_eq!(
        (config.failure_issue_threshold, config.recovery_threshold),
        (2, 1)
    );

    // A check-in's `monitor_config` with `max_runtime: 0` is an invalid config, as in Sentry.
    let zero_runtime: watchpost_protocol::MonitorConfig = serde_json::from_value(json!({
        "schedule": {"type": "crontab", "value": "0 * * * *"}, "max_runtime": 0
    }))
    .unwrap();
    let error = ConfigPatch::from_protocol(&zero_runtime).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("max_runtime must be at least 1 minute"),
        "{error}"
    );
    let zero_margin: watchpost_protocol::MonitorConfig = serde_json::from_value(json!({
        "schedule": {"type": "crontab", "value": "0 * * * *"}, "checkin_margin": 0
    }))
    .unwrap();
    let patch = ConfigPatch::from_protocol(&zero_margin).unwrap();
    assert_eq!(patch.checkin_margin, None, "0 means the default margin");

    let bad: watchpost_protocol::MonitorConfig =
        serde_json::from_value(json!({"schedule": {"type": "crontab", "value": "@reboot"}}))
            .unwrap();
    assert!(matches!(
        ConfigPatch::from_protocol(&bad),
        Err(ConfigError::CrontabAlias { .. })
    ));
}

#[test]
fn the_exact_values_our_sdk_sends_beside_sentrys_win() {
    // What `watchpost_protocol::MonitorConfig::for_sentry` writes for a 90 s interval with
    // a 30 s margin: Sentry reads 2 minutes and 1 minute, Watchpost the exact values.
    let wire = watchpost_protocol::MonitorConfig::for_sentry(
        watchpost_protocol::MonitorSchedule::Interval {
            value: 90,
            unit: watchpost_protocol::IntervalUnit::Second,
        },
        Some(Duration::from_secs(30)),
        Some(Duration::from_secs(600)),
    );
    let sent: watchpost_protocol::MonitorConfig =
        serde_json::from_str(&serde_json::to_string(&wire).unwrap()).unwrap();
    let config = ConfigPatch::from_protocol(&sent)
        .unwrap()
        .to_config()
        .unwrap();
    assert_eq!(config.schedule, every(90, IntervalUnit::Second));
    assert_eq!(config.checkin_margin, Duration::from_secs(30));
    assert_eq!(config.max_runtime, Duration::from_secs(600));
    // Without the member (Sentry's SDKs, or Relay forwarding ours), the standard fields count.
    let mut sentry = sent;
    sentry.exact = None;
    let config = ConfigPatch::from_protocol(&sentry)
        .unwrap()
        .to_config()
        .unwrap();
    assert_eq!(config.schedule, every(2, IntervalUnit::Minute));
    assert_eq!(config.checkin_margin, Duration::from_secs(60));
}

#[test]
fn hand_built_config_is_validated() {
    let mut config = MonitorConfig::new(Schedule::Crontab("0 0 0 * * *".into()));
    assert!(matches!(
        config.validate(),
        Err(ConfigError::CrontabFields { fields: 6, .. })
    ));
    config.schedule = Schedule::Interval {
        value: 0,
        unit: IntervalUnit::Day,
    };
    assert!(config.validate().is_err());
    config.schedule = Schedule::Interval {
        value: 1,
        unit: IntervalUnit::Day,
    };
    config.checkin_margin = Duration::ZERO;
    assert_eq!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .split(';')
            .next()
            .unwrap(),
        "checkin_margin must be greater than 0, got 0s"
    );
}

#[test]
fn serde_shapes() {
    let config = MonitorConfig::new(Schedule::Interval {
        value: 5,
        unit: IntervalUnit::Minute,
    });
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(
        json["schedule"],
        json!({"type": "interval", "value": 5, "unit": "minute"})
    );
    assert_eq!(
        serde_json::from_value::<MonitorConfig>(json).unwrap(),
        config
    );
    let crontab = serde_json::to_value(Schedule::Crontab("0 3 * * *".into())).unwrap();
    assert_eq!(crontab, json!({"type": "crontab", "value": "0 3 * * *"}));
    // Deserialization validates.
    let bad = json!({"type": "crontab", "value": "@reboot"});
    assert!(serde_json::from_value::<Schedule>(bad).is_err());
    assert_eq!(
        serde_json::to_value(CheckInStatus::InProgress).unwrap(),
        json!("in_progress")
    );
    assert_eq!(
        serde_json::to_value(MonitorStatus::Active).unwrap(),
        json!("active")
    );
    assert_eq!(
        serde_json::to_value(IncidentReason::MissedCheckin).unwrap(),
        json!("missed_checkin")
    );
}

// ---------------------------------------------------------------------------------------------
// Schedule math

/// `cases`: (after, expected next), both as `"YYYY-MM-DD HH:MM[:SS]"` in UTC.
fn check_next(schedule: &Schedule, tz: &str, cases: &[(&str, &str)]) {
    let tz = parse_timezone(tz).unwrap();
    for &(after, expected) in cases {
        let next = schedule.next_after(tz, at(after));
        assert_eq!(
            next.map(show),
            Some(show(at(expected))),
            "{schedule} in {tz} after {after}"
        );
    }
}

fn cron(expr: &str) -> Schedule {
    Schedule::crontab(expr).unwrap()
}

fn every(value: u32, unit: IntervalUnit) -> Schedule {
    Schedule::Interval { value, unit }
}

// Europe/Berlin 2026: spring forward Mar 29 02:00 CET → 03:00 CEST (01:00Z);
// fall back Oct 25 03:00 CEST → 02:00 CET (01:00Z).
// America/New_York 2026: spring forward Mar 8 02:00 EST → 03:00 EDT (07:00Z);
// fall back Nov 1 02:00 EDT → 01:00 EST (06:00Z).

#[test]
fn daily_job_across_dst_in_berlin() {
    check_next(
        &cron("30 2 * * *"),
        "Europe/Berlin",
        &[
            // 02:30 CET on the day before.
            ("2026-03-27 12:00", "2026-03-28 01:30"),
            // The 02:30 that does not exist runs at the first valid time after the gap: 03:00 CEST.
            ("2026-03-28 01:30", "2026-03-29 01:00"),
            // The day after: 02:30 CEST.
            ("2026-03-29 01:00", "2026-03-30 00:30"),
            // 02:30 happens twice on Oct 25; the job runs once, at the first (CEST).
            ("2026-10-24 12:00", "2026-10-25 00:30"),
            ("2026-10-25 00:30", "2026-10-26 01:30"),
        ],
    );
}

#[test]
fn daily_job_across_dst_in_new_york() {
    check_next(
        &cron("30 2 * * *"),
        "America/New_York",
        &[
            // 02:30 does not exist on Mar 8: 03:00 EDT.
            ("2026-03-07 12:00", "2026-03-08 07:00"),
            ("2026-03-08 07:00", "2026-03-09 06:30"),
            // 02:30 on Nov 1 is after the repeated hour: EST, once.
            ("2026-10-31 12:00", "2026-11-01 07:30"),
        ],
    );
    // 01:30 is the time repeated on Nov 1: once, at the first (EDT).
    check_next(
        &cron("30 1 * * *"),
        "America/New_York",
        &[
            ("2026-10-31 12:00", "2026-11-01 05:30"),
            ("2026-11-01 05:30", "2026-11-02 06:30"),
        ],
    );
}

#[test]
fn hourly_job_across_dst() {
    // Hourly jobs keep running every real hour: the missing wall hour is skipped and the
    // repeated one runs twice (cron's rule when the minute or hour field starts with `*`).
    check_next(
        &cron("0 * * * *"),
        "Europe/Berlin",
        &[
            ("2026-03-29 00:30", "2026-03-29 01:00"), // 01:00 CET → 03:00 CEST
            ("2026-10-25 00:00", "2026-10-25 01:00"), // 02:00 CEST → 02:00 CET
            ("2026-10-25 01:00", "2026-10-25 02:00"), // → 03:00 CET
        ],
    );
    check_next(
        &cron("0 * * * *"),
        "America/New_York",
        &[
            ("2026-03-08 06:00", "2026-03-08 07:00"), // 01:00 EST → 03:00 EDT
            ("2026-11-01 05:00", "2026-11-01 06:00"), // 01:00 EDT → 01:00 EST
            ("2026-11-01 06:00", "2026-11-01 07:00"), // → 02:00 EST
        ],
    );
}

#[test]
fn intervals() {
    check_next(
        &every(10, IntervalUnit::Minute),
        "UTC",
        &[
            // Anchored at the check-in, truncated to the minute as in Sentry.
            ("2026-01-05 10:03:27", "2026-01-05 10:13"),
        ],
    );
    check_next(
        &every(30, IntervalUnit::Second),
        "UTC",
        &[
            ("2026-01-05 10:00:00", "2026-01-05 10:00:30"),
            ("2026-01-05 10:00:59", "2026-01-05 10:01:29"),
        ],
    );
    check_next(
        &every(6, IntervalUnit::Hour),
        "Europe/Berlin",
        &[
            // Elapsed hours, even across a DST change.
            ("2026-03-28 22:00", "2026-03-29 04:00"),
        ],
    );
    check_next(
        &every(1, IntervalUnit::Day),
        "Europe/Berlin",
        &[
            // Calendar days on the wall clock: 02:30 CET + 1 day is in the gap → 03:00 CEST.
            ("2026-03-28 01:30", "2026-03-29 01:00"),
            // 12:00 CET + 1 day = 12:00 CEST: 23 elapsed hours.
            ("2026-03-28 11:00", "2026-03-29 10:00"),
        ],
    );
    check_next(
        &every(1, IntervalUnit::Week),
        "UTC",
        &[("2026-01-05 10:00", "2026-01-12 10:00")],
    );
    check_next(
        &every(1, IntervalUnit::Month),
        "UTC",
        &[
            // Month ends clamp.
            ("2026-01-31 09:00", "2026-02-28 09:00"),
        ],
    );
    check_next(
        &every(1, IntervalUnit::Year),
        "UTC",
        &[("2028-02-29 09:00", "2029-02-28 09:00")],
    );
}

#[test]
fn catch_up_slot_after_an_outage() {
    let utc = chrono_tz::UTC;
    let cases: &[(Schedule, &str, &str, &str)] = &[
        // (schedule, missed slot, now, first slot after now)
        (cron("0 * * * *"), "01:00", "05:30", "06:00"),
        (every(10, IntervalUnit::Minute), "01:00", "05:35", "05:40"),
        (every(10, IntervalUnit::Minute), "01:00", "05:40", "05:50"),
        (
            every(30, IntervalUnit::Second),
            "01:00",
            "2026-01-12 01:00:10",
            "2026-01-12 01:00:30",
        ),
        (
            every(1, IntervalUnit::Month),
            "2026-01-31 00:00",
            "2026-04-15 00:00",
            "2026-04-30 00:00",
        ),
        (
            every(1, IntervalUnit::Day),
            "2025-01-05 03:00",
            "2026-01-05 02:00",
            "2026-01-05 03:00",
        ),
    ];
    for (schedule, anchor, now, expected) in cases {
        let got = schedule.first_slot_after(utc, at(anchor), at(now));
        assert_eq!(
            got.map(show),
            Some(show(at(expected))),
            "{schedule} from {anchor} at {now}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios: check-ins and sweeps, driven like the IO side drives them

/// One step of a scenario.
enum Step {
    /// A check-in: (time, id (0 = none), status, duration in seconds).
    CheckIn(&'static str, u128, CheckInStatus, Option<f64>),
    /// A check-in carrying this config patch.
    Upsert(&'static str, u128, CheckInStatus, Value),
    /// The sweeper wakes at this time and handles every due deadline.
    Sweep(&'static str),
    /// The API mutes (true) or unmutes the monitor.
    Mute(bool),
    /// The API disables (true) or enables the monitor at this time.
    Disable(&'static str, bool),
    /// A person declares the monitor at this time (`[[monitors]]` or the API's `PUT`), with
    /// this config, or with the one it has (`Value::Null`): the config is applied, then the
    /// monitor armed, as the processor does.
    Declare(&'static str, Value),
}

use CheckInStatus::{Error as Err_, InProgress as Start, Ok as Ok_};
use Step::{CheckIn as Ci, Declare, Disable, Mute, Sweep, Upsert};

/// A store and sweeper in memory.
struct Sim {
    monitor: Option<MonitorEnv>,
    checkins: HashMap<Uuid, CheckIn>,
    index: DeadlineIndex,
    /// The collector's outages the sweeps know of.
    outages: Outages,
    trace: String,
}

impl Sim {
    fn new(monitor: Option<MonitorEnv>) -> Sim {
        let mut index = DeadlineIndex::new();
        if let Some(m) = &monitor {
            index.upsert_for(m);
        }
        Sim {
            monitor,
            checkins: HashMap::new(),
            index,
            outages: Outages::default(),
            trace: String::new(),
        }
    }

    fn run(&mut self, steps: &[Step]) -> &str {
        for step in steps {
            match step {
                Ci(time, n, status, duration) => {
                    let input = CheckInInput {
                        key: key(),
                        id: (*n != 0).then(|| id(*n)),
                        status: *status,
                        duration: *duration,
                        config: None,
                        log: None,
                    };
                    let label = format!("{time} {}{}", status.as_str(), id_label(*n));
                    self.checkin(&label, input, at(time));
                }
                Upsert(time, n, status, json) => {
                    let input = CheckInInput {
                        key: key(),
                        id: (*n != 0).then(|| id(*n)),
                        status: *status,
                        duration: None,
                        config: Some(patch(json)),
                        log: None,
                    };
                    let label = format!("{time} {}{} +config", status.as_str(), id_label(*n));
                    self.checkin(&label, input, at(time));
                }
                Sweep(time) => self.sweep(at(time)),
                Mute(muted) => {
                    let monitor = self.monitor.as_mut().unwrap();
                    monitor.set_muted(*muted);
                    writeln!(self.trace, "{}", if *muted { "mute" } else { "unmute" }).unwrap();
                }
                Disable(time, disabled) => {
                    let monitor = self.monitor.as_mut().unwrap();
                    monitor.set_disabled(*disabled, at(time));
                    self.index.upsert_for(monitor);
                    let verb = if *disabled { "disable" } else { "enable" };
                    let line = format!("{time} {verb} => {}", state(monitor));
                    writeln!(self.trace, "{line}").unwrap();
                }
                Declare(time, config) => {
                    let monitor = self.monitor.as_mut().unwrap();
                    if !config.is_null() {
                        monitor.apply_config(patch(config).to_config().unwrap(), at(time));
                    }
                    let armed = if monitor.arm(at(time)) {
                        " (armed)"
                    } else {
                        ""
                    };
                    self.index.upsert_for(monitor);
                    let line = format!("{time} declare{armed} => {}", state(monitor));
                    writeln!(self.trace, "{line}").unwrap();
                }
            }
        }
        &self.trace
    }

    fn checkin(&mut self, label: &str, input: CheckInInput, now: DateTime<Utc>) {
        let target = target_checkin_id(self.monitor.as_ref(), &input);
        let existing = target.and_then(|t| self.checkins.get(&t).cloned());
        match process_checkin(self.monitor.clone(), existing, input, now) {
            Ok(transition) => self.apply(label, transition),
            Err(rejection) => {
                let name = format!("{rejection:?}");
                let name = name.split(['(', ' ']).next().unwrap();
                writeln!(self.trace, "{label} => rejected {name}").unwrap();
            }
        }
    }

    fn sweep(&mut self, now: DateTime<Utc>) {
        let due = self.index.pop_due(now);
        if due.is_empty() {
            writeln!(self.trace, "{} sweep => nothing due", show(now)).unwrap();
        }
        for deadline in due {
            let monitor = self.monitor.clone().unwrap();
            let transition = match deadline.kind {
                DeadlineKind::Missed => sweep_missed(&monitor, now, &self.outages),
                DeadlineKind::Timeout(run) => {
                    let checkin =
                        self.checkins.get(&run).cloned().unwrap_or_else(|| {
                            monitor.open_run(run).unwrap().checkin(&monitor.key)
                        });
                    sweep_timeout(&monitor, &checkin, now, &self.outages)
                }
                // These timelines configure no repeating rule: no incident has a repeat.
                DeadlineKind::Repeat => unreachable!("no repeat without a repeating rule"),
            };
            match transition {
                Some(t) => self.apply(&format!("{} sweep", show(now)), t),
                None => self.index.upsert_for(&monitor),
            }
        }
    }

    fn apply(&mut self, label: &str, t: Transition) {
        let c = &t.checkin;
        let mut line = format!("{label} => ");
        for earlier in &t.earlier {
            write!(
                line,
                "{} {}, ",
                earlier.status.as_str(),
                show(earlier.date_added)
            )
            .unwrap();
        }
        line.push_str(c.status.as_str());
        if c.status == CheckInStatus::Unknown {
            write!(line, " {}", show(c.date_added)).unwrap();
        }
        if let Some(ms) = c.duration_ms {
            write!(line, " {ms}ms").unwrap();
        }
        if c.status == CheckInStatus::Missed {
            write!(line, " (expected {})", show_opt(c.expected_time)).unwrap();
        }
        if let Some(timeout) = c
            .timeout_at
            .filter(|_| c.status == CheckInStatus::InProgress)
        {
            write!(line, " (timeout {})", show(timeout)).unwrap();
        }
        if t.unchanged {
            line.push_str(" (unchanged)");
        }
        write!(line, " | {}", state(&t.monitor)).unwrap();
        for effect in &t.effects {
            let (verb, incident, notify) = match effect {
                Effect::IncidentOpened { incident, notify } => ("OPENED", incident, notify),
                Effect::IncidentResolved { incident, notify } => ("RESOLVED", incident, notify),
            };
            let reason = serde_json::to_value(incident.reason).unwrap();
            write!(
                line,
                " | {verb} {} \"{}\"",
                reason.as_str().unwrap(),
                incident.summary()
            )
            .unwrap();
            if !notify {
                line.push_str(" (silent)");
            }
        }
        if let Some(outage) = &t.outage {
            write!(line, " | near outage {}", show(outage.from)).unwrap();
        }
        writeln!(self.trace, "{line}").unwrap();
        for earlier in t.earlier {
            self.checkins.insert(earlier.id, earlier);
        }
        self.checkins.insert(t.checkin.id, t.checkin);
        self.index.upsert_for(&t.monitor);
        self.monitor = Some(t.monitor);
    }
}

fn id_label(n: u128) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("#{n}")
    }
}

/// `status next=… [runs=…]` for a monitor.
fn state(m: &MonitorEnv) -> String {
    let status = serde_json::to_value(m.status).unwrap();
    let mut s = format!(
        "{} next={}",
        status.as_str().unwrap(),
        show_opt(m.next_checkin)
    );
    if let (Some(next), Some(latest)) = (m.next_checkin, m.next_checkin_latest)
        && latest != m.config.latest_for(next)
    {
        write!(s, " until={}", show(latest)).unwrap();
    }
    if !m.open_runs.is_empty() {
        let runs: Vec<String> = m.open_runs.iter().map(|r| show(r.timeout_at)).collect();
        write!(s, " runs={}", runs.join(",")).unwrap();
    }
    s
}

/// A monitor with `config` that has not checked in yet.
fn monitor(config: &Value) -> MonitorEnv {
    MonitorEnv::new(key(), patch(config).to_config().unwrap())
}

/// Runs `steps` against `start` and compares the trace with `expected` (leading whitespace of
/// each line ignored).
fn check(start: Option<MonitorEnv>, steps: &[Step], expected: &str) {
    let mut sim = Sim::new(start);
    let trace = sim.run(steps).trim().to_owned();
    let expected: Vec<&str> = expected.trim().lines().map(str::trim).collect();
    assert_eq!(trace, expected.join("\n"), "\n--- got:\n{trace}\n");
}

fn hourly(extra: &Value) -> MonitorEnv {
    let mut config = json!({"schedule": "0 * * * *", "checkin_margin": 5, "max_runtime": 30});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    monitor(&config)
}

#[test]
fn run_with_id() {
    check(Some(hourly(&json!({}))), &[
        Ci("01:00", 1, Start, None),
        Ci("01:10", 1, Ok_, None),
        Sweep("02:04"),
        Sweep("02:05"),
    ], "
        01:00 in_progress#1 => in_progress (timeout 01:30) | ok next=02:00 runs=01:30
        01:10 ok#1 => ok 600000ms | ok next=02:00
        02:04 sweep => nothing due
        02:05 sweep => missed (expected 02:00) | error next=03:00 | OPENED missed_checkin \"A missed check-in was detected\"
    ");
}

#[test]
fn unknown_monitor_and_upsert() {
    check(None, &[
        Ci("01:00", 1, Start, None),
        Upsert("01:00", 1, Start, json!({"checkin_margin": 5})),
        Upsert("01:00", 1, Start, json!({"schedule": "0 * * * *"})),
        // An upsert of one field keeps the others (margin stays 1 min by default).
        Upsert("01:05", 1, Ok_, json!({"max_runtime": 10})),
        Sweep("02:01"),
    ], "
        01:00 in_progress#1 => rejected UnknownMonitor
        01:00 in_progress#1 +config => rejected InvalidConfig
        01:00 in_progress#1 +config => in_progress (timeout 01:30) | ok next=02:00 runs=01:30
        01:05 ok#1 +config => ok 300000ms | ok next=02:00
        02:01 sweep => missed (expected 02:00) | error next=03:00 | OPENED missed_checkin \"A missed check-in was detected\"
    ");
}

#[test]
fn invalid_inputs_are_rejected() {
    check(
        Some(hourly(&json!({}))),
        &[
            Ci("01:00", 1, CheckInStatus::Missed, None),
            Ci("01:00", 1, CheckInStatus::Unknown, None),
            Ci("01:00", 1, Ok_, Some(-1.0)),
            Ci("01:00", 1, Ok_, Some(f64::NAN)),
            Ci("01:00", 1, Ok_, Some(3e6)),
            Ci("01:00", 1, Ok_, Some(2.5)),
            Ci("01:01", 1, Err_, None),
            Ci("01:01", 1, Ok_, None),
        ],
        "
        01:00 missed#1 => rejected InvalidStatus
        01:00 unknown#1 => rejected InvalidStatus
        01:00 ok#1 => rejected InvalidDuration
        01:00 ok#1 => rejected InvalidDuration
        01:00 ok#1 => rejected InvalidDuration
        01:00 ok#1 => ok 2500ms | ok next=02:00
        01:01 error#1 => rejected AlreadyFinished
        01:01 ok#1 => rejected AlreadyFinished
    ",
    );
}

#[test]
fn out_of_order_and_late_checkins() {
    check(
        Some(hourly(&json!({}))),
        &[
            Ci("01:00", 1, Start, None),
            // The run finished; its in_progress arrives after the ok (reordered in transit).
            Ci("01:00:05", 2, Ok_, Some(3.0)),
            Ci("01:00:06", 2, Start, None),
            // A late in_progress after the ok of the same run is ignored.
            Ci("01:02", 1, Ok_, None),
            Ci("01:03", 1, Start, None),
            // A closing-only ok for a run that started long ago: back-dated, no rollback.
            Ci("01:30", 3, Ok_, Some(7200.0)),
        ],
        "
        01:00 in_progress#1 => in_progress (timeout 01:30) | ok next=02:00 runs=01:30
        01:00:05 ok#2 => ok 3000ms | ok next=02:00 runs=01:30
        01:00:06 in_progress#2 => ok 3000ms (unchanged) | ok next=02:00 runs=01:30
        01:02 ok#1 => ok 120000ms | ok next=02:00
        01:03 in_progress#1 => ok 120000ms (unchanged) | ok next=02:00
        01:30 ok#3 => ok 7200000ms | ok next=02:00
    ",
    );
    // The back-dated check-in did not move last_checkin back.
    let mut sim = Sim::new(Some(hourly(&json!({}))));
    sim.run(&[Ci("01:00", 1, Ok_, None), Ci("01:30", 3, Ok_, Some(7200.0))]);
    let monitor = sim.monitor.unwrap();
    assert_eq!(monitor.last_checkin, Some(at("01:00")));
    assert_eq!(sim.checkins[&id(3)].date_added, at("2026-01-04 23:30"));
}

#[test]
fn timeout_then_late_ok_keeps_timeout() {
    check(Some(hourly(&json!({}))), &[
        Ci("01:00", 1, Start, None),
        Sweep("01:29"),
        Sweep("01:30"),
        // The late ok records the duration; the check-in stays timeout, no recovery.
        Ci("01:45", 1, Ok_, None),
        Ci("01:46", 1, Start, None),
        Ci("01:47", 1, Err_, None),
    ], "
        01:00 in_progress#1 => in_progress (timeout 01:30) | ok next=02:00 runs=01:30
        01:29 sweep => nothing due
        01:30 sweep => timeout | error next=02:00 | OPENED timeout \"A timeout check-in was detected\"
        01:45 ok#1 => timeout 2700000ms | error next=02:00
        01:46 in_progress#1 => timeout 2700000ms (unchanged) | error next=02:00
        01:47 error#1 => rejected AlreadyFinished
    ");
}

#[test]
fn heartbeat_extends_timeout() {
    check(
        Some(hourly(&json!({}))),
        &[
            Ci("01:00", 1, Start, None),
            Ci("01:20", 1, Start, None),
            Sweep("01:30"),
            Ci("01:45", 1, Start, None),
            Sweep("01:50"),
            Ci("02:10", 1, Ok_, None),
            Sweep("02:20"),
        ],
        "
        01:00 in_progress#1 => in_progress (timeout 01:30) | ok next=02:00 runs=01:30
        01:20 in_progress#1 => in_progress (timeout 01:50) | ok next=02:00 runs=01:50
        01:30 sweep => nothing due
        01:45 in_progress#1 => in_progress (timeout 02:15) | ok next=02:00 runs=02:15
        01:50 sweep => nothing due
        02:10 ok#1 => ok 4200000ms | ok next=03:00
        02:20 sweep => nothing due
    ",
    );
}

#[test]
fn nil_and_missing_ids_match_the_newest_open_run() {
    let nil = 0; // `Ci` sends no id for 0; a nil UUID is tested below.
    check(Some(hourly(&json!({}))), &[
        // Nothing open: a new check-in each time.
        Ci("01:00", nil, Ok_, None),
        Ci("01:01", nil, Start, None),
        Ci("01:02", 7, Start, None),
        // Newest open run (#7) gets the ok, then the older derived one.
        Ci("01:03", nil, Ok_, None),
        Ci("01:04", nil, Err_, None),
    ], "
        01:00 ok => ok | ok next=02:00
        01:01 in_progress => in_progress (timeout 01:31) | ok next=02:00 runs=01:31
        01:02 in_progress#7 => in_progress (timeout 01:32) | ok next=02:00 runs=01:31,01:32
        01:03 ok => ok 60000ms | ok next=02:00 runs=01:31
        01:04 error => error 180000ms | error next=02:00 | OPENED error \"An error check-in was detected\"
    ");
    let monitor = hourly(&json!({}));
    let mut input = CheckInInput {
        key: key(),
        id: Some(Uuid::nil()),
        status: Start,
        duration: None,
        config: None,
        log: None,
    };
    let first = process_checkin(Some(monitor), None, input.clone(), at("01:00")).unwrap();
    assert!(!first.checkin.id.is_nil());
    assert_eq!(
        target_checkin_id(Some(&first.monitor), &input),
        Some(first.checkin.id)
    );
    input.status = Ok_;
    let second = process_checkin(
        Some(first.monitor),
        Some(first.checkin.clone()),
        input,
        at("01:05"),
    );
    assert_eq!(second.unwrap().checkin.id, first.checkin.id);
}

#[test]
fn overlapping_runs() {
    check(Some(hourly(&json!({"failure_issue_threshold": 2}))), &[
        Ci("01:00", 1, Start, None),
        Ci("01:10", 2, Start, None),
        Ci("01:20", 2, Ok_, None),
        Sweep("01:30"),
        Ci("01:35", 3, Start, None),
        Ci("01:36", 4, Start, None),
        Ci("01:40", 3, Err_, None),
        Ci("01:41", 4, Err_, None),
    ], "
        01:00 in_progress#1 => in_progress (timeout 01:30) | ok next=02:00 runs=01:30
        01:10 in_progress#2 => in_progress (timeout 01:40) | ok next=02:00 runs=01:30,01:40
        01:20 ok#2 => ok 600000ms | ok next=02:00 runs=01:30
        01:30 sweep => timeout | ok next=02:00
        01:35 in_progress#3 => in_progress (timeout 02:05) | ok next=02:00 runs=02:05
        01:36 in_progress#4 => in_progress (timeout 02:06) | ok next=02:00 runs=02:05,02:06
        01:40 error#3 => error 300000ms | error next=02:00 runs=02:06 | OPENED error \"2 failed check-ins detected (1 timeout, 1 error)\"
        01:41 error#4 => error 300000ms | error next=02:00
    ");
}

#[test]
fn open_runs_are_bounded() {
    let mut sim = Sim::new(Some(hourly(&json!({}))));
    for n in 1..=MAX_OPEN_RUNS as u128 {
        sim.run(&[Ci("01:00", n, Start, None)]);
    }
    sim.trace.clear();
    let trace = sim.run(&[Ci("01:01", 999, Start, None)]).trim();
    assert_eq!(trace, "01:01 in_progress#999 => rejected TooManyOpenRuns");
}

#[test]
fn invalid_upsert_leaves_the_monitor_alone() {
    let monitor = hourly(&json!({}));
    let bad = ConfigPatch {
        failure_issue_threshold: Some(0),
        ..ConfigPatch::default()
    };
    let input = CheckInInput {
        key: key(),
        id: None,
        status: Ok_,
        duration: None,
        config: Some(bad),
        log: None,
    };
    let err = process_checkin(Some(monitor), None, input, at("01:00")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid monitor_config: failure_issue_threshold must be a whole number between 1 and 720, got 0"
    );
}

#[test]
fn check_in_for_another_monitor_is_rejected() {
    let monitor = hourly(&json!({}));
    let mut stored = process_checkin(
        Some(monitor.clone()),
        None,
        CheckInInput {
            key: key(),
            id: Some(id(1)),
            status: Start,
            duration: None,
            config: None,
            log: None,
        },
        at("01:00"),
    )
    .unwrap()
    .checkin;
    stored.key.environment = "staging".into();
    let input = CheckInInput {
        key: key(),
        id: Some(id(1)),
        status: Ok_,
        duration: None,
        config: None,
        log: None,
    };
    let err = process_checkin(Some(monitor), Some(stored), input, at("01:01")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "check-in {} belongs to monitor `job` in environment `staging`, not to `job` in `production`",
            id(1)
        )
    );
}

#[test]
fn threshold_one() {
    check(
        Some(hourly(&json!({}))),
        &[
            Ci("01:00", 1, Err_, None),
            Ci("01:30", 2, Err_, None),
            Ci("02:00", 3, Ok_, None),
            Ci("03:00", 4, Err_, None),
        ],
        "
        01:00 error#1 => error | error next=02:00 | OPENED error \"An error check-in was detected\"
        01:30 error#2 => error | error next=02:00
        02:00 ok#3 => ok | ok next=03:00 | RESOLVED error \"An error check-in was detected\"
        03:00 error#4 => error | error next=04:00 | OPENED error \"An error check-in was detected\"
    ",
    );
}

#[test]
fn threshold_three_needs_a_full_window() {
    check(Some(hourly(&json!({"failure_issue_threshold": 3}))), &[
        // A history shorter than N opens nothing (Sentry would open here).
        Ci("01:00", 1, Err_, None),
        Ci("02:00", 2, Err_, None),
        // An ok breaks the run.
        Ci("03:00", 3, Ok_, None),
        Ci("04:00", 4, Err_, None),
        Sweep("05:05"),
        Ci("05:10", 5, Start, None),
        Sweep("05:40"),
        // One more failure while the incident is open: no second opening.
        Sweep("06:05"),
    ], "
        01:00 error#1 => error | ok next=02:00
        02:00 error#2 => error | ok next=03:00
        03:00 ok#3 => ok | ok next=04:00
        04:00 error#4 => error | ok next=05:00
        05:05 sweep => missed (expected 05:00) | ok next=06:00
        05:10 in_progress#5 => in_progress (timeout 05:40) | ok next=06:00 runs=05:40
        05:40 sweep => timeout | error next=06:00 | OPENED timeout \"3 failed check-ins detected (1 missed, 1 timeout, 1 error)\"
        06:05 sweep => missed (expected 06:00) | error next=07:00
    ");
}

#[test]
fn recovery_needs_two_oks() {
    check(
        Some(hourly(&json!({"recovery_threshold": 2}))),
        &[
            Ci("01:00", 1, Err_, None),
            Ci("02:00", 2, Ok_, None),
            Ci("03:00", 3, Err_, None),
            Ci("04:00", 4, Ok_, None),
            Ci("05:00", 5, Ok_, None),
            Ci("06:00", 6, Ok_, None),
        ],
        "
        01:00 error#1 => error | error next=02:00 | OPENED error \"An error check-in was detected\"
        02:00 ok#2 => ok | error next=03:00
        03:00 error#3 => error | error next=04:00
        04:00 ok#4 => ok | error next=05:00
        05:00 ok#5 => ok | ok next=06:00 | RESOLVED error \"An error check-in was detected\"
        06:00 ok#6 => ok | ok next=07:00
    ",
    );
}

#[test]
fn mute_tracks_incidents_silently() {
    check(Some(hourly(&json!({}))), &[
        Mute(true),
        Ci("01:00", 1, Err_, None),
        Mute(false),
        Ci("02:00", 2, Ok_, None),
        Ci("03:00", 3, Err_, None),
        Mute(true),
        Ci("04:00", 4, Ok_, None),
    ], "
        mute
        01:00 error#1 => error | error next=02:00 | OPENED error \"An error check-in was detected\" (silent)
        unmute
        02:00 ok#2 => ok | ok next=03:00 | RESOLVED error \"An error check-in was detected\" (silent)
        03:00 error#3 => error | error next=04:00 | OPENED error \"An error check-in was detected\"
        mute
        04:00 ok#4 => ok | ok next=05:00 | RESOLVED error \"An error check-in was detected\" (silent)
    ");
}

#[test]
fn disable_drops_checkins_and_sweeps() {
    check(Some(hourly(&json!({}))), &[
        Ci("01:00", 1, Start, None),
        Disable("01:10", true),
        Ci("01:20", 1, Ok_, None),
        Sweep("09:00"),
        Disable("09:10", false),
        Sweep("10:04"),
        Sweep("10:05"),
    ], "
        01:00 in_progress#1 => in_progress (timeout 01:30) | ok next=02:00 runs=01:30
        01:10 disable => disabled next=02:00 runs=01:30
        01:20 ok#1 => rejected Disabled
        09:00 sweep => nothing due
        09:10 enable => ok next=10:00
        10:04 sweep => nothing due
        10:05 sweep => missed (expected 10:00) | error next=11:00 | OPENED missed_checkin \"A missed check-in was detected\"
    ");
    assert!(
        deadlines_of(&{
            let mut m = hourly(&json!({}));
            m.next_checkin_latest = Some(at("01:00"));
            m.set_disabled(true, at("00:00"));
            m
        })
        .is_empty()
    );
}

#[test]
fn restart_catch_up_reports_one_miss() {
    // State as stored before a collector outage: expected at 01:00, now it is 07:30.
    let mut stored = hourly(&json!({"failure_issue_threshold": 2}));
    stored.last_checkin = Some(at("00:00"));
    stored.next_checkin = Some(at("01:00"));
    stored.next_checkin_latest = Some(at("01:05"));
    stored.status = MonitorStatus::Ok;
    check(Some(stored), &[
        Sweep("07:30"),
        Sweep("07:31"),
        Sweep("08:05"),
    ], "
        07:30 sweep => missed (expected 01:00) | ok next=08:00
        07:31 sweep => nothing due
        08:05 sweep => missed (expected 08:00) | error next=09:00 | OPENED missed_checkin \"2 missed check-ins detected\"
    ");
}

#[test]
fn never_missed_before_first_checkin() {
    let fresh = hourly(&json!({}));
    assert!(deadlines_of(&fresh).is_empty());
    assert!(sweep_missed(&fresh, at("2030-01-01 00:00"), &Outages::default()).is_none());
    assert_eq!(fresh.status, MonitorStatus::Active);
}

#[test]
fn a_declared_monitor_is_missed_without_any_check_in() {
    check(Some(hourly(&json!({}))), &[
        Declare("00:10", Value::Null),
        Sweep("01:04"),
        Sweep("01:05"),
        Sweep("02:05"),
        Ci("02:30", 0, Ok_, None),
    ], "
        00:10 declare (armed) => active next=01:00
        01:04 sweep => nothing due
        01:05 sweep => missed (expected 01:00) | error next=02:00 | OPENED missed_checkin \"A missed check-in was detected\"
        02:05 sweep => missed (expected 02:00) | error next=03:00
        02:30 ok => ok | ok next=03:00 | RESOLVED missed_checkin \"A missed check-in was detected\"
    ");
}

#[test]
fn a_monitor_a_check_in_created_is_not_missed_before_it_checks_in_again() {
    // An SDK's upsert creates the monitor with its first check-in; the engine never arms a
    // monitor by itself, so one created without a check-in (or whose creation was only
    // a config) waits for the first check-in, as in Sentry.
    let created = process_checkin(
        None,
        None,
        CheckInInput {
            key: key(),
            id: None,
            status: Ok_,
            duration: None,
            config: Some(patch(&json!({"schedule": "0 * * * *"}))),
            log: None,
        },
        at("00:10"),
    )
    .unwrap()
    .monitor;
    assert_eq!(created.next_checkin, Some(at("01:00")));
    let fresh = MonitorEnv::new(key(), created.config);
    assert!(!fresh.is_armed());
    check(
        Some(fresh),
        &[Sweep("2026-02-01 00:00")],
        "2026-02-01 00:00 sweep => nothing due",
    );
}

#[test]
fn declaring_again_keeps_the_deadline_and_a_new_schedule_replans_it() {
    check(Some(hourly(&json!({}))), &[
        Declare("00:10", Value::Null),
        // The collector applies `[[monitors]]` at every start: the same declaration again.
        Declare("00:40", Value::Null),
        Declare("00:50", json!({"schedule": "30 */6 * * *", "checkin_margin": 5, "max_runtime": 30})),
        Sweep("01:05"),
        Sweep("06:35"),
    ], "
        00:10 declare (armed) => active next=01:00
        00:40 declare => active next=01:00
        00:50 declare => active next=06:30
        01:05 sweep => nothing due
        06:35 sweep => missed (expected 06:30) | error next=12:30 | OPENED missed_checkin \"A missed check-in was detected\"
    ");
}

#[test]
fn a_disabled_declared_monitor_is_armed_when_enabled() {
    check(Some(hourly(&json!({}))), &[
        Disable("00:05", true),
        Declare("00:10", Value::Null),
        Sweep("03:00"),
        Disable("03:10", false),
        Declare("03:10", Value::Null),
        Sweep("04:05"),
    ], "
        00:05 disable => disabled next=-
        00:10 declare => disabled next=-
        03:00 sweep => nothing due
        03:10 enable => active next=-
        03:10 declare (armed) => active next=04:00
        04:05 sweep => missed (expected 04:00) | error next=05:00 | OPENED missed_checkin \"A missed check-in was detected\"
    ");
}

#[test]
fn a_declared_monitor_across_a_restart_is_neither_rearmed_nor_missed_twice() {
    // Armed at 00:10; the collector was down 00:58-01:02 and declares it again when it
    // starts: the 01:05 deadline stays, and falls in the grace (10 min floor) of the outage.
    check_outages(&[down("00:58", "01:02")], 10, Some(hourly(&json!({}))), &[
        Declare("00:10", Value::Null),
        Declare("01:02", Value::Null),
        Sweep("01:05"),
        Sweep("01:12"),
        Sweep("02:05"),
    ], "
        00:10 declare (armed) => active next=01:00
        01:02 declare => active next=01:00
        01:05 sweep => unknown 01:00 | active next=01:00 until=01:12 | near outage 00:58
        01:12 sweep => missed (expected 01:00) | error next=02:00 | OPENED missed_checkin \"A missed check-in was detected\" | near outage 00:58
        02:05 sweep => missed (expected 02:00) | error next=03:00
    ");
}

#[test]
fn interval_monitor() {
    let every_10m = monitor(&json!({"schedule": [10, "minute"], "checkin_margin": "1m"}));
    check(Some(every_10m), &[
        Ci("01:00:30", 1, Ok_, None),
        Ci("01:07:10", 2, Ok_, None),
        Sweep("01:18"),
        // Catch-up continues the missed slot's grid: 01:17 + 10m.
        Sweep("01:27:30"),
    ], "
        01:00:30 ok#1 => ok | ok next=01:10
        01:07:10 ok#2 => ok | ok next=01:17
        01:18 sweep => missed (expected 01:17) | error next=01:27 | OPENED missed_checkin \"A missed check-in was detected\"
        01:27:30 sweep => nothing due
    ");
}

#[test]
fn dst_daily_monitor_in_berlin() {
    let daily = monitor(&json!({"schedule": "30 2 * * *", "timezone": "Europe/Berlin"}));
    check(
        Some(daily),
        &[
            Ci("2026-03-28 01:30", 1, Ok_, None),
            // 02:30 does not exist on Mar 29: expected 03:00 CEST = 01:00Z, missed at 01:01Z.
            Sweep("2026-03-29 01:00"),
            Ci("2026-03-29 01:00:10", 2, Ok_, None),
            Ci("2026-10-25 00:30", 3, Ok_, None),
            // The second 02:30 (CET) is not expected.
            Sweep("2026-10-25 01:31"),
        ],
        "
        2026-03-28 01:30 ok#1 => ok | ok next=2026-03-29 01:00
        2026-03-29 01:00 sweep => nothing due
        2026-03-29 01:00:10 ok#2 => ok | ok next=2026-03-30 00:30
        2026-10-25 00:30 ok#3 => ok | ok next=2026-10-26 01:30
        2026-10-25 01:31 sweep => nothing due
    ",
    );
}

#[test]
fn config_change_replans() {
    let mut m = hourly(&json!({}));
    let t = process_checkin(
        Some(m.clone()),
        None,
        CheckInInput {
            key: key(),
            id: Some(id(1)),
            status: Start,
            duration: None,
            config: None,
            log: None,
        },
        at("01:00"),
    )
    .unwrap();
    m = t.monitor;
    let mut config = m.config.clone();
    config.checkin_margin = Duration::from_secs(600);
    config.max_runtime = Duration::from_secs(3600);
    m.apply_config(config.clone(), at("01:05"));
    assert_eq!(
        (m.next_checkin, m.next_checkin_latest),
        (Some(at("02:00")), Some(at("02:10")))
    );
    assert_eq!(m.open_runs[0].timeout_at, at("02:00"));
    config.schedule = cron("30 */6 * * *");
    m.apply_config(config, at("01:05"));
    assert_eq!(
        (m.next_checkin, m.next_checkin_latest),
        (Some(at("06:30")), Some(at("06:40")))
    );
}

// ---------------------------------------------------------------------------------------------
// Deadline index

#[test]
fn deadline_index() {
    let key_n = |n: u64| MonitorKey {
        project: n,
        ..key()
    };
    let mut monitors: Vec<MonitorEnv> = (1..=3)
        .map(|n| {
            let mut m = hourly(&json!({}));
            m.key = key_n(n);
            m.next_checkin_latest = Some(at("01:00") + chrono::TimeDelta::minutes(n as i64));
            m
        })
        .collect();
    monitors[2].open_runs.push(OpenRun {
        id: id(9),
        started: at("00:00"),
        timeout_at: at("00:30"),
        date_updated: at("00:00"),
        expected_time: None,
        log: None,
    });
    let mut index = DeadlineIndex::new();
    for m in &monitors {
        index.upsert_for(m);
    }
    assert_eq!((index.len(), index.monitors()), (4, 3));
    assert_eq!(index.next_deadline(), Some(at("00:30")));
    assert_eq!(index.due(at("01:01")).count(), 2);

    // Replacing moves an entry; removing forgets all of a monitor's.
    monitors[0].next_checkin_latest = Some(at("05:00"));
    index.upsert_for(&monitors[0]);
    index.remove(&key_n(2));
    assert_eq!(index.len(), 3);
    let due = index.pop_due(at("04:00"));
    let shown: Vec<(String, u64, DeadlineKind)> = due
        .iter()
        .map(|d| (show(d.at), d.key.project, d.kind))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("00:30".to_owned(), 3, DeadlineKind::Timeout(id(9))),
            ("01:03".to_owned(), 3, DeadlineKind::Missed),
        ]
    );
    assert_eq!(index.len(), 1);
    assert!(index.deadlines_for(&key_n(3)).is_empty());
    assert_eq!(index.deadlines_for(&key_n(1)).len(), 1);
    assert_eq!(index.next_deadline(), Some(at("05:00")));
    assert!(index.pop_due(at("04:59")).is_empty());
    index.replace(
        &key_n(7),
        vec![Deadline {
            at: at("02:00"),
            key: key_n(7),
            kind: DeadlineKind::Missed,
        }],
    );
    assert_eq!(index.next_deadline(), Some(at("02:00")));
    let json = serde_json::to_value(&index.deadlines_for(&key_n(7))[0]).unwrap();
    assert_eq!(json["kind"], json!({"type": "missed"}));
}

#[test]
fn ids_are_deterministic_and_distinct() {
    let run = |env: &str| {
        let mut m = hourly(&json!({}));
        m.key.environment = env.to_owned();
        let input = CheckInInput {
            key: m.key.clone(),
            id: None,
            status: Ok_,
            duration: None,
            config: None,
            log: None,
        };
        let first = process_checkin(Some(m), None, input.clone(), at("01:00")).unwrap();
        let second = process_checkin(Some(first.monitor), None, input, at("01:00")).unwrap();
        (first.checkin.id, second.checkin.id)
    };
    let (a1, a2) = run("production");
    assert_ne!(a1, a2);
    assert_eq!(run("production"), (a1, a2));
    let (b1, _) = run("staging");
    assert_ne!(a1, b1);
    assert_eq!(a1.get_version_num(), 8);
}

// ---------------------------------------------------------------------------------------------
// The collector's own outages (`outage.rs`): grace rules, with explicit times

/// A window in which the collector was down (`to: None`: still refusing writes).
fn down(from: &str, to: &str) -> Outage {
    Outage {
        from: at(from),
        to: Some(at(to)),
        kind: OutageKind::Down,
    }
}

/// [`check`] with the sweeps knowing `windows` and a grace floor of `floor_minutes`.
fn check_outages(
    windows: &[Outage],
    floor_minutes: u64,
    start: Option<MonitorEnv>,
    steps: &[Step],
    expected: &str,
) -> Sim {
    let mut sim = Sim::new(start);
    sim.outages = Outages::new(windows.to_vec(), Duration::from_secs(60 * floor_minutes));
    let trace = sim.run(steps).trim().to_owned();
    let expected: Vec<&str> = expected.trim().lines().map(str::trim).collect();
    assert_eq!(trace, expected.join("\n"), "\n--- got:\n{trace}\n");
    sim
}

#[test]
fn a_deadline_before_the_outage_is_missed_as_usual() {
    check_outages(&[down("02:10", "02:30")], 10, Some(hourly(&json!({}))), &[
        Ci("01:00", 0, Ok_, None),
        Sweep("02:31"),
    ], "
        01:00 ok => ok | ok next=02:00
        02:31 sweep => missed (expected 02:00) | error next=03:00 | OPENED missed_checkin \"A missed check-in was detected\"
    ");
}

#[test]
fn a_deadline_inside_the_outage_waits_for_the_grace_and_a_late_check_in_counts() {
    // Deadline 02:05 fell in the window; the grace is the floor (10 min > the 5 min margin),
    // so the job has until 02:30 and checks in at 02:22: no missed, no incident.
    check_outages(&[down("02:03", "02:20")], 10, Some(hourly(&json!({}))), &[
        Ci("01:00", 0, Ok_, None),
        Sweep("02:20"),
        Ci("02:22", 0, Ok_, None),
        Sweep("02:31"),
        Sweep("03:05"),
    ], "
        01:00 ok => ok | ok next=02:00
        02:20 sweep => unknown 02:00 | ok next=02:00 until=02:30 | near outage 02:03
        02:22 ok => ok | ok next=03:00
        02:31 sweep => nothing due
        03:05 sweep => missed (expected 03:00) | error next=04:00 | OPENED missed_checkin \"A missed check-in was detected\"
    ");
}

#[test]
fn a_job_that_stopped_is_missed_once_at_the_end_of_the_grace_and_the_missed_replaces_the_unknown() {
    let sim = check_outages(&[down("02:03", "02:20")], 10, Some(hourly(&json!({}))), &[
        Ci("01:00", 0, Ok_, None),
        Sweep("02:20"),
        Sweep("02:29"),
        Sweep("02:30"),
    ], "
        01:00 ok => ok | ok next=02:00
        02:20 sweep => unknown 02:00 | ok next=02:00 until=02:30 | near outage 02:03
        02:29 sweep => nothing due
        02:30 sweep => missed (expected 02:00) | error next=03:00 | OPENED missed_checkin \"A missed check-in was detected\" | near outage 02:03
    ");
    let statuses: Vec<&str> = {
        let mut all: Vec<&CheckIn> = sim.checkins.values().collect();
        all.sort_by_key(|c| c.date_added);
        all.iter().map(|c| c.status.as_str()).collect()
    };
    assert_eq!(statuses, ["ok", "missed"], "one record for the 02:00 slot");
}

#[test]
fn a_deadline_within_the_grace_after_the_outage_waits_too() {
    // Down 01:50–02:02; the 02:05 deadline is 3 min after it, within the 5 min margin (the
    // floor is 0 here, so the margin is the grace): the job has until 02:07.
    check_outages(&[down("01:50", "02:02")], 0, Some(hourly(&json!({}))), &[
        Ci("01:00", 0, Ok_, None),
        Sweep("02:05"),
        Sweep("02:07"),
    ], "
        01:00 ok => ok | ok next=02:00
        02:05 sweep => unknown 02:00 | ok next=02:00 until=02:07 | near outage 01:50
        02:07 sweep => missed (expected 02:00) | error next=03:00 | OPENED missed_checkin \"A missed check-in was detected\" | near outage 01:50
    ");
    // Later than the grace after the window: the usual rule.
    check_outages(&[down("01:50", "01:55")], 0, Some(hourly(&json!({}))), &[
        Ci("01:00", 0, Ok_, None),
        Sweep("02:05"),
    ], "
        01:00 ok => ok | ok next=02:00
        02:05 sweep => missed (expected 02:00) | error next=03:00 | OPENED missed_checkin \"A missed check-in was detected\"
    ");
}

#[test]
fn the_slots_of_a_long_outage_are_unknown_and_the_newest_decides() {
    check_outages(&[down("02:03", "05:10")], 10, Some(hourly(&json!({}))), &[
        Ci("01:00", 0, Ok_, None),
        Sweep("05:10"),
        Sweep("05:20"),
    ], "
        01:00 ok => ok | ok next=02:00
        05:10 sweep => unknown 02:00, unknown 03:00, unknown 04:00, unknown 05:00 | ok next=05:00 until=05:20 | near outage 02:03
        05:20 sweep => missed (expected 05:00) | error next=06:00 | OPENED missed_checkin \"A missed check-in was detected\" | near outage 02:03
    ");
}

#[test]
fn a_restart_inside_the_grace_extends_it_without_recording_a_slot_twice() {
    let sim = check_outages(
        &[down("02:03", "02:20"), down("02:25", "02:40")],
        10,
        Some(hourly(&json!({}))),
        &[
            Ci("01:00", 0, Ok_, None),
            Sweep("02:20"),
            Sweep("02:40"),
            Ci("02:45", 0, Ok_, None),
        ],
        "
        01:00 ok => ok | ok next=02:00
        02:20 sweep => unknown 02:00 | ok next=02:00 until=02:30 | near outage 02:03
        02:40 sweep => unknown 02:00 | ok next=02:00 until=02:50 | near outage 02:25
        02:45 ok => ok | ok next=03:00
    ",
    );
    assert_eq!(sim.checkins.len(), 3, "ok, unknown 02:00 once, ok");
}

#[test]
fn an_open_refusal_window_defers_until_writes_are_accepted_and_a_grace_passed() {
    let refusing = Outage {
        from: at("02:03"),
        to: None,
        kind: OutageKind::Refusing,
    };
    check_outages(
        &[refusing],
        10,
        Some(hourly(&json!({}))),
        &[Ci("01:00", 0, Ok_, None), Sweep("02:06")],
        "
        01:00 ok => ok | ok next=02:00
        02:06 sweep => unknown 02:00 | ok next=02:00 until=02:16 | near outage 02:03
    ",
    );
}

#[test]
fn a_timeout_inside_the_outage_waits_for_the_grace() {
    // The run started at 01:00 times out at 01:30, inside the window: it gets until 01:50.
    check_outages(
        &[down("01:20", "01:40")],
        10,
        Some(hourly(&json!({}))),
        &[
            Ci("01:00", 1, Start, None),
            Sweep("01:40"),
            Ci("01:45", 1, Ok_, None),
        ],
        "
        01:00 in_progress#1 => in_progress (timeout 01:30) | ok next=02:00 runs=01:30
        01:40 sweep => in_progress (timeout 01:50) | ok next=02:00 runs=01:50 | near outage 01:20
        01:45 ok#1 => ok 2700000ms | ok next=02:00
    ",
    );
    check_outages(&[down("01:20", "01:40")], 10, Some(hourly(&json!({}))), &[
        Ci("01:00", 1, Start, None),
        Sweep("01:40"),
        Sweep("01:50"),
    ], "
        01:00 in_progress#1 => in_progress (timeout 01:30) | ok next=02:00 runs=01:30
        01:40 sweep => in_progress (timeout 01:50) | ok next=02:00 runs=01:50 | near outage 01:20
        01:50 sweep => timeout | error next=02:00 | OPENED timeout \"A timeout check-in was detected\" | near outage 01:20
    ");
}

#[test]
fn unknown_slots_are_no_failures_for_the_thresholds() {
    // Threshold 2: an error, then an outage. Had the unknown counted as a failure the incident
    // would open at the start of the grace; it opens with the missed at its end, counting the
    // error and the missed only.
    let monitor = hourly(&json!({"failure_issue_threshold": 2}));
    check_outages(&[down("02:03", "02:20")], 10, Some(monitor), &[
        Ci("01:00", 0, Err_, None),
        Sweep("02:20"),
        Sweep("02:30"),
    ], "
        01:00 error => error | ok next=02:00
        02:20 sweep => unknown 02:00 | ok next=02:00 until=02:30 | near outage 02:03
        02:30 sweep => missed (expected 02:00) | error next=03:00 | OPENED missed_checkin \"2 failed check-ins detected (1 missed, 1 error)\" | near outage 02:03
    ");
    // An ok within the grace ends the run of failures as usual; the unknown broke nothing.
    let monitor = hourly(&json!({"failure_issue_threshold": 2}));
    check_outages(
        &[down("02:03", "02:20")],
        10,
        Some(monitor),
        &[
            Ci("01:00", 0, Err_, None),
            Sweep("02:20"),
            Ci("02:25", 0, Err_, None),
        ],
        "
        01:00 error => error | ok next=02:00
        02:20 sweep => unknown 02:00 | ok next=02:00 until=02:30 | near outage 02:03
        02:25 error => error | error next=03:00 | OPENED error \"2 error check-ins detected\"
    ",
    );
}
