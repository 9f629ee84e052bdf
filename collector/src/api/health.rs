//! `/healthz` (the collector's own health) and `/metrics` (Prometheus text). Open to anyone who
//! can reach the port: they reveal no secret.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::app::AppState;
use crate::http::HttpError;
use crate::metrics::Snapshot;
use crate::store::STATUSES;

/// `GET /healthz`: 200 when the store takes writes and the sweeper, the alert dispatcher and
/// every probe task run, else 503. The verdict is `crate::health`'s, the one the watchdog heeds.
pub(super) async fn healthz(State(state): State<AppState>) -> Response {
    let health = state.health.check(Utc::now());
    let status = if health.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

/// How old a count of the store's usage `/metrics` may serve.
const USAGE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// `GET /metrics`. The monitor gauges come from the store's counters (`store/tally.rs`), so a
/// scrape costs the same whatever the number of monitors: it used to decode every monitor record
/// on a tokio worker (0.25–0.38 s at 200,000 monitors; eight scrapers stalled pings).
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, HttpError> {
    let counts = state.store.monitor_counts()?;
    let monitors: BTreeMap<_, _> = STATUSES
        .iter()
        .map(|status| (*status, counts.of(*status)))
        .collect();
    let snapshot = Snapshot {
        monitors,
        deadlines: state.deadlines.len(),
        store: state.store.stats(),
        outbox_pending: state.store.outbox_pending()?,
    };
    let mut text = state.metrics.render(&snapshot);
    let store = state.store.clone();
    // A walk of every record: on a blocking thread, and at most once a minute (`usage.rs`).
    let usage = tokio::task::spawn_blocking(move || {
        store.usage_within(std::time::Instant::now(), USAGE_MAX_AGE)
    })
    .await
    .ok()
    .and_then(|counted| {
        counted
            .inspect_err(|error| tracing::warn!(%error, "could not count the store's usage"))
            .ok()
    });
    crate::metrics::write_store_usage(&mut text, usage.as_deref(), state.store.disk_space());
    state.upstream.write_metrics(&mut text);
    state.probes.write_metrics(&mut text);
    state.processor.refusals().write_metrics(&mut text);
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response())
}
