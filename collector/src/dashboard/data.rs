//! What the dashboard reads besides monitors and incidents, in one place: issues, probes and
//! alert deliveries, turned into rows for the pages. A section is `None` when there is nothing
//! of its kind to show (no probe configured), and the pages hide it. Reads only: issue actions
//! go through the processor like every other change.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::alert::DeliveryState;
use crate::engine::Issue;
use crate::engine::alerting::Payload;
use crate::engine::probes::ProbeStatus;
use crate::server::AppState;
use crate::store::{DeliveryFilter, StoreError};

/// Most deliveries read when counting failed ones.
const DELIVERIES_COUNTED: usize = 10_000;

/// An uptime probe as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    /// The configured name (never the URL: it may carry a token).
    pub name: String,
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
}

/// An alert delivery as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
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

/// Every issue, most recently seen first.
pub fn issues(state: &AppState) -> Result<Option<Vec<Issue>>, StoreError> {
    state.store.issues(None, None).map(Some)
}

/// Every configured probe in config order; `None` when none is configured.
pub fn probes(state: &AppState) -> Result<Option<Vec<ProbeRow>>, StoreError> {
    let mut stored: HashMap<String, _> = state
        .store
        .probe_states()?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let rows: Vec<ProbeRow> = state
        .probes
        .configured()
        .map(|(spec, _)| {
            let stored = stored.remove(&spec.name);
            let last = stored.as_ref().and_then(|s| s.last_result.as_ref());
            ProbeRow {
                name: spec.name.clone(),
                status: stored.as_ref().map_or(ProbeStatus::Pending, |s| s.status),
                since: stored.as_ref().and_then(|s| s.since),
                latency_ms: last.map(|r| r.latency_ms),
                checked_at: last.map(|r| r.at),
                error: last.and_then(|r| r.error.clone()),
            }
        })
        .collect();
    Ok((!rows.is_empty()).then_some(rows))
}

/// The newest `limit` alert deliveries, newest first.
pub fn deliveries(state: &AppState, limit: usize) -> Result<Option<Vec<DeliveryRow>>, StoreError> {
    let entries = state.store.deliveries(&DeliveryFilter::default(), limit)?;
    let rows = entries
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
    Ok(Some(rows))
}

/// How many deliveries failed for good.
pub fn failed_deliveries(state: &AppState) -> Result<Option<usize>, StoreError> {
    let filter = DeliveryFilter {
        state: Some(DeliveryState::Failed),
        channel: None,
    };
    Ok(Some(
        state.store.deliveries(&filter, DELIVERIES_COUNTED)?.len(),
    ))
}

fn delivery_state(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Sent => "sent",
        DeliveryState::Failed => "failed",
        DeliveryState::Suppressed => "suppressed",
    }
}
