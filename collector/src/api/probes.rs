//! `GET /api/v1/probes` and `GET /api/v1/probes/{name}/results`: the configured probes with
//! their stored state, and a probe's recent checks. Reads only; URLs appear only redacted.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::paging::{page_request, page_response};
use super::views::{IncidentView, seconds};
use crate::app::AppState;
use crate::config;
use crate::engine::probes::{ProbeResult, ProbeRules, ProbeState, ProbeStatus};
use crate::engine::text::rfc3339_millis;
use crate::http::{HttpError, query_pairs};
use crate::probe::Snoozed;
use crate::store::Cursor;

/// Default and largest `limit` for result listings.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// One probe.
#[derive(Debug, Serialize)]
struct ProbeView<'a> {
    name: &'a str,
    /// Without credentials, query or fragment.
    url: &'a str,
    /// `pending`, `up` or `down`.
    status: &'static str,
    /// When `status` last changed.
    since: Option<String>,
    /// Until when its alerts are held (`POST /api/v1/probes/{name}/snooze`); null when not
    /// snoozed.
    snoozed_until: Option<String>,
    interval_s: serde_json::Number,
    timeout_s: serde_json::Number,
    failure_threshold: u32,
    success_threshold: u32,
    expected_status: u16,
    consecutive_failures: u32,
    consecutive_successes: u32,
    /// Checks recorded since the probe was first configured.
    checks: u64,
    /// Latency of the last check.
    latency_ms: Option<f64>,
    last_check: Option<ResultView<'a>>,
    open_incident: Option<IncidentView<'a>>,
}

/// One check.
#[derive(Debug, Serialize)]
struct ResultView<'a> {
    id: String,
    at: String,
    /// `ok`, `unexpected_status`, `body_mismatch`, `timeout`, `connect_error`, `request_error`.
    outcome: &'static str,
    status_code: Option<u16>,
    latency_ms: f64,
    error: Option<&'a str>,
}

impl<'a> From<&'a ProbeResult> for ResultView<'a> {
    fn from(r: &'a ProbeResult) -> Self {
        ResultView {
            id: r.id.simple().to_string(),
            at: rfc3339_millis(r.at),
            outcome: r.outcome.as_str(),
            status_code: r.status_code,
            latency_ms: r.latency_ms,
            error: r.error.as_deref(),
        }
    }
}

fn view<'a>(
    spec: &'a config::Probe,
    rules: &'a ProbeRules,
    state: Option<&'a ProbeState>,
) -> ProbeView<'a> {
    let last = state.and_then(|s| s.last_result.as_ref());
    ProbeView {
        name: &spec.name,
        url: &rules.url,
        status: state.map_or(ProbeStatus::Pending, |s| s.status).as_str(),
        since: state.and_then(|s| s.since).map(rfc3339_millis),
        snoozed_until: state
            .and_then(|s| s.snoozed_until)
            .filter(|until| *until > chrono::Utc::now())
            .map(rfc3339_millis),
        interval_s: seconds(spec.interval),
        timeout_s: seconds(spec.timeout),
        failure_threshold: spec.failure_threshold,
        success_threshold: spec.success_threshold,
        expected_status: spec.expected_status,
        consecutive_failures: state.map_or(0, ProbeState::consecutive_failures),
        consecutive_successes: state.map_or(0, |s| s.successes),
        checks: state.map_or(0, |s| s.checks),
        latency_ms: last.map(|r| r.latency_ms),
        last_check: last.map(ResultView::from),
        open_incident: state
            .and_then(|s| s.open_incident.as_ref())
            .map(IncidentView::from),
    }
}

/// `GET /api/v1/probes?limit=&cursor=`: the configured probes, in config order. They are as
/// many as the config names, so the page is cut from that list; the cursor names the last
/// probe of the page before.
pub(super) async fn list(State(state): State<AppState>, uri: Uri) -> Result<Response, HttpError> {
    let query = query_pairs(&uri)?;
    let page = page_request(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let configured: Vec<_> = state.probes.configured().collect();
    let start = match &page.cursor {
        Cursor::After(name) => configured
            .iter()
            .position(|(spec, _)| spec.name.as_bytes() == name.as_slice())
            .map(|at| at + 1)
            .ok_or_else(|| {
                HttpError::bad_request(
                    "bad_request",
                    "the probe this cursor names is no longer configured: list again from the \
                     first page (leave `cursor` out)",
                )
            })?,
        _ => 0,
    };
    let shown = &configured[start.min(configured.len())..];
    let shown = &shown[..page.limit.min(shown.len())];
    let next = (start + shown.len() < configured.len())
        .then(|| shown.last())
        .flatten()
        .map(|(spec, _)| Cursor::After(spec.name.as_bytes().to_vec()));
    let stored = shown
        .iter()
        .map(|(spec, _)| state.store.probe_state(&spec.name))
        .collect::<Result<Vec<_>, _>>()?;
    let views: Vec<ProbeView<'_>> = shown
        .iter()
        .zip(&stored)
        .map(|((spec, rules), stored)| view(spec, rules, stored.as_ref()))
        .collect();
    Ok(page_response(&uri, &query, &views, next.as_ref()))
}

/// `GET /api/v1/probes/{name}/results?limit=&cursor=`: the newest checks, newest first.
pub(super) async fn results(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, HttpError> {
    if !state.probes.configured().any(|(spec, _)| spec.name == name) {
        return Err(HttpError::not_found(format!(
            "no probe named `{name}` is configured"
        )));
    }
    let query = query_pairs(&uri)?;
    let page = page_request(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let found = state
        .store
        .probe_results_page(&name, &page.cursor, page.limit)?;
    let views: Vec<ResultView<'_>> = found.items.iter().map(ResultView::from).collect();
    Ok(page_response(&uri, &query, &views, found.next.as_ref()))
}

/// Largest `POST /api/v1/probes/{name}/snooze` body.
const MAX_SNOOZE_BODY: usize = 1024;

/// `POST /api/v1/probes/{name}/snooze` with `{"snooze": "2h"}` (or `false` to end it): holds the
/// probe's alerts for that long while its checks, state and incidents go on. The probe's task
/// records it (it owns the probe's state). Answers `{"name", "snoozed_until"}`.
pub(super) async fn snooze(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Response, HttpError> {
    let body = crate::http::read_body(body, MAX_SNOOZE_BODY).await?;
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|e| {
            super::monitors::bad(format!(
                "invalid body: {e}; send {{\"snooze\": \"2h\"}} or {{\"snooze\": false}}"
            ))
        })?;
    let Some(snooze) = super::monitors::snooze_field(object.remove("snooze"))? else {
        return Err(super::monitors::bad(
            "say how long: {\"snooze\": \"2h\"}, or {\"snooze\": false} to end the snooze",
        ));
    };
    if let Some(field) = object.keys().next() {
        return Err(super::monitors::bad(format!(
            "unknown field `{field}`; only `snooze` is accepted"
        )));
    }
    let now = chrono::Utc::now();
    let until = match snooze {
        Some(duration) => Some(
            chrono::TimeDelta::from_std(duration)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| super::monitors::bad("snooze is out of range"))?,
        ),
        None => None,
    };
    let probe = match state
        .probes
        .snooze(&name, until)
        .await
        .map_err(super::monitors::api_error)?
    {
        Snoozed::Done(probe) => probe,
        Snoozed::NoProbe => {
            return Err(HttpError::not_found(format!(
                "no probe `{name}` is configured; `GET /api/v1/probes` lists them"
            )));
        }
        Snoozed::ProberAway => {
            return Err(HttpError::unavailable(format!(
                "the prober is not running right now (the collector is starting or stopping); snooze probe `{name}` again in a few seconds"
            )));
        }
    };
    Ok(axum::Json(serde_json::json!({
        "name": probe.name,
        "snoozed_until": probe.snoozed_until.map(rfc3339_millis),
    }))
    .into_response())
}
