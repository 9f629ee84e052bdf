//! Upgrades of older store layouts, run by [`Store::open`](super::Store::open) before anything
//! else reads the trees. Each step is written once for one version and never changed.

use super::{SCHEMA_KEY, StoreError, Trees};

/// Version 1 → 2: the outbox holds deliveries instead of engine effects, and events are filed
/// under their issue instead of their project.
///
/// Version 1 had no dispatcher and no grouping: its outbox records were never delivered (they
/// were logged when written) and its events were never grouped. Neither can be converted
/// without the routing rules and the engine, which the store does not know, so both are
/// dropped, and the counts are logged. Monitors, check-ins, incidents and everything else are
/// kept as they are.
pub(super) fn from_v1(db: &sled::Db, trees: &Trees) -> Result<(), StoreError> {
    let effects = trees.outbox.len();
    let events = trees.events.len();
    trees.outbox.clear()?;
    trees.outbox_pending.clear()?;
    trees.events.clear()?;
    trees.meta.insert(SCHEMA_KEY, &2u32.to_be_bytes())?;
    db.flush()?;
    tracing::warn!(
        undelivered_effects = effects,
        ungrouped_events = events,
        "store upgraded from schema version 1 to 2: alerts of version 1 were never delivered \
         and its events never grouped; both were dropped"
    );
    Ok(())
}

/// Version 2 → 3: the `deadlines` tree is gone; the deadline index is rebuilt from the monitor
/// records, which hold everything it derives from.
///
/// Version 2 kept each monitor environment's deadlines in a tree of their own, one more sled
/// write per check-in. A group of writes a crash cut short is still completed after this step
/// (its deadline writes are skipped, `redo.rs`), so the tree is simply dropped.
pub(super) fn from_v2(db: &sled::Db, trees: &Trees) -> Result<(), StoreError> {
    db.drop_tree("deadlines")?;
    trees.meta.insert(SCHEMA_KEY, &3u32.to_be_bytes())?;
    db.flush()?;
    tracing::info!("store upgraded from schema version 2 to 3: the deadlines tree was dropped");
    Ok(())
}
