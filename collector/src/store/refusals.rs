//! What the caps and the reconfiguration policy need kept (`engine::caps`): the refusals a
//! person looks at (`GET /api/v1/refusals`, the dashboard), each monitor environment whose
//! config a person set (`[[monitors]]` or the API), and the counts the caps start from.
//!
//! All of it lives in `meta`, JSON, written like every other change, as a write set
//! (`WriteSet::meta`). A refusal is one write (and one removal of the record it pushes out of
//! its project's last 100) and a request to the flusher, not waited for: a crash may lose the
//! refusals of the last few milliseconds, which only a person reading them would notice. An
//! origin is written in the same write set as the monitor it marks (`Processor::put`), and
//! removed with the monitor it marks (`WriteSet::deletes`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::{StoreError, decode};
use super::keys;
use super::{MetaWrite, Store};
use crate::engine::{Issue, MonitorKey};

/// A refused check-in, event or config change, as kept for people to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalRecord {
    /// Unique, increasing: the newest has the highest.
    pub id: u64,
    /// When it was refused.
    pub at: DateTime<Utc>,
    /// The project of the key that sent it.
    pub project: u64,
    /// The cap or rule (`engine::caps::Refused::reason`).
    pub reason: String,
    /// The monitor concerned, if one is (not for the issues cap).
    pub slug: Option<String>,
    /// Its environment.
    pub environment: Option<String>,
    /// The sentence the sender was given.
    pub message: String,
}

impl Store {
    /// Keeps a refusal, and asks the flusher for a flush: nothing else may be written for a
    /// while after a refused request, and a refusal should survive a crash shortly after.
    pub fn save_refusal(&self, refusal: &RefusalRecord) -> Result<(), StoreError> {
        self.write_meta(MetaWrite::Refusal(refusal.clone()))?;
        self.inner.group.request();
        Ok(())
    }

    /// Forgets a refusal.
    pub fn remove_refusal(&self, project: u64, id: u64) -> Result<(), StoreError> {
        self.write_meta(MetaWrite::RefusalGone { project, id })?;
        Ok(())
    }

    /// Every refusal kept, by project, oldest first.
    pub fn refusals(&self) -> Result<Vec<RefusalRecord>, StoreError> {
        self.trees()
            .meta
            .scan_prefix(keys::REFUSAL)
            .values()
            .map(|v| decode("meta", &v?))
            .collect()
    }

    /// The monitor environments whose config a person set.
    pub fn managed_monitors(&self) -> Result<Vec<MonitorKey>, StoreError> {
        self.trees()
            .meta
            .scan_prefix(keys::ORIGIN)
            .values()
            .map(|v| decode("meta", &v?))
            .collect()
    }

    /// Every monitor environment's key, read from the tree's keys without decoding a record.
    pub fn monitor_keys(&self) -> Result<Vec<MonitorKey>, StoreError> {
        self.trees()
            .monitors
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                keys::parse_monitor(&k).ok_or_else(|| StoreError::Corrupt {
                    tree: "monitors",
                    source: super::codec::CodecError::Compact("a key that is not a monitor key"),
                })
            })
            .collect()
    }

    /// How many issues each project has, the overflow issues not counted (`engine::caps`).
    pub fn issue_counts(&self) -> Result<std::collections::HashMap<u64, u32>, StoreError> {
        let mut counts = std::collections::HashMap::new();
        for value in self.trees().issues.iter().values() {
            let issue: Issue = decode("issues", &value?)?;
            if !crate::engine::caps::is_overflow(&issue) {
                *counts.entry(issue.project).or_insert(0u32) += 1;
            }
        }
        Ok(counts)
    }
}
