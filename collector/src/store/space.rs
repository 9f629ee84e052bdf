//! Free space on the data dir's file system, checked before each write is accepted. sled 0.34
//! makes an I/O error during a flush sticky (every later operation fails until the process
//! restarts), so a full disk must be refused here, with room to spare, before sled meets it.

use std::path::PathBuf;

use super::StoreError;

/// Bytes that must stay free on the data dir's file system for a write to be accepted: a few
/// of sled's 512 KiB log segments, so the writes already accepted can still be flushed.
pub(super) const RESERVE: u64 = 2 << 20;

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
    pub(super) fn check(&self) -> Result<(), StoreError> {
        let Some(DiskSpace { available, .. }) = self.measure() else {
            return Ok(());
        };
        if available < RESERVE {
            return Err(StoreError::DiskFull { available });
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
