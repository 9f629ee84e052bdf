//! Alert policy: what a person is told, and whom. Builds the [`Alert`] (the JSON of docs/alerts.md, "Webhook JSON", a contract) from engine and issue effects, routes it through `[[rules]]` to channels,
//! decides which repeats to hold back ([`Deduper`]) and collapses a backlog into a [`Digest`].
//!
//! *Architecture invariant:* pure like the rest of the engine: no I/O, no clock (time is the
//! `now` parameter), no randomness. Channels, pacing and retries live in the collector's `alert` module.
//!
//! Noise control never loses the current state: a repeat of the same `(rule, kind, subject)`
//! within the dedup window is suppressed only when the last alert the person got about that
//! subject (from that rule) already says the same thing; a *change* inside the window (a
//! monitor that failed, recovered and failed again) is deferred to the end of the window and
//! then sent, unless something newer about the subject superseded it by then. Suppressed and
//! superseded alerts are counted into the next message about the same key.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use watchpost_protocol::Level;

use super::issues::{Issue, IssueEffect};
use super::model::{
    Acknowledgement, Effect, Incident, IncidentReason, MonitorEnv, MonitorKey, MonitorStatus,
};
use super::outage::Outage;
pub use super::outage::when;
use super::probes::ProbeNotice;
use super::text::{human_delta, human_duration, percent_encode};

/// The name of the rule used when no `[[rules]]` are configured.
pub const DEFAULT_RULE: &str = "default";

/// The channel the default rule sends to: stdout.
pub const DEFAULT_CHANNEL: &str = "log";

/// The dedup window when `[alerts] dedup_window` is not set.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// Most subjects a digest lists one by one; the rest are counted.
pub const DIGEST_MAX_SUBJECTS: usize = 200;

/// Most kinds a digest line remembers for one subject (`failed → recovered → failed …`).
const DIGEST_MAX_HISTORY: usize = 8;

/// What happened. Serialized as the dotted name, e.g. `monitor.failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertKind {
    /// An incident opened on a monitor environment.
    #[serde(rename = "monitor.failed")]
    MonitorFailed,
    /// The monitor environment's incident resolved.
    #[serde(rename = "monitor.recovered")]
    MonitorRecovered,
    /// A new issue.
    #[serde(rename = "issue.first_seen")]
    IssueFirstSeen,
    /// A resolved issue saw a new event.
    #[serde(rename = "issue.regressed")]
    IssueRegressed,
    /// An issue's events exceeded a rule's threshold within its window.
    #[serde(rename = "issue.spike")]
    IssueSpike,
    /// An uptime probe went down.
    #[serde(rename = "probe.down")]
    ProbeDown,
    /// An uptime probe is up again.
    #[serde(rename = "probe.up")]
    ProbeUp,
    /// Someone acknowledged a monitor environment's open incident: its repeats stop.
    #[serde(rename = "monitor.acknowledged")]
    MonitorAcknowledged,
    /// Someone acknowledged a probe's open incident.
    #[serde(rename = "probe.acknowledged")]
    ProbeAcknowledged,
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational: something recovered.
    Info,
    /// Needs a look.
    Warning,
    /// Something is broken now.
    Critical,
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A monitored job.
    Monitor,
    /// An error issue.
    Issue,
    /// An uptime probe.
    Probe,
}

/// An alert: exactly the JSON of docs/alerts.md, "Webhook JSON" The `webhook` channel POSTs this.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// One line: what broke, where.
    pub title: String,
    /// The summary: what, since when, what else to know.
    pub message: String,
    /// `monitor`, `issue` or `probe`; names the subject field present.
    pub source: Source,
    /// Project id; `null` for probes, which belong to no project.
    pub project: Option<u64>,
    /// Environment; `null` for probes.
    pub environment: Option<String>,
    /// When the alert was raised (RFC 3339, UTC).
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// The dashboard page of the subject.
    pub url: String,
    /// `"monitor": {...}`, `"issue": {...}` or `"probe": {...}`.
    #[serde(flatten)]
    pub subject: Subject,
    /// The incident a monitor or probe alert is about: its id, whether it was acknowledged,
    /// which repeat this is. Absent for issues (and for probe alerts not tied to an incident).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<AlertIncident>,
    /// The one-click acknowledge link (signed, expiring; it opens a confirmation page), on
    /// alerts about an incident still open and not acknowledged. Added by the collector,
    /// which holds the signing key; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge_url: Option<String>,
    /// The dependents failing with their own alerts held while this alert's subject is failing
    /// (`depends_on`, see [`super::dependencies`]), by name; absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependents: Option<Vec<String>>,
}

/// `incident` of a monitor alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertIncident {
    /// The incident's id (32 hex digits), as the API lists it and
    /// `/api/v1/incidents/{id}/ack` takes it.
    pub id: String,
    /// When it opened.
    #[serde(with = "rfc3339")]
    pub opened_at: DateTime<Utc>,
    /// Who acknowledged it and when, once someone did.
    pub acknowledged: Option<Acknowledgement>,
    /// `0` for the first alert, `n` for the n-th repeat.
    pub repeat: u32,
}

/// The subject of an alert; serialized as one field named after the source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// A monitor environment.
    Monitor(MonitorSubject),
    /// An issue.
    Issue(IssueSubject),
    /// A probe.
    Probe(ProbeSubject),
}

/// `monitor` of an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitorSubject {
    /// `"{project}/{slug}/{environment}"`: the monitor environment's identity, as in the API's
    /// paths.
    pub id: String,
    /// Slug.
    pub slug: String,
    /// Display name (monitors have none of their own yet: the slug).
    pub name: String,
    /// Environment.
    pub environment: String,
    /// Status after the change: `error` when failed, `ok` when recovered.
    pub status: MonitorStatus,
    /// Why the incident opened.
    pub reason: IncidentReason,
    /// The monitor's configuration, as the API shows it.
    pub config: serde_json::Value,
    /// The last `ok` check-in, if any.
    #[serde(with = "rfc3339_opt")]
    pub last_ok: Option<DateTime<Utc>>,
    /// When the deadline of this failure fell in or shortly after a window in which the
    /// collector itself was not watching (down, or refusing writes): that window, so the
    /// person knows the failure was decided after a grace (a Watchpost extension; absent
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_outage: Option<Outage>,
}

/// `issue` of an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IssueSubject {
    /// Issue id (32 hex digits).
    pub id: String,
    /// Issue title.
    pub title: String,
    /// Where it happens.
    pub culprit: Option<String>,
    /// Events so far.
    pub count: u64,
    /// When its first event arrived.
    #[serde(with = "rfc3339")]
    pub first_seen: DateTime<Utc>,
}

/// `probe` of an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeSubject {
    /// The probe's name.
    pub name: String,
    /// The URL it checks, without credentials, query or fragment (they may hold secrets).
    pub url: String,
    /// The status code of the last check, when there was a response.
    pub status_code: Option<u16>,
    /// What went wrong, when the check failed without a (good) response.
    pub error: Option<String>,
}

/// Builds dashboard links from `[server] public_url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Links {
    base: String,
}

/// A `[[rules]]` entry, as routing needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// The kinds it routes.
    pub on: Vec<AlertKind>,
    /// Channel names.
    pub channels: Vec<String>,
    /// `repeat`: while a monitor incident it announced is open and not acknowledged, its
    /// `monitor.failed` is sent again at this interval (see [`super::oncall`]).
    pub repeat: Option<Duration>,
}

/// One delivery an alert needs: to `channel`, because of `rule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The rule (the dedup key includes it).
    pub rule: String,
    /// The channel name.
    pub channel: String,
}

/// What a channel is asked to deliver: one alert, or a digest of many.
// Almost every payload is an alert: boxing it would cost the common case an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// One alert.
    Alert(Alert),
    /// A backlog collapsed into one message.
    Digest(Digest),
}

/// Many alerts collapsed into one message, one line per subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// Alerts it stands for.
    pub total: u32,
    /// Timestamp of the oldest.
    #[serde(with = "rfc3339")]
    pub since: DateTime<Utc>,
    /// Timestamp of the newest.
    #[serde(with = "rfc3339")]
    pub until: DateTime<Utc>,
    /// One entry per subject, in order of first appearance; at most [`DIGEST_MAX_SUBJECTS`].
    pub entries: Vec<DigestEntry>,
    /// Alerts about subjects beyond [`DIGEST_MAX_SUBJECTS`].
    pub omitted: u32,
}

/// A digest's line about one subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// The subject key (see [`Alert::subject_key`]).
    pub subject: String,
    /// The newest alert about it: its current state.
    pub latest: Alert,
    /// The kinds in order (repeats collapsed), the oldest dropped past a few.
    pub history: Vec<AlertKind>,
    /// Alerts about it.
    pub count: u32,
}

/// What to do with a due alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it; `suppressed` repeats were held back since the last one (say so).
    Send {
        /// Repeats suppressed since the last alert of this key.
        suppressed: u32,
    },
    /// A repeat of what the person last heard about the subject, within the window: drop it
    /// (it is counted into the next message).
    Suppress,
    /// A newer alert about the subject was handled already: drop it (counted).
    Supersede,
    /// A change of state within the window: hold it until `until`, then ask again.
    Defer {
        /// End of the window.
        until: DateTime<Utc>,
    },
}

/// Dedup state of one channel's worker (in memory: after a restart a repeat may be sent once
/// more, which is a duplicate, never a loss; deferred alerts stay in the durable outbox).
#[derive(Clone, Debug)]
pub struct Deduper {
    window: Duration,
    keys: HashMap<DedupKey, KeyState>,
    subjects: HashMap<SubjectKey, SubjectState>,
}

type DedupKey = (String, AlertKind, String);
type SubjectKey = (String, String);

#[derive(Clone, Debug)]
struct KeyState {
    sent_at: DateTime<Utc>,
    suppressed: u32,
}

#[derive(Clone, Debug)]
struct SubjectState {
    /// The kind of the last alert sent about the subject.
    heard: Option<AlertKind>,
    /// The newest delivery (by outbox sequence) handled about the subject, and when.
    newest: u64,
    touched: DateTime<Utc>,
}

impl AlertKind {
    /// Every kind, in documentation order.
    pub const ALL: [AlertKind; 9] = [
        AlertKind::MonitorFailed,
        AlertKind::MonitorRecovered,
        AlertKind::MonitorAcknowledged,
        AlertKind::IssueFirstSeen,
        AlertKind::IssueRegressed,
        AlertKind::IssueSpike,
        AlertKind::ProbeDown,
        AlertKind::ProbeUp,
        AlertKind::ProbeAcknowledged,
    ];

    /// The dotted name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::MonitorFailed => "monitor.failed",
            AlertKind::MonitorRecovered => "monitor.recovered",
            AlertKind::MonitorAcknowledged => "monitor.acknowledged",
            AlertKind::IssueFirstSeen => "issue.first_seen",
            AlertKind::IssueRegressed => "issue.regressed",
            AlertKind::IssueSpike => "issue.spike",
            AlertKind::ProbeDown => "probe.down",
            AlertKind::ProbeUp => "probe.up",
            AlertKind::ProbeAcknowledged => "probe.acknowledged",
        }
    }

    /// Parses a dotted name.
    pub fn parse(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The source of alerts of this kind.
    pub fn source(self) -> Source {
        match self {
            AlertKind::MonitorFailed
            | AlertKind::MonitorRecovered
            | AlertKind::MonitorAcknowledged => Source::Monitor,
            AlertKind::IssueFirstSeen | AlertKind::IssueRegressed | AlertKind::IssueSpike => {
                Source::Issue
            }
            AlertKind::ProbeDown | AlertKind::ProbeUp | AlertKind::ProbeAcknowledged => {
                Source::Probe
            }
        }
    }

    /// Whether it reports a return to normal (`monitor.recovered`, `probe.up`).
    pub fn is_recovery(self) -> bool {
        matches!(self, AlertKind::MonitorRecovered | AlertKind::ProbeUp)
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Of an event level: `fatal` is critical, `error` and `warning` warn, the rest inform.
    pub fn of_level(level: Level) -> Severity {
        match level {
            Level::Fatal => Severity::Critical,
            Level::Error | Level::Warning => Severity::Warning,
            Level::Info | Level::Debug => Severity::Info,
        }
    }
}

impl Alert {
    /// Identity of the subject: `monitor/{project}/{slug}/{environment}`, `issue/{id}` or
    /// `probe/{name}`. Alerts of different kinds about one subject share it.
    pub fn subject_key(&self) -> String {
        match &self.subject {
            Subject::Monitor(m) => format!("monitor/{}", m.id),
            Subject::Issue(i) => format!("issue/{}", i.id),
            Subject::Probe(p) => format!("probe/{}", p.name),
        }
    }

    /// A short display name of the subject: `nightly-backup (production)`, the issue title,
    /// the probe name.
    pub fn subject_name(&self) -> String {
        match &self.subject {
            Subject::Monitor(m) => format!("{} ({})", m.slug, m.environment),
            Subject::Issue(i) => i.title.clone(),
            Subject::Probe(p) => p.name.clone(),
        }
    }

    /// Adds the count of repeats held back since the previous alert of the same key.
    pub fn note_suppressed(&mut self, suppressed: u32, window: Duration) {
        if suppressed > 0 {
            let what = if suppressed == 1 {
                "1 repeat of this alert was".to_owned()
            } else {
                format!("{suppressed} repeats of this alert were")
            };
            self.message = format!(
                "{}\n({what} suppressed within the {} dedup window.)",
                self.message,
                human_duration(window)
            );
        }
    }
}

impl Links {
    /// Links under `public_url` (a trailing slash is ignored).
    pub fn new(public_url: &str) -> Links {
        Links {
            base: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The dashboard page of a monitor environment.
    pub fn monitor(&self, key: &MonitorKey) -> String {
        format!(
            "{}/monitors/{}/{}?environment={}",
            self.base,
            key.project,
            percent_encode(&key.slug),
            percent_encode(&key.environment)
        )
    }

    /// The dashboard page of an issue.
    pub fn issue(&self, id: &str) -> String {
        format!("{}/issues/{}", self.base, percent_encode(id))
    }

    /// The dashboard page of a probe.
    pub fn probe(&self, name: &str) -> String {
        format!("{}/probes/{}", self.base, percent_encode(name))
    }

    /// The acknowledge page of a signed token (the collector signs it).
    pub fn acknowledge(&self, token: &str) -> String {
        format!("{}/ack/{}", self.base, percent_encode(token))
    }
}

/// The alert for an engine effect, or `None` when it must not be announced (`notify: false`:
/// the monitor is muted, or the opening was not announced). `monitor` is the monitor
/// environment's state after the transition; `outage` the collector's outage its deadline fell
/// near, if any; `now` the time of the transition.
pub fn monitor_alert(
    effect: &Effect,
    monitor: &MonitorEnv,
    outage: Option<&Outage>,
    links: &Links,
    now: DateTime<Utc>,
) -> Option<Alert> {
    let (kind, incident) = match effect {
        Effect::IncidentOpened {
            incident,
            notify: true,
        } => (AlertKind::MonitorFailed, incident),
        Effect::IncidentResolved {
            incident,
            notify: true,
        } => (AlertKind::MonitorRecovered, incident),
        Effect::IncidentOpened { .. } | Effect::IncidentResolved { .. } => return None,
    };
    let key = &incident.key;
    let name = format!("Monitor {} ({})", key.slug, key.environment);
    let (severity, title, message, status) = if kind == AlertKind::MonitorFailed {
        let last_ok = monitor.last_ok.map_or_else(
            || "no successful check-in yet".to_owned(),
            |t| format!("last successful check-in {}", when(t)),
        );
        let outage = outage.map_or_else(String::new, |outage| {
            format!(
                " Note: {}; this deadline fell then or shortly after, and no check-in arrived within the grace that followed.",
                outage.describe()
            )
        });
        (
            Severity::Critical,
            format!("{name} is failing"),
            format!(
                "{}. Failing since {}; {last_ok}. Project {}.{outage}",
                incident.summary(),
                when(incident.starting_timestamp),
                key.project
            ),
            MonitorStatus::Error,
        )
    } else {
        (
            Severity::Info,
            format!("{name} recovered"),
            format!(
                "Back to ok after {} of failure (since {}: {}). Project {}.{}",
                human_delta(failing_for(incident, now)),
                when(incident.starting_timestamp),
                lowercase_first(&incident.summary()),
                key.project,
                acknowledged_note(incident)
            ),
            MonitorStatus::Ok,
        )
    };
    Some(monitor_alert_of(
        kind,
        (severity, title, message, status),
        incident,
        monitor,
        outage.copied().filter(|_| kind == AlertKind::MonitorFailed),
        links,
        now,
    ))
}

/// The alert that repeats an open incident's `monitor.failed` (its `repeats`-th repeat, as
/// [`super::oncall::sweep_repeat`] left it): how long it has been failing, and that
/// acknowledging stops the repeats.
pub fn repeat_alert(
    incident: &Incident,
    monitor: &MonitorEnv,
    links: &Links,
    now: DateTime<Utc>,
) -> Alert {
    let key = &incident.key;
    let message = format!(
        "Still failing after {} (since {}): {}. Repeat {} of this alert; acknowledge the incident to stop the repeats. Project {}.",
        human_delta(failing_for(incident, now)),
        when(incident.starting_timestamp),
        lowercase_first(&incident.summary()),
        incident.handling.repeats,
        key.project
    );
    monitor_alert_of(
        AlertKind::MonitorFailed,
        (
            Severity::Critical,
            format!(
                "Monitor {} ({}) is still failing",
                key.slug, key.environment
            ),
            message,
            MonitorStatus::Error,
        ),
        incident,
        monitor,
        None,
        links,
        now,
    )
}

/// The usual `monitor.failed` of an incident's opening, for an alert that was held and goes
/// out later (its message then says why).
fn opening_alert(
    incident: &Incident,
    monitor: &MonitorEnv,
    links: &Links,
    now: DateTime<Utc>,
) -> Alert {
    let effect = Effect::IncidentOpened {
        incident: incident.clone(),
        notify: true,
    };
    monitor_alert(&effect, monitor, None, links, now).expect("an announced opening has an alert")
}

/// The `monitor.failed` of an incident whose alert was held while its monitor was quiet (a
/// maintenance window, a snooze) and is still open now that the quiet time ended: the usual
/// failure alert, saying it was held.
pub fn released_alert(
    incident: &Incident,
    monitor: &MonitorEnv,
    links: &Links,
    now: DateTime<Utc>,
) -> Alert {
    let mut alert = opening_alert(incident, monitor, links, now);
    alert.message = format!(
        "{} It opened {} while the monitor was in a maintenance window or snoozed; this alert was held until now.",
        alert.message,
        when(incident.opened_at)
    );
    alert
}

/// The `monitor.failed` of an incident whose alert was held while a monitor or probe it
/// depends on (`dependencies`, as `depends_on` names them) was failing, now that none is and
/// the incident is still open: it alerts on its own, once.
pub fn released_after_dependency(
    incident: &Incident,
    monitor: &MonitorEnv,
    dependencies: &[String],
    links: &Links,
    now: DateTime<Utc>,
) -> Alert {
    let mut alert = opening_alert(incident, monitor, links, now);
    alert.message = format!(
        "{} It opened {} while {} it depends on was failing, and its alert was held; that has recovered and this monitor is still failing, so it alerts on its own now.",
        alert.message,
        when(incident.opened_at),
        dependencies.join(", ")
    );
    alert
}

/// The `probe.down` of a probe whose alert was held while something it depends on
/// (`dependencies`) was failing, now that nothing is and it is still down: once, on its own.
pub fn probe_released_alert(
    notice: &ProbeNotice,
    dependencies: &[String],
    links: &Links,
    now: DateTime<Utc>,
) -> Alert {
    let mut alert = probe_alert(notice, links, now);
    alert.message = format!(
        "{} Its alert was held while {} it depends on was failing; that has recovered and this probe is still down, so it alerts on its own now.",
        alert.message,
        dependencies.join(", ")
    );
    alert
}

/// Names the failing dependents in their dependency's alert (`fold`, see
/// [`super::dependencies::fold`]): its title counts them, its message lists them, and
/// `dependents` carries them all.
pub fn fold_into(alert: &mut Alert, fold: &super::dependencies::Fold) {
    if fold.failing.is_empty() {
        return;
    }
    alert.title = format!("{}; {}", alert.title, fold.headline());
    alert.message = format!(
        "{} {}: {}. Their own alerts are held while it is failing; any still failing when it recovers alerts on its own.",
        alert.message,
        fold.headline(),
        fold.list()
    );
    alert.dependents = Some(fold.failing.clone());
}

/// The `monitor.acknowledged` alert: who said they are on it, and when.
pub fn acknowledged_alert(
    incident: &Incident,
    monitor: &MonitorEnv,
    links: &Links,
    now: DateTime<Utc>,
) -> Alert {
    let key = &incident.key;
    let who = incident
        .handling
        .acknowledged
        .as_ref()
        .map_or_else(|| "someone".to_owned(), |ack| ack.by.clone());
    let message = format!(
        "{who} acknowledged it {}; failing for {} (since {}): {}. Repeats of this alert stop. Project {}.",
        when(now),
        human_delta(failing_for(incident, now)),
        when(incident.starting_timestamp),
        lowercase_first(&incident.summary()),
        key.project
    );
    monitor_alert_of(
        AlertKind::MonitorAcknowledged,
        (
            Severity::Warning,
            format!(
                "Monitor {} ({}) acknowledged by {who}",
                key.slug, key.environment
            ),
            message,
            MonitorStatus::Error,
        ),
        incident,
        monitor,
        None,
        links,
        now,
    )
}

/// `" Acknowledged by alice 2026-05-01 04:05 UTC."` when someone acknowledged the incident,
/// else nothing: the recovery tells who was on it.
fn acknowledged_note(incident: &Incident) -> String {
    incident
        .handling
        .acknowledged
        .as_ref()
        .map_or_else(String::new, |ack| {
            format!(" Acknowledged by {} {}.", ack.by, when(ack.at))
        })
}

/// The alert about a monitor incident with its words chosen: `(severity, title, message,
/// status)`.
fn monitor_alert_of(
    kind: AlertKind,
    (severity, title, message, status): (Severity, String, String, MonitorStatus),
    incident: &Incident,
    monitor: &MonitorEnv,
    outage: Option<Outage>,
    links: &Links,
    now: DateTime<Utc>,
) -> Alert {
    let key = &incident.key;
    Alert {
        kind,
        severity,
        title,
        message,
        source: Source::Monitor,
        project: Some(key.project),
        environment: Some(key.environment.clone()),
        timestamp: now,
        url: links.monitor(key),
        subject: Subject::Monitor(MonitorSubject {
            id: format!("{}/{}/{}", key.project, key.slug, key.environment),
            slug: key.slug.clone(),
            name: key.slug.clone(),
            environment: key.environment.clone(),
            status,
            reason: incident.reason,
            config: monitor_config_json(monitor),
            last_ok: monitor.last_ok,
            collector_outage: outage,
        }),
        incident: Some(AlertIncident {
            id: incident.id.simple().to_string(),
            opened_at: incident.opened_at,
            acknowledged: incident.handling.acknowledged.clone(),
            repeat: if kind == AlertKind::MonitorFailed {
                incident.handling.repeats
            } else {
                0
            },
        }),
        acknowledge_url: None,
        dependents: None,
    }
}

/// The alert for an issue effect. `issue` is the issue after the event; `now` the receive time.
pub fn issue_alert(
    effect: &IssueEffect,
    issue: &Issue,
    links: &Links,
    now: DateTime<Utc>,
) -> Alert {
    let place = match &issue.culprit {
        Some(culprit) => format!("in {culprit}, "),
        None => String::new(),
    };
    let release = issue
        .release
        .as_ref()
        .map(|r| format!(", release {r}"))
        .unwrap_or_default();
    let level_severity = Severity::of_level(issue.level);
    let (kind, severity, title, message) = match effect {
        IssueEffect::FirstSeen => (
            AlertKind::IssueFirstSeen,
            level_severity,
            format!("New issue: {}", issue.title),
            format!(
                "First seen {} {place}environment {}{release} ({} event{}).",
                when(issue.first_seen),
                issue.environment,
                issue.count,
                plural(issue.count)
            ),
        ),
        IssueEffect::Regressed { resolved_at } => (
            AlertKind::IssueRegressed,
            level_severity,
            format!("Regressed: {}", issue.title),
            format!(
                "Resolved{} but seen again {} {place}environment {}{release}; {} event{} since {}.",
                resolved_at
                    .map(|t| format!(" {}", when(t)))
                    .unwrap_or_default(),
                when(now),
                issue.environment,
                issue.count,
                plural(issue.count),
                when(issue.first_seen)
            ),
        ),
        IssueEffect::Spike {
            count,
            threshold,
            window,
            ..
        } => (
            AlertKind::IssueSpike,
            level_severity.max(Severity::Warning),
            format!("Spike: {}", issue.title),
            format!(
                "{count} events in the last {} (more than {threshold}) {place}environment {}{release}.",
                human_duration(*window),
                issue.environment
            ),
        ),
    };
    Alert {
        kind,
        severity,
        title,
        message,
        source: Source::Issue,
        project: Some(issue.project),
        environment: Some(issue.environment.clone()),
        timestamp: now,
        url: links.issue(&issue.id),
        subject: Subject::Issue(IssueSubject {
            id: issue.id.clone(),
            title: issue.title.clone(),
            culprit: issue.culprit.clone(),
            count: issue.count,
            first_seen: issue.first_seen,
        }),
        incident: None,
        acknowledge_url: None,
        dependents: None,
    }
}

/// The alert for a probe going down or up.
pub fn probe_alert(change: &ProbeNotice, links: &Links, now: DateTime<Utc>) -> Alert {
    let url = redact_url(&change.url);
    let what = match (&change.error, change.status_code) {
        (Some(error), _) => error.clone(),
        (None, Some(code)) => format!("HTTP {code}"),
        (None, None) => "no answer".to_owned(),
    };
    let (kind, severity, title, message) = if change.down {
        let since = change
            .since
            .map(|t| format!(" Down since {}.", when(t)))
            .unwrap_or_default();
        (
            AlertKind::ProbeDown,
            Severity::Critical,
            format!("Probe {} is down", change.name),
            format!("{url}: {what}.{since}"),
        )
    } else {
        let after = change
            .since
            .map(|t| format!(" after {} down", human_delta(now - t)))
            .unwrap_or_default();
        (
            AlertKind::ProbeUp,
            Severity::Info,
            format!("Probe {} is up", change.name),
            format!("{url} answers again{after} ({what})."),
        )
    };
    Alert {
        kind,
        severity,
        title,
        message,
        source: Source::Probe,
        project: None,
        environment: None,
        timestamp: now,
        url: links.probe(&change.name),
        subject: Subject::Probe(ProbeSubject {
            name: change.name.clone(),
            url,
            status_code: change.status_code,
            error: change.error.clone(),
        }),
        incident: None,
        acknowledge_url: None,
        dependents: None,
    }
}

/// Ties a probe alert to its incident: `incident` carries its id (what
/// `/api/v1/incidents/{id}/ack` takes) and acknowledgement, and a `probe.up` says who
/// acknowledged the incident and when.
pub fn note_probe_incident(alert: &mut Alert, incident: &Incident) {
    if alert.kind == AlertKind::ProbeUp {
        alert.message.push_str(&acknowledged_note(incident));
    }
    alert.incident = Some(AlertIncident {
        id: incident.id.simple().to_string(),
        opened_at: incident.opened_at,
        acknowledged: incident.handling.acknowledged.clone(),
        repeat: 0,
    });
}

/// The `probe.acknowledged` alert: who said they are on the probe's incident, and when.
/// `down` says what the probe's down alert said (its last check).
pub fn probe_acknowledged_alert(
    incident: &Incident,
    down: &ProbeNotice,
    links: &Links,
    now: DateTime<Utc>,
) -> Alert {
    let mut alert = probe_alert(down, links, now);
    let who = incident
        .handling
        .acknowledged
        .as_ref()
        .map_or_else(|| "someone".to_owned(), |ack| ack.by.clone());
    alert.kind = AlertKind::ProbeAcknowledged;
    alert.severity = Severity::Warning;
    alert.title = format!("Probe {} acknowledged by {who}", down.name);
    alert.message = format!(
        "{who} acknowledged it {}; down for {} (since {}): {}.",
        when(now),
        human_delta(now - incident.starting_timestamp),
        when(incident.starting_timestamp),
        match (&down.error, down.status_code) {
            (Some(error), _) => error.clone(),
            (None, Some(code)) => format!("HTTP {code}"),
            (None, None) => "no answer".to_owned(),
        }
    );
    note_probe_incident(&mut alert, incident);
    alert
}

/// The rule used when none is configured: everything to the `log` channel.
pub fn default_rules() -> Vec<Rule> {
    vec![Rule {
        name: DEFAULT_RULE.to_owned(),
        on: AlertKind::ALL.to_vec(),
        channels: vec![DEFAULT_CHANNEL.to_owned()],
        repeat: None,
    }]
}

/// The deliveries an alert needs: one per channel of every rule whose `on` has its kind (no
/// rules: the default rule). A channel named by two matching rules gets one delivery, from the
/// first. An `issue.spike` is routed only by the rule that detected it (`spike_rule`).
pub fn route(rules: &[Rule], alert: &Alert, spike_rule: Option<&str>) -> Vec<Route> {
    let defaults;
    let rules = if rules.is_empty() {
        defaults = default_rules();
        &defaults[..]
    } else {
        rules
    };
    let mut routes: Vec<Route> = Vec::new();
    for rule in rules {
        if !rule.on.contains(&alert.kind) {
            continue;
        }
        if alert.kind == AlertKind::IssueSpike && spike_rule.is_some_and(|r| r != rule.name) {
            continue;
        }
        for channel in &rule.channels {
            if !routes.iter().any(|r| &r.channel == channel) {
                routes.push(Route {
                    rule: rule.name.clone(),
                    channel: channel.clone(),
                });
            }
        }
    }
    routes
}

impl Deduper {
    /// A deduper with the `[alerts] dedup_window`; a zero window disables it.
    pub fn new(window: Duration) -> Deduper {
        Deduper {
            window,
            keys: HashMap::new(),
            subjects: HashMap::new(),
        }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Decides about a due alert routed by `rule`; `seq` is its position in the channel's
    /// queue (outbox id: later alerts have larger ones). Ask again after a [`Verdict::Defer`];
    /// call [`Deduper::sent`] once a [`Verdict::Send`] was delivered.
    pub fn check(&mut self, rule: &str, alert: &Alert, seq: u64, now: DateTime<Utc>) -> Verdict {
        let key = (rule.to_owned(), alert.kind, alert.subject_key());
        let subject_key = (key.0.clone(), key.2.clone());
        let subject = self
            .subjects
            .entry(subject_key)
            .or_insert_with(|| SubjectState {
                heard: None,
                newest: seq,
                touched: now,
            });
        if seq < subject.newest {
            if let Some(state) = self.keys.get_mut(&key) {
                state.suppressed = state.suppressed.saturating_add(1);
            }
            return Verdict::Supersede;
        }
        subject.newest = seq;
        subject.touched = now;
        let window = TimeDelta::from_std(self.window).unwrap_or(TimeDelta::MAX);
        let Some(state) = self.keys.get_mut(&key) else {
            return Verdict::Send { suppressed: 0 };
        };
        let until = state.sent_at.checked_add_signed(window);
        match until {
            // A dependency's follow-up names dependents the person has not heard of: news,
            // never a repeat to hold back.
            Some(_) if alert.dependents.is_some() => Verdict::Send {
                suppressed: state.suppressed,
            },
            Some(until) if now < until => {
                if subject.heard == Some(alert.kind) {
                    state.suppressed = state.suppressed.saturating_add(1);
                    Verdict::Suppress
                } else {
                    Verdict::Defer { until }
                }
            }
            _ => Verdict::Send {
                suppressed: state.suppressed,
            },
        }
    }

    /// Records that an alert routed by `rule` was delivered at `now`.
    pub fn sent(&mut self, rule: &str, alert: &Alert, now: DateTime<Utc>) {
        let subject = alert.subject_key();
        self.keys.insert(
            (rule.to_owned(), alert.kind, subject.clone()),
            KeyState {
                sent_at: now,
                suppressed: 0,
            },
        );
        let state = self
            .subjects
            .entry((rule.to_owned(), subject))
            .or_insert_with(|| SubjectState {
                heard: None,
                newest: 0,
                touched: now,
            });
        state.heard = Some(alert.kind);
        state.touched = now;
    }

    /// Forgets what can no longer matter: keys whose window ended with nothing suppressed, and
    /// subjects untouched for two windows with no key left. Keeps memory bounded.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let window = TimeDelta::from_std(self.window).unwrap_or(TimeDelta::MAX);
        let expired = |at: DateTime<Utc>, windows: i32| {
            window
                .checked_mul(windows)
                .and_then(|w| at.checked_add_signed(w))
                .is_some_and(|end| end <= now)
        };
        self.keys
            .retain(|_, state| state.suppressed > 0 || !expired(state.sent_at, 1));
        let keys = &self.keys;
        self.subjects.retain(|(rule, subject), state| {
            !expired(state.touched, 2) || keys.keys().any(|(r, _, s)| r == rule && s == subject)
        });
    }
}

impl Digest {
    /// Collapses payloads (alerts and earlier digests) into one digest.
    pub fn collect<'a>(payloads: impl IntoIterator<Item = &'a Payload>) -> Option<Digest> {
        let mut digest: Option<Digest> = None;
        for payload in payloads {
            match (payload, &mut digest) {
                (Payload::Alert(alert), slot) => slot
                    .get_or_insert_with(|| Digest::empty(alert.timestamp))
                    .absorb(alert),
                (Payload::Digest(other), slot) => {
                    let d = slot.get_or_insert_with(|| Digest::empty(other.since));
                    d.merge(other);
                }
            }
        }
        digest
    }

    fn empty(at: DateTime<Utc>) -> Digest {
        Digest {
            total: 0,
            since: at,
            until: at,
            entries: Vec::new(),
            omitted: 0,
        }
    }

    fn absorb(&mut self, alert: &Alert) {
        self.total = self.total.saturating_add(1);
        self.since = self.since.min(alert.timestamp);
        self.until = self.until.max(alert.timestamp);
        self.add_entry(DigestEntry {
            subject: alert.subject_key(),
            latest: alert.clone(),
            history: vec![alert.kind],
            count: 1,
        });
    }

    fn merge(&mut self, other: &Digest) {
        self.total = self.total.saturating_add(other.total);
        self.omitted = self.omitted.saturating_add(other.omitted);
        self.since = self.since.min(other.since);
        self.until = self.until.max(other.until);
        for entry in &other.entries {
            self.add_entry(entry.clone());
        }
    }

    /// Folds an entry into the one about the same subject, or appends it.
    fn add_entry(&mut self, new: DigestEntry) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.subject == new.subject) {
            entry.count = entry.count.saturating_add(new.count);
            for kind in new.history {
                if entry.history.last() != Some(&kind) {
                    if entry.history.len() == DIGEST_MAX_HISTORY {
                        entry.history.remove(0);
                    }
                    entry.history.push(kind);
                }
            }
            if new.latest.timestamp >= entry.latest.timestamp {
                entry.latest = new.latest;
            }
        } else if self.entries.len() < DIGEST_MAX_SUBJECTS {
            self.entries.push(new);
        } else {
            self.omitted = self.omitted.saturating_add(new.count);
        }
    }

    /// The most severe current state among its subjects.
    pub fn severity(&self) -> Severity {
        self.entries
            .iter()
            .map(|e| e.latest.severity)
            .max()
            .unwrap_or(Severity::Info)
    }

    /// One line: `"57 alerts about 12 subjects (9 critical now) since 10:00:03 UTC"`.
    pub fn headline(&self) -> String {
        let subjects = self.entries.len() + usize::from(self.omitted > 0);
        let critical = self
            .entries
            .iter()
            .filter(|e| e.latest.severity == Severity::Critical)
            .count();
        let critical = if critical > 0 {
            format!(" ({critical} critical now)")
        } else {
            String::new()
        };
        format!(
            "{} alert{} about {}{} subject{}{critical} since {}",
            self.total,
            plural(u64::from(self.total)),
            if self.omitted > 0 { "more than " } else { "" },
            subjects,
            plural(subjects as u64),
            when(self.since)
        )
    }
}

impl DigestEntry {
    /// `"Monitor nightly-backup (production) recovered — monitor.failed → monitor.recovered (3 alerts)"`.
    pub fn line(&self) -> String {
        let history = if self.history.len() > 1 {
            let kinds: Vec<&str> = self.history.iter().map(|k| k.as_str()).collect();
            format!(" — {}", kinds.join(" → "))
        } else {
            String::new()
        };
        let count = if self.count > 1 {
            format!(" ({} alerts)", self.count)
        } else {
            String::new()
        };
        format!("{}{history}{count}", self.latest.title)
    }
}

/// The monitor configuration as the API shows it.
fn monitor_config_json(monitor: &MonitorEnv) -> serde_json::Value {
    let config = &monitor.config;
    serde_json::json!({
        "schedule": config.schedule,
        "timezone": config.timezone,
        "checkin_margin_s": config.checkin_margin.as_secs_f64(),
        "max_runtime_s": config.max_runtime.as_secs_f64(),
        "failure_issue_threshold": config.failure_issue_threshold,
        "recovery_threshold": config.recovery_threshold,
    })
}

fn failing_for(incident: &Incident, now: DateTime<Utc>) -> TimeDelta {
    incident.resolved_at.unwrap_or(now) - incident.starting_timestamp
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `https://user:pw@host:8080/health?token=x#f` → `https://host:8080/health`.
pub fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// RFC 3339 in UTC with `Z`, fractions only when present.
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&crate::text::rfc3339(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;
    use crate::config::{MonitorConfig, Schedule};
    use crate::issues::IssueStatus;
    use crate::model::{FailureCounts, IncidentKind};

    fn t(min: u32, sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 3, min, sec).unwrap()
    }

    fn links() -> Links {
        Links::new("http://127.0.0.1:8470/")
    }

    fn monitor() -> (MonitorEnv, Incident) {
        let key = MonitorKey::new(1, "nightly-backup", None).unwrap();
        let mut monitor = MonitorEnv::new(
            key.clone(),
            MonitorConfig::new(Schedule::crontab("0 3 * * *").unwrap()),
        );
        monitor.last_ok = Some(Utc.with_ymd_and_hms(2026, 4, 30, 3, 0, 12).unwrap());
        let incident = Incident {
            id: Uuid::nil(),
            key,
            kind: IncidentKind::Monitor,
            opened_at: t(5, 0),
            resolved_at: None,
            reason: IncidentReason::MissedCheckin,
            starting_checkin: Uuid::nil(),
            starting_timestamp: t(0, 0),
            resolving_checkin: None,
            failures: FailureCounts {
                missed: 3,
                timeout: 0,
                error: 0,
            },
            notified: true,
            handling: Default::default(),
        };
        (monitor, incident)
    }

    fn probe(name: &str, down: bool, at: DateTime<Utc>) -> Alert {
        probe_alert(
            &ProbeNotice {
                down,
                name: name.to_owned(),
                url: "https://u:p@api.example.com:8443/health?key=s3cret#x".to_owned(),
                status_code: Some(if down { 503 } else { 200 }),
                error: None,
                since: Some(t(0, 0)),
            },
            &links(),
            at,
        )
    }

    #[test]
    fn monitor_failed_is_exactly_the_contract_json() {
        let (monitor, incident) = monitor();
        let effect = Effect::IncidentOpened {
            incident,
            notify: true,
        };
        let alert = monitor_alert(&effect, &monitor, None, &links(), t(5, 0)).unwrap();
        let want = json!({
            "kind": "monitor.failed",
            "severity": "critical",
            "title": "Monitor nightly-backup (production) is failing",
            "message": "3 missed check-ins detected. Failing since 2026-05-01 03:00:00 UTC; \
                        last successful check-in 2026-04-30 03:00:12 UTC. Project 1.",
            "source": "monitor",
            "project": 1,
            "environment": "production",
            "timestamp": "2026-05-01T03:05:00Z",
            "url": "http://127.0.0.1:8470/monitors/1/nightly-backup?environment=production",
            "monitor": {
                "id": "1/nightly-backup/production",
                "slug": "nightly-backup",
                "name": "nightly-backup",
                "environment": "production",
                "status": "error",
                "reason": "missed_checkin",
                "config": {
                    "schedule": {"type": "crontab", "value": "0 3 * * *"},
                    "timezone": "UTC",
                    "checkin_margin_s": 60.0,
                    "max_runtime_s": 1800.0,
                    "failure_issue_threshold": 1,
                    "recovery_threshold": 1
                },
                "last_ok": "2026-04-30T03:00:12Z"
            },
            "incident": {
                "id": "00000000000000000000000000000000",
                "opened_at": "2026-05-01T03:05:00Z",
                "acknowledged": null,
                "repeat": 0
            }
        });
        let got = serde_json::to_value(&alert).unwrap();
        assert_eq!(got, want);
        let back: Alert = serde_json::from_value(got).unwrap();
        assert_eq!(back, alert, "round-trips through the outbox");
    }

    #[test]
    fn monitor_recovered_and_muted_effects() {
        let (monitor, mut incident) = monitor();
        incident.resolved_at = Some(t(35, 0));
        let resolved = Effect::IncidentResolved {
            incident: incident.clone(),
            notify: true,
        };
        let alert = monitor_alert(&resolved, &monitor, None, &links(), t(35, 0)).unwrap();
        assert_eq!(alert.kind, AlertKind::MonitorRecovered);
        assert_eq!(alert.severity, Severity::Info);
        assert_eq!(
            alert.message,
            "Back to ok after 35m of failure (since 2026-05-01 03:00:00 UTC: \
             3 missed check-ins detected). Project 1."
        );
        let Subject::Monitor(subject) = &alert.subject else {
            panic!("monitor subject")
        };
        assert_eq!(subject.status, MonitorStatus::Ok);
        let muted = Effect::IncidentOpened {
            incident,
            notify: false,
        };
        assert_eq!(
            monitor_alert(&muted, &monitor, None, &links(), t(5, 0)),
            None
        );
    }

    #[test]
    fn issue_and_probe_alerts_have_their_subjects() {
        let issue = Issue {
            id: "0123456789abcdef0123456789abcdef".to_owned(),
            project: 7,
            fingerprint: vec![],
            title: "KeyError: 'missing'".to_owned(),
            culprit: Some("process in job".to_owned()),
            level: Level::Error,
            status: IssueStatus::Unresolved,
            first_seen: t(0, 0),
            last_seen: t(0, 0),
            count: 1,
            environment: "staging".to_owned(),
            release: Some("job@1.2".to_owned()),
            resolved_at: None,
            spikes: Default::default(),
        };
        let alert = issue_alert(&IssueEffect::FirstSeen, &issue, &links(), t(0, 0));
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(json["kind"], "issue.first_seen");
        assert_eq!(json["severity"], "warning");
        assert_eq!(json["source"], "issue");
        assert_eq!(json["environment"], "staging");
        assert_eq!(
            json["issue"],
            json!({"id": issue.id, "title": "KeyError: 'missing'", "culprit": "process in job",
                   "count": 1, "first_seen": "2026-05-01T03:00:00Z"})
        );
        assert_eq!(
            alert.message,
            "First seen 2026-05-01 03:00:00 UTC in process in job, environment staging, \
             release job@1.2 (1 event)."
        );
        let spike = IssueEffect::Spike {
            rule: "spike".to_owned(),
            count: 11,
            threshold: 10,
            window: Duration::from_secs(3600),
        };
        let alert = issue_alert(&spike, &issue, &links(), t(1, 0));
        assert_eq!(alert.title, "Spike: KeyError: 'missing'");
        assert!(
            alert
                .message
                .starts_with("11 events in the last 1h (more than 10)")
        );

        let json = serde_json::to_value(probe("api", true, t(1, 0))).unwrap();
        assert_eq!(json["project"], Value::Null);
        assert_eq!(json["environment"], Value::Null);
        assert_eq!(
            json["probe"],
            json!({"name": "api", "url": "https://api.example.com:8443/health",
                   "status_code": 503, "error": null}),
            "credentials, query and fragment never reach an alert"
        );
        assert_eq!(json["url"], "http://127.0.0.1:8470/probes/api");
    }

    #[test]
    fn routes_by_rule_and_kind() {
        let rule = |name: &str, on: &[AlertKind], channels: &[&str]| Rule {
            name: name.to_owned(),
            on: on.to_vec(),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            repeat: None,
        };
        let rules = vec![
            rule(
                "jobs",
                &[AlertKind::MonitorFailed, AlertKind::ProbeDown],
                &["tg", "hook"],
            ),
            rule("uptime", &[AlertKind::ProbeDown], &["hook", "mail"]),
            rule("spike-a", &[AlertKind::IssueSpike], &["tg"]),
            rule("spike-b", &[AlertKind::IssueSpike], &["mail"]),
        ];
        let mut spike = probe("x", true, t(0, 0));
        spike.kind = AlertKind::IssueSpike;
        let up = probe("x", false, t(0, 0));
        let down = probe("x", true, t(0, 0));
        let check =
            |rules: &[Rule], alert: &Alert, spike_rule: Option<&str>, want: &[(&str, &str)]| {
                let got: Vec<(String, String)> = route(rules, alert, spike_rule)
                    .into_iter()
                    .map(|r| (r.rule, r.channel))
                    .collect();
                let want: Vec<(String, String)> = want
                    .iter()
                    .map(|(r, c)| ((*r).to_owned(), (*c).to_owned()))
                    .collect();
                assert_eq!(got, want, "{} via {spike_rule:?}", alert.kind);
            };
        check(
            &rules,
            &down,
            None,
            &[("jobs", "tg"), ("jobs", "hook"), ("uptime", "mail")],
        );
        check(&rules, &up, None, &[]);
        check(&rules, &spike, Some("spike-b"), &[("spike-b", "mail")]);
        check(&[], &up, None, &[("default", "log")]);
    }

    /// One step of a dedup scenario: (outbox seq, down?, time in s, expected verdict); a
    /// `Send` is then recorded as delivered.
    type Step = (u64, bool, u32, Verdict);

    fn dedup(steps: &[Step]) {
        let mut deduper = Deduper::new(Duration::from_secs(300));
        for (i, &(seq, down, secs, want)) in steps.iter().enumerate() {
            let now = t(0, 0) + TimeDelta::seconds(i64::from(secs));
            let alert = probe("api", down, now);
            let got = deduper.check("r", &alert, seq, now);
            assert_eq!(got, want, "step {i}: seq {seq} down={down} at {secs}s");
            if let Verdict::Send { .. } = got {
                deduper.sent("r", &alert, now);
            }
            deduper.prune(now);
        }
    }

    #[test]
    fn dedup_suppresses_repeats_and_counts_them() {
        dedup(&[
            (1, true, 0, Verdict::Send { suppressed: 0 }),
            (2, true, 10, Verdict::Suppress),
            (3, true, 20, Verdict::Suppress),
            (4, true, 300, Verdict::Send { suppressed: 2 }),
            (5, true, 700, Verdict::Send { suppressed: 0 }),
        ]);
    }

    #[test]
    fn dedup_never_hides_the_current_state_of_a_flapping_subject() {
        let until = |secs: i64| Verdict::Defer {
            until: t(0, 0) + TimeDelta::seconds(secs),
        };
        // down, up, down within the window: the second down waits for the window, then goes.
        dedup(&[
            (1, true, 0, Verdict::Send { suppressed: 0 }),
            (2, false, 5, Verdict::Send { suppressed: 0 }),
            (3, true, 10, until(300)),
            (3, true, 300, Verdict::Send { suppressed: 0 }),
        ]);
        // down, up, down, up: the deferred down is superseded by the newer up, which repeats
        // what the person last heard.
        dedup(&[
            (1, true, 0, Verdict::Send { suppressed: 0 }),
            (2, false, 5, Verdict::Send { suppressed: 0 }),
            (3, true, 10, until(300)),
            (4, false, 15, Verdict::Suppress),
            (3, true, 300, Verdict::Supersede),
            (5, true, 400, Verdict::Send { suppressed: 1 }),
        ]);
        // A zero window disables dedup.
        let mut off = Deduper::new(Duration::ZERO);
        let alert = probe("api", true, t(0, 0));
        off.sent("r", &alert, t(0, 0));
        assert_eq!(
            off.check("r", &alert, 2, t(0, 0)),
            Verdict::Send { suppressed: 0 }
        );
    }

    /// A dependency's follow-up naming its failing dependents is the same kind about the same
    /// subject as its first alert, minutes later: it still goes out, with the list in the JSON.
    #[test]
    fn a_follow_up_naming_dependents_is_never_held_back_as_a_repeat() {
        use crate::dependencies::{FailingDependent, Fold};
        let mut deduper = Deduper::new(Duration::from_secs(300));
        let down = probe("database-health", true, t(0, 0));
        assert_eq!(
            deduper.check("r", &down, 1, t(0, 0)),
            Verdict::Send { suppressed: 0 }
        );
        deduper.sent("r", &down, t(0, 0));
        let failing: Vec<FailingDependent> = ["job-b (production)", "job-a (production)"]
            .iter()
            .map(|name| FailingDependent {
                name: (*name).to_owned(),
                since: t(1, 0),
            })
            .collect();
        let mut follow_up = probe("database-health", true, t(2, 0));
        fold_into(&mut follow_up, &Fold::of(&failing, &[]));
        assert_eq!(
            follow_up.title,
            "Probe database-health is down; 2 dependents are failing"
        );
        assert!(
            follow_up
                .message
                .contains("2 dependents are failing: job-a (production), job-b (production)."),
            "{}",
            follow_up.message
        );
        let json = serde_json::to_value(&follow_up).unwrap();
        assert_eq!(
            json["dependents"],
            json!(["job-a (production)", "job-b (production)"])
        );
        assert_eq!(
            deduper.check("r", &follow_up, 2, t(2, 0)),
            Verdict::Send { suppressed: 0 }
        );
        // A plain repeat of the down alert is still held back.
        let again = probe("database-health", true, t(3, 0));
        assert_eq!(deduper.check("r", &again, 3, t(3, 0)), Verdict::Suppress);
    }

    #[test]
    fn dedup_keys_are_per_rule_and_subject() {
        let mut deduper = Deduper::new(Duration::from_secs(300));
        let a = probe("a", true, t(0, 0));
        let b = probe("b", true, t(0, 0));
        deduper.sent("r", &a, t(0, 0));
        assert_eq!(deduper.check("r", &a, 2, t(0, 1)), Verdict::Suppress);
        assert_eq!(
            deduper.check("r", &b, 3, t(0, 1)),
            Verdict::Send { suppressed: 0 }
        );
        assert_eq!(
            deduper.check("other", &a, 4, t(0, 1)),
            Verdict::Send { suppressed: 0 }
        );
        let mut noted = a.clone();
        noted.note_suppressed(2, Duration::from_secs(300));
        assert!(
            noted.message.ends_with(
                "\n(2 repeats of this alert were suppressed within the 5m dedup window.)"
            )
        );
    }

    #[test]
    fn digest_lists_each_subject_with_its_latest_state() {
        let payloads: Vec<Payload> = vec![
            Payload::Alert(probe("a", true, t(0, 0))),
            Payload::Alert(probe("b", true, t(0, 1))),
            Payload::Alert(probe("a", false, t(0, 2))),
            Payload::Alert(probe("a", true, t(0, 3))),
        ];
        let digest = Digest::collect(&payloads).unwrap();
        assert_eq!(digest.total, 4);
        assert_eq!((digest.since, digest.until), (t(0, 0), t(0, 3)));
        let lines: Vec<String> = digest.entries.iter().map(DigestEntry::line).collect();
        assert_eq!(
            lines,
            [
                "Probe a is down — probe.down → probe.up → probe.down (3 alerts)",
                "Probe b is down",
            ]
        );
        assert_eq!(digest.severity(), Severity::Critical);
        assert_eq!(
            digest.headline(),
            "4 alerts about 2 subjects (2 critical now) since 2026-05-01 03:00:00 UTC"
        );
        // A digest absorbs an earlier digest plus new alerts.
        let more = [
            Payload::Digest(digest),
            Payload::Alert(probe("b", false, t(0, 9))),
        ];
        let merged = Digest::collect(&more).unwrap();
        assert_eq!(merged.total, 5);
        assert_eq!(
            merged.entries[1].line(),
            "Probe b is up — probe.down → probe.up (2 alerts)"
        );
        assert_eq!(Digest::collect(&[]), None);
    }

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0ms"),
            (42, "42s"),
            (60, "1m"),
            (3_900, "1h 5m"),
            (3_605, "1h"),
            (90_061, "1d 1h"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want);
        }
        assert_eq!(redact_url("http://h/p"), "http://h/p");
        let key = MonitorKey {
            project: 2,
            slug: "a".into(),
            environment: "st age/x".into(),
        };
        assert_eq!(
            links().monitor(&key),
            "http://127.0.0.1:8470/monitors/2/a?environment=st%20age%2Fx"
        );
    }
}
