//! Upgrades of older store layouts, run by [`Store::open`](super::Store::open) before anything
//! else reads the trees. Each step is written once for one version and never changed.

use serde_json::Value;
use uuid::Uuid;

use super::codec;
use super::error::StoreError;
use super::keys;
use super::trees::{SCHEMA_KEY, Trees};
use crate::engine::{Incident, Issue};

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

/// Version 2 → 3: the `deadlines` tree is gone, and an open run's `in_progress` check-in is
/// held by its monitor record instead of a check-in record.
///
/// Version 2 kept each monitor environment's deadlines in a tree of their own, and wrote every
/// `in_progress` check-in as a record; both cost a sled write per check-in. The deadline index
/// is rebuilt from the monitor records now, so that tree is dropped. Each open run takes the
/// fields of its check-in record (`date_updated`, `expected_time`, `log`; from `started` if
/// retention had dropped the record), then the record goes; its id index entry stays. Each
/// monitor is rewritten before its records are removed, so an upgrade cut short runs again to
/// the same result. A group of writes a crash cut short was completed before this step (its
/// deadline writes skipped, `redo.rs`), so its monitors and records are upgraded with the
/// rest.
pub(super) fn from_v2(db: &sled::Db, trees: &Trees) -> Result<(), StoreError> {
    let mut moved = 0usize;
    for entry in trees.monitors.iter() {
        let (key, value) = entry?;
        if !codec::is_json(&value) {
            // In the compact encoding, so written by schema 3 (`codec.rs`): nothing to move.
            continue;
        }
        let mut monitor: Value =
            serde_json::from_slice(&value).map_err(|source| StoreError::Corrupt {
                tree: "monitors",
                source: source.into(),
            })?;
        let Some(runs) = monitor.get_mut("open_runs").and_then(Value::as_array_mut) else {
            continue;
        };
        if runs.is_empty() {
            continue;
        }
        let mut records = Vec::new();
        for run in runs.iter_mut() {
            let record = match run.get("id").and_then(Value::as_str).map(Uuid::parse_str) {
                Some(Ok(id)) => match trees.checkin_ids.get(id.as_bytes())? {
                    Some(at) => trees.checkins.get(&at)?.map(|record| (at, record)),
                    None => None,
                },
                _ => None,
            };
            let fields: Option<Value> = record
                .as_ref()
                .and_then(|(_, record)| serde_json::from_slice(record).ok());
            let Some(run) = run.as_object_mut() else {
                continue;
            };
            let filled = [
                ("date_updated", Some("started")),
                ("expected_time", None),
                ("log", None),
            ];
            for (field, fallback) in filled {
                let value = fields
                    .as_ref()
                    .and_then(|f| f.get(field))
                    .or_else(|| run.get(field))
                    .or_else(|| fallback.and_then(|f| run.get(f)))
                    .cloned()
                    .unwrap_or(Value::Null);
                run.insert(field.to_owned(), value);
            }
            if let Some((at, _)) = record {
                records.push(at);
            }
        }
        let value = serde_json::to_vec(&monitor).expect("a JSON value always serializes");
        trees.monitors.insert(&key, value)?;
        for at in records {
            trees.checkins.remove(at)?;
            moved += 1;
        }
    }
    db.drop_tree("deadlines")?;
    trees.meta.insert(SCHEMA_KEY, &3u32.to_be_bytes())?;
    db.flush()?;
    tracing::info!(
        moved_in_progress = moved,
        "store upgraded from schema version 2 to 3: the deadlines tree was dropped and open \
         runs' in_progress check-ins moved into their monitor records"
    );
    Ok(())
}

/// Version 3 → 4: the `incident_times`, `open_incidents` and `issue_times` indexes, so that the lists of all
/// incidents (newest first) and of all issues (most recently seen first) are read a page at a
/// time from a cursor instead of sorted whole. Built from the records; a build cut short runs
/// again to the same result (every write is a put of what the records say).
pub(super) fn from_v3(db: &sled::Db, trees: &Trees) -> Result<(), StoreError> {
    let mut incidents = 0usize;
    for entry in trees.incidents.iter() {
        let (key, value) = entry?;
        let incident: Incident = super::error::decode("incidents", &value)?;
        let at = keys::timed_suffix(&key);
        trees.incident_times.insert(at, key.as_ref())?;
        if incident.resolved_at.is_none() {
            trees.open_incidents.insert(at, key.as_ref())?;
        }
        incidents += 1;
    }
    let mut issues = 0usize;
    for value in trees.issues.iter().values() {
        let issue: Issue = super::error::decode("issues", &value?)?;
        trees
            .issue_times
            .insert(keys::issue_time(issue.last_seen, &issue.id), &[][..])?;
        issues += 1;
    }
    trees.meta.insert(SCHEMA_KEY, &4u32.to_be_bytes())?;
    db.flush()?;
    tracing::info!(
        incidents,
        issues,
        "store upgraded from schema version 3 to 4: incidents and issues indexed by time"
    );
    Ok(())
}

/// Version 4 → 5: nothing to rewrite. Monitor records may now be in compact format 2 (an open
/// incident's handling: acknowledged, next repeat, held; a snooze), and redo records may name
/// the `meta` tree (the collector's own records are write sets). Both read fine here; the new
/// number is for an older binary, which then refuses the data dir with the schema message
/// instead of meeting a record it cannot decode.
pub(super) fn from_v4(db: &sled::Db, trees: &Trees) -> Result<(), StoreError> {
    trees.meta.insert(SCHEMA_KEY, &5u32.to_be_bytes())?;
    db.flush()?;
    tracing::info!("store upgraded from schema version 4 to 5: nothing rewritten");
    Ok(())
}
