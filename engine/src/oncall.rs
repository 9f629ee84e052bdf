//! What happens after an incident's first alert: its alert repeated until someone handles it,
//! and the acknowledgement that says someone is on it.
//!
//! A `[[rules]]` entry with `repeat` sends an open, unacknowledged monitor incident's
//! `monitor.failed` again every `repeat` from its opening. The next repeat is a deadline kept
//! on the incident ([`Handling::next_repeat`]), so it is persisted with the monitor record and
//! swept like the missed and timeout deadlines: durable, restart-safe, and decided here with
//! `now` as a parameter. Acknowledging, muting, disabling or resolving ends the repeats.
//!
//! Pure like the rest of the engine: no clock, no I/O.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::acknowledge::acknowledge_open;
pub use super::acknowledge::{AckRefusal, MAX_ACK_NAME};
use super::alerting::{AlertKind, Rule};
use super::model::{Effect, Incident, MonitorEnv, Transition};

/// The rules that repeat `monitor.failed`, with their intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repeats {
    rules: Vec<(String, TimeDelta)>,
}

/// A follow-up that came due: the monitor with its incident's next repeat moved on, and the
/// rules whose interval came round (none when the repeats ended instead: acknowledged, muted;
/// or when the monitor is quiet); or the alert held through a quiet time, now `released`.
#[derive(Clone, Debug, PartialEq)]
pub struct Repeat {
    /// The monitor environment's new state: store it and re-index its deadlines.
    pub monitor: MonitorEnv,
    /// Its open incident as now stored.
    pub incident: Incident,
    /// The rules to send the repeat through, in config order; empty: nothing to send.
    pub rules: Vec<String>,
    /// The incident's first alert, held while its monitor was quiet, is due now: send it
    /// (through every rule, like any `monitor.failed`).
    pub released: bool,
}

impl Repeats {
    /// The repeating rules among `rules`: those with a `repeat` that route `monitor.failed`.
    pub fn of_rules(rules: &[Rule]) -> Repeats {
        Repeats {
            rules: rules
                .iter()
                .filter(|rule| rule.on.contains(&AlertKind::MonitorFailed))
                .filter_map(|rule| Some((rule.name.clone(), delta(rule.repeat?)?)))
                .collect(),
        }
    }

    /// Whether no rule repeats.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first repeat of any rule strictly after `after`, for an incident opened at `opened`:
    /// every rule repeats at `opened + k·interval`, `k ≥ 1`.
    fn next_after(&self, opened: DateTime<Utc>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.rules
            .iter()
            .filter_map(|(_, interval)| slot_after(opened, *interval, after))
            .min()
    }

    /// The rules with a repeat in `[from, now]`, for an incident opened at `opened`.
    fn due(&self, opened: DateTime<Utc>, from: DateTime<Utc>, now: DateTime<Utc>) -> Vec<String> {
        self.rules
            .iter()
            .filter(|(_, interval)| {
                let before = from - TimeDelta::nanoseconds(1);
                slot_after(opened, *interval, before).is_some_and(|slot| slot <= now)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// `opened + k·interval` for the smallest `k ≥ 1` that is after `after`.
fn slot_after(
    opened: DateTime<Utc>,
    interval: TimeDelta,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let step = interval.num_nanoseconds().filter(|n| *n > 0)?;
    let elapsed = (after - opened).num_nanoseconds()?.max(0);
    let k = elapsed / step + 1;
    opened.checked_add_signed(TimeDelta::nanoseconds(step.checked_mul(k)?))
}

fn delta(d: Duration) -> Option<TimeDelta> {
    TimeDelta::from_std(d)
        .ok()
        .filter(|d| *d > TimeDelta::zero())
}

/// Follows up every incident `transition` opens and would announce: while the monitor is
/// quiet (`quiet_until`, see [`super::maintenance::quiet_until`]) its alert is held until then
/// (the effect is not announced, and neither will its recovery be unless the hold is
/// released); otherwise its first repeat is set. Changes the monitor's open incident and the
/// effect's copy alike, which the store writes alike.
pub fn arm(transition: &mut Transition, repeats: &Repeats, quiet_until: Option<DateTime<Utc>>) {
    for effect in &mut transition.effects {
        let Effect::IncidentOpened { incident, notify } = effect else {
            continue;
        };
        if !*notify {
            continue;
        }
        match quiet_until {
            Some(until) => {
                *notify = false;
                incident.notified = false;
                incident.handling.held_until = Some(until);
            }
            None => {
                incident.handling.next_repeat =
                    repeats.next_after(incident.opened_at, incident.opened_at);
            }
        }
        if let Some(open) = &mut transition.monitor.open_incident
            && open.id == incident.id
        {
            open.notified = incident.notified;
            open.handling = incident.handling.clone();
        }
    }
}

/// The follow-up due at `now` of the monitor's open incident, or `None` when nothing is due.
///
/// A held alert (`held_until` passed) is released — unless the monitor is quiet again
/// (`quiet_until`: another window, a longer snooze), when the hold moves to that end. A due
/// repeat of an incident that is acknowledged, or of a muted or disabled monitor, ends the
/// repeats instead (`rules` empty); one that falls in a quiet time is skipped.
pub fn sweep_repeat(
    monitor: &MonitorEnv,
    repeats: &Repeats,
    quiet_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Repeat> {
    let due_at = monitor.open_incident.as_ref()?.handling.follow_up()?;
    if now < due_at {
        return None;
    }
    let mut monitor = monitor.clone();
    let silenced = monitor.muted || monitor.disabled;
    let open = monitor.open_incident.as_mut()?;
    let handling = &mut open.handling;
    if let Some(held) = handling.held_until
        && held <= now
    {
        let released = quiet_until.is_none() && !silenced;
        handling.held_until = quiet_until.filter(|_| !silenced);
        if released {
            open.notified = true;
            handling.next_repeat = repeats.next_after(open.opened_at, now);
        }
        let incident = open.clone();
        return Some(Repeat {
            monitor,
            incident,
            rules: Vec::new(),
            released,
        });
    }
    let due_at = handling.next_repeat?;
    let ended = handling.acknowledged.is_some() || silenced;
    let rules = if ended || quiet_until.is_some() {
        Vec::new()
    } else {
        repeats.due(open.opened_at, due_at, now)
    };
    handling.next_repeat = if ended {
        None
    } else {
        repeats.next_after(open.opened_at, now)
    };
    if !rules.is_empty() {
        handling.repeats = handling.repeats.saturating_add(1);
    }
    let incident = open.clone();
    Some(Repeat {
        monitor,
        incident,
        rules,
        released: false,
    })
}

/// Acknowledges the monitor's open incident `id` as `by` at `now`: its repeats stop. The name is
/// trimmed and cut at [`MAX_ACK_NAME`] characters.
pub fn acknowledge(
    monitor: &MonitorEnv,
    id: Uuid,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(MonitorEnv, Incident), AckRefusal> {
    let mut monitor = monitor.clone();
    let incident = acknowledge_open(&mut monitor.open_incident, id, by, now)?;
    Ok((monitor, incident))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::alerting::{self, Links};
    use crate::deadlines::{DeadlineKind, deadlines_of};
    use crate::model::{Acknowledgement, CheckInInput, CheckInStatus, MonitorKey};
    use crate::{MonitorConfig, Schedule, process_checkin};

    fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, day, h, m, 0).unwrap()
    }

    fn rule(name: &str, repeat: Option<u64>) -> Rule {
        Rule {
            name: name.to_owned(),
            on: vec![
                AlertKind::MonitorFailed,
                AlertKind::MonitorRecovered,
                AlertKind::MonitorAcknowledged,
            ],
            channels: vec!["telegram".to_owned()],
            repeat: repeat.map(|m| Duration::from_secs(m * 60)),
        }
    }

    fn nightly() -> (MonitorEnv, MonitorKey) {
        let key = MonitorKey::new(1, "nightly-backup", None).unwrap();
        let config = MonitorConfig::new(Schedule::crontab("0 3 * * *").unwrap());
        (MonitorEnv::new(key.clone(), config), key)
    }

    fn checkin(key: &MonitorKey, status: CheckInStatus) -> CheckInInput {
        CheckInInput {
            key: key.clone(),
            id: None,
            status,
            duration: None,
            config: None,
            log: None,
        }
    }

    fn repeat_deadline(monitor: &MonitorEnv) -> Option<DateTime<Utc>> {
        deadlines_of(monitor)
            .into_iter()
            .find(|d| d.kind == DeadlineKind::Repeat)
            .map(|d| d.at)
    }

    /// The story of issue 19: a job fails at 03:00; its alert goes out at 03:00, 03:30 and
    /// 04:00; someone acknowledges at 04:05; nothing at 04:30; the recovery the next night
    /// says who acknowledged and when.
    #[test]
    fn repeats_every_half_hour_until_acknowledged_and_the_recovery_names_who() {
        let rules = [rule("oncall", Some(30))];
        let repeats = Repeats::of_rules(&rules);
        let links = Links::new("http://watchpost.example");
        let (monitor, key) = nightly();
        let mut sent = Vec::new();

        let mut failed = process_checkin(
            Some(monitor),
            None,
            checkin(&key, CheckInStatus::Error),
            at(1, 3, 0),
        )
        .unwrap();
        arm(&mut failed, &repeats, None);
        for effect in &failed.effects {
            let alert = alerting::monitor_alert(effect, &failed.monitor, None, &links, at(1, 3, 0));
            sent.extend(alert.map(|a| (at(1, 3, 0), a)));
        }
        let mut monitor = failed.monitor;
        assert_eq!(repeat_deadline(&monitor), Some(at(1, 3, 30)));

        // The sweeper wakes at each deadline; a wake a little late still repeats once.
        for now in [at(1, 3, 30), at(1, 4, 0) + TimeDelta::seconds(2)] {
            assert_eq!(
                sweep_repeat(&monitor, &repeats, None, now - TimeDelta::seconds(3)),
                None
            );
            let repeat = sweep_repeat(&monitor, &repeats, None, now).expect("a repeat is due");
            assert_eq!(repeat.rules, ["oncall"]);
            sent.push((
                now,
                alerting::repeat_alert(&repeat.incident, &repeat.monitor, &links, now),
            ));
            monitor = repeat.monitor;
        }
        assert_eq!(repeat_deadline(&monitor), Some(at(1, 4, 30)));

        let id = monitor.open_incident.as_ref().unwrap().id;
        let (acked, incident) = acknowledge(&monitor, id, " alice ", at(1, 4, 5)).unwrap();
        sent.push((
            at(1, 4, 5),
            alerting::acknowledged_alert(&incident, &acked, &links, at(1, 4, 5)),
        ));
        assert_eq!(
            acknowledge(&acked, id, "bob", at(1, 4, 6)),
            Err(AckRefusal::Already {
                id,
                by: Acknowledgement {
                    by: "alice".to_owned(),
                    at: at(1, 4, 5)
                }
            })
        );
        monitor = acked;
        // No repeat deadline left: the sweeper has nothing to do at 04:30.
        assert_eq!(repeat_deadline(&monitor), None);
        assert_eq!(sweep_repeat(&monitor, &repeats, None, at(1, 4, 30)), None);

        let recovered = process_checkin(
            Some(monitor),
            None,
            checkin(&key, CheckInStatus::Ok),
            at(2, 3, 0),
        )
        .unwrap();
        for effect in &recovered.effects {
            let alert =
                alerting::monitor_alert(effect, &recovered.monitor, None, &links, at(2, 3, 0));
            sent.extend(alert.map(|a| (at(2, 3, 0), a)));
        }

        let story: Vec<(DateTime<Utc>, AlertKind, String)> = sent
            .iter()
            .map(|(t, a)| (*t, a.kind, a.title.clone()))
            .collect();
        assert_eq!(
            story,
            [
                (
                    at(1, 3, 0),
                    AlertKind::MonitorFailed,
                    "Monitor nightly-backup (production) is failing".to_owned()
                ),
                (
                    at(1, 3, 30),
                    AlertKind::MonitorFailed,
                    "Monitor nightly-backup (production) is still failing".to_owned()
                ),
                (
                    at(1, 4, 0) + TimeDelta::seconds(2),
                    AlertKind::MonitorFailed,
                    "Monitor nightly-backup (production) is still failing".to_owned()
                ),
                (
                    at(1, 4, 5),
                    AlertKind::MonitorAcknowledged,
                    "Monitor nightly-backup (production) acknowledged by alice".to_owned()
                ),
                (
                    at(2, 3, 0),
                    AlertKind::MonitorRecovered,
                    "Monitor nightly-backup (production) recovered".to_owned()
                ),
            ]
        );
        let repeat_at_4 = &sent[2].1;
        assert!(
            repeat_at_4
                .message
                .starts_with("Still failing after 1h (since 2026-05-01 03:00:00 UTC)")
                && repeat_at_4.message.contains("Repeat 2 of this alert"),
            "{}",
            repeat_at_4.message
        );
        assert_eq!(repeat_at_4.incident.as_ref().unwrap().repeat, 2);
        let recovery = &sent[4].1;
        assert!(
            recovery
                .message
                .ends_with("Acknowledged by alice 2026-05-01 04:05:00 UTC."),
            "{}",
            recovery.message
        );
        let ack = recovery
            .incident
            .as_ref()
            .unwrap()
            .acknowledged
            .as_ref()
            .unwrap();
        assert_eq!((ack.by.as_str(), ack.at), ("alice", at(1, 4, 5)));
    }

    #[test]
    fn each_rule_repeats_at_its_own_interval_and_only_its_own_repeats_are_sent() {
        let rules = [
            rule("fast", Some(10)),
            rule("slow", Some(25)),
            rule("once", None),
        ];
        let repeats = Repeats::of_rules(&rules);
        let (monitor, key) = nightly();
        let mut t = process_checkin(
            Some(monitor),
            None,
            checkin(&key, CheckInStatus::Error),
            at(1, 3, 0),
        )
        .unwrap();
        arm(&mut t, &repeats, None);
        let Effect::IncidentOpened { incident, .. } = &t.effects[0] else {
            panic!("an incident opened")
        };
        assert_eq!(incident.handling.next_repeat, Some(at(1, 3, 10)));
        let mut monitor = t.monitor;
        let mut seen = Vec::new();
        while let Some(due) = repeat_deadline(&monitor).filter(|d| *d <= at(1, 3, 50)) {
            let repeat = sweep_repeat(&monitor, &repeats, None, due).unwrap();
            seen.push((due, repeat.rules.clone()));
            monitor = repeat.monitor;
        }
        let fast = || vec!["fast".to_owned()];
        assert_eq!(
            seen,
            [
                (at(1, 3, 10), fast()),
                (at(1, 3, 20), fast()),
                (at(1, 3, 25), vec!["slow".to_owned()]),
                (at(1, 3, 30), fast()),
                (at(1, 3, 40), fast()),
                (at(1, 3, 50), vec!["fast".to_owned(), "slow".to_owned()]),
            ]
        );
        // A sweeper that slept through three slots sends one repeat per rule, not three.
        let late = sweep_repeat(&monitor, &repeats, None, at(1, 4, 25)).unwrap();
        assert_eq!(late.rules, ["fast", "slow"]);
        assert_eq!(late.incident.handling.next_repeat, Some(at(1, 4, 30)));
    }

    #[test]
    fn muting_or_no_repeating_rule_ends_the_repeats_and_resolving_clears_them() {
        let repeats = Repeats::of_rules(&[rule("oncall", Some(30))]);
        let (monitor, key) = nightly();
        let mut t = process_checkin(
            Some(monitor),
            None,
            checkin(&key, CheckInStatus::Error),
            at(1, 3, 0),
        )
        .unwrap();
        arm(&mut t, &Repeats::default(), None);
        assert_eq!(repeat_deadline(&t.monitor), None, "no rule repeats");
        arm(&mut t, &repeats, None);
        let mut muted = t.monitor.clone();
        muted.set_muted(true);
        let ended = sweep_repeat(&muted, &repeats, None, at(1, 3, 30)).unwrap();
        assert!(ended.rules.is_empty());
        assert_eq!(repeat_deadline(&ended.monitor), None);

        let resolved = process_checkin(
            Some(t.monitor.clone()),
            None,
            checkin(&key, CheckInStatus::Ok),
            at(1, 3, 20),
        )
        .unwrap();
        let Effect::IncidentResolved { incident, .. } = &resolved.effects[0] else {
            panic!("resolved")
        };
        assert_eq!(incident.handling.next_repeat, None);
        assert_eq!(repeat_deadline(&resolved.monitor), None);
        assert_eq!(
            acknowledge(&resolved.monitor, incident.id, "alice", at(1, 3, 21)),
            Err(AckRefusal::NotOpen(incident.id))
        );
        assert_eq!(
            acknowledge(&t.monitor, incident.id, "   ", at(1, 3, 21)),
            Err(AckRefusal::NoName)
        );
    }

    /// Issue 19's maintenance story across a DST change: a nightly window at 02:00 Berlin for
    /// 2 h, on the night the clocks spring forward (the window runs 01:00–03:00 UTC). Two jobs
    /// fail inside it; the one that recovers inside it is never announced, the one still failing
    /// at its end is alerted then, once, and repeats from then on.
    #[test]
    fn an_incident_still_open_when_a_window_ends_is_alerted_once_then() {
        use crate::maintenance::{Window, quiet_until};
        let windows = [Window {
            name: "db-migration".to_owned(),
            start: Schedule::crontab("0 2 * * *").unwrap(),
            timezone: chrono_tz::Europe::Berlin,
            duration: Duration::from_secs(2 * 3600),
            project: Some(1),
            slug: Some("*-backup".to_owned()),
            probe: None,
        }];
        let repeats = Repeats::of_rules(&[rule("oncall", Some(30))]);
        let links = Links::new("http://watchpost.example");
        let utc = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 3, 29, h, m, 0).unwrap();
        let job = |slug: &str| {
            let key = MonitorKey::new(1, slug, None).unwrap();
            let config = MonitorConfig::new(Schedule::crontab("30 * * * *").unwrap());
            (MonitorEnv::new(key.clone(), config), key)
        };
        // A failure: its effects after the quiet time is applied, as the processor does.
        let fail = |monitor: MonitorEnv, key: &MonitorKey, now| {
            let mut t =
                process_checkin(Some(monitor), None, checkin(key, CheckInStatus::Error), now)
                    .unwrap();
            let quiet = quiet_until(&windows, &t.monitor, now);
            arm(&mut t, &repeats, quiet);
            t
        };

        let (before, key) = job("db-backup");
        let failed = fail(before.clone(), &key, utc(0, 59));
        assert!(
            matches!(
                failed.effects[..],
                [Effect::IncidentOpened { notify: true, .. }]
            ),
            "before the window an incident is alerted at once"
        );

        let failed = fail(before, &key, utc(1, 30));
        assert!(matches!(
            failed.effects[..],
            [Effect::IncidentOpened { notify: false, .. }]
        ));
        let monitor = failed.monitor;
        let incident = monitor.open_incident.as_ref().unwrap();
        assert_eq!(incident.handling.held_until, Some(utc(3, 0)));
        assert_eq!(repeat_deadline(&monitor), Some(utc(3, 0)));
        let quiet = |m: &MonitorEnv, now| quiet_until(&windows, m, now);
        assert_eq!(
            sweep_repeat(&monitor, &repeats, quiet(&monitor, utc(2, 59)), utc(2, 59)),
            None
        );
        let released = sweep_repeat(&monitor, &repeats, quiet(&monitor, utc(3, 0)), utc(3, 0))
            .expect("the window ended");
        assert!(released.released && released.rules.is_empty());
        let alert =
            alerting::released_alert(&released.incident, &released.monitor, &links, utc(3, 0));
        assert_eq!(alert.kind, AlertKind::MonitorFailed);
        assert!(
            alert.message.contains("this alert was held until now"),
            "{}",
            alert.message
        );
        let monitor = released.monitor;
        // Once: from now on it repeats like any announced incident, and recovers announced.
        assert_eq!(
            monitor.open_incident.as_ref().unwrap().handling.held_until,
            None
        );
        assert_eq!(repeat_deadline(&monitor), Some(utc(3, 30)));
        let repeat = sweep_repeat(&monitor, &repeats, None, utc(3, 30)).unwrap();
        assert!(!repeat.released);
        assert_eq!(repeat.rules, ["oncall"]);
        let recovered = process_checkin(
            Some(repeat.monitor),
            None,
            checkin(&key, CheckInStatus::Ok),
            utc(4, 0),
        )
        .unwrap();
        assert!(matches!(
            recovered.effects[..],
            [Effect::IncidentResolved { notify: true, .. }]
        ));

        // Failed and recovered inside the window: nothing at all is announced.
        let (other, key) = job("files-backup");
        let failed = fail(other, &key, utc(1, 45));
        assert!(matches!(
            failed.effects[..],
            [Effect::IncidentOpened { notify: false, .. }]
        ));
        let recovered = process_checkin(
            Some(failed.monitor),
            None,
            checkin(&key, CheckInStatus::Ok),
            utc(2, 30),
        )
        .unwrap();
        assert!(matches!(
            recovered.effects[..],
            [Effect::IncidentResolved { notify: false, .. }]
        ));
        assert_eq!(repeat_deadline(&recovered.monitor), None);

        // A job the window does not select is alerted at once inside it.
        let (elsewhere, key) = job("report");
        let failed = fail(elsewhere, &key, utc(1, 30));
        assert!(matches!(
            failed.effects[..],
            [Effect::IncidentOpened { notify: true, .. }]
        ));
    }

    #[test]
    fn a_hold_moves_when_the_monitor_is_quiet_again_at_its_end_and_a_snooze_holds_too() {
        let repeats = Repeats::of_rules(&[rule("oncall", Some(30))]);
        let (mut monitor, key) = nightly();
        monitor.snoozed_until = Some(at(1, 4, 0));
        let mut t = process_checkin(
            Some(monitor),
            None,
            checkin(&key, CheckInStatus::Error),
            at(1, 3, 0),
        )
        .unwrap();
        let quiet = crate::maintenance::quiet_until(&[], &t.monitor, at(1, 3, 0));
        assert_eq!(quiet, Some(at(1, 4, 0)));
        arm(&mut t, &repeats, quiet);
        let mut monitor = t.monitor;
        // Snoozed longer meanwhile: the hold follows.
        monitor.snoozed_until = Some(at(1, 5, 0));
        let moved = sweep_repeat(&monitor, &repeats, Some(at(1, 5, 0)), at(1, 4, 0)).unwrap();
        assert!(!moved.released);
        assert_eq!(repeat_deadline(&moved.monitor), Some(at(1, 5, 0)));
        let released = sweep_repeat(&moved.monitor, &repeats, None, at(1, 5, 0)).unwrap();
        assert!(released.released);
        assert!(released.incident.notified);
    }
}
