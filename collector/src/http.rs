//! HTTP plumbing shared by ingest and the API: the JSON error response every rejection uses,
//! and body reading with limits. Knows nothing about monitors; never touches state.

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

/// A rejection: a status, a sentence for a person, and a short reason label for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The 4xx/5xx status.
    pub status: StatusCode,
    /// `{"error": message}`.
    pub message: String,
    /// Metric label, e.g. `bad_request`, `unauthorized`.
    pub reason: &'static str,
    /// Seconds to wait before retrying: sent as `Retry-After` and `X-Sentry-Rate-Limits`.
    pub retry_after: Option<u64>,
    /// The `X-Sentry-Rate-Limits` categories the wait applies to (`;`-separated, Sentry's
    /// names such as `monitor` or `error`); empty for every category.
    pub retry_categories: &'static str,
}

impl HttpError {
    /// Any status with a reason label.
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
            reason,
            retry_after: None,
            retry_categories: "",
        }
    }

    /// Tells the client to wait `seconds` before sending items of `categories` again with this
    /// key (`""`: every category), so an SDK pauses only what was limited.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64, categories: &'static str) -> HttpError {
        self.retry_after = Some(seconds);
        self.retry_categories = categories;
        self
    }

    /// 400 with a specific reason label.
    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, reason, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 408: the request body did not arrive within `server.body_timeout`.
    pub fn body_timeout(limit: std::time::Duration) -> HttpError {
        HttpError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s; nothing was stored. Send it again on a faster link, or in smaller requests",
                limit.as_secs()
            ),
        )
    }

    /// 503: the collector cannot do its job right now (store not writable).
    pub fn unavailable(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500, logged; the person gets a generic sentence.
    pub fn internal(error: &dyn std::error::Error) -> HttpError {
        tracing::error!(%error, "internal error");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error: {error}"),
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            let headers = response.headers_mut();
            headers.insert(axum::http::header::RETRY_AFTER, seconds.into());
            // `<seconds>:<categories>:<scope>`; no categories means every category.
            if let Ok(value) = format!("{seconds}:{}:key", self.retry_categories).parse() {
                headers.insert("x-sentry-rate-limits", value);
            }
        }
        response
    }
}

impl From<crate::store::StoreError> for HttpError {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match error {
            StoreError::Flush(_) | StoreError::Closed | StoreError::Stalled { .. } => {
                HttpError::unavailable(format!(
                    "the collector could not store this durably ({error}); retry later"
                ))
            }
            // A full disk and friends: nothing was stored, and a retry later may succeed.
            ref e if e.is_retryable() => {
                tracing::error!(error = %e, "store write failed");
                HttpError::unavailable(format!(
                    "the collector could not store this ({error}); nothing was kept, retry later"
                ))
            }
            other => HttpError::internal(&other),
        }
    }
}

/// Reads a whole body of at most `limit` bytes; more is a 413.
pub async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, HttpError> {
    let mut kept = BytesMut::new();
    let mut seen = 0usize;
    // A body over the limit is still read (and discarded) up to a few times the limit, so the
    // client, which is usually still sending, gets the 413 instead of a connection reset it
    // would retry blindly. Beyond that the connection is simply not read further.
    let drain = limit.saturating_mul(4);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match crate::listener::body_timed_out(&e) {
            Some(limit) => HttpError::body_timeout(limit),
            None => {
                HttpError::bad_request("malformed", format!("could not read the request body: {e}"))
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > drain {
            break;
        }
    }
    if seen > limit {
        return Err(HttpError::too_large(format!(
            "request body exceeds the limit of {limit} bytes"
        )));
    }
    Ok(kept.freeze())
}

/// Reads the first `keep` bytes of a body and discards the rest up to `drain` bytes (beyond
/// that the connection is simply not read further). Truncates, never rejects: a ping whose
/// log is too long, or arrives too slowly (`server.body_timeout`), still counts.
pub async fn read_truncated(mut body: Body, keep: usize, drain: usize) -> Bytes {
    let mut kept = BytesMut::new();
    let mut seen = 0usize;
    while seen < drain {
        let Some(Ok(frame)) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            let room = keep.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..room.min(data.len())]);
        }
    }
    kept.freeze()
}

/// Lossy UTF-8 of at most `max` bytes, cut at a character boundary.
pub fn truncate_utf8(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= max {
        return text.into_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The query string as name/value pairs (400 if it does not decode).
pub fn query_pairs(uri: &axum::http::Uri) -> Result<Vec<(String, String)>, HttpError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|axum::extract::Query(pairs)| pairs)
        .map_err(|e| HttpError::bad_request("malformed", format!("bad query string: {e}")))
}

/// The first value of query parameter `name`.
pub fn query_value<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
}

/// `GET /nope` and friends: a JSON 404 instead of an empty body.
pub async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> HttpError {
    HttpError::not_found(format!("no route for {method} {}", uri.path()))
}

/// A known path with a method it does not take.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_utf8("héllo".as_bytes(), 2), "h");
        assert_eq!(truncate_utf8(b"abc", 10), "abc");
        assert_eq!(truncate_utf8(&[0xff, b'a'], 10), "\u{fffd}a");
    }

    #[tokio::test]
    async fn bodies_are_limited_or_truncated() {
        let err = read_body(Body::from(vec![0u8; 11]), 10).await.unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(read_body(Body::from("abc"), 10).await.unwrap(), "abc");
        let kept = read_truncated(Body::from(vec![b'x'; 50]), 10, 1000).await;
        assert_eq!(kept.len(), 10);
    }
}
