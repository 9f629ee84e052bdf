//! The `check_in` item: one report about one run of a monitored job.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A check-in as sent by any Sentry SDK, `sentry-cli`, or ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckIn {
    /// Client-generated id pairing `in_progress` with its end; nil or absent means "the newest
    /// `in_progress` of this monitor environment, else a new one".
    #[serde(
        default,
        with = "super::uuid_hex::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub check_in_id: Option<Uuid>,
    /// The monitor's slug.
    pub monitor_slug: String,
    /// What happened.
    pub status: CheckInStatus,
    /// Environment; the collector defaults it to `production`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Run duration in seconds; meaningful with `ok` and `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// When present, creates or updates the monitor (upsert).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_config: Option<MonitorConfig>,
    /// Trace context and the like, kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts: Option<Value>,
}

/// A check-in status. Anything unrecognised (`missed`, future values) reads as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckInStatus {
    /// The run started.
    InProgress,
    /// The run finished successfully.
    Ok,
    /// The run failed.
    Error,
    /// Any other value.
    #[serde(other)]
    Unknown,
}

/// `monitor_config`: the schedule and thresholds of a monitor, sent with a check-in to upsert it.
///
/// What our SDK writes here is always what Sentry accepts unchanged: whole minutes for
/// `checkin_margin` and `max_runtime`, interval units from `minute` up (Relay refuses a
/// whole check-in otherwise). When the configured value is finer, the standard fields carry it
/// rounded *up* (so Sentry never expects a job sooner than it runs) and [`exact`](Self::exact)
/// carries the value itself, for the Watchpost collector. See [`MonitorConfig::for_sentry`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// When the job is expected to run.
    pub schedule: MonitorSchedule,
    /// Minutes after the expected time before a check-in counts as missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkin_margin: Option<DurationSpec>,
    /// Minutes an `in_progress` may last before it times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime: Option<DurationSpec>,
    /// IANA timezone the crontab is evaluated in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Consecutive failures before an incident opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_issue_threshold: Option<u32>,
    /// Consecutive successes before an incident resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_threshold: Option<u32>,
    /// `user:<id>` or `team:<id>`; kept, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Watchpost extension, on the wire as `"watchpost"`: the exact schedule and durations
    /// where the standard fields above carry them rounded for Sentry. Sentry ignores it
    /// (Relay drops unknown fields of `monitor_config`); the Watchpost collector reads each
    /// value given here instead of the standard field's.
    #[serde(default, rename = "watchpost", skip_serializing_if = "Option::is_none")]
    pub exact: Option<ExactConfig>,
}

/// The `"watchpost"` member of `monitor_config`: values Sentry's fields cannot hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactConfig {
    /// The schedule, when it is a `second` interval that is not whole minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<MonitorSchedule>,
    /// The margin, when it is not whole minutes (a duration string such as `"90s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkin_margin: Option<DurationSpec>,
    /// The runtime limit, when it is not whole minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime: Option<DurationSpec>,
}

impl ExactConfig {
    fn is_empty(&self) -> bool {
        self.schedule.is_none() && self.checkin_margin.is_none() && self.max_runtime.is_none()
    }
}

impl MonitorConfig {
    /// A config for `schedule` with `checkin_margin` and `max_runtime`, written as Sentry
    /// accepts it unchanged: durations in whole minutes, rounded up, and a `second` interval
    /// as whole minutes, rounded up (a job checked more rarely by Sentry than it runs is never
    /// reported missed there). Whatever had to be rounded is also kept exactly in
    /// [`exact`](Self::exact), which the Watchpost collector reads and Sentry ignores.
    pub fn for_sentry(
        schedule: MonitorSchedule,
        checkin_margin: Option<std::time::Duration>,
        max_runtime: Option<std::time::Duration>,
    ) -> MonitorConfig {
        let mut exact = ExactConfig::default();
        let (schedule, exact_schedule) = schedule.for_sentry();
        exact.schedule = exact_schedule;
        let checkin_margin = checkin_margin.map(|d| {
            let (minutes, text) = DurationSpec::for_sentry(d);
            exact.checkin_margin = text;
            minutes
        });
        let max_runtime = max_runtime.map(|d| {
            let (minutes, text) = DurationSpec::for_sentry(d);
            exact.max_runtime = text;
            minutes
        });
        MonitorConfig {
            schedule,
            checkin_margin,
            max_runtime,
            timezone: None,
            failure_issue_threshold: None,
            recovery_threshold: None,
            owner: None,
            exact: (!exact.is_empty()).then_some(exact),
        }
    }
}

impl MonitorSchedule {
    /// Sentry's form of this schedule, and the exact one when Sentry's form rounds it: a
    /// `second` interval becomes minutes (exactly when it is whole minutes, else rounded up
    /// and kept exactly in the second value).
    pub fn for_sentry(self) -> (MonitorSchedule, Option<MonitorSchedule>) {
        match self {
            MonitorSchedule::Interval {
                value,
                unit: IntervalUnit::Second,
            } => {
                let minutes = MonitorSchedule::Interval {
                    value: value.div_ceil(60),
                    unit: IntervalUnit::Minute,
                };
                let exact = (!value.is_multiple_of(60)).then_some(self);
                (minutes, exact)
            }
            other => (other, None),
        }
    }
}

impl DurationSpec {
    /// `d` in whole minutes, rounded up, and — when that is not exact — `d` as a duration
    /// string (`"90s"`, `"1500ms"`) for the collector.
    pub fn for_sentry(d: std::time::Duration) -> (DurationSpec, Option<DurationSpec>) {
        let nanos = d.as_nanos();
        let minute = 60 * 1_000_000_000u128;
        let whole = nanos.div_ceil(minute);
        // Every duration the SDK takes (at most 28 days) is far below 2^53 minutes.
        let minutes = DurationSpec::Minutes(whole as f64);
        if nanos.is_multiple_of(minute) {
            return (minutes, None);
        }
        let text = if d.subsec_nanos() == 0 {
            format!("{}s", d.as_secs())
        } else if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", d.as_millis())
        } else {
            format!("{nanos}ns")
        };
        (minutes, Some(DurationSpec::Text(text)))
    }
}

/// A schedule: `{"type":"crontab","value":"0 * * * *"}` or
/// `{"type":"interval","value":10,"unit":"minute"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MonitorSchedule {
    /// A 5-field crontab or an `@hourly`-style alias.
    Crontab {
        /// The expression.
        value: String,
    },
    /// Every `value` `unit`s, counted from the last check-in.
    Interval {
        /// How many units.
        value: u64,
        /// Which unit.
        unit: IntervalUnit,
    },
}

/// Interval units; `second` is a Watchpost extension (Sentry starts at `minute`; our SDK sends
/// it only in [`ExactConfig`], see [`MonitorConfig::for_sentry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalUnit {
    /// Seconds (Watchpost extension).
    Second,
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Calendar days in the monitor's timezone.
    Day,
    /// Calendar weeks in the monitor's timezone.
    Week,
    /// Calendar months in the monitor's timezone.
    Month,
    /// Calendar years in the monitor's timezone.
    Year,
}

impl IntervalUnit {
    /// The unit's wire name: `second`, `minute`, … `year`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntervalUnit::Second => "second",
            IntervalUnit::Minute => "minute",
            IntervalUnit::Hour => "hour",
            IntervalUnit::Day => "day",
            IntervalUnit::Week => "week",
            IntervalUnit::Month => "month",
            IntervalUnit::Year => "year",
        }
    }

    /// Parses a wire name, case-insensitively; plural forms (`minutes`) are accepted too.
    pub fn parse(name: &str) -> Option<IntervalUnit> {
        let name = name.trim().to_ascii_lowercase();
        let singular = name.strip_suffix('s').unwrap_or(&name);
        Some(match singular {
            "second" => IntervalUnit::Second,
            "minute" => IntervalUnit::Minute,
            "hour" => IntervalUnit::Hour,
            "day" => IntervalUnit::Day,
            "week" => IntervalUnit::Week,
            "month" => IntervalUnit::Month,
            "year" => IntervalUnit::Year,
            _ => return None,
        })
    }

    /// Length in seconds; months and years as their Gregorian averages. For bounds checks.
    pub fn approx_secs(self) -> u64 {
        match self {
            IntervalUnit::Second => 1,
            IntervalUnit::Minute => 60,
            IntervalUnit::Hour => 3600,
            IntervalUnit::Day => 86_400,
            IntervalUnit::Week => 7 * 86_400,
            IntervalUnit::Month => 2_629_746,
            IntervalUnit::Year => 31_556_952,
        }
    }
}

/// A duration as Sentry sends it (minutes, fractional allowed here) or as a humantime string
/// such as `"90s"` (Watchpost extension).
///
/// Whole minutes are written as an integer (`5`, not `5.0`): Sentry and `sentry-types` read these
/// fields as unsigned integers. Fractional minutes are written as a float; the Watchpost collector
/// accepts them, Relay rejects the whole check-in. Our SDK writes only whole minutes here and
/// a duration string in [`ExactConfig`] (see [`MonitorConfig::for_sentry`]).
#[derive(Debug, Clone, PartialEq)]
pub enum DurationSpec {
    /// Minutes.
    Minutes(f64),
    /// A humantime string, validated by the collector.
    Text(String),
}

impl Serialize for DurationSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // Below 2^53 every whole f64 converts to u64 exactly.
            DurationSpec::Minutes(m) if m.fract() == 0.0 && (0.0..9.0e15).contains(m) => {
                s.serialize_u64(*m as u64)
            }
            DurationSpec::Minutes(m) => s.serialize_f64(*m),
            DurationSpec::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_f64()
                .map(DurationSpec::Minutes)
                .ok_or_else(|| serde::de::Error::custom("duration out of range")),
            Value::String(s) => Ok(DurationSpec::Text(s)),
            other => Err(serde::de::Error::custom(format!(
                "expected minutes as a number or a duration string like \"90s\", got {other}"
            ))),
        }
    }
}

impl CheckIn {
    /// A check-in for `slug` with `status` and nothing else set.
    pub fn new(slug: impl Into<String>, status: CheckInStatus) -> Self {
        CheckIn {
            check_in_id: None,
            monitor_slug: slug.into(),
            status,
            environment: None,
            duration: None,
            monitor_config: None,
            contexts: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_on_input() {
        let json = r#"{"type":"check_in","monitor_slug":"m","check_in_id":"3ad871db-fc80-4c93-bd54-85af1060f1f4",
            "status":"missed","duration":null,"release":"x","monitor_config":{"schedule":{"type":"interval","value":10,"unit":"second"},
            "checkin_margin":"90s","max_runtime":1.5,"alert_rule_id":null}}"#;
        let c: CheckIn = serde_json::from_str(json).unwrap();
        assert_eq!(c.status, CheckInStatus::Unknown);
        assert_eq!(
            c.check_in_id.unwrap().simple().to_string(),
            "3ad871dbfc804c93bd5485af1060f1f4"
        );
        let config = c.monitor_config.unwrap();
        assert_eq!(
            config.schedule,
            MonitorSchedule::Interval {
                value: 10,
                unit: IntervalUnit::Second
            }
        );
        assert_eq!(
            config.checkin_margin,
            Some(DurationSpec::Text("90s".into()))
        );
        assert_eq!(config.max_runtime, Some(DurationSpec::Minutes(1.5)));
    }

    #[test]
    fn writes_ids_as_sentry_does() {
        let mut c = CheckIn::new("job", CheckInStatus::InProgress);
        c.check_in_id = Some(Uuid::from_u128(0xa460c25ff2554577b920fcfacae4e5eb));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"check_in_id":"a460c25ff2554577b920fcfacae4e5eb","monitor_slug":"job","status":"in_progress"}"#
        );
    }

    #[test]
    fn whole_minutes_are_written_as_integers() {
        let json = |d: DurationSpec| serde_json::to_string(&d).unwrap();
        assert_eq!(json(DurationSpec::Minutes(5.0)), "5");
        assert_eq!(json(DurationSpec::Minutes(1.5)), "1.5");
        assert_eq!(json(DurationSpec::Text("90s".into())), r#""90s""#);
    }

    #[test]
    fn for_sentry_rounds_up_and_keeps_the_exact_values_aside() {
        use std::time::Duration;
        let config = MonitorConfig::for_sentry(
            MonitorSchedule::Interval {
                value: 90,
                unit: IntervalUnit::Second,
            },
            Some(Duration::from_secs(30)),
            Some(Duration::from_millis(61_500)),
        );
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            serde_json::json!({
                "schedule": {"type": "interval", "value": 2, "unit": "minute"},
                "checkin_margin": 1,
                "max_runtime": 2,
                "watchpost": {
                    "schedule": {"type": "interval", "value": 90, "unit": "second"},
                    "checkin_margin": "30s",
                    "max_runtime": "61500ms"
                }
            })
        );
        // Whole minutes need nothing aside.
        let config = MonitorConfig::for_sentry(
            MonitorSchedule::Interval {
                value: 120,
                unit: IntervalUnit::Second,
            },
            Some(Duration::from_secs(300)),
            None,
        );
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            serde_json::json!({
                "schedule": {"type": "interval", "value": 2, "unit": "minute"},
                "checkin_margin": 5
            })
        );
        let back: MonitorConfig = serde_json::from_str(
            r#"{"schedule":{"type":"crontab","value":"* * * * *"},"checkin_margin":1,
                "watchpost":{"checkin_margin":"30s"}}"#,
        )
        .unwrap();
        assert_eq!(
            back.exact.unwrap().checkin_margin,
            Some(DurationSpec::Text("30s".into()))
        );
    }

    #[test]
    fn rejects_bad_ids_with_a_reason() {
        let err = serde_json::from_str::<CheckIn>(
            r#"{"check_in_id":"xyz","monitor_slug":"m","status":"ok"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid UUID `xyz`"), "{err}");
    }
}
