//! The missed and timeout sweeps as pure functions: given a monitor (and a run) whose deadline
//! has passed, the `missed` or `timeout` check-in to record and the new state. Deciding *when*
//! to call them is the deadline index's job; these never read a clock.

use chrono::{DateTime, Utc};

use super::ids::{self, Purpose};
use super::incident::record_outcome;
use super::model::{CheckIn, CheckInStatus, MonitorEnv, Transition};

/// Records one `missed` check-in if `now >= next_checkin_latest`, or returns `None`.
///
/// The missed check-in has `date_added = expected_time = next_checkin`. `next_checkin` then
/// moves to the first slot after `now` (crontab: the next occurrence after `now`; interval: the
/// grid `next_checkin + k·interval`), so an outage of many slots is reported once, not once per
/// slot. `last_checkin` does not move. The failure feeds the thresholds like any other.
/// Disabled monitors and monitors that never checked in are never missed.
pub fn sweep_missed(monitor: &MonitorEnv, now: DateTime<Utc>) -> Option<Transition> {
    let (expected, latest) = (monitor.next_checkin?, monitor.next_checkin_latest?);
    if monitor.disabled || now < latest {
        return None;
    }
    let mut monitor = monitor.clone();
    let checkin = CheckIn {
        id: ids::next_id(&mut monitor, Purpose::Missed),
        key: monitor.key.clone(),
        status: CheckInStatus::Missed,
        duration_ms: None,
        date_added: expected,
        date_updated: now,
        expected_time: Some(expected),
        timeout_at: None,
        log: None,
    };
    let config = &monitor.config;
    monitor.next_checkin = config.schedule.first_slot_after(config.tz(), expected, now);
    monitor.next_checkin_latest = monitor.next_checkin.map(|next| config.latest_for(next));
    let effects = record_outcome(&mut monitor, &checkin, now);
    Some(Transition {
        monitor,
        checkin,
        effects,
        unchanged: false,
    })
}

/// Turns an `in_progress` check-in whose timeout has passed into `timeout`, or returns `None`
/// (not in progress, not due yet, another monitor's, or the monitor is disabled).
///
/// The deadline is the open run's `timeout_at` in `monitor` (it reflects heartbeats and config
/// changes), else the check-in's own. The `timeout` check-in keeps that `timeout_at`. The
/// failure feeds the thresholds; the schedule does not move (the run's `in_progress` already
/// counted as a check-in).
pub fn sweep_timeout(
    monitor: &MonitorEnv,
    checkin: &CheckIn,
    now: DateTime<Utc>,
) -> Option<Transition> {
    if monitor.disabled || checkin.key != monitor.key || checkin.status != CheckInStatus::InProgress
    {
        return None;
    }
    let deadline = monitor
        .open_run(checkin.id)
        .map(|run| run.timeout_at)
        .or(checkin.timeout_at)?;
    if now < deadline {
        return None;
    }
    let mut monitor = monitor.clone();
    monitor.open_runs.retain(|run| run.id != checkin.id);
    let checkin = CheckIn {
        status: CheckInStatus::Timeout,
        date_updated: now,
        timeout_at: Some(deadline),
        ..checkin.clone()
    };
    let effects = record_outcome(&mut monitor, &checkin, now);
    Some(Transition {
        monitor,
        checkin,
        effects,
        unchanged: false,
    })
}
