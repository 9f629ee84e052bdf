//! Upgrades of older store layouts, run by [`Store::open`](super::Store::open) before anything
//! else reads the trees. Each step is written once for one version and never changed.

use super::{SCHEMA_KEY, SCHEMA_VERSION, StoreError, Trees};

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
    trees
        .meta
        .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
    db.flush()?;
    tracing::warn!(
        undelivered_effects = effects,
        ungrouped_events = events,
        "store upgraded from schema version 1 to {SCHEMA_VERSION}: alerts of version 1 were \
         never delivered and its events never grouped; both were dropped"
    );
    Ok(())
}
