//! The engine's domain types: monitor environments, check-ins, incidents, effects.
//! Plain data the store persists as JSON; the rules that change them live in the sibling
//! modules. Nothing here reads a clock or does I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::config::{ConfigPatch, MonitorConfig};
use super::outage::Outage;
use super::validate::{self, ConfigError};

/// Most runs a monitor environment may have `in_progress` at once. A further `in_progress` is
/// rejected with [`Rejection::TooManyOpenRuns`]; runs leave the set when they finish or time
/// out.
pub const MAX_OPEN_RUNS: usize = 64;

/// Identity of a monitor environment: the unit that has state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MonitorKey {
    /// Project id.
    pub project: u64,
    /// Normalized slug (see [`validate::normalize_slug`]).
    pub slug: String,
    /// Validated environment name (see [`validate::normalize_environment`]).
    pub environment: String,
}

/// Health of a monitor environment, as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorStatus {
    /// Created but never checked in.
    Active,
    /// Checked in and no incident is open.
    Ok,
    /// An incident is open.
    Error,
    /// Disabled: check-ins are rejected and no sweeps run.
    Disabled,
}

/// A run that sent `in_progress` and has not finished or timed out yet: everything its
/// `in_progress` check-in says ([`OpenRun::checkin`]), so the store keeps that check-in in the
/// monitor record while the run is open instead of writing a record of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRun {
    /// The run's check-in id.
    pub id: Uuid,
    /// When its first `in_progress` arrived (the check-in's `date_added`).
    pub started: DateTime<Utc>,
    /// When it times out unless a heartbeat or a terminal check-in arrives first.
    pub timeout_at: DateTime<Utc>,
    /// When its last `in_progress` (the start or a heartbeat) arrived.
    pub date_updated: DateTime<Utc>,
    /// The check-in's `expected_time`.
    #[serde(default)]
    pub expected_time: Option<DateTime<Utc>>,
    /// The check-in's log (a ping's body).
    #[serde(default)]
    pub log: Option<String>,
}

impl OpenRun {
    /// The run of an `in_progress` check-in that will time out at `timeout_at`.
    pub fn of(checkin: &CheckIn, timeout_at: DateTime<Utc>) -> OpenRun {
        OpenRun {
            id: checkin.id,
            started: checkin.date_added,
            timeout_at,
            date_updated: checkin.date_updated,
            expected_time: checkin.expected_time,
            log: checkin.log.clone(),
        }
    }

    /// The run's `in_progress` check-in, as of its last heartbeat.
    pub fn checkin(&self, key: &MonitorKey) -> CheckIn {
        CheckIn {
            id: self.id,
            key: key.clone(),
            status: CheckInStatus::InProgress,
            duration_ms: None,
            date_added: self.started,
            date_updated: self.date_updated,
            expected_time: self.expected_time,
            timeout_at: Some(self.timeout_at),
            log: self.log.clone(),
        }
    }
}

/// Failed check-ins by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCounts {
    /// `missed` check-ins.
    pub missed: u32,
    /// `timeout` check-ins.
    pub timeout: u32,
    /// `error` check-ins.
    pub error: u32,
}

/// The current run of equal outcomes among terminal check-ins, which is all the threshold
/// rules need: "the last N terminal check-ins are failures" is `failures.total() >= N`, and
/// "M consecutive ok" is `oks >= M`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    /// Failures since the last ok, by kind.
    pub failures: FailureCounts,
    /// The first failed check-in of the current run of failures: id and `date_added`.
    pub first_failure: Option<(Uuid, DateTime<Utc>)>,
    /// Ok check-ins since the last failure.
    pub oks: u32,
}

/// State of one monitor environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorEnv {
    /// Which monitor environment this is.
    pub key: MonitorKey,
    /// Its configuration.
    pub config: MonitorConfig,
    /// Health. Kept consistent with the other fields by the engine: `Disabled` iff `disabled`,
    /// else `Error` iff an incident is open, else `Ok` once anything was checked in, else
    /// `Active`.
    pub status: MonitorStatus,
    /// Muted: state and incidents are tracked, effects carry `notify: false`.
    pub muted: bool,
    /// Snoozed until then: like a maintenance window, incidents that open before it are held
    /// and alerted at its end if still open (see [`super::maintenance`]).
    #[serde(default)]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// Disabled: check-ins are rejected and no deadlines are kept.
    pub disabled: bool,
    /// `date_added` of the most recent user check-in (missed check-ins do not move it).
    pub last_checkin: Option<DateTime<Utc>>,
    /// `date_added` of the most recent `ok` check-in.
    pub last_ok: Option<DateTime<Utc>>,
    /// When the next check-in is expected; `None` until the monitor is armed: by its first
    /// check-in (a monitor a check-in created is never missed before it has checked in once,
    /// as in Sentry), or by [`MonitorEnv::arm`] when a person declares it.
    pub next_checkin: Option<DateTime<Utc>>,
    /// `next_checkin + checkin_margin`: when the missed sweep fires.
    pub next_checkin_latest: Option<DateTime<Utc>>,
    /// The open incident, if any; at most one.
    pub open_incident: Option<Incident>,
    /// The current streak of terminal outcomes, for the thresholds.
    pub streak: Streak,
    /// Runs in progress, oldest first; at most [`MAX_OPEN_RUNS`].
    pub open_runs: Vec<OpenRun>,
    /// How many check-ins and incidents the engine has created for this monitor environment;
    /// feeds the deterministic derivation of their ids.
    pub seq: u64,
}

/// Status of a check-in. Serialized lowercase snake case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckInStatus {
    /// The run started (or sent a heartbeat).
    InProgress,
    /// The run finished successfully.
    Ok,
    /// The run failed.
    Error,
    /// No check-in arrived by `next_checkin_latest` (recorded by the missed sweep).
    Missed,
    /// The run stayed `in_progress` past `max_runtime` (recorded by the timeout sweep).
    Timeout,
    /// Anything else a client sent; never accepted by the engine.
    Unknown,
}

/// One check-in: a report about one run, or a synthetic `missed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckIn {
    /// Client-supplied `check_in_id`, or an id the engine derived.
    pub id: Uuid,
    /// The monitor environment it belongs to.
    pub key: MonitorKey,
    /// Current status.
    pub status: CheckInStatus,
    /// Run duration in milliseconds, when known.
    pub duration_ms: Option<u64>,
    /// When the run started: receive time, back-dated by `duration` for a closing-only
    /// check-in; the expected time for `missed`.
    pub date_added: DateTime<Utc>,
    /// When the check-in was last changed.
    pub date_updated: DateTime<Utc>,
    /// The monitor's `next_checkin` when this check-in was created.
    pub expected_time: Option<DateTime<Utc>>,
    /// When an `in_progress` check-in times out; `None` for any other status.
    pub timeout_at: Option<DateTime<Utc>>,
    /// Log text (e.g. a ping body), as given.
    pub log: Option<String>,
}

/// What an incident is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// A monitored job.
    Monitor,
    /// An uptime probe (opened by the probe logic, not by this engine).
    Probe,
}

/// Why an incident opened: the kind of the failure that crossed the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentReason {
    /// A check-in was missed.
    MissedCheckin,
    /// A run timed out.
    Timeout,
    /// A run reported an error.
    Error,
}

/// A period during which a monitor environment is failing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Deterministically derived id, unique per monitor environment and opening.
    pub id: Uuid,
    /// The monitor environment.
    pub key: MonitorKey,
    /// Always [`IncidentKind::Monitor`] from this engine.
    pub kind: IncidentKind,
    /// When the threshold was crossed.
    pub opened_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The kind of the failure that crossed the threshold.
    pub reason: IncidentReason,
    /// The first failed check-in of the run of failures that crossed the threshold.
    pub starting_checkin: Uuid,
    /// That check-in's `date_added`.
    pub starting_timestamp: DateTime<Utc>,
    /// The ok check-in that resolved it.
    pub resolving_checkin: Option<Uuid>,
    /// The failures that opened it, by kind.
    pub failures: FailureCounts,
    /// Whether its opening was announced (the monitor was not muted then). A resolution is
    /// announced only if the opening was.
    pub notified: bool,
    /// What people did about it and what is still due: acknowledged, repeats (see
    /// [`super::oncall`]). Absent in records written before it: nothing done, nothing due.
    #[serde(default)]
    pub handling: Handling,
}

/// What happened to an incident after its first alert: who acknowledged it, and when its alert
/// is repeated next. Kept on the incident (and so in the monitor record), because the repeat
/// is a deadline like any other and the deadline index is rebuilt from monitor records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handling {
    /// Who acknowledged it and when; `None` until someone does. Acknowledging stops repeats.
    #[serde(default)]
    pub acknowledged: Option<Acknowledgement>,
    /// When its alert is next sent again; `None` when no rule repeats it, once acknowledged,
    /// muted or resolved.
    #[serde(default)]
    pub next_repeat: Option<DateTime<Utc>>,
    /// How many times its alert was repeated so far.
    #[serde(default)]
    pub repeats: u32,
    /// It opened while its monitor was quiet (a maintenance window, a snooze): its alert is
    /// held until then, and sent once if it is still open (see [`super::maintenance`]).
    #[serde(default)]
    pub held_until: Option<DateTime<Utc>>,
}

impl Handling {
    /// When the incident needs the sweeper next: its held alert, else its next repeat unless
    /// it was acknowledged.
    pub fn follow_up(&self) -> Option<DateTime<Utc>> {
        let repeat = self.next_repeat.filter(|_| self.acknowledged.is_none());
        self.held_until.into_iter().chain(repeat).min()
    }
}

/// Someone said "I'm on it".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// Who: a name the person gave (the link's page, the CLI's `--by`), or how it came in.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Something the outside world should hear about. Effects come only out of the engine and
/// become alerts (`monitor.failed`, `monitor.recovered`) in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// An incident opened: `monitor.failed`.
    IncidentOpened {
        /// The incident as opened.
        incident: Incident,
        /// `false` when the monitor is muted: record, do not alert.
        notify: bool,
    },
    /// The open incident was resolved: `monitor.recovered`.
    IncidentResolved {
        /// The incident as resolved.
        incident: Incident,
        /// `false` when the monitor is muted or the opening was not announced.
        notify: bool,
    },
}

/// The outcome of an accepted input: new state, the check-in to upsert, effects to record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The monitor environment's new state (store it, and re-index its deadlines).
    pub monitor: MonitorEnv,
    /// The check-in to insert or replace (by `id`).
    pub checkin: CheckIn,
    /// Check-ins to store before `checkin`, oldest first: the `unknown` slots of an outage of
    /// the collector (see [`super::outage`]). Usually empty.
    #[serde(default)]
    pub earlier: Vec<CheckIn>,
    /// Effects, in order; write them to the outbox with the state change.
    pub effects: Vec<Effect>,
    /// `true` when the input was accepted but changed nothing (an `in_progress` for a run that
    /// already finished): the caller may skip the write.
    pub unchanged: bool,
    /// The collector's outage this transition's deadline fell in or near, if any: its alert
    /// says when the collector was not watching.
    #[serde(default)]
    pub outage: Option<Outage>,
}

/// A check-in as the engine receives it, after ingest has parsed and normalized the wire form.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckInInput {
    /// The monitor environment (slug and environment already normalized).
    pub key: MonitorKey,
    /// The client's `check_in_id`. `None` or nil means "the newest open run of this monitor
    /// environment, else a new check-in".
    pub id: Option<Uuid>,
    /// `in_progress`, `ok` or `error`; anything else is rejected.
    pub status: CheckInStatus,
    /// Run duration in seconds, as sent.
    pub duration: Option<f64>,
    /// Upsert: creates the monitor, or updates the fields it sets.
    pub config: Option<ConfigPatch>,
    /// Log text to keep with the check-in.
    pub log: Option<String>,
}

/// Why a check-in was not accepted. `Display` is a sentence for a person.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// No such monitor and no config to create it.
    #[error("monitor `{}` does not exist in project {} (environment `{}`); send monitor_config with the check-in to create it, or create it through the API", .0.slug, .0.project, .0.environment)]
    UnknownMonitor(MonitorKey),
    /// The monitor is disabled.
    #[error("monitor `{}` is disabled; check-ins are dropped until it is enabled again", .0.slug)]
    Disabled(MonitorKey),
    /// A status a client may not send.
    #[error("check-in status `{0}` cannot be sent; use in_progress, ok or error")]
    InvalidStatus(&'static str),
    /// A negative, non-finite or too long duration.
    #[error(
        "check-in duration {0} is invalid; give seconds between 0 and about 24.8 days (2147483.647)"
    )]
    InvalidDuration(f64),
    /// The check-in already has a terminal status.
    #[error(
        "check-in {id} already finished with status `{status}`; a run can be finished only once"
    )]
    AlreadyFinished {
        /// The check-in id.
        id: Uuid,
        /// Its status.
        status: &'static str,
    },
    /// The check-in id belongs to another monitor environment.
    #[error("check-in {id} belongs to monitor `{}` in environment `{}`, not to `{}` in `{}`", .existing.slug, .existing.environment, .sent.slug, .sent.environment)]
    WrongMonitor {
        /// The check-in id.
        id: Uuid,
        /// Where it belongs.
        existing: Box<MonitorKey>,
        /// Where it was sent.
        sent: Box<MonitorKey>,
    },
    /// Too many runs in progress at once.
    #[error("monitor `{}` already has {MAX_OPEN_RUNS} runs in progress; finish or time out some before starting another", .0.slug)]
    TooManyOpenRuns(MonitorKey),
    /// The upsert config is invalid.
    #[error("invalid monitor_config: {0}")]
    InvalidConfig(#[from] ConfigError),
}

impl MonitorKey {
    /// Builds a key from raw input: normalizes the slug and validates the environment
    /// (`None` or empty → `"production"`).
    pub fn new(
        project: u64,
        slug: &str,
        environment: Option<&str>,
    ) -> Result<MonitorKey, ConfigError> {
        Ok(MonitorKey {
            project,
            slug: validate::normalize_slug(slug)?,
            environment: validate::normalize_environment(environment)?,
        })
    }
}

impl CheckInStatus {
    /// The wire name: `in_progress`, `ok`, …
    pub fn as_str(self) -> &'static str {
        match self {
            CheckInStatus::InProgress => "in_progress",
            CheckInStatus::Ok => "ok",
            CheckInStatus::Error => "error",
            CheckInStatus::Missed => "missed",
            CheckInStatus::Timeout => "timeout",
            CheckInStatus::Unknown => "unknown",
        }
    }

    /// Whether the run is over: every status but `in_progress`.
    pub fn is_terminal(self) -> bool {
        self != CheckInStatus::InProgress
    }

    /// Whether it counts as a failure for the thresholds: `error`, `missed`, `timeout`.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            CheckInStatus::Error | CheckInStatus::Missed | CheckInStatus::Timeout
        )
    }
}

impl From<watchpost_protocol::CheckInStatus> for CheckInStatus {
    fn from(status: watchpost_protocol::CheckInStatus) -> Self {
        use watchpost_protocol::CheckInStatus as P;
        match status {
            P::InProgress => CheckInStatus::InProgress,
            P::Ok => CheckInStatus::Ok,
            P::Error => CheckInStatus::Error,
            P::Unknown => CheckInStatus::Unknown,
        }
    }
}

impl FailureCounts {
    /// All failures.
    pub fn total(&self) -> u32 {
        self.missed
            .saturating_add(self.timeout)
            .saturating_add(self.error)
    }
}

impl Incident {
    /// A one-line summary for alerts, as Sentry words it: `"3 missed check-ins detected"`,
    /// `"A timeout check-in was detected"`, or `"3 failed check-ins detected (2 missed,
    /// 1 error)"` for a mix.
    pub fn summary(&self) -> String {
        let FailureCounts {
            missed,
            timeout,
            error,
        } = self.failures;
        let kinds = [(missed, "missed"), (timeout, "timeout"), (error, "error")];
        let present: Vec<(u32, &str)> = kinds.into_iter().filter(|&(n, _)| n > 0).collect();
        match present.as_slice() {
            [] => "A failed check-in was detected".to_owned(),
            [(1, "error")] => "An error check-in was detected".to_owned(),
            [(1, kind)] => format!("A {kind} check-in was detected"),
            [(n, kind)] => format!("{n} {kind} check-ins detected"),
            mix => {
                let parts: Vec<String> =
                    mix.iter().map(|(n, kind)| format!("{n} {kind}")).collect();
                format!(
                    "{} failed check-ins detected ({})",
                    self.failures.total(),
                    parts.join(", ")
                )
            }
        }
    }
}

impl MonitorEnv {
    /// A new monitor environment that has never checked in (status `active`).
    pub fn new(key: MonitorKey, config: MonitorConfig) -> MonitorEnv {
        MonitorEnv {
            key,
            config,
            status: MonitorStatus::Active,
            muted: false,
            snoozed_until: None,
            disabled: false,
            last_checkin: None,
            last_ok: None,
            next_checkin: None,
            next_checkin_latest: None,
            open_incident: None,
            streak: Streak::default(),
            open_runs: Vec::new(),
            seq: 0,
        }
    }

    /// Replaces the configuration (API `PUT`/`PATCH`, or a check-in's upsert), like Sentry:
    /// a new margin moves `next_checkin_latest`, a new `max_runtime` moves the timeouts of open
    /// runs, and a new schedule or timezone re-plans `next_checkin` from `now` (if the monitor
    /// has checked in before). This is the one change that may move `next_checkin` earlier.
    pub fn apply_config(&mut self, config: MonitorConfig, now: DateTime<Utc>) {
        let old = std::mem::replace(&mut self.config, config);
        let replan = old.schedule != self.config.schedule || old.timezone != self.config.timezone;
        if replan && self.next_checkin.is_some() {
            self.replan_from(now);
        } else if let Some(next) = self.next_checkin {
            self.next_checkin_latest = Some(self.config.latest_for(next));
        }
        if old.max_runtime != self.config.max_runtime {
            let max_runtime = self.config.max_runtime;
            for run in &mut self.open_runs {
                run.timeout_at = timeout_after(run.started, max_runtime);
            }
        }
    }

    /// Disables or enables. Disabling keeps all state but stops sweeps; enabling forgets open
    /// runs (their stored check-ins stay `in_progress`) and, if the monitor has checked in
    /// before, re-plans `next_checkin` from `now` so the time spent disabled is not reported
    /// as missed.
    pub fn set_disabled(&mut self, disabled: bool, now: DateTime<Utc>) {
        if disabled == self.disabled {
            return;
        }
        self.disabled = disabled;
        if !disabled {
            self.open_runs.clear();
            if self.next_checkin.is_some() {
                self.replan_from(now);
            }
        }
        self.refresh_status();
    }

    /// Arms a monitor a person declared (`[[monitors]]` or the management API): the first
    /// expected time after `now` becomes `next_checkin`, so passing it plus the margin without
    /// a check-in is `missed` — "the job never started after the deploy" is what a declaration
    /// is for. A monitor created by a check-in's upsert is not armed this way and keeps
    /// Sentry's rule (never missed before its first check-in).
    ///
    /// Does nothing to a monitor that is disabled (enabling re-plans it) or already expects a
    /// check-in: declaring it again, or the collector applying `[[monitors]]` at every start,
    /// never moves a deadline that is already set, so a restart neither re-arms it from
    /// scratch nor misses a slot twice (a deadline that passed while the collector was down
    /// follows the grace rules of [`super::outage`]). Returns whether it armed.
    pub fn arm(&mut self, now: DateTime<Utc>) -> bool {
        if self.disabled || self.next_checkin.is_some() {
            return false;
        }
        self.replan_from(now);
        self.next_checkin.is_some()
    }

    /// Whether a check-in is expected: the monitor checked in once or was armed. Until then
    /// no missed deadline is kept.
    pub fn is_armed(&self) -> bool {
        self.next_checkin.is_some()
    }

    /// Mutes or unmutes: state and incidents keep being tracked; effects carry
    /// `notify: false` while muted.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Sets `next_checkin` to the first expected time after `now` (may move it earlier).
    fn replan_from(&mut self, now: DateTime<Utc>) {
        self.next_checkin = self.config.next_checkin_after(now);
        self.next_checkin_latest = self.next_checkin.map(|next| self.config.latest_for(next));
    }

    /// Re-derives `status` from the other fields.
    pub(super) fn refresh_status(&mut self) {
        self.status = if self.disabled {
            MonitorStatus::Disabled
        } else if self.open_incident.is_some() {
            MonitorStatus::Error
        } else if self.last_checkin.is_some() {
            MonitorStatus::Ok
        } else {
            MonitorStatus::Active
        };
    }

    /// The open run with this id.
    pub fn open_run(&self, id: Uuid) -> Option<&OpenRun> {
        self.open_runs.iter().find(|run| run.id == id)
    }

    /// The newest open run: the one a check-in without an id attaches to.
    pub fn newest_open_run(&self) -> Option<&OpenRun> {
        self.open_runs
            .iter()
            .max_by_key(|run| (run.started, run.id))
    }
}

/// `start + max_runtime`, saturating far in the future.
pub(super) fn timeout_after(
    start: DateTime<Utc>,
    max_runtime: std::time::Duration,
) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(max_runtime)
        .ok()
        .and_then(|d| start.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
