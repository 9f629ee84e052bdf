//! When the collector compacts its store on its own: every `[store] compact_check` it counts
//! the store (`Store::usage`) and compacts it online
//! (`store/compact.rs`) once its files take more than `compact_above` bytes per live byte and
//! at least `compact_min_size` bytes. sled's log keeps growing that ratio under a steady stream
//! of check-ins with retention, and nothing else gives the space back (`benches/README.md`,
//! "Store size and memory").

use std::future::Future;
use std::time::Duration;

use crate::config::StoreConfig;
use crate::store::{Store, Usage};

/// The thresholds of `[store]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Policy {
    /// Bytes on disk per live byte above which the store is compacted.
    above: f64,
    /// Bytes on disk below which it never is.
    min_size: u64,
    /// How often to look.
    every: Duration,
}

impl Policy {
    /// The policy `[store]` sets; `None` when `compact_above` is 0 (never compact on its own).
    pub(crate) fn of(config: &StoreConfig) -> Option<Policy> {
        (config.compact_above > 0.0).then_some(Policy {
            above: config.compact_above,
            min_size: config.compact_min_size,
            every: config.compact_check,
        })
    }

    /// Whether a store measured as `usage` is due for a compaction.
    pub(crate) fn due(&self, usage: &Usage) -> bool {
        usage.files_bytes >= self.min_size && usage.amplification > self.above
    }
}

/// Checks every `policy.every` and compacts when due, until `shutdown` resolves. A compaction
/// cut short by the shutdown (or a crash) leaves the store as it was (`store/compact.rs`).
pub(crate) async fn run(store: Store, policy: Policy, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(policy.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: a store that grew past the threshold before a restart is
    // looked at once the collector is up, not a period later.
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut shutdown => return,
        }
        let check = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || check(&store, policy))
        };
        tokio::select! {
            _ = check => {}
            () = &mut shutdown => return,
        }
    }
}

/// One check, and the compaction it calls for; on a blocking thread.
fn check(store: &Store, policy: Policy) {
    // A count of its own, not the one `/metrics` reuses for a minute: putting this one there
    // would hand `/metrics` a count up to a minute old. One walk per check is cheap.
    let usage = match store.usage() {
        Ok(usage) => usage,
        Err(error) => {
            tracing::warn!(%error, "could not count the store to decide on a compaction");
            return;
        }
    };
    if !policy.due(&usage) {
        return;
    }
    tracing::info!(
        amplification = usage.amplification,
        bytes = usage.files_bytes,
        above = policy.above,
        "the store takes more bytes on disk per live byte than store.compact_above: compacting"
    );
    if let Err(error) = store.compact() {
        tracing::warn!(%error, "store compaction failed; the store is unchanged");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(files_bytes: u64, live_bytes: u64) -> Usage {
        Usage {
            trees: Vec::new(),
            live_bytes,
            size_on_disk: files_bytes,
            files: Vec::new(),
            files_bytes,
            amplification: files_bytes as f64 / live_bytes as f64,
        }
    }

    #[test]
    fn a_store_is_due_above_the_ratio_and_the_size_only() {
        let policy = Policy::of(&StoreConfig {
            compact_above: 8.0,
            compact_min_size: 1000,
            ..StoreConfig::default()
        })
        .unwrap();
        assert!(policy.due(&usage(9000, 1000)));
        assert!(!policy.due(&usage(8000, 1000)), "at the ratio, not above");
        assert!(!policy.due(&usage(900, 10)), "below the minimum size");
        assert_eq!(Policy::of(&StoreConfig::default()), None, "off by default");
    }
}
