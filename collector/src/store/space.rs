//! Free space on the data dir's file system, checked before each write is accepted. sled 0.34
//! makes an I/O error during a flush sticky (every later operation fails until the process
//! restarts), so a full disk must be refused here, with room to spare, before sled meets it.

use std::path::PathBuf;

/// Bytes that must stay free on the data dir's file system for a write to be accepted: a few
/// of sled's 512 KiB log segments, so the writes already accepted can still be flushed.
pub(super) const RESERVE: u64 = 2 << 20;

/// Too little free space to accept a write: the bytes that are free (`StoreError::DiskFull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DiskFull {
    pub(super) available: u64,
}

/// Watches one directory's file system.
#[derive(Debug, Clone)]
pub(super) struct Space {
    dir: PathBuf,
}

impl Space {
    pub(super) fn new(dir: PathBuf) -> Space {
        Space { dir }
    }

    /// `Err(DiskFull)` when less than [`RESERVE`] is free. A file system that cannot say how
    /// much is free is given the benefit of the doubt.
    pub(super) fn check(&self) -> Result<(), DiskFull> {
        let Some(DiskSpace { available, .. }) = self.measure() else {
            return Ok(());
        };
        if available < RESERVE {
            return Err(DiskFull { available });
        }
        Ok(())
    }

    /// Free and total bytes of the file system, or `None` if it cannot say.
    pub(super) fn measure(&self) -> Option<DiskSpace> {
        let stats = rustix::fs::statvfs(&self.dir).ok()?;
        Some(DiskSpace {
            available: stats.f_bavail.saturating_mul(stats.f_frsize),
            total: stats.f_blocks.saturating_mul(stats.f_frsize),
        })
    }
}

/// The data dir's file system: what an unprivileged writer may still use, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiskSpace {
    /// Bytes free for the collector (`f_bavail`: excludes the blocks reserved for root).
    pub available: u64,
    /// Bytes the file system holds in all.
    pub total: u64,
}

impl DiskSpace {
    /// Whether an operator should be warned: less than a tenth of the file system is free, or
    /// less than the store itself takes (sled reclaims space lazily, so the store can grow to
    /// about twice its live size before it shrinks). Both come long before `RESERVE`, where
    /// writes are refused, so there is time to act.
    pub fn is_low(&self, store_bytes: u64) -> bool {
        self.available < self.total / 10 || self.available < store_bytes
    }

    /// The free share of the file system, in percent.
    pub fn free_percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.available as f64 * 100.0 / self.total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_means_under_a_tenth_free_or_under_the_stores_own_size() {
        let disk = |available| DiskSpace {
            available,
            total: 1000,
        };
        assert!(!disk(500).is_low(100));
        assert!(disk(99).is_low(10));
        assert!(!disk(100).is_low(10));
        assert!(disk(300).is_low(301));
        // Just above the refusal, on a small disk with a small store, the warning is on.
        let small = DiskSpace {
            available: RESERVE + 1,
            total: 64 << 20,
        };
        assert!(small.is_low(1 << 20));
    }
}
