//! The compact encoding of the two records every check-in writes: the monitor state
//! (`monitors`) and the check-in (`checkins`).
//!
//! Each is written on every check-in, and sled copies it again into its log, into the group's
//! redo record and whenever it rewrites a page; as JSON a monitor state was ~620 bytes (~850
//! with an open run) and a check-in ~300. Here they are about a third of that, and
//! timestamps are two integers instead of formatted text (`benches/README.md`, "Figures").
//!
//! A record starts with a format byte: [`COMPACT`] for this encoding, `{` for the JSON written
//! before it (and by the upgrade from schema 2), which [`decode_monitor`] and
//! [`decode_checkin`] still read. Any other first byte, a truncated record or trailing bytes
//! are refused as corrupt, never misread.
//!
//! Layout: integers little-endian; a string is its length (u32) and UTF-8 bytes; a time is
//! seconds (i64) and nanoseconds (u32) since the epoch; a duration is seconds (u64) and
//! nanoseconds (u32); an option is `0` or `1` followed by the value; an enum is one byte (the
//! tables below). Fields in the order of the structs, each struct destructured in full, so a
//! new field does not compile until it is encoded here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::engine::{
    Acknowledgement, CheckIn, CheckInStatus, FailureCounts, Handling, Incident, IncidentKind,
    IncidentReason, IntervalUnit, MonitorConfig, MonitorEnv, MonitorKey, MonitorStatus, OpenRun,
    Schedule, Streak,
};

/// First byte of a record in this encoding (version 1 of it). Check-ins are still written
/// in it; monitor records written before [`COMPACT_HANDLED`] are read in it.
pub(super) const COMPACT: u8 = 1;

/// First byte of a monitor record in version 2: version 1 with the open incident's
/// [`Handling`] (acknowledgement, repeats, held alert) after its other fields, and the
/// monitor's `snoozed_until` at the end.
pub(super) const COMPACT_HANDLED: u8 = 2;

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A JSON record did not decode.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A compact record did not decode.
    #[error("compact record: {0}")]
    Compact(&'static str),
}

/// A monitor state as stored.
pub(super) fn encode_monitor(m: &MonitorEnv) -> Vec<u8> {
    encode_monitor_in(m, COMPACT_HANDLED)
}

/// A monitor state in compact format `format` (the older one only for the tests that read
/// what earlier builds wrote).
fn encode_monitor_in(m: &MonitorEnv, format: u8) -> Vec<u8> {
    let MonitorEnv {
        key,
        config,
        status,
        muted,
        snoozed_until,
        disabled,
        last_checkin,
        last_ok,
        next_checkin,
        next_checkin_latest,
        open_incident,
        streak,
        open_runs,
        seq,
    } = m;
    let mut w = Writer(Vec::with_capacity(256), format);
    w.u8(format);
    w.key(key);
    w.config(config);
    w.u8(monitor_status_tag(*status));
    w.bool(*muted);
    w.bool(*disabled);
    w.opt(last_checkin, Writer::time);
    w.opt(last_ok, Writer::time);
    w.opt(next_checkin, Writer::time);
    w.opt(next_checkin_latest, Writer::time);
    w.opt(open_incident, Writer::incident);
    w.streak(streak);
    w.u32(u32::try_from(open_runs.len()).expect("at most MAX_OPEN_RUNS open runs"));
    for run in open_runs {
        w.open_run(run);
    }
    w.u64(*seq);
    if format >= COMPACT_HANDLED {
        w.opt(snoozed_until, Writer::time);
    }
    w.0
}

/// A check-in as stored.
pub(super) fn encode_checkin(c: &CheckIn) -> Vec<u8> {
    let CheckIn {
        id,
        key,
        status,
        duration_ms,
        date_added,
        date_updated,
        expected_time,
        timeout_at,
        log,
    } = c;
    let mut w = Writer(
        Vec::with_capacity(96 + log.as_ref().map_or(0, String::len)),
        COMPACT,
    );
    w.u8(COMPACT);
    w.uuid(id);
    w.key(key);
    w.u8(checkin_status_tag(*status));
    w.opt(duration_ms, |w, ms| w.u64(*ms));
    w.time(date_added);
    w.time(date_updated);
    w.opt(expected_time, Writer::time);
    w.opt(timeout_at, Writer::time);
    w.opt(log, |w, log| w.str(log));
    w.0
}

/// A stored monitor state, in either encoding.
pub(super) fn decode_monitor(bytes: &[u8]) -> Result<MonitorEnv, CodecError> {
    let Some(body) = compact(bytes, &[COMPACT, COMPACT_HANDLED]) else {
        return Ok(serde_json::from_slice(bytes)?);
    };
    let (version, body) = body?;
    let mut r = Reader(body, version);
    let monitor = MonitorEnv {
        key: r.key()?,
        config: r.config()?,
        status: monitor_status(r.u8()?)?,
        muted: r.bool()?,
        // Read at the end of a format 2 record (below).
        snoozed_until: None,
        disabled: r.bool()?,
        last_checkin: r.opt(Reader::time)?,
        last_ok: r.opt(Reader::time)?,
        next_checkin: r.opt(Reader::time)?,
        next_checkin_latest: r.opt(Reader::time)?,
        open_incident: r.opt(Reader::incident)?,
        streak: r.streak()?,
        open_runs: {
            let n = r.u32()?;
            (0..n).map(|_| r.open_run()).collect::<Result<_, _>>()?
        },
        seq: r.u64()?,
    };
    let monitor = MonitorEnv {
        snoozed_until: if version >= COMPACT_HANDLED {
            r.opt(Reader::time)?
        } else {
            None
        },
        ..monitor
    };
    r.end()?;
    Ok(monitor)
}

/// A stored check-in, in either encoding.
pub(super) fn decode_checkin(bytes: &[u8]) -> Result<CheckIn, CodecError> {
    let Some(body) = compact(bytes, &[COMPACT]) else {
        return Ok(serde_json::from_slice(bytes)?);
    };
    let (version, body) = body?;
    let mut r = Reader(body, version);
    let checkin = CheckIn {
        id: r.uuid()?,
        key: r.key()?,
        status: checkin_status(r.u8()?)?,
        duration_ms: r.opt(Reader::u64)?,
        date_added: r.time()?,
        date_updated: r.time()?,
        expected_time: r.opt(Reader::time)?,
        timeout_at: r.opt(Reader::time)?,
        log: r.opt(Reader::string)?,
    };
    r.end()?;
    Ok(checkin)
}

/// The format byte and body of a compact record in one of `versions`; `None` for JSON (left
/// to serde, which refuses anything else that does not start like a JSON document).
fn compact<'a>(bytes: &'a [u8], versions: &[u8]) -> Option<Result<(u8, &'a [u8]), CodecError>> {
    if is_json(bytes) {
        return None;
    }
    match bytes.split_first() {
        Some((version, body)) if versions.contains(version) => Some(Ok((*version, body))),
        _ => Some(Err(CodecError::Compact("unknown record format"))),
    }
}

/// Whether a record was written as JSON (before this encoding, or by the upgrade from
/// schema 2): a JSON object starts with `{`, which is never a format byte.
pub(super) fn is_json(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
}

/// The bytes written, and the format byte of the record they make.
struct Writer(Vec<u8>, u8);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn str(&mut self, v: &str) {
        self.u32(u32::try_from(v.len()).expect("stored strings are far below 4 GiB"));
        self.0.extend_from_slice(v.as_bytes());
    }

    fn uuid(&mut self, v: &Uuid) {
        self.0.extend_from_slice(v.as_bytes());
    }

    fn time(&mut self, v: &DateTime<Utc>) {
        self.0.extend_from_slice(&v.timestamp().to_le_bytes());
        self.u32(v.timestamp_subsec_nanos());
    }

    fn duration(&mut self, v: &Duration) {
        self.u64(v.as_secs());
        self.u32(v.subsec_nanos());
    }

    fn opt<T>(&mut self, v: &Option<T>, f: impl FnOnce(&mut Writer, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }

    fn key(&mut self, key: &MonitorKey) {
        let MonitorKey {
            project,
            slug,
            environment,
        } = key;
        self.u64(*project);
        self.str(slug);
        self.str(environment);
    }

    fn config(&mut self, config: &MonitorConfig) {
        let MonitorConfig {
            schedule,
            timezone,
            checkin_margin,
            max_runtime,
            failure_issue_threshold,
            recovery_threshold,
        } = config;
        match schedule {
            Schedule::Crontab(expr) => {
                self.u8(0);
                self.str(expr);
            }
            Schedule::Interval { value, unit } => {
                self.u8(1);
                self.u32(*value);
                self.u8(unit_tag(*unit));
            }
        }
        self.str(timezone);
        self.duration(checkin_margin);
        self.duration(max_runtime);
        self.u32(*failure_issue_threshold);
        self.u32(*recovery_threshold);
    }

    fn failures(&mut self, failures: &FailureCounts) {
        let FailureCounts {
            missed,
            timeout,
            error,
        } = failures;
        self.u32(*missed);
        self.u32(*timeout);
        self.u32(*error);
    }

    fn incident(&mut self, incident: &Incident) {
        let Incident {
            id,
            key,
            kind,
            opened_at,
            resolved_at,
            reason,
            starting_checkin,
            starting_timestamp,
            resolving_checkin,
            failures,
            notified,
            handling,
        } = incident;
        self.uuid(id);
        self.key(key);
        self.u8(match kind {
            IncidentKind::Monitor => 0,
            IncidentKind::Probe => 1,
        });
        self.time(opened_at);
        self.opt(resolved_at, Writer::time);
        self.u8(match reason {
            IncidentReason::MissedCheckin => 0,
            IncidentReason::Timeout => 1,
            IncidentReason::Error => 2,
        });
        self.uuid(starting_checkin);
        self.time(starting_timestamp);
        self.opt(resolving_checkin, Writer::uuid);
        self.failures(failures);
        self.bool(*notified);
        if self.1 < COMPACT_HANDLED {
            return;
        }
        let Handling {
            acknowledged,
            next_repeat,
            repeats,
            held_until,
        } = handling;
        self.opt(acknowledged, |w, ack| {
            w.str(&ack.by);
            w.time(&ack.at);
        });
        self.opt(next_repeat, Writer::time);
        self.u32(*repeats);
        self.opt(held_until, Writer::time);
    }

    fn streak(&mut self, streak: &Streak) {
        let Streak {
            failures,
            first_failure,
            oks,
        } = streak;
        self.failures(failures);
        self.opt(first_failure, |w, (id, at)| {
            w.uuid(id);
            w.time(at);
        });
        self.u32(*oks);
    }

    fn open_run(&mut self, run: &OpenRun) {
        let OpenRun {
            id,
            started,
            timeout_at,
            date_updated,
            expected_time,
            log,
        } = run;
        self.uuid(id);
        self.time(started);
        self.time(timeout_at);
        self.time(date_updated);
        self.opt(expected_time, Writer::time);
        self.opt(log, |w, log| w.str(log));
    }
}

/// The bytes left, and the format byte of the record they came from.
struct Reader<'a>(&'a [u8], u8);

type Read<T> = Result<T, CodecError>;

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Read<[u8; N]> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(CodecError::Compact("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn end(&self) -> Read<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Compact("trailing bytes"))
        }
    }

    fn u8(&mut self) -> Read<u8> {
        Ok(self.take::<1>()?[0])
    }

    fn bool(&mut self) -> Read<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError::Compact("bad boolean")),
        }
    }

    fn u32(&mut self) -> Read<u32> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Read<u64> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn string(&mut self) -> Read<String> {
        let len = self.u32()? as usize;
        if self.0.len() < len {
            return Err(CodecError::Compact("truncated"));
        }
        let (bytes, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::Compact("string is not UTF-8"))
    }

    fn uuid(&mut self) -> Read<Uuid> {
        Ok(Uuid::from_bytes(self.take()?))
    }

    fn time(&mut self) -> Read<DateTime<Utc>> {
        let secs = i64::from_le_bytes(self.take()?);
        let nanos = self.u32()?;
        DateTime::from_timestamp(secs, nanos).ok_or(CodecError::Compact("time out of range"))
    }

    fn duration(&mut self) -> Read<Duration> {
        let secs = self.u64()?;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(CodecError::Compact("bad duration"));
        }
        Ok(Duration::new(secs, nanos))
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Read<T>) -> Read<Option<T>> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            _ => Err(CodecError::Compact("bad option")),
        }
    }

    fn key(&mut self) -> Read<MonitorKey> {
        Ok(MonitorKey {
            project: self.u64()?,
            slug: self.string()?,
            environment: self.string()?,
        })
    }

    fn config(&mut self) -> Read<MonitorConfig> {
        let schedule = match self.u8()? {
            0 => Schedule::Crontab(self.string()?),
            1 => Schedule::Interval {
                value: self.u32()?,
                unit: unit(self.u8()?)?,
            },
            _ => return Err(CodecError::Compact("bad schedule")),
        };
        Ok(MonitorConfig {
            schedule,
            timezone: self.string()?,
            checkin_margin: self.duration()?,
            max_runtime: self.duration()?,
            failure_issue_threshold: self.u32()?,
            recovery_threshold: self.u32()?,
        })
    }

    fn failures(&mut self) -> Read<FailureCounts> {
        Ok(FailureCounts {
            missed: self.u32()?,
            timeout: self.u32()?,
            error: self.u32()?,
        })
    }

    fn incident(&mut self) -> Read<Incident> {
        Ok(Incident {
            id: self.uuid()?,
            key: self.key()?,
            kind: match self.u8()? {
                0 => IncidentKind::Monitor,
                1 => IncidentKind::Probe,
                _ => return Err(CodecError::Compact("bad incident kind")),
            },
            opened_at: self.time()?,
            resolved_at: self.opt(Reader::time)?,
            reason: match self.u8()? {
                0 => IncidentReason::MissedCheckin,
                1 => IncidentReason::Timeout,
                2 => IncidentReason::Error,
                _ => return Err(CodecError::Compact("bad incident reason")),
            },
            starting_checkin: self.uuid()?,
            starting_timestamp: self.time()?,
            resolving_checkin: self.opt(Reader::uuid)?,
            failures: self.failures()?,
            notified: self.bool()?,
            handling: if self.1 >= COMPACT_HANDLED {
                Handling {
                    acknowledged: self.opt(|r| {
                        Ok(Acknowledgement {
                            by: r.string()?,
                            at: r.time()?,
                        })
                    })?,
                    next_repeat: self.opt(Reader::time)?,
                    repeats: self.u32()?,
                    held_until: self.opt(Reader::time)?,
                }
            } else {
                Handling::default()
            },
        })
    }

    fn streak(&mut self) -> Read<Streak> {
        Ok(Streak {
            failures: self.failures()?,
            first_failure: self.opt(|r| Ok((r.uuid()?, r.time()?)))?,
            oks: self.u32()?,
        })
    }

    fn open_run(&mut self) -> Read<OpenRun> {
        Ok(OpenRun {
            id: self.uuid()?,
            started: self.time()?,
            timeout_at: self.time()?,
            date_updated: self.time()?,
            expected_time: self.opt(Reader::time)?,
            log: self.opt(Reader::string)?,
        })
    }
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

const MONITOR_STATUSES: [MonitorStatus; 4] = [
    MonitorStatus::Active,
    MonitorStatus::Ok,
    MonitorStatus::Error,
    MonitorStatus::Disabled,
];

const CHECKIN_STATUSES: [CheckInStatus; 6] = [
    CheckInStatus::InProgress,
    CheckInStatus::Ok,
    CheckInStatus::Error,
    CheckInStatus::Missed,
    CheckInStatus::Timeout,
    CheckInStatus::Unknown,
];

fn from_tag<T: Copy>(table: &[T], tag: u8, what: &'static str) -> Read<T> {
    table
        .get(usize::from(tag))
        .copied()
        .ok_or(CodecError::Compact(what))
}

// Encoding matches every variant (a new one does not compile until it has a tag); decoding
// reads the same tags from the tables above, and a test checks the two agree.

fn unit_tag(v: IntervalUnit) -> u8 {
    match v {
        IntervalUnit::Second => 0,
        IntervalUnit::Minute => 1,
        IntervalUnit::Hour => 2,
        IntervalUnit::Day => 3,
        IntervalUnit::Week => 4,
        IntervalUnit::Month => 5,
        IntervalUnit::Year => 6,
    }
}

fn unit(tag: u8) -> Read<IntervalUnit> {
    from_tag(&UNITS, tag, "bad interval unit")
}

fn monitor_status_tag(v: MonitorStatus) -> u8 {
    match v {
        MonitorStatus::Active => 0,
        MonitorStatus::Ok => 1,
        MonitorStatus::Error => 2,
        MonitorStatus::Disabled => 3,
    }
}

fn monitor_status(tag: u8) -> Read<MonitorStatus> {
    from_tag(&MONITOR_STATUSES, tag, "bad monitor status")
}

fn checkin_status_tag(v: CheckInStatus) -> u8 {
    match v {
        CheckInStatus::InProgress => 0,
        CheckInStatus::Ok => 1,
        CheckInStatus::Error => 2,
        CheckInStatus::Missed => 3,
        CheckInStatus::Timeout => 4,
        CheckInStatus::Unknown => 5,
    }
}

fn checkin_status(tag: u8) -> Read<CheckInStatus> {
    from_tag(&CHECKIN_STATUSES, tag, "bad check-in status")
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, nanos).unwrap()
    }

    fn key() -> MonitorKey {
        MonitorKey {
            project: 7,
            slug: "nightly-backup".into(),
            environment: "production".into(),
        }
    }

    /// Every field set, every option `Some`, nanoseconds everywhere.
    fn full(schedule: Schedule) -> MonitorEnv {
        let mut config = MonitorConfig::new(schedule);
        config.timezone = "Europe/Berlin".into();
        config.checkin_margin = Duration::new(90, 5);
        config.max_runtime = Duration::from_millis(1_234_567);
        config.failure_issue_threshold = 3;
        config.recovery_threshold = 720;
        let failures = FailureCounts {
            missed: 1,
            timeout: 2,
            error: u32::MAX,
        };
        MonitorEnv {
            key: key(),
            config,
            status: MonitorStatus::Error,
            muted: true,
            snoozed_until: Some(at(15, 15)),
            disabled: false,
            last_checkin: Some(at(1, 1)),
            last_ok: Some(at(2, 999_999_999)),
            next_checkin: Some(at(3, 0)),
            next_checkin_latest: Some(at(-4, 4)),
            open_incident: Some(Incident {
                id: Uuid::from_u128(1),
                key: key(),
                kind: IncidentKind::Probe,
                opened_at: at(5, 5),
                resolved_at: Some(at(6, 6)),
                reason: IncidentReason::Timeout,
                starting_checkin: Uuid::from_u128(2),
                starting_timestamp: at(7, 7),
                resolving_checkin: Some(Uuid::from_u128(3)),
                failures,
                notified: true,
                handling: Handling {
                    acknowledged: Some(Acknowledgement {
                        by: "alice ☎".into(),
                        at: at(6, 1),
                    }),
                    next_repeat: Some(at(6, 2)),
                    repeats: 3,
                    held_until: Some(at(6, 3)),
                },
            }),
            streak: Streak {
                failures,
                first_failure: Some((Uuid::from_u128(4), at(8, 8))),
                oks: 9,
            },
            open_runs: vec![
                OpenRun {
                    id: Uuid::from_u128(5),
                    started: at(9, 9),
                    timeout_at: at(10, 10),
                    date_updated: at(11, 11),
                    expected_time: Some(at(12, 12)),
                    log: Some("héllo\n\u{0}".into()),
                },
                OpenRun {
                    id: Uuid::from_u128(6),
                    started: at(13, 0),
                    timeout_at: at(14, 0),
                    date_updated: at(13, 0),
                    expected_time: None,
                    log: None,
                },
            ],
            seq: u64::MAX,
        }
    }

    fn monitors() -> Vec<MonitorEnv> {
        let mut all: Vec<MonitorEnv> = UNITS
            .iter()
            .map(|unit| full(Schedule::interval(5, *unit).unwrap()))
            .collect();
        all.push(full(Schedule::crontab("0 3 * * 1-5").unwrap()));
        for status in MONITOR_STATUSES {
            all.push(MonitorEnv {
                status,
                ..MonitorEnv::new(
                    key(),
                    MonitorConfig::new(Schedule::crontab("@daily").unwrap()),
                )
            });
        }
        let mut kinds = full(Schedule::crontab("* * * * *").unwrap());
        for reason in [IncidentReason::MissedCheckin, IncidentReason::Error] {
            let incident = kinds.open_incident.as_mut().unwrap();
            incident.kind = IncidentKind::Monitor;
            incident.reason = reason;
            incident.resolved_at = None;
            incident.resolving_checkin = None;
            kinds.disabled = true;
            all.push(kinds.clone());
        }
        all
    }

    fn checkins() -> Vec<CheckIn> {
        CHECKIN_STATUSES
            .iter()
            .map(|status| CheckIn {
                id: Uuid::from_u128(42),
                key: key(),
                status: *status,
                duration_ms: Some(250),
                date_added: at(0, 123_456_789),
                date_updated: at(1, 0),
                expected_time: Some(at(-60, 0)),
                timeout_at: Some(at(1800, 1)),
                log: Some("exit 1".into()),
            })
            .chain([CheckIn {
                id: Uuid::nil(),
                key: key(),
                status: CheckInStatus::Missed,
                duration_ms: None,
                date_added: DateTime::UNIX_EPOCH - TimeDelta::days(1),
                date_updated: at(0, 0),
                expected_time: None,
                timeout_at: None,
                log: None,
            }])
            .collect()
    }

    #[test]
    fn every_monitor_and_checkin_round_trips_and_reads_as_its_json_does() {
        for m in monitors() {
            let compact = encode_monitor(&m);
            assert_eq!(decode_monitor(&compact).unwrap(), m);
            // The same state written as JSON before this encoding reads the same.
            let json = serde_json::to_vec(&m).unwrap();
            assert_eq!(decode_monitor(&json).unwrap(), m);
            assert!(
                compact.len() * 2 < json.len(),
                "{} vs {}",
                compact.len(),
                json.len()
            );
        }
        for c in checkins() {
            let compact = encode_checkin(&c);
            assert_eq!(decode_checkin(&compact).unwrap(), c);
            let json = serde_json::to_vec(&c).unwrap();
            assert_eq!(decode_checkin(&json).unwrap(), c);
            assert!(
                compact.len() * 2 < json.len(),
                "{} vs {}",
                compact.len(),
                json.len()
            );
        }
    }

    #[test]
    fn a_monitor_record_of_the_first_compact_format_reads_with_nothing_handled() {
        for mut m in monitors() {
            let old = encode_monitor_in(&m, COMPACT);
            assert_eq!(old[0], COMPACT);
            if let Some(incident) = &mut m.open_incident {
                incident.handling = Handling::default();
            }
            m.snoozed_until = None;
            assert_eq!(decode_monitor(&old).unwrap(), m);
            assert_eq!(encode_monitor(&m)[0], COMPACT_HANDLED);
        }
    }

    #[test]
    fn the_tag_tables_agree_with_the_encoders() {
        for (n, unit) in UNITS.iter().enumerate() {
            assert_eq!(usize::from(unit_tag(*unit)), n);
        }
        for (n, status) in MONITOR_STATUSES.iter().enumerate() {
            assert_eq!(usize::from(monitor_status_tag(*status)), n);
        }
        for (n, status) in CHECKIN_STATUSES.iter().enumerate() {
            assert_eq!(usize::from(checkin_status_tag(*status)), n);
        }
    }

    #[test]
    fn a_damaged_record_is_refused_never_misread() {
        let m = encode_monitor(&full(Schedule::crontab("0 3 * * *").unwrap()));
        let c = encode_checkin(&checkins()[0]);
        for len in 0..m.len() {
            assert!(decode_monitor(&m[..len]).is_err(), "monitor cut at {len}");
        }
        for len in 0..c.len() {
            assert!(decode_checkin(&c[..len]).is_err(), "check-in cut at {len}");
        }
        let mut longer = c.clone();
        longer.push(0);
        assert!(decode_checkin(&longer).is_err(), "trailing bytes");
        let mut other = c.clone();
        other[0] = 2;
        assert!(decode_checkin(&other).is_err(), "unknown format");
        // A bad enum tag: the status byte follows the format byte, the id and the key.
        let mut status = c;
        let at = 1 + 16 + 8 + 4 + key().slug.len() + 4 + key().environment.len();
        status[at] = 99;
        assert!(decode_checkin(&status).is_err(), "bad status");
    }
}
