//! Key encodings. sled orders keys bytewise, so integers and times are big-endian and every
//! variable-length part is length-prefixed: a prefix scan by monitor never spills into a
//! monitor whose slug or environment merely starts with the same bytes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::engine::MonitorKey;

/// `project (u64 BE) ++ len (u8) ++ slug`: every environment of one monitor.
pub(super) fn monitor_prefix(project: u64, slug: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + slug.len());
    key.extend_from_slice(&project.to_be_bytes());
    // Slugs are at most 50 ASCII characters; the engine guarantees it.
    key.push(u8::try_from(slug.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(slug.as_bytes());
    key
}

/// `monitor_prefix ++ len (u16 BE) ++ environment`: one monitor environment.
pub(super) fn monitor(key: &MonitorKey) -> Vec<u8> {
    let mut out = monitor_prefix(key.project, &key.slug);
    let env = key.environment.as_bytes();
    out.extend_from_slice(&u16::try_from(env.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(env);
    out
}

/// The monitor environment of a [`monitor`] key.
pub(super) fn parse_monitor(key: &[u8]) -> Option<MonitorKey> {
    let project = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let slug_len = usize::from(*key.get(8)?);
    let slug = std::str::from_utf8(key.get(9..9 + slug_len)?).ok()?;
    let rest = key.get(9 + slug_len..)?;
    let env_len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
    let environment = std::str::from_utf8(rest.get(2..)?).ok()?;
    (environment.len() == env_len).then(|| MonitorKey {
        project,
        slug: slug.to_owned(),
        environment: environment.to_owned(),
    })
}

/// A time as 8 bytes that sort like the time: microseconds since the epoch with the sign bit
/// flipped, big-endian.
pub(super) fn time(at: DateTime<Utc>) -> [u8; 8] {
    let micros = at.timestamp_micros();
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

/// `prefix ++ time ++ id`: a record of a monitor (check-in, incident, log entry) or a project
/// (event), ordered by time within the prefix.
pub(super) fn timed(prefix: &[u8], at: DateTime<Utc>, id: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 24);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&time(at));
    key.extend_from_slice(id.as_bytes());
    key
}

/// The id at the end of a [`timed`] key.
pub(super) fn timed_id(key: &[u8]) -> Option<Uuid> {
    let start = key.len().checked_sub(16)?;
    Uuid::from_slice(&key[start..]).ok()
}

/// The prefix of a [`timed`] key: what comes before its time and id.
pub(super) fn timed_prefix(key: &[u8]) -> Option<&[u8]> {
    key.get(..key.len().checked_sub(24)?)
}

/// The time inside a [`timed`] key (the 8 bytes before the id).
pub(super) fn timed_at(key: &[u8]) -> Option<DateTime<Utc>> {
    let end = key.len().checked_sub(16)?;
    let bytes: [u8; 8] = key.get(end.checked_sub(8)?..end)?.try_into().ok()?;
    let micros = (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64;
    DateTime::from_timestamp_micros(micros)
}

/// The `time ++ id` end of a [`timed`] key: where a record falls among the others of its kind,
/// whatever its prefix (the key of the time indexes, and the cursor of a timeline page).
pub(super) fn timed_suffix(key: &[u8]) -> &[u8] {
    &key[key.len().saturating_sub(24)..]
}

/// `time (last seen) ++ issue key`: an issue in the `issue_times` index.
pub(super) fn issue_time(last_seen: DateTime<Utc>, id: &str) -> Vec<u8> {
    [&time(last_seen)[..], &issue(id)].concat()
}

/// `len (u8) ++ issue id`: an issue, and the prefix of its events. Issue ids are 32 hex
/// digits; the length prefix keeps a prefix scan exact for any string an API path carries.
pub(super) fn issue(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(id.as_bytes());
    key
}

/// `len (u16 BE) ++ channel name`: a channel's pending deliveries in the `outbox_pending` index.
pub(super) fn channel(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + name.len() + 8);
    key.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

/// `channel ++ id (u64 BE)`: one pending delivery, in id order within its channel.
pub(super) fn pending(channel_name: &str, id: u64) -> Vec<u8> {
    let mut key = channel(channel_name);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The channel name of a [`pending`] key.
pub(super) fn pending_channel(key: &[u8]) -> Option<&str> {
    let len = usize::from(u16::from_be_bytes([*key.first()?, *key.get(1)?]));
    std::str::from_utf8(key.get(2..2 + len)?).ok()
}

/// The id at the end of a [`pending`] key.
pub(super) fn pending_id(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(8)?;
    <[u8; 8]>::try_from(&key[start..])
        .ok()
        .map(u64::from_be_bytes)
}

/// `project/` ++ id (u64 BE) in the meta tree.
pub(super) fn project(id: u64) -> Vec<u8> {
    let mut key = b"project/".to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// `meta`: the collector's last liveness mark (`liveness.rs`).
pub(super) const ALIVE: &[u8] = b"alive";
/// `meta`: the outages recorded so far (`liveness.rs`).
pub(super) const OUTAGES: &[u8] = b"outages";
/// `meta` prefix of the refusals kept (`refusals.rs`).
pub(super) const REFUSAL: &[u8] = b"refusal/";
/// `meta` prefix of the monitor environments whose config a person set (`refusals.rs`).
pub(super) const ORIGIN: &[u8] = b"origin/";

/// A refusal's key in `meta`: its project, then its id, so a project's are in order.
pub(super) fn refusal(project: u64, id: u64) -> Vec<u8> {
    let mut key = REFUSAL.to_vec();
    key.extend_from_slice(&project.to_be_bytes());
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The key in `meta` marking a monitor environment's config as set by a person.
pub(super) fn origin(key: &MonitorKey) -> Vec<u8> {
    let mut out = ORIGIN.to_vec();
    out.extend_from_slice(&monitor(key));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(slug: &str, env: &str) -> MonitorKey {
        MonitorKey {
            project: 1,
            slug: slug.into(),
            environment: env.into(),
        }
    }

    #[test]
    fn prefixes_do_not_spill_into_longer_names() {
        let short = monitor(&key("job", "prod"));
        let long = monitor(&key("job-2", "prod"));
        let env_long = monitor(&key("job", "production"));
        assert!(!long.starts_with(&short));
        assert!(!env_long.starts_with(&short));
        assert!(short.starts_with(&monitor_prefix(1, "job")));
        assert!(!long.starts_with(&monitor_prefix(1, "job")));
    }

    #[test]
    fn a_monitor_key_parses_back() {
        for k in [
            key("job", "prod"),
            key("a", ""),
            key(&"s".repeat(50), "staging-eu"),
        ] {
            assert_eq!(parse_monitor(&monitor(&k)), Some(k));
        }
        assert_eq!(parse_monitor(&monitor_prefix(1, "job")), None);
    }

    #[test]
    fn times_sort_like_times() {
        let times = [
            DateTime::from_timestamp(-5, 0).unwrap(),
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(1, 500).unwrap(),
            DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        ];
        let encoded: Vec<_> = times.iter().map(|t| time(*t)).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        let id = Uuid::from_u128(7);
        assert_eq!(timed_id(&timed(b"p", times[2], id)), Some(id));
    }

    #[test]
    fn channel_and_issue_prefixes_are_exact() {
        assert!(!pending("tg-2", 1).starts_with(&channel("tg")));
        assert!(pending("tg", 1).starts_with(&channel("tg")));
        assert!(
            pending("tg", 1) < pending("tg", 256),
            "ids sort numerically"
        );
        assert_eq!(pending_id(&pending("tg", 42)), Some(42));
        assert_eq!(pending_channel(&pending("tg", 42)), Some("tg"));
        assert!(!issue("abcd").starts_with(&issue("ab")));
    }
}
