//! Check-in processing: matching a check-in to its run, the status rules for a run, and the
//! effect on the monitor's schedule. A pure function of (state, stored check-in, input, now);
//! it never loads or stores anything itself and never reads a clock.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::config::ConfigPatch;
use super::ids::{self, Purpose};
use super::incident::record_outcome;
use super::model::{
    CheckIn, CheckInInput, CheckInStatus, MAX_OPEN_RUNS, MonitorEnv, MonitorKey, OpenRun,
    Rejection, Transition, timeout_after,
};
use super::validate::{MAX_CHECKIN_DURATION_MS, MAX_CONFIG_DURATION};

/// Which stored check-in [`process_checkin`] needs: call this first, load that check-in (if it
/// exists) and pass it as `existing`.
///
/// An explicit, non-nil id is returned as is. A missing or nil id means the newest open run of
/// the monitor environment, or `None` when nothing is open (a new check-in will be created and
/// nothing needs loading).
pub fn target_checkin_id(monitor: Option<&MonitorEnv>, input: &CheckInInput) -> Option<Uuid> {
    match input.id.filter(|id| !id.is_nil()) {
        Some(id) => Some(id),
        None => monitor.and_then(|m| m.newest_open_run()).map(|run| run.id),
    }
}

/// Applies one check-in to a monitor environment.
///
/// `monitor` is the stored state (`None` if this monitor environment does not exist yet);
/// `existing` is the stored check-in with the id [`target_checkin_id`] returned, if any (one
/// with another id is ignored). On success the caller stores `monitor` and `checkin` and
/// records `effects`, atomically; on error nothing changes.
///
/// Rules, in order:
/// 1. Only `in_progress`, `ok` and `error` are accepted; the duration must be 0..~24.8 days.
/// 2. Upsert: `input.config` creates the monitor (it must then carry a schedule) or updates the
///    fields it sets; an invalid config rejects the whole check-in (Sentry instead keeps the old
///    config and accepts the check-in). Without config, an unknown monitor is rejected.
/// 3. A disabled monitor rejects the check-in.
/// 4. Matching ([`target_checkin_id`]), then by the stored status of the matched check-in:
///    - none: a new check-in. A closing-only `ok`/`error` is back-dated by its duration
///      (`date_added = now - duration`), as in Sentry; an `in_progress` opens a run timing out
///      at `now + max_runtime` (at most [`MAX_OPEN_RUNS`] at once).
///    - `in_progress` + `in_progress`: a heartbeat; `timeout_at` moves to
///      `now + max_runtime` (capped at 28 days after the start).
///    - `in_progress` + `ok`/`error`: the run finishes; without a duration, the duration is the
///      time since `date_added`.
///    - `timeout` + `ok`/`error`: the duration is recorded and the status stays `timeout`; it is
///      not an ok for the thresholds. Only the first late finish is taken.
///    - finished + `in_progress`: ignored (`unchanged`), as in Sentry; a `timeout` run is
///      finished too (Sentry would reopen it).
///    - finished + `ok`/`error`: rejected ([`Rejection::AlreadyFinished`]).
/// 5. Every accepted check-in that changes something is a sign of life: `last_checkin` moves to
///    its `date_added` and `next_checkin` to the next expected time after `now` — but neither
///    ever moves backwards, so late and out-of-order check-ins cannot roll state back.
/// 6. A check-in that became `ok` or `error` feeds the thresholds (see the incident rules).
pub fn process_checkin(
    monitor: Option<MonitorEnv>,
    existing: Option<CheckIn>,
    input: CheckInInput,
    now: DateTime<Utc>,
) -> Result<Transition, Rejection> {
    let target = target_checkin_id(monitor.as_ref(), &input);
    let CheckInInput {
        key,
        status,
        duration,
        config,
        log,
        ..
    } = input;
    if !matches!(
        status,
        CheckInStatus::InProgress | CheckInStatus::Ok | CheckInStatus::Error
    ) {
        return Err(Rejection::InvalidStatus(status.as_str()));
    }
    let duration_ms = duration.map(duration_to_ms).transpose()?;
    let (mut monitor, config_changed) = upsert(monitor, &key, config.as_ref(), now)?;
    if monitor.disabled {
        return Err(Rejection::Disabled(key));
    }
    let existing = existing.filter(|c| Some(c.id) == target);
    let run = Run {
        status,
        duration_ms,
        log,
        now,
    };
    let (checkin, counts) = match existing {
        Some(stored) => match update(&mut monitor, stored, run)? {
            Updated::Changed(checkin, counts) => (checkin, counts),
            Updated::Ignored(checkin) => {
                return Ok(Transition {
                    monitor,
                    checkin,
                    earlier: Vec::new(),
                    effects: Vec::new(),
                    unchanged: !config_changed,
                    outage: None,
                });
            }
        },
        None => {
            let id = target.unwrap_or_else(|| ids::next_id(&mut monitor, Purpose::CheckIn));
            (create(&mut monitor, id, key, run)?, true)
        }
    };
    checked_in(&mut monitor, checkin.date_added, now);
    let effects = if counts {
        record_outcome(&mut monitor, &checkin, now)
    } else {
        monitor.refresh_status();
        Vec::new()
    };
    Ok(Transition {
        monitor,
        checkin,
        earlier: Vec::new(),
        effects,
        unchanged: false,
        outage: None,
    })
}

/// What a check-in says about its run, minus the matching.
struct Run {
    status: CheckInStatus,
    duration_ms: Option<u64>,
    log: Option<String>,
    now: DateTime<Utc>,
}

enum Updated {
    /// The new check-in, and whether its status counts for the thresholds.
    Changed(CheckIn, bool),
    /// Accepted, nothing to change.
    Ignored(CheckIn),
}

fn duration_to_ms(seconds: f64) -> Result<u64, Rejection> {
    let ms = seconds * 1000.0;
    if !ms.is_finite() || ms < 0.0 || ms > MAX_CHECKIN_DURATION_MS as f64 {
        return Err(Rejection::InvalidDuration(seconds));
    }
    // Truncates, as Sentry's `int(duration * 1000)`; the range check above makes it lossless.
    Ok(ms as u64)
}

/// The monitor after applying the upsert config, and whether the config changed.
fn upsert(
    monitor: Option<MonitorEnv>,
    key: &MonitorKey,
    patch: Option<&ConfigPatch>,
    now: DateTime<Utc>,
) -> Result<(MonitorEnv, bool), Rejection> {
    match (monitor, patch) {
        (None, None) => Err(Rejection::UnknownMonitor(key.clone())),
        (None, Some(patch)) => Ok((MonitorEnv::new(key.clone(), patch.to_config()?), true)),
        (Some(monitor), None) => Ok((monitor, false)),
        (Some(mut monitor), Some(patch)) => {
            let config = patch.apply_to(&monitor.config)?;
            let changed = config != monitor.config;
            if changed {
                monitor.apply_config(config, now);
            }
            Ok((monitor, changed))
        }
    }
}

/// A check-in with an id nothing is stored under.
fn create(
    monitor: &mut MonitorEnv,
    id: Uuid,
    key: MonitorKey,
    run: Run,
) -> Result<CheckIn, Rejection> {
    let Run {
        status,
        duration_ms,
        log,
        now,
    } = run;
    let terminal = status.is_terminal();
    let date_added = match duration_ms {
        Some(ms) if terminal => now - TimeDelta::milliseconds(ms as i64),
        _ => now,
    };
    // The run may be tracked although its check-in could not be loaded; never track it twice.
    monitor.open_runs.retain(|r| r.id != id);
    let timeout_at = if terminal {
        None
    } else {
        if monitor.open_runs.len() >= MAX_OPEN_RUNS {
            return Err(Rejection::TooManyOpenRuns(key));
        }
        Some(timeout_after(now, monitor.config.max_runtime))
    };
    let checkin = CheckIn {
        id,
        key,
        status,
        duration_ms: duration_ms.filter(|_| terminal),
        date_added,
        date_updated: now,
        expected_time: monitor.next_checkin,
        timeout_at,
        log,
    };
    if let Some(timeout_at) = timeout_at {
        monitor.open_runs.push(OpenRun::of(&checkin, timeout_at));
    }
    Ok(checkin)
}

/// A check-in for a stored one (same id).
fn update(monitor: &mut MonitorEnv, mut stored: CheckIn, run: Run) -> Result<Updated, Rejection> {
    if stored.key != monitor.key {
        return Err(Rejection::WrongMonitor {
            id: stored.id,
            existing: Box::new(stored.key),
            sent: Box::new(monitor.key.clone()),
        });
    }
    let Run {
        status,
        duration_ms,
        log,
        now,
    } = run;
    let implicit_ms = || {
        let elapsed = (now - stored.date_added).abs().num_milliseconds();
        u64::try_from(elapsed)
            .unwrap_or(u64::MAX)
            .min(MAX_CHECKIN_DURATION_MS)
    };
    let counts = match (stored.status, status) {
        (CheckInStatus::InProgress, CheckInStatus::InProgress) => {
            let cap = timeout_after(stored.date_added, MAX_CONFIG_DURATION);
            let timeout_at = timeout_after(now, monitor.config.max_runtime).min(cap);
            stored.timeout_at = Some(timeout_at);
            // A tracked run is brought up to date with the heartbeat below.
            let runs = &mut monitor.open_runs;
            if !runs.iter().any(|r| r.id == stored.id) {
                if runs.len() >= MAX_OPEN_RUNS {
                    return Err(Rejection::TooManyOpenRuns(monitor.key.clone()));
                }
                // Forgotten (e.g. the monitor was re-enabled): track the run again.
                runs.push(OpenRun::of(&stored, timeout_at));
            }
            false
        }
        (CheckInStatus::InProgress, _) => {
            stored.status = status;
            stored.duration_ms = Some(duration_ms.unwrap_or_else(implicit_ms));
            stored.timeout_at = None;
            monitor.open_runs.retain(|r| r.id != stored.id);
            true
        }
        // A timed-out run takes one late finish; its duration marks it as taken.
        (CheckInStatus::Timeout, CheckInStatus::Ok | CheckInStatus::Error)
            if stored.duration_ms.is_none() =>
        {
            stored.duration_ms = Some(duration_ms.unwrap_or_else(implicit_ms));
            false
        }
        (_, CheckInStatus::InProgress) => return Ok(Updated::Ignored(stored)),
        (finished, _) => {
            return Err(Rejection::AlreadyFinished {
                id: stored.id,
                status: finished.as_str(),
            });
        }
    };
    stored.date_updated = now;
    if log.is_some() {
        stored.log = log;
    }
    if let (Some(run), Some(timeout_at)) = (
        monitor.open_runs.iter_mut().find(|r| r.id == stored.id),
        stored.timeout_at,
    ) {
        // The run holds its check-in as of this heartbeat.
        *run = OpenRun::of(&stored, timeout_at);
    }
    Ok(Updated::Changed(stored, counts))
}

/// A sign of life at `now` from a run that started at `date_added`: moves `last_checkin` and
/// `next_checkin` forward, never backwards.
fn checked_in(monitor: &mut MonitorEnv, date_added: DateTime<Utc>, now: DateTime<Utc>) {
    monitor.last_checkin = monitor.last_checkin.max(Some(date_added));
    if let Some(next) = monitor.config.next_checkin_after(now)
        && monitor.next_checkin.is_none_or(|current| next > current)
    {
        monitor.next_checkin = Some(next);
        monitor.next_checkin_latest = Some(monitor.config.latest_for(next));
    }
}
