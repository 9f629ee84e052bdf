//! What the dashboard reads besides monitors and incidents, in one place: issues, probes and
//! alert deliveries, turned into rows for the pages. A section is `None` when there is nothing
//! of its kind to show (no probe configured), and the pages hide it. Reads only: issue actions
//! go through the processor like every other change.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use watchpost_protocol::Event;

use crate::alert::DeliveryState;
use crate::app::AppState;
use crate::engine::alerting::Payload;
use crate::engine::probes::{Outcome, ProbeStatus};
use crate::engine::{Issue, IssueStatus};
use crate::store::{Cursor, DeliveryFilter, Page, StoreError};

/// Most deliveries read when counting failed ones.
const DELIVERIES_COUNTED: usize = 10_000;
/// Most event receive times read per issue for its sparkline (keys only).
const SPARK_EVENTS: usize = 200;
/// Buckets of an issue's sparkline.
pub(crate) const SPARK_BUCKETS: usize = 24;
/// The longest span an issue's sparkline covers.
const SPARK_SPAN: TimeDelta = TimeDelta::hours(24);

/// An issue's recent activity: event counts in equal buckets from `start` to `end`, oldest
/// first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Activity {
    /// Events per bucket, oldest first; [`SPARK_BUCKETS`] of them.
    pub buckets: Vec<u32>,
    /// Where the first bucket starts.
    pub start: DateTime<Utc>,
    /// Where the last bucket ends.
    pub end: DateTime<Utc>,
    /// Whether more events were received in the span than were read.
    pub truncated: bool,
}

/// An issue with what its page shows besides the issue itself.
#[derive(Debug, Clone)]
pub(crate) struct IssueDetail {
    /// The issue.
    pub issue: Issue,
    /// The newest stored event, parsed; `None` when none is kept (or it cannot be read).
    pub latest: Option<Event>,
    /// Its recent activity.
    pub activity: Activity,
}

/// A probe's recent check, as its sparkline draws it.
#[derive(Debug, Clone)]
pub(crate) struct ProbeCheck {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// How long it took.
    pub latency_ms: f64,
    /// Whether it passed.
    pub ok: bool,
}

/// An uptime probe as the dashboard shows it.
#[derive(Debug, Clone)]
pub(crate) struct ProbeRow {
    /// The configured name.
    pub name: String,
    /// The URL as the prober shows it: without credentials, query or fragment.
    pub url: String,
    /// Pending, up or down.
    pub status: ProbeStatus,
    /// Since when it is in that status.
    pub since: Option<DateTime<Utc>>,
    /// Latency of the last check, in milliseconds.
    pub latency_ms: Option<f64>,
    /// When it was last checked.
    pub checked_at: Option<DateTime<Utc>>,
    /// What went wrong in the last check, for a person.
    pub error: Option<String>,
    /// Until when its alerts are held, while snoozed.
    pub snoozed_until: Option<DateTime<Utc>>,
    /// The HTTP status of the last check, if one came back.
    pub status_code: Option<u16>,
    /// Recent checks, oldest first (empty unless asked for).
    pub history: Vec<ProbeCheck>,
}

/// An alert delivery as the dashboard shows it.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryRow {
    /// The channel's name.
    pub channel: String,
    /// `monitor.failed`, ..., or `digest`.
    pub kind: &'static str,
    /// The alert's title, or what a digest stands for.
    pub title: String,
    /// `pending`, `sent`, `failed` or `suppressed`.
    pub status: &'static str,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last error, for failed and retrying deliveries.
    pub last_error: Option<String>,
    /// When the alert was raised.
    pub created: DateTime<Utc>,
}

/// The `limit` most recently seen unresolved issues, and whether there are more (examining at
/// most ten times as many issues).
pub(crate) fn unresolved_issues(
    state: &AppState,
    limit: usize,
) -> Result<(Vec<Issue>, bool), StoreError> {
    let found = state.store.issues_page(
        None,
        Some(IssueStatus::Unresolved),
        &Cursor::Start,
        limit,
        limit * 10,
    )?;
    Ok((found.items, found.next.is_some()))
}

/// An issue's activity: the receive times of its newest events (at most [`SPARK_EVENTS`],
/// keys only), counted in [`SPARK_BUCKETS`] buckets over the last day, or since it was first
/// seen when that is more recent.
pub(crate) fn issue_activity(
    state: &AppState,
    issue: &Issue,
    now: DateTime<Utc>,
) -> Result<Activity, StoreError> {
    let times = state.store.issue_event_times(&issue.id, SPARK_EVENTS)?;
    Ok(activity(
        &times,
        issue.first_seen,
        now,
        times.len() >= SPARK_EVENTS,
    ))
}

/// Buckets `times` (any order) from `max(first_seen, now - SPARK_SPAN)` to `now`. `limited`
/// says the read stopped at its bound, so older events in the span may be missing.
fn activity(
    times: &[DateTime<Utc>],
    first_seen: DateTime<Utc>,
    now: DateTime<Utc>,
    limited: bool,
) -> Activity {
    let end = now;
    let start = first_seen
        .max(now - SPARK_SPAN)
        .min(now - TimeDelta::minutes(1));
    let span = (end - start).num_milliseconds().max(1);
    let mut buckets = vec![0u32; SPARK_BUCKETS];
    let oldest_read = times.iter().min().copied();
    for &at in times {
        if at < start || at > end {
            continue;
        }
        let offset = (at - start).num_milliseconds();
        let index = usize::try_from(offset * SPARK_BUCKETS as i64 / span)
            .unwrap_or(0)
            .min(SPARK_BUCKETS - 1);
        buckets[index] = buckets[index].saturating_add(1);
    }
    Activity {
        buckets,
        start,
        end,
        truncated: limited && oldest_read.is_some_and(|oldest| oldest > start),
    }
}

/// Issues with their activity.
pub(crate) fn with_activity(
    state: &AppState,
    issues: Vec<Issue>,
    now: DateTime<Utc>,
) -> Result<Vec<(Issue, Activity)>, StoreError> {
    issues
        .into_iter()
        .map(|issue| {
            let activity = issue_activity(state, &issue, now)?;
            Ok((issue, activity))
        })
        .collect()
}

/// One issue with its newest event and activity; `None` when there is no such issue.
pub(crate) fn issue_detail(
    state: &AppState,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<IssueDetail>, StoreError> {
    let Some(issue) = state.store.issue(id)? else {
        return Ok(None);
    };
    let latest = state.store.issue_events(id, 1)?.first().and_then(|raw| {
        match serde_json::from_slice::<Event>(raw) {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(%error, issue = id, "dashboard cannot parse a stored event");
                None
            }
        }
    });
    let activity = issue_activity(state, &issue, now)?;
    Ok(Some(IssueDetail {
        issue,
        latest,
        activity,
    }))
}

/// Every configured probe in config order, with its newest `history` checks; `None` when
/// none is configured.
pub(crate) fn probes(
    state: &AppState,
    history: usize,
) -> Result<Option<Vec<ProbeRow>>, StoreError> {
    let mut stored: HashMap<String, _> = state
        .store
        .probe_states()?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let rows: Vec<ProbeRow> = state
        .probes
        .configured()
        .map(|(spec, rules)| {
            let stored = stored.remove(&spec.name);
            let last = stored.as_ref().and_then(|s| s.last_result.as_ref());
            let mut checks = if history == 0 {
                Vec::new()
            } else {
                state.store.probe_results(&spec.name, history)?
            };
            checks.reverse();
            Ok(ProbeRow {
                name: spec.name.clone(),
                url: rules.url.clone(),
                status: stored.as_ref().map_or(ProbeStatus::Pending, |s| s.status),
                since: stored.as_ref().and_then(|s| s.since),
                snoozed_until: stored
                    .as_ref()
                    .and_then(|s| s.snoozed_until)
                    .filter(|until| *until > Utc::now()),
                latency_ms: last.map(|r| r.latency_ms),
                checked_at: last.map(|r| r.at),
                error: last.and_then(|r| r.error.clone()),
                status_code: last.and_then(|r| r.status_code),
                history: checks
                    .into_iter()
                    .map(|r| ProbeCheck {
                        at: r.at,
                        latency_ms: r.latency_ms,
                        ok: r.outcome == Outcome::Ok,
                    })
                    .collect(),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((!rows.is_empty()).then_some(rows))
}

/// A page of alert deliveries, newest first.
pub(crate) fn deliveries(
    state: &AppState,
    from: &Cursor,
    limit: usize,
) -> Result<Page<DeliveryRow>, StoreError> {
    let found = state
        .store
        .deliveries_page(&DeliveryFilter::default(), from, limit, limit)?;
    let rows = found
        .items
        .into_iter()
        .map(|entry| {
            let (kind, title) = match &entry.payload {
                Payload::Alert(alert) => (alert.kind.as_str(), alert.title.clone()),
                Payload::Digest(digest) => ("digest", format!("{} alerts", digest.total)),
            };
            DeliveryRow {
                channel: entry.channel,
                kind,
                title,
                status: delivery_state(entry.state),
                attempts: entry.attempts,
                last_error: entry.last_error,
                created: entry.created_at,
            }
        })
        .collect();
    Ok(Page {
        items: rows,
        next: found.next,
        prev: found.prev,
    })
}

/// How many deliveries failed for good, among the newest [`DELIVERIES_COUNTED`] (the outbox
/// keeps at most `DELIVERIES_KEPT` finished ones, so this is every one unless many are
/// pending).
pub(crate) fn failed_deliveries(state: &AppState) -> Result<usize, StoreError> {
    let filter = DeliveryFilter {
        state: Some(DeliveryState::Failed),
        channel: None,
    };
    let failed = state
        .store
        .deliveries(&filter, DELIVERIES_COUNTED, DELIVERIES_COUNTED)?;
    Ok(failed.len())
}

fn delivery_state(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Sent => "sent",
        DeliveryState::Failed => "failed",
        DeliveryState::Suppressed => "suppressed",
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(mins: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap() + TimeDelta::minutes(mins)
    }

    #[test]
    fn activity_buckets_the_last_day_or_since_first_seen() {
        let now = at(0);
        // First seen two days ago: the span is the last 24 h, an hour per bucket.
        let a = activity(&[at(-1), at(-2), at(-90), at(-3000)], at(-3000), now, false);
        assert_eq!(a.start, now - SPARK_SPAN);
        assert_eq!(a.buckets.len(), SPARK_BUCKETS);
        assert_eq!(a.buckets[SPARK_BUCKETS - 1], 2);
        assert_eq!(a.buckets[SPARK_BUCKETS - 2], 1);
        assert_eq!(
            a.buckets.iter().sum::<u32>(),
            3,
            "older than a day is left out"
        );
        // First seen two hours ago: 5 minutes per bucket.
        let b = activity(&[at(-120), at(-1)], at(-120), now, false);
        assert_eq!(b.start, at(-120));
        assert_eq!(b.buckets[0], 1);
        assert_eq!(b.buckets[SPARK_BUCKETS - 1], 1);
        assert!(!b.truncated);
        assert!(activity(&[at(-1)], at(-120), now, true).truncated);
    }
}
