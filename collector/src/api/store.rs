//! `GET /api/v1/store/stats`: where the store's bytes go (records and live bytes per tree, the
//! database's files, the amplification) and the data dir's free space — what
//! `watchpost store stats` prints for a running collector.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::AppState;
use crate::http::HttpError;
use crate::store::{DiskSpace, Usage};

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
