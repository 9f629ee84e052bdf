//! Monitor configuration: schedules, timezone, margin, runtime and thresholds, and the partial
//! updates ("upserts") that check-ins and the API apply to it.
//! Construction validates; a `MonitorConfig` that passed `validate` is safe for schedule math.
//! Never reads a clock or does I/O.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::crontab::{self, CrontabError, Spec};
use super::validate::{self, ConfigError};

/// Default `checkin_margin`: 1 minute.
pub const DEFAULT_CHECKIN_MARGIN: Duration = Duration::from_secs(60);
/// Default `max_runtime`: 30 minutes.
pub const DEFAULT_MAX_RUNTIME: Duration = Duration::from_secs(30 * 60);
/// Default timezone.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// When a job is expected to run.
///
/// Serialized in Sentry's object form: `{"type":"crontab","value":"0 3 * * *"}` or
/// `{"type":"interval","value":10,"unit":"minute"}`. Deserialization validates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ScheduleRepr", into = "ScheduleRepr")]
pub enum Schedule {
    /// A normalized 5-field crontab (aliases expanded, whitespace collapsed), evaluated in the
    /// monitor's timezone. Build it with [`Schedule::crontab`].
    Crontab(String),
    /// Every `value` `unit`s, counted from the last check-in. Build it with
    /// [`Schedule::interval`].
    Interval {
        /// How many units; greater than 0.
        value: u32,
        /// Which unit.
        unit: IntervalUnit,
    },
}

/// Interval units: the wire's (`watchpost_protocol::IntervalUnit`), one type for the check-in
/// that carries it and the monitor that keeps it.
pub use watchpost_protocol::IntervalUnit;

/// A monitor's configuration, shared by the state of each of its environments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// When the job is expected to run.
    pub schedule: Schedule,
    /// IANA timezone the schedule is evaluated in; `"UTC"` by default.
    pub timezone: String,
    /// How long after the expected time a check-in may arrive before the run counts as missed.
    pub checkin_margin: Duration,
    /// How long an `in_progress` run may last before it times out.
    pub max_runtime: Duration,
    /// Consecutive failed check-ins that open an incident (1..=720).
    pub failure_issue_threshold: u32,
    /// Consecutive ok check-ins that resolve an incident (1..=720).
    pub recovery_threshold: u32,
}

/// A partial configuration: what a check-in's `monitor_config` or an API `PATCH` sets.
///
/// `None` fields keep the current value when applied to an existing monitor and take the
/// default when a monitor is created. Sentry's upsert does the same: it updates only the keys
/// present in the payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigPatch {
    /// New schedule; required to create a monitor.
    pub schedule: Option<Schedule>,
    /// New IANA timezone (validated).
    pub timezone: Option<String>,
    /// New margin.
    pub checkin_margin: Option<Duration>,
    /// New maximum runtime.
    pub max_runtime: Option<Duration>,
    /// New failure threshold.
    pub failure_issue_threshold: Option<u32>,
    /// New recovery threshold.
    pub recovery_threshold: Option<u32>,
}

impl Schedule {
    /// Parses and normalizes a crontab as Sentry does: exactly 5 fields, or one of `@yearly`,
    /// `@annually`, `@monthly`, `@weekly`, `@daily`, `@hourly` (lowercase, expanded). Seconds
    /// and year fields, `@reboot`, `?`, `W` (other than `LW`) and expressions that never match
    /// are rejected.
    pub fn crontab(expr: &str) -> Result<Schedule, ConfigError> {
        // Parsed once per distinct expression (see [`cached_crontab`]), so validating
        // an incoming `monitor_config` and decoding a stored one cost a map lookup.
        let parsed = cached_crontab(expr)?;
        Ok(Schedule::Crontab(parsed.normalized.clone()))
    }

    /// An interval of `value` `unit`s; `value` must be greater than 0 and the interval at most
    /// 100 years.
    pub fn interval(value: u64, unit: IntervalUnit) -> Result<Schedule, ConfigError> {
        const HUNDRED_YEARS: u64 = 100 * 31_556_952;
        match u32::try_from(value) {
            Ok(v) if v > 0 && value.saturating_mul(unit.approx_secs()) <= HUNDRED_YEARS => {
                Ok(Schedule::Interval { value: v, unit })
            }
            _ => Err(ConfigError::Interval {
                value,
                unit: unit.as_str().to_owned(),
            }),
        }
    }

    /// Re-checks the invariants of a schedule built by hand.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Schedule::Crontab(expr) => Schedule::crontab(expr).map(drop),
            Schedule::Interval { value, unit } => {
                Schedule::interval(u64::from(*value), *unit).map(drop)
            }
        }
    }
}

impl fmt::Display for Schedule {
    /// `0 3 * * *` or `every 10 minute`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Crontab(expr) => f.write_str(expr),
            Schedule::Interval { value, unit } => write!(f, "every {value} {}", unit.as_str()),
        }
    }
}

impl MonitorConfig {
    /// A configuration with `schedule` and every other field at its default.
    pub fn new(schedule: Schedule) -> MonitorConfig {
        MonitorConfig {
            schedule,
            timezone: DEFAULT_TIMEZONE.to_owned(),
            checkin_margin: DEFAULT_CHECKIN_MARGIN,
            max_runtime: DEFAULT_MAX_RUNTIME,
            failure_issue_threshold: 1,
            recovery_threshold: 1,
        }
    }

    /// Checks every field against its bounds. The engine calls this before it accepts a
    /// configuration, so a `MonitorConfig` built by hand is checked too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.schedule.validate()?;
        validate::parse_timezone(&self.timezone)?;
        validate::check_duration("checkin_margin", self.checkin_margin)?;
        validate::check_duration("max_runtime", self.max_runtime)?;
        validate::parse_threshold(
            "failure_issue_threshold",
            i64::from(self.failure_issue_threshold),
        )?;
        validate::parse_threshold("recovery_threshold", i64::from(self.recovery_threshold))?;
        Ok(())
    }

    /// The timezone, parsed. Falls back to UTC for a name that does not parse, which
    /// [`MonitorConfig::validate`] rules out.
    pub fn tz(&self) -> Tz {
        self.timezone.parse().unwrap_or(Tz::UTC)
    }
}

impl ConfigPatch {
    /// Converts the `monitor_config` of a check-in from the wire, validating every field.
    /// A numeric `0` margin means "default", as in Sentry; a `0` runtime is refused, as Sentry's
    /// validator does.
    pub fn from_protocol(
        config: &watchpost_protocol::MonitorConfig,
    ) -> Result<ConfigPatch, ConfigError> {
        use watchpost_protocol::{DurationSpec, MonitorSchedule};
        let duration = |field, spec: &Option<DurationSpec>| match spec {
            None => Ok(None),
            Some(DurationSpec::Minutes(minutes)) => validate::parse_minutes(field, *minutes),
            Some(DurationSpec::Text(text)) => validate::parse_duration_text(field, text),
        };
        let threshold = |field, value: Option<u32>| {
            value
                .map(|v| validate::parse_threshold(field, i64::from(v)))
                .transpose()
        };
        // Our SDK sends Sentry-valid, rounded values in the standard fields and the exact
        // ones in the `watchpost` member, which wins where it gives a value.
        let exact = config.exact.clone().unwrap_or_default();
        let schedule = exact.schedule.as_ref().unwrap_or(&config.schedule);
        let checkin_margin = exact
            .checkin_margin
            .or_else(|| config.checkin_margin.clone());
        let max_runtime = exact.max_runtime.or_else(|| config.max_runtime.clone());
        Ok(ConfigPatch {
            schedule: Some(match schedule {
                MonitorSchedule::Crontab { value } => Schedule::crontab(value)?,
                MonitorSchedule::Interval { value, unit } => Schedule::interval(*value, *unit)?,
            }),
            timezone: parse_optional_timezone(config.timezone.as_deref())?,
            checkin_margin: duration("checkin_margin", &checkin_margin)?,
            max_runtime: duration("max_runtime", &max_runtime)?,
            failure_issue_threshold: threshold(
                "failure_issue_threshold",
                config.failure_issue_threshold,
            )?,
            recovery_threshold: threshold("recovery_threshold", config.recovery_threshold)?,
        })
    }

    /// Parses a JSON object as the management API and monitors-as-code receive it.
    ///
    /// Accepts Sentry's forms — `schedule` as an object (`{"type":"crontab","value":…}`), a
    /// crontab string (with `schedule_type` 1 or `"crontab"`, or none), or `[5, "minute"]`
    /// (with `schedule_type` 2 or `"interval"`) — plus `interval = "10m"` as a humantime string
    /// (Watchpost extension). `checkin_margin` and `max_runtime` as in
    /// [`parse_minutes_or_humantime`](super::validate::parse_minutes_or_humantime). `owner` and
    /// `alert_rule_id` are accepted and ignored; any other field is an error.
    pub fn from_json(value: &Value) -> Result<ConfigPatch, ConfigError> {
        let Value::Object(fields) = value else {
            return Err(ConfigError::ScheduleShape {
                detail: format!("config must be a JSON object, got {value}"),
            });
        };
        let mut patch = ConfigPatch::default();
        for (name, value) in fields {
            match name.as_str() {
                "schedule" => {
                    if let Some(schedule) = schedule_from_json(value)? {
                        patch.schedule = Some(schedule);
                    }
                }
                "interval" if !value.is_null() => {
                    if fields.get("schedule").is_some_and(|s| !s.is_null()) {
                        return Err(ConfigError::ScheduleShape {
                            detail: "and interval are both given; give one of them".to_owned(),
                        });
                    }
                    patch.schedule = Some(interval_from_text(value)?);
                }
                "timezone" => {
                    patch.timezone = match value {
                        Value::Null => None,
                        Value::String(name) => parse_optional_timezone(Some(name))?,
                        other => {
                            return Err(ConfigError::Timezone {
                                value: other.to_string(),
                            });
                        }
                    }
                }
                "checkin_margin" => {
                    patch.checkin_margin =
                        validate::parse_minutes_or_humantime("checkin_margin", value)?;
                }
                "max_runtime" => {
                    patch.max_runtime = validate::parse_minutes_or_humantime("max_runtime", value)?;
                }
                "failure_issue_threshold" => {
                    patch.failure_issue_threshold =
                        threshold_from_json("failure_issue_threshold", value)?;
                }
                "recovery_threshold" => {
                    patch.recovery_threshold = threshold_from_json("recovery_threshold", value)?;
                }
                "schedule_type" | "owner" | "alert_rule_id" | "interval" => {}
                other => {
                    return Err(ConfigError::UnknownField {
                        field: other.to_owned(),
                    });
                }
            }
        }
        Ok(patch)
    }

    /// The configuration of a new monitor: this patch over the defaults. Fails without a
    /// schedule or when a field is out of range.
    pub fn to_config(&self) -> Result<MonitorConfig, ConfigError> {
        let schedule = self.schedule.clone().ok_or(ConfigError::MissingSchedule)?;
        let config = self.apply_to(&MonitorConfig::new(schedule))?;
        config.validate()?;
        Ok(config)
    }

    /// This patch applied over `base`, validated (unless it equals `base`).
    pub fn apply_to(&self, base: &MonitorConfig) -> Result<MonitorConfig, ConfigError> {
        let config = MonitorConfig {
            schedule: self
                .schedule
                .clone()
                .unwrap_or_else(|| base.schedule.clone()),
            timezone: self
                .timezone
                .clone()
                .unwrap_or_else(|| base.timezone.clone()),
            checkin_margin: self.checkin_margin.unwrap_or(base.checkin_margin),
            max_runtime: self.max_runtime.unwrap_or(base.max_runtime),
            failure_issue_threshold: self
                .failure_issue_threshold
                .unwrap_or(base.failure_issue_threshold),
            recovery_threshold: self.recovery_threshold.unwrap_or(base.recovery_threshold),
        };
        // An upsert that changes nothing (SDKs send their config with every check-in) needs no
        // second validation.
        if config != *base {
            config.validate()?;
        }
        Ok(config)
    }
}

/// Sentry's object form of a schedule, as persisted and as sent on the wire.
#[derive(Serialize, Deserialize)]
struct ScheduleRepr {
    #[serde(rename = "type")]
    kind: ScheduleKind,
    value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<IntervalUnit>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ScheduleKind {
    Crontab,
    Interval,
}

impl TryFrom<ScheduleRepr> for Schedule {
    type Error = ConfigError;

    fn try_from(repr: ScheduleRepr) -> Result<Self, Self::Error> {
        match repr.kind {
            ScheduleKind::Crontab => match &repr.value {
                Value::String(expr) => Schedule::crontab(expr),
                other => Err(shape(format!(
                    "crontab value must be a string, got {other}"
                ))),
            },
            ScheduleKind::Interval => {
                let unit = repr.unit.ok_or_else(|| {
                    shape("of type interval needs a unit (second, minute, hour, day, week, month or year)".to_owned())
                })?;
                interval_from_parts(&repr.value, unit)
            }
        }
    }
}

impl From<Schedule> for ScheduleRepr {
    fn from(schedule: Schedule) -> Self {
        match schedule {
            Schedule::Crontab(expr) => ScheduleRepr {
                kind: ScheduleKind::Crontab,
                value: Value::String(expr),
                unit: None,
            },
            Schedule::Interval { value, unit } => ScheduleRepr {
                kind: ScheduleKind::Interval,
                value: Value::from(value),
                unit: Some(unit),
            },
        }
    }
}

/// Parses a crontab with the grammar Sentry accepts (`crontab.rs`, shared with
/// `#[monitored_job]`) into the normalized expression and its [`Spec`]: aliases expanded,
/// `?`, `W` and other extensions refused, and an expression whose day fields never select a
/// day refused (Sentry's validator cannot iterate it). Uncached; callers go through
/// [`cached_crontab`].
pub(super) fn parse_crontab(expr: &str) -> Result<(String, Spec), ConfigError> {
    crontab::check(expr).map_err(|error| crontab_error(expr, error))
}

/// The grammar's refusal as the [`ConfigError`] the API and ingest answer with.
fn crontab_error(expr: &str, error: CrontabError) -> ConfigError {
    let value = expr.to_owned();
    match error {
        CrontabError::Fields(fields) => ConfigError::CrontabFields { value, fields },
        CrontabError::Alias(_) => ConfigError::CrontabAlias {
            value,
            reason: error.to_string(),
        },
        CrontabError::NeverMatches => ConfigError::CrontabNeverMatches { value },
        other => ConfigError::Crontab {
            value,
            reason: other.to_string(),
        },
    }
}

fn shape(detail: String) -> ConfigError {
    ConfigError::ScheduleShape { detail }
}

/// `Some(canonical name)` for a timezone, `None` for an absent or empty one.
fn parse_optional_timezone(name: Option<&str>) -> Result<Option<String>, ConfigError> {
    match name {
        None | Some("") => Ok(None),
        Some(name) => Ok(Some(validate::parse_timezone(name)?.name().to_owned())),
    }
}

/// An interval from a JSON `value` (a whole number, or a string of digits) and a unit.
fn interval_from_parts(value: &Value, unit: IntervalUnit) -> Result<Schedule, ConfigError> {
    let n = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) => Schedule::interval(n, unit),
        None => Err(shape(format!(
            "interval value must be a whole number greater than 0, got {value}"
        ))),
    }
}

/// The `schedule` field in any of Sentry's forms.
fn schedule_from_json(value: &Value) -> Result<Option<Schedule>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::String(expr) => Schedule::crontab(expr).map(Some),
        Value::Array(parts) => match parts.as_slice() {
            [n, Value::String(unit)] => {
                let unit = IntervalUnit::parse(unit).ok_or_else(|| unknown_unit(unit))?;
                interval_from_parts(n, unit).map(Some)
            }
            _ => Err(shape(format!(
                "as a list must be [value, unit] such as [10, \"minute\"], got {value}"
            ))),
        },
        Value::Object(fields) => {
            let kind = fields.get("type").and_then(Value::as_str);
            let inner = fields.get("value").unwrap_or(&Value::Null);
            match kind {
                Some("crontab") => match inner {
                    Value::String(expr) => Schedule::crontab(expr).map(Some),
                    other => Err(shape(format!(
                        "crontab value must be a string, got {other}"
                    ))),
                },
                Some("interval") => {
                    let unit = match fields.get("unit") {
                        Some(Value::String(unit)) => {
                            IntervalUnit::parse(unit).ok_or_else(|| unknown_unit(unit))?
                        }
                        _ => return Err(unknown_unit("(missing)")),
                    };
                    interval_from_parts(inner, unit).map(Some)
                }
                _ => Err(shape(format!(
                    "type must be \"crontab\" or \"interval\", got {value}"
                ))),
            }
        }
        other => Err(shape(format!(
            "must be a crontab string, [value, unit] or an object, got {other}"
        ))),
    }
}

fn unknown_unit(unit: &str) -> ConfigError {
    shape(format!(
        "interval unit `{unit}` is not one of second, minute, hour, day, week, month, year"
    ))
}

/// `interval = "10m"`: a humantime string, expressed in the largest whole unit up to days.
fn interval_from_text(value: &Value) -> Result<Schedule, ConfigError> {
    let text = value.as_str().unwrap_or_default();
    let duration = humantime::parse_duration(text.trim()).map_err(|_| {
        shape(format!(
            "interval must be a duration string such as \"10m\" or \"1h\", got {value}"
        ))
    })?;
    if duration.subsec_nanos() != 0 {
        return Err(shape(format!(
            "interval {value} must be a whole number of seconds"
        )));
    }
    let secs = duration.as_secs();
    let (n, unit) = [
        (86_400, IntervalUnit::Day),
        (3600, IntervalUnit::Hour),
        (60, IntervalUnit::Minute),
    ]
    .into_iter()
    .find(|&(len, _)| secs % len == 0 && secs > 0)
    .map_or((secs, IntervalUnit::Second), |(len, unit)| {
        (secs / len, unit)
    });
    Schedule::interval(n, unit)
}

fn threshold_from_json(field: &'static str, value: &Value) -> Result<Option<u32>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(v) => validate::parse_threshold(field, v).map(Some),
            None => Err(ConfigError::Threshold {
                field,
                value: n.to_string(),
            }),
        },
        other => Err(ConfigError::Threshold {
            field,
            value: other.to_string(),
        }),
    }
}
/// A crontab expression, parsed and checked once.
#[derive(Debug)]
pub(super) struct ParsedCrontab {
    /// The normalized expression (aliases expanded, whitespace collapsed).
    pub(super) normalized: String,
    /// Which minutes, hours and days it selects.
    pub(super) spec: Spec,
}

/// How many distinct valid expressions the memo holds before it starts over. Real deployments
/// use a handful of schedules; the cap only bounds memory against a client sending many.
const CRONTAB_CACHE_CAP: usize = 4096;

/// Process-wide memo of [`parse_crontab`] for valid expressions, keyed by the expression as
/// given (normalized expressions, as stored, key themselves).
///
/// Memoization keeps the engine pure: the value for a key is a deterministic function of the
/// key alone, so every call returns what an uncached parse would (same inputs, same outputs),
/// with no I/O and no clock. Invalid expressions are not cached; they fail the same way each time.
static CRONTAB_CACHE: LazyLock<parking_lot::Mutex<HashMap<String, Arc<ParsedCrontab>>>> =
    LazyLock::new(|| parking_lot::Mutex::new(HashMap::new()));

/// [`parse_crontab`] (including its never-matches check), parsed at most once per distinct
/// valid expression while the memo holds it.
pub(super) fn cached_crontab(expr: &str) -> Result<Arc<ParsedCrontab>, ConfigError> {
    if let Some(hit) = CRONTAB_CACHE.lock().get(expr) {
        return Ok(Arc::clone(hit));
    }
    // Parse outside the lock; a concurrent miss on the same expression parses twice, harmlessly.
    let (normalized, spec) = parse_crontab(expr)?;
    let parsed = Arc::new(ParsedCrontab { normalized, spec });
    let mut cache = CRONTAB_CACHE.lock();
    if cache.len() >= CRONTAB_CACHE_CAP {
        cache.clear();
    }
    cache.insert(expr.to_owned(), Arc::clone(&parsed));
    Ok(parsed)
}
