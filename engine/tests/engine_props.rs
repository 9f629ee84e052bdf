//! Property tests of the engine's invariants over random sequences of check-ins, sweeps, mutes,
//! disables and outages of the collector itself at non-decreasing times, driven through the
//! public API the way the IO side drives it (deadline index, check-ins stored by id, the
//! outage windows handed to the sweeps).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use uuid::Uuid;
use watchpost_engine::{
    CheckIn, CheckInInput, CheckInStatus, DeadlineIndex, DeadlineKind, Effect, IntervalUnit,
    MAX_OPEN_RUNS, MonitorConfig, MonitorEnv, MonitorKey, MonitorStatus, Outage, OutageKind,
    Outages, Schedule, Transition, deadlines_of, process_checkin, sweep_missed, sweep_timeout,
    target_checkin_id,
};

#[derive(Clone, Debug)]
enum Op {
    /// A check-in: run id 0 means none, status, duration in seconds, and how many seconds
    /// before the current time ingest took its `now` (concurrent requests reach the monitor in
    /// a different order than they took their timestamps).
    CheckIn(u8, CheckInStatus, Option<u32>, i64),
    Sweep,
    Mute(bool),
    Disable(bool),
    /// The collector is down for this many seconds: nothing happens meanwhile, and the window
    /// is known to every sweep after it.
    Outage(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop_oneof![
        Just(CheckInStatus::InProgress),
        Just(CheckInStatus::Ok),
        Just(CheckInStatus::Error),
    ];
    prop_oneof![
        6 => (0u8..5, status, proptest::option::of(0u32..7200), prop_oneof![3 => Just(0i64), 1 => 0i64..90])
            .prop_map(|(run, status, duration, skew)| Op::CheckIn(run, status, duration, skew)),
        4 => Just(Op::Sweep),
        1 => any::<bool>().prop_map(Op::Mute),
        1 => any::<bool>().prop_map(Op::Disable),
        1 => prop_oneof![0i64..120, 0i64..7200].prop_map(Op::Outage),
    ]
}

/// Seconds to wait before an op: seconds to minutes, sometimes days (an outage).
fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![3 => 0i64..120, 8 => 0i64..5400, 1 => 0i64..(3 * 86_400)]
}

fn config() -> impl Strategy<Value = MonitorConfig> {
    let schedule = prop_oneof![
        Just(Schedule::crontab("0 * * * *").unwrap()),
        Just(Schedule::crontab("30 2 * * *").unwrap()),
        Just(Schedule::Interval {
            value: 10,
            unit: IntervalUnit::Minute
        }),
        Just(Schedule::Interval {
            value: 45,
            unit: IntervalUnit::Second
        }),
        Just(Schedule::Interval {
            value: 1,
            unit: IntervalUnit::Day
        }),
    ];
    let tz = prop_oneof![Just("UTC"), Just("Europe/Berlin"), Just("America/New_York")];
    (schedule, tz, 1u64..120, 1u64..90, 1u32..5, 1u32..4).prop_map(
        |(schedule, tz, margin_min, runtime_min, failures, recoveries)| MonitorConfig {
            schedule,
            timezone: tz.to_owned(),
            checkin_margin: Duration::from_secs(margin_min * 60),
            max_runtime: Duration::from_secs(runtime_min * 60),
            failure_issue_threshold: failures,
            recovery_threshold: recoveries,
        },
    )
}

struct World {
    monitor: MonitorEnv,
    checkins: HashMap<Uuid, CheckIn>,
    index: DeadlineIndex,
    /// Incidents opened and resolved, by id, from effects alone.
    opened: Vec<Uuid>,
    resolved: Vec<Uuid>,
    /// The collector's outages so far, and the grace floor.
    outages: Outages,
}

impl World {
    /// Checks one transition against the state before it, then applies it.
    fn apply(&mut self, t: Transition, now: DateTime<Utc>) -> Result<(), TestCaseError> {
        let before = &self.monitor;
        let after = &t.monitor;
        // State never rolls back in time.
        prop_assert!(
            after.last_checkin >= before.last_checkin,
            "last_checkin moved back"
        );
        if before.next_checkin.is_some() {
            prop_assert!(
                after.next_checkin >= before.next_checkin,
                "next_checkin moved back"
            );
            prop_assert!(after.next_checkin_latest >= before.next_checkin_latest);
        }
        // Exactly one effect per incident transition, and none otherwise.
        let was = before.open_incident.as_ref().map(|i| i.id);
        let is = after.open_incident.as_ref().map(|i| i.id);
        match (was, is, t.effects.as_slice()) {
            (None, None, []) => {}
            (Some(a), Some(b), []) if a == b => {}
            (None, Some(b), [Effect::IncidentOpened { incident, notify }]) => {
                prop_assert_eq!(incident.id, b);
                prop_assert_eq!(*notify, !after.muted);
                prop_assert!(!self.opened.contains(&b), "incident id reused");
                self.opened.push(b);
            }
            (Some(a), None, [Effect::IncidentResolved { incident, .. }]) => {
                prop_assert_eq!(incident.id, a);
                prop_assert_eq!(incident.resolved_at, Some(now));
                self.resolved.push(a);
            }
            (was, is, effects) => {
                return Err(TestCaseError::fail(format!(
                    "incident {was:?} -> {is:?} with effects {effects:?}"
                )));
            }
        }
        // Status agrees with the rest of the state.
        let expected = if after.disabled {
            MonitorStatus::Disabled
        } else if after.open_incident.is_some() {
            MonitorStatus::Error
        } else if after.last_checkin.is_some() {
            MonitorStatus::Ok
        } else {
            MonitorStatus::Active
        };
        prop_assert_eq!(after.status, expected);
        prop_assert!(after.open_runs.len() <= MAX_OPEN_RUNS);
        // The store keeps an open run's `in_progress` check-in only in the monitor record:
        // the run says everything the check-in says.
        if let Some(run) = after.open_run(t.checkin.id) {
            prop_assert_eq!(t.checkin.status, CheckInStatus::InProgress);
            prop_assert_eq!(&run.checkin(&after.key), &t.checkin);
        }
        // An `unknown` slot changes no threshold and opens nothing.
        if t.checkin.status == CheckInStatus::Unknown {
            prop_assert_eq!(&before.streak, &after.streak);
            prop_assert!(t.effects.is_empty());
        }
        self.index.upsert_for(&t.monitor);
        // A new check-in never takes the id of another stored one (an `unknown` slot recorded
        // again, or its `missed`, keeps the slot's id and time).
        for checkin in t.earlier.into_iter().chain([t.checkin]) {
            if let Some(stored) = self.checkins.get(&checkin.id) {
                prop_assert_eq!(&stored.date_added, &checkin.date_added, "id collision");
            }
            self.checkins.insert(checkin.id, checkin);
        }
        self.monitor = t.monitor;
        Ok(())
    }

    /// A `missed` or `timeout` decided by a sweep at `now` for `deadline`: never before the end
    /// of the grace of an outage the deadline fell in or near.
    fn check_grace(
        &self,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), TestCaseError> {
        let grace = self.outages.grace(&self.monitor.config);
        for window in &self.outages.windows {
            let until = window.end(now) + grace;
            prop_assert!(
                deadline < window.from || deadline > until || now >= until,
                "deadline {deadline} near the outage {window:?} decided at {now}, before {until}"
            );
        }
        Ok(())
    }

    fn step(&mut self, op: &Op, now: DateTime<Utc>) -> Result<(), TestCaseError> {
        match op {
            Op::CheckIn(run, status, duration, skew) => {
                let now = now - TimeDelta::seconds(*skew);
                let input = CheckInInput {
                    key: self.monitor.key.clone(),
                    id: (*run != 0).then(|| Uuid::from_u128(u128::from(*run))),
                    status: *status,
                    duration: duration.map(f64::from),
                    config: None,
                    log: None,
                };
                let target = target_checkin_id(Some(&self.monitor), &input);
                let existing = target.and_then(|id| self.checkins.get(&id).cloned());
                if let Ok(t) = process_checkin(Some(self.monitor.clone()), existing, input, now) {
                    self.apply(t, now)?;
                }
            }
            Op::Sweep => {
                for deadline in self.index.pop_due(now) {
                    let t = match deadline.kind {
                        DeadlineKind::Missed => sweep_missed(&self.monitor, now, &self.outages),
                        DeadlineKind::Timeout(id) => {
                            sweep_timeout(&self.monitor, &self.checkins[&id], now, &self.outages)
                        }
                        // No repeating rule is armed here: incidents never have a repeat.
                        DeadlineKind::Repeat => {
                            return Err(TestCaseError::fail("a repeat without a repeating rule"));
                        }
                    };
                    match t {
                        Some(t) => {
                            if matches!(
                                t.checkin.status,
                                CheckInStatus::Missed | CheckInStatus::Timeout
                            ) {
                                self.check_grace(deadline.at, now)?;
                            }
                            self.apply(t, now)?;
                        }
                        None => self.index.upsert_for(&self.monitor),
                    }
                }
                // Nothing stays due after a sweep: the sweeper cannot spin.
                prop_assert!(
                    self.index.next_deadline().is_none_or(|at| at > now),
                    "still due after sweep: {:?}",
                    self.index.due(now).collect::<Vec<_>>()
                );
            }
            Op::Mute(muted) => self.monitor.set_muted(*muted),
            Op::Outage(_) => {}
            Op::Disable(disabled) => {
                let before = self.monitor.clone();
                self.monitor.set_disabled(*disabled, now);
                prop_assert!(self.monitor.last_checkin == before.last_checkin);
                prop_assert!(self.monitor.next_checkin >= before.next_checkin);
                self.index.upsert_for(&self.monitor);
            }
        }
        // The index holds exactly the monitor's deadlines.
        let mut indexed = self.index.deadlines_for(&self.monitor.key);
        let mut wanted = deadlines_of(&self.monitor);
        indexed.sort();
        wanted.sort();
        prop_assert_eq!(indexed, wanted);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn engine_invariants(
        config in config(),
        floor in prop_oneof![Just(0u64), 1u64..600],
        ops in proptest::collection::vec((gap(), op()), 1..80),
    ) {
        let key = MonitorKey { project: 1, slug: "job".into(), environment: "production".into() };
        let monitor = MonitorEnv::new(key, config);
        let mut world = World {
            index: DeadlineIndex::new(),
            monitor,
            checkins: HashMap::new(),
            opened: Vec::new(),
            resolved: Vec::new(),
            outages: Outages::new(Vec::new(), Duration::from_secs(floor)),
        };
        let mut now: DateTime<Utc> = "2026-03-27T23:00:00Z".parse().unwrap();
        for (gap, op) in &ops {
            now += TimeDelta::seconds(*gap);
            if let Op::Outage(down) = op {
                let from = now;
                now += TimeDelta::seconds(*down);
                world.outages.windows.push(Outage { from, to: Some(now), kind: OutageKind::Down });
            }
            world.step(op, now)?;
        }
        // Every resolution closed an incident that was opened, each once.
        for id in &world.resolved {
            prop_assert!(world.opened.contains(id));
        }
        let mut unique = world.resolved.clone();
        unique.dedup();
        prop_assert_eq!(unique.len(), world.resolved.len());
    }
}
