//! The prober: one tokio task per `[[probes]]` entry sends `GET url` every `interval` under its
//! own `timeout`, hands what it saw to the pure `engine::probes`, and commits the outcome
//! (state, result, and any incident with its alert's deliveries, planned by the
//! [`Planner`]) through the store in one transaction, so `probe.down` / `probe.up` leave
//! through the same outbox as monitor alerts.
//!
//! *Must never* let one probe delay another (a task each, a timeout around the whole check, no
//! lock held across I/O), decide up or down itself (that is the engine's), or put a probe's
//! URL into a log line, an error or the store: it may carry a token, so only its redacted form
//! ([`redact_url`]) leaves this module.
//!
//! HTTP choices, made so a check reports what a new visitor would get:
//! - **No redirects are followed.** A `301` to a login page that answers `200` must not read as
//!   up; a probe that should accept a redirect says `expected_status = 301`.
//! - **No connection reuse.** Every check opens a new connection, so a server that stopped
//!   accepting connections cannot hide behind a pooled one, and the latency includes the
//!   connect.
//! - **The body is read only for a body condition**, and then at most [`MAX_BODY`] bytes; the
//!   timeout covers reading it.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use crate::alert::NewDelivery;
use crate::alert::Planner;
use crate::config;
use crate::engine::Incident;
use crate::engine::alerting::redact_url;
use crate::engine::dependencies::{self, Node};
use crate::engine::oncall::AckRefusal;
use crate::engine::probes::{
    self, Check, Expectation, Observation, Outcome, ProbeNotice, ProbeResult, ProbeRules,
    ProbeState, ProbeStatus, ProbeTransition,
};
use crate::process_error::ProcessError;
use crate::store::{Store, StoreError};

/// Most bytes of a response body read for a body condition.
pub const MAX_BODY: usize = 64 * 1024;
/// How long a check's commit may wait for the fsync before the probe moves on.
const DURABLE_WAIT: Duration = Duration::from_secs(10);
/// A probe task is behind schedule when it has not finished a check for two intervals plus
/// its timeout plus this.
const STALE_GRACE: Duration = Duration::from_secs(10);
/// Wait before retrying to load a probe's state after a store error.
const LOAD_RETRY: Duration = Duration::from_secs(1);
/// Commands a probe's task holds before senders wait (people acknowledging; few at once).
const INBOX: usize = 16;
/// How long an acknowledgement waits for the probe's task beyond the probe's timeout (the
/// task takes commands between checks) and the durability wait.
const COMMAND_GRACE: Duration = Duration::from_secs(5);

/// The configured probes and what their tasks last saw; shared by the prober, the API,
/// `/metrics` and `/healthz`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Probes(Arc<[Entry]>);

/// One configured probe.
#[derive(Debug)]
struct Entry {
    spec: config::Probe,
    rules: ProbeRules,
    running: AtomicBool,
    live: Mutex<Live>,
    /// Commands to the probe's task. The task owns the probe's state and writes all of it at
    /// every check, so whoever else changes the state (an acknowledgement) asks the task to:
    /// a write from outside would be overwritten by the next check.
    commands: mpsc::Sender<Command>,
    /// The receiving end, taken by the task when it starts.
    inbox: Mutex<Option<mpsc::Receiver<Command>>>,
}

/// What [`Probes::snooze`] did.
#[derive(Debug)]
pub enum Snoozed {
    /// The probe's state, durable, with its new `snoozed_until`.
    Done(Box<ProbeState>),
    /// No probe of that name is configured.
    NoProbe,
    /// The probe's task is not running (the collector is starting or stopping).
    ProberAway,
}

/// What a probe's task is asked to do to its own state, between checks.
#[derive(Debug)]
enum Command {
    /// Acknowledge the open incident `id` as `by`; `reply` gets the incident as acknowledged
    /// once durable.
    Acknowledge {
        id: Uuid,
        by: String,
        reply: oneshot::Sender<Result<Incident, ProcessError>>,
    },
    /// Hold the probe's alerts until `until` (`None`: end the snooze); `reply` gets the
    /// state once durable.
    Snooze {
        until: Option<DateTime<Utc>>,
        reply: oneshot::Sender<Result<ProbeState, ProcessError>>,
    },
}

/// What a probe's task last published. Never locked across an await.
#[derive(Debug, Default)]
struct Live {
    status: ProbeStatus,
    last: Option<ProbeResult>,
    /// Checks since the process started, by [`Outcome::ALL`] index.
    checks: [u64; Outcome::ALL.len()],
    /// When the task started or last finished a check.
    active_at: Option<DateTime<Utc>>,
}

/// `prober` in `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct ProberHealth {
    /// Every probe task runs and keeps to its schedule.
    pub alive: bool,
    /// Configured probes.
    pub probes: usize,
    /// Probe tasks running.
    pub running: usize,
    /// Probes whose task is behind schedule.
    pub stale: Vec<String>,
}

impl Probes {
    /// The probes of the config (none is fine).
    pub fn new(specs: &[config::Probe]) -> Probes {
        Probes(
            specs
                .iter()
                .map(|spec| {
                    let (commands, inbox) = mpsc::channel(INBOX);
                    Entry {
                        rules: rules(spec),
                        spec: spec.clone(),
                        running: AtomicBool::new(false),
                        live: Mutex::new(Live::default()),
                        commands,
                        inbox: Mutex::new(Some(inbox)),
                    }
                })
                .collect(),
        )
    }

    /// Number of configured probes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each probe's configuration and rules (whose `url` is the redacted one), in config order.
    pub fn configured(&self) -> impl Iterator<Item = (&config::Probe, &ProbeRules)> {
        self.0.iter().map(|entry| (&entry.spec, &entry.rules))
    }

    /// Runs every probe until `shutdown` resolves, planning alerts with `planner`. First
    /// resolves the incidents of probes that left the config and trims result slots beyond
    /// `keep` (`retention.probe_results`).
    pub async fn run(
        self,
        store: Store,
        planner: Arc<Planner>,
        keep: usize,
        shutdown: impl Future<Output = ()>,
    ) {
        if let Err(error) = self.retire_unconfigured(&store, &planner).await {
            tracing::error!(%error, "cannot clean up probes that left the config");
        }
        for entry in self.0.iter() {
            if let Err(error) = store.trim_probe_results(&entry.spec.name, keep) {
                tracing::error!(probe = %entry.spec.name, %error, "cannot trim probe results");
            }
        }
        let client = match http_client() {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build the probe HTTP client; probes do not run");
                return;
            }
        };
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for index in 0..self.0.len() {
            let task = ProbeTask {
                probes: self.clone(),
                index,
                store: store.clone(),
                planner: Arc::clone(&planner),
                client: client.clone(),
                keep,
            };
            tasks.spawn(task.run(stopped.clone()));
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(joined) = tasks.join_next() => {
                    // Only a bug ends a probe task early; /healthz then reports the prober
                    // as not alive rather than restarting into the same bug.
                    if let Err(error) = joined {
                        tracing::error!(%error, "a probe task failed");
                    }
                }
            }
        }
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
    }

    /// Acknowledges the open incident `id` of the probe `name` as `by`: the probe's task
    /// records it in its state (so its next check keeps it), with `probe.acknowledged` in the
    /// same write. Returns the incident as acknowledged, once durable.
    pub async fn acknowledge(
        &self,
        name: &str,
        id: Uuid,
        by: &str,
    ) -> Result<Incident, ProcessError> {
        let Some(entry) = self.0.iter().find(|entry| entry.spec.name == name) else {
            // A probe that left the config has its incident resolved at the next start.
            return Err(AckRefusal::NotOpen(id).into());
        };
        if !entry.running.load(Ordering::Relaxed) {
            return Err(AckRefusal::ProberAway(id).into());
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::Acknowledge {
            id,
            by: by.to_owned(),
            reply,
        };
        ask(entry, command, answer)
            .await
            .unwrap_or(Err(AckRefusal::ProberAway(id).into()))
    }

    /// Snoozes the probe `name` until `until` (`None` ends the snooze), through its task.
    pub async fn snooze(
        &self,
        name: &str,
        until: Option<DateTime<Utc>>,
    ) -> Result<Snoozed, ProcessError> {
        let Some(entry) = self.0.iter().find(|entry| entry.spec.name == name) else {
            return Ok(Snoozed::NoProbe);
        };
        let (reply, answer) = oneshot::channel();
        let command = Command::Snooze { until, reply };
        match ask(entry, command, answer).await {
            Some(result) => result.map(|state| Snoozed::Done(Box::new(state))),
            None => Ok(Snoozed::ProberAway),
        }
    }

    /// Whether every probe task runs and keeps to its schedule.
    pub fn health(&self, now: DateTime<Utc>) -> ProberHealth {
        let mut running = 0;
        let mut stale = Vec::new();
        for entry in self.0.iter() {
            if entry.running.load(Ordering::Relaxed) {
                running += 1;
            }
            let spec = &entry.spec;
            let allowed = 2 * spec.interval + spec.timeout + STALE_GRACE;
            let behind = entry
                .live
                .lock()
                .active_at
                .is_some_and(|at| (now - at).to_std().is_ok_and(|quiet| quiet > allowed));
            if behind {
                stale.push(spec.name.clone());
            }
        }
        ProberHealth {
            alive: running == self.0.len() && stale.is_empty(),
            probes: self.0.len(),
            running,
            stale,
        }
    }

    /// Appends the probe metrics in the Prometheus text format.
    pub fn write_metrics(&self, out: &mut String) {
        if self.0.is_empty() {
            return;
        }
        let snapshot: Vec<_> = self
            .0
            .iter()
            .map(|entry| {
                let live = entry.live.lock();
                (
                    label(&entry.spec.name),
                    live.status,
                    live.last.as_ref().map(|r| r.latency_ms / 1000.0),
                    live.checks,
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "# HELP watchpost_probe_up Whether the probe is up (1) or down (0); absent while \
             pending.\n# TYPE watchpost_probe_up gauge"
        );
        for (name, status, _, _) in &snapshot {
            let up = match status {
                ProbeStatus::Up => 1,
                ProbeStatus::Down => 0,
                ProbeStatus::Pending => continue,
            };
            let _ = writeln!(out, "watchpost_probe_up{{probe=\"{name}\"}} {up}");
        }
        let _ = writeln!(
            out,
            "# HELP watchpost_probe_latency_seconds How long the probe's last check took.\n\
             # TYPE watchpost_probe_latency_seconds gauge"
        );
        for (name, _, latency, _) in &snapshot {
            if let Some(seconds) = latency {
                let _ = writeln!(
                    out,
                    "watchpost_probe_latency_seconds{{probe=\"{name}\"}} {seconds}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP watchpost_probe_checks_total Probe checks since the collector started, by \
             result.\n# TYPE watchpost_probe_checks_total counter"
        );
        for (name, _, _, checks) in &snapshot {
            for (outcome, n) in Outcome::ALL.iter().zip(checks) {
                let _ = writeln!(
                    out,
                    "watchpost_probe_checks_total{{probe=\"{name}\",result=\"{outcome}\"}} {n}"
                );
            }
        }
    }

    /// Resolves (silently) the open incidents of stored probes that are no longer configured,
    /// and forgets their state and results.
    async fn retire_unconfigured(
        &self,
        store: &Store,
        planner: &Planner,
    ) -> Result<(), StoreError> {
        let mut last = None;
        for state in store.probe_states()? {
            if self.0.iter().any(|entry| entry.spec.name == state.name) {
                continue;
            }
            let now = Utc::now();
            // The URL is not kept once a probe leaves the config; the notice is not announced.
            let effect = probes::retire(&state, "", now);
            let deliveries: Vec<_> = effect.iter().flat_map(|e| planner.probe(e, now)).collect();
            last = Some(store.retire_probe(&state.name, effect.as_ref(), &deliveries, now)?);
            tracing::info!(
                probe = %state.name,
                resolved_incident = effect.is_some(),
                "probe is no longer configured; its state and results were removed"
            );
        }
        if let Some(seq) = last {
            store.wait_durable(seq).await?;
        }
        Ok(())
    }
}

/// The engine's view of a configured probe.
fn rules(spec: &config::Probe) -> ProbeRules {
    ProbeRules {
        url: redact_url(spec.url.expose()),
        failure_threshold: spec.failure_threshold,
        success_threshold: spec.success_threshold,
        expect: Expectation {
            status: spec.expected_status,
            body_contains: spec.expected_body_contains.clone(),
            json: spec.expected_json.clone(),
        },
    }
}

/// One probe's loop.
struct ProbeTask {
    probes: Probes,
    index: usize,
    store: Store,
    planner: Arc<Planner>,
    client: reqwest::Client,
    keep: usize,
}

impl ProbeTask {
    fn entry(&self) -> &Entry {
        &self.probes.0[self.index]
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let entry = self.entry();
        entry.running.store(true, Ordering::Relaxed);
        let _running = NotRunningOnDrop(&entry.running);
        let name = entry.spec.name.as_str();
        entry.live.lock().active_at = Some(Utc::now());
        let Ok(url) = reqwest::Url::parse(entry.spec.url.expose()) else {
            // The config validated it; never echo it.
            tracing::error!(probe = %name, "the probe URL does not parse; the probe does not run");
            return;
        };
        let mut inbox = entry.inbox.lock().take();
        let Some(mut state) = self.load(&mut stop).await else {
            return;
        };
        self.publish(&state, None);

        let mut ticks = tokio::time::interval(entry.spec.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break,
                Some(command) = next_command(&mut inbox) => {
                    self.obey(&mut state, command).await;
                    continue;
                }
                _ = ticks.tick() => {}
            }
            let started = Utc::now();
            let clock = Instant::now();
            let observation = tokio::select! {
                biased;
                () = stopped(&mut stop) => break,
                observation = observe(&self.client, &url, &entry.rules.expect, entry.spec.timeout) => observation,
            };
            let check = Check {
                id: Uuid::new_v4(),
                started,
                latency: clock.elapsed(),
                observation,
            };
            let now = Utc::now();
            let mut transition = probes::record_check(&state, &entry.rules, &check, now);
            let follow_ups = if self.planner.probe_quiet(&transition.state, now) {
                probes::quiet(&mut transition);
                Vec::new()
            } else {
                self.follow_dependencies(&mut transition, now)
            };
            let deliveries: Vec<_> = transition
                .effects
                .iter()
                .flat_map(|effect| self.planner.probe(effect, now))
                .chain(follow_ups)
                .collect();
            match self
                .store
                .commit_probe(&transition, &deliveries, self.keep, now)
            {
                Ok(seq) => {
                    for effect in &transition.effects {
                        let notice = &effect.notice;
                        let what = notice.error.as_deref().unwrap_or("as expected");
                        if notice.down {
                            tracing::warn!(probe = %name, problem = %what, "probe is down");
                        } else {
                            tracing::info!(probe = %name, "probe is up again");
                        }
                    }
                    state = transition.state;
                    self.publish(&state, Some(transition.result.outcome));
                    match tokio::time::timeout(DURABLE_WAIT, self.store.wait_durable(seq)).await {
                        Ok(Ok(())) if !deliveries.is_empty() => self.planner.wake(),
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            tracing::error!(probe = %name, %error, "probe check not made durable");
                        }
                        Err(_) => tracing::warn!(
                            probe = %name,
                            "probe check not confirmed durable in time; moving on"
                        ),
                    }
                }
                Err(error) => {
                    // The state stays as it was: the next check is judged against the last
                    // stored state, never against one the store did not take.
                    tracing::error!(probe = %name, %error, "cannot record a probe check; dropped");
                    let mut live = entry.live.lock();
                    live.checks[outcome_index(transition.result.outcome)] += 1;
                    live.active_at = Some(now);
                }
            }
        }
    }

    /// What `depends_on` changes about a check's transition (`engine::dependencies`): while
    /// something this probe depends on is failing, a down alert it raises is held, and one
    /// held is released (once) when nothing is failing any more and it is still down; while
    /// it is down with its alert out, its dependents failing with their alerts held are named
    /// in one follow-up once they settle. Returns the deliveries of released and follow-up
    /// alerts, committed with the transition. A store error reading the states is logged and
    /// changes nothing (the next check looks again).
    fn follow_dependencies(
        &self,
        transition: &mut ProbeTransition,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        let entry = self.entry();
        let dependencies = self.planner.dependencies();
        let node = Node::Probe(entry.spec.name.clone());
        let mut deliveries = Vec::new();
        if dependencies.has_dependencies(&node) {
            match dependencies.hold_until(&self.store, &node, now) {
                Ok(Some(_)) => probes::hold(transition),
                Ok(None) => {
                    if let Some(notice) =
                        probes::release(&mut transition.state, &entry.rules, false)
                    {
                        deliveries.extend(self.planner.probe_released(&notice, now));
                    }
                }
                Err(error) => {
                    tracing::warn!(probe = %node.name(), %error, "cannot read the probe's dependencies");
                }
            }
        } else if let Some(notice) = probes::release(&mut transition.state, &entry.rules, false)
            && let Some(incident) = &transition.state.open_incident
        {
            // Held while it was snoozed, still down now that the snooze is over: sent once.
            deliveries.extend(self.planner.probe_unsnoozed(&notice, incident, now));
        }
        let opening = !transition.effects.is_empty();
        let state = &mut transition.state;
        let Some(incident) = state.open_incident.as_ref().filter(|i| i.notified) else {
            return deliveries;
        };
        if opening || !dependencies.has_dependents(&node) {
            return deliveries;
        }
        let failing = match dependencies.held_dependents(&self.store, &node, incident.opened_at) {
            Ok(failing) => failing,
            Err(error) => {
                tracing::warn!(probe = %node.name(), %error, "cannot read the probe's dependents");
                return deliveries;
            }
        };
        if let Some(fold) = dependencies::fold(&failing, &state.folded, dependencies.recheck(), now)
        {
            let last = &transition.result;
            let notice = ProbeNotice {
                down: true,
                name: state.name.clone(),
                url: entry.rules.url.clone(),
                status_code: last.status_code,
                error: last.error.clone(),
                since: Some(incident.starting_timestamp),
            };
            deliveries.extend(self.planner.probe_follow_up(&notice, &fold, now));
            state.folded = fold.failing;
        }
        deliveries
    }

    /// Carries out a command on the task's own state and answers it.
    async fn obey(&self, state: &mut ProbeState, command: Command) {
        let (id, by, reply) = match command {
            Command::Acknowledge { id, by, reply } => (id, by, reply),
            Command::Snooze { until, reply } => {
                let _ = reply.send(self.snooze(state, until).await);
                return;
            }
        };
        let result = self.acknowledge(state, id, &by).await;
        if let Ok(incident) = &result {
            tracing::info!(
                kind = "probe.acknowledged",
                probe = %state.name,
                incident = %incident.id.simple(),
                by = %by,
                "incident acknowledged"
            );
        }
        let _ = reply.send(result);
    }

    /// Acknowledges the open incident `id` (decided by `engine::probes::acknowledge`) and
    /// writes the state with `probe.acknowledged` through the probe's write path. `state`
    /// changes only once the store took it.
    async fn acknowledge(
        &self,
        state: &mut ProbeState,
        id: Uuid,
        by: &str,
    ) -> Result<Incident, ProcessError> {
        let entry = self.entry();
        let now = Utc::now();
        let (next, incident) = probes::acknowledge(state, id, by, now)?;
        let last = next.last_result.as_ref();
        let down = ProbeNotice {
            down: true,
            name: next.name.clone(),
            url: entry.rules.url.clone(),
            status_code: last.and_then(|r| r.status_code),
            error: last.and_then(|r| r.error.clone()),
            since: Some(incident.starting_timestamp),
        };
        // A down alert held for a dependency was never sent: its acknowledgement is not news.
        let deliveries = if incident.notified {
            self.planner.probe_acknowledged(&incident, &down, now)
        } else {
            Vec::new()
        };
        let seq = self.store.commit_probe_handled(&next, &deliveries, now)?;
        *state = next;
        self.publish(state, None);
        match tokio::time::timeout(DURABLE_WAIT, self.store.wait_durable(seq)).await {
            Ok(result) => result?,
            Err(_) => return Err(ProcessError::NotDurable(DURABLE_WAIT)),
        }
        if !deliveries.is_empty() {
            self.planner.wake();
        }
        Ok(incident)
    }

    /// Writes the probe's snooze (`engine::probes::snooze`) through its write path. A held
    /// alert is released at the next check after the snooze ends.
    async fn snooze(
        &self,
        state: &mut ProbeState,
        until: Option<DateTime<Utc>>,
    ) -> Result<ProbeState, ProcessError> {
        let now = Utc::now();
        let next = probes::snooze(state, until);
        let seq = self.store.commit_probe_handled(&next, &[], now)?;
        *state = next;
        tracing::info!(probe = %state.name, until = ?until, "probe snooze set");
        match tokio::time::timeout(DURABLE_WAIT, self.store.wait_durable(seq)).await {
            Ok(result) => result?,
            Err(_) => return Err(ProcessError::NotDurable(DURABLE_WAIT)),
        }
        Ok(state.clone())
    }

    /// The stored state (or a new one), retrying on store errors until stopped.
    async fn load(&self, stop: &mut watch::Receiver<bool>) -> Option<ProbeState> {
        let name = &self.entry().spec.name;
        loop {
            match self.store.probe_state(name) {
                Ok(state) => return Some(state.unwrap_or_else(|| ProbeState::new(name))),
                Err(error) => {
                    tracing::error!(probe = %name, %error, "cannot load probe state; retrying");
                    tokio::select! {
                        () = stopped(stop) => return None,
                        () = tokio::time::sleep(LOAD_RETRY) => {}
                    }
                }
            }
        }
    }

    fn publish(&self, state: &ProbeState, counted: Option<Outcome>) {
        let mut live = self.entry().live.lock();
        live.status = state.status;
        live.last.clone_from(&state.last_result);
        live.active_at = Some(Utc::now());
        if let Some(outcome) = counted {
            live.checks[outcome_index(outcome)] += 1;
        }
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    Outcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .expect("ALL lists every outcome")
}

/// Clears a probe's running flag however its task ends.
struct NotRunningOnDrop<'a>(&'a AtomicBool);

impl Drop for NotRunningOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Sends `command` to `entry`'s task and waits for its answer on `answer`; `None` when the
/// task is not running or did not answer in time.
async fn ask<T>(
    entry: &Entry,
    command: Command,
    answer: oneshot::Receiver<Result<T, ProcessError>>,
) -> Option<Result<T, ProcessError>> {
    if !entry.running.load(Ordering::Relaxed) {
        return None;
    }
    let patience = entry.spec.timeout + DURABLE_WAIT + COMMAND_GRACE;
    let asked = async {
        entry.commands.send(command).await.ok()?;
        answer.await.ok()
    };
    match tokio::time::timeout(patience, asked).await {
        Ok(answered) => answered,
        Err(_) => Some(Err(ProcessError::NotDurable(patience))),
    }
}

/// The next command from the probe's inbox; never resolves without one (no inbox, or every
/// sender gone).
async fn next_command(inbox: &mut Option<mpsc::Receiver<Command>>) -> Option<Command> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves once the prober is told to stop (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The client every probe shares: no redirects, no pooled connections, no client-level
/// timeout (each check has its own).
fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(concat!("watchpost-probe/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One check: `GET url`, and the body when `expect` needs it, all within `timeout`.
async fn observe(
    client: &reqwest::Client,
    url: &reqwest::Url,
    expect: &Expectation,
    timeout: Duration,
) -> Observation {
    let request = async {
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| failure(&e))?;
        let status = response.status().as_u16();
        let body = if expect.reads_body() {
            let mut body = Vec::new();
            while body.len() < MAX_BODY {
                match response.chunk().await.map_err(|e| failure(&e))? {
                    Some(chunk) => {
                        body.extend_from_slice(&chunk[..chunk.len().min(MAX_BODY - body.len())])
                    }
                    None => break,
                }
            }
            Some(String::from_utf8_lossy(&body).into_owned())
        } else {
            None
        };
        Ok::<_, Observation>(Observation::Response { status, body })
    };
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(observation) | Err(observation)) => observation,
        Err(_) => Observation::Timeout { after: timeout },
    }
}

/// A failed request as an observation, with a reason that never contains the URL: reqwest's own
/// message names the URL, so only its causes are used.
fn failure(error: &reqwest::Error) -> Observation {
    let mut innermost: Option<&(dyn std::error::Error + 'static)> = None;
    let mut io_kind = None;
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            io_kind = Some(io.kind());
        }
        innermost = Some(current);
        cause = current.source();
    }
    let reason = match io_kind {
        Some(io::ErrorKind::ConnectionRefused) => "connection refused".to_owned(),
        Some(io::ErrorKind::ConnectionReset) => "connection reset by the server".to_owned(),
        Some(io::ErrorKind::TimedOut) => "connection timed out".to_owned(),
        _ => match innermost {
            Some(cause) => cause.to_string(),
            None if error.is_connect() => "could not connect".to_owned(),
            None => "the request failed".to_owned(),
        },
    };
    if error.is_connect() {
        Observation::ConnectFailed(reason)
    } else {
        Observation::RequestFailed(reason)
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a "b" \c"#), r#"a \"b\" \\c"#);
    }

    #[tokio::test]
    async fn a_refused_connection_is_named_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url =
            reqwest::Url::parse(&format!("http://user:s3cret@{addr}/health?token=s3cret")).unwrap();
        let observation = observe(
            &http_client().unwrap(),
            &url,
            &Expectation::status(200),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            observation,
            Observation::ConnectFailed("connection refused".to_owned())
        );
    }

    #[test]
    fn staleness_allows_two_intervals_and_the_timeout() {
        let spec = config::Probe {
            name: "p".to_owned(),
            url: config::Secret::new("http://127.0.0.1:1/"),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
            failure_threshold: 2,
            success_threshold: 1,
            expected_status: 200,
            expected_body_contains: None,
            expected_json: None,
            depends_on: Vec::new(),
        };
        let probes = Probes::new(&[spec]);
        let start = Utc::now();
        probes.0[0].running.store(true, Ordering::Relaxed);
        probes.0[0].live.lock().active_at = Some(start);
        assert!(probes.health(start + TimeDelta::seconds(71)).alive);
        let late = probes.health(start + TimeDelta::seconds(73));
        assert!(!late.alive);
        assert_eq!(late.stale, ["p"]);
    }
}
