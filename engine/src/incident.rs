//! Thresholds and incidents: folds each terminal check-in into the monitor's streak, opens an
//! incident after N consecutive failures and resolves it after M consecutive oks, emitting
//! exactly one effect per opening and per resolution. Never reads a clock or does I/O.

use chrono::{DateTime, Utc};

use super::ids::{self, Purpose};
use super::model::{
    CheckIn, CheckInStatus, Effect, FailureCounts, Handling, Incident, IncidentKind,
    IncidentReason, MonitorEnv,
};

/// Folds one terminal check-in into `monitor`'s streak and incident state; returns the effects.
///
/// - A failure (`error`, `missed`, `timeout`) ends any run of oks. When the current run of
///   failures reaches `failure_issue_threshold` and no incident is open, one opens. The window
///   must be full: a history shorter than N never opens an incident (Sentry opens early there).
/// - An `ok` ends any run of failures. When the run of oks reaches `recovery_threshold`, the
///   open incident resolves.
/// - Anything else (`in_progress`, `unknown`) changes nothing.
///
/// Outcomes count in the order the engine processes them. Effects carry `notify: false` while
/// the monitor is muted; a resolution is announced only if the opening was.
pub(super) fn record_outcome(
    monitor: &mut MonitorEnv,
    checkin: &CheckIn,
    now: DateTime<Utc>,
) -> Vec<Effect> {
    let mut effects = Vec::new();
    match checkin.status {
        CheckInStatus::Ok => {
            let streak = &mut monitor.streak;
            streak.failures = FailureCounts::default();
            streak.first_failure = None;
            streak.oks = streak.oks.saturating_add(1);
            monitor.last_ok = monitor.last_ok.max(Some(checkin.date_added));
            if monitor.streak.oks >= monitor.config.recovery_threshold
                && let Some(mut incident) = monitor.open_incident.take()
            {
                incident.resolved_at = Some(now);
                incident.resolving_checkin = Some(checkin.id);
                // Resolving ends the repeats, and a held alert is never sent.
                incident.handling.next_repeat = None;
                incident.handling.held_until = None;
                let notify = incident.notified && !monitor.muted;
                effects.push(Effect::IncidentResolved { incident, notify });
            }
        }
        status @ (CheckInStatus::Error | CheckInStatus::Missed | CheckInStatus::Timeout) => {
            let streak = &mut monitor.streak;
            streak.oks = 0;
            let counts = &mut streak.failures;
            let (count, reason) = match status {
                CheckInStatus::Missed => (&mut counts.missed, IncidentReason::MissedCheckin),
                CheckInStatus::Timeout => (&mut counts.timeout, IncidentReason::Timeout),
                _ => (&mut counts.error, IncidentReason::Error),
            };
            *count = count.saturating_add(1);
            let (starting_checkin, starting_timestamp) = *streak
                .first_failure
                .get_or_insert((checkin.id, checkin.date_added));
            let crossed = streak.failures.total() >= monitor.config.failure_issue_threshold;
            if crossed && monitor.open_incident.is_none() {
                let incident = Incident {
                    id: ids::next_id(monitor, Purpose::Incident),
                    key: monitor.key.clone(),
                    kind: IncidentKind::Monitor,
                    opened_at: now,
                    resolved_at: None,
                    reason,
                    starting_checkin,
                    starting_timestamp,
                    resolving_checkin: None,
                    failures: monitor.streak.failures,
                    notified: !monitor.muted,
                    handling: Handling::default(),
                };
                monitor.open_incident = Some(incident.clone());
                effects.push(Effect::IncidentOpened {
                    incident,
                    notify: !monitor.muted,
                });
            }
        }
        CheckInStatus::InProgress | CheckInStatus::Unknown => {}
    }
    monitor.refresh_status();
    effects
}
