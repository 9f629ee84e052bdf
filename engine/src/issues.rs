//! Error events become issues: grouping by fingerprint, counting, status, and the three issue
//! alerts (`issue.first_seen`, `issue.regressed`, `issue.spike`) as [`IssueEffect`]s.
//!
//! *Architecture invariant:* pure like the rest of the engine: no I/O, no clock (time is the
//! `now` parameter: the receive time, never the client's clock), no randomness. Issue ids are a
//! hash of the project and the fingerprint, so grouping needs no lookup table.
//!
//! # Grouping
//!
//! An event's fingerprint is a list of strings; equal lists are one issue. In order of
//! precedence (Sentry's):
//!
//! 1. The event's own `fingerprint`, where an entry `{{ default }}` expands to the default
//!    grouping below (and `{{ transaction }}`, `{{ type }}`, `{{ message }}`, `{{ level }}`,
//!    `{{ logger }}` to those fields); other entries are taken literally.
//! 2. **Stack**: when any exception of the chain has in-app frames, for every exception: its
//!    type (unless `mechanism.synthetic`) and its innermost [`STACK_DEPTH`] in-app frames, each
//!    as `module-or-filename | function` (or the path-qualified function alone, in Rust). Line numbers, columns, absolute paths, addresses and
//!    the exception value are left out, so a new release (lines moved) or another thread is the
//!    same issue. Function names are normalized: Rust symbol hashes (`::h0123…`) and closure
//!    markers (`{{closure}}`, `{closure#0}`) are dropped and repeated frames (recursion, a
//!    closure inside its function) collapse. Only the innermost frames count because the
//!    outer ones are the *route* to the bug (a thread's entry point, a spawn closure, a
//!    request router), which differs between threads and callers of the same broken code.
//! 3. **Exception**: otherwise every exception's type and normalized value.
//! 4. **Message**: otherwise the normalized message.
//!
//! *Normalized* replaces the parts of a text that vary between occurrences of one error:
//! UUIDs → `<uuid>`, `0x…` and long hex strings (8+ hex digits with at least one digit) →
//! `<hex>`, integers → `<int>`. So `user 42 not found` and `user 7 not found` are one issue,
//! `KeyError: 'missing'` and `KeyError: 'other'` are two. The title keeps the text as sent.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::ids::Fnv128;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use watchpost_protocol::{Event, Exception, Frame, Level};

/// In-app frames per exception that take part in stack grouping, counted from the crashing
/// frame outwards.
pub const STACK_DEPTH: usize = 3;

/// Most characters of an issue title.
pub const MAX_TITLE_CHARS: usize = 200;

/// Buckets a spike window is divided into: the sliding window is exact to `window / 60`, and
/// the state per issue and rule stays this small whatever the threshold.
pub const SPIKE_BUCKETS: u32 = 60;

/// The environment of an event that names none.
const DEFAULT_ENVIRONMENT: &str = "production";

/// Whether an issue alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueStatus {
    /// New or open: alerts on a spike.
    Unresolved,
    /// Marked fixed: the next event regresses it.
    Resolved,
    /// Counted, never alerts.
    Ignored,
}

/// A group of events with one fingerprint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// 32 hex digits: a hash of the project and the fingerprint (see [`issue_id`]).
    pub id: String,
    /// Project id.
    pub project: u64,
    /// The fingerprint the id was derived from, for people debugging grouping.
    pub fingerprint: Vec<String>,
    /// `"KeyError: 'missing'"`, or the message; from the first event.
    pub title: String,
    /// Where it happens: the innermost in-app frame, else the transaction, else what the SDK
    /// said.
    pub culprit: Option<String>,
    /// Level of the latest event.
    pub level: Level,
    /// Whether it alerts.
    pub status: IssueStatus,
    /// When its first event was received.
    pub first_seen: DateTime<Utc>,
    /// When its latest event was received (never moves back).
    pub last_seen: DateTime<Utc>,
    /// Events received.
    pub count: u64,
    /// Environment of the latest event.
    pub environment: String,
    /// Release of the latest event.
    pub release: Option<String>,
    /// When it was last resolved, while it is resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Recent event counts per spike rule (by rule name).
    pub spikes: BTreeMap<String, SpikeState>,
}

/// An `issue.spike` rule: more than `threshold` events within `window`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpikeRule {
    /// The rule's name; the spike is routed by that rule only.
    pub name: String,
    /// Events in the window that are not yet a spike.
    pub threshold: u32,
    /// The sliding window.
    pub window: Duration,
}

/// Recent events of one issue for one spike rule, in [`SPIKE_BUCKETS`] time buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpikeState {
    /// Bucket width in milliseconds (the rule's window / [`SPIKE_BUCKETS`]); a change of the
    /// rule's window starts the count afresh.
    pub bucket_ms: i64,
    /// `(bucket index since the epoch, events)`, oldest first, only buckets inside the window.
    pub buckets: VecDeque<(i64, u32)>,
    /// When the spike last fired: it fires again only a full window later.
    pub fired_at: Option<DateTime<Utc>>,
}

/// Something about an issue a person should hear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IssueEffect {
    /// The first event of a new issue: `issue.first_seen`.
    FirstSeen,
    /// A resolved issue saw a new event and is unresolved again: `issue.regressed`.
    Regressed {
        /// When it had been resolved.
        resolved_at: Option<DateTime<Utc>>,
    },
    /// More than `threshold` events within `window`: `issue.spike`, once per window.
    Spike {
        /// The spike rule that fired; only that rule routes the alert.
        rule: String,
        /// Events within the window.
        count: u32,
        /// The rule's threshold.
        threshold: u32,
        /// The rule's window.
        #[serde(with = "millis")]
        window: Duration,
    },
}

/// An issue status that is not one of `unresolved`, `resolved`, `ignored`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown issue status `{0}`; use unresolved, resolved or ignored")]
pub struct UnknownStatus(pub String);

impl IssueStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Unresolved => "unresolved",
            IssueStatus::Resolved => "resolved",
            IssueStatus::Ignored => "ignored",
        }
    }
}

impl fmt::Display for IssueStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IssueStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unresolved" => Ok(IssueStatus::Unresolved),
            "resolved" => Ok(IssueStatus::Resolved),
            "ignored" => Ok(IssueStatus::Ignored),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// The fingerprint of an event (see the module docs for the rules).
pub fn fingerprint(event: &Event) -> Vec<String> {
    let Some(custom) = event.fingerprint.as_ref().filter(|f| !f.is_empty()) else {
        return default_grouping(event);
    };
    let mut out = Vec::with_capacity(custom.len());
    for entry in custom {
        match variable(entry) {
            Some("default") => out.extend(default_grouping(event)),
            Some("transaction") => out.push(event.transaction.clone().unwrap_or_default()),
            Some("type" | "error.type") => out.push(
                event
                    .exceptions()
                    .last()
                    .and_then(|e| e.ty.clone())
                    .unwrap_or_default(),
            ),
            Some("message") => out.push(normalize(&message_or_value(event).unwrap_or_default())),
            Some("level") => out.push(level(event).to_string()),
            Some("logger") => out.push(event.logger.clone().unwrap_or_default()),
            _ => out.push(entry.clone()),
        }
    }
    out
}

/// The issue id for a fingerprint in a project: 32 hex digits (FNV-1a 128 over the project and
/// the length-prefixed entries), stable across releases and restarts.
pub fn issue_id(project: u64, fingerprint: &[String]) -> String {
    let mut hash = Fnv128::new();
    hash.write(&project.to_le_bytes());
    for entry in fingerprint {
        hash.write_str(entry);
    }
    format!("{:032x}", hash.finish())
}

/// The id of the issue `event` belongs to: what the store looks the issue up by before calling
/// [`process_event`].
pub fn event_issue_id(project: u64, event: &Event) -> String {
    issue_id(project, &fingerprint(event))
}

/// Folds one event into its issue (`None` when the issue is new) at receive time `now`.
///
/// - A new issue starts `unresolved` with [`IssueEffect::FirstSeen`].
/// - A `resolved` issue becomes `unresolved` with one [`IssueEffect::Regressed`].
/// - For every spike rule: [`IssueEffect::Spike`] when the events within the rule's window
///   (this one included) exceed its threshold and it has not fired within the last window.
/// - An `ignored` issue is counted but never produces an effect.
///
/// `issue`, when given, must be the one stored under [`event_issue_id`]. Spike state of rules
/// that no longer exist is dropped.
pub fn process_event(
    issue: Option<Issue>,
    event: &Event,
    project: u64,
    now: DateTime<Utc>,
    spike_rules: &[SpikeRule],
) -> (Issue, Vec<IssueEffect>) {
    let mut effects = Vec::new();
    let mut issue = match issue {
        Some(mut issue) => {
            debug_assert_eq!(issue.id, event_issue_id(project, event));
            issue.count = issue.count.saturating_add(1);
            issue.last_seen = issue.last_seen.max(now);
            issue.level = level(event);
            issue.environment = environment(event);
            if event.release.is_some() {
                issue.release.clone_from(&event.release);
            }
            if issue.status == IssueStatus::Resolved {
                issue.status = IssueStatus::Unresolved;
                effects.push(IssueEffect::Regressed {
                    resolved_at: issue.resolved_at.take(),
                });
            }
            issue
        }
        None => {
            let fingerprint = fingerprint(event);
            effects.push(IssueEffect::FirstSeen);
            Issue {
                id: issue_id(project, &fingerprint),
                project,
                fingerprint,
                title: title(event),
                culprit: culprit(event),
                level: level(event),
                status: IssueStatus::Unresolved,
                first_seen: now,
                last_seen: now,
                count: 1,
                environment: environment(event),
                release: event.release.clone(),
                resolved_at: None,
                spikes: BTreeMap::new(),
            }
        }
    };
    issue
        .spikes
        .retain(|name, _| spike_rules.iter().any(|rule| &rule.name == name));
    for rule in spike_rules {
        let state = issue.spikes.entry(rule.name.clone()).or_default();
        if let Some(count) = state.record(rule, now) {
            effects.push(IssueEffect::Spike {
                rule: rule.name.clone(),
                count,
                threshold: rule.threshold,
                window: rule.window,
            });
        }
    }
    if issue.status == IssueStatus::Ignored {
        effects.clear();
    }
    (issue, effects)
}

/// Changes an issue's status by hand (the API's resolve / ignore / unresolve). Resolving
/// records `now`, so the next event regresses it; any other change forgets that.
pub fn set_status(issue: &mut Issue, status: IssueStatus, now: DateTime<Utc>) {
    issue.resolved_at = match status {
        IssueStatus::Resolved if issue.status == IssueStatus::Resolved => issue.resolved_at,
        IssueStatus::Resolved => Some(now),
        IssueStatus::Unresolved | IssueStatus::Ignored => None,
    };
    issue.status = status;
}

impl SpikeState {
    /// Counts one event at `now`; returns the count within the window when it makes a spike
    /// that should be announced.
    fn record(&mut self, rule: &SpikeRule, now: DateTime<Utc>) -> Option<u32> {
        let window_ms = i64::try_from(rule.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let bucket_ms = (window_ms / i64::from(SPIKE_BUCKETS)).max(1);
        if bucket_ms != self.bucket_ms {
            *self = SpikeState {
                bucket_ms,
                ..SpikeState::default()
            };
        }
        let index = now.timestamp_millis().div_euclid(bucket_ms);
        // Buckets (index - span, index] cover the window (to within one bucket).
        let span = (window_ms + bucket_ms - 1) / bucket_ms;
        while self
            .buckets
            .front()
            .is_some_and(|&(i, _)| i <= index - span)
        {
            self.buckets.pop_front();
        }
        match self.buckets.back_mut() {
            Some((i, n)) if *i == index => *n = n.saturating_add(1),
            // A receive time behind the newest bucket (clock step back): count it there.
            Some((i, n)) if *i > index => *n = n.saturating_add(1),
            _ => self.buckets.push_back((index, 1)),
        }
        let count = self
            .buckets
            .iter()
            .fold(0u32, |sum, &(_, n)| sum.saturating_add(n));
        let window = TimeDelta::from_std(rule.window).unwrap_or(TimeDelta::MAX);
        let quiet = self
            .fired_at
            .is_none_or(|at| at.checked_add_signed(window).is_none_or(|next| now >= next));
        (count > rule.threshold && quiet).then(|| {
            self.fired_at = Some(now);
            count
        })
    }
}

/// The default grouping: stack, else exception, else message.
fn default_grouping(event: &Event) -> Vec<String> {
    let exceptions = event.exceptions();
    let has_app_frames = exceptions.iter().any(|e| app_frames(e).next().is_some());
    let mut out = Vec::new();
    if has_app_frames {
        out.push("stack".to_owned());
        for exception in exceptions {
            out.push(exception_type(exception));
            let mut frames: Vec<String> = Vec::new();
            for frame in app_frames(exception).rev() {
                let label = frame_label(frame);
                if frames.last() != Some(&label) {
                    frames.push(label);
                }
                if frames.len() == STACK_DEPTH {
                    break;
                }
            }
            frames.reverse();
            out.extend(frames);
        }
    } else if !exceptions.is_empty() {
        out.push("exception".to_owned());
        for exception in exceptions {
            out.push(exception_type(exception));
            out.push(normalize(exception.value.as_deref().unwrap_or_default()));
        }
    } else if let Some(message) = event.message_text() {
        out.push("message".to_owned());
        out.push(normalize(message));
    } else {
        out.push("empty".to_owned());
    }
    out
}

/// `{{ name }}` → `name` (Sentry's `^\{\{\s*(\S+)\s*\}\}$`).
fn variable(entry: &str) -> Option<&str> {
    let inner = entry.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    (!inner.is_empty() && !inner.contains(char::is_whitespace)).then_some(inner)
}

fn level(event: &Event) -> Level {
    event.level.unwrap_or(Level::Error)
}

fn environment(event: &Event) -> String {
    event
        .environment
        .clone()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned())
}

/// The exception type, empty when the SDK synthesized it (Sentry ignores those types).
fn exception_type(exception: &Exception) -> String {
    let synthetic = exception
        .mechanism
        .as_ref()
        .and_then(|m| m.other.get("synthetic"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if synthetic {
        String::new()
    } else {
        exception.ty.clone().unwrap_or_default()
    }
}

/// In-app frames, oldest first.
fn app_frames(exception: &Exception) -> impl DoubleEndedIterator<Item = &Frame> {
    exception
        .stacktrace
        .iter()
        .flat_map(|s| s.frames.iter())
        .filter(|f| f.in_app == Some(true))
}

/// `module-or-filename|function`, without anything that changes between builds. A
/// path-qualified function (`app::jobs::run`, Rust) names its module already and stands alone:
/// SDKs disagree on the `module` of closures and trait impls.
fn frame_label(frame: &Frame) -> String {
    let function = frame
        .function
        .as_deref()
        .map(normalize_function)
        .unwrap_or_default();
    if function.contains("::") {
        return function;
    }
    let location = frame
        .module
        .as_deref()
        .or_else(|| {
            frame
                .filename
                .as_deref()
                .map(|f| f.trim_start_matches("./"))
        })
        .unwrap_or_default();
    format!("{location}|{function}")
}

/// Drops the Rust symbol hash and closure markers: `app::run::{{closure}}::h0123456789abcdef`
/// → `app::run`.
fn normalize_function(function: &str) -> String {
    let function = match function.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => function,
    };
    let segments: Vec<&str> = function
        .split("::")
        .filter(|s| *s != "{{closure}}" && !(s.starts_with("{closure#") && s.ends_with('}')))
        .collect();
    segments.join("::")
}

/// The title: `Type: value` of the outermost exception, else the message.
fn title(event: &Event) -> String {
    let text = match event.exceptions().last() {
        Some(e) => match (e.ty.as_deref(), e.value.as_deref()) {
            (Some(ty), Some(value)) if !value.is_empty() => format!("{ty}: {value}"),
            (Some(ty), _) => ty.to_owned(),
            (None, Some(value)) => value.to_owned(),
            (None, None) => event.message_text().unwrap_or("Error").to_owned(),
        },
        None => event
            .message_text()
            .unwrap_or("<unlabeled event>")
            .to_owned(),
    };
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    truncate_chars(line.trim(), MAX_TITLE_CHARS)
}

/// The outermost exception's value, else the message.
fn message_or_value(event: &Event) -> Option<String> {
    event
        .exceptions()
        .last()
        .and_then(|e| e.value.clone())
        .or_else(|| event.message_text().map(str::to_owned))
}

/// The innermost in-app frame of the outermost exception that has one, else the transaction,
/// else the SDK's culprit.
fn culprit(event: &Event) -> Option<String> {
    let frame = event
        .exceptions()
        .iter()
        .rev()
        .find_map(|e| app_frames(e).next_back());
    if let Some(frame) = frame {
        let function = frame.function.as_deref().map(normalize_function);
        let location = frame.module.as_deref().or(frame.filename.as_deref());
        let culprit = match (function, location) {
            (Some(f), Some(m)) if f.starts_with(m) => f,
            (Some(f), Some(m)) => format!("{f} in {m}"),
            (Some(f), None) => f,
            (None, Some(m)) => m.to_owned(),
            (None, None) => String::new(),
        };
        if !culprit.is_empty() {
            return Some(culprit);
        }
    }
    event
        .transaction
        .clone()
        .or_else(|| event.culprit.clone())
        .filter(|c| !c.is_empty())
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

/// Replaces what varies between occurrences of one error (see the module docs).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_alphanumeric() {
            if is_uuid(rest) && !rest[36..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                out.push_str("<uuid>");
                rest = &rest[36..];
                continue;
            }
            let len = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let (word, tail) = rest.split_at(len);
            out.push_str(normalize_word(word));
            rest = tail;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn normalize_word(word: &str) -> &str {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if word.bytes().all(|b| b.is_ascii_digit()) {
        "<int>"
    } else if word
        .strip_prefix("0x")
        .or_else(|| word.strip_prefix("0X"))
        .is_some_and(hex)
        || (word.len() >= 8 && hex(word) && word.bytes().any(|b| b.is_ascii_digit()))
    {
        "<hex>"
    } else {
        word
    }
}

/// `8-4-4-4-12` hex digits at the start of `s`.
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 36
        && b[..36].iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Serde for a `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue ids are stored and linked: the hash must never change. The value was computed
    /// independently (FNV-1a 128 over the project as u64 LE and each entry as u64 LE length
    /// and bytes).
    #[test]
    fn issue_ids_are_stable() {
        let fingerprint = ["KeyError".to_owned(), "disk full".to_owned()];
        assert_eq!(
            issue_id(1, &fingerprint),
            "2a34fd1cd27b260bb8caf126a9965f5c"
        );
    }

    #[test]
    fn normalizes_what_varies_between_occurrences() {
        let cases = [
            ("user 42 not found", "user <int> not found"),
            (
                "row 550e8400-e29b-41d4-a716-446655440000 locked",
                "row <uuid> locked",
            ),
            ("bad pointer 0xdeadBEEF", "bad pointer <hex>"),
            ("sha 3f2a9c0b1d", "sha <hex>"),
            ("KeyError: 'missing'", "KeyError: 'missing'"),
            (
                "deadbeef is a word, v2 stays",
                "deadbeef is a word, v2 stays",
            ),
            ("čas 10:30 ✓", "čas <int>:<int> ✓"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "{input}");
        }
    }

    #[test]
    fn normalizes_function_names() {
        let cases = [
            ("app::run::h0123456789abcdef", "app::run"),
            ("app::main::{{closure}}", "app::main"),
            ("app::serve::{{closure}}::{{closure}}", "app::serve"),
            ("app::main::{closure#0}", "app::main"),
            ("<app::Job as app::Run>::run", "<app::Job as app::Run>::run"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_function(input), want, "{input}");
        }
    }

    #[test]
    fn reads_fingerprint_variables() {
        assert_eq!(variable("{{ default }}"), Some("default"));
        assert_eq!(variable("{{default}}"), Some("default"));
        assert_eq!(variable("{{ a b }}"), None);
        assert_eq!(variable("default"), None);
    }

    #[test]
    fn truncates_titles_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 10), "héllo");
        assert_eq!(truncate_chars("héllo", 5), "héllo");
        assert_eq!(truncate_chars("héllo!", 5), "héll…");
    }
}
