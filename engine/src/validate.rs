//! Input validation: slugs, environments, timezones, durations, thresholds.
//! Every error names the field and says what would be accepted, so ingest and the API can hand
//! it to a person verbatim. Pure string and number checks; never touches state or a clock.

use std::time::Duration;

use chrono_tz::Tz;
use serde_json::Value;

/// Longest slug kept, in characters (Sentry's `MAX_SLUG_LENGTH`).
pub const MAX_SLUG_LEN: usize = 50;
/// Longest environment name accepted, in characters (Relay's `ENVIRONMENT_LENGTH`).
pub const MAX_ENVIRONMENT_LEN: usize = 64;
/// Environment used when a check-in names none.
pub const DEFAULT_ENVIRONMENT: &str = "production";
/// Largest `failure_issue_threshold` / `recovery_threshold` (Sentry's `MAX_THRESHOLD`).
pub const MAX_THRESHOLD: u32 = 720;
/// Largest `checkin_margin` and `max_runtime`: 28 days (Sentry's `MAX_MARGIN` / `MAX_TIMEOUT`).
pub const MAX_CONFIG_DURATION: Duration = Duration::from_secs(28 * 24 * 3600);
/// Longest run duration a check-in may report: `i32::MAX` milliseconds, about 24.8 days, as in
/// Sentry.
pub const MAX_CHECKIN_DURATION_MS: u64 = 2_147_483_647;

/// A monitor configuration or identity that cannot be accepted.
///
/// `Display` is a sentence for a person: it names the field, the offending value and what would
/// be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The crontab expression does not parse.
    #[error("schedule `{value}` is not a valid crontab expression: {reason}")]
    Crontab {
        /// The expression as given.
        value: String,
        /// What the parser objected to.
        reason: String,
    },
    /// The crontab expression has a seconds or year field.
    #[error(
        "schedule `{value}` has {fields} fields; only 5-field crontab syntax (minute hour day-of-month month day-of-week) is supported"
    )]
    CrontabFields {
        /// The expression as given.
        value: String,
        /// How many fields it has.
        fields: usize,
    },
    /// An `@` word other than Sentry's six lowercase aliases (e.g. `@reboot`, `@DAILY`).
    #[error("schedule `{value}` is not supported: {reason}")]
    CrontabAlias {
        /// The alias as given.
        value: String,
        /// Which aliases are accepted (and the lowercase spelling, if that is all that is wrong).
        reason: String,
    },
    /// The crontab never matches any time (e.g. `0 0 30 2 *`).
    #[error(
        "schedule `{value}` never matches any date: its day-of-month and day-of-week fields never select the same day (when either starts with `*`, a day must match both)"
    )]
    CrontabNeverMatches {
        /// The expression as given.
        value: String,
    },
    /// An interval of zero or an absurdly long one.
    #[error(
        "schedule interval {value} {unit} is out of range; the value must be greater than 0 and the interval at most 100 years"
    )]
    Interval {
        /// The number of units given.
        value: u64,
        /// The unit name.
        unit: String,
    },
    /// The schedule has an unknown shape.
    #[error("schedule {detail}")]
    ScheduleShape {
        /// What is wrong with it.
        detail: String,
    },
    /// A monitor is being created without a schedule.
    #[error(
        "schedule is required to create a monitor: give a crontab such as \"0 3 * * *\" or an interval such as {{\"type\":\"interval\",\"value\":10,\"unit\":\"minute\"}}"
    )]
    MissingSchedule,
    /// Not an IANA timezone name.
    #[error(
        "timezone `{value}` is not a known IANA timezone name; use a name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\""
    )]
    Timezone {
        /// The name as given.
        value: String,
    },
    /// A threshold outside `1..=720`.
    #[error("{field} must be a whole number between 1 and 720, got {value}")]
    Threshold {
        /// `failure_issue_threshold` or `recovery_threshold`.
        field: &'static str,
        /// The value given, as written.
        value: String,
    },
    /// A duration field that does not parse or is out of range.
    #[error(
        "{field} {problem}, got {value}; give minutes as a number (fractional allowed, e.g. 1.5) or a duration string such as \"90s\" or \"5m\", greater than 0 and at most 28 days"
    )]
    Duration {
        /// `checkin_margin` or `max_runtime`.
        field: &'static str,
        /// The value given, as written.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A field that monitor configuration does not have.
    #[error(
        "unknown monitor config field `{field}`; known fields are schedule, schedule_type, interval, timezone, checkin_margin, max_runtime, failure_issue_threshold, recovery_threshold and owner"
    )]
    UnknownField {
        /// The field name.
        field: String,
    },
    /// The slug is unusable.
    #[error(
        "monitor slug `{value}` {problem}; slugs use lowercase letters, digits, `_` and `-` (at most 50 characters)"
    )]
    Slug {
        /// The slug as given.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The environment name is unusable.
    #[error(
        "environment {value:?} {problem}; an environment name is 1 to 64 characters without spaces, `/` or control characters, and not `none`, `.` or `..` (e.g. `production` or `staging-eu`)"
    )]
    Environment {
        /// The name as given.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// Normalizes a monitor slug exactly as a check-in's slug reaches Sentry's database: Relay cuts
/// it to its first 50 characters, then Sentry's consumer takes
/// `django.utils.text.slugify(slug)[:50].strip("-")`.
///
/// That is: the first 50 characters are kept (so punctuation that slugify would drop still
/// counts towards them); characters outside ASCII letters, digits, `_`, `-` and whitespace are
/// dropped (`"db.backup"` → `"dbbackup"`; accented Latin letters lose their accent, Unicode
/// spaces are spaces, other non-ASCII characters are dropped), letters are lowercased, runs of
/// whitespace and `-` become one `-`, leading and trailing `-`/`_` are trimmed, and the result
/// is cut to 50 characters again. An all-digit slug (`12345`) is kept, as Sentry's check-in
/// upsert keeps it; an empty result is rejected.
pub fn normalize_slug(raw: &str) -> Result<String, ConfigError> {
    let mut slug = String::with_capacity(raw.len().min(4 * MAX_SLUG_LEN));
    let mut pending_dash = false;
    for c in raw.chars().take(MAX_SLUG_LEN).flat_map(fold_to_ascii) {
        if c.is_ascii_alphanumeric() || c == '_' {
            if pending_dash && !slug.is_empty() {
                slug.push('-');
            }
            pending_dash = false;
            slug.push(c.to_ascii_lowercase());
        } else if c == '-' || is_python_space(c) {
            pending_dash = true;
        }
    }
    // slugify strips `-` and `_` at both ends; leading dashes never got pushed above.
    let slug = slug.trim_matches(['-', '_']);
    // All remaining characters are ASCII, so byte and character counts agree.
    let slug = slug[..slug.len().min(MAX_SLUG_LEN)].trim_matches('-');
    let error = |problem| ConfigError::Slug {
        value: raw.to_owned(),
        problem,
    };
    if slug.is_empty() {
        return Err(error("has no letters or digits"));
    }
    Ok(slug.to_owned())
}

/// Python's `\s` on the ASCII that slugify has left: ASCII whitespace and the separators
/// `\x1c`-`\x1f`, which Rust does not count as whitespace.
fn is_python_space(c: char) -> bool {
    c.is_ascii_whitespace()
        || ('\u{b}'..='\u{d}').contains(&c)
        || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// What slugify's NFKD-then-ASCII step leaves of a character: itself if ASCII, the base letter
/// of an accented Latin letter, nothing for anything else. (Covers Latin-1 and Latin
/// Extended-A, where the accented letters Sentry users write live.)
fn fold_to_ascii(c: char) -> impl Iterator<Item = char> {
    const LATIN_1: &[u8; 64] = b"AAAAAA.CEEEEIIII.NOOOOO..UUUUY..aaaaaa.ceeeeiiii.nooooo..uuuuy.y";
    const EXTENDED_A: &[u8; 128] = b"AaAaAaCcCcCcCcDd..EeEeEeEeEeGgGgGgGgHh..IiIiIiIiI.IiJjKk.LlLlLlLl..NnNnNnn..OoOoOo..RrRrRrSsSsSsSsTtTt..UuUuUuUuUuUuWwYyYZzZzZzs";
    let (first, second) = match u32::from(c) {
        0..=0x7f => (Some(c), None),
        // Spaces whose compatibility decomposition is a plain space (no-break, en to hair,
        // narrow no-break, medium mathematical, ideographic).
        0xa0 | 0x2000..=0x200a | 0x202f | 0x205f | 0x3000 => (Some(' '), None),
        // U+0132 and U+0133 are the ligatures IJ and ij.
        0x132 => (Some('I'), Some('J')),
        0x133 => (Some('i'), Some('j')),
        code @ 0xc0..=0xff => (table_letter(LATIN_1, code - 0xc0), None),
        code @ 0x100..=0x17f => (table_letter(EXTENDED_A, code - 0x100), None),
        _ => (None, None),
    };
    first.into_iter().chain(second)
}

fn table_letter(table: &[u8], index: u32) -> Option<char> {
    let letter = table[index as usize];
    (letter != b'.').then_some(char::from(letter))
}

/// Validates an environment name; `None` or an empty name means `"production"`.
///
/// Sentry's rule, as its SDK documentation states it: at most 64 characters, no spaces (any
/// whitespace), `/` or control characters (line breaks, form feed, tab: `sentry-release-parser`'s
/// `validate_environment`, which Relay applies), and not `none`, `.` or `..`. Sentry's own
/// check lets a plain space through although its documentation forbids it; we follow the
/// documentation, which is what SDK users are told, and so does `#[monitored_job]`.
pub fn normalize_environment(raw: Option<&str>) -> Result<String, ConfigError> {
    let name = match raw {
        None | Some("") => return Ok(DEFAULT_ENVIRONMENT.to_owned()),
        Some(name) => name,
    };
    let error = |problem| ConfigError::Environment {
        value: name.to_owned(),
        problem,
    };
    if name.chars().count() > MAX_ENVIRONMENT_LEN {
        return Err(error("is longer than 64 characters"));
    }
    if name.contains('/') {
        return Err(error("contains `/`"));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(error("contains a space or a line break"));
    }
    if name.chars().any(char::is_control) {
        return Err(error("contains a control character"));
    }
    if name.eq_ignore_ascii_case("none") || name == "." || name == ".." {
        return Err(error("is reserved"));
    }
    Ok(name.to_owned())
}

/// Parses an IANA timezone name such as `"Europe/Berlin"`.
pub fn parse_timezone(name: &str) -> Result<Tz, ConfigError> {
    name.parse::<Tz>().map_err(|_| ConfigError::Timezone {
        value: name.to_owned(),
    })
}

/// Parses `checkin_margin` / `max_runtime`: minutes as a JSON number (fractional allowed, as in
/// Sentry) or a string, either of minutes (`"5"`, as query strings carry them) or humantime
/// (`"90s"`, `"1h 30m"`; Watchpost extension).
///
/// Returns `Ok(None)` for `null`, and for a numeric `0` margin, which Sentry treats as "use the
/// default" (`checkin_margin` 0 becomes 1); a numeric `0` runtime is refused, as Sentry's
/// validator does (minimum 1). Any other value must be greater than 0 and at most 28 days.
/// `field` names the field in the error.
pub fn parse_minutes_or_humantime(
    field: &'static str,
    value: &Value,
) -> Result<Option<Duration>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(minutes) => parse_minutes(field, minutes),
            None => Err(duration_error(field, value, "is not a number")),
        },
        Value::String(text) => parse_duration_text(field, text),
        _ => Err(duration_error(
            field,
            value,
            "is neither a number nor a string",
        )),
    }
}

/// [`parse_minutes_or_humantime`] for a number of minutes.
pub(super) fn parse_minutes(
    field: &'static str,
    minutes: f64,
) -> Result<Option<Duration>, ConfigError> {
    let error = |problem| ConfigError::Duration {
        field,
        value: minutes.to_string(),
        problem,
    };
    if !minutes.is_finite() || minutes < 0.0 {
        return Err(error("must be a positive number"));
    }
    if minutes == 0.0 {
        return zero_minutes(field);
    }
    let seconds = minutes * 60.0;
    if seconds > MAX_CONFIG_DURATION.as_secs_f64() {
        return Err(error("is longer than 28 days"));
    }
    let duration = Duration::from_secs_f64(seconds);
    if duration.is_zero() {
        return Err(error("is too short"));
    }
    Ok(Some(duration))
}

/// A numeric `0`, as Sentry's validator takes it: `checkin_margin` 0 becomes its default (1
/// minute; Sentry coerces 0 to 1 for the SDKs that still send it), while `max_runtime` has a
/// minimum of 1 and 0 is refused (in a check-in's `monitor_config` that refuses the check-in,
/// like any invalid config: `docs/deviations-from-sentry-crons.md`).
fn zero_minutes(field: &'static str) -> Result<Option<Duration>, ConfigError> {
    if field == "max_runtime" {
        return Err(ConfigError::Duration {
            field,
            value: "0".to_owned(),
            problem: "must be at least 1 minute (leave it out, or send null, for the default of 30 minutes)",
        });
    }
    Ok(None)
}

/// [`parse_minutes_or_humantime`] for a string: minutes if it is a number, else humantime.
/// Unlike a numeric `0`, an explicit zero duration string is an error.
pub(super) fn parse_duration_text(
    field: &'static str,
    text: &str,
) -> Result<Option<Duration>, ConfigError> {
    let text = text.trim();
    if let Ok(minutes) = text.parse::<f64>() {
        return parse_minutes(field, minutes);
    }
    let error = |problem| ConfigError::Duration {
        field,
        value: format!("{text:?}"),
        problem,
    };
    let duration = humantime::parse_duration(text).map_err(|_| error("is not a duration"))?;
    if duration.is_zero() {
        return Err(error("must be greater than 0"));
    }
    if duration > MAX_CONFIG_DURATION {
        return Err(error("is longer than 28 days"));
    }
    Ok(Some(duration))
}

fn duration_error(field: &'static str, value: &Value, problem: &'static str) -> ConfigError {
    ConfigError::Duration {
        field,
        value: value.to_string(),
        problem,
    }
}

/// Checks that a configured duration is in `(0, 28 days]`.
pub(super) fn check_duration(field: &'static str, duration: Duration) -> Result<(), ConfigError> {
    let problem = if duration.is_zero() {
        "must be greater than 0"
    } else if duration > MAX_CONFIG_DURATION {
        "is longer than 28 days"
    } else {
        return Ok(());
    };
    Err(ConfigError::Duration {
        field,
        value: humantime::format_duration(duration).to_string(),
        problem,
    })
}

/// Checks a threshold value given as an integer of any width: 1..=720.
pub fn parse_threshold(field: &'static str, value: i64) -> Result<u32, ConfigError> {
    match u32::try_from(value) {
        Ok(v) if (1..=MAX_THRESHOLD).contains(&v) => Ok(v),
        _ => Err(ConfigError::Threshold {
            field,
            value: value.to_string(),
        }),
    }
}
