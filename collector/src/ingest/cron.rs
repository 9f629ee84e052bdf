//! Sentry's HTTP check-in endpoint: `GET|POST /api/{project_id}/cron/{slug}[/{key}][/]` with
//! the check-in in the query string, or as a JSON body (which may carry `monitor_config`).
//! Answers 202 like Relay; a check-in over a rate limit gets a 429 instead (see `cron`).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;
use watchpost_protocol::{self as protocol, CheckInStatus};

use super::auth;
use super::input::{checkin_input, process_error, project_id};
use crate::app::AppState;
use crate::http::{HttpError, read_body};
use crate::http::{query_pairs, query_value};
use crate::processor::Batch;

/// Largest JSON check-in body (Sentry's check-in item limit).
const MAX_JSON_BODY: usize = 100 * 1024;

pub(super) async fn with_key(
    State(state): State<AppState>,
    Path((project, slug, key)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    respond(
        &state,
        cron(&state, &project, &slug, Some(&key), &parts, body).await,
    )
}

pub(super) async fn without_key(
    State(state): State<AppState>,
    Path((project, slug)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    respond(
        &state,
        cron(&state, &project, &slug, None, &parts, body).await,
    )
}

fn respond(state: &AppState, result: Result<Value, HttpError>) -> Response {
    match result {
        Ok(reply) => (StatusCode::ACCEPTED, Json(reply)).into_response(),
        Err(error) => {
            state.metrics.checkin_rejected(error.reason);
            error.into_response()
        }
    }
}

async fn cron(
    state: &AppState,
    project: &str,
    slug: &str,
    path_key: Option<&str>,
    request: &Parts,
    body: Body,
) -> Result<Value, HttpError> {
    let project = project_id(project)?;
    let query = query_pairs(&request.uri)?;
    let key = auth::find_key(&request.headers, &query, path_key)?;
    auth::check_project(&state.keys, &key, project)?;

    let json_body = request.method == Method::POST
        && request
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
    let wire = if json_body {
        let bytes = read_body(body, MAX_JSON_BODY).await?;
        from_json(slug, &bytes)?
    } else {
        from_query(slug, &query)?
    };
    let input = checkin_input(project, &wire, None)
        .map_err(|message| HttpError::bad_request("invalid_checkin", message))?;
    // Relay answers a rate-limited cron check-in 202 and drops it, which a curl in a crontab
    // cannot tell from success and which then looks like missed jobs; we answer 429 with the
    // reason. The monitor's own rate first, so its refused check-ins spend none of the key's.
    state.rate_limits.check_monitor(&input.key)?;
    state.rate_limits.check_key(&key, 1)?;
    let forward = state.upstream.forward_checkin(&wire);
    let forwarded = forward.is_some();
    let accepted = state
        .processor
        .ingest(Batch {
            checkins: vec![input],
            events: Vec::new(),
            forward,
        })
        .await
        .map_err(|e| process_error(e, |_| String::new()))?;
    if forwarded {
        state.upstream.queued();
    }
    match accepted.ids.first().copied().flatten() {
        Some(id) => {
            state.metrics.checkins_accepted(1);
            Ok(json!({ "id": id.simple().to_string() }))
        }
        None => {
            state.metrics.checkin_rejected("disabled");
            Ok(json!({}))
        }
    }
}

/// A JSON body is a whole check-in; the slug comes from the path, as in Relay.
fn from_json(slug: &str, bytes: &[u8]) -> Result<protocol::CheckIn, HttpError> {
    let invalid = |e: &dyn std::fmt::Display| {
        HttpError::bad_request("invalid_checkin", format!("invalid check-in JSON: {e}"))
    };
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(&e))?;
    let Some(object) = value.as_object_mut() else {
        return Err(invalid(&"expected a JSON object"));
    };
    object.insert("monitor_slug".into(), Value::String(slug.to_owned()));
    serde_json::from_value(value).map_err(|e| invalid(&e))
}

/// `?status=..&check_in_id=..&environment=..&duration=..`.
fn from_query(slug: &str, query: &[(String, String)]) -> Result<protocol::CheckIn, HttpError> {
    let bad = |message: String| HttpError::bad_request("invalid_checkin", message);
    let status = match query_value(query, "status") {
        Some("in_progress") => CheckInStatus::InProgress,
        Some("ok") => CheckInStatus::Ok,
        Some("error") => CheckInStatus::Error,
        Some(other) => {
            return Err(bad(format!(
                "query parameter `status` must be in_progress, ok or error, got `{other}`"
            )));
        }
        None => {
            return Err(bad(
                "query parameter `status` is required (in_progress, ok or error)".into(),
            ));
        }
    };
    let check_in_id = query_value(query, "check_in_id")
        .map(|raw| {
            Uuid::parse_str(raw).map_err(|_| {
                bad(format!(
                    "query parameter `check_in_id` is not a UUID: `{raw}`; expected 32 hex digits, with or without dashes"
                ))
            })
        })
        .transpose()?;
    let duration = query_value(query, "duration")
        .map(|raw| {
            raw.parse::<f64>().map_err(|_| {
                bad(format!(
                    "query parameter `duration` must be a number of seconds, got `{raw}`"
                ))
            })
        })
        .transpose()?;
    let mut checkin = protocol::CheckIn::new(slug, status);
    checkin.check_in_id = check_in_id;
    checkin.duration = duration;
    checkin.environment = query_value(query, "environment").map(str::to_owned);
    Ok(checkin)
}
