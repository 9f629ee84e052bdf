//! `/api/v1/issues...`: error issues with their counts and recent events, and the status
//! change a person makes (resolve, ignore, reopen) through the processor. Field names are the
//! contract of docs/http-api.md

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use watchpost_protocol::Level;

use super::paging::{page_request, page_response, with_next};
use crate::app::AppState;
use crate::engine::text::rfc3339_millis;
use crate::engine::{Issue, IssueStatus};
use crate::http::{HttpError, query_pairs, query_value, read_body};
use crate::processor::ProcessError;

/// Default and largest `limit` of the issue list.
const DEFAULT_ISSUES: usize = 100;
const MAX_ISSUES: usize = 1000;
/// Default and largest `limit` of an issue's events.
const DEFAULT_EVENTS: usize = 50;
const MAX_EVENTS: usize = 1000;
/// With `project` or `status`, a page examines at most this many issues per row asked for.
const EXAMINE_PER_ROW: usize = 10;
/// Largest `PATCH` body.
const MAX_BODY: usize = 4096;

type ApiResult = Result<Response, HttpError>;

/// An issue.
#[derive(Debug, Serialize)]
pub(super) struct IssueView<'a> {
    id: &'a str,
    project: u64,
    title: &'a str,
    culprit: Option<&'a str>,
    level: Level,
    status: IssueStatus,
    first_seen: String,
    last_seen: String,
    count: u64,
}

impl<'a> From<&'a Issue> for IssueView<'a> {
    fn from(issue: &'a Issue) -> Self {
        IssueView {
            id: &issue.id,
            project: issue.project,
            title: &issue.title,
            culprit: issue.culprit.as_deref(),
            level: issue.level,
            status: issue.status,
            first_seen: rfc3339_millis(issue.first_seen),
            last_seen: rfc3339_millis(issue.last_seen),
            count: issue.count,
        }
    }
}

/// The body of `PATCH /api/v1/issues/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuePatch {
    status: String,
}

fn bad(message: impl Into<String>) -> HttpError {
    HttpError::bad_request("bad_request", message)
}

/// `GET /api/v1/issues?project=&status=&limit=&cursor=`: most recently seen first.
pub(super) async fn list(State(state): State<AppState>, uri: Uri) -> ApiResult {
    let query = query_pairs(&uri)?;
    let project = query_value(&query, "project")
        .map(|raw| {
            raw.parse::<u64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| bad(format!("project `{raw}` must be a positive integer")))
        })
        .transpose()?;
    let status = query_value(&query, "status")
        .map(|raw| raw.parse::<IssueStatus>().map_err(|e| bad(e.to_string())))
        .transpose()?;
    let page = page_request(&query, DEFAULT_ISSUES, MAX_ISSUES)?;
    let found = state.store.issues_page(
        project,
        status,
        &page.cursor,
        page.limit,
        page.limit * EXAMINE_PER_ROW,
    )?;
    let views: Vec<IssueView<'_>> = found.items.iter().map(IssueView::from).collect();
    Ok(page_response(&uri, &query, &views, found.next.as_ref()))
}

/// `GET /api/v1/issues/{id}`: one issue.
pub(super) async fn get_one(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let issue = state.store.issue(&id)?.ok_or_else(|| not_found(&id))?;
    Ok(Json(IssueView::from(&issue)).into_response())
}

/// `GET /api/v1/issues/{id}/events?limit=&cursor=`: the kept events, newest first, each
/// exactly as the SDK sent it.
pub(super) async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult {
    let query = query_pairs(&uri)?;
    let page = page_request(&query, DEFAULT_EVENTS, MAX_EVENTS)?;
    if state.store.issue(&id)?.is_none() {
        return Err(not_found(&id));
    }
    let found = state
        .store
        .issue_events_page(&id, &page.cursor, page.limit)?;
    let events = &found.items;
    // Each payload is the JSON object the SDK sent (it parsed on ingest): join them as they
    // are rather than re-encode them.
    let mut body = Vec::with_capacity(2 + events.iter().map(|e| e.len() + 1).sum::<usize>());
    body.push(b'[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.trim_ascii());
    }
    body.push(b']');
    let response = ([(CONTENT_TYPE, "application/json")], body).into_response();
    Ok(with_next(response, &uri, &query, found.next.as_ref()))
}

/// `PATCH /api/v1/issues/{id}` with `{"status":"resolved"|"ignored"|"unresolved"}`.
pub(super) async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let body = read_body(body, MAX_BODY).await?;
    let patch: IssuePatch =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid body: {e}")))?;
    let status = patch
        .status
        .parse::<IssueStatus>()
        .map_err(|e| bad(e.to_string()))?;
    let issue = state
        .processor
        .set_issue_status(&id, status)
        .await
        .map_err(|error| match error {
            ProcessError::NotFound(_) => not_found(&id),
            ProcessError::Store(e) => e.into(),
            error @ ProcessError::NotDurable(_) => {
                HttpError::unavailable(format!("{error}; retry later"))
            }
            // A status change is neither a check-in nor a config: not reachable.
            error @ (ProcessError::Rejected { .. }
            | ProcessError::Refused { .. }
            | ProcessError::InvalidConfig(_)
            | ProcessError::Acknowledge(_)) => HttpError::internal(&error),
        })?;
    Ok(Json(IssueView::from(&issue)).into_response())
}

fn not_found(id: &str) -> HttpError {
    HttpError::not_found(format!("no issue has id `{id}`"))
}
