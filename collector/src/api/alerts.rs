//! `GET /api/v1/alerts`: alert deliveries, newest first, so a person can see what was sent,
//! what is still trying (and why) and what failed for good. Reads only.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use serde::Serialize;

use super::paging::{page_request, page_response};
use crate::alert::{DeliveryState, OutboxEntry};
use crate::app::AppState;
use crate::engine::alerting::Payload;
use crate::engine::text::rfc3339_millis;
use crate::http::{HttpError, query_pairs, query_value};
use crate::store::DeliveryFilter;

/// Default and largest `limit`.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
/// With `state` or `channel`, a page examines at most this many deliveries per row asked for.
const EXAMINE_PER_ROW: usize = 10;

/// A delivery: one alert (or digest) to one channel.
#[derive(Debug, Serialize)]
pub(super) struct DeliveryView<'a> {
    id: u64,
    channel: &'a str,
    rule: &'a str,
    /// The alert kind, or `digest` for a backlog collapsed into one message.
    kind: &'static str,
    title: String,
    state: DeliveryState,
    attempts: u32,
    created_at: String,
    /// When the next attempt is due; only while pending.
    next_attempt_at: Option<String>,
    sent_at: Option<String>,
    last_error: Option<&'a str>,
}

impl<'a> From<&'a OutboxEntry> for DeliveryView<'a> {
    fn from(entry: &'a OutboxEntry) -> Self {
        let (kind, title) = match &entry.payload {
            Payload::Alert(alert) => (alert.kind.as_str(), alert.title.clone()),
            Payload::Digest(digest) => ("digest", digest.headline()),
        };
        DeliveryView {
            id: entry.id,
            channel: &entry.channel,
            rule: &entry.rule,
            kind,
            title,
            state: entry.state,
            attempts: entry.attempts,
            created_at: rfc3339_millis(entry.created_at),
            next_attempt_at: (entry.state == DeliveryState::Pending)
                .then(|| rfc3339_millis(entry.next_attempt_at)),
            sent_at: entry.sent_at.map(rfc3339_millis),
            last_error: entry.last_error.as_deref(),
        }
    }
}

/// `GET /api/v1/alerts?state=&channel=&limit=&cursor=`: deliveries, newest first.
pub(super) async fn list(State(state): State<AppState>, uri: Uri) -> Result<Response, HttpError> {
    let query = query_pairs(&uri)?;
    let bad = |message: String| HttpError::bad_request("bad_request", message);
    let wanted = query_value(&query, "state")
        .map(|raw| match raw {
            "pending" => Ok(DeliveryState::Pending),
            "sent" => Ok(DeliveryState::Sent),
            "failed" => Ok(DeliveryState::Failed),
            "suppressed" => Ok(DeliveryState::Suppressed),
            other => Err(bad(format!(
                "unknown state `{other}`; use pending, sent, failed or suppressed"
            ))),
        })
        .transpose()?;
    let page = page_request(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let filter = DeliveryFilter {
        state: wanted,
        channel: query_value(&query, "channel"),
    };
    let found = state.store.deliveries_page(
        &filter,
        &page.cursor,
        page.limit,
        page.limit * EXAMINE_PER_ROW,
    )?;
    let views: Vec<DeliveryView<'_>> = found.items.iter().map(DeliveryView::from).collect();
    Ok(page_response(&uri, &query, &views, found.next.as_ref()))
}
