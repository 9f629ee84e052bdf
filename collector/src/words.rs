//! Schedules, times and durations in words for people: "every day at 03:00 (Europe/Berlin)",
//! "every 10 minutes", "3 min ago", "1 min 05 s". Pure functions of their inputs (the caller
//! passes `now`); anything unusual falls back to the exact form rather than guessing.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::engine::{IntervalUnit, Schedule};

/// A schedule in words; crontabs name their timezone, since the hour depends on it.
pub(crate) fn schedule(schedule: &Schedule, timezone: &str) -> String {
    match schedule {
        Schedule::Interval { value, unit } => interval(*value, *unit),
        Schedule::Crontab(expr) => {
            let words = crontab(expr).unwrap_or_else(|| format!("cron {expr}"));
            format!("{words} ({timezone})")
        }
    }
}

fn interval(value: u32, unit: IntervalUnit) -> String {
    let name = unit.as_str();
    if value == 1 {
        format!("every {name}")
    } else {
        format!("every {value} {name}s")
    }
}

/// The common shapes of a normalized 5-field crontab; `None` for the rest.
fn crontab(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, day, month, weekday] = fields.as_slice() else {
        return None;
    };
    let any = |field: &str| field == "*";
    let minute_n = number(minute, 59);
    match (minute_n, any(hour), any(day), any(month), any(weekday)) {
        (None, true, true, true, true) if any(minute) => return Some("every minute".into()),
        (None, true, true, true, true) => {
            let n = number(minute.strip_prefix("*/")?, 59)?;
            return Some(interval(n, IntervalUnit::Minute));
        }
        (Some(0), true, true, true, true) => return Some("every hour".into()),
        (Some(m), true, true, true, true) => return Some(format!("every hour at :{m:02}")),
        _ => {}
    }
    let minute = minute_n?;
    if let Some(every) = hour.strip_prefix("*/") {
        let n = number(every, 23)?;
        if !(any(day) && any(month) && any(weekday)) {
            return None;
        }
        return Some(format!(
            "{} at :{minute:02}",
            interval(n, IntervalUnit::Hour)
        ));
    }
    let hours = hour
        .split(',')
        .map(|h| number(h, 23))
        .collect::<Option<Vec<_>>>()?;
    let at = hours
        .iter()
        .map(|h| format!("{h:02}:{minute:02}"))
        .collect::<Vec<_>>();
    let at = join(&at, "and");
    match (any(day), any(month), any(weekday)) {
        (true, true, true) => Some(format!("every day at {at}")),
        (true, true, false) => Some(format!("{} at {at}", weekdays(weekday)?)),
        (false, true, true) => {
            let d = number(day, 31)?;
            Some(format!("on the {} of every month at {at}", ordinal(d)))
        }
        (false, false, true) => {
            let d = number(day, 31)?;
            let m = number(month, 12)?;
            Some(format!("every year on {d} {} at {at}", month_name(m)?))
        }
        _ => None,
    }
}

/// `1` → "every Monday", `1-5` → "Monday to Friday", `1,3` → "every Monday and Wednesday".
fn weekdays(field: &str) -> Option<String> {
    if let Some((from, to)) = field.split_once('-') {
        return Some(format!(
            "{} to {}",
            day_name(weekday(from)?),
            day_name(weekday(to)?)
        ));
    }
    let days = field
        .split(',')
        .map(|d| weekday(d).map(day_name))
        .collect::<Option<Vec<_>>>()?;
    Some(format!("every {}", join(&days, "and")))
}

fn weekday(field: &str) -> Option<u32> {
    const NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let lower = field.to_ascii_lowercase();
    NAMES
        .iter()
        .position(|name| *name == lower)
        .map(|i| i as u32)
        .or_else(|| number(field, 7).map(|d| d % 7))
}

fn day_name(day: u32) -> &'static str {
    [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ][day as usize % 7]
}

fn month_name(month: u32) -> Option<&'static str> {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES.get(month.checked_sub(1)? as usize).copied()
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn number(field: &str, max: u32) -> Option<u32> {
    field.parse().ok().filter(|n| *n <= max)
}

/// "a", "a and b", "a, b and c".
fn join(items: &[impl AsRef<str>], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., tail] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} {last} {}", init.join(", "), tail.as_ref())
        }
    }
}

/// "just now", "3 min ago", "in 2 h", "5 d ago".
pub(crate) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (at - now).num_seconds();
    let magnitude = seconds.unsigned_abs();
    if magnitude < 5 {
        return "just now".into();
    }
    let amount = match magnitude {
        0..60 => format!("{magnitude} s"),
        60..3600 => format!("{} min", magnitude / 60),
        3600..86_400 => format!("{} h", magnitude / 3600),
        _ => format!("{} d", magnitude / 86_400),
    };
    if seconds < 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// A run's length: "850 ms", "12.3 s", "4 min 05 s", "1 h 02 min".
pub(crate) fn duration_ms(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A configured duration: "1 min", "90 s", "30 min", "2 h".
pub(crate) fn span(duration: Duration) -> String {
    let s = duration.as_secs();
    if duration.subsec_millis() != 0 || s == 0 {
        return format!("{:.1} s", duration.as_secs_f64());
    }
    match s {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A size for people: "812 B", "4.0 KiB", "23.5 MiB", "1.2 GiB" (binary units, as `du -h`).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `2026-11-21 20:11 UTC`: the absolute form next to a relative one.
pub(crate) fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(23_500_000), "22.4 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    fn cron(expr: &str) -> String {
        schedule(&Schedule::Crontab(expr.into()), "Europe/Berlin")
    }

    #[test]
    fn schedules_read_like_sentences() {
        for (expr, words) in [
            ("0 3 * * *", "every day at 03:00 (Europe/Berlin)"),
            ("* * * * *", "every minute (Europe/Berlin)"),
            ("*/10 * * * *", "every 10 minutes (Europe/Berlin)"),
            ("0 * * * *", "every hour (Europe/Berlin)"),
            ("15 * * * *", "every hour at :15 (Europe/Berlin)"),
            ("30 */6 * * *", "every 6 hours at :30 (Europe/Berlin)"),
            (
                "0 0,12 * * *",
                "every day at 00:00 and 12:00 (Europe/Berlin)",
            ),
            ("0 9 * * 1-5", "Monday to Friday at 09:00 (Europe/Berlin)"),
            ("0 9 * * 0", "every Sunday at 09:00 (Europe/Berlin)"),
            (
                "0 9 * * 1,3,5",
                "every Monday, Wednesday and Friday at 09:00 (Europe/Berlin)",
            ),
            (
                "0 4 1 * *",
                "on the 1st of every month at 04:00 (Europe/Berlin)",
            ),
            (
                "0 4 22 * *",
                "on the 22nd of every month at 04:00 (Europe/Berlin)",
            ),
            (
                "0 0 1 1 *",
                "every year on 1 January at 00:00 (Europe/Berlin)",
            ),
            ("5 4 * 2 1", "cron 5 4 * 2 1 (Europe/Berlin)"),
            ("1-5 * * * *", "cron 1-5 * * * * (Europe/Berlin)"),
        ] {
            assert_eq!(cron(expr), words, "{expr}");
        }
        let every = |value, unit| schedule(&Schedule::Interval { value, unit }, "UTC");
        assert_eq!(every(10, IntervalUnit::Minute), "every 10 minutes");
        assert_eq!(every(1, IntervalUnit::Day), "every day");
    }

    #[test]
    fn times_and_durations() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |s: i64| now + chrono::Duration::seconds(s);
        assert_eq!(relative(at(-2), now), "just now");
        assert_eq!(relative(at(-180), now), "3 min ago");
        assert_eq!(relative(at(7200), now), "in 2 h");
        assert_eq!(relative(at(-3 * 86_400), now), "3 d ago");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_345), "12.3 s");
        assert_eq!(duration_ms(245_000), "4 min 05 s");
        assert_eq!(duration_ms(3_720_000), "1 h 02 min");
        assert_eq!(span(Duration::from_secs(60)), "1 min");
        assert_eq!(span(Duration::from_secs(90)), "90 s");
        assert_eq!(span(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(utc(now), "2027-01-15 08:00:00 UTC");
    }
}
