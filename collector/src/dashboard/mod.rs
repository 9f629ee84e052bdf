//! The HTML dashboard (docs/http-api.md, "The dashboard"): server-rendered pages at `/` behind a login with the
//! admin token, readable without JavaScript and on a phone, plus status badges for READMEs.
//!
//! It reads the store and changes monitors only through the processor, like the JSON API.
//! It must never render anything a user or SDK sent as markup (maud escapes; `PreEscaped` is
//! used for the constant stylesheet only), never put the admin token in a page or cookie, and
//! never act on a form without the session's CSRF token. Every response carries a
//! Content-Security-Policy that allows no script at all.

mod ack;
mod badge;
pub(crate) mod data;
mod pages;
mod session;
pub(crate) mod state;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path as UrlPath, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, RETRY_AFTER, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use maud::Markup;
use serde::Deserialize;
use subtle::ConstantTimeEq;

pub(crate) use session::Viewer;

use crate::app::{AppState, client_ip};
use crate::engine::{IssueStatus, MonitorEnv, MonitorKey, MonitorStatus, normalize_environment};
use crate::http::{query_pairs, query_value};
use crate::probe::Snoozed;
use crate::processor::{Patch, ProcessError, Target};
use crate::store::{Cursor, Page, StoreError};
use crate::throttle;
use pages::{EnvDetail, MonitorPage, MonitorRow, Overview, Pager, TIMELINE};

/// Check-ins listed on a monitor's page per environment (the timeline shows [`TIMELINE`]).
const CHECKINS_SHOWN: usize = TIMELINE;
/// Ping log entries listed per environment.
const LOGS_SHOWN: usize = 20;
/// Alert deliveries listed on the overview.
const DELIVERIES_SHOWN: usize = 10;
/// Rows per page of the paged lists (`/monitors`, `/incidents`, `/issues`, `/alerts`).
const PER_PAGE: usize = 50;
/// Environments per page of a monitor's page (each a section with its check-ins).
const ENVS_PER_PAGE: usize = 20;
/// Incidents listed per environment on a monitor's page.
const INCIDENTS_SHOWN: usize = 20;
/// Open incidents and unresolved issues listed on the overview.
const OVERVIEW_SHOWN: usize = 50;
/// Failing monitors listed on the overview.
const FAILING_SHOWN: usize = 50;
/// Checks drawn in a probe's latency sparkline.
const PROBE_CHECKS_SHOWN: usize = 50;

/// The dashboard's routes: pages, login/logout, actions, badges.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/monitors", get(monitors))
        .route(
            "/monitors/{project}/{slug}",
            get(monitor).post(monitor_action),
        )
        .route("/incidents", get(incidents))
        .route("/incidents/{id}/ack", post(incident_ack))
        .route(
            "/ack/{token}",
            get(ack::confirm_page).post(ack::acknowledge),
        )
        .route("/issues", get(issues))
        .route("/issues/{id}", get(issue).post(issue_action))
        .route("/probes", get(probes).post(probe_action))
        .route("/alerts", get(alerts))
        .route("/refusals", get(refusals))
        .route("/badge/{project}/{file}", get(badge::badge))
        .layer(map_response(security_headers))
}

/// Headers on every dashboard response: no script, no framing, no sniffing, no caching of pages
/// that show state.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&pages::CSP) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A logged-in browser; anyone else is sent to the login form (and back afterwards).
impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Viewer, Response> {
        state
            .dashboard
            .sessions
            .find(&parts.headers)
            .map(|mut viewer| {
                viewer.probes = state.probes.configured().next().is_some();
                viewer
            })
            .ok_or_else(|| {
                let next = safe_next(parts.uri.path()).unwrap_or("/");
                Redirect::to(&format!("/login?next={next}")).into_response()
            })
    }
}

/// A local path to return to after login: only plain absolute paths of this site, so a crafted
/// login link cannot send the browser elsewhere.
fn safe_next(next: &str) -> Option<&str> {
    let plain = next
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    (plain && next.starts_with('/') && !next.starts_with("//")).then_some(next)
}

/// An error shown as a page.
struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
    viewer: Option<Viewer>,
}

impl PageError {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> PageError {
        PageError {
            status,
            title,
            message: message.into(),
            viewer: None,
        }
    }

    fn for_viewer(mut self, viewer: &Viewer) -> PageError {
        self.viewer = Some(viewer.clone());
        self
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> PageError {
        tracing::error!(%error, "dashboard cannot read the store");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            format!("The store could not be read: {error}"),
        )
    }
}

impl From<ProcessError> for PageError {
    fn from(error: ProcessError) -> PageError {
        let status = match &error {
            ProcessError::NotFound(_) => StatusCode::NOT_FOUND,
            ProcessError::Rejected { .. }
            | ProcessError::Refused { .. }
            | ProcessError::InvalidConfig(_) => StatusCode::BAD_REQUEST,
            ProcessError::Store(_) | ProcessError::NotDurable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProcessError::Acknowledge(refusal) => crate::ack::refusal_status(refusal).0,
        };
        PageError::new(status, "That did not work", error.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = pages::error(self.viewer.as_ref(), self.title, &self.message);
        (self.status, page).into_response()
    }
}

type PageResult = Result<Response, PageError>;

fn page(markup: Markup) -> PageResult {
    Ok(markup.into_response())
}

fn csrf_checked(viewer: &Viewer, presented: &str) -> Result<(), PageError> {
    if viewer.csrf_matches(presented) {
        Ok(())
    } else {
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form does not belong to your current session. Go back, reload the page and try again.",
        )
        .for_viewer(viewer))
    }
}

// ---- login ---------------------------------------------------------------------------------

async fn login_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let next = query_pairs(&uri)
        .ok()
        .and_then(|q| {
            query_value(&q, "next")
                .and_then(safe_next)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "/".to_owned());
    if state.dashboard.sessions.find(&headers).is_some() {
        return Redirect::to(&next).into_response();
    }
    pages::login(None, &next).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    next: String,
}

/// Checks the admin token; wrong ones count against the client's address like the API's
/// (`throttle.rs`), and a locked-out address is refused before its token is compared.
async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(&form.next).unwrap_or("/");
    let client = client_ip(&extensions);
    if let Err(seconds) = state.auth_throttle.check(client) {
        let page = pages::login(Some(&throttle::refusal(seconds)), next);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, seconds.to_string())],
            page,
        )
            .into_response();
    }
    let expected = state.admin_token.expose().as_bytes();
    if !bool::from(form.token.trim().as_bytes().ct_eq(expected)) {
        tracing::warn!("dashboard login with a wrong admin token");
        state.auth_throttle.failed(client);
        let page = pages::login(Some("That is not the admin token."), next);
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    state.auth_throttle.succeeded(client);
    let viewer = state.dashboard.sessions.create();
    let cookie = session::set_cookie(&viewer, state.dashboard.secure_cookies);
    ([(SET_COOKIE, cookie)], Redirect::to(next)).into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    csrf_checked(&viewer, &form.csrf)?;
    state.dashboard.sessions.end(&viewer.session);
    let cookie = session::clear_cookie(state.dashboard.secure_cookies);
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

// ---- pages ---------------------------------------------------------------------------------

/// Rows for monitor environments already read: each with its newest check-ins.
fn monitor_rows(
    state: &AppState,
    monitors: impl IntoIterator<Item = MonitorEnv>,
) -> Result<Vec<MonitorRow>, StoreError> {
    monitors
        .into_iter()
        .map(|monitor| {
            let recent = state.store.checkins(&monitor.key, TIMELINE)?;
            Ok(MonitorRow { monitor, recent })
        })
        .collect()
}

async fn overview(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let open_incidents =
        state
            .store
            .incidents_page(true, None, &Cursor::Start, OVERVIEW_SHOWN, OVERVIEW_SHOWN)?;
    // A failing monitor is one with an open incident, so the open incidents name them: read by
    // key rather than found by scanning every monitor (500,000 of them took seconds).
    let mut failing = Vec::new();
    for incident in &open_incidents.items {
        if failing.len() == FAILING_SHOWN {
            break;
        }
        if let Some(monitor) = state.store.monitor(&incident.key)?
            && monitor.status == MonitorStatus::Error
            && !failing.iter().any(|m: &MonitorEnv| m.key == monitor.key)
        {
            failing.push(monitor);
        }
    }
    let overview = Overview {
        counts: state.store.monitor_counts()?,
        failing: monitor_rows(&state, failing)?,
        open_incidents: open_incidents.items,
        more_open_incidents: open_incidents.next.is_some(),
        unresolved: data::unresolved_issues(&state, OVERVIEW_SHOWN)?,
        probes: data::probes(&state, 0)?,
        deliveries: data::deliveries(&state, &Cursor::Start, DELIVERIES_SHOWN)?.items,
        failed_deliveries: data::failed_deliveries(&state)?,
        store_bytes: state.store.stats().size_on_disk,
        disk: state.store.disk_space(),
    };
    page(pages::overview(&viewer, &overview, Utc::now()))
}

/// `/monitors?cursor=`: one page of [`PER_PAGE`] in key order (project, slug, environment),
/// read by a range scan from the cursor, with links to the pages either side and the total
/// from the store's counters.
async fn monitors(State(state): State<AppState>, viewer: Viewer, uri: Uri) -> PageResult {
    let from = page_cursor(&uri, &viewer)?;
    let found = state
        .store
        .monitors_page(None, &from, PER_PAGE, PER_PAGE, |_| true)?;
    let pager = pager("/monitors", &found);
    let total = state.store.monitor_counts()?.total();
    let rows = monitor_rows(&state, found.items)?;
    page(pages::monitors(&viewer, &rows, total, &pager, Utc::now()))
}

/// The `cursor` of a paged page's address (the first page without one).
fn page_cursor(uri: &Uri, viewer: &Viewer) -> Result<Cursor, PageError> {
    let bad_link = || {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Bad page link",
            "This page link is damaged. Start again from the first page of the list.",
        )
        .for_viewer(viewer)
    };
    let query = query_pairs(uri).map_err(|_| bad_link())?;
    match query_value(&query, "cursor") {
        None => Ok(Cursor::Start),
        Some(raw) => Cursor::parse(raw).map_err(|_| bad_link()),
    }
}

/// Links to the pages either side of `found`, a page of the list at `path`.
fn pager<T>(path: &str, found: &Page<T>) -> Pager {
    let link = |cursor: &Cursor| match cursor {
        Cursor::Start => path.to_owned(),
        cursor => format!("{path}?cursor={}", cursor.encode()),
    };
    Pager {
        prev: found.prev.as_ref().map(link),
        next: found.next.as_ref().map(link),
    }
}

/// Project and normalized slug from the path, or a 404 page.
fn monitor_path(project: &str, slug: &str) -> Result<(u64, String), PageError> {
    let not_found = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            "No such monitor",
            "There is no monitor at this address.",
        )
    };
    let project: u64 = project.parse().map_err(|_| not_found())?;
    let key = MonitorKey::new(project, slug, None).map_err(|_| not_found())?;
    Ok((project, key.slug))
}

async fn monitor(
    State(state): State<AppState>,
    viewer: Viewer,
    UrlPath((project, slug)): UrlPath<(String, String)>,
    uri: Uri,
) -> PageResult {
    let (project, slug) = monitor_path(&project, &slug).map_err(|e| e.for_viewer(&viewer))?;
    let from = page_cursor(&uri, &viewer)?;
    let found = state
        .store
        .monitor_envs_page(project, &slug, &from, ENVS_PER_PAGE)?;
    if found.items.is_empty() && found.prev.is_none() {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "No such monitor",
            format!("Monitor `{slug}` does not exist in project {project}."),
        )
        .for_viewer(&viewer));
    }
    let pager = pager(&pages::monitor_url(project, &slug), &found);
    let envs = found
        .items
        .into_iter()
        .map(|monitor| {
            let key = std::slice::from_ref(&monitor.key);
            Ok(EnvDetail {
                checkins: state.store.checkins(&monitor.key, CHECKINS_SHOWN)?,
                logs: state.store.logs(&monitor.key, LOGS_SHOWN)?,
                incidents: state
                    .store
                    .monitor_incidents_page(key, &Cursor::Start, INCIDENTS_SHOWN)?
                    .items,
                monitor,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let base = &state.dashboard.base_url;
    let key = state.dashboard.badge_key(project, &slug);
    let badge = |ext: &str| format!("{base}/badge/{project}/{slug}.{ext}?key={key}");
    let notice = query_pairs(&uri)
        .ok()
        .and_then(|q| query_value(&q, "done").and_then(notice));
    let page_data = MonitorPage {
        project,
        badge_svg: badge("svg"),
        badge_json: badge("json"),
        slug,
        envs,
        pager,
        notice,
    };
    page(pages::monitor(&viewer, &page_data, Utc::now()))
}

/// What a monitor action did, as shown after the redirect. A fixed set: the query string
/// never reaches the page.
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "mute" => "Muted: check-ins and incidents are still tracked, but no alerts are sent.",
        "unmute" => "Unmuted: alerts are sent again.",
        "disable" => "Disabled: check-ins are dropped and nothing is detected until enabled.",
        "enable" => "Enabled: the next check-in is expected from now on.",
        "snooze1h" => "Snoozed for an hour: incidents still open when it ends are alerted then.",
        "unsnooze" => "Unsnoozed: alerts are sent again.",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct MonitorActionForm {
    csrf: String,
    action: String,
    #[serde(default)]
    environment: String,
}

/// Mute, unmute, disable or enable one environment (or all, without `environment`), through
/// the processor like the API's `PATCH`.
async fn monitor_action(
    State(state): State<AppState>,
    viewer: Viewer,
    UrlPath((project, slug)): UrlPath<(String, String)>,
    Form(form): Form<MonitorActionForm>,
) -> PageResult {
    csrf_checked(&viewer, &form.csrf)?;
    let (project, slug) = monitor_path(&project, &slug).map_err(|e| e.for_viewer(&viewer))?;
    let mut patch = Patch::default();
    match form.action.as_str() {
        "mute" => patch.muted = Some(true),
        "unmute" => patch.muted = Some(false),
        "disable" => patch.disabled = Some(true),
        "enable" => patch.disabled = Some(false),
        "snooze1h" => patch.snooze = Some(Some(std::time::Duration::from_secs(3600))),
        "unsnooze" => patch.snooze = Some(None),
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "The action must be mute, unmute, snooze1h, unsnooze, disable or enable.",
            )
            .for_viewer(&viewer));
        }
    }
    let target = if form.environment.is_empty() {
        Target::AllEnvironments {
            project,
            slug: slug.clone(),
        }
    } else {
        let environment = normalize_environment(Some(&form.environment)).map_err(|e| {
            PageError::new(StatusCode::BAD_REQUEST, "Bad environment", e.to_string())
                .for_viewer(&viewer)
        })?;
        Target::One(MonitorKey {
            project,
            slug: slug.clone(),
            environment,
        })
    };
    state
        .processor
        .patch(target, patch)
        .await
        .map_err(|e| PageError::from(e).for_viewer(&viewer))?;
    let back = format!(
        "{}?done={}",
        pages::monitor_url(project, &slug),
        form.action
    );
    Ok(Redirect::to(&back).into_response())
}

/// The dashboard's acknowledge button: the session's CSRF token and a name.
#[derive(Debug, Deserialize)]
struct IncidentAckForm {
    csrf: String,
    #[serde(default)]
    by: String,
}

/// `POST /incidents/{id}/ack`: acknowledges an open incident, then back to the incidents.
async fn incident_ack(
    State(state): State<AppState>,
    viewer: Viewer,
    UrlPath(id): UrlPath<String>,
    Form(form): Form<IncidentAckForm>,
) -> PageResult {
    csrf_checked(&viewer, &form.csrf)?;
    let id = uuid::Uuid::try_parse(&id).map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Unknown incident",
            format!("`{id}` is not an incident id; pick the incident from the list."),
        )
        .for_viewer(&viewer)
    })?;
    state
        .processor
        .acknowledge(id, &form.by)
        .await
        .map_err(|e| PageError::from(e).for_viewer(&viewer))?;
    Ok(Redirect::to("/incidents").into_response())
}

/// `/incidents?cursor=`: every incident newest first, a page at a time from the time index,
/// with the open ones (newest [`OVERVIEW_SHOWN`]) above on the first page.
async fn incidents(State(state): State<AppState>, viewer: Viewer, uri: Uri) -> PageResult {
    let from = page_cursor(&uri, &viewer)?;
    let all = state
        .store
        .incidents_page(false, None, &from, PER_PAGE, PER_PAGE)?;
    let open = match from {
        Cursor::Start => Some(state.store.incidents(true, OVERVIEW_SHOWN)?),
        _ => None,
    };
    page(pages::incidents(
        &viewer,
        open.as_deref(),
        &all.items,
        &pager("/incidents", &all),
        Utc::now(),
    ))
}

/// `/issues?cursor=`: issues most recently seen first, a page at a time.
async fn issues(State(state): State<AppState>, viewer: Viewer, uri: Uri) -> PageResult {
    let now = Utc::now();
    let from = page_cursor(&uri, &viewer)?;
    let found = state
        .store
        .issues_page(None, None, &from, PER_PAGE, PER_PAGE)?;
    let pager = pager("/issues", &found);
    let issues = data::with_activity(&state, found.items, now)?;
    page(pages::issues(&viewer, Some(&issues), &pager, now))
}

async fn issue(
    State(state): State<AppState>,
    viewer: Viewer,
    UrlPath(id): UrlPath<String>,
) -> PageResult {
    let now = Utc::now();
    let Some(detail) = data::issue_detail(&state, &id, now)? else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "No such issue",
            "There is no issue at this address.",
        )
        .for_viewer(&viewer));
    };
    page(pages::issue(&viewer, &detail, now))
}

async fn probes(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let probes = data::probes(&state, PROBE_CHECKS_SHOWN)?;
    page(pages::probes(&viewer, probes.as_deref(), Utc::now()))
}

#[derive(Deserialize)]
struct ProbeActionForm {
    csrf: String,
    action: String,
    name: String,
}

/// Snooze a probe for an hour, or end its snooze, through its task like the API's
/// `POST /api/v1/probes/{name}/snooze`.
async fn probe_action(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<ProbeActionForm>,
) -> PageResult {
    csrf_checked(&viewer, &form.csrf)?;
    let now = Utc::now();
    let until = match form.action.as_str() {
        "snooze1h" => Some(now + chrono::TimeDelta::hours(1)),
        "unsnooze" => None,
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "The action must be snooze1h or unsnooze.",
            )
            .for_viewer(&viewer));
        }
    };
    let snoozed = state
        .probes
        .snooze(&form.name, until)
        .await
        .map_err(|e| PageError::from(e).for_viewer(&viewer))?;
    match snoozed {
        Snoozed::Done(_) => Ok(Redirect::to("/probes").into_response()),
        Snoozed::NoProbe => Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Unknown probe",
            format!("No probe `{}` is configured; pick one from the list.", form.name),
        )
        .for_viewer(&viewer)),
        Snoozed::ProberAway => Err(PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not snoozed",
            "The prober is not running right now (the collector is starting or stopping); try again in a few seconds.",
        )
        .for_viewer(&viewer)),
    }
}

/// `/alerts?cursor=`: alert deliveries newest first, a page at a time.
async fn alerts(State(state): State<AppState>, viewer: Viewer, uri: Uri) -> PageResult {
    let from = page_cursor(&uri, &viewer)?;
    let found = data::deliveries(&state, &from, PER_PAGE)?;
    let pager = pager("/alerts", &found);
    page(pages::alerts(&viewer, &found.items, &pager, Utc::now()))
}

async fn refusals(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let now = Utc::now();
    let refusals = state.processor.refusals().list(None, now);
    page(pages::refusals(&viewer, &refusals, now))
}

#[derive(Deserialize)]
struct IssueActionForm {
    csrf: String,
    action: String,
    /// `issue` when the form is on the issue's own page, to return there.
    #[serde(default)]
    from: String,
}

/// Resolve, ignore or reopen an issue, through the processor like the API's `PATCH`.
async fn issue_action(
    State(state): State<AppState>,
    viewer: Viewer,
    UrlPath(id): UrlPath<String>,
    Form(form): Form<IssueActionForm>,
) -> PageResult {
    csrf_checked(&viewer, &form.csrf)?;
    let status = match form.action.as_str() {
        "resolve" => IssueStatus::Resolved,
        "ignore" => IssueStatus::Ignored,
        "unresolve" => IssueStatus::Unresolved,
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "The action must be resolve, ignore or unresolve.",
            )
            .for_viewer(&viewer));
        }
    };
    state
        .processor
        .set_issue_status(&id, status)
        .await
        .map_err(|e| PageError::from(e).for_viewer(&viewer))?;
    let back = match form.from.as_str() {
        "issue" => pages::issue_url(&id),
        _ => "/issues".to_owned(),
    };
    Ok(Redirect::to(&back).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next("/monitors/1/backup"), Some("/monitors/1/backup"));
        assert_eq!(safe_next("/"), Some("/"));
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/x?y=1",
            "",
            "/a b",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }

    #[test]
    fn notices_come_from_a_fixed_set() {
        assert!(notice("mute").is_some());
        assert!(notice("<script>").is_none());
    }
}
