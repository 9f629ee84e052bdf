//! Why the store could not do what was asked ([`StoreError`]), and records in and out of sled
//! with their decoding failures as [`StoreError::Corrupt`].

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::space::{self, DiskFull};
use super::trees::SCHEMA_VERSION;
use crate::engine::{CheckIn, MonitorEnv};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the database for a reason other than damage or a held lock
    /// (permissions, a missing or read-only file system).
    #[error(
        "cannot open the store in {path}: {source}; check that the user running watchpost \
         can read and write this directory and everything in it"
    )]
    Open {
        /// The database directory.
        path: PathBuf,
        /// What sled said.
        source: sled::Error,
    },
    /// Another process holds the database's lock: sled reported the lock as taken.
    #[error(
        "cannot open the store in {path}: its lock is held by another process (is another \
         watchpost using this data dir?); stop that process, or give this one its own \
         --data-dir"
    )]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// The database's files do not read back as a sled database: sled reported corruption,
    /// failed while recovering, or did not finish recovering within [`OPEN_DEADLINE`](super::OPEN_DEADLINE).
    #[error(
        "the store file {file} is damaged ({detail}); watchpost cannot start on it. Restore \
         the data dir from a backup, or move the data dir aside (keep it for inspection) to \
         start with an empty store"
    )]
    Damaged {
        /// sled's log file, `db` in the database directory.
        file: PathBuf,
        /// What went wrong, in a few words.
        detail: String,
    },
    /// A read or write failed.
    #[error("store I/O error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("stored record in `{tree}` is unreadable: {source}")]
    Corrupt {
        /// The tree it is in.
        tree: &'static str,
        /// What the decoder said.
        source: codec::CodecError,
    },
    /// The data dir was written by a different layout version.
    #[error(
        "the store holds schema version {found}; this watchpost reads version {SCHEMA_VERSION}"
    )]
    Schema {
        /// The version found.
        found: u32,
    },
    /// Too little free space to accept a write (see `space.rs`).
    #[error(
        "the data dir's file system has {available} bytes free, below the {} reserved; free some space",
        space::RESERVE
    )]
    DiskFull {
        /// Bytes free.
        available: u64,
    },
    /// Writes could not be made durable.
    #[error("could not make writes durable: {0}")]
    Flush(String),
    /// The flusher has stopped.
    #[error("the store is shutting down")]
    Closed,
    /// A write or flush did not finish in time: sled is stuck (seen when the process ran out
    /// of file descriptors) or the disk does not answer. Only a restart is known to cure it.
    #[error(
        "the store's {what} has not finished after {} s; it may be stuck (out of file descriptors, or a hanging disk)",
        waited.as_secs()
    )]
    Stalled {
        /// `write` or `flush`.
        what: &'static str,
        /// How long it has been waited for.
        waited: std::time::Duration,
    },
    /// The records that complete an interrupted group of writes are damaged (`redo.rs`).
    #[error("the store's redo records are damaged: {0}")]
    Redo(String),
    /// A compaction failed, or the data dir's `db.current` is unusable (`compact.rs`).
    #[error(transparent)]
    Compact(#[from] super::generations::CompactError),
}

pub(super) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("engine and store records always serialize")
}

impl From<DiskFull> for StoreError {
    fn from(full: DiskFull) -> StoreError {
        StoreError::DiskFull {
            available: full.available,
        }
    }
}

impl StoreError {
    /// The same error again, for each request of a group that failed together.
    pub(super) fn again(&self) -> StoreError {
        match self {
            StoreError::Sled(e) => StoreError::Sled(e.clone()),
            StoreError::DiskFull { available } => StoreError::DiskFull {
                available: *available,
            },
            StoreError::Closed => StoreError::Closed,
            StoreError::Redo(why) => StoreError::Redo(why.clone()),
            other => StoreError::Flush(other.to_string()),
        }
    }

    /// The disk is full or refused a read or write: the request may succeed later, unlike a
    /// corrupt record or a bug.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::DiskFull { .. } | StoreError::Sled(sled::Error::Io(_))
        )
    }
}

pub(super) fn decode<T: DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        tree,
        source: source.into(),
    })
}

/// A record of the `monitors` tree (`codec.rs`).
pub(super) fn decode_monitor(bytes: &[u8]) -> Result<MonitorEnv, StoreError> {
    codec::decode_monitor(bytes).map_err(|source| StoreError::Corrupt {
        tree: "monitors",
        source,
    })
}

/// A record of the `checkins` tree (`codec.rs`).
pub(super) fn decode_checkin(bytes: &[u8]) -> Result<CheckIn, StoreError> {
    codec::decode_checkin(bytes).map_err(|source| StoreError::Corrupt {
        tree: "checkins",
        source,
    })
}
