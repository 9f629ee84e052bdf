//! Ingest: HTTP requests → domain inputs. Sentry envelopes, Sentry's cron endpoint and
//! healthchecks-style pings are authenticated, decoded, validated whole and converted to engine
//! inputs, then handed to the processor. Holds no state and never writes the store itself.

pub mod auth;
mod cron;
mod envelope;
pub mod inflight;
mod input;
pub mod ping;
pub mod ratelimit;

use crate::app::AppState;
use axum::Router;
use axum::routing::{get, post};

/// The ingest routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/{project_id}/envelope/", post(envelope::handle))
        .route("/api/{project_id}/envelope", post(envelope::handle))
        .route(
            "/api/{project_id}/cron/{slug}/{key}/",
            get(cron::with_key).post(cron::with_key),
        )
        .route(
            "/api/{project_id}/cron/{slug}/{key}",
            get(cron::with_key).post(cron::with_key),
        )
        .route(
            "/api/{project_id}/cron/{slug}/",
            get(cron::without_key).post(cron::without_key),
        )
        .route(
            "/api/{project_id}/cron/{slug}",
            get(cron::without_key).post(cron::without_key),
        )
        // `get` answers HEAD too. A trailing slash is optional on every ping form, as in
        // healthchecks (whose routes all end in `/?`): `curl .../ping/KEY/job/` is a success.
        .route("/ping/{key}/{slug}", get(ping::success).post(ping::success))
        .route(
            "/ping/{key}/{slug}/",
            get(ping::success).post(ping::success),
        )
        .route(
            "/ping/{key}/{slug}/{action}",
            get(ping::action).post(ping::action),
        )
        .route(
            "/ping/{key}/{slug}/{action}/",
            get(ping::action).post(ping::action),
        )
}
