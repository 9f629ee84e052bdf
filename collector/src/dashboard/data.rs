//! What the dashboard reads besides monitors and incidents, in one place: issues, probes and
//! alert deliveries. Each section is `None` while this build does not track it, and the pages
//! hide it; when the store gains the data, the function here starts returning `Some` and every
//! page and count lights up with no other change. Reads only; changes go through
//! [`set_issue_status`], which is the one place an issue action is wired.

use chrono::{DateTime, Utc};

use crate::engine::{Issue, IssueStatus};
use crate::server::AppState;
use crate::store::StoreError;

/// An uptime probe as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    /// The configured name (never the URL: it may carry a token).
    pub name: String,
    /// Whether it is up.
    pub up: bool,
    /// Latency of the last check, in milliseconds.
    pub latency_ms: Option<u64>,
    /// When it was last checked.
    pub checked_at: Option<DateTime<Utc>>,
}

/// An alert delivery as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// The channel's name.
    pub channel: String,
    /// `monitor.failed`, ...
    pub kind: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last error, for failed and retrying deliveries.
    pub last_error: Option<String>,
    /// When the alert was raised.
    pub created: DateTime<Utc>,
}

/// Every issue, most recently seen first; `None` until the store keeps issues.
pub fn issues(_state: &AppState) -> Result<Option<Vec<Issue>>, StoreError> {
    Ok(None)
}

/// Every probe; `None` until probes run in this build.
pub fn probes(_state: &AppState) -> Result<Option<Vec<ProbeRow>>, StoreError> {
    Ok(None)
}

/// Recent alert deliveries, newest first; `None` until the dispatcher records them.
pub fn deliveries(_state: &AppState) -> Result<Option<Vec<DeliveryRow>>, StoreError> {
    Ok(None)
}

/// Why an issue action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum IssueActionError {
    /// This build keeps no issues.
    #[error("this collector does not track issues yet")]
    Unavailable,
    /// No issue has that id.
    #[error("no issue has id `{0}`")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Resolves, ignores or reopens an issue.
pub async fn set_issue_status(
    _state: &AppState,
    _id: &str,
    _status: IssueStatus,
) -> Result<(), IssueActionError> {
    Err(IssueActionError::Unavailable)
}
