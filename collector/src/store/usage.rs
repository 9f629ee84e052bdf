//! Where the store's bytes go: per tree, how many records and how many bytes of keys and
//! values it holds (the live data), next to what the database takes on disk (sled's log file,
//! its snapshot and blob files). The ratio of the two is the space amplification an operator
//! sees in `watchpost store stats`, `GET /api/v1/store/stats` and `/metrics`.
//!
//! Counting walks every record of every tree, so it costs a read of the whole store (about
//! 50 ms per 100,000 records): it is never done per request on the ingest path, and `/metrics`
//! reuses a count for a minute ([`UsageCache`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use super::error::StoreError;

/// One tree's live data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeUsage {
    /// The tree's name (`checkins`, `monitors`, ...).
    pub tree: String,
    /// Records (key-value pairs).
    pub records: u64,
    /// Bytes of all keys.
    pub key_bytes: u64,
    /// Bytes of all values.
    pub value_bytes: u64,
}

impl TreeUsage {
    /// Keys and values together: what the tree would take with no overhead at all.
    pub fn live_bytes(&self) -> u64 {
        self.key_bytes + self.value_bytes
    }
}

/// One file of the database directory and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileUsage {
    /// Path relative to the database directory (`db`, `snap.00000000001A2B3C`, `blobs/...`).
    pub file: String,
    /// Bytes (the file's length).
    pub bytes: u64,
}

/// The whole store's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Every tree, by name.
    pub trees: Vec<TreeUsage>,
    /// Live bytes of every tree together.
    pub live_bytes: u64,
    /// What sled counts as the database's size: its log file and blob files.
    pub size_on_disk: u64,
    /// Every file of the database directory (the log, sled's snapshot, blobs, its config).
    pub files: Vec<FileUsage>,
    /// The files together: what the store takes from the file system.
    pub files_bytes: u64,
    /// `files_bytes / live_bytes`: how many bytes on disk each byte of data costs.
    pub amplification: f64,
}

impl Usage {
    /// The tree named `name`, if the store has it.
    pub fn tree(&self, name: &str) -> Option<&TreeUsage> {
        self.trees.iter().find(|t| t.tree == name)
    }
}

/// Counts every tree of `db` and measures the files under `dir` (the database directory).
pub(super) fn measure(db: &sled::Db, dir: &Path) -> Result<Usage, StoreError> {
    let mut trees = Vec::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        let mut usage = TreeUsage {
            tree: String::from_utf8_lossy(&name).into_owned(),
            records: 0,
            key_bytes: 0,
            value_bytes: 0,
        };
        for entry in tree.iter() {
            let (key, value) = entry?;
            usage.records += 1;
            usage.key_bytes += key.len() as u64;
            usage.value_bytes += value.len() as u64;
        }
        trees.push(usage);
    }
    trees.sort_by(|a, b| a.tree.cmp(&b.tree));
    let live_bytes = trees.iter().map(TreeUsage::live_bytes).sum();
    let mut files = Vec::new();
    list_files(dir, dir, &mut files)?;
    files.sort_by(|a, b| a.file.cmp(&b.file));
    let files_bytes = files.iter().map(|f| f.bytes).sum();
    Ok(Usage {
        trees,
        live_bytes,
        size_on_disk: db.size_on_disk()?,
        files,
        files_bytes,
        amplification: ratio(files_bytes, live_bytes),
    })
}

fn ratio(disk: u64, live: u64) -> f64 {
    if live == 0 {
        return 0.0;
    }
    // Two decimals are all anyone reads; rounding keeps the JSON short.
    ((disk as f64 / live as f64) * 100.0).round() / 100.0
}

/// Every regular file under `dir`, recursively, named relative to `root`. A file that vanishes
/// while listed (sled removes old snapshots and blobs lazily) is skipped.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<FileUsage>) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::Sled(e.into()))?;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let path = entry.path();
        if meta.is_dir() {
            list_files(root, &path, out)?;
        } else if meta.is_file() {
            let file = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push(FileUsage {
                file,
                bytes: meta.len(),
            });
        }
    }
    Ok(())
}

/// The last count, reused while it is younger than a given age, so scrapers polling `/metrics`
/// every few seconds cost one walk of the store a minute, not one each.
#[derive(Debug, Default)]
pub(super) struct UsageCache {
    last: Mutex<Option<(Instant, Arc<Usage>)>>,
}

impl UsageCache {
    /// The count taken at or after `now - max_age`, if any.
    pub(super) fn fresh(&self, now: Instant, max_age: Duration) -> Option<Arc<Usage>> {
        let last = self.last.lock();
        last.as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= max_age)
            .map(|(_, usage)| usage.clone())
    }

    /// Keeps `usage`, counted at `at`.
    pub(super) fn put(&self, at: Instant, usage: Arc<Usage>) {
        *self.last.lock() = Some((at, usage));
    }

    /// The last count, however old.
    pub(super) fn latest(&self) -> Option<Arc<Usage>> {
        self.last.lock().as_ref().map(|(_, usage)| usage.clone())
    }

    /// Forgets the last count (the files it measured are gone after a compaction).
    pub(super) fn clear(&self) {
        *self.last.lock() = None;
    }
}
