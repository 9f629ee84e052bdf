//! What the argument values mean: slugs, crontabs, intervals, durations, timezones and
//! thresholds. Pure functions from the text a person wrote to the value the expansion emits,
//! or to a message telling that person what to fix. No `syn` here: spans are `args`' business.

use std::str::FromStr;
use std::time::Duration;

use watchpost_engine::crontab::{self, CrontabError};

/// The longest slug Sentry (and the collector) accept.
const MAX_SLUG_LEN: usize = 50;
/// The longest environment name Sentry accepts.
const MAX_ENVIRONMENT_LEN: usize = 64;
/// Bounds of `failure_issue_threshold` and `recovery_threshold` (Sentry's `MAX_THRESHOLD`).
pub(crate) const THRESHOLDS: std::ops::RangeInclusive<u64> = 1..=720;

/// How a duration is written, appended to duration errors.
const DURATION_HINT: &str = "write it like `30s`, `5m`, `2h` or `1h 30m`";

/// A unit of an interval schedule; mirrors `watchpost::__private::IntervalUnit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntervalUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
}

impl IntervalUnit {
    /// Largest first, so the first exact fit is the most readable unit.
    const LARGEST_FIRST: [(IntervalUnit, u64); 5] = [
        (IntervalUnit::Week, 7 * 24 * 3600),
        (IntervalUnit::Day, 24 * 3600),
        (IntervalUnit::Hour, 3600),
        (IntervalUnit::Minute, 60),
        (IntervalUnit::Second, 1),
    ];

    /// The variant name in `watchpost::__private::IntervalUnit`.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            IntervalUnit::Second => "Second",
            IntervalUnit::Minute => "Minute",
            IntervalUnit::Hour => "Hour",
            IntervalUnit::Day => "Day",
            IntervalUnit::Week => "Week",
        }
    }
}

/// The slug for a function without a `slug` argument: its name, lowercased, with anything
/// outside `[a-z0-9_-]` (a non-ASCII letter) turned into `-`.
pub(crate) fn default_slug(fn_name: &str) -> Result<String, String> {
    let slug: String = fn_name.chars().map(slug_char).collect();
    if slug.len() > MAX_SLUG_LEN {
        return Err(format!(
            "the function name `{fn_name}` is too long for a monitor slug (at most \
             {MAX_SLUG_LEN} characters); name the monitor with `slug = \"...\"`"
        ));
    }
    Ok(slug)
}

/// Checks an explicit `slug`: what the collector would store, so check-ins are not silently
/// filed under a different name.
pub(crate) fn slug(text: &str) -> Result<String, String> {
    let valid_chars = text.chars().all(|c| slug_char(c) == c);
    if !text.is_empty() && text.len() <= MAX_SLUG_LEN && valid_chars {
        return Ok(text.to_owned());
    }
    let rule = format!("a slug is 1 to {MAX_SLUG_LEN} lowercase letters, digits, `-` or `_`");
    match suggest_slug(text) {
        Some(suggestion) => Err(format!("invalid slug `{text}`: {rule}; try `{suggestion}`")),
        None => Err(format!("invalid slug `{text}`: {rule}")),
    }
}

fn slug_char(c: char) -> char {
    match c.to_ascii_lowercase() {
        c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
        _ => '-',
    }
}

/// Sentry-style slugify: runs of invalid characters become one `-`, no `-` at either end.
fn suggest_slug(text: &str) -> Option<String> {
    let mut slug = String::new();
    for c in text.chars().map(slug_char) {
        if !(c == '-' && (slug.is_empty() || slug.ends_with('-'))) {
            slug.push(c);
        }
    }
    let slug: String = slug
        .trim_end_matches('-')
        .chars()
        .take(MAX_SLUG_LEN)
        .collect();
    let slug = slug.trim_end_matches('-');
    (!slug.is_empty() && slug != text).then(|| slug.to_owned())
}

/// Checks a crontab with the grammar the collector and Sentry accept (`crontab.rs`, the same
/// file the collector validates with) and returns it as it will be sent: five fields separated
/// by single spaces, or the `@`-alias as written.
pub(crate) fn crontab(text: &str) -> Result<String, String> {
    match crontab::check(text) {
        Ok(_) if text.trim().starts_with('@') => Ok(text.trim().to_owned()),
        Ok((normalized, _)) => Ok(normalized),
        Err(CrontabError::Empty) => Err(
            "empty schedule: expected a crontab such as `0 3 * * *` (minute hour day-of-month \
             month day-of-week) or an alias such as `@daily`"
                .to_owned(),
        ),
        Err(CrontabError::Alias(alias)) if alias.eq_ignore_ascii_case("@reboot") => Err(format!(
            "`{alias}` is not a schedule a monitor can check: it has no expected time; use a \
             crontab such as `0 3 * * *` or `interval = \"...\"`"
        )),
        Err(error) => Err(format!("invalid schedule `{text}`: {error}")),
    }
}

/// Parses an `interval` into the largest unit that holds it exactly: `"90s"` is 90 seconds,
/// `"10m"` 10 minutes, `"14d"` 2 weeks.
pub(crate) fn interval(text: &str) -> Result<(u64, IntervalUnit), String> {
    if let Some(unit) = calendar_unit(text) {
        return Err(format!(
            "invalid interval `{text}`: `{unit}` has no fixed length; use days or weeks \
             (e.g. `30d`), or a crontab such as `@monthly`"
        ));
    }
    let duration = positive_duration("interval", text)?;
    if duration.subsec_nanos() != 0 {
        return Err(format!(
            "invalid interval `{text}`: an interval is a whole number of seconds"
        ));
    }
    Ok(largest_exact_unit(duration.as_secs()))
}

fn largest_exact_unit(secs: u64) -> (u64, IntervalUnit) {
    IntervalUnit::LARGEST_FIRST
        .into_iter()
        .find(|(_, unit_secs)| secs.is_multiple_of(*unit_secs))
        .map_or((secs, IntervalUnit::Second), |(unit, unit_secs)| {
            (secs / unit_secs, unit)
        })
}

/// humantime accepts months (30.44 days) and years (365.25 days); a schedule should not.
fn calendar_unit(text: &str) -> Option<&str> {
    const CALENDAR_UNITS: [&str; 8] = ["months", "month", "M", "years", "year", "yrs", "yr", "y"];
    text.split(|c: char| !c.is_alphabetic())
        .find(|word| CALENDAR_UNITS.contains(word))
}

/// Parses a humantime duration that must be longer than zero (`checkin_margin`,
/// `max_runtime`, `interval`).
pub(crate) fn positive_duration(name: &str, text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid duration `{text}` for `{name}`: {}",
            duration_error(text, &e)
        )
    })?;
    if duration.is_zero() {
        return Err(format!("`{name}` must be longer than zero, got `{text}`"));
    }
    Ok(duration)
}

fn duration_error(text: &str, error: &humantime::DurationError) -> String {
    use humantime::DurationError;
    if text.trim_start().starts_with('-') {
        return "a duration cannot be negative".to_owned();
    }
    match error {
        DurationError::Empty => format!("it is empty; {DURATION_HINT}"),
        DurationError::UnknownUnit { unit, value, .. } if unit.is_empty() => {
            format!("`{value}` needs a unit, e.g. `{value}m` or `{value}s`")
        }
        DurationError::UnknownUnit { unit, .. } => {
            format!("unknown unit `{unit}`; use s, m, h, d or w, e.g. `5m`")
        }
        DurationError::NumberOverflow => "it is too large".to_owned(),
        DurationError::InvalidCharacter(_) | DurationError::NumberExpected(_) => {
            DURATION_HINT.to_owned()
        }
    }
}

/// Checks an IANA timezone name, suggesting the right spelling for a wrongly cased one.
pub(crate) fn timezone(text: &str) -> Result<String, String> {
    if chrono_tz::Tz::from_str(text).is_ok() {
        return Ok(text.to_owned());
    }
    let same_but_case = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .find(|name| name.eq_ignore_ascii_case(text));
    Err(match same_but_case {
        Some(name) => format!("unknown timezone `{text}`: did you mean `{name}`?"),
        None => format!(
            "unknown timezone `{text}`: expected an IANA timezone name such as \
             `Europe/Berlin`, `America/New_York` or `UTC`"
        ),
    })
}

/// Checks `failure_issue_threshold` or `recovery_threshold`, given as base-10 digits.
pub(crate) fn threshold(name: &str, digits: &str) -> Result<u64, String> {
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| THRESHOLDS.contains(n))
        .ok_or_else(|| {
            let (min, max) = THRESHOLDS.into_inner();
            format!("`{name}` must be between {min} and {max}, got {digits}")
        })
}

/// Checks an `environment` name by Sentry's rules, the collector's too
/// (`watchpost_collector::engine::normalize_environment`): 1 to 64 characters, no whitespace,
/// `/` or control characters, and not `none`, `.` or `..`.
pub(crate) fn environment(text: &str) -> Result<String, String> {
    let reserved = text.eq_ignore_ascii_case("none") || text == "." || text == "..";
    let valid = !text.is_empty()
        && text.chars().count() <= MAX_ENVIRONMENT_LEN
        && !reserved
        && !text
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control());
    if valid {
        return Ok(text.to_owned());
    }
    Err(format!(
        "invalid environment `{}`: an environment name is 1 to {MAX_ENVIRONMENT_LEN} \
         characters without spaces, `/` or control characters, and not `none`, `.` or `..`, \
         e.g. `production` or `staging`",
        text.escape_debug()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on each input and compares `Ok` values, or the full message of an `Err`.
    fn check<T: std::fmt::Debug + PartialEq>(
        f: impl Fn(&str) -> Result<T, String>,
        cases: &[(&str, Result<T, &str>)],
    ) {
        for (input, expected) in cases {
            let actual = f(input);
            let actual = actual.as_ref().map_err(String::as_str);
            assert_eq!(
                actual,
                expected.as_ref().map_err(|e| *e),
                "input: {input:?}"
            );
        }
    }

    #[test]
    fn crontabs() {
        check(
            crontab,
            &[
                ("0 3 * * *", Ok("0 3 * * *".into())),
                ("  */5   *  * * MON-FRI ", Ok("*/5 * * * MON-FRI".into())),
                ("0 0 L * *", Ok("0 0 L * *".into())),
                ("@daily", Ok("@daily".into())),
                (
                    "@Hourly",
                    Err(
                        "invalid schedule `@Hourly`: `@Hourly` is not an alias Sentry accepts \
                         (@yearly, @annually, @monthly, @weekly, @daily, @hourly); aliases are \
                         lowercase: write `@hourly`",
                    ),
                ),
                (
                    "0 3 * *",
                    Err(
                        "invalid schedule `0 3 * *`: it has 4 fields; only 5-field crontab \
                         syntax (minute hour day-of-month month day-of-week) is supported",
                    ),
                ),
                (
                    "0 0 3 * * *",
                    Err(
                        "invalid schedule `0 0 3 * * *`: it has 6 fields; only 5-field crontab \
                         syntax (minute hour day-of-month month day-of-week) is supported",
                    ),
                ),
                (
                    "@reboot",
                    Err(
                        "`@reboot` is not a schedule a monitor can check: it has no expected \
                         time; use a crontab such as `0 3 * * *` or `interval = \"...\"`",
                    ),
                ),
                (
                    "@fortnightly",
                    Err(
                        "invalid schedule `@fortnightly`: `@fortnightly` is not an alias Sentry \
                         accepts (@yearly, @annually, @monthly, @weekly, @daily, @hourly)",
                    ),
                ),
                (
                    " ",
                    Err(
                        "empty schedule: expected a crontab such as `0 3 * * *` (minute hour \
                         day-of-month month day-of-week) or an alias such as `@daily`",
                    ),
                ),
            ],
        );
    }

    #[test]
    fn crontab_errors_name_the_field() {
        check(
            crontab,
            &[
                (
                    "61 * * * *",
                    Err(
                        "invalid schedule `61 * * * *`: the minute field `61` is not valid: 61 \
                         is out of range; it takes 0-59",
                    ),
                ),
                (
                    "*/0 * * * *",
                    Err(
                        "invalid schedule `*/0 * * * *`: the minute field `*/0` is not valid: \
                         the step after `/` must be a whole number above 0, as in `*/10`; it \
                         takes 0-59",
                    ),
                ),
                (
                    "0 0 15W * *",
                    Err(
                        "invalid schedule `0 0 15W * *`: the day-of-month field `15W` is not \
                         valid: in `15W`, `W` (nearest weekday) is not supported, only `LW` (the \
                         last weekday of the month); it takes 1-31, `L` (last day) or `LW` (last \
                         weekday)",
                    ),
                ),
                (
                    "0 0 ? * MON",
                    Err(
                        "invalid schedule `0 0 ? * MON`: the day-of-month field `?` is not \
                         valid: in `?`, `?` is not supported, use `*`; it takes 1-31, `L` (last \
                         day) or `LW` (last weekday)",
                    ),
                ),
                (
                    "0 0 30 2 *",
                    Err(
                        "invalid schedule `0 0 30 2 *`: no selected month has that day of the \
                         month (February has at most 29 days, April, June, September and \
                         November 30)",
                    ),
                ),
                (
                    "0 0 */20 * 5L",
                    Err(
                        "invalid schedule `0 0 */20 * 5L`: the day-of-month and day-of-week \
                         fields never select the same day (when either starts with `*` a day \
                         must match both)",
                    ),
                ),
            ],
        );
    }

    /// The list the collector's tests check against Sentry (cronsim with Sentry's validator
    /// steps): the macro accepts exactly what Sentry and the collector accept.
    #[test]
    fn crontab_list_shared_with_the_collector() {
        let list = include_str!("../../collector/tests/data/crontabs.txt");
        let mut checked = 0;
        for line in list.lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (verdict, expr) = line.split_once(' ').expect("a verdict and an expression");
            let expr = expr.trim();
            let accept = match verdict {
                "accept" => true,
                "refuse" => false,
                other => panic!("`{line}`: unknown verdict `{other}`"),
            };
            match crontab(expr) {
                Ok(_) => assert!(accept, "the macro accepts `{expr}`, which Sentry refuses"),
                Err(message) => assert!(!accept, "the macro refuses `{expr}`: {message}"),
            }
            checked += 1;
        }
        assert!(checked > 100, "only {checked} crontabs in the list");
    }

    #[test]
    fn intervals_use_the_largest_exact_unit() {
        use IntervalUnit::*;
        check(
            interval,
            &[
                ("90s", Ok((90, Second))),
                ("10m", Ok((10, Minute))),
                ("2h", Ok((2, Hour))),
                ("90m", Ok((90, Minute))),
                ("1d", Ok((1, Day))),
                ("36h", Ok((36, Hour))),
                ("7d", Ok((1, Week))),
                ("14d", Ok((2, Week))),
                ("1h 30m", Ok((90, Minute))),
                (
                    "1month",
                    Err(
                        "invalid interval `1month`: `month` has no fixed length; use days or \
                         weeks (e.g. `30d`), or a crontab such as `@monthly`",
                    ),
                ),
                (
                    "1y",
                    Err(
                        "invalid interval `1y`: `y` has no fixed length; use days or weeks \
                            (e.g. `30d`), or a crontab such as `@monthly`",
                    ),
                ),
                (
                    "1500ms",
                    Err("invalid interval `1500ms`: an interval is a whole number of seconds"),
                ),
                ("0s", Err("`interval` must be longer than zero, got `0s`")),
            ],
        );
    }

    #[test]
    fn durations() {
        let margin = |text: &str| positive_duration("checkin_margin", text);
        check(
            margin,
            &[
                ("5m", Ok(Duration::from_secs(300))),
                ("1h 30m", Ok(Duration::from_secs(5400))),
                ("1500ms", Ok(Duration::from_millis(1500))),
                (
                    "0",
                    Err("`checkin_margin` must be longer than zero, got `0`"),
                ),
                (
                    "0s",
                    Err("`checkin_margin` must be longer than zero, got `0s`"),
                ),
                (
                    "5 parsecs",
                    Err(
                        "invalid duration `5 parsecs` for `checkin_margin`: unknown unit \
                         `parsecs`; use s, m, h, d or w, e.g. `5m`",
                    ),
                ),
                (
                    "-5m",
                    Err(
                        "invalid duration `-5m` for `checkin_margin`: a duration cannot be \
                         negative",
                    ),
                ),
                (
                    "5",
                    Err(
                        "invalid duration `5` for `checkin_margin`: `5` needs a unit, e.g. \
                         `5m` or `5s`",
                    ),
                ),
                (
                    "",
                    Err(
                        "invalid duration `` for `checkin_margin`: it is empty; write it like \
                         `30s`, `5m`, `2h` or `1h 30m`",
                    ),
                ),
            ],
        );
    }

    #[test]
    fn timezones() {
        check(
            timezone,
            &[
                ("Europe/Berlin", Ok("Europe/Berlin".into())),
                ("UTC", Ok("UTC".into())),
                (
                    "europe/berlin",
                    Err("unknown timezone `europe/berlin`: did you mean `Europe/Berlin`?"),
                ),
                (
                    "Mars/Olympus_Mons",
                    Err(
                        "unknown timezone `Mars/Olympus_Mons`: expected an IANA timezone name \
                         such as `Europe/Berlin`, `America/New_York` or `UTC`",
                    ),
                ),
            ],
        );
    }

    #[test]
    fn thresholds() {
        let failures = |digits: &str| threshold("failure_issue_threshold", digits);
        check(
            failures,
            &[
                ("1", Ok(1)),
                ("720", Ok(720)),
                (
                    "0",
                    Err("`failure_issue_threshold` must be between 1 and 720, got 0"),
                ),
                (
                    "721",
                    Err("`failure_issue_threshold` must be between 1 and 720, got 721"),
                ),
                (
                    "99999999999999999999",
                    Err("`failure_issue_threshold` must be between 1 and 720, got \
                         99999999999999999999"),
                ),
            ],
        );
    }

    #[test]
    fn slugs() {
        check(
            default_slug,
            &[
                ("nightly_backup", Ok("nightly_backup".into())),
                ("Réindex", Ok("r-index".into())),
            ],
        );
        check(
            slug,
            &[
                ("nightly-backup", Ok("nightly-backup".into())),
                ("db_vacuum-2", Ok("db_vacuum-2".into())),
                (
                    "Nightly Backup!",
                    Err(
                        "invalid slug `Nightly Backup!`: a slug is 1 to 50 lowercase letters, \
                         digits, `-` or `_`; try `nightly-backup`",
                    ),
                ),
                (
                    "",
                    Err("invalid slug ``: a slug is 1 to 50 lowercase letters, digits, `-` or `_`"),
                ),
            ],
        );
        assert!(default_slug(&"a".repeat(51)).is_err());
    }

    #[test]
    fn environments() {
        check(
            environment,
            &[
                ("staging", Ok("staging".into())),
                (
                    "eu/west",
                    Err(
                        "invalid environment `eu/west`: an environment name is 1 to 64 \
                         characters without spaces, `/` or control characters, and not \
                         `none`, `.` or `..`, e.g. `production` or `staging`",
                    ),
                ),
                ("a<b>", Ok("a<b>".into())),
                (&"é".repeat(64), Ok("é".repeat(64))),
                (
                    "None",
                    Err(
                        "invalid environment `None`: an environment name is 1 to 64 \
                         characters without spaces, `/` or control characters, and not \
                         `none`, `.` or `..`, e.g. `production` or `staging`",
                    ),
                ),
            ],
        );
    }
}
