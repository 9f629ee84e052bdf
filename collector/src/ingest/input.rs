//! What every ingest form shares: the project id of the path, a wire check-in as the engine's
//! input, and the processor's errors as responses with a sentence a person can act on.

use axum::http::StatusCode;
use watchpost_protocol as protocol;

use crate::engine::{CheckInInput, ConfigPatch, MonitorKey, Rejection};
use crate::http::HttpError;
use crate::processor::ProcessError;

/// A project id from the path: a positive integer.
pub(super) fn project_id(raw: &str) -> Result<u64, HttpError> {
    raw.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        HttpError::bad_request(
            "malformed",
            format!("project id `{raw}` must be a positive integer"),
        )
    })
}

/// A wire check-in as the engine takes it: slug normalized, environment validated, config
/// converted. The error is a sentence for a person.
pub(super) fn checkin_input(
    project: u64,
    wire: &protocol::CheckIn,
    log: Option<String>,
) -> Result<CheckInInput, String> {
    let key = MonitorKey::new(project, &wire.monitor_slug, wire.environment.as_deref())
        .map_err(|e| e.to_string())?;
    let config = wire
        .monitor_config
        .as_ref()
        .map(ConfigPatch::from_protocol)
        .transpose()
        .map_err(|e| format!("invalid monitor_config: {e}"))?;
    Ok(CheckInInput {
        key,
        id: wire.check_in_id,
        status: wire.status.into(),
        duration: wire.duration,
        config,
        log,
    })
}

/// The status and metric label for an engine rejection.
fn rejection_status(rejection: &Rejection) -> (StatusCode, &'static str) {
    match rejection {
        Rejection::UnknownMonitor(_) => (StatusCode::NOT_FOUND, "unknown_monitor"),
        Rejection::Disabled(_) => (StatusCode::CONFLICT, "disabled"),
        Rejection::InvalidStatus(_) => (StatusCode::BAD_REQUEST, "invalid_status"),
        Rejection::InvalidDuration(_) => (StatusCode::BAD_REQUEST, "invalid_duration"),
        Rejection::AlreadyFinished { .. } => (StatusCode::CONFLICT, "already_finished"),
        Rejection::WrongMonitor { .. } => (StatusCode::CONFLICT, "wrong_monitor"),
        Rejection::TooManyOpenRuns(_) => (StatusCode::CONFLICT, "too_many_open_runs"),
        Rejection::InvalidConfig(_) => (StatusCode::BAD_REQUEST, "invalid_config"),
    }
}

/// A processor error as a response; `context` names the item for multi-item inputs.
pub(super) fn process_error(error: ProcessError, context: impl Fn(usize) -> String) -> HttpError {
    match error {
        ProcessError::Rejected { index, rejection } => {
            let (status, reason) = rejection_status(&rejection);
            HttpError::new(status, reason, format!("{}{rejection}", context(index)))
        }
        // 403, not 429: a cap is not lifted by waiting, so a client must not retry (Sentry's
        // SDKs back off and resend after a 429, and ours holds nothing after a 4xx other
        // than 429); a person has to act, as the sentence says.
        ProcessError::Refused { index, refused } => HttpError::new(
            StatusCode::FORBIDDEN,
            refused.reason(),
            format!("{}{refused}", context(index)),
        ),
        ProcessError::NotFound(message) => HttpError::not_found(message),
        ProcessError::InvalidConfig(e) => HttpError::bad_request("invalid_config", e.to_string()),
        ProcessError::Store(e) => e.into(),
        ProcessError::NotDurable(_) => HttpError::unavailable(format!("{error}; retry later")),
        ProcessError::Acknowledge(refusal) => crate::ack::refusal_error(&refusal),
    }
}
