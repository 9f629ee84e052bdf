//! `POST /api/{project_id}/envelope/`: Sentry envelopes with `check_in` and `event` items.
//! The whole envelope is decoded and validated before anything is applied (an invalid item
//! rejects the envelope and leaves no trace); other item types are accepted and ignored.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_ENCODING;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;
use watchpost_protocol::{
    self as protocol, ContentEncoding, DecodeError, Envelope, decode_body_exact, decoded_len,
};

use super::auth;
use super::input::{checkin_input, process_error, project_id};
use crate::app::AppState;
use crate::engine::CheckInInput;
use crate::http::query_pairs;
use crate::http::{HttpError, read_body};
use crate::processor::{Batch, EventInput};

/// Largest request body accepted, compressed.
const MAX_BODY: usize = 1 << 20;
/// Largest envelope accepted after decompression.
const MAX_DECODED: usize = 20 << 20;
/// Largest `check_in` item (Sentry's limit).
const MAX_CHECKIN_ITEM: usize = 100 * 1024;
/// Largest `event` item (Sentry's limit).
const MAX_EVENT_ITEM: usize = 1 << 20;
/// Most items in one envelope. SDKs send one to a few; a batch of thousands is abuse or a bug,
/// and refusing it whole keeps one request's transaction and memory small.
const MAX_ITEMS: usize = 1000;

pub(super) async fn handle(
    State(state): State<AppState>,
    Path(project): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest(&state, &project, &uri, &headers, body).await {
        Ok((reply, limits)) => {
            let mut response = (StatusCode::OK, Json(reply)).into_response();
            // Items a quota refused while the rest was stored: tell SDKs which categories to
            // hold back, as Relay does on a 200.
            if let Some(value) = limits.and_then(|limits| limits.parse().ok()) {
                response.headers_mut().insert("x-sentry-rate-limits", value);
            }
            response
        }
        Err((error, had_checkins)) => {
            if had_checkins {
                state.metrics.checkin_rejected(error.reason);
            }
            error.into_response()
        }
    }
}

/// The reply, and the `X-Sentry-Rate-Limits` value for items a quota refused from an envelope
/// otherwise stored. On error, also says whether the envelope's check-ins still need counting
/// as rejected.
async fn ingest(
    state: &AppState,
    project: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Value, Option<String>), (HttpError, bool)> {
    let early = |e: HttpError| (e, true);
    let project = project_id(project).map_err(early)?;
    let query = query_pairs(uri).map_err(early)?;
    let key = auth::find_key(headers, &query, None).map_err(early)?;
    auth::check_project(&state.keys, &key, project).map_err(early)?;

    let encoding_header = headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let encoding = ContentEncoding::from_header(encoding_header).ok_or_else(|| {
        early(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "malformed",
            format!(
                "unsupported Content-Encoding `{}`; send identity, gzip or deflate",
                encoding_header.unwrap_or_default()
            ),
        ))
    })?;
    let raw = read_body(body, MAX_BODY).await.map_err(early)?;
    // Held until the answer: the decoded body and every copy made of it count against
    // `limits.decoded_bytes_in_flight`.
    let (decoded, _reservation) = decode(state, raw, encoding).await.map_err(early)?;
    let mut envelope = Envelope::parse(&decoded).map_err(|e| {
        early(HttpError::bad_request(
            "malformed",
            format!("malformed envelope: {e}"),
        ))
    })?;
    if envelope.items.len() > MAX_ITEMS {
        return Err(early(HttpError::too_large(format!(
            "the envelope has {} items; the limit is {MAX_ITEMS} per envelope, send them in several",
            envelope.items.len()
        ))));
    }

    let had_checkins = envelope.items.iter().any(|item| item.ty() == "check_in");
    let fail = |e: HttpError| (e, had_checkins);
    let mut batch = Batch::default();
    // Envelope item index of each check-in, to name it in a rejection.
    let mut positions = Vec::new();
    // Items refused by a quota while the rest of the envelope goes on: (index, refusal).
    let mut refused: Vec<(usize, HttpError)> = Vec::new();
    for (index, item) in envelope.items.iter().enumerate() {
        match item.ty() {
            "check_in" => {
                let input = check_in(project, index, &item.payload).map_err(fail)?;
                // Before the key's budget: a noisy monitor's refused check-ins spend none of it.
                match state.rate_limits.check_monitor(&input.key) {
                    Ok(()) => {
                        batch.checkins.push(input);
                        positions.push(index);
                    }
                    Err(refusal) => refused.push((index, refusal)),
                }
            }
            "event" => batch
                .events
                .push(event(project, index, item.payload.clone()).map_err(fail)?),
            _ => {}
        }
    }
    // Charged per item that got this far, at least one per request, except an envelope all
    // of whose items a monitor's rate refused: the noisy monitor must not spend the key's
    // budget, or it would starve the key's other monitors all the same.
    let items = batch.checkins.len() + batch.events.len();
    if items > 0 || refused.is_empty() {
        state.rate_limits.check_key(&key, items).map_err(fail)?;
    }
    if !batch.events.is_empty() {
        let bytes = batch.events.iter().map(|e| e.payload.len()).sum();
        if let Err(refusal) = state.rate_limits.check_event_bytes(project, bytes) {
            state
                .metrics
                .events_rejected(refusal.reason, batch.events.len() as u64);
            let first = envelope
                .items
                .iter()
                .position(|item| item.ty() == "event")
                .unwrap_or_default();
            refused.push((first, refusal));
            batch.events.clear();
        }
    }
    for (_, refusal) in &refused {
        if refusal.reason != "event_bytes" {
            state.metrics.checkin_rejected(refusal.reason);
        }
    }
    // Nothing left of an envelope that carried something: the refusal is the answer.
    if batch.checkins.is_empty()
        && batch.events.is_empty()
        && let Some((_, refusal)) = refused.first()
    {
        return Err((refusal.clone(), false));
    }
    if state.upstream.enabled() {
        // The upstream gets what was accepted, not what a quota refused.
        if refused.is_empty() {
            batch.forward = state.upstream.forward(&decoded);
        } else {
            let mut index = 0;
            envelope.items.retain(|item| {
                let keep = !refused_item(&refused, index, item.ty());
                index += 1;
                keep
            });
            batch.forward = state.upstream.forward(&envelope.to_vec());
        }
    }
    let mut reply = match envelope.headers.get("event_id") {
        Some(Value::String(id)) => json!({ "id": id }),
        _ => json!({}),
    };
    if !refused.is_empty() {
        reply["refused"] = refused
            .iter()
            .map(|(index, refusal)| json!({ "item": index, "error": refusal.message }))
            .collect();
    }
    let limits = (!refused.is_empty()).then(|| {
        refused
            .iter()
            .filter_map(|(_, refusal)| {
                let seconds = refusal.retry_after?;
                Some(format!("{seconds}:{}:key", refusal.retry_categories))
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    if batch.checkins.is_empty() && batch.events.is_empty() && batch.forward.is_none() {
        return Ok((reply, limits));
    }
    let events = batch.events.len() as u64;
    let forwarded = batch.forward.is_some();
    let accepted = state.processor.ingest(batch).await.map_err(|e| {
        fail(process_error(e, |i| {
            format!(
                "item {} (check_in): ",
                positions.get(i).copied().unwrap_or(i)
            )
        }))
    })?;
    state
        .metrics
        .checkins_accepted(accepted.ids.iter().flatten().count() as u64);
    for _ in &accepted.dropped {
        state.metrics.checkin_rejected("disabled");
    }
    state.metrics.events_accepted(events);
    if forwarded {
        state.upstream.queued();
    }
    Ok((reply, limits))
}

/// Whether item `index` (of type `ty`) was refused: a check-in by its index, events all
/// together (the byte budget refuses an envelope's events as one).
fn refused_item(refused: &[(usize, HttpError)], index: usize, ty: &str) -> bool {
    refused.iter().any(|(at, refusal)| match ty {
        "event" => refusal.reason == "event_bytes",
        "check_in" => *at == index && refusal.reason != "event_bytes",
        _ => false,
    })
}

/// Measures the body decoded, reserves that much of the decode budget, then decodes it; both
/// passes on the blocking pool, since 20 MiB of inflating would stall a runtime thread.
async fn decode(
    state: &AppState,
    raw: Bytes,
    encoding: ContentEncoding,
) -> Result<(Vec<u8>, OwnedSemaphorePermit), HttpError> {
    let decode_error = |e: DecodeError| match e {
        DecodeError::TooLarge { .. } => HttpError::too_large(e.to_string()),
        DecodeError::Corrupt { .. } => HttpError::bad_request("malformed", e.to_string()),
    };
    let measured = {
        let raw = raw.clone();
        tokio::task::spawn_blocking(move || decoded_len(&raw, encoding, MAX_DECODED))
    };
    let len = measured
        .await
        .map_err(|e| HttpError::internal(&e))?
        .map_err(decode_error)?;
    let reservation = state.decode_budget.reserve(len).await?;
    let decoded = tokio::task::spawn_blocking(move || decode_body_exact(&raw, encoding, len))
        .await
        .map_err(|e| HttpError::internal(&e))?
        .map_err(decode_error)?;
    Ok((decoded, reservation))
}

fn check_in(project: u64, index: usize, payload: &[u8]) -> Result<CheckInInput, HttpError> {
    if payload.len() > MAX_CHECKIN_ITEM {
        return Err(HttpError::too_large(format!(
            "item {index} (check_in) is {} bytes; the limit is {MAX_CHECKIN_ITEM}",
            payload.len()
        )));
    }
    let wire: protocol::CheckIn = serde_json::from_slice(payload).map_err(|e| {
        HttpError::bad_request("invalid_checkin", format!("item {index} (check_in): {e}"))
    })?;
    checkin_input(project, &wire, None).map_err(|message| {
        HttpError::bad_request(
            "invalid_checkin",
            format!("item {index} (check_in): {message}"),
        )
    })
}

fn event(project: u64, index: usize, payload: Vec<u8>) -> Result<EventInput, HttpError> {
    if payload.len() > MAX_EVENT_ITEM {
        return Err(HttpError::too_large(format!(
            "item {index} (event) is {} bytes; the limit is {MAX_EVENT_ITEM}",
            payload.len()
        )));
    }
    let event: protocol::Event = serde_json::from_slice(&payload).map_err(|e| {
        HttpError::bad_request("invalid_event", format!("item {index} (event): {e}"))
    })?;
    Ok(EventInput {
        project,
        event,
        payload,
    })
}
