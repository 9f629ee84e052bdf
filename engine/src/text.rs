//! How times, durations and names are written wherever a person or a program reads them: RFC
//! 3339 at the two precisions in use; sizes in binary units; durations in the alerts' compact words (`1h 5m`) and the
//! dashboard's and CLI's spaced ones (`4 min 05 s`, `3 min ago`); percent-encoding for path
//! segments and query values. One place, so the API, the dashboard, the alerts and the CLI
//! cannot drift apart. Pure functions of their inputs: the caller passes `now`.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// RFC 3339 in UTC with `Z`, fractions only when present (alert payloads, Alertmanager).
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// RFC 3339 in UTC with `Z` and always three fraction digits (the management API, the
/// dashboard's machine-readable times), so values sort as text.
pub fn rfc3339_millis(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Percent-encodes a path segment or query value: everything but RFC 3986's unreserved
/// characters (letters, digits, `-`, `_`, `.`, `~`).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `1h 5m`, `42s`, `3d 2h`: the two largest units.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let parts: Vec<String> = units
        .iter()
        .scan(secs, |rest, &(size, name)| {
            let n = *rest / size;
            *rest %= size;
            Some((n, name))
        })
        .skip_while(|&(n, _)| n == 0)
        .take(2)
        .filter(|&(n, _)| n > 0)
        .map(|(n, name)| format!("{n}{name}"))
        .collect();
    parts.join(" ")
}

/// [`human_duration`] of a time difference; a negative one is zero.
pub fn human_delta(d: TimeDelta) -> String {
    human_duration(d.to_std().unwrap_or_default())
}

/// "just now", "3 min ago", "in 2 h", "5 d ago".
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
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
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A configured duration: "1 min", "90 s", "30 min", "2 h".
pub fn span(duration: Duration) -> String {
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

/// `2026-11-21 20:11 UTC`: the absolute form next to a relative one.
pub fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A size for people: "812 B", "4.0 KiB", "23.5 MiB", "1.2 GiB" (binary units, as `du -h`).
pub fn bytes(n: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_names_are_written_one_way() {
        let at: DateTime<Utc> = "2026-12-07T12:00:00.250Z".parse().unwrap();
        assert_eq!(rfc3339(at), "2026-12-07T12:00:00.250Z");
        assert_eq!(rfc3339_millis(at), "2026-12-07T12:00:00.250Z");
        let whole: DateTime<Utc> = "2026-12-07T12:00:00Z".parse().unwrap();
        assert_eq!(rfc3339(whole), "2026-12-07T12:00:00Z");
        assert_eq!(rfc3339_millis(whole), "2026-12-07T12:00:00.000Z");
        assert_eq!(percent_encode("nightly-backup"), "nightly-backup");
        assert_eq!(percent_encode("a b/c?é"), "a%20b%2Fc%3F%C3%A9");
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

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(23_500_000), "22.4 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
