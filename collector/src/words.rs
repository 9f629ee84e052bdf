//! Schedules in words for people: "every day at 03:00 (Europe/Berlin)", "every 10 minutes".
//! Times and durations in words are `engine::text`'s. Anything unusual falls back to the exact
//! form rather than guessing.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
