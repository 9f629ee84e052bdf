//! The one path by which a monitor environment or an issue changes: check-ins and events from
//! ingest, sweeps from the sweeper and edits from the API all load state, run the pure engine,
//! commit one atomic write set, re-index deadlines, and acknowledge only once the write is durable.
//! Never decides rules itself.
//!
//! **Alerts.** Every effect the engine returns is turned into outbox deliveries by the
//! [`Planner`] and written in the same atomic write as the state change that caused it; once
//! that write is durable the dispatcher is woken. A crash therefore loses an alert only
//! together with its cause, and a cause is never stored without its alert.
//!
//! **Serialization per monitor.** Work on a monitor environment holds one of 4,096 striped tokio
//! mutexes, picked by hashing its key, from loading its state to committing the result. Chosen
//! over a single engine task because check-ins for different monitors then proceed in parallel
//! (no global queue in front of the store), and over one mutex per key because stripes need no
//! map that grows with every monitor ever seen and no cleanup; an input touching several
//! monitors (an envelope) takes its stripes in ascending order, so it cannot deadlock. Two
//! monitors sharing a stripe merely wait for each other for the microseconds a commit takes.
//! Stripes are cheap (a few dozen bytes each), and collisions are not: with 256 stripes, 64
//! concurrent envelopes of 10 check-ins each held most stripes at once and queued behind each
//! other (loadgen `--batch 10`: 14,200 check-ins/s and p99 227 ms with 256 stripes, 16,400/s
//! and p99 81 ms with 4,096, same machine, back to back).
//! Issues take stripes of the same set, keyed by issue id: an envelope with check-ins and
//! events locks all its stripes in one ascending pass.
//!
//! **Acknowledgement.** The stripe is released *before* waiting for the fsync, so one slow disk
//! flush never blocks the next check-in of the same monitor. That is safe: a later write that
//! built on not-yet-durable state is acknowledged only after a flush that covers both, and sled
//! recovers a prefix of its log, never a later write without an earlier one.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;
use watchpost_protocol::Event;

use crate::alert::{NewDelivery, Planner};
use crate::caps::{CapsConfig, Census, Held, RefusalLog};
use crate::config::{MonitorSpec, Retention};
use crate::deadlines::Deadlines;
use crate::engine::caps::{ConfigVerdict, OVERFLOW_FINGERPRINT, Origin, Refused, config_verdict};
use crate::engine::dependencies::{Fold, Node};
use crate::engine::issues::{event_issue_id, issue_id, process_event, set_status};
use crate::engine::oncall::{self, AckRefusal, Repeat};
use crate::engine::{
    CheckIn, CheckInInput, CheckInStatus, ConfigPatch, Deadline, DeadlineKind, Effect, Incident,
    IncidentKind, Issue, IssueStatus, MonitorConfig, MonitorEnv, MonitorKey, Rejection, Transition,
    process_checkin, sweep_missed, sweep_timeout, target_checkin_id,
};
use crate::liveness::Liveness;
pub use crate::process_error::ProcessError;
use crate::store::{LogEntry, MetaWrite, Prune, RawEvent, Seq, Store, StoreError, WriteSet};

const STRIPES: usize = 4096;
/// How long a request waits for its write to become durable before giving up with a 503. An
/// fsync takes milliseconds to a second; 5 s means the flush is stuck. With the store's own
/// 5 s bound on the write before it, a request spends at most 10 s on the store, inside the
/// 30 s timeouts of common HTTP clients: the client gets `503 ... retry later`, not a hang.
const DURABLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Check-ins and events from one request, applied all or nothing.
#[derive(Debug, Default)]
pub struct Batch {
    /// Check-ins in order.
    pub checkins: Vec<CheckInInput>,
    /// Error events in order.
    pub events: Vec<EventInput>,
    /// The envelope to relay upstream, queued in the same write set (see `upstream.rs`).
    pub forward: Option<Vec<u8>>,
}

/// An error event, parsed and validated by ingest.
#[derive(Debug)]
pub struct EventInput {
    /// The project it was sent to.
    pub project: u64,
    /// The event.
    pub event: Event,
    /// The item payload, exactly as sent: what `GET /api/v1/issues/{id}/events` returns.
    pub payload: Vec<u8>,
}

/// What happened to each check-in of an accepted [`Batch`].
#[derive(Debug, Default)]
pub struct Accepted {
    /// The id of each check-in as recorded, in input order; `None` where it was dropped.
    pub ids: Vec<Option<Uuid>>,
    /// Check-ins dropped without error (the monitor is disabled), with the reason.
    pub dropped: Vec<(usize, Rejection)>,
}

/// Due deadlines swept per write set: large enough that a burst of overdue monitors costs a
/// few commits instead of one each, small enough that the monitors' locks are held for a few
/// milliseconds at most.
const SWEEP_BATCH: usize = 256;

/// What one batch of a sweep wrote.
struct Swept {
    seq: Option<Seq>,
    report: SweepReport,
    alerted: bool,
}

/// What a sweep recorded.
#[derive(Debug, Default, Clone, Copy)]
pub struct SweepReport {
    /// `missed` check-ins recorded.
    pub missed: u64,
    /// Runs turned into `timeout`.
    pub timeouts: u64,
    /// Deadlines near an outage of the collector given a grace (`unknown` slots recorded, a
    /// run's timeout moved).
    pub deferred: u64,
    /// Open incidents whose alert was sent again (`repeat`).
    pub repeats: u64,
}

/// Which environments an API edit applies to.
#[derive(Debug, Clone)]
pub enum Target {
    /// One monitor environment.
    One(MonitorKey),
    /// Every environment of a monitor (`production` when creating one that has none).
    AllEnvironments {
        /// Project id.
        project: u64,
        /// Normalized slug.
        slug: String,
    },
}

/// An API `PATCH`.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// Config fields to change.
    pub config: ConfigPatch,
    /// Mute or unmute.
    pub muted: Option<bool>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// Snooze for this long from now (`Some(None)`: end the snooze).
    pub snooze: Option<Option<Duration>>,
}

/// Applies inputs to monitor environments and issues. See the module docs for the
/// concurrency design.
#[derive(Debug)]
pub struct Processor {
    store: Store,
    deadlines: Arc<Deadlines>,
    locks: KeyLocks,
    retention: Retention,
    /// When each monitor environment's check-ins and log entries are next pruned.
    prune_checkins: PruneSchedule,
    prune_logs: PruneSchedule,
    alerts: Arc<Planner>,
    /// The collector's own outages: fed by every write's outcome, read by the sweeps.
    liveness: Arc<Liveness>,
    /// Caps and upsert policy per project (`engine::caps`), and the counts they are checked
    /// against.
    caps: CapsConfig,
    census: Census,
    refusals: Arc<RefusalLog>,
    /// The probes, whose tasks acknowledge their own incidents; set once they exist.
    probes: std::sync::OnceLock<crate::probe::Probes>,
}

impl Processor {
    /// A processor writing to `store`, indexing into `deadlines`, and planning the alerts of
    /// what it changes with `alerts`.
    pub fn new(
        store: Store,
        deadlines: Arc<Deadlines>,
        retention: Retention,
        alerts: Arc<Planner>,
    ) -> Processor {
        Processor {
            store,
            deadlines,
            locks: KeyLocks::new(STRIPES),
            prune_checkins: PruneSchedule::new(retention.checkins_per_monitor),
            prune_logs: PruneSchedule::new(retention.checkins_per_monitor),
            retention,
            alerts,
            liveness: Arc::new(Liveness::none()),
            caps: CapsConfig::default(),
            census: Census::default(),
            refusals: Arc::new(RefusalLog::in_memory()),
            probes: std::sync::OnceLock::new(),
        }
    }

    /// Routes acknowledgements of probe incidents to `probes`' tasks. Set once; a second call
    /// changes nothing.
    pub fn attach_probes(&self, probes: crate::probe::Probes) {
        let _ = self.probes.set(probes);
    }

    /// Checks check-ins and events against `caps`, counting what the store holds now, and
    /// keeps refusals in the store.
    pub fn with_caps(mut self, caps: CapsConfig) -> Result<Processor, StoreError> {
        self.census = Census::load(&self.store)?;
        self.refusals = Arc::new(RefusalLog::load(&self.store, Utc::now())?);
        self.caps = caps;
        Ok(self)
    }

    /// The key acknowledge links are signed with, to check the ones that come back.
    pub fn ack_keys(&self) -> Option<&crate::ack::AckKeys> {
        self.alerts.ack_keys()
    }

    /// The refusal log, for the API, the dashboard and `/metrics`.
    pub fn refusals(&self) -> &Arc<RefusalLog> {
        &self.refusals
    }

    /// Sweeps with the grace rules for these outages, and reports every write's outcome to it.
    pub fn watching(mut self, liveness: Arc<Liveness>) -> Processor {
        self.liveness = liveness;
        self
    }

    /// Applies a request's check-ins and events atomically: every check-in and event is run
    /// through the engine (later ones seeing the effect of earlier ones) before anything is
    /// written, so a rejection leaves no trace. Check-ins for a disabled monitor are dropped,
    /// not rejected. Returns once the write is durable.
    pub async fn ingest(&self, batch: Batch) -> Result<Accepted, ProcessError> {
        // Grouping is pure: the issue ids are known before any lock is taken.
        let issue_ids: Vec<String> = batch
            .events
            .iter()
            .map(|e| event_issue_id(e.project, &e.event))
            .collect();
        // An event past the issues cap goes to its project's overflow issue, decided under
        // the locks: that issue's stripe is taken too.
        let overflow_ids: Vec<String> = batch
            .events
            .iter()
            .map(|e| overflow_issue_id(e.project))
            .collect();
        let (seq, accepted, alerted) = {
            let stripes = batch
                .checkins
                .iter()
                .map(|c| self.locks.stripe(&c.key))
                .chain(issue_ids.iter().map(|id| self.locks.stripe(id)))
                .chain(overflow_ids.iter().map(|id| self.locks.stripe(id)));
            let _guards = self.locks.lock_stripes(stripes).await;
            let now = Utc::now();
            let mut pending = Pending::default();
            let mut held = Held::new(&self.census);
            let mut accepted = Accepted::default();
            for (index, input) in batch.checkins.into_iter().enumerate() {
                match self.run_checkin(&mut pending, &mut held, input, now)? {
                    Ok(Ok(id)) => accepted.ids.push(Some(id)),
                    Ok(Err(Rejection::Disabled(key))) => {
                        accepted.ids.push(None);
                        accepted.dropped.push((index, Rejection::Disabled(key)));
                    }
                    Ok(Err(rejection)) => {
                        return Err(ProcessError::Rejected { index, rejection });
                    }
                    Err(refused) => {
                        self.refusals.record(&refused, now);
                        return Err(ProcessError::Refused { index, refused });
                    }
                }
            }
            for (input, id) in batch.events.into_iter().zip(issue_ids) {
                self.run_event(&mut pending, &mut held, input, id, now)?;
            }
            let refused = std::mem::take(&mut pending.refused);
            let mut writes = pending.into_writes();
            writes.upstream.extend(batch.forward);
            let seq = self.apply(&mut writes, now).await?;
            held.keep();
            for refused in &refused {
                self.refusals.record(refused, now);
            }
            (seq, accepted, !writes.deliveries.is_empty())
        };
        self.durable(seq).await?;
        if alerted {
            self.alerts.wake();
        }
        Ok(accepted)
    }

    /// Folds one event into its issue (the pending state, else the stored one) and plans the
    /// alerts it causes.
    ///
    /// An event whose issue does not exist yet opens it only while the project is under
    /// `caps.issues_per_project`; past it, the event is counted against the project's overflow
    /// issue (its fingerprint replaced, its payload kept as sent) and the first such event of
    /// the input is kept as a refusal, so people see why no new issue appeared.
    fn run_event(
        &self,
        pending: &mut Pending,
        held: &mut Held<'_>,
        mut input: EventInput,
        mut issue_id: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut stored = self.pending_or_stored_issue(pending, &issue_id)?;
        let caps = self.caps.of(input.project);
        let mut overflowed = false;
        // The overflow issue itself is not counted (as `Census::load` does not).
        if stored.is_none()
            && issue_id != overflow_issue_id(input.project)
            && !held.issue(&caps, input.project)
        {
            overflowed = true;
            if !pending.overflowed.contains(&input.project) {
                pending.overflowed.push(input.project);
                pending.refused.push(Refused::IssuesPerProject {
                    project: input.project,
                    limit: caps.issues_per_project,
                });
            }
            input.event.fingerprint = Some(vec![OVERFLOW_FINGERPRINT.to_owned()]);
            issue_id = overflow_issue_id(input.project);
            stored = self.pending_or_stored_issue(pending, &issue_id)?;
        }
        let new = stored.is_none();
        let (mut issue, effects) = process_event(
            stored,
            &input.event,
            input.project,
            now,
            self.alerts.spike_rules(),
        );
        if overflowed && new {
            issue.title = format!(
                "Events over the cap of {} issues of project {} (caps.issues_per_project)",
                caps.issues_per_project, input.project
            );
        }
        for effect in &effects {
            pending
                .deliveries
                .extend(self.alerts.issue(effect, &issue, now));
        }
        pending.events.push(RawEvent {
            issue: issue_id.clone(),
            event_id: input.event.event_id,
            received: now,
            payload: input.payload,
        });
        if pending.issues.insert(issue_id.clone(), issue).is_none() {
            pending.changed_issues.push(issue_id);
        }
        Ok(())
    }

    /// An issue as this input has left it so far, else as stored.
    fn pending_or_stored_issue(
        &self,
        pending: &Pending,
        id: &str,
    ) -> Result<Option<Issue>, StoreError> {
        match pending.issues.get(id) {
            Some(issue) => Ok(Some(issue.clone())),
            None => self.store.issue(id),
        }
    }

    /// Resolves, ignores or reopens an issue by hand (no alert: the person doing it knows).
    /// Returns the issue as stored, once durable.
    pub async fn set_issue_status(
        &self,
        id: &str,
        status: IssueStatus,
    ) -> Result<Issue, ProcessError> {
        let (seq, issue) = {
            let _guard = self.locks.lock(id).await;
            let Some(mut issue) = self.store.issue(id)? else {
                return Err(ProcessError::NotFound(format!("no issue has id `{id}`")));
            };
            let now = Utc::now();
            set_status(&mut issue, status, now);
            let mut writes = WriteSet {
                issues: vec![issue.clone()],
                ..WriteSet::default()
            };
            (self.apply(&mut writes, now).await?, issue)
        };
        self.durable(seq).await?;
        Ok(issue)
    }

    /// Runs one check-in against the pending state; the outer `Result` is a store failure,
    /// the middle one a cap or the upsert policy, the inner one the engine's verdict.
    ///
    /// Caps and policy first: a check-in that would create a monitor environment reserves it
    /// in `held` (or is refused); one whose `monitor_config` the policy does not let change
    /// the monitor is run without it, and a real change is kept as a refusal once written.
    fn run_checkin(
        &self,
        pending: &mut Pending,
        held: &mut Held<'_>,
        mut input: CheckInInput,
        now: DateTime<Utc>,
    ) -> Result<Result<Result<Uuid, Rejection>, Refused>, StoreError> {
        let monitor = self.monitor_state(pending, &input.key)?;
        let caps = self.caps.of(input.key.project);
        match (&monitor, &input.config) {
            (None, Some(_)) => {
                if let Err(refused) = held.monitor(&caps, &input.key) {
                    return Ok(Err(refused));
                }
            }
            (Some(monitor), Some(patch)) => {
                let origin = if self.census.is_managed(&monitor.key) {
                    Origin::Managed
                } else {
                    Origin::CheckIn
                };
                match config_verdict(caps.upsert, origin, patch, &monitor.config) {
                    ConfigVerdict::Apply => {}
                    ConfigVerdict::Ignore => input.config = None,
                    ConfigVerdict::Refuse(why) => {
                        pending.refused.push(Refused::ConfigChange {
                            key: monitor.key.clone(),
                            why,
                        });
                        input.config = None;
                    }
                }
            }
            _ => {}
        }
        let existing = match target_checkin_id(monitor.as_ref(), &input) {
            Some(id) => match pending.checkins.get(&id) {
                Some(checkin) => Some(checkin.clone()),
                None => {
                    let stored = self.store.checkin(id)?;
                    if stored.is_none() {
                        // Under the monitor's lock until the commit: the store need not look
                        // again.
                        pending.unstored.push(id);
                    }
                    stored
                }
            },
            None => None,
        };
        let transition = match process_checkin(monitor, existing, input, now) {
            Ok(transition) => transition,
            Err(rejection) => return Ok(Ok(Err(rejection))),
        };
        let id = transition.checkin.id;
        if !transition.unchanged {
            let blocked = self.blocked(&transition, now)?;
            pending.record(transition, blocked, &self.alerts, now);
        }
        Ok(Ok(Ok(id)))
    }

    /// The dependents of a monitor whose repeat is due that are failing with their alerts
    /// held for it (`depends_on`): its repeat names them. `None` when nothing is held, or
    /// nothing is sent.
    fn held_dependents(&self, repeat: &Repeat) -> Result<Option<Fold>, StoreError> {
        let node = Node::Monitor(repeat.monitor.key.slug.clone());
        let dependencies = self.alerts.dependencies();
        if repeat.released || repeat.rules.is_empty() || !dependencies.has_dependents(&node) {
            return Ok(None);
        }
        let failing =
            dependencies.held_dependents(&self.store, &node, repeat.incident.opened_at)?;
        Ok((!failing.is_empty()).then(|| Fold::of(&failing, &[])))
    }

    /// Until when the incident `transition` opens is held because a monitor or probe its
    /// monitor depends on is failing (`depends_on`); `None` when it opens none to announce or
    /// nothing holds it. Reads the dependencies' states only when an incident opens.
    fn blocked(
        &self,
        transition: &Transition,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let opens = transition
            .effects
            .iter()
            .any(|e| matches!(e, Effect::IncidentOpened { notify: true, .. }));
        if !opens {
            return Ok(None);
        }
        let node = Node::Monitor(transition.monitor.key.slug.clone());
        self.alerts
            .dependencies()
            .hold_until(&self.store, &node, now)
    }

    /// A monitor environment as this input has left it so far, else as stored (remembered in
    /// `pending`, so later inputs of the same batch build on it).
    fn monitor_state(
        &self,
        pending: &mut Pending,
        key: &MonitorKey,
    ) -> Result<Option<MonitorEnv>, StoreError> {
        if let Some(state) = pending.monitors.get(key) {
            return Ok(state.clone());
        }
        let state = self.store.monitor(key)?;
        pending.monitors.insert(key.clone(), state.clone());
        Ok(state)
    }

    /// Records a `/ping/.../log` entry: no state changes, the monitor must exist.
    /// Returns `false` if it was dropped because the monitor is disabled.
    pub async fn log(&self, entry: LogEntry) -> Result<bool, ProcessError> {
        let seq = {
            let _guard = self.locks.lock(&entry.key).await;
            let monitor = self.store.monitor(&entry.key)?;
            match monitor {
                None => {
                    return Err(ProcessError::Rejected {
                        index: 0,
                        rejection: Rejection::UnknownMonitor(entry.key),
                    });
                }
                Some(monitor) if monitor.disabled => return Ok(false),
                Some(_) => {}
            }
            let now = entry.received;
            let mut writes = WriteSet {
                logs: vec![entry],
                ..WriteSet::default()
            };
            self.apply(&mut writes, now).await?
        };
        self.durable(seq).await?;
        Ok(true)
    }

    /// Acknowledges the open incident `id` as `by`: its repeats stop, and `monitor.acknowledged`
    /// goes out in the same write. Returns the incident as acknowledged, once durable.
    pub async fn acknowledge(&self, id: Uuid, by: &str) -> Result<Incident, ProcessError> {
        let Some(found) = self.store.open_incident(id)? else {
            return Err(AckRefusal::NotOpen(id).into());
        };
        if found.kind == IncidentKind::Probe {
            // The probe's task owns its state: it records the acknowledgement itself.
            let Some(probes) = self.probes.get() else {
                return Err(AckRefusal::ProberAway(id).into());
            };
            return probes.acknowledge(&found.key.slug, id, by).await;
        }
        let key = found.key;
        let (seq, incident, deliveries) = {
            let _guard = self.locks.lock(&key).await;
            let now = Utc::now();
            let Some(monitor) = self.store.monitor(&key)? else {
                return Err(AckRefusal::NotOpen(id).into());
            };
            let (monitor, incident) = oncall::acknowledge(&monitor, id, by, now)?;
            let deliveries = self.alerts.acknowledged(&incident, &monitor, now);
            let mut writes = WriteSet {
                monitors: vec![monitor],
                deliveries,
                ..WriteSet::default()
            };
            let seq = self.apply(&mut writes, now).await?;
            (seq, incident, !writes.deliveries.is_empty())
        };
        self.durable(seq).await?;
        if deliveries {
            self.alerts.wake();
        }
        tracing::info!(
            kind = "monitor.acknowledged",
            project = key.project,
            slug = %key.slug,
            environment = %key.environment,
            by = %by,
            "incident acknowledged"
        );
        Ok(incident)
    }

    /// Runs the missed and timeout sweeps for deadlines the index found due, up to
    /// `SWEEP_BATCH` deadlines per write set. The deadlines of a batch that fails are put
    /// back; the first error is returned after the other batches were tried.
    pub async fn sweep(
        &self,
        due: Vec<Deadline>,
        now: DateTime<Utc>,
    ) -> Result<SweepReport, ProcessError> {
        let mut report = SweepReport::default();
        let mut last_seq = None;
        let mut alerted = false;
        let mut first_error = None;
        for batch in due.chunks(SWEEP_BATCH) {
            match self.sweep_batch(batch, now).await {
                Ok(swept) => {
                    report.missed += swept.report.missed;
                    report.timeouts += swept.report.timeouts;
                    report.deferred += swept.report.deferred;
                    report.repeats += swept.report.repeats;
                    last_seq = swept.seq.or(last_seq);
                    alerted |= swept.alerted;
                }
                Err(error) => {
                    self.deadlines.restore(batch);
                    first_error.get_or_insert(error);
                }
            }
        }
        // One durability wait for all the due deadlines.
        if let Some(seq) = last_seq {
            self.durable(seq).await?;
        }
        if alerted {
            self.alerts.wake();
        }
        first_error.map_or(Ok(report), Err)
    }

    /// Sweeps a batch of due deadlines under their monitors' locks and commits what they
    /// changed in one write set. A monitor with several due deadlines (missed and a timeout)
    /// sees the effect of the earlier ones.
    async fn sweep_batch(
        &self,
        batch: &[Deadline],
        now: DateTime<Utc>,
    ) -> Result<Swept, ProcessError> {
        let stripes: Vec<usize> = batch.iter().map(|d| self.locks.stripe(&d.key)).collect();
        let _guards = self.locks.lock_stripes(stripes).await;
        let outages = self.liveness.outages();
        let mut pending = Pending::default();
        let mut report = SweepReport::default();
        for deadline in batch {
            let key = &deadline.key;
            let Some(monitor) = self.monitor_state(&mut pending, key)? else {
                self.deadlines.remove(key);
                continue;
            };
            let transition = match deadline.kind {
                DeadlineKind::Missed => sweep_missed(&monitor, now, &outages),
                DeadlineKind::Timeout(id) => self
                    .run_checkin_for_timeout(&pending, &monitor, id)
                    .and_then(|checkin| sweep_timeout(&monitor, &checkin, now, &outages)),
                DeadlineKind::Repeat => {
                    let node = Node::Monitor(monitor.key.slug.clone());
                    let blocked = self
                        .alerts
                        .dependencies()
                        .hold_until(&self.store, &node, now)?;
                    match self.alerts.sweep_repeat(&monitor, blocked, now) {
                        Some(repeat) => {
                            let dependents = self.held_dependents(&repeat)?;
                            let deliveries = self.alerts.repeat(&repeat, dependents.as_ref(), now);
                            report.repeats += u64::from(!deliveries.is_empty());
                            pending.record_change(repeat.monitor, deliveries);
                        }
                        None => self.deadlines.upsert_for(&monitor),
                    }
                    continue;
                }
            };
            let Some(transition) = transition else {
                // Not due after all (a check-in moved it): restore the monitor's real deadlines.
                self.deadlines.upsert_for(&monitor);
                continue;
            };
            match transition.checkin.status {
                CheckInStatus::Missed => report.missed += 1,
                CheckInStatus::Timeout => report.timeouts += 1,
                _ => report.deferred += 1,
            }
            let blocked = self.blocked(&transition, now)?;
            pending.record(transition, blocked, &self.alerts, now);
        }
        let mut writes = pending.into_writes();
        if writes.is_empty() {
            return Ok(Swept {
                seq: None,
                report,
                alerted: false,
            });
        }
        let seq = self.apply(&mut writes, now).await?;
        Ok(Swept {
            seq: Some(seq),
            report,
            alerted: !writes.deliveries.is_empty(),
        })
    }

    /// The stored `in_progress` check-in of a run, or — if retention already dropped it — one
    /// rebuilt from the open run, so a run still times out.
    fn run_checkin_for_timeout(
        &self,
        pending: &Pending,
        monitor: &MonitorEnv,
        id: Uuid,
    ) -> Option<CheckIn> {
        if let Some(checkin) = pending.checkins.get(&id) {
            return Some(checkin.clone());
        }
        let stored = match self.store.checkin(id) {
            Ok(stored) => stored.filter(|c| c.key == monitor.key),
            Err(error) => {
                tracing::warn!(%error, "cannot load check-in for the timeout sweep");
                None
            }
        };
        stored.or_else(|| monitor.open_run(id).map(|run| run.checkin(&monitor.key)))
    }

    /// `PUT`: creates the monitor environment(s) with `config`, or replaces their config.
    /// Returns the environments and whether any was created. A person set their config: they
    /// are marked managed (kept from check-ins under `upsert = "create_update"`) in the same
    /// write set, so a monitor and its mark survive a crash together, and armed
    /// ([`MonitorEnv::arm`]: missed from the first slot after now, without waiting for a first
    /// check-in; one already armed keeps its deadline). Counted against the caps, never
    /// refused by them: the caps bound what the public key can do.
    pub async fn put(
        &self,
        target: Target,
        config: MonitorConfig,
    ) -> Result<(Vec<MonitorEnv>, bool), ProcessError> {
        let keys = self.resolve(&target, true)?;
        let (seq, monitors, created) = {
            let _guards = self.locks.lock_all(&keys).await;
            let now = Utc::now();
            let mut monitors = Vec::with_capacity(keys.len());
            let mut created = false;
            let mut new_keys = Vec::new();
            let mut marks = Vec::new();
            for key in &keys {
                marks.extend(self.managed_mark(key));
                let mut monitor = match self.store.monitor(key)? {
                    Some(mut monitor) => {
                        if monitor.config != config {
                            monitor.apply_config(config.clone(), now);
                        }
                        monitor
                    }
                    None => {
                        created = true;
                        new_keys.push(key);
                        MonitorEnv::new(key.clone(), config.clone())
                    }
                };
                monitor.arm(now);
                monitors.push(monitor);
            }
            let mut writes = WriteSet {
                monitors,
                meta: marks,
                ..WriteSet::default()
            };
            let seq = self.apply(&mut writes, now).await?;
            self.marked(&writes.meta);
            for key in new_keys {
                self.census.add_monitor(key);
            }
            (seq, writes.monitors, created)
        };
        self.durable(seq).await?;
        Ok((monitors, created))
    }

    /// `PATCH`: changes config fields, mute and disable of existing environment(s).
    pub async fn patch(
        &self,
        target: Target,
        patch: Patch,
    ) -> Result<Vec<MonitorEnv>, ProcessError> {
        let keys = self.resolve(&target, false)?;
        let (seq, monitors) = {
            let _guards = self.locks.lock_all(&keys).await;
            let now = Utc::now();
            let mut monitors = Vec::with_capacity(keys.len());
            let mut marks = Vec::new();
            for key in &keys {
                let Some(mut monitor) = self.store.monitor(key)? else {
                    return Err(not_found(key));
                };
                let config = patch.config.apply_to(&monitor.config)?;
                let mut marked = false;
                if config != monitor.config {
                    // A person changed it: check-ins no longer may (see `put`).
                    let mark = self.managed_mark(key);
                    marked = mark.is_some();
                    marks.extend(mark);
                    monitor.apply_config(config, now);
                }
                if let Some(muted) = patch.muted {
                    monitor.set_muted(muted);
                }
                if let Some(snooze) = patch.snooze {
                    let until = snooze.and_then(|d| {
                        chrono::TimeDelta::from_std(d)
                            .ok()
                            .and_then(|d| now.checked_add_signed(d))
                    });
                    crate::engine::maintenance::snooze(&mut monitor, until, now);
                }
                if let Some(disabled) = patch.disabled
                    && disabled != monitor.disabled
                {
                    monitor.set_disabled(disabled, now);
                }
                // A declared monitor enabled (or configured) by a person expects its job from
                // now on, as at its `PUT`; one only check-ins created keeps waiting for them.
                if marked || self.census.is_managed(key) {
                    monitor.arm(now);
                }
                monitors.push(monitor);
            }
            let mut writes = WriteSet {
                monitors,
                meta: marks,
                ..WriteSet::default()
            };
            let seq = self.apply(&mut writes, now).await?;
            self.marked(&writes.meta);
            (seq, writes.monitors)
        };
        self.durable(seq).await?;
        Ok(monitors)
    }

    /// `DELETE`: removes environment(s) with their history. Returns what was deleted.
    pub async fn delete(&self, target: Target) -> Result<Vec<MonitorKey>, ProcessError> {
        let keys = self.resolve(&target, false)?;
        let mut last = None;
        {
            let _guards = self.locks.lock_all(&keys).await;
            for key in &keys {
                if self.store.monitor(key)?.is_none() {
                    return Err(not_found(key));
                }
            }
            for key in &keys {
                // The deletion removes the origin mark with the monitor environment.
                last = Some(self.store.delete_monitor(key)?);
                self.census.set_managed(key, false);
                self.deadlines.remove(key);
                self.census.remove_monitor(key);
            }
        }
        if let Some(seq) = last {
            self.durable(seq).await?;
        }
        Ok(keys)
    }

    /// Monitors as code: creates each declared monitor environment or brings its config in
    /// line with the file, and arms it (see [`Processor::put`]). Returns how many were created
    /// or changed. At a restart an unchanged, armed declaration is left alone: its deadline
    /// stays where it was, under the outage grace rules.
    pub async fn apply_specs(&self, specs: &[MonitorSpec]) -> Result<usize, ProcessError> {
        let mut changed = 0;
        for spec in specs {
            // Declared by a person, whether or not it changes now.
            if let Some(mark) = self.managed_mark(&spec.key) {
                self.store.write_meta(mark.clone())?;
                self.marked(&[mark]);
            }
            let (monitors, created) = match self.store.monitor(&spec.key)? {
                Some(monitor)
                    if monitor.config == spec.config
                        && (monitor.is_armed() || monitor.disabled) =>
                {
                    continue;
                }
                _ => {
                    self.put(Target::One(spec.key.clone()), spec.config.clone())
                        .await?
                }
            };
            changed += 1;
            tracing::info!(
                project = spec.key.project,
                slug = %spec.key.slug,
                environment = %spec.key.environment,
                created,
                next_checkin = ?monitors.first().and_then(|m| m.next_checkin),
                "monitor from config applied"
            );
        }
        Ok(changed)
    }

    /// The write that marks a monitor environment as configured by a person, unless the census
    /// knows it is already. Written in the write set of the change it comes with, so a monitor
    /// and its mark are stored together or not at all.
    fn managed_mark(&self, key: &MonitorKey) -> Option<MetaWrite> {
        (!self.census.is_managed(key)).then(|| MetaWrite::Managed {
            key: key.clone(),
            managed: true,
        })
    }

    /// Takes marks that were written into the census.
    fn marked(&self, marks: &[MetaWrite]) {
        for mark in marks {
            if let MetaWrite::Managed { key, managed } = mark {
                self.census.set_managed(key, *managed);
            }
        }
    }

    fn resolve(&self, target: &Target, create: bool) -> Result<Vec<MonitorKey>, ProcessError> {
        match target {
            Target::One(key) => Ok(vec![key.clone()]),
            Target::AllEnvironments { project, slug } => {
                let keys: Vec<_> = self
                    .store
                    .monitor_envs(*project, slug)?
                    .into_iter()
                    .map(|m| m.key)
                    .collect();
                if !keys.is_empty() {
                    Ok(keys)
                } else if create {
                    Ok(vec![MonitorKey::new(*project, slug, None)?])
                } else {
                    Err(ProcessError::NotFound(format!(
                        "monitor `{slug}` does not exist in project {project}"
                    )))
                }
            }
        }
    }

    /// Commits with its retention, re-indexes deadlines. Called with the monitors' locks held.
    async fn apply(&self, writes: &mut WriteSet, now: DateTime<Utc>) -> Result<Seq, StoreError> {
        let keep = self.retention.checkins_per_monitor;
        for monitor in &writes.monitors {
            if self.prune_checkins.due(&monitor.key) {
                writes.prune.push(Prune {
                    key: monitor.key.clone(),
                    keep,
                    checkins: true,
                    protect: monitor.open_runs.iter().map(|run| run.id).collect(),
                });
            }
        }
        for log in &writes.logs {
            if self.prune_logs.due(&log.key) {
                writes.prune.push(Prune {
                    key: log.key.clone(),
                    keep,
                    checkins: false,
                    protect: Vec::new(),
                });
            }
        }
        let seq = match self.store.commit_async(writes, now).await {
            Ok(seq) => seq,
            Err(error) => {
                self.liveness.refused(now);
                return Err(error);
            }
        };
        for monitor in &writes.monitors {
            self.deadlines.upsert_for(monitor);
        }
        for issue in &writes.issues {
            // Most issues never reach the cap: skip the scan until one has.
            if issue.count > self.retention.events_per_issue as u64
                && let Err(error) = self
                    .store
                    .prune_issue_events(&issue.id, self.retention.events_per_issue)
            {
                tracing::warn!(%error, "event retention failed");
            }
        }
        for effect in &writes.effects {
            log_effect(effect);
        }
        Ok(seq)
    }

    async fn durable(&self, seq: Seq) -> Result<(), ProcessError> {
        let result = match tokio::time::timeout(DURABLE_TIMEOUT, self.store.wait_durable(seq)).await
        {
            Ok(result) => result.map_err(ProcessError::from),
            Err(_) => Err(ProcessError::NotDurable(DURABLE_TIMEOUT)),
        };
        match &result {
            Ok(()) => self.liveness.accepted(Utc::now()),
            Err(_) => self.liveness.refused(Utc::now()),
        }
        result
    }
}

/// Amortizes retention: a [`Prune`] scans the newest `keep` keys of a monitor environment, so
/// running it on every write cost a scan per check-in. A monitor environment is
/// pruned on the first write this process makes to it (so a restart catches up) and then on
/// every `every`-th write, `every` being a quarter of `keep`, at most 16 (1, i.e. every write,
/// for `keep` < 8). A monitor environment may so hold up to `every - 1` check-ins (or log
/// entries) beyond `keep` between prunes: at most 25 % over, and none once it is pruned again.
#[derive(Debug)]
struct PruneSchedule {
    every: u32,
    /// Writes since the last prune, per monitor environment. Bounded: cleared when it reaches
    /// [`PruneSchedule::MAX_TRACKED`], which only makes the next writes prune early.
    writes: parking_lot::Mutex<HashMap<MonitorKey, u32>>,
}

impl PruneSchedule {
    const MAX_TRACKED: usize = 100_000;

    fn new(keep: usize) -> PruneSchedule {
        let every = u32::try_from(keep / 4).unwrap_or(u32::MAX).clamp(1, 16);
        PruneSchedule {
            every,
            writes: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Counts a write to `key`; whether this one should prune.
    fn due(&self, key: &MonitorKey) -> bool {
        if self.every == 1 {
            return true;
        }
        let mut writes = self.writes.lock();
        if let Some(n) = writes.get_mut(key) {
            *n += 1;
            if *n >= self.every {
                *n = 0;
                return true;
            }
            return false;
        }
        if writes.len() >= Self::MAX_TRACKED {
            writes.clear();
        }
        writes.insert(key.clone(), 0);
        true
    }
}

/// The id of a project's overflow issue (`engine::caps::OVERFLOW_FINGERPRINT`).
fn overflow_issue_id(project: u64) -> String {
    issue_id(project, &[OVERFLOW_FINGERPRINT.to_owned()])
}

fn not_found(key: &MonitorKey) -> ProcessError {
    ProcessError::NotFound(format!(
        "monitor `{}` has no environment `{}` in project {}",
        key.slug, key.environment, key.project
    ))
}

/// Incidents are logged as well as alerted: the log tells what happened even where no channel
/// listens (and says whether it was announced).
fn log_effect(effect: &Effect) {
    match effect {
        Effect::IncidentOpened { incident, notify } => tracing::warn!(
            kind = "monitor.failed",
            project = incident.key.project,
            slug = %incident.key.slug,
            environment = %incident.key.environment,
            reason = ?incident.reason,
            notify,
            "incident opened"
        ),
        Effect::IncidentResolved { incident, notify } => tracing::info!(
            kind = "monitor.recovered",
            project = incident.key.project,
            slug = %incident.key.slug,
            environment = %incident.key.environment,
            notify,
            "incident resolved"
        ),
    }
}

/// The state an input has produced so far, before it is written: the latest state per monitor,
/// per check-in and per issue, the events, and the effects and their deliveries in order.
#[derive(Default)]
struct Pending {
    /// Every monitor looked at (stored state or a newer pending one).
    monitors: HashMap<MonitorKey, Option<MonitorEnv>>,
    /// Check-ins changed by this input, by id.
    checkins: HashMap<Uuid, CheckIn>,
    changed_monitors: Vec<MonitorKey>,
    changed_checkins: Vec<Uuid>,
    effects: Vec<Effect>,
    /// Issues changed by this input, by id (only changed ones: every event changes its issue).
    issues: HashMap<String, Issue>,
    changed_issues: Vec<String>,
    events: Vec<RawEvent>,
    deliveries: Vec<NewDelivery>,
    /// Check-in ids looked up and found not stored (see [`WriteSet::unstored`]).
    unstored: Vec<Uuid>,
    /// Refusals that do not stop the input (config changes, issues past the cap), kept once
    /// the write went through.
    refused: Vec<Refused>,
    /// Projects whose events went to the overflow issue in this input.
    overflowed: Vec<u64>,
}

impl Pending {
    /// Takes in a monitor transition, planning its effects' alerts with the monitor as the
    /// transition left it.
    /// `blocked`: until when a dependency holds the alert of an incident it opens.
    fn record(
        &mut self,
        mut transition: Transition,
        blocked: Option<DateTime<Utc>>,
        alerts: &Planner,
        now: DateTime<Utc>,
    ) {
        alerts.arm_repeats(&mut transition, blocked, now);
        let outage = transition.outage.as_ref();
        for effect in &transition.effects {
            self.deliveries
                .extend(alerts.monitor(effect, &transition.monitor, outage, now));
        }
        let key = transition.monitor.key.clone();
        if !self.changed_monitors.contains(&key) {
            self.changed_monitors.push(key.clone());
        }
        self.monitors.insert(key, Some(transition.monitor));
        for checkin in transition.earlier.into_iter().chain([transition.checkin]) {
            let id = checkin.id;
            if self.checkins.insert(id, checkin).is_none() {
                self.changed_checkins.push(id);
            }
        }
        self.effects.extend(transition.effects);
    }

    /// Takes in a change of a monitor's state that records no check-in (a repeat), with the
    /// deliveries it causes.
    fn record_change(&mut self, monitor: MonitorEnv, deliveries: Vec<NewDelivery>) {
        let key = monitor.key.clone();
        if !self.changed_monitors.contains(&key) {
            self.changed_monitors.push(key.clone());
        }
        self.monitors.insert(key, Some(monitor));
        self.deliveries.extend(deliveries);
    }

    fn into_writes(mut self) -> WriteSet {
        WriteSet {
            monitors: self
                .changed_monitors
                .iter()
                .filter_map(|key| self.monitors.remove(key).flatten())
                .collect(),
            checkins: self
                .changed_checkins
                .iter()
                .filter_map(|id| self.checkins.remove(id))
                .collect(),
            effects: self.effects,
            issues: self
                .changed_issues
                .iter()
                .filter_map(|id| self.issues.remove(id))
                .collect(),
            events: self.events,
            deliveries: self.deliveries,
            unstored: self.unstored,
            ..WriteSet::default()
        }
    }
}

/// Striped async mutexes keyed by monitor environment or issue id.
#[derive(Debug)]
struct KeyLocks {
    stripes: Vec<Mutex<()>>,
}

impl KeyLocks {
    fn new(stripes: usize) -> KeyLocks {
        KeyLocks {
            stripes: (0..stripes).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The stripe of a monitor key or an issue id.
    fn stripe<K: Hash + ?Sized>(&self, key: &K) -> usize {
        // `DefaultHasher::new()` has fixed keys: the same key always maps to the same stripe.
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % self.stripes.len() as u64) as usize
    }

    async fn lock<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, ()> {
        self.stripes[self.stripe(key)].lock().await
    }

    /// Locks the stripes of all `keys` (see [`KeyLocks::lock_stripes`]).
    async fn lock_all<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k MonitorKey>,
    ) -> Vec<MutexGuard<'_, ()>> {
        self.lock_stripes(keys.into_iter().map(|key| self.stripe(key)))
            .await
    }

    /// Locks `stripes`, in ascending order so that two callers with overlapping sets cannot
    /// deadlock.
    async fn lock_stripes(
        &self,
        stripes: impl IntoIterator<Item = usize>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = stripes.into_iter().collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.stripes[stripe].lock().await);
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(slug: &str) -> MonitorKey {
        MonitorKey {
            project: 1,
            slug: slug.into(),
            environment: "production".into(),
        }
    }

    #[test]
    fn retention_prunes_on_the_first_write_then_every_nth() {
        let every_fourth = PruneSchedule::new(16);
        let due: Vec<bool> = (0..9).map(|_| every_fourth.due(&key("a"))).collect();
        assert_eq!(
            due,
            [true, false, false, false, true, false, false, false, true]
        );
        // Each monitor environment has its own count.
        assert!(every_fourth.due(&key("b")));
        // Small caps prune on every write; large ones at least every 16th.
        let small = PruneSchedule::new(3);
        assert!((0..5).all(|_| small.due(&key("a"))));
        assert_eq!(PruneSchedule::new(100).every, 16);
    }

    #[tokio::test]
    async fn overlapping_lock_sets_do_not_deadlock() {
        let locks = Arc::new(KeyLocks::new(4));
        let keys: Vec<_> = (0..16).map(|i| key(&format!("m{i}"))).collect();
        let mut tasks = Vec::new();
        for round in 0..32 {
            let locks = Arc::clone(&locks);
            let mut mine = keys.clone();
            mine.rotate_left(round % keys.len());
            mine.truncate(5);
            tasks.push(tokio::spawn(async move {
                let _guards = locks.lock_all(&mine).await;
                tokio::task::yield_now().await;
            }));
        }
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("no deadlock")
                .unwrap();
        }
    }

    /// A monitor with a missed deadline and a timed-out run in the same sweep: both recorded
    /// in one batch, the second seeing the first's effect; a deadline of a monitor that no
    /// longer exists is dropped without failing the sweep.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_sweep_batch_records_a_missed_check_in_and_a_timeout_of_the_same_monitor() {
        use crate::engine::{IntervalUnit, OpenRun, Schedule, deadlines_of};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let flusher = {
            let store = store.clone();
            tokio::spawn(async move { store.run_flusher(std::future::pending()).await })
        };
        let t0: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().unwrap();
        let mut monitor = MonitorEnv::new(
            key("job"),
            MonitorConfig::new(Schedule::interval(1, IntervalUnit::Minute).unwrap()),
        );
        let run = CheckIn {
            id: Uuid::from_u128(42),
            key: key("job"),
            status: CheckInStatus::InProgress,
            duration_ms: None,
            date_added: t0,
            date_updated: t0,
            expected_time: None,
            timeout_at: Some(t0 + chrono::TimeDelta::minutes(30)),
            log: None,
        };
        monitor.last_checkin = Some(t0);
        monitor.next_checkin = Some(t0 + chrono::TimeDelta::minutes(1));
        monitor.next_checkin_latest = Some(t0 + chrono::TimeDelta::minutes(2));
        monitor
            .open_runs
            .push(OpenRun::of(&run, t0 + chrono::TimeDelta::minutes(30)));
        let writes = WriteSet {
            monitors: vec![monitor.clone()],
            checkins: vec![run.clone()],
            ..WriteSet::default()
        };
        store.commit(&writes, t0).unwrap();
        let deadlines = Arc::new(Deadlines::load(&store).unwrap());
        let processor = Processor::new(
            store.clone(),
            Arc::clone(&deadlines),
            Retention::default(),
            Arc::new(Planner::default_rule()),
        );
        let mut due = deadlines_of(&monitor);
        assert_eq!(due.len(), 2, "a missed and a timeout deadline");
        let gone = MonitorEnv {
            key: key("deleted"),
            ..monitor.clone()
        };
        due.extend(deadlines_of(&gone));

        let now = t0 + chrono::TimeDelta::minutes(31);
        let report = processor.sweep(due, now).await.unwrap();
        assert_eq!((report.missed, report.timeouts), (1, 1));
        let stored = store.monitor(&key("job")).unwrap().unwrap();
        assert!(stored.open_runs.is_empty(), "the run timed out");
        assert!(stored.next_checkin_latest.unwrap() > now);
        let statuses: Vec<CheckInStatus> = store
            .checkins(&key("job"), 10)
            .unwrap()
            .into_iter()
            .map(|c| c.status)
            .collect();
        assert!(statuses.contains(&CheckInStatus::Missed));
        assert_eq!(
            store.checkin(run.id).unwrap().unwrap().status,
            CheckInStatus::Timeout
        );
        // The index holds the monitor's new deadline and nothing of the deleted one.
        assert_eq!(deadlines.len(), 1);
        assert_eq!(deadlines.next_deadline(), stored.next_checkin_latest);
        flusher.abort();
    }

    #[test]
    fn the_same_key_maps_to_the_same_stripe() {
        let locks = KeyLocks::new(STRIPES);
        assert_eq!(locks.stripe(&key("a")), locks.stripe(&key("a")));
    }
}
