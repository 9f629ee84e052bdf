//! `GET /api/v1/refusals`: what the caps and the upsert policy refused, so a team whose
//! check-ins or config changes were refused finds out why without reading the server's logs
//! (Sentry shows these as "processing errors").

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppState;
use crate::engine::text::rfc3339_millis;
use crate::http::{HttpError, query_pairs, query_value};
use crate::store::RefusalRecord;

/// A refusal.
#[derive(Debug, Serialize)]
struct RefusalView<'a> {
    at: String,
    project: u64,
    reason: &'a str,
    slug: Option<&'a str>,
    environment: Option<&'a str>,
    message: &'a str,
}

impl<'a> From<&'a RefusalRecord> for RefusalView<'a> {
    fn from(r: &'a RefusalRecord) -> Self {
        RefusalView {
            at: rfc3339_millis(r.at),
            project: r.project,
            reason: &r.reason,
            slug: r.slug.as_deref(),
            environment: r.environment.as_deref(),
            message: &r.message,
        }
    }
}

/// `GET /api/v1/refusals?project=`: the last week's, at most 100 per project, newest first.
pub(super) async fn list(State(state): State<AppState>, uri: Uri) -> Result<Response, HttpError> {
    let query = query_pairs(&uri)?;
    let project = query_value(&query, "project")
        .map(|raw| {
            raw.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                HttpError::bad_request(
                    "bad_request",
                    format!("project `{raw}` must be a positive integer"),
                )
            })
        })
        .transpose()?;
    let refusals = state.processor.refusals().list(project, chrono::Utc::now());
    let views: Vec<RefusalView<'_>> = refusals.iter().map(RefusalView::from).collect();
    Ok(Json(views).into_response())
}
