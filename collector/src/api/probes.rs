//! `GET /api/v1/probes` and `GET /api/v1/probes/{name}/results`: the configured probes with
//! their stored state, and a probe's recent checks. Reads only; URLs appear only redacted.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::views::{IncidentView, rfc3339, seconds};
use crate::config;
use crate::engine::probes::{ProbeResult, ProbeRules, ProbeState, ProbeStatus};
use crate::http::{HttpError, query_pairs, query_value};
use crate::server::AppState;

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
            at: rfc3339(r.at),
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
        since: state.and_then(|s| s.since).map(rfc3339),
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

/// `GET /api/v1/probes`: every configured probe, in config order.
pub(super) async fn list(State(state): State<AppState>) -> Result<Response, HttpError> {
    let stored: HashMap<String, ProbeState> = state
        .store
        .probe_states()?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let views: Vec<ProbeView<'_>> = state
        .probes
        .configured()
        .map(|(spec, rules)| view(spec, rules, stored.get(&spec.name)))
        .collect();
    Ok(Json(views).into_response())
}

/// `GET /api/v1/probes/{name}/results?limit=`: the newest checks, newest first.
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
    let limit = match query_value(&query, "limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n @ 1..=MAX_LIMIT) => n,
            _ => {
                return Err(HttpError::bad_request(
                    "bad_request",
                    format!("limit `{text}` must be a whole number from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let results = state.store.probe_results(&name, limit)?;
    let views: Vec<ResultView<'_>> = results.iter().map(ResultView::from).collect();
    Ok(Json(views).into_response())
}
