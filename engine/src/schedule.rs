//! Schedule math: when the next check-in is expected, in the monitor's timezone, correct across
//! DST transitions. Results are instants in UTC, which is what everything else compares.
//! Pure functions of their arguments; never reads a clock.

use chrono::{
    DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use super::config::{IntervalUnit, MonitorConfig, Schedule, cached_crontab};
use super::crontab::Spec;

impl Schedule {
    /// The first expected time strictly after `after`, evaluated in `tz`.
    ///
    /// Crontab: the next occurrence after `after`, as Sentry computes it (cronsim, which follows
    /// Debian cron; see `next_crontab`): a fixed-time job (neither minute nor hour starts with
    /// `*`) is evaluated on the wall clock, so a time in a spring-forward gap moves to the first
    /// valid minute after the gap and a time in a fall-back overlap runs once, at the earlier
    /// instant; a job whose minute or hour starts with `*` is evaluated on elapsed time, so it
    /// skips the gap and runs in both passes of the overlap.
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
                next_crontab(&parsed.spec, tz, after)
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
    !(1..5000).contains(&t.year())
}

/// Real-world gaps are at most a day long (Samoa, 2011); stepping minutes past one ends.
const MAX_GAP_MINUTES: i64 = 25 * 60;

/// Drops the part of `t` below `unit_secs` (1 or 60) seconds.
fn truncate(t: DateTime<Utc>, unit_secs: u32) -> DateTime<Utc> {
    let keep = t.second() - t.second() % unit_secs;
    t.with_second(keep)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// The instant of a wall-clock time in `tz`: the earlier one in a fall-back overlap, the first
/// valid minute after a spring-forward gap (cron's rule for fixed-time jobs).
fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
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

/// How many occurrences [`next_crontab`] looks at for one after `after`. Only the first pass of a
/// fall-back overlap can put occurrences at or before `after` (below), at most one a minute, and
/// real overlaps last an hour or two; this bounds the walk should a zone ever repeat a whole day.
const CRONTAB_TRIES: usize = 25 * 60;

/// The first occurrence of `spec` strictly after `after` in `tz`, computed as cronsim (the
/// evaluator Sentry's `get_next_schedule` uses) computes the first one from `after`: start at
/// `after`'s wall-clock minute, step one minute, then advance month, day, hour and minute
/// until all match, giving up 50 years on.
///
/// One difference, on purpose: cronsim evaluates a fixed-time job on the wall clock and forgets
/// which pass of a fall-back overlap `after` was in, so from a check-in in the second pass
/// (01:10 EST after the 01:30 EDT run) its first answer is the 01:30 already passed (an
/// expected time in the past, which Sentry then reports missed). Watchpost takes cronsim's next
/// answer after that one instead, so the expected time is always after `after`.
pub(super) fn next_crontab(spec: &Spec, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut walk = Walk::start(spec, tz, after)?;
    (0..CRONTAB_TRIES)
        .map_while(|_| walk.next())
        .find(|t| *t > after)
}

/// cronsim's iteration state: a wall-clock time in `tz`, either on the wall clock alone
/// (`aware == false`, for fixed-time jobs) or tied to an instant (`fold` says which pass of
/// an overlap, as Python's `datetime.fold`), so that stepping is elapsed time.
struct Walk<'a> {
    spec: &'a Spec,
    tz: Tz,
    local: NaiveDateTime,
    fold: bool,
    aware: bool,
}

/// cronsim gives up when no time matches within this many years of the start.
const GIVE_UP_YEARS: i32 = 50;

impl<'a> Walk<'a> {
    fn start(spec: &'a Spec, tz: Tz, after: DateTime<Utc>) -> Option<Self> {
        let (local, fold) = to_local(tz, after);
        Some(Walk {
            spec,
            tz,
            local: local.with_second(0)?.with_nanosecond(0)?,
            fold: fold && !spec.fixed_time,
            aware: !spec.fixed_time,
        })
    }

    /// The next occurrence (cronsim's `__next__`).
    fn next(&mut self) -> Option<DateTime<Utc>> {
        self.tick(1)?;
        self.advance()?;
        if self.aware {
            return to_utc(self.tz, self.local, self.fold);
        }
        // A wall-clock time in a spring-forward gap runs at the first minute after it.
        for _ in 0..=MAX_GAP_MINUTES {
            if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                self.tz.from_local_datetime(&self.local)
            {
                return Some(t.with_timezone(&Utc));
            }
            self.local = self.local.checked_add_signed(TimeDelta::minutes(1))?;
        }
        None
    }

    /// Moves `minutes` forward: on the wall clock, or in elapsed time through UTC.
    fn tick(&mut self, minutes: i64) -> Option<()> {
        let step = TimeDelta::minutes(minutes);
        if self.aware {
            let t = to_utc(self.tz, self.local, self.fold)?.checked_add_signed(step)?;
            (self.local, self.fold) = to_local(self.tz, t);
        } else {
            self.local = self.local.checked_add_signed(step)?;
        }
        Some(())
    }

    /// Sets the wall-clock time to `local`, keeping the pass (`datetime.replace`).
    fn set_local(&mut self, local: NaiveDateTime) {
        self.local = local;
    }

    /// Midnight of `date`, first pass (`datetime.combine`).
    fn set_midnight(&mut self, date: NaiveDate) {
        self.local = date.and_time(NaiveTime::MIN);
        self.fold = false;
    }

    fn advance(&mut self) -> Option<()> {
        let start_year = self.local.year();
        loop {
            self.advance_month()?;
            if self.local.year() > start_year + GIVE_UP_YEARS {
                return None;
            }
            if self.advance_day()? || self.advance_hour()? || self.advance_minute()? {
                continue;
            }
            return Some(());
        }
    }

    fn advance_month(&mut self) -> Option<()> {
        if self.spec.month(self.local.month()) {
            return Some(());
        }
        let mut needle = self.local.date();
        while !self.spec.month(needle.month()) {
            needle = needle.with_day(1)?.checked_add_months(Months::new(1))?;
        }
        self.set_midnight(needle);
        Some(())
    }

    /// `Some(true)` when it moved (to midnight of a later day).
    fn advance_day(&mut self) -> Option<bool> {
        let mut needle = self.local.date();
        if self.matches_day(needle) {
            return Some(false);
        }
        while !self.matches_day(needle) {
            needle = needle.succ_opt()?;
            if needle.day() == 1 {
                // A new month: let the month check run again.
                break;
            }
        }
        self.set_midnight(needle);
        Some(true)
    }

    fn advance_hour(&mut self) -> Option<bool> {
        if self.spec.hour(self.local.hour()) {
            return Some(false);
        }
        self.set_local(self.local.with_minute(0)?);
        while !self.spec.hour(self.local.hour()) {
            self.tick(60)?;
            if self.local.hour() == 0 {
                break;
            }
        }
        Some(true)
    }

    fn advance_minute(&mut self) -> Option<bool> {
        if self.spec.minute(self.local.minute()) {
            return Some(false);
        }
        if let Some(target) = self.spec.only_minute() {
            let delta = (i64::from(target) - i64::from(self.local.minute())).rem_euclid(60);
            self.tick(delta)?;
        }
        while !self.spec.minute(self.local.minute()) {
            self.tick(1)?;
            if self.local.minute() == 0 {
                break;
            }
        }
        Some(true)
    }

    fn matches_day(&self, date: NaiveDate) -> bool {
        self.spec.day(date.year(), date.month(), date.day())
    }
}

/// The wall-clock time of `t` in `tz`, and whether it is the second pass of an overlap.
fn to_local(tz: Tz, t: DateTime<Utc>) -> (NaiveDateTime, bool) {
    let local = t.with_timezone(&tz).naive_local();
    let second_pass = matches!(
        tz.from_local_datetime(&local),
        LocalResult::Ambiguous(first, _) if first.with_timezone(&Utc) != t
    );
    (local, second_pass)
}

/// The instant of a wall-clock time with Python's rules (PEP 495): in an overlap the first
/// pass unless `fold`; in a gap, the offset from before the gap unless `fold` (after it).
fn to_utc(tz: Tz, local: NaiveDateTime, fold: bool) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, second) => {
            Some(if fold { second } else { first }.with_timezone(&Utc))
        }
        LocalResult::None => {
            let direction = if fold { 1 } else { -1 };
            let offset = (1..=MAX_GAP_MINUTES).find_map(|m| {
                let probe = local.checked_add_signed(TimeDelta::minutes(direction * m))?;
                match tz.from_local_datetime(&probe) {
                    LocalResult::Single(t) => Some(t.offset().fix()),
                    LocalResult::Ambiguous(first, second) => {
                        Some(if fold { first } else { second }.offset().fix())
                    }
                    LocalResult::None => None,
                }
            })?;
            let utc = local
                .checked_sub_signed(TimeDelta::seconds(i64::from(offset.local_minus_utc())))?;
            Some(Utc.from_utc_datetime(&utc))
        }
    }
}
