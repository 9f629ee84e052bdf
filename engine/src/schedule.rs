//! Schedule math: when the next check-in is expected, in the monitor's timezone, correct across
//! DST transitions. Results are instants in UTC, which is what everything else compares.
//! Pure functions of their arguments; never reads a clock.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use chrono::{
    DateTime, Days, LocalResult, Months, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use super::config::{IntervalUnit, MonitorConfig, Schedule, parse_crontab};
use super::validate::ConfigError;

/// A crontab expression, parsed and checked once.
#[derive(Debug)]
pub(super) struct ParsedCrontab {
    /// The normalized expression (aliases expanded, whitespace collapsed).
    pub(super) normalized: String,
    /// croner's schedule for it.
    pub(super) cron: croner::Cron,
}

/// How many distinct valid expressions the memo holds before it starts over. Real deployments
/// use a handful of schedules; the cap only bounds memory against a client sending many.
const CRONTAB_CACHE_CAP: usize = 4096;

/// Process-wide memo of [`parse_crontab`] for valid expressions, keyed by the expression as
/// given (normalized expressions, as stored, key themselves).
///
/// Memoization keeps the engine pure: the value for a key is a deterministic function of the
/// key alone, so every call returns what an uncached parse would (same inputs, same outputs),
/// with no I/O and no clock. Invalid expressions are not cached; they fail the same way each time.
static CRONTAB_CACHE: LazyLock<parking_lot::Mutex<HashMap<String, Arc<ParsedCrontab>>>> =
    LazyLock::new(|| parking_lot::Mutex::new(HashMap::new()));

/// [`parse_crontab`] (including its never-matches check), parsed at most once per distinct
/// valid expression while the memo holds it.
pub(super) fn cached_crontab(expr: &str) -> Result<Arc<ParsedCrontab>, ConfigError> {
    if let Some(hit) = CRONTAB_CACHE.lock().get(expr) {
        return Ok(Arc::clone(hit));
    }
    // Parse outside the lock; a concurrent miss on the same expression parses twice, harmlessly.
    let (normalized, cron) = parse_crontab(expr)?;
    let parsed = Arc::new(ParsedCrontab { normalized, cron });
    let mut cache = CRONTAB_CACHE.lock();
    if cache.len() >= CRONTAB_CACHE_CAP {
        cache.clear();
    }
    cache.insert(expr.to_owned(), Arc::clone(&parsed));
    Ok(parsed)
}

impl Schedule {
    /// The first expected time strictly after `after`, evaluated in `tz`.
    ///
    /// Crontab: the next occurrence after `after`, with croner's DST rules: a fixed-time job
    /// whose time falls in a spring-forward gap runs at the first valid time after the gap; in a
    /// fall-back overlap a fixed-time job runs once (at the earlier instant) while an
    /// interval/wildcard job (e.g. hourly) runs at both instants.
    ///
    /// Interval (anchored at the reference, as in Sentry): `after + value·unit`. Seconds,
    /// minutes and hours are elapsed time; days, weeks, months and years are calendar steps on
    /// the wall clock in `tz` (a month from Jan 31 is the last day of February; a wall time in a
    /// gap moves to the first valid time after it). The result is truncated to the minute for
    /// units of a minute or more, as Sentry does, and to the second for seconds.
    ///
    /// `None` only if no such time exists before year 5000 or the arithmetic overflows.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if beyond_horizon(after) {
            return None;
        }
        match self {
            Schedule::Crontab(expr) => {
                let parsed = cached_crontab(expr).ok()?;
                let next = parsed
                    .cron
                    .find_next_occurrence(&after.with_timezone(&tz), false)
                    .ok()?
                    .with_timezone(&Utc);
                // croner works in whole seconds; never answer with `after` itself.
                (next > after).then_some(next)
            }
            Schedule::Interval { value, unit } => interval_slot(*value, *unit, tz, after, 1),
        }
    }

    /// The first slot strictly after `now` on the grid that starts at `anchor`, where `anchor`
    /// is itself a slot (a `next_checkin` that was missed).
    ///
    /// Crontab: the next occurrence after `now`. Interval: `anchor + k·interval` for the
    /// smallest k ≥ 1 that is after `now`, as Sentry continues the grid of the missed slot. Costs
    /// O(1) schedule evaluations however long ago `anchor` was.
    pub(super) fn first_slot_after(
        &self,
        tz: Tz,
        anchor: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let Schedule::Interval { value, unit } = *self else {
            return self.next_after(tz, now.max(anchor));
        };
        if anchor > now {
            return interval_slot(value, unit, tz, anchor, 1);
        }
        // Estimate k from the average unit length, then correct: calendar units differ from
        // the average by at most a day or so per step, so the loops run a handful of times.
        let step = i64::from(value).checked_mul(i64::try_from(unit.approx_secs()).ok()?)?;
        let elapsed = (now - anchor).num_seconds();
        let mut k = u32::try_from((elapsed / step).max(1)).ok()?;
        while k > 1 && interval_slot(value, unit, tz, anchor, k)? > now {
            k -= 1;
        }
        loop {
            let slot = interval_slot(value, unit, tz, anchor, k)?;
            if slot > now {
                return Some(slot);
            }
            k = k.checked_add(1)?;
        }
    }
}

/// `reference + k·value·unit`, truncated as [`Schedule::next_after`] documents.
fn interval_slot(
    value: u32,
    unit: IntervalUnit,
    tz: Tz,
    reference: DateTime<Utc>,
    k: u32,
) -> Option<DateTime<Utc>> {
    if beyond_horizon(reference) {
        return None;
    }
    let n = u64::from(value) * u64::from(k);
    let elapsed = |secs_per_unit: u64| {
        let secs = i64::try_from(n.checked_mul(secs_per_unit)?).ok()?;
        reference.checked_add_signed(TimeDelta::try_seconds(secs)?)
    };
    match unit {
        IntervalUnit::Second => elapsed(1).map(|t| truncate(t, 1)),
        IntervalUnit::Minute => elapsed(60).map(|t| truncate(t, 60)),
        IntervalUnit::Hour => elapsed(3600).map(|t| truncate(t, 60)),
        IntervalUnit::Day | IntervalUnit::Week | IntervalUnit::Month | IntervalUnit::Year => {
            let local = reference.with_timezone(&tz).naive_local();
            let stepped = match unit {
                IntervalUnit::Day => local.checked_add_days(Days::new(n)),
                IntervalUnit::Week => local.checked_add_days(Days::new(n.checked_mul(7)?)),
                IntervalUnit::Month => {
                    local.checked_add_months(Months::new(u32::try_from(n).ok()?))
                }
                _ => local.checked_add_months(Months::new(u32::try_from(n.checked_mul(12)?).ok()?)),
            }?;
            resolve_local(tz, stepped.with_second(0)?.with_nanosecond(0)?)
        }
    }
}

/// Whether `t` lies outside the years 1 to 4999, where no schedule is evaluated. Near chrono's
/// own limits (years ±262 143) converting to a timezone or walking a crontab panics inside
/// chrono; the fuzzer found that with far-future and far-past instants, so the horizon is
/// checked before any of it.
fn beyond_horizon(t: DateTime<Utc>) -> bool {
    !(1..5000).contains(&chrono::Datelike::year(&t))
}

/// Drops the part of `t` below `unit_secs` (1 or 60) seconds.
fn truncate(t: DateTime<Utc>, unit_secs: u32) -> DateTime<Utc> {
    let keep = t.second() - t.second() % unit_secs;
    t.with_second(keep)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// The instant of a wall-clock time in `tz`: the earlier one in a fall-back overlap, the first
/// valid minute after a spring-forward gap (croner's rule for fixed-time jobs).
fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    // Real-world gaps are at most a day long (Samoa, 2011); step minutes until past one.
    const MAX_GAP_MINUTES: i64 = 25 * 60;
    for minutes in 0..=MAX_GAP_MINUTES {
        let probe = local.checked_add_signed(TimeDelta::minutes(minutes))?;
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                return Some(t.with_timezone(&Utc));
            }
            LocalResult::None => {}
        }
    }
    None
}

impl MonitorConfig {
    /// When the next check-in is expected after a check-in received at `reference`.
    pub fn next_checkin_after(&self, reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.next_after(self.tz(), reference)
    }

    /// The missed deadline for a check-in expected at `next_checkin`: `next_checkin + margin`.
    pub fn latest_for(&self, next_checkin: DateTime<Utc>) -> DateTime<Utc> {
        TimeDelta::from_std(self.checkin_margin)
            .ok()
            .and_then(|margin| next_checkin.checked_add_signed(margin))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}
