//! The open database as one value: sled's handle, its trees, its directory and the ids of its
//! outbox and upstream keys. The store keeps it behind a lock so that a compaction
//! (`compact.rs`) swaps all of it at once. A leaf, so that the committer, the redo writer and
//! the compaction use it without importing each other.

use std::path::PathBuf;

use super::error::StoreError;
use super::trees::Trees;

/// The open database.
pub(super) struct Handles {
    pub(super) db: sled::Db,
    pub(super) trees: Trees,
    /// sled's directory (`db`, or `db.<n>` after compactions), whose files `Store::usage`
    /// measures.
    pub(super) dir: PathBuf,
    /// Ids for outbox and upstream keys (below).
    pub(super) ids: Ids,
}

/// Key in `meta` of the id floor (u64 BE).
pub(super) const ID_FLOOR_KEY: &[u8] = b"id_floor";

/// The ids of outbox and upstream keys: sled's generator above the store's floor. Outbox and
/// upstream keys must keep growing (the dispatcher and the relay read them in order); a copy
/// of the database does not carry sled's generator (a fresh one starts at 0, and sled 0.34
/// cannot set it), so a compaction writes into the copy a floor above every id handed out.
#[derive(Clone)]
pub(super) struct Ids {
    pub(super) db: sled::Db,
    pub(super) floor: u64,
}

impl Ids {
    /// The ids of `db`, with the floor its `meta` holds (0 if none).
    pub(super) fn load(db: &sled::Db, trees: &Trees) -> Result<Ids, StoreError> {
        let floor = match trees.meta.get(ID_FLOOR_KEY)? {
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Redo("`id_floor` is not 8 bytes".to_owned()))?,
            None => 0,
        };
        Ok(Ids {
            db: db.clone(),
            floor,
        })
    }

    /// A new id, above every one handed out before, in this database or its predecessors.
    pub(super) fn next(&self) -> Result<u64, sled::Error> {
        Ok(self.floor + self.db.generate_id()?)
    }

    /// A floor above every id handed out so far, for a copy of this database.
    pub(super) fn successor_floor(&self) -> Result<u64, sled::Error> {
        Ok(self.next()? + 1)
    }
}
