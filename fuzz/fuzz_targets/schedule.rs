//! Schedule parsing and schedule math: a crontab or interval and a timezone, both taken from the
//! input, and the next occurrence after an arbitrary instant. Parsing never panics; a schedule
//! that parsed yields a monitor config that validates, and a next occurrence is strictly after
//! the reference and itself has a next.
#![no_main]

use chrono::{DateTime, Utc};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use watchpost_engine::{IntervalUnit, MonitorConfig, Schedule, parse_timezone};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    crontab: &'a str,
    interval: u64,
    unit: u8,
    timezone: Timezone<'a>,
    /// Seconds since the epoch, clamped into chrono's range.
    after: i64,
    subsec: u32,
}

#[derive(Debug, Arbitrary)]
enum Timezone<'a> {
    /// One of the zones chrono-tz knows, so DST rules are exercised, not just rejection.
    Known(u16),
    /// A name as a person would type it.
    Named(&'a str),
}

const UNITS: [IntervalUnit; 7] = [
    IntervalUnit::Second,
    IntervalUnit::Minute,
    IntervalUnit::Hour,
    IntervalUnit::Day,
    IntervalUnit::Week,
    IntervalUnit::Month,
    IntervalUnit::Year,
];

fuzz_target!(|input: Input<'_>| {
    let timezone = match input.timezone {
        Timezone::Known(i) => {
            let zones = chrono_tz::TZ_VARIANTS;
            zones[usize::from(i) % zones.len()].name()
        }
        Timezone::Named(name) => name,
    };
    let Ok(tz) = parse_timezone(timezone) else {
        return;
    };
    let secs = input.after.clamp(
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    let after = DateTime::from_timestamp(secs, input.subsec % 1_000_000_000)
        .unwrap_or(DateTime::UNIX_EPOCH);

    let unit = UNITS[usize::from(input.unit) % UNITS.len()];
    for schedule in [
        Schedule::crontab(input.crontab),
        Schedule::interval(input.interval, unit),
    ]
    .into_iter()
    .flatten()
    {
        schedule.validate().expect("a built schedule validates");
        let mut config = MonitorConfig::new(schedule.clone());
        config.timezone = tz.name().to_owned();
        config.validate().expect("a valid schedule in a known zone validates");
        let Some(next) = schedule.next_after(tz, after) else {
            continue;
        };
        assert!(next > after, "{schedule:?} in {tz}: {next} is not after {after}");
        if let Some(again) = schedule.next_after(tz, next) {
            assert!(again > next, "{schedule:?} in {tz}: {again} is not after {next}");
        }
        if let Some(next) = config.next_checkin_after(after) {
            let _ = config.latest_for(next);
        }
    }
});
