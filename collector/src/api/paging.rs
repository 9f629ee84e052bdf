//! `limit` and `cursor` for every list of the management API.
//!
//! The body stays what it was — a JSON array — and the cursor for the next page travels in
//! headers: `X-Next-Cursor: <cursor>` and `Link: <path?...&cursor=...>; rel="next"` (RFC 8288),
//! both absent on the last page. Clients that read the array (the CLI, scripts, every test)
//! keep working unchanged, and following the `Link` header is what generic HTTP tooling does.
//! An envelope object (`{"items": [...], "next": ...}`) would have broken all of them for no
//! gain.

use std::fmt::Write as _;

use axum::Json;
use axum::http::{HeaderName, HeaderValue, Uri, header::LINK};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::engine::text::percent_encode;
use crate::http::{HttpError, query_value};
use crate::store::Cursor;

/// The header that carries the next page's cursor.
pub const NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

/// What a list request asked for.
#[derive(Debug)]
pub(super) struct PageRequest {
    pub(super) limit: usize,
    pub(super) cursor: Cursor,
}

/// `limit` (from 1 to `max`, `default` when absent) and `cursor` (first page when absent).
pub(super) fn page_request(
    query: &[(String, String)],
    default: usize,
    max: usize,
) -> Result<PageRequest, HttpError> {
    let limit = match query_value(query, "limit") {
        None => default,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                HttpError::bad_request(
                    "bad_request",
                    format!("limit `{raw}` must be a number from 1 to {max}"),
                )
            })?,
    };
    let cursor = match query_value(query, "cursor") {
        None => Cursor::Start,
        Some(raw) => {
            Cursor::parse(raw).map_err(|e| HttpError::bad_request("bad_request", e.to_string()))?
        }
    };
    Ok(PageRequest { limit, cursor })
}

/// The array `items` as the body, with the headers for `next` if there is a next page.
pub(super) fn page_response<T: Serialize>(
    uri: &Uri,
    query: &[(String, String)],
    items: &[T],
    next: Option<&Cursor>,
) -> Response {
    with_next(Json(items).into_response(), uri, query, next)
}

/// `response` (a page, however its body was made) with the headers for `next` if there is a
/// next page.
pub(super) fn with_next(
    mut response: Response,
    uri: &Uri,
    query: &[(String, String)],
    next: Option<&Cursor>,
) -> Response {
    if let Some(next) = next {
        let next = next.encode();
        let mut link = format!("<{}?", uri.path());
        for (name, value) in query.iter().filter(|(name, _)| name != "cursor") {
            let _ = write!(link, "{}={}&", percent_encode(name), percent_encode(value));
        }
        let _ = write!(link, "cursor={next}>; rel=\"next\"");
        let headers = response.headers_mut();
        // Both are ASCII by construction (base64url and percent-encoding).
        if let (Ok(cursor), Ok(link)) = (HeaderValue::from_str(&next), HeaderValue::from_str(&link))
        {
            headers.insert(NEXT_CURSOR, cursor);
            headers.insert(LINK, link);
        }
    }
    response
}
