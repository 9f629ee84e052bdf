//! `GET /api/v1/store/stats`: where the store's bytes go (records and live bytes per tree, the
//! database's files, the amplification) and the data dir's free space — what
//! `watchpost store stats` prints for a running collector; and `POST /api/v1/store/compact`,
//! what `watchpost store compact` asks a running collector to do.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::app::AppState;
use crate::http::HttpError;
use crate::store::{CompactError, CompactReport, DiskSpace, StoreError, Usage};

/// The answer: the usage counted now, and the file system.
#[derive(Debug, Serialize)]
pub(crate) struct StoreStatsView {
    #[serde(flatten)]
    usage: Usage,
    /// The data dir's file system; `null` if it cannot say.
    disk: Option<DiskSpace>,
}

/// Counts afresh (a walk of every record, on a blocking thread): a person asking wants the
/// numbers of now, and asks rarely; `/metrics` is the one that reuses a count.
pub(super) async fn stats(
    State(state): State<AppState>,
) -> Result<Json<StoreStatsView>, HttpError> {
    let store = state.store.clone();
    let usage = tokio::task::spawn_blocking(move || store.usage())
        .await
        .map_err(|error| HttpError::internal(&error))??;
    Ok(Json(StoreStatsView {
        usage,
        disk: state.store.disk_space(),
    }))
}

/// `POST /api/v1/store/compact`: compacts the store now (`store/compact.rs`), whatever its
/// amplification, and answers when done with what it did. Ingest goes on during the copy and
/// pauses only for the swap. `409` if a compaction is already running, `507` if the copy would
/// not fit on the disk.
pub(super) async fn compact(
    State(state): State<AppState>,
) -> Result<Json<CompactReport>, HttpError> {
    let store = state.store.clone();
    let report = tokio::task::spawn_blocking(move || store.compact())
        .await
        .map_err(|error| HttpError::internal(&error))?;
    match report {
        Ok(report) => Ok(Json(report)),
        Err(StoreError::Compact(error @ CompactError::Busy)) => Err(HttpError::new(
            StatusCode::CONFLICT,
            "compacting",
            error.to_string(),
        )),
        Err(StoreError::Compact(error @ CompactError::NoRoom { .. })) => Err(HttpError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "no_room",
            error.to_string(),
        )),
        Err(other) => Err(other.into()),
    }
}
