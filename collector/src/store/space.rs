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
        let Ok(stats) = rustix::fs::statvfs(&self.dir) else {
            return Ok(());
        };
        let available = stats.f_bavail.saturating_mul(stats.f_frsize);
        if available < RESERVE {
            return Err(DiskFull { available });
        }
        Ok(())
    }
}
