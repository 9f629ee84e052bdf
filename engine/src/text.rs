//! How times and names are written wherever a person or a program reads them: RFC 3339 at the
//! two precisions in use, and percent-encoding for path segments and query values. One place,
//! so the API, the dashboard, the alerts and the CLI cannot drift apart.

use chrono::{DateTime, SecondsFormat, Utc};

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
}
