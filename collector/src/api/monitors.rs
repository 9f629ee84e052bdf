//! `/api/v1/monitors...` and `/api/v1/incidents`: list and inspect monitor environments,
//! check-ins and incidents; create, change and delete monitors through the processor.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::paging::{page_request, page_response};
use super::views::{CheckInView, IncidentView, LogView, MonitorView};
use crate::app::AppState;
use crate::engine::{ConfigPatch, MonitorEnv, MonitorKey, MonitorStatus, normalize_environment};
use crate::http::{HttpError, query_pairs, query_value, read_body};
use crate::processor::{Patch, ProcessError, Target};
use crate::store::Cursor;

/// Default and largest `limit` for check-ins, log entries and incidents.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
/// Default and largest page of monitor environments.
const MONITORS_DEFAULT: usize = 100;
const MONITORS_MAX: usize = 1000;
/// With a filter (`environment` or `status` of monitors, `project` of incidents), a page examines at most this many records per row asked
/// for, so a filter that matches little still reads a bounded amount; such a page may hold
/// fewer rows than `limit` (even none) and still carry a cursor.
const EXAMINE_PER_ROW: usize = 10;
/// Largest JSON body for `PUT` and `PATCH`.
const MAX_BODY: usize = 64 * 1024;

type ApiResult = Result<Response, HttpError>;

pub(super) fn bad(message: impl Into<String>) -> HttpError {
    HttpError::bad_request("bad_request", message)
}

pub(super) fn api_error(error: ProcessError) -> HttpError {
    match error {
        ProcessError::NotFound(message) => HttpError::not_found(message),
        ProcessError::InvalidConfig(e) => bad(e.to_string()),
        ProcessError::Rejected { rejection, .. } => bad(rejection.to_string()),
        ProcessError::Refused { refused, .. } => HttpError::forbidden(refused.to_string()),
        ProcessError::Store(e) => e.into(),
        ProcessError::NotDurable(_) => HttpError::unavailable(format!("{error}; retry later")),
        ProcessError::Acknowledge(refusal) => crate::ack::refusal_error(&refusal),
    }
}

fn project_param(raw: &str) -> Result<u64, HttpError> {
    raw.parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad(format!("project `{raw}` must be a positive integer")))
}

/// Project and normalized slug from the path.
fn monitor_path(project: &str, slug: &str) -> Result<(u64, String), HttpError> {
    let project = project_param(project)?;
    let key = MonitorKey::new(project, slug, None).map_err(|e| bad(e.to_string()))?;
    Ok((project, key.slug))
}

fn environment_param(query: &[(String, String)]) -> Result<Option<String>, HttpError> {
    query_value(query, "environment")
        .map(|env| normalize_environment(Some(env)).map_err(|e| bad(e.to_string())))
        .transpose()
}

fn monitors_response(status: StatusCode, monitors: &[MonitorEnv]) -> Response {
    let views: Vec<MonitorView<'_>> = monitors.iter().map(MonitorView::from).collect();
    (status, Json(views)).into_response()
}

/// `GET /api/v1/monitors?project=&environment=&status=&limit=&cursor=`: one page in key order
/// (project, slug, environment), the next page's cursor in the headers (`paging.rs`).
pub(super) async fn list(State(state): State<AppState>, uri: Uri) -> ApiResult {
    let query = query_pairs(&uri)?;
    let project = query_value(&query, "project")
        .map(project_param)
        .transpose()?;
    let environment = environment_param(&query)?;
    let status = match query_value(&query, "status") {
        None => None,
        Some("active") => Some(MonitorStatus::Active),
        Some("ok") => Some(MonitorStatus::Ok),
        Some("error") => Some(MonitorStatus::Error),
        Some("disabled") => Some(MonitorStatus::Disabled),
        Some(other) => {
            return Err(bad(format!(
                "status `{other}` is not one of active, ok, error, disabled"
            )));
        }
    };
    let page = page_request(&query, MONITORS_DEFAULT, MONITORS_MAX)?;
    let found = state.store.monitors_page(
        project,
        &page.cursor,
        page.limit,
        page.limit * EXAMINE_PER_ROW,
        |m| {
            environment
                .as_ref()
                .is_none_or(|env| &m.key.environment == env)
                && status.is_none_or(|status| m.status == status)
        },
    )?;
    let views: Vec<MonitorView<'_>> = found.items.iter().map(MonitorView::from).collect();
    Ok(page_response(&uri, &query, &views, found.next.as_ref()))
}

/// The environments a request addresses: one (`?environment=`) or all; 404 if none exist.
fn existing_envs(
    state: &AppState,
    project: u64,
    slug: &str,
    environment: Option<&str>,
) -> Result<Vec<MonitorEnv>, HttpError> {
    let envs = match environment {
        Some(env) => {
            let key = MonitorKey {
                project,
                slug: slug.to_owned(),
                environment: env.to_owned(),
            };
            state.store.monitor(&key)?.into_iter().collect()
        }
        None => state.store.monitor_envs(project, slug)?,
    };
    if envs.is_empty() {
        return Err(no_monitor(project, slug, environment));
    }
    Ok(envs)
}

/// The `404` for a monitor (or one environment of it) that does not exist.
fn no_monitor(project: u64, slug: &str, environment: Option<&str>) -> HttpError {
    let env = environment
        .map(|e| format!(" environment `{e}`"))
        .unwrap_or_default();
    HttpError::not_found(format!(
        "monitor `{slug}`{env} does not exist in project {project}"
    ))
}

/// `GET /api/v1/monitors/{project}/{slug}?limit=&cursor=`: its environments in key order
/// (shorter names first, then by name; at most `caps.environments_per_monitor`, so usually
/// one page).
pub(super) async fn get_one(
    State(state): State<AppState>,
    Path((project, slug)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult {
    let (project, slug) = monitor_path(&project, &slug)?;
    let query = query_pairs(&uri)?;
    let page = page_request(&query, MONITORS_DEFAULT, MONITORS_MAX)?;
    let found = state
        .store
        .monitor_envs_page(project, &slug, &page.cursor, page.limit)?;
    if found.items.is_empty() && page.cursor == Cursor::Start {
        return Err(no_monitor(project, &slug, None));
    }
    let views: Vec<MonitorView<'_>> = found.items.iter().map(MonitorView::from).collect();
    Ok(page_response(&uri, &query, &views, found.next.as_ref()))
}

/// The monitor environments a timeline (check-ins, log entries) reads: one or all.
fn timeline_envs(
    state: &AppState,
    project: &str,
    slug: &str,
    query: &[(String, String)],
) -> Result<Vec<MonitorKey>, HttpError> {
    let (project, slug) = monitor_path(project, slug)?;
    let environment = environment_param(query)?;
    let envs = existing_envs(state, project, &slug, environment.as_deref())?;
    Ok(envs.into_iter().map(|env| env.key).collect())
}

/// `GET /api/v1/monitors/{project}/{slug}/checkins?environment=&limit=&cursor=`, newest
/// first, every environment merged by time unless one is named.
pub(super) async fn checkins(
    State(state): State<AppState>,
    Path((project, slug)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult {
    let query = query_pairs(&uri)?;
    let envs = timeline_envs(&state, &project, &slug, &query)?;
    let page = page_request(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let found = state.store.checkins_page(&envs, &page.cursor, page.limit)?;
    let views: Vec<CheckInView<'_>> = found.items.iter().map(CheckInView::from).collect();
    Ok(page_response(&uri, &query, &views, found.next.as_ref()))
}

/// `GET /api/v1/monitors/{project}/{slug}/logs?environment=&limit=&cursor=`: `/ping/.../log`
/// entries, newest first.
pub(super) async fn logs(
    State(state): State<AppState>,
    Path((project, slug)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult {
    let query = query_pairs(&uri)?;
    let envs = timeline_envs(&state, &project, &slug, &query)?;
    let page = page_request(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let found = state.store.logs_page(&envs, &page.cursor, page.limit)?;
    let views: Vec<LogView<'_>> = found.items.iter().map(LogView::from).collect();
    Ok(page_response(&uri, &query, &views, found.next.as_ref()))
}

/// A JSON object body, with `environment` taken out.
async fn object_body(body: Body) -> Result<(Map<String, Value>, Option<String>), HttpError> {
    let bytes = read_body(body, MAX_BODY).await?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(bad("body must be a JSON object"));
    };
    let environment = match object.remove("environment") {
        None | Some(Value::Null) => None,
        Some(Value::String(env)) => {
            Some(normalize_environment(Some(&env)).map_err(|e| bad(e.to_string()))?)
        }
        Some(_) => return Err(bad("environment must be a string")),
    };
    Ok((object, environment))
}

fn target(project: u64, slug: String, environment: Option<String>) -> Target {
    match environment {
        Some(environment) => Target::One(MonitorKey {
            project,
            slug,
            environment,
        }),
        None => Target::AllEnvironments { project, slug },
    }
}

/// `PUT /api/v1/monitors/{project}/{slug}`: create or replace the config (all environments,
/// or the one named by `environment`). 201 when created.
pub(super) async fn put(
    State(state): State<AppState>,
    Path((project, slug)): Path<(String, String)>,
    body: Body,
) -> ApiResult {
    let (project, slug) = monitor_path(&project, &slug)?;
    let (object, environment) = object_body(body).await?;
    let config = ConfigPatch::from_json(&Value::Object(object))
        .and_then(|patch| patch.to_config())
        .map_err(|e| bad(e.to_string()))?;
    let (monitors, created) = state
        .processor
        .put(target(project, slug, environment), config)
        .await
        .map_err(api_error)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(monitors_response(status, &monitors))
}

/// `PATCH /api/v1/monitors/{project}/{slug}`: `muted`, `disabled` and config fields.
pub(super) async fn patch(
    State(state): State<AppState>,
    Path((project, slug)): Path<(String, String)>,
    body: Body,
) -> ApiResult {
    let (project, slug) = monitor_path(&project, &slug)?;
    let (mut object, environment) = object_body(body).await?;
    let mut flag = |name: &str| match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(bad(format!("{name} must be true or false"))),
    };
    let muted = flag("muted")?;
    let disabled = flag("disabled")?;
    let snooze = snooze_field(object.remove("snooze"))?;
    let config = ConfigPatch::from_json(&Value::Object(object)).map_err(|e| bad(e.to_string()))?;
    let monitors = state
        .processor
        .patch(
            target(project, slug, environment),
            Patch {
                config,
                muted,
                disabled,
                snooze,
            },
        )
        .await
        .map_err(api_error)?;
    Ok(monitors_response(StatusCode::OK, &monitors))
}

/// The longest snooze: 30 days (a longer quiet is what `muted` is for).
const MAX_SNOOZE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// `"snooze"` of a `PATCH`: a duration from now (`"2h"`), or `false` to end the snooze.
pub(super) fn snooze_field(
    value: Option<Value>,
) -> Result<Option<Option<std::time::Duration>>, HttpError> {
    let hint =
        "snooze must be a duration such as \"2h\" (at most 30 days), or false to end the snooze";
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(false)) => Ok(Some(None)),
        Some(Value::String(text)) => {
            let duration = humantime::parse_duration(text.trim())
                .map_err(|e| bad(format!("snooze `{text}` is not a duration ({e}); {hint}")))?;
            if duration.is_zero() || duration > MAX_SNOOZE {
                return Err(bad(format!("snooze `{text}` is out of range; {hint}")));
            }
            Ok(Some(Some(duration)))
        }
        Some(_) => Err(bad(hint)),
    }
}

/// `DELETE /api/v1/monitors/{project}/{slug}?environment=`.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path((project, slug)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult {
    let (project, slug) = monitor_path(&project, &slug)?;
    let environment = environment_param(&query_pairs(&uri)?)?;
    let deleted = state
        .processor
        .delete(target(project, slug, environment))
        .await
        .map_err(api_error)?;
    let deleted: Vec<_> = deleted
        .iter()
        .map(|k| json!({"project": k.project, "slug": k.slug, "environment": k.environment}))
        .collect();
    Ok(Json(json!({ "deleted": deleted })).into_response())
}

/// `GET /api/v1/incidents?open=true&project=&limit=&cursor=`, newest first.
pub(super) async fn incidents(State(state): State<AppState>, uri: Uri) -> ApiResult {
    let query = query_pairs(&uri)?;
    let open = match query_value(&query, "open") {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => return Err(bad(format!("open `{other}` must be true or false"))),
    };
    let project = query_value(&query, "project")
        .map(project_param)
        .transpose()?;
    let page = page_request(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let found = state.store.incidents_page(
        open,
        project,
        &page.cursor,
        page.limit,
        page.limit * EXAMINE_PER_ROW,
    )?;
    let views: Vec<IncidentView<'_>> = found.items.iter().map(IncidentView::from).collect();
    Ok(page_response(&uri, &query, &views, found.next.as_ref()))
}

/// Who acknowledges, when the body does not say: the API authenticates a token, not a person.
const API_ACKNOWLEDGER: &str = "admin (API)";

/// The body of `POST /api/v1/incidents/{id}/ack`; empty is `{}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// The name shown as who acknowledged (`watchpost incidents ack --by`).
    by: Option<String>,
}

/// `POST /api/v1/incidents/{id}/ack` with an optional `{"by": "name"}`: acknowledges an open
/// monitor incident, which stops its repeats and sends `monitor.acknowledged`. Answers the
/// incident; `409` when it was acknowledged already or is not open.
pub(super) async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let id = uuid::Uuid::try_parse(id.trim()).map_err(|_| {
        bad(format!(
            "incident id `{id}` is not an incident id (32 hex digits, as `GET /api/v1/incidents` shows them)"
        ))
    })?;
    let body = read_body(body, MAX_BODY).await?;
    let ack: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid body: {e}")))?
    };
    let by = ack.by.as_deref().unwrap_or(API_ACKNOWLEDGER);
    let incident = state
        .processor
        .acknowledge(id, by)
        .await
        .map_err(api_error)?;
    Ok(Json(IncidentView::from(&incident)).into_response())
}
