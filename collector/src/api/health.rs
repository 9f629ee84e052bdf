//! `/healthz` (the collector's own health) and `/metrics` (Prometheus text). Open to anyone who
//! can reach the port: they reveal no secret.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::views::rfc3339;
use crate::http::HttpError;
use crate::metrics::Snapshot;
use crate::server::AppState;

/// `GET /healthz`: 200 when the store takes writes and the sweeper runs, else 503.
pub(super) async fn healthz(State(state): State<AppState>) -> Response {
    let now = Utc::now();
    let store = state.store.check_writable(now);
    let sweeper_alive = state.deadlines.sweeper_alive(now);
    let healthy = store.is_ok() && sweeper_alive;
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "store": {
            "writable": store.is_ok(),
            "error": store.err().map(|e| e.to_string()),
        },
        "sweeper": {
            "alive": sweeper_alive,
            "last_wake": state.deadlines.last_wake().map(rfc3339),
            "deadlines": state.deadlines.len(),
            "next_deadline": state.deadlines.next_deadline().map(rfc3339),
            "lag_seconds": state.metrics.last_sweep_lag(),
        },
        "outbox": { "backlog": state.store.outbox_len() },
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, HttpError> {
    let mut monitors = BTreeMap::new();
    for monitor in state.store.monitors(None)? {
        *monitors.entry(monitor.status).or_insert(0) += 1;
    }
    let snapshot = Snapshot {
        monitors,
        deadlines: state.deadlines.len(),
        store: state.store.stats(),
        outbox: state.store.outbox_len(),
    };
    let mut text = state.metrics.render(&snapshot);
    state.upstream.write_metrics(&mut text);
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response())
}
