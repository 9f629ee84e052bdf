//! The crontab grammar Sentry accepts, and which days a crontab matches.
//!
//! Sentry validates a monitor's crontab by normalizing it (whitespace collapsed, six lowercase
//! `@` aliases expanded, more than five fields refused) and then evaluating it with cronsim, a
//! Vixie/Debian-cron evaluator; whatever cronsim refuses, Sentry refuses. This file is that
//! grammar, written for Watchpost: names (`MON`, `JAN`, any case), ranges, steps, lists, `L` and
//! `LW` in the day-of-month field, `5L` (last Friday) and `1#2` (second Monday) in the
//! day-of-week field, `0` and `7` both Sunday. No `?`, no `W` other than `LW`, no `L` after a
//! day name, no seconds or years.
//!
//! One grammar for compile time and run time, so they cannot drift: `#[monitored_job]` checks
//! its `schedule` with it (the macro crate depends on this one), and the engine validates every
//! crontab and evaluates schedules with it. Standard library only, and pure.
//!
//! Day-of-month and day-of-week combine as in Vixie cron: when either field starts with `*`
//! (`*`, `*/10`) a day must match both; only when both are restricted does either suffice.

/// The aliases Sentry expands, exactly as it spells them (lowercase only).
pub const ALIASES: [(&str, &str); 6] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Day and month names, as cronsim reads them (three letters, any case).
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
/// The longest each month can be (February in a leap year).
const MAX_DAYS_IN_MONTH: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// One of the five fields, for messages and ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    fn range(self) -> (u32, u32) {
        match self {
            Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// What the field takes, appended to a message about it.
    fn takes(self) -> &'static str {
        match self {
            Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31, `L` (last day) or `LW` (last weekday)",
            Field::Month => "1-12 or JAN-DEC",
            Field::DayOfWeek => {
                "0-7 or SUN-SAT (0 and 7 are Sunday), `5L` (last Friday) or `1#2` (second Monday)"
            }
        }
    }
}

/// Why a crontab is refused. `Display` is a clause for a sentence about the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrontabError {
    /// Nothing but whitespace.
    Empty,
    /// An `@` word other than Sentry's six lowercase aliases (`@reboot`, `@DAILY`).
    Alias(String),
    /// Not five fields.
    Fields(usize),
    /// One field does not parse.
    Field {
        field: Field,
        text: String,
        reason: String,
    },
    /// The smallest day-of-month is longer than every selected month (`0 0 30 2 *`).
    NoSuchDay,
    /// The day fields together never select a day (`0 0 */20 * 5L`).
    NeverMatches,
}

impl std::fmt::Display for CrontabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrontabError::Empty => f.write_str("it is empty"),
            CrontabError::Alias(alias) => {
                let names: Vec<&str> = ALIASES.iter().map(|(name, _)| *name).collect();
                write!(
                    f,
                    "`{alias}` is not an alias Sentry accepts ({})",
                    names.join(", ")
                )?;
                let lower = alias.to_lowercase();
                if ALIASES.iter().any(|(name, _)| *name == lower) {
                    write!(f, "; aliases are lowercase: write `{lower}`")?;
                }
                Ok(())
            }
            CrontabError::Fields(found) => write!(
                f,
                "it has {found} fields; only 5-field crontab syntax (minute hour day-of-month \
                 month day-of-week) is supported"
            ),
            CrontabError::Field {
                field,
                text,
                reason,
            } => write!(
                f,
                "the {} field `{text}` is not valid: {reason}; it takes {}",
                field.name(),
                field.takes()
            ),
            CrontabError::NoSuchDay => f.write_str(
                "no selected month has that day of the month (February has at most 29 days, \
                 April, June, September and November 30)",
            ),
            CrontabError::NeverMatches => f.write_str(
                "the day-of-month and day-of-week fields never select the same day (when either \
                 starts with `*` a day must match both)",
            ),
        }
    }
}

/// A parsed crontab: which minutes, hours, days and months it selects, as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    minutes: u64,
    hours: u32,
    /// Bits 1-31.
    days: u32,
    /// `L`: the last day of the month.
    last_day: bool,
    /// `LW`: the last weekday (Monday to Friday) of the month.
    last_weekday: bool,
    /// Bits 1-12.
    months: u16,
    /// Bits 0-7 (0 and 7 are Sunday).
    weekdays: u8,
    /// `d#n`: per day of week 0-7, bits 1-5 for the n-th.
    nth: [u8; 8],
    /// `dL`: bits 0-7, the last such day of the month.
    last_of: u8,
    /// Both day fields must match (either starts with `*`), rather than either.
    pub day_and: bool,
    /// Neither the minute nor the hour field starts with `*`: a job at fixed wall-clock times,
    /// which cron runs once across a DST change (see the collector's schedule evaluation).
    pub fixed_time: bool,
}

/// Sentry's normalization: whitespace runs become one space, an `@` alias becomes its five
/// fields; anything else starting with `@`, or with more than five fields, is refused. The
/// result has exactly five fields.
pub fn normalize(expr: &str) -> Result<String, CrontabError> {
    let fields: Vec<&str> = expr.split(is_py_space).filter(|f| !f.is_empty()).collect();
    let joined = fields.join(" ");
    if joined.is_empty() {
        return Err(CrontabError::Empty);
    }
    if joined.starts_with('@') {
        return ALIASES
            .iter()
            .find(|(name, _)| *name == joined)
            .map(|(_, fields)| (*fields).to_owned())
            .ok_or(CrontabError::Alias(joined));
    }
    if fields.len() != 5 {
        return Err(CrontabError::Fields(fields.len()));
    }
    Ok(joined)
}

/// Normalizes, parses and checks that the expression ever selects a day: everything Sentry's
/// validator does. Returns the normalized expression and its [`Spec`].
pub fn check(expr: &str) -> Result<(String, Spec), CrontabError> {
    let normalized = normalize(expr)?;
    let spec = parse(&normalized)?;
    Ok((normalized, spec))
}

/// Python's `str.split()` whitespace, which is what Sentry and cronsim split on: Unicode
/// whitespace plus the ASCII separators `\x1c`-`\x1f`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Parses a normalized, five-field expression.
pub fn parse(normalized: &str) -> Result<Spec, CrontabError> {
    // cronsim upper-cases the whole expression (Unicode rules, as Python's `str.upper`).
    let upper = normalized.to_uppercase();
    let parts: Vec<&str> = upper.split(is_py_space).filter(|f| !f.is_empty()).collect();
    if parts.len() != 5 {
        return Err(CrontabError::Fields(parts.len()));
    }
    let original: Vec<&str> = normalized
        .split(is_py_space)
        .filter(|f| !f.is_empty())
        .collect();
    let mut sets = Vec::with_capacity(5);
    for (i, field) in Field::ALL.into_iter().enumerate() {
        let items = parse_field(field, parts[i]).map_err(|reason| CrontabError::Field {
            field,
            text: original.get(i).copied().unwrap_or(parts[i]).to_owned(),
            reason,
        })?;
        sets.push(items);
    }
    let mut spec = Spec {
        // Each field's values are within its range, so the bits fit each width.
        minutes: numbers(&sets[0]),
        hours: numbers(&sets[1]) as u32,
        days: numbers(&sets[2]) as u32,
        last_day: sets[2].contains(&Item::Last),
        last_weekday: sets[2].contains(&Item::LastWeekday),
        months: numbers(&sets[3]) as u16,
        weekdays: numbers(&sets[4]) as u8,
        nth: [0; 8],
        last_of: 0,
        day_and: parts[2].starts_with('*') || parts[4].starts_with('*'),
        fixed_time: !parts[0].starts_with('*') && !parts[1].starts_with('*'),
    };
    for item in &sets[4] {
        match *item {
            Item::Nth(d, n) => spec.nth[d as usize] |= 1 << n,
            Item::LastOf(d) => spec.last_of |= 1 << d,
            _ => {}
        }
    }
    spec.check_days_exist()?;
    if !spec.ever_matches() {
        return Err(CrontabError::NeverMatches);
    }
    Ok(spec)
}

/// The plain numbers of a field's set, as bits.
fn numbers(items: &[Item]) -> u64 {
    items.iter().fold(0, |bits, item| match item {
        Item::Num(n) => bits | 1 << n,
        _ => bits,
    })
}

/// One element of a field's set, as cronsim keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Num(u32),
    Last,
    LastWeekday,
    Nth(u32, u32),
    LastOf(u32),
}

/// A field's text (already upper-cased) to its set, in cronsim's order of cases; the error is
/// the reason for the message.
fn parse_field(field: Field, s: &str) -> Result<Vec<Item>, String> {
    if s == "*" {
        let (lo, hi) = field.range();
        return Ok((lo..=hi).map(Item::Num).collect());
    }
    if s.contains(',') {
        let mut all = Vec::new();
        for term in s.split(',') {
            all.extend(parse_field(field, term)?);
        }
        all.sort_unstable();
        all.dedup();
        return Ok(all);
    }
    if field == Field::DayOfWeek && s.contains('L') {
        // cronsim drops the last character, whatever it is, and wants digits before it.
        let value = s.char_indices().last().map_or("", |(i, _)| &s[..i]);
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(
                "`L` in the day-of-week field follows a day number, as in `5L` for the \
                        last Friday of the month"
                    .to_owned(),
            );
        }
        return Ok(vec![Item::LastOf(value_of(field, value)?)]);
    }
    if field == Field::DayOfWeek && s.contains('#') {
        let (term, nth) = s.split_once('#').unwrap_or((s, ""));
        let nth = digits(nth).filter(|n| (1..=5).contains(n)).ok_or_else(|| {
            "`#` is followed by 1 to 5, as in `1#2` for the second Monday of the month".to_owned()
        })?;
        return Ok(vec![Item::Nth(value_of(field, term)?, nth as u32)]);
    }
    if let Some((term, step)) = s.split_once('/') {
        let step = digits(step).filter(|&n| n > 0).ok_or_else(|| {
            format!(
                "the step after `/` must be a whole number above 0, as in `*/10`{}",
                other_syntax_hint(step)
            )
        })?;
        let items = parse_field(field, term)?;
        if items == [Item::Last] || items == [Item::LastWeekday] {
            return Ok(items);
        }
        let numbers: Vec<u32> = match items.as_slice() {
            [Item::Num(start)] => (*start..=field.range().1).collect(),
            _ => items
                .iter()
                .filter_map(|item| match item {
                    Item::Num(n) => Some(*n),
                    _ => None,
                })
                .collect(),
        };
        let step = usize::try_from(step).unwrap_or(usize::MAX);
        return Ok(numbers.into_iter().step_by(step).map(Item::Num).collect());
    }
    if let Some((start, end)) = s.split_once('-') {
        let start = value_of(field, start)?;
        let end = value_of(field, end)?;
        if end < start {
            return Err(format!(
                "the range runs backwards ({start} is after {end}); write the smaller value first"
            ));
        }
        return Ok((start..=end).map(Item::Num).collect());
    }
    if field == Field::DayOfMonth && s == "LW" {
        return Ok(vec![Item::LastWeekday]);
    }
    if field == Field::DayOfMonth && s == "L" {
        return Ok(vec![Item::Last]);
    }
    Ok(vec![Item::Num(value_of(field, s)?)])
}

/// A single value: a name where the field has names, else a number in the field's range.
fn value_of(field: Field, s: &str) -> Result<u32, String> {
    let named = match field {
        Field::Month => MONTH_NAMES
            .iter()
            .position(|name| *name == s)
            .map(|i| i + 1),
        Field::DayOfWeek => DAY_NAMES.iter().position(|name| *name == s),
        _ => None,
    };
    if let Some(index) = named {
        return u32::try_from(index).map_err(|_| "a name out of range".to_owned());
    }
    let (lo, hi) = field.range();
    match digits(s) {
        Some(n) if (u64::from(lo)..=u64::from(hi)).contains(&n) => {
            u32::try_from(n).map_err(|_| "a number out of range".to_owned())
        }
        Some(n) => Err(format!("{n} is out of range")),
        None if s.is_empty() => {
            Err("a value is missing (an empty list item, range end or step)".to_owned())
        }
        None => match other_syntax_hint(s) {
            "" => Err(format!("`{s}` is not a number or name")),
            hint => Err(format!("in `{s}`, {}", hint.trim_start_matches("; "))),
        },
    }
}

/// ASCII digits only (cronsim refuses signs, spaces and other scripts' digits), saturating.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Names the extension a person probably meant, when the text uses one Sentry refuses.
fn other_syntax_hint(s: &str) -> &'static str {
    if s.contains('?') {
        "; `?` is not supported, use `*`"
    } else if s.contains('W') {
        "; `W` (nearest weekday) is not supported, only `LW` (the last weekday of the month)"
    } else if s.contains('L') {
        "; `L` stands alone in the day-of-month field, or follows a day number in the \
         day-of-week field (`5L`)"
    } else if s.contains('#') {
        "; `#` is only for the day-of-week field, as in `1#2`"
    } else {
        ""
    }
}

impl Spec {
    /// Whether minute `m` (0-59) is selected.
    pub fn minute(&self, m: u32) -> bool {
        m < 60 && self.minutes & (1 << m) != 0
    }

    /// Whether hour `h` (0-23) is selected.
    pub fn hour(&self, h: u32) -> bool {
        h < 24 && self.hours & (1 << h) != 0
    }

    /// Whether month `m` (1-12) is selected.
    pub fn month(&self, m: u32) -> bool {
        m < 13 && self.months & (1 << m) != 0
    }

    /// The one selected minute, when exactly one is (evaluation jumps straight to it).
    pub fn only_minute(&self) -> Option<u32> {
        (self.minutes.count_ones() == 1).then(|| self.minutes.trailing_zeros())
    }

    /// Whether the date `year-month-day` is selected by the two day fields.
    pub fn day(&self, year: i32, month: u32, day: u32) -> bool {
        let length = days_in_month(year, month);
        self.day_parts(day, length, weekday(year, month, day))
    }

    /// The day fields on day `day` of a month `length` days long, `weekday` Monday = 0.
    fn day_parts(&self, day: u32, length: u32, weekday: u32) -> bool {
        let dom = self.dom(day, length, weekday);
        let dow = self.dow(day, length, weekday);
        if self.day_and { dom && dow } else { dom || dow }
    }

    fn dom(&self, day: u32, length: u32, weekday: u32) -> bool {
        if self.days & (1 << day) != 0 || (self.last_day && day == length) {
            return true;
        }
        if self.last_weekday {
            // The last day, or the Friday before a weekend that ends the month.
            let last_weekday_of_month = match (weekday + length - day) % 7 {
                6 => length - 2,
                5 => length - 1,
                _ => length,
            };
            return day == last_weekday_of_month;
        }
        false
    }

    fn dow(&self, day: u32, length: u32, weekday: u32) -> bool {
        // cron numbers Sunday 0 (or 7), Monday 1: Python's weekday() + 1, and that modulo 7.
        let iso = weekday + 1;
        let bits = (1u8 << iso) | (1u8 << (iso % 7));
        if self.weekdays & bits != 0 {
            return true;
        }
        if self.last_of & bits != 0 && day + 7 > length {
            return true;
        }
        let nth = day.div_ceil(7);
        (self.nth[iso as usize] | self.nth[(iso % 7) as usize]) & (1 << nth) != 0
    }

    /// cronsim refuses a day-of-month whose smallest value is above 29 and longer than every
    /// selected month, before it evaluates anything (`0 0 30 2 *`, even with a day of week).
    fn check_days_exist(&self) -> Result<(), CrontabError> {
        if self.last_day || self.last_weekday || self.days == 0 {
            return Ok(());
        }
        let smallest = self.days.trailing_zeros();
        let longest = (1..=12)
            .filter(|&m| self.month(m))
            .map(|m| MAX_DAYS_IN_MONTH[m as usize])
            .max()
            .unwrap_or(0);
        if smallest > 29 && smallest > longest {
            return Err(CrontabError::NoSuchDay);
        }
        Ok(())
    }

    /// Whether any date selects: every month length, with every weekday it can start on, occurs
    /// in the Gregorian calendar, so trying each combination decides it exactly.
    fn ever_matches(&self) -> bool {
        (1..=12).filter(|&m| self.month(m)).any(|month| {
            let lengths: &[u32] = match month {
                2 => &[28, 29],
                4 | 6 | 9 | 11 => &[30],
                _ => &[31],
            };
            lengths.iter().any(|&length| {
                (0..7).any(|first| {
                    (1..=length).any(|day| self.day_parts(day, length, (first + day - 1) % 7))
                })
            })
        })
    }
}

/// Whether `year` is a Gregorian leap year.
fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The number of days in `month` of `year`.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The day of the week, Monday = 0 (Sakamoto's method on the proleptic Gregorian calendar).
pub fn weekday(year: i32, month: u32, day: u32) -> u32 {
    const OFFSETS: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if month < 3 { year - 1 } else { year };
    let index = usize::try_from(month.clamp(1, 12) - 1).unwrap_or(0);
    let sunday_zero = (y + y.div_euclid(4) - y.div_euclid(100)
        + y.div_euclid(400)
        + OFFSETS[index]
        + i32::try_from(day).unwrap_or(0))
    .rem_euclid(7);
    u32::try_from((sunday_zero + 6) % 7).unwrap_or(0)
}
