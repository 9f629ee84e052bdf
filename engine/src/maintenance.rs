//! Quiet times: recurring maintenance windows from the config, and a monitor's snooze.
//!
//! While a monitor environment is quiet its state is tracked and incidents open as usual, but
//! no alert is sent: an incident that opens is *held* until the quiet time ends
//! ([`super::Handling::held_until`]), and alerted then, once, if it is still open (one that
//! recovered meanwhile is never announced, nor is its recovery). Repeats that fall in a quiet
//! time are skipped. The end of a hold is a deadline like a repeat, swept by
//! [`super::oncall::sweep_repeat`].
//!
//! A window starts at each occurrence of a crontab in its timezone (DST-correct, as monitor
//! schedules are: [`Schedule::next_after`]) and lasts `duration`. It applies to the monitor
//! environments its selector matches: a project, a slug glob (`*` any run of characters, `?`
//! one), or both; monitors have no tags, so there is no tag selector. Pure: `now` is a
//! parameter.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::config::Schedule;
use super::model::{MonitorEnv, MonitorKey};
use super::probes::ProbeState;

/// The longest window: a week (so finding the occurrence a window started at stays cheap).
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most occurrences looked at to find the one `now` falls in (a `* * * * *` window of a week).
const MAX_STEPS: usize = 7 * 24 * 60 + 1;

/// A `[[maintenance]]` window.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Its name (for logs and messages).
    pub name: String,
    /// When each occurrence starts: a crontab, evaluated in `timezone`.
    pub start: Schedule,
    /// The timezone of `start`.
    pub timezone: Tz,
    /// How long each occurrence lasts (at most [`MAX_WINDOW`]).
    pub duration: Duration,
    /// Only monitors of this project; `None`: every project.
    pub project: Option<u64>,
    /// Only monitors whose slug matches this glob; `None`: every slug.
    pub slug: Option<String>,
    /// Only probes whose name matches this glob. A window with it applies to those probes
    /// and to no monitor; without it, to no probe.
    pub probe: Option<String>,
}

impl Window {
    /// Whether it applies to the monitor environment `key`.
    pub fn applies_to(&self, key: &MonitorKey) -> bool {
        self.probe.is_none()
            && self.project.is_none_or(|p| p == key.project)
            && self
                .slug
                .as_deref()
                .is_none_or(|glob| glob_matches(glob, &key.slug))
    }

    /// Whether it applies to the probe `name`.
    pub fn applies_to_probe(&self, name: &str) -> bool {
        self.probe
            .as_deref()
            .is_some_and(|glob| glob_matches(glob, name))
    }

    /// When the occurrence `now` falls in ends, or `None` when `now` is outside every
    /// occurrence. Of overlapping occurrences, the one that ends last.
    pub fn active_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let duration = TimeDelta::from_std(self.duration).ok()?;
        let mut start = self.start.next_after(self.timezone, now - duration)?;
        let mut latest = None;
        for _ in 0..MAX_STEPS {
            if start > now {
                break;
            }
            latest = Some(start);
            start = self.start.next_after(self.timezone, start)?;
        }
        latest.map(|start| start + duration)
    }
}

/// Until when `monitor` is quiet at `now`: the latest end among its snooze and the windows that
/// apply to it and are open; `None` when it is not quiet.
pub fn quiet_until(
    windows: &[Window],
    monitor: &MonitorEnv,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let snooze = monitor.snoozed_until.filter(|until| *until > now);
    windows
        .iter()
        .filter(|w| w.applies_to(&monitor.key))
        .filter_map(|w| w.active_until(now))
        .chain(snooze)
        .max()
}

/// Until when the probe `state` is quiet at `now`: the latest end among its snooze and the
/// windows that apply to it and are open; `None` when it is not quiet.
pub fn probe_quiet_until(
    windows: &[Window],
    state: &ProbeState,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let snooze = state.snoozed_until.filter(|until| *until > now);
    windows
        .iter()
        .filter(|w| w.applies_to_probe(&state.name))
        .filter_map(|w| w.active_until(now))
        .chain(snooze)
        .max()
}

/// Snoozes `monitor` until `until` (`None`: ends the snooze) at `now`. An alert held for the
/// old snooze is then due no later than the new end (or now), when the sweeper releases it
/// unless the monitor is still quiet.
pub fn snooze(monitor: &mut MonitorEnv, until: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    monitor.snoozed_until = until.filter(|until| *until > now);
    let end = monitor.snoozed_until.unwrap_or(now);
    if let Some(incident) = &mut monitor.open_incident
        && let Some(held) = &mut incident.handling.held_until
    {
        *held = (*held).min(end);
    }
}

/// Whether `text` matches `glob`: `*` matches any run of characters (also none), `?` exactly
/// one, anything else itself.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let (glob, text): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut g, mut t) = (0, 0);
    // Where the last `*` was, and the text position it has matched up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some('*') => {
                star = Some((g, t));
                g += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    g = sg + 1;
                    t = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::MonitorConfig;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn window(start: &str, hours: u64) -> Window {
        Window {
            name: "db-migration".to_owned(),
            start: Schedule::crontab(start).unwrap(),
            timezone: chrono_tz::Europe::Berlin,
            duration: Duration::from_secs(hours * 3600),
            project: None,
            slug: None,
            probe: None,
        }
    }

    #[test]
    fn a_nightly_window_follows_the_wall_clock_across_both_dst_changes() {
        // 02:00 Berlin for 2 h. Winter (CET, UTC+1): 01:00–03:00 UTC; summer (CEST, UTC+2):
        // 00:00–02:00 UTC.
        let w = window("0 2 * * *", 2);
        assert_eq!(w.active_until(utc(2026, 3, 28, 0, 59)), None);
        assert_eq!(
            w.active_until(utc(2026, 3, 28, 1, 0)),
            Some(utc(2026, 3, 28, 3, 0))
        );
        assert_eq!(w.active_until(utc(2026, 3, 28, 3, 0)), None);
        // 29 March: 02:00 CET does not exist (the clocks jump to 03:00 CEST = 01:00 UTC); the
        // window starts at the first valid minute after the gap and still lasts 2 h.
        assert_eq!(w.active_until(utc(2026, 3, 29, 0, 30)), None);
        assert_eq!(
            w.active_until(utc(2026, 3, 29, 1, 0)),
            Some(utc(2026, 3, 29, 3, 0))
        );
        assert_eq!(
            w.active_until(utc(2026, 3, 30, 0, 0)),
            Some(utc(2026, 3, 30, 2, 0))
        );
        assert_eq!(w.active_until(utc(2026, 3, 30, 2, 0)), None);
        // 25 October: 02:00–03:00 happens twice; the window starts once, at the first 02:00
        // (CEST, 00:00 UTC), and lasts 2 h of elapsed time.
        assert_eq!(
            w.active_until(utc(2026, 10, 25, 0, 0)),
            Some(utc(2026, 10, 25, 2, 0))
        );
        assert_eq!(
            w.active_until(utc(2026, 10, 25, 1, 30)),
            Some(utc(2026, 10, 25, 2, 0))
        );
        assert_eq!(w.active_until(utc(2026, 10, 25, 2, 0)), None);
        // The next night is winter time again.
        assert_eq!(w.active_until(utc(2026, 10, 26, 0, 30)), None);
        assert_eq!(
            w.active_until(utc(2026, 10, 26, 1, 0)),
            Some(utc(2026, 10, 26, 3, 0))
        );
    }

    #[test]
    fn a_window_applies_by_project_and_slug_glob_and_the_latest_quiet_end_wins() {
        let key = |project, slug: &str| MonitorKey::new(project, slug, None).unwrap();
        let mut db = window("0 2 * * *", 2);
        db.project = Some(1);
        db.slug = Some("db-*".to_owned());
        assert!(db.applies_to(&key(1, "db-vacuum")));
        assert!(!db.applies_to(&key(2, "db-vacuum")));
        assert!(!db.applies_to(&key(1, "nightly-db")));
        for (glob, slug, matches) in [
            ("*", "anything", true),
            ("db-*-nightly", "db-eu-nightly", true),
            ("db-*-nightly", "db-nightly", false),
            ("job-??", "job-01", true),
            ("job-??", "job-1", false),
            ("*backup*", "nightly-backup-eu", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
        ] {
            assert_eq!(glob_matches(glob, slug), matches, "{glob} ~ {slug}");
        }

        let mut monitor = MonitorEnv::new(
            key(1, "db-vacuum"),
            MonitorConfig::new(Schedule::crontab("0 * * * *").unwrap()),
        );
        let now = utc(2026, 6, 1, 0, 30);
        assert_eq!(
            quiet_until(std::slice::from_ref(&db), &monitor, now),
            Some(utc(2026, 6, 1, 2, 0))
        );
        monitor.snoozed_until = Some(utc(2026, 6, 1, 5, 0));
        assert_eq!(
            quiet_until(std::slice::from_ref(&db), &monitor, now),
            Some(utc(2026, 6, 1, 5, 0))
        );
        assert_eq!(
            quiet_until(&[db], &monitor, utc(2026, 6, 1, 5, 0)),
            None,
            "a snooze ends at its time"
        );
    }

    #[test]
    fn a_window_with_a_probe_glob_applies_to_those_probes_and_to_no_monitor() {
        let mut w = window("0 2 * * *", 1);
        w.probe = Some("api-*".to_owned());
        let key = MonitorKey::new(1, "api-backup", None).unwrap();
        assert!(!w.applies_to(&key));
        assert!(w.applies_to_probe("api-health"));
        assert!(!w.applies_to_probe("db-health"));
        let inside = utc(2026, 1, 5, 1, 30); // 02:30 in Berlin
        let mut state = ProbeState::new("api-health");
        assert!(probe_quiet_until(std::slice::from_ref(&w), &state, inside).is_some());
        state.name = "db-health".to_owned();
        assert_eq!(probe_quiet_until(&[w], &state, inside), None);
        // A monitor window (no `probe`) applies to no probe.
        let monitors = window("0 2 * * *", 1);
        assert!(!monitors.applies_to_probe("api-health"));
    }
}
