//! The missed and timeout sweeps as pure functions: given a monitor (and a run) whose deadline
//! has passed, the `missed` or `timeout` check-in to record and the new state. Deciding *when*
//! to call them is the deadline index's job; these never read a clock. A deadline near one of
//! the collector's own outages follows the grace rules of [`super::outage`].

use chrono::{DateTime, Utc};

use super::ids::{self, Purpose};
use super::incident::record_outcome;
use super::model::{CheckIn, CheckInStatus, MonitorEnv, Transition};
use super::outage::{MAX_UNKNOWN_SLOTS, Outage, Outages};

/// Records one `missed` check-in if `now >= next_checkin_latest`, or returns `None`.
///
/// The missed check-in has `date_added = expected_time = next_checkin`. `next_checkin` then
/// moves to the first slot after `now` (crontab: the next occurrence after `now`; interval: the
/// grid `next_checkin + k·interval`), so an outage of many slots is reported once, not once per
/// slot. `last_checkin` does not move. The failure feeds the thresholds like any other.
/// Disabled monitors are never missed, nor are monitors that are not armed: never checked in
/// and not declared by a person ([`MonitorEnv::arm`](super::MonitorEnv::arm)).
///
/// A deadline the collector could not watch (see [`super::outage`]) is not missed yet: the
/// slots whose deadline passed are recorded as `unknown` but the newest, which stays expected
/// with its deadline moved to the end of the grace. At the end of the grace the usual rule
/// applies, and the `missed` check-in (with its alert) names the outage.
pub fn sweep_missed(
    monitor: &MonitorEnv,
    now: DateTime<Utc>,
    outages: &Outages,
) -> Option<Transition> {
    let (expected, latest) = (monitor.next_checkin?, monitor.next_checkin_latest?);
    if monitor.disabled || now < latest {
        return None;
    }
    let grace = outages.grace(&monitor.config);
    if let Some((until, outage)) = outages.deferral(latest, grace, now) {
        return Some(unobserved(monitor, expected, until, *outage, now));
    }
    let outage = outages.near(latest, grace, now).map(|(_, outage)| *outage);
    let mut monitor = monitor.clone();
    let id = match outage {
        // Replaces the `unknown` the slot got when the grace began.
        Some(_) => ids::slot_id(&monitor, expected),
        None => ids::next_id(&mut monitor, Purpose::Missed),
    };
    let checkin = CheckIn {
        id,
        key: monitor.key.clone(),
        status: CheckInStatus::Missed,
        duration_ms: None,
        date_added: expected,
        date_updated: now,
        expected_time: Some(expected),
        timeout_at: None,
        log: outage.map(|outage| {
            format!(
                "{}; no check-in arrived by the end of the grace",
                outage.describe()
            )
        }),
    };
    let config = &monitor.config;
    monitor.next_checkin = config.schedule.first_slot_after(config.tz(), expected, now);
    monitor.next_checkin_latest = monitor.next_checkin.map(|next| config.latest_for(next));
    let effects = record_outcome(&mut monitor, &checkin, now);
    Some(Transition {
        monitor,
        checkin,
        earlier: Vec::new(),
        effects,
        unchanged: false,
        outage,
    })
}

/// The missed sweep of a deadline the collector could not watch: `unknown` for every slot
/// from `expected` whose deadline passed by `now` (at most [`MAX_UNKNOWN_SLOTS`], the newest);
/// the newest of them stays expected until `until`, the end of the grace (its `missed`, if
/// it comes to that, replaces its `unknown`: both are named by the slot). Changes no
/// threshold and opens nothing.
fn unobserved(
    monitor: &MonitorEnv,
    expected: DateTime<Utc>,
    until: DateTime<Utc>,
    outage: Outage,
    now: DateTime<Utc>,
) -> Transition {
    let mut monitor = monitor.clone();
    let (config, tz) = (&monitor.config, monitor.config.tz());
    let mut slots = std::collections::VecDeque::from([expected]);
    let mut newest = expected;
    while let Some(next) = config.schedule.first_slot_after(tz, newest, newest)
        && config.latest_for(next) <= now
    {
        newest = next;
        slots.push_back(next);
        if slots.len() > MAX_UNKNOWN_SLOTS {
            slots.pop_front();
        }
    }
    let log = format!(
        "{}; the job's check-in may have been lost then",
        outage.describe()
    );
    let mut earlier: Vec<CheckIn> = slots
        .into_iter()
        .map(|slot| CheckIn {
            id: ids::slot_id(&monitor, slot),
            key: monitor.key.clone(),
            status: CheckInStatus::Unknown,
            duration_ms: None,
            date_added: slot,
            date_updated: now,
            expected_time: Some(slot),
            timeout_at: None,
            log: Some(log.clone()),
        })
        .collect();
    let checkin = earlier.pop().expect("the expected slot passed");
    monitor.next_checkin = Some(newest);
    monitor.next_checkin_latest = Some(until.max(monitor.config.latest_for(newest)));
    Transition {
        monitor,
        checkin,
        earlier,
        effects: Vec::new(),
        unchanged: false,
        outage: Some(outage),
    }
}

/// Turns an `in_progress` check-in whose timeout has passed into `timeout`, or returns `None`
/// (not in progress, not due yet, another monitor's, or the monitor is disabled).
///
/// The deadline is the open run's `timeout_at` in `monitor` (it reflects heartbeats and config
/// changes), else the check-in's own. The `timeout` check-in keeps that `timeout_at`. The
/// failure feeds the thresholds; the schedule does not move (the run's `in_progress` already
/// counted as a check-in).
///
/// A timeout the collector could not watch (see [`super::outage`]) moves to the end of the
/// grace instead: the run's finish may have been sent while the collector was down and still be
/// on its way. The `timeout` recorded at the end of the grace names the outage.
pub fn sweep_timeout(
    monitor: &MonitorEnv,
    checkin: &CheckIn,
    now: DateTime<Utc>,
    outages: &Outages,
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
    let grace = outages.grace(&monitor.config);
    let mut monitor = monitor.clone();
    if let Some(mut run) = monitor.open_run(checkin.id).cloned()
        && let Some((until, outage)) = outages.deferral(deadline, grace, now)
    {
        run.timeout_at = until;
        let checkin = run.checkin(&monitor.key);
        monitor.open_runs.retain(|open| open.id != run.id);
        monitor.open_runs.push(run);
        monitor.open_runs.sort_by_key(|run| (run.started, run.id));
        return Some(Transition {
            monitor,
            checkin,
            earlier: Vec::new(),
            effects: Vec::new(),
            unchanged: false,
            outage: Some(*outage),
        });
    }
    let outage = outages
        .near(deadline, grace, now)
        .map(|(_, outage)| *outage);
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
        earlier: Vec::new(),
        effects,
        unchanged: false,
        outage,
    })
}
