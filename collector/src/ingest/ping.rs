//! healthchecks-style pings for crontab lines: `GET|POST|HEAD /ping/{key}/{slug}` with an
//! optional `/start`, `/fail`, `/log` or `/{exit_code}`, an optional trailing `/` (as
//! healthchecks allows) and `?rid=<uuid>`. The request body is kept (truncated, never rejected)
//! as the check-in's log.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use uuid::Uuid;
use watchpost_protocol::{self as protocol, CheckInStatus};

use super::auth;
use super::input::{checkin_input, process_error};
use crate::app::AppState;
use crate::engine::MonitorKey;
use crate::http::{HttpError, read_truncated, truncate_utf8};
use crate::http::{query_pairs, query_value};
use crate::processor::Batch;
use crate::store::LogEntry;

/// Bytes of a ping body kept as the log (healthchecks' default `PING_BODY_LIMIT`).
pub(super) const PING_BODY_LIMIT: usize = 10_000;
/// Bytes read and discarded past the limit before the connection is left unread.
const PING_BODY_DRAIN: usize = 1 << 20;

/// What a ping reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// No suffix, `/start` or `/fail`.
    Status(CheckInStatus),
    /// `/{exit_code}`: 0 is a success, anything else a failure.
    Exit(u8),
    /// `/log`: a log line without a status change.
    Log,
}

pub(super) async fn success(
    State(state): State<AppState>,
    Path((key, slug)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    respond(&state, ping(&state, &key, &slug, None, &parts, body).await)
}

pub(super) async fn action(
    State(state): State<AppState>,
    Path((key, slug, action)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    respond(
        &state,
        ping(&state, &key, &slug, Some(&action), &parts, body).await,
    )
}

fn respond(state: &AppState, result: Result<(), HttpError>) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, "OK").into_response(),
        Err(error) => {
            state.metrics.checkin_rejected(error.reason);
            error.into_response()
        }
    }
}

/// The action of `/ping/{key}/{slug}[/{action}]`: `None` for no suffix. Pure; the fuzz target
/// `ping_path` drives it.
pub fn parse_action(raw: Option<&str>) -> Result<Action, HttpError> {
    match raw {
        None => Ok(Action::Status(CheckInStatus::Ok)),
        Some("start") => Ok(Action::Status(CheckInStatus::InProgress)),
        Some("fail") => Ok(Action::Status(CheckInStatus::Error)),
        Some("log") => Ok(Action::Log),
        Some(code) if !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) => {
            code.parse::<u8>().map(Action::Exit).map_err(|_| {
                HttpError::bad_request(
                    "invalid_checkin",
                    format!("exit code {code} is out of range; use 0 to 255"),
                )
            })
        }
        Some(other) => Err(HttpError::bad_request(
            "invalid_checkin",
            format!("unknown ping action `{other}`; use start, fail, log or an exit code 0-255"),
        )),
    }
}

async fn ping(
    state: &AppState,
    key: &str,
    slug: &str,
    action: Option<&str>,
    request: &Parts,
    body: Body,
) -> Result<(), HttpError> {
    let query = query_pairs(&request.uri)?;
    let key = auth::find_key(&request.headers, &query, Some(key))?;
    let project = auth::project_for(&state.keys, &key)?;
    let action = parse_action(action)?;
    let rid = query_value(&query, "rid")
        .map(|raw| {
            Uuid::parse_str(raw).map_err(|_| {
                HttpError::bad_request(
                    "invalid_checkin",
                    format!("rid `{raw}` is not a UUID; expected e.g. 3ad871db-fc80-4c93-bd54-85af1060f1f4"),
                )
            })
        })
        .transpose()?;
    let environment = query_value(&query, "environment").map(str::to_owned);
    let body = read_truncated(body, PING_BODY_LIMIT, PING_BODY_DRAIN).await;
    let mut log = (!body.is_empty()).then(|| truncate_utf8(&body, PING_BODY_LIMIT));

    let status = match action {
        Action::Status(status) => status,
        Action::Exit(0) => CheckInStatus::Ok,
        Action::Exit(code) => {
            log.get_or_insert_with(|| format!("exit code {code}"));
            CheckInStatus::Error
        }
        Action::Log => {
            let mut wire = protocol::CheckIn::new(slug, CheckInStatus::Ok);
            wire.environment = environment;
            let input = checkin_input(project, &wire, None)
                .map_err(|message| HttpError::bad_request("invalid_checkin", message))?;
            check_rates(state, &key, &input.key)?;
            let entry = LogEntry {
                key: input.key,
                id: Uuid::new_v4(),
                received: Utc::now(),
                body: log.unwrap_or_default(),
            };
            if !state
                .processor
                .log(entry)
                .await
                .map_err(|e| process_error(e, |_| String::new()))?
            {
                state.metrics.checkin_rejected("disabled");
            }
            return Ok(());
        }
    };
    let mut wire = protocol::CheckIn::new(slug, status);
    wire.check_in_id = rid;
    wire.environment = environment;
    let input = checkin_input(project, &wire, log)
        .map_err(|message| HttpError::bad_request("invalid_checkin", message))?;
    check_rates(state, &key, &input.key)?;
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
    if accepted.dropped.is_empty() {
        state.metrics.checkins_accepted(1);
    } else {
        state.metrics.checkin_rejected("disabled");
    }
    Ok(())
}

/// The monitor environment's rate, then the key's: check-ins refused for one noisy monitor
/// spend none of the key's budget.
fn check_rates(state: &AppState, key: &str, monitor: &MonitorKey) -> Result<(), HttpError> {
    state.rate_limits.check_monitor(monitor)?;
    state.rate_limits.check_key(key, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        assert_eq!(
            parse_action(None).unwrap(),
            Action::Status(CheckInStatus::Ok)
        );
        assert_eq!(
            parse_action(Some("start")).unwrap(),
            Action::Status(CheckInStatus::InProgress)
        );
        assert_eq!(
            parse_action(Some("fail")).unwrap(),
            Action::Status(CheckInStatus::Error)
        );
        assert_eq!(parse_action(Some("log")).unwrap(), Action::Log);
        assert_eq!(parse_action(Some("0")).unwrap(), Action::Exit(0));
        assert_eq!(parse_action(Some("255")).unwrap(), Action::Exit(255));
        assert!(
            parse_action(Some("256"))
                .unwrap_err()
                .message
                .contains("0 to 255")
        );
        assert!(
            parse_action(Some("stop"))
                .unwrap_err()
                .message
                .contains("unknown ping action")
        );
    }
}
