//! Uptime probes as a pure state machine (docs/configuration.md, `[[probes]]`): each check's [`Observation`] is
//! judged against the probe's [`Expectation`], folded into consecutive failure and success
//! counts, and `failure_threshold` failures in a row open the probe's incident (one
//! `probe.down`) while `success_threshold` successes in a row resolve it (one `probe.up`).
//!
//! *Must never* do I/O, read a clock or draw random numbers: the prober passes the time and the
//! id of every check. Nothing here knows HTTP clients or sled.
//!
//! # How probes map onto the monitor engine's types
//!
//! Incidents and effects are the monitor engine's own [`Incident`] and [`Effect`], so the store,
//! `GET /api/v1/incidents`, the dashboard and the outbox handle probes with no second code path.
//! Those types are shaped for monitor environments; a probe fills them like this:
//!
//! | field | for a probe |
//! |---|---|
//! | `key` | [`probe_key`]: project [`PROBE_PROJECT`] (0, which no configured project can have), `slug` = the probe name, `environment` empty |
//! | `kind` | [`IncidentKind::Probe`] |
//! | `id` | the id of the check that crossed `failure_threshold` (check ids are unique, so incident ids are; and it names the cause) |
//! | `reason` | `timeout` when that check timed out, else `error` |
//! | `failures` | the run of failures that opened it: timeouts as `timeout`, every other failure as `error`, `missed` 0 |
//! | `starting_checkin`, `starting_timestamp` | the first failed check of that run |
//! | `resolving_checkin` | the check that completed `success_threshold` |
//! | `notified` | `true`, unless its alert is held while a probe or monitor it depends on is failing ([`hold`], [`release`]) |
//!
//! Each effect comes with a [`ProbeNotice`]: what the `probe.down` / `probe.up` alert says
//! (name, URL without secrets, status code and error of the deciding check), from which the
//! prober's `alert::Planner` builds the alert it commits with the check.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::acknowledge::{AckRefusal, acknowledge_open};
use super::model::{Effect, FailureCounts, Incident, IncidentKind, IncidentReason, MonitorKey};

/// The `project` of every probe's [`MonitorKey`]. Configured projects are positive.
pub const PROBE_PROJECT: u64 = 0;

/// The key under which a probe's incidents are stored and listed.
pub fn probe_key(name: &str) -> MonitorKey {
    MonitorKey {
        project: PROBE_PROJECT,
        slug: name.to_owned(),
        environment: String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Judging one check

/// What the prober saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// An HTTP response arrived.
    Response {
        /// Its status code.
        status: u16,
        /// The start of its body (lossy UTF-8), read only when the [`Expectation`] needs it.
        body: Option<String>,
    },
    /// No complete answer within the probe's timeout.
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// No connection: refused, unresolvable name, TLS failure. A reason without the URL.
    ConnectFailed(String),
    /// The request failed after connecting (reset, malformed response). A reason without the
    /// URL.
    RequestFailed(String),
}

/// A JSON field that must have a given value: `expected_json = { path = "status", equals =
/// "healthy" }`.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonExpectation {
    path: String,
    equals: Value,
}

impl JsonExpectation {
    /// `path` is dot-separated object keys, with array indexes as numbers
    /// (`checks.database.status`, `items.0.id`); `equals` is a string, number or boolean.
    pub fn new(path: &str, equals: Value) -> Result<JsonExpectation, String> {
        let path = path.trim();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!(
                "`{path}` is not a field path; write object keys separated by dots, e.g. \"status\" or \"checks.database.status\""
            ));
        }
        if !matches!(equals, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return Err("`equals` must be a string, a number or a boolean".to_owned());
        }
        Ok(JsonExpectation {
            path: path.to_owned(),
            equals,
        })
    }

    /// The field path as written.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The value it must have.
    pub fn equals(&self) -> &Value {
        &self.equals
    }

    /// `Err` says, for a person, why `body` does not satisfy it.
    fn check(&self, body: &str) -> Result<(), String> {
        let document: Value =
            serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
        let mut value = &document;
        for segment in self.path.split('.') {
            let next = match value {
                Value::Object(map) => map.get(segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            value = next.ok_or_else(|| format!("JSON field `{}` is missing", self.path))?;
        }
        if json_equal(value, &self.equals) {
            Ok(())
        } else {
            Err(format!(
                "JSON field `{}` is {}, expected {}",
                self.path,
                clip(&value.to_string(), 100),
                self.equals
            ))
        }
    }
}

/// Numbers compare by value (`1` equals `1.0`), everything else structurally.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => a == b,
    }
}

/// What a probe expects of an answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// The status code that counts as up.
    pub status: u16,
    /// A substring the body must contain.
    pub body_contains: Option<String>,
    /// A JSON field the body must have.
    pub json: Option<JsonExpectation>,
}

impl Expectation {
    /// `status` only, no body condition.
    pub fn status(status: u16) -> Expectation {
        Expectation {
            status,
            body_contains: None,
            json: None,
        }
    }

    /// Whether judging needs the response body (otherwise the prober does not read it).
    pub fn reads_body(&self) -> bool {
        self.body_contains.is_some() || self.json.is_some()
    }

    /// Judges one observation: the status first, then the body conditions.
    pub fn judge(&self, observation: &Observation) -> Verdict {
        let fail = |outcome, status_code, error: String| Verdict {
            outcome,
            status_code,
            error: Some(error),
        };
        match observation {
            Observation::Response { status, body } => {
                let code = Some(*status);
                if *status != self.status {
                    return fail(
                        Outcome::UnexpectedStatus,
                        code,
                        format!("expected HTTP {}, got {status}", self.status),
                    );
                }
                let body = body.as_deref().unwrap_or_default();
                if let Some(needle) = &self.body_contains
                    && !body.contains(needle.as_str())
                {
                    return fail(
                        Outcome::BodyMismatch,
                        code,
                        format!("the body does not contain {:?}", clip(needle, 100)),
                    );
                }
                if let Some(json) = &self.json
                    && let Err(error) = json.check(body)
                {
                    return fail(Outcome::BodyMismatch, code, error);
                }
                Verdict {
                    outcome: Outcome::Ok,
                    status_code: code,
                    error: None,
                }
            }
            Observation::Timeout { after } => fail(
                Outcome::Timeout,
                None,
                format!("no answer within {}", humantime::format_duration(*after)),
            ),
            Observation::ConnectFailed(reason) => fail(Outcome::ConnectError, None, reason.clone()),
            Observation::RequestFailed(reason) => fail(Outcome::RequestError, None, reason.clone()),
        }
    }
}

/// How a check went. The `/metrics` label `result` is [`Outcome::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The expected status, and the body conditions hold.
    Ok,
    /// Another status.
    UnexpectedStatus,
    /// The expected status, but a body condition does not hold.
    BodyMismatch,
    /// No complete answer within the timeout.
    Timeout,
    /// No connection.
    ConnectError,
    /// The request failed after connecting.
    RequestError,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::UnexpectedStatus,
        Outcome::BodyMismatch,
        Outcome::Timeout,
        Outcome::ConnectError,
        Outcome::RequestError,
    ];

    /// The wire and metric label: `ok`, `unexpected_status`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UnexpectedStatus => "unexpected_status",
            Outcome::BodyMismatch => "body_mismatch",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::RequestError => "request_error",
        }
    }

    /// Whether the check counts as a success.
    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The judgement of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// How it went.
    pub outcome: Outcome,
    /// The response status, when there was a response.
    pub status_code: Option<u16>,
    /// What went wrong, for a person; `None` on success.
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// State

/// Where a probe stands. Changes only when a threshold is crossed; the consecutive counts show
/// the trend in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    /// Not established yet: neither threshold has been reached since the probe was created.
    #[default]
    Pending,
    /// Answering as expected.
    Up,
    /// Its incident is open.
    Down,
}

impl ProbeStatus {
    /// `pending`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStatus::Pending => "pending",
            ProbeStatus::Up => "up",
            ProbeStatus::Down => "down",
        }
    }
}

/// One check as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The check's id (chosen by the prober).
    pub id: Uuid,
    /// When the check started.
    pub at: DateTime<Utc>,
    /// How it went.
    pub outcome: Outcome,
    /// The response status, when there was a response.
    pub status_code: Option<u16>,
    /// How long the check took, in milliseconds with microsecond precision.
    pub latency_ms: f64,
    /// What went wrong, for a person.
    pub error: Option<String>,
}

/// State of one probe, persisted by the store under the probe's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeState {
    /// The probe's name.
    pub name: String,
    /// Where it stands; `Down` exactly when `open_incident` is set.
    pub status: ProbeStatus,
    /// When `status` last changed (`None` while pending).
    pub since: Option<DateTime<Utc>>,
    /// The current run of failures, by kind (see the module docs); empty after a success.
    pub failures: FailureCounts,
    /// The first failed check of that run: id and start time.
    pub first_failure: Option<(Uuid, DateTime<Utc>)>,
    /// Successes since the last failure.
    pub successes: u32,
    /// The open incident, if any; at most one.
    pub open_incident: Option<Incident>,
    /// The last check.
    pub last_result: Option<ProbeResult>,
    /// Checks recorded so far (the store numbers result slots with it).
    pub checks: u64,
    /// The dependents named by this probe's alerts during its open incident (see
    /// [`super::dependencies::fold`]); emptied when it recovers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<String>,
    /// Until when its alerts are held (a person snoozed it): checks, state and incidents go
    /// on, no alert is sent; an incident still open when it ends is alerted then, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<DateTime<Utc>>,
}

impl ProbeState {
    /// A probe that has never been checked.
    pub fn new(name: &str) -> ProbeState {
        ProbeState {
            name: name.to_owned(),
            status: ProbeStatus::Pending,
            since: None,
            failures: FailureCounts::default(),
            first_failure: None,
            successes: 0,
            open_incident: None,
            last_result: None,
            checks: 0,
            folded: Vec::new(),
            snoozed_until: None,
        }
    }

    /// Failures in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.total()
    }
}

/// What a probe's thresholds and expectations are (from `[[probes]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeRules {
    /// The URL as people may see it: without credentials, query or fragment
    /// ([`super::alerting::redact_url`]).
    pub url: String,
    /// Failures in a row that make it down.
    pub failure_threshold: u32,
    /// Successes in a row that make it up again.
    pub success_threshold: u32,
    /// What counts as a success.
    pub expect: Expectation,
}

/// One check, as the prober hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// A fresh id (the prober draws it).
    pub id: Uuid,
    /// When the request started.
    pub started: DateTime<Utc>,
    /// How long it took, until the answer or the failure.
    pub latency: Duration,
    /// What was seen.
    pub observation: Observation,
}

/// What a `probe.down` / `probe.up` alert says, as of the check that decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeNotice {
    /// `true`: `probe.down`; `false`: `probe.up`.
    pub down: bool,
    /// The probe's name.
    pub name: String,
    /// Its URL without credentials, query or fragment.
    pub url: String,
    /// Status of the deciding check.
    pub status_code: Option<u16>,
    /// Error of the deciding check.
    pub error: Option<String>,
    /// Down: the first failed check of the run. Up: when the incident opened.
    pub since: Option<DateTime<Utc>>,
}

/// An incident effect of a probe and what its alert says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeEffect {
    /// `IncidentOpened` or `IncidentResolved` (kind `Probe`).
    pub effect: Effect,
    /// The alert's content.
    pub notice: ProbeNotice,
}

/// The outcome of one check: store all of it in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeTransition {
    /// The probe's new state.
    pub state: ProbeState,
    /// The check as recorded.
    pub result: ProbeResult,
    /// At most one: the incident opened or resolved.
    pub effects: Vec<ProbeEffect>,
}

/// Folds one check into `state`. `now` is when the check finished.
///
/// - A failure ends any run of successes; when the run of failures reaches `failure_threshold`
///   and no incident is open, one opens (`probe.down`), from `Pending` or `Up` alike.
/// - A success ends any run of failures; when the run of successes reaches `success_threshold`
///   the open incident resolves (`probe.up`), or a pending probe becomes `Up` silently (a probe
///   that was never down has nothing to recover from).
/// - While down, further failures change only the counts: one alert per incident, not per check.
pub fn record_check(
    state: &ProbeState,
    rules: &ProbeRules,
    check: &Check,
    now: DateTime<Utc>,
) -> ProbeTransition {
    let verdict = rules.expect.judge(&check.observation);
    let result = ProbeResult {
        id: check.id,
        at: check.started,
        outcome: verdict.outcome,
        status_code: verdict.status_code,
        // Microsecond precision: enough for loopback, and no float noise in the API.
        latency_ms: check.latency.as_micros() as f64 / 1000.0,
        error: verdict.error,
    };
    let mut next = state.clone();
    next.checks = next.checks.saturating_add(1);
    next.last_result = Some(result.clone());
    let mut effects = Vec::new();
    let notice = |down: bool, since: Option<DateTime<Utc>>| ProbeNotice {
        down,
        name: state.name.clone(),
        url: rules.url.clone(),
        status_code: result.status_code,
        error: result.error.clone(),
        since,
    };

    if result.outcome.is_ok() {
        next.failures = FailureCounts::default();
        next.first_failure = None;
        next.successes = next.successes.saturating_add(1);
        if next.successes >= rules.success_threshold {
            if let Some(mut incident) = next.open_incident.take() {
                incident.resolved_at = Some(now);
                incident.resolving_checkin = Some(result.id);
                let since = Some(incident.opened_at);
                next.folded.clear();
                // A down alert held for a dependency and never sent: its recovery is not news.
                let notify = incident.notified;
                effects.push(ProbeEffect {
                    effect: Effect::IncidentResolved { incident, notify },
                    notice: notice(false, since),
                });
            }
            if next.status != ProbeStatus::Up {
                next.status = ProbeStatus::Up;
                next.since = Some(now);
            }
        }
    } else {
        next.successes = 0;
        let timed_out = result.outcome == Outcome::Timeout;
        if timed_out {
            next.failures.timeout = next.failures.timeout.saturating_add(1);
        } else {
            next.failures.error = next.failures.error.saturating_add(1);
        }
        let (starting_checkin, starting_timestamp) =
            *next.first_failure.get_or_insert((result.id, result.at));
        if next.failures.total() >= rules.failure_threshold && next.open_incident.is_none() {
            let incident = Incident {
                id: result.id,
                key: probe_key(&state.name),
                kind: IncidentKind::Probe,
                opened_at: now,
                resolved_at: None,
                reason: if timed_out {
                    IncidentReason::Timeout
                } else {
                    IncidentReason::Error
                },
                starting_checkin,
                starting_timestamp,
                resolving_checkin: None,
                failures: next.failures,
                notified: true,
                handling: Default::default(),
            };
            next.open_incident = Some(incident.clone());
            next.status = ProbeStatus::Down;
            next.since = Some(now);
            effects.push(ProbeEffect {
                effect: Effect::IncidentOpened {
                    incident,
                    notify: true,
                },
                notice: notice(true, Some(starting_timestamp)),
            });
        }
    }
    ProbeTransition {
        state: next,
        result,
        effects,
    }
}

/// Holds the alert of the incident `transition` opens (a probe or monitor the probe depends on
/// is failing, [`super::dependencies`]): the incident is tracked, not announced, until
/// [`release`] finds none of its dependencies failing.
pub fn hold(transition: &mut ProbeTransition) {
    for effect in &mut transition.effects {
        if let Effect::IncidentOpened { incident, notify } = &mut effect.effect {
            *notify = false;
            incident.notified = false;
        }
    }
    if let Some(open) = &mut transition.state.open_incident
        && transition.effects.iter().any(|e| matches!(&e.effect, Effect::IncidentOpened { incident, .. } if incident.id == open.id))
    {
        open.notified = false;
    }
}

/// The held down alert of a probe that is still down once nothing it depends on fails
/// (`blocked` false): marks it announced and returns what the alert says; `None` when nothing
/// is held or it is still blocked. Sent once: the incident is announced from then on.
pub fn release(state: &mut ProbeState, rules: &ProbeRules, blocked: bool) -> Option<ProbeNotice> {
    let incident = state.open_incident.as_mut()?;
    if incident.notified || blocked {
        return None;
    }
    incident.notified = true;
    let last = state.last_result.as_ref();
    Some(ProbeNotice {
        down: true,
        name: state.name.clone(),
        url: rules.url.clone(),
        status_code: last.and_then(|r| r.status_code),
        error: last.and_then(|r| r.error.clone()),
        since: Some(incident.starting_timestamp),
    })
}

/// A probe that left the config: its open incident (if any) resolves *without* an alert
/// (`notify: false`), since nobody watches that URL any more; an incident must not stay open
/// forever. The caller then deletes the probe's state and results.
pub fn retire(state: &ProbeState, url: &str, now: DateTime<Utc>) -> Option<ProbeEffect> {
    let mut incident = state.open_incident.clone()?;
    incident.resolved_at = Some(now);
    let since = Some(incident.opened_at);
    Some(ProbeEffect {
        effect: Effect::IncidentResolved {
            incident,
            notify: false,
        },
        notice: ProbeNotice {
            down: false,
            name: state.name.clone(),
            url: url.to_owned(),
            status_code: None,
            error: Some("the probe was removed from the configuration".to_owned()),
            since,
        },
    })
}

/// Acknowledges the probe's open incident `id` as `by` at `now` ("I'm on it"): the
/// acknowledgement is kept on the incident, so the recovery (`probe.up`) names who was on it.
/// The name is trimmed and cut at [`MAX_ACK_NAME`] characters. Returns the new state (the
/// prober writes it through its own write path, so the next check keeps it) and the incident
/// as acknowledged.
pub fn acknowledge(
    state: &ProbeState,
    id: Uuid,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(ProbeState, Incident), AckRefusal> {
    let mut next = state.clone();
    let incident = acknowledge_open(&mut next.open_incident, id, by, now)?;
    Ok((next, incident))
}

/// Whether the probe is snoozed at `now`.
pub fn snoozed(state: &ProbeState, now: DateTime<Utc>) -> bool {
    state.snoozed_until.is_some_and(|until| now < until)
}

/// Snoozes the probe until `until` (`None` ends a snooze). What happens at its checks while
/// snoozed is [`quiet`]'s.
pub fn snooze(state: &ProbeState, until: Option<DateTime<Utc>>) -> ProbeState {
    let mut next = state.clone();
    next.snoozed_until = until;
    next
}

/// A check of a snoozed probe: its incident opens or resolves as usual, but nothing is
/// announced; an incident opened now stays unannounced (its recovery too) until [`release`]
/// sends its alert once the snooze is over.
pub fn quiet(transition: &mut ProbeTransition) {
    hold(transition);
    for effect in &mut transition.effects {
        if let Effect::IncidentResolved { notify, .. } = &mut effect.effect {
            *notify = false;
        }
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use serde_json::json;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn rules(failure_threshold: u32, success_threshold: u32) -> ProbeRules {
        ProbeRules {
            url: "http://127.0.0.1:8080/health".to_owned(),
            failure_threshold,
            success_threshold,
            expect: Expectation::status(200),
        }
    }

    /// `200`, `503`, `refused`, `timeout`: one check each.
    fn observation(word: &str) -> Observation {
        match word {
            "refused" => Observation::ConnectFailed("connection refused".to_owned()),
            "timeout" => Observation::Timeout {
                after: Duration::from_secs(2),
            },
            "reset" => Observation::RequestFailed("connection reset".to_owned()),
            code => Observation::Response {
                status: code.parse().expect("a status code"),
                body: None,
            },
        }
    }

    /// Runs `steps` (one check per second) and prints one line per check: the check, the
    /// status after it, the counts, and the effect if any.
    fn trace(rules: &ProbeRules, steps: &str) -> String {
        let mut state = ProbeState::new("api");
        let mut out = String::new();
        for (i, word) in steps.split_whitespace().enumerate() {
            let second = i as i64;
            let check = Check {
                id: Uuid::from_u128(i as u128 + 1),
                started: t(second),
                latency: Duration::from_millis(5),
                observation: observation(word),
            };
            let transition = record_check(&state, rules, &check, t(second));
            state = transition.state;
            let _ = write!(
                out,
                "{word:>7} -> {:<7} f{} s{}",
                state.status.as_str(),
                state.consecutive_failures(),
                state.successes
            );
            for ProbeEffect { effect, notice } in &transition.effects {
                match effect {
                    Effect::IncidentOpened { incident, notify } => {
                        let _ = write!(
                            out,
                            " | probe.down #{} since {} {:?} notify={notify}",
                            incident.id.as_u128(),
                            (incident.starting_timestamp - t(0)).num_seconds(),
                            incident.reason
                        );
                        assert_eq!(notice.since, Some(incident.starting_timestamp));
                    }
                    Effect::IncidentResolved { incident, notify } => {
                        let _ = write!(
                            out,
                            " | probe.up #{} by #{} notify={notify}",
                            incident.id.as_u128(),
                            incident.resolving_checkin.unwrap().as_u128()
                        );
                        assert!(!notice.down);
                    }
                }
            }
            assert_eq!(
                state.status == ProbeStatus::Down,
                state.open_incident.is_some()
            );
            out.push('\n');
        }
        out
    }

    fn check_trace(rules: &ProbeRules, steps: &str, expected: &str) {
        let actual = trace(rules, steps);
        let expected: String = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        let actual: String = actual.lines().map(|l| format!("{}\n", l.trim())).collect();
        assert_eq!(actual, expected, "\nactual:\n{actual}");
    }

    #[test]
    fn one_down_and_one_up_at_the_thresholds() {
        check_trace(
            &rules(2, 2),
            "200 200 503 refused refused 503 200 503 200 200 200",
            "
                200 -> pending f0 s1
                200 -> up      f0 s2
                503 -> up      f1 s0
            refused -> down    f2 s0 | probe.down #4 since 2 Error notify=true
            refused -> down    f3 s0
                503 -> down    f4 s0
                200 -> down    f0 s1
                503 -> down    f1 s0
                200 -> down    f0 s1
                200 -> up      f0 s2 | probe.up #4 by #10 notify=true
                200 -> up      f0 s3
            ",
        );
    }

    #[test]
    fn a_failure_below_the_threshold_is_forgotten_after_a_success() {
        check_trace(
            &rules(3, 1),
            "200 503 503 200 503 503 timeout",
            "
                200 -> up      f0 s1
                503 -> up      f1 s0
                503 -> up      f2 s0
                200 -> up      f0 s1
                503 -> up      f1 s0
                503 -> up      f2 s0
            timeout -> down    f3 s0 | probe.down #7 since 4 Timeout notify=true
            ",
        );
    }

    #[test]
    fn a_pending_probe_goes_down_without_ever_being_up_and_up_silently() {
        check_trace(
            &rules(1, 1),
            "reset 200",
            "
                reset -> down    f1 s0 | probe.down #1 since 0 Error notify=true
                  200 -> up      f0 s1 | probe.up #1 by #2 notify=true
            ",
        );
        check_trace(
            &rules(2, 3),
            "200 200 200 200",
            "
                200 -> pending f0 s1
                200 -> pending f0 s2
                200 -> up      f0 s3
                200 -> up      f0 s4
            ",
        );
    }

    #[test]
    fn the_incident_maps_onto_the_monitor_types() {
        let rules = rules(2, 1);
        let mut state = ProbeState::new("api health");
        let mut effects = Vec::new();
        for (i, word) in ["timeout", "503", "200"].iter().enumerate() {
            let check = Check {
                id: Uuid::from_u128(100 + i as u128),
                started: t(10 * i as i64),
                latency: Duration::from_millis(1500),
                observation: observation(word),
            };
            let transition = record_check(&state, &rules, &check, t(10 * i as i64 + 2));
            state = transition.state;
            effects.extend(transition.effects);
        }
        let [opened, resolved] = effects.as_slice() else {
            panic!("{effects:?}")
        };
        let Effect::IncidentOpened { incident, notify } = &opened.effect else {
            panic!("{opened:?}")
        };
        assert!(*notify);
        assert_eq!(incident.id, Uuid::from_u128(101));
        assert_eq!(incident.key, probe_key("api health"));
        assert_eq!(incident.key.project, PROBE_PROJECT);
        assert_eq!(incident.kind, IncidentKind::Probe);
        assert_eq!(incident.reason, IncidentReason::Error);
        assert_eq!(incident.opened_at, t(12));
        assert_eq!(incident.starting_checkin, Uuid::from_u128(100));
        assert_eq!(incident.starting_timestamp, t(0));
        assert_eq!(
            incident.failures,
            FailureCounts {
                missed: 0,
                timeout: 1,
                error: 1
            }
        );
        assert_eq!(
            opened.notice,
            ProbeNotice {
                down: true,
                name: "api health".to_owned(),
                url: rules.url,
                status_code: Some(503),
                error: Some("expected HTTP 200, got 503".to_owned()),
                since: Some(t(0)),
            }
        );
        let Effect::IncidentResolved { incident, .. } = &resolved.effect else {
            panic!("{resolved:?}")
        };
        assert_eq!(incident.resolved_at, Some(t(22)));
        assert_eq!(incident.resolving_checkin, Some(Uuid::from_u128(102)));
        assert_eq!(resolved.notice.since, Some(t(12)));
        assert_eq!(resolved.notice.status_code, Some(200));
        assert_eq!(resolved.notice.error, None);
        let change = resolved.notice.clone();
        assert!(!change.down);
        assert_eq!(change.since, Some(t(12)));
        let last = state.last_result.as_ref().unwrap();
        assert_eq!(last.latency_ms, 1500.0);
        assert_eq!(state.checks, 3);
        assert_eq!(state.since, Some(t(22)));
    }

    #[test]
    fn retiring_resolves_silently() {
        let rules = rules(1, 1);
        let check = Check {
            id: Uuid::from_u128(1),
            started: t(0),
            latency: Duration::ZERO,
            observation: observation("500"),
        };
        let down = record_check(&ProbeState::new("gone"), &rules, &check, t(0)).state;
        let retired = retire(&down, &rules.url, t(60)).expect("an open incident");
        let Effect::IncidentResolved { incident, notify } = retired.effect else {
            panic!()
        };
        assert!(!notify);
        assert_eq!(incident.resolved_at, Some(t(60)));
        assert!(retire(&ProbeState::new("idle"), &rules.url, t(60)).is_none());
    }

    /// A probe whose dependency is down: its own down alert is held, released once (when the
    /// dependency is up and it is still down), and a recovery of a never-announced incident
    /// is silent.
    #[test]
    fn a_held_down_alert_is_released_once_and_an_unannounced_recovery_is_silent() {
        let rules = rules(1, 1);
        let check = |i: u128, word: &str| Check {
            id: Uuid::from_u128(i),
            started: t(i as i64),
            latency: Duration::ZERO,
            observation: observation(word),
        };
        let mut down = record_check(&ProbeState::new("api"), &rules, &check(1, "503"), t(1));
        hold(&mut down);
        assert!(matches!(
            down.effects[0].effect,
            Effect::IncidentOpened { notify: false, .. }
        ));
        let mut state = down.state;
        assert!(!state.open_incident.as_ref().unwrap().notified);
        assert_eq!(release(&mut state, &rules, true), None, "still blocked");
        let notice = release(&mut state, &rules, false).expect("released");
        assert!(notice.down);
        assert_eq!(notice.status_code, Some(503));
        assert_eq!(notice.since, Some(t(1)));
        assert_eq!(release(&mut state, &rules, false), None, "once");
        let up = record_check(&state, &rules, &check(2, "200"), t(2));
        assert!(matches!(
            up.effects[0].effect,
            Effect::IncidentResolved { notify: true, .. }
        ));

        let mut held = record_check(&ProbeState::new("api"), &rules, &check(1, "503"), t(1));
        hold(&mut held);
        let up = record_check(&held.state, &rules, &check(2, "200"), t(2));
        assert!(matches!(
            up.effects[0].effect,
            Effect::IncidentResolved { notify: false, .. }
        ));
    }

    /// One row per observation: what the verdict says.
    #[test]
    fn judging_answers() {
        let response = |status: u16, body: &str| Observation::Response {
            status,
            body: Some(body.to_owned()),
        };
        let healthy = JsonExpectation::new("status", json!("healthy")).unwrap();
        let nested = JsonExpectation::new("checks.db.latency_ms", json!(5)).unwrap();
        let indexed = JsonExpectation::new("items.1.ok", json!(true)).unwrap();
        let expect = |body_contains: Option<&str>, json: Option<&JsonExpectation>| Expectation {
            status: 200,
            body_contains: body_contains.map(str::to_owned),
            json: json.cloned(),
        };
        let cases: Vec<(Expectation, Observation, Outcome, Option<&str>)> = vec![
            (
                Expectation::status(200),
                response(200, ""),
                Outcome::Ok,
                None,
            ),
            (
                Expectation::status(301),
                response(301, ""),
                Outcome::Ok,
                None,
            ),
            (
                Expectation::status(200),
                response(301, ""),
                Outcome::UnexpectedStatus,
                Some("expected HTTP 200, got 301"),
            ),
            (
                expect(Some("ok"), None),
                response(200, "all ok"),
                Outcome::Ok,
                None,
            ),
            (
                expect(Some("ok"), None),
                response(503, "ok"),
                Outcome::UnexpectedStatus,
                Some("expected HTTP 200, got 503"),
            ),
            (
                expect(Some("ok"), None),
                response(200, "fine"),
                Outcome::BodyMismatch,
                Some("the body does not contain \"ok\""),
            ),
            (
                expect(None, Some(&healthy)),
                response(200, r#"{"status":"healthy"}"#),
                Outcome::Ok,
                None,
            ),
            (
                expect(None, Some(&healthy)),
                response(200, r#"{"status":"degraded"}"#),
                Outcome::BodyMismatch,
                Some("JSON field `status` is \"degraded\", expected \"healthy\""),
            ),
            (
                expect(None, Some(&healthy)),
                response(200, r#"{"state":"healthy"}"#),
                Outcome::BodyMismatch,
                Some("JSON field `status` is missing"),
            ),
            (
                expect(None, Some(&healthy)),
                response(200, "<html>"),
                Outcome::BodyMismatch,
                Some("the body is not JSON (expected value at line 1 column 1)"),
            ),
            (
                expect(None, Some(&nested)),
                response(200, r#"{"checks":{"db":{"latency_ms":5.0}}}"#),
                Outcome::Ok,
                None,
            ),
            (
                expect(None, Some(&indexed)),
                response(200, r#"{"items":[{"ok":false},{"ok":true}]}"#),
                Outcome::Ok,
                None,
            ),
            (
                expect(None, Some(&indexed)),
                response(200, r#"{"items":[{"ok":true}]}"#),
                Outcome::BodyMismatch,
                Some("JSON field `items.1.ok` is missing"),
            ),
            (
                Expectation::status(200),
                observation("timeout"),
                Outcome::Timeout,
                Some("no answer within 2s"),
            ),
            (
                Expectation::status(200),
                observation("refused"),
                Outcome::ConnectError,
                Some("connection refused"),
            ),
            (
                Expectation::status(200),
                observation("reset"),
                Outcome::RequestError,
                Some("connection reset"),
            ),
        ];
        let mut failures = Vec::new();
        for (expect, observation, outcome, error) in cases {
            let verdict = expect.judge(&observation);
            if verdict.outcome != outcome || verdict.error.as_deref() != error {
                failures.push(format!(
                    "{observation:?}: got {verdict:?}, expected {outcome:?} {error:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn json_expectations_are_validated() {
        assert!(JsonExpectation::new("", json!("x")).is_err());
        assert!(JsonExpectation::new("a..b", json!("x")).is_err());
        assert!(JsonExpectation::new("a", json!(["x"])).is_err());
        assert!(JsonExpectation::new("a", json!({"b": 1})).is_err());
        assert_eq!(
            JsonExpectation::new(" a.b ", json!(1)).unwrap().path(),
            "a.b"
        );
    }

    #[test]
    fn long_values_are_clipped_in_messages() {
        let expect = Expectation {
            status: 200,
            body_contains: None,
            json: Some(JsonExpectation::new("s", json!("ok")).unwrap()),
        };
        let body = json!({ "s": "é".repeat(500) }).to_string();
        let verdict = expect.judge(&Observation::Response {
            status: 200,
            body: Some(body),
        });
        let error = verdict.error.unwrap();
        assert!(error.chars().count() < 160, "{error}");
        assert!(error.contains('…'));
    }
}
