//! `/healthz` (the collector's own health), `/metrics` (Prometheus text) and `/` (a placeholder
//! until the dashboard exists). Open to anyone who can reach the port: they reveal no secret.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
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
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(&snapshot),
    )
        .into_response())
}

/// `GET /`: a placeholder until the dashboard lands.
pub(super) async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Watchpost</title></head><body><h1>Watchpost</h1>\
         <p>The dashboard is not built yet. The management API is at <code>/api/v1/monitors</code> \
         (send <code>Authorization: Bearer &lt;admin token&gt;</code>); health at \
         <a href=\"/healthz\">/healthz</a>, metrics at <a href=\"/metrics\">/metrics</a>.</p>\
         </body></html>",
    )
}
