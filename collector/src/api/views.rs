//! The JSON shapes of the management API (docs/http-api.md, a contract): field names exactly as
//! documented, times as RFC 3339 UTC, durations in seconds. Pure conversions, no state.

use std::time::Duration;

use serde::Serialize;

use crate::engine::text::rfc3339_millis;
use crate::engine::{CheckIn, Incident, IncidentKind, IncidentReason, MonitorEnv, Schedule};
use crate::metrics::status_label;
use crate::store::LogEntry;

/// A monitor environment.
#[derive(Debug, Serialize)]
pub struct MonitorView<'a> {
    project: u64,
    slug: &'a str,
    environment: &'a str,
    status: &'static str,
    muted: bool,
    disabled: bool,
    schedule: &'a Schedule,
    timezone: &'a str,
    checkin_margin_s: serde_json::Number,
    max_runtime_s: serde_json::Number,
    failure_issue_threshold: u32,
    recovery_threshold: u32,
    last_checkin: Option<String>,
    next_checkin: Option<String>,
    next_checkin_latest: Option<String>,
    open_incident: Option<IncidentView<'a>>,
    /// Snoozed until then (no alert for incidents opening before it), or `null`.
    snoozed_until: Option<String>,
}

impl<'a> From<&'a MonitorEnv> for MonitorView<'a> {
    fn from(m: &'a MonitorEnv) -> Self {
        MonitorView {
            project: m.key.project,
            slug: &m.key.slug,
            environment: &m.key.environment,
            status: status_label(m.status),
            muted: m.muted,
            disabled: m.disabled,
            schedule: &m.config.schedule,
            timezone: &m.config.timezone,
            checkin_margin_s: seconds(m.config.checkin_margin),
            max_runtime_s: seconds(m.config.max_runtime),
            failure_issue_threshold: m.config.failure_issue_threshold,
            recovery_threshold: m.config.recovery_threshold,
            last_checkin: m.last_checkin.map(rfc3339_millis),
            next_checkin: m.next_checkin.map(rfc3339_millis),
            next_checkin_latest: m.next_checkin_latest.map(rfc3339_millis),
            open_incident: m.open_incident.as_ref().map(IncidentView::from),
            snoozed_until: m.snoozed_until.map(rfc3339_millis),
        }
    }
}

/// A check-in.
#[derive(Debug, Serialize)]
pub struct CheckInView<'a> {
    id: String,
    status: &'static str,
    duration_ms: Option<u64>,
    date_added: String,
    expected_time: Option<String>,
    environment: &'a str,
    log: Option<&'a str>,
}

impl<'a> From<&'a CheckIn> for CheckInView<'a> {
    fn from(c: &'a CheckIn) -> Self {
        CheckInView {
            id: c.id.simple().to_string(),
            status: c.status.as_str(),
            duration_ms: c.duration_ms,
            date_added: rfc3339_millis(c.date_added),
            expected_time: c.expected_time.map(rfc3339_millis),
            environment: &c.key.environment,
            log: c.log.as_deref(),
        }
    }
}

/// An incident.
#[derive(Debug, Serialize)]
pub struct IncidentView<'a> {
    id: String,
    project: u64,
    slug: &'a str,
    environment: &'a str,
    kind: &'static str,
    opened_at: String,
    resolved_at: Option<String>,
    reason: &'static str,
    /// Who acknowledged it and when (`{"by", "at"}`), or `null`.
    acknowledged: Option<AcknowledgedView<'a>>,
    /// When its alert is next repeated, or `null`.
    next_repeat: Option<String>,
    /// How many times its alert was repeated.
    repeats: u32,
}

/// An incident's acknowledgement.
#[derive(Debug, Serialize)]
pub struct AcknowledgedView<'a> {
    by: &'a str,
    at: String,
}

impl<'a> From<&'a Incident> for IncidentView<'a> {
    fn from(i: &'a Incident) -> Self {
        IncidentView {
            id: i.id.simple().to_string(),
            project: i.key.project,
            slug: &i.key.slug,
            environment: &i.key.environment,
            kind: match i.kind {
                IncidentKind::Monitor => "monitor",
                IncidentKind::Probe => "probe",
            },
            opened_at: rfc3339_millis(i.opened_at),
            resolved_at: i.resolved_at.map(rfc3339_millis),
            reason: match i.reason {
                IncidentReason::MissedCheckin => "missed_checkin",
                IncidentReason::Timeout => "timeout",
                IncidentReason::Error => "error",
            },
            acknowledged: i
                .handling
                .acknowledged
                .as_ref()
                .map(|ack| AcknowledgedView {
                    by: &ack.by,
                    at: rfc3339_millis(ack.at),
                }),
            next_repeat: i.handling.next_repeat.map(rfc3339_millis),
            repeats: i.handling.repeats,
        }
    }
}

/// A ping log entry (Watchpost extension: `GET .../logs`).
#[derive(Debug, Serialize)]
pub struct LogView<'a> {
    id: String,
    environment: &'a str,
    date_added: String,
    log: &'a str,
}

impl<'a> From<&'a LogEntry> for LogView<'a> {
    fn from(l: &'a LogEntry) -> Self {
        LogView {
            id: l.id.simple().to_string(),
            environment: &l.key.environment,
            date_added: rfc3339_millis(l.received),
            log: &l.body,
        }
    }
}

/// Whole seconds as an integer, fractional ones as a float.
pub(super) fn seconds(duration: Duration) -> serde_json::Number {
    if duration.subsec_nanos() == 0 {
        duration.as_secs().into()
    } else {
        serde_json::Number::from_f64(duration.as_secs_f64()).unwrap_or_else(|| 0.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_integers_when_whole() {
        assert_eq!(seconds(Duration::from_secs(60)).to_string(), "60");
        assert_eq!(seconds(Duration::from_millis(1500)).to_string(), "1.5");
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        assert_eq!(rfc3339_millis(at), "2027-01-15T08:00:00.123Z");
    }
}
