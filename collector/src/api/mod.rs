//! The management API (`/api/v1/...`, bearer admin token), `/healthz` and `/metrics` (the
//! dashboard is `crate::dashboard`). Reads from the store, changes state only through the processor, and
//! never returns a secret.

mod alerts;
mod health;
mod issues;
mod monitors;
pub mod paging;
mod probes;
mod refusals;
mod store;
pub mod views;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, response::IntoResponse};
use subtle::ConstantTimeEq;

use crate::app::{AppState, client_ip};
use crate::http::HttpError;
use crate::throttle;

/// Management routes (admin token required) and the open operational routes.
pub fn routes(state: &AppState) -> Router<AppState> {
    let management = Router::new()
        .route("/api/v1/monitors", get(monitors::list))
        .route(
            "/api/v1/monitors/{project}/{slug}",
            get(monitors::get_one)
                .put(monitors::put)
                .patch(monitors::patch)
                .delete(monitors::delete),
        )
        .route(
            "/api/v1/monitors/{project}/{slug}/checkins",
            get(monitors::checkins),
        )
        .route(
            "/api/v1/monitors/{project}/{slug}/logs",
            get(monitors::logs),
        )
        .route("/api/v1/incidents", get(monitors::incidents))
        .route(
            "/api/v1/incidents/{id}/ack",
            axum::routing::post(monitors::acknowledge),
        )
        .route("/api/v1/probes", get(probes::list))
        .route("/api/v1/probes/{name}/results", get(probes::results))
        .route(
            "/api/v1/probes/{name}/snooze",
            axum::routing::post(probes::snooze),
        )
        .route("/api/v1/issues", get(issues::list))
        .route(
            "/api/v1/issues/{id}",
            get(issues::get_one).patch(issues::patch),
        )
        .route("/api/v1/issues/{id}/events", get(issues::events))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/refusals", get(refusals::list))
        .route("/api/v1/store/stats", get(store::stats))
        .route("/api/v1/store/compact", axum::routing::post(store::compact))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .merge(management)
}

/// `Authorization: Bearer <admin token>`, compared in constant time. Wrong tokens count
/// against the client's address (`throttle.rs`); a locked-out address gets `429` whatever it
/// presents, so the lockout cannot be probed for the right token.
async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let client = client_ip(request.extensions());
    if presented.is_some()
        && let Err(seconds) = state.auth_throttle.check(client)
    {
        return HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            throttle::refusal(seconds),
        )
        .retry_after(seconds, "")
        .into_response();
    }
    match presented {
        None => HttpError::unauthorized(
            "missing admin token: send `Authorization: Bearer <token>`; the token is printed at \
             startup and kept in <data-dir>/admin_token",
        )
        .into_response(),
        Some(token)
            if bool::from(
                token
                    .as_bytes()
                    .ct_eq(state.admin_token.expose().as_bytes()),
            ) =>
        {
            state.auth_throttle.succeeded(client);
            next.run(request).await
        }
        Some(_) => {
            state.auth_throttle.failed(client);
            HttpError::unauthorized("wrong admin token").into_response()
        }
    }
}
