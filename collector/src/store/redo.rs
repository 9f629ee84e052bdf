//! How a group of write sets reaches sled atomically without a sled transaction.
//!
//! **Why not a transaction.** In sled 0.34 every transaction seals two log buffers and wakes
//! sled's whole I/O thread pool for each, and takes a process-wide lock every other sled
//! operation then waits on; with one transaction per group that was still a quarter of the
//! collector's CPU at full load (`benches/README.md`, "Collector ingest"). Plain inserts do
//! none of that.
//!
//! **How atomicity is kept.** A group is written as:
//!
//! 1. *redo records* in the `redo` tree (key = position in the group): the group's number and
//!    every put and remove its write sets make, in order, as raw keys and values, cut into
//!    records of about [`RECORD_SIZE`] (one record for a typical group of check-ins, so one
//!    extra insert per group rather than per write set);
//! 2. those puts and removes, as plain sled inserts and removes, in order;
//! 3. the group's number under `redo_done` in `meta`.
//!
//! sled recovers a prefix of its one log. So after a crash, either `redo_done` holds the
//! group's number and every write before it survived, or it does not and the group may be
//! cut anywhere in step 2, but then every redo record of the group survived (they precede
//! every write they describe). [`recover`] replays, on open, the redo records numbered above
//! `redo_done`: puts and removes of final values, so replaying a write that did survive
//! changes nothing. At most one group is ever incomplete: a group starts only after the
//! previous one wrote its `redo_done`.
//!
//! Nothing here decides durability: the group is acknowledged only after the flush that
//! follows it (`committer.rs`), as before.
//!
//! **Other writers.** Writes made outside a group (retention, deliveries marked sent, probe
//! state) touch a key of a group only after the group was answered, so after its `redo_done`;
//! if such a write survives a crash, so did `redo_done`, and no replay can undo it.

use std::borrow::Cow;

use super::error::StoreError;
use super::handles::Ids;
use super::pending;
use super::prepared::Prepared;
use super::trees::{TreeId, Trees};

/// The tag of schema version 2's `deadlines` tree, which a group cut short by a crash before
/// the upgrade to version 3 may still name; its writes are skipped on replay (deadlines derive
/// from the monitor records since, and the upgrade drops the tree).
const LEGACY_DEADLINES: u8 = 1;

/// Key in `meta` of the number of the last group whose writes were all made.
const DONE_KEY: &[u8] = b"redo_done";

/// One raw write: `value` put under `key`, or the key removed. Borrows what the write set
/// already encoded; owns what it decoded or computed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Op<'a> {
    tree: TreeId,
    key: Cow<'a, [u8]>,
    value: Option<Cow<'a, [u8]>>,
}

impl<'a> Op<'a> {
    fn put(tree: TreeId, key: impl Into<Cow<'a, [u8]>>, value: impl Into<Cow<'a, [u8]>>) -> Self {
        Op {
            tree,
            key: key.into(),
            value: Some(value.into()),
        }
    }

    fn remove(tree: TreeId, key: impl Into<Cow<'a, [u8]>>) -> Self {
        Op {
            tree,
            key: key.into(),
            value: None,
        }
    }

    fn apply(&self, trees: &Trees) -> Result<(), sled::Error> {
        let tree = self.tree.tree(trees);
        match &self.value {
            Some(value) => tree.insert(&*self.key, &**value).map(drop),
            None => tree.remove(&*self.key).map(drop),
        }
    }
}

/// The single writer of groups: the committer thread, or a caller of `Store::commit`, one at
/// a time (the store keeps it behind a mutex).
#[derive(Debug)]
pub(super) struct Writer {
    /// Number of the next group.
    next: u64,
    /// Slots of the `redo` tree that may hold a record: those the largest group since the last
    /// trim wrote. A group with fewer records removes the ones past its own, so a sweep's large
    /// group does not leave hundreds of kilobytes of stale records until the next restart.
    slots: u32,
}

impl Writer {
    /// Writes `group`: redo records, the writes, the group's `redo_done`. Draws new outbox and
    /// upstream ids from sled; everything else the writes depend on (a check-in's previous
    /// key) was read when the write set was prepared, under its monitor's lock.
    pub(super) fn write_group(
        &mut self,
        ids: &Ids,
        trees: &Trees,
        group: &[Prepared],
    ) -> Result<(), StoreError> {
        self.write(ids, trees, group, None)
    }

    /// [`Writer::write_group`] as a crash would leave it: the redo records and the first `cut`
    /// writes only.
    #[cfg(test)]
    pub(super) fn write_group_cut(
        &mut self,
        ids: &Ids,
        trees: &Trees,
        group: &[Prepared],
        cut: usize,
    ) -> Result<(), StoreError> {
        self.write(ids, trees, group, Some(cut))
    }

    fn write(
        &mut self,
        ids: &Ids,
        trees: &Trees,
        group: &[Prepared],
        cut: Option<usize>,
    ) -> Result<(), StoreError> {
        let number = self.next;
        let mut ops = Vec::new();
        for prepared in group {
            resolve(ids, prepared, &mut ops)?;
        }
        let mut written = 0;
        for (slot, record) in (0u32..).zip(encode_records(number, &ops)) {
            trees.redo.insert(slot.to_be_bytes(), record)?;
            written = slot + 1;
        }
        for op in ops.iter().take(cut.unwrap_or(usize::MAX)) {
            op.apply(trees)?;
        }
        if cut.is_some() {
            return Ok(());
        }
        trees.meta.insert(DONE_KEY, &number.to_be_bytes())?;
        self.next = number + 1;
        // After `redo_done`: the stale records of an earlier, complete group are skipped on
        // replay anyway, so removing them needs no ordering with this group's writes.
        for slot in written..self.slots {
            trees.redo.remove(slot.to_be_bytes())?;
        }
        self.slots = written;
        Ok(())
    }
}

/// Appends the raw writes of one write set to `ops`, in the order they are made.
fn resolve<'a>(ids: &Ids, set: &'a Prepared, ops: &mut Vec<Op<'a>>) -> Result<(), StoreError> {
    for (key, value) in &set.monitors {
        ops.push(Op::put(TreeId::Monitors, key.as_slice(), value.as_slice()));
    }
    for checkin in &set.checkins {
        let (key, id) = (checkin.key.as_slice(), &checkin.id.as_bytes()[..]);
        match &checkin.previous {
            // Same key (an `ok` closing its `in_progress`): the index is right, and a record
            // there is replaced, unless the run is open again (its monitor holds it now).
            Some(old) if old.as_slice() == key => {
                if checkin.had_record && checkin.value.is_none() {
                    ops.push(Op::remove(TreeId::Checkins, old.as_slice()));
                }
            }
            Some(old) => {
                if checkin.had_record {
                    ops.push(Op::remove(TreeId::Checkins, old.as_slice()));
                }
                ops.push(Op::put(TreeId::CheckinIds, id, key));
            }
            None => ops.push(Op::put(TreeId::CheckinIds, id, key)),
        }
        if let Some(value) = &checkin.value {
            ops.push(Op::put(TreeId::Checkins, key, value.as_slice()));
        }
    }
    for incident in &set.incidents {
        let (key, at) = (incident.key.as_slice(), incident.time_key());
        ops.push(Op::put(TreeId::Incidents, key, incident.value.as_slice()));
        ops.push(Op::put(TreeId::IncidentTimes, at, key));
        ops.push(if incident.open {
            Op::put(TreeId::OpenIncidents, at, key)
        } else {
            Op::remove(TreeId::OpenIncidents, at)
        });
    }
    for delivery in &set.deliveries {
        let (id, entry, pending) = pending::new_entry(ids.next()?, delivery, set.now);
        ops.push(Op::put(TreeId::Outbox, id.to_vec(), entry));
        ops.push(Op::put(TreeId::OutboxPending, pending, Vec::new()));
    }
    for (key, value) in &set.issues {
        ops.push(Op::put(TreeId::Issues, key.as_slice(), value.as_slice()));
    }
    for (old, new) in &set.issue_times {
        if let Some(old) = old {
            ops.push(Op::remove(TreeId::IssueTimes, old.as_slice()));
        }
        ops.push(Op::put(TreeId::IssueTimes, new.as_slice(), &[][..]));
    }
    for (key, payload) in &set.events {
        ops.push(Op::put(TreeId::Events, key.as_slice(), payload.as_slice()));
    }
    for (key, value) in &set.logs {
        ops.push(Op::put(TreeId::PingLogs, key.as_slice(), value.as_slice()));
    }
    for envelope in &set.upstream {
        let id = ids.next()?.to_be_bytes();
        ops.push(Op::put(TreeId::Upstream, id.to_vec(), envelope.as_slice()));
    }
    for (tree, key, value) in &set.puts {
        ops.push(Op::put(*tree, key.as_slice(), value.as_slice()));
    }
    for (tree, key) in &set.removes {
        ops.push(Op::remove(*tree, key.as_slice()));
    }
    Ok(())
}

/// Completes the group a crash cut short, if any; returns the writer that numbers the next.
/// Called on open, before anything else writes.
pub(super) fn recover(trees: &Trees) -> Result<Writer, StoreError> {
    let done = match trees.meta.get(DONE_KEY)? {
        Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| corrupt("`redo_done` is not 8 bytes"))?,
        None => 0,
    };
    let mut replay = Vec::new();
    let mut last = done;
    for entry in trees.redo.iter() {
        let (_, record) = entry?;
        let (number, ops) = decode_record(&record)?;
        // Older slots of earlier, complete groups linger until overwritten: skip them.
        if number > done {
            last = last.max(number);
            replay.push((number, ops));
        }
    }
    // Only the last group can be incomplete; anything else above `done` is a bug or damage.
    if let Some((number, _)) = replay.iter().find(|(number, _)| *number != last) {
        return Err(corrupt(&format!(
            "redo records of groups {number} and {last} are both incomplete"
        )));
    }
    if !replay.is_empty() {
        tracing::warn!(
            group = last,
            write_sets = replay.len(),
            "completing the group of writes a crash interrupted"
        );
        for op in replay.iter().flat_map(|(_, ops)| ops) {
            op.apply(trees)?;
        }
        trees.meta.insert(DONE_KEY, &last.to_be_bytes())?;
    }
    trees.redo.clear()?;
    Ok(Writer {
        next: last + 1,
        slots: 0,
    })
}

fn corrupt(why: &str) -> StoreError {
    StoreError::Redo(why.to_owned())
}

/// Redo records are cut at about this size: sled 0.34 writes a value over 128 KiB (a quarter
/// of its 512 KiB log segment) as a separate blob file, which the record of a sweep's write
/// set of 256 monitors (~750 KB) would otherwise be.
pub(super) const RECORD_SIZE: usize = 32 * 1024;

/// The redo records of one write set's `ops`, in order, each at most about [`RECORD_SIZE`]
/// (one op is never split): `number` (u64 BE), then per op: tree tag (u8), key length
/// (u32 BE), key, then either `0xff` for a remove or `0x00`, value length (u32 BE), value.
fn encode_records(number: u64, ops: &[Op<'_>]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut out = Vec::new();
    for op in ops {
        if out.len() >= RECORD_SIZE {
            records.push(std::mem::take(&mut out));
        }
        if out.is_empty() {
            out.extend_from_slice(&number.to_be_bytes());
        }
        out.push(op.tree as u8);
        put_bytes(&mut out, &op.key);
        match &op.value {
            None => out.push(0xff),
            Some(value) => {
                out.push(0);
                put_bytes(&mut out, value);
            }
        }
    }
    if !out.is_empty() {
        records.push(out);
    }
    records
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("keys and values are far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn decode_record(mut record: &[u8]) -> Result<(u64, Vec<Op<'static>>), StoreError> {
    let number = u64::from_be_bytes(take::<8>(&mut record)?);
    let mut ops = Vec::new();
    while !record.is_empty() {
        let [tag] = take::<1>(&mut record)?;
        let key = take_bytes(&mut record)?;
        let value = match take::<1>(&mut record)? {
            [0xff] => None,
            [0] => Some(take_bytes(&mut record)?),
            _ => return Err(corrupt("redo record has a bad op marker")),
        };
        if tag == LEGACY_DEADLINES {
            // Derived from the monitor record the same group writes: nothing to replay.
            continue;
        }
        let tree = *TreeId::ALL
            .iter()
            .find(|tree| **tree as u8 == tag)
            .ok_or_else(|| corrupt("redo record names an unknown tree"))?;
        ops.push(Op {
            tree,
            key: key.into(),
            value: value.map(Cow::Owned),
        });
    }
    Ok((number, ops))
}

fn take<const N: usize>(record: &mut &[u8]) -> Result<[u8; N], StoreError> {
    let (head, rest) = record
        .split_first_chunk::<N>()
        .ok_or_else(|| corrupt("redo record is truncated"))?;
    *record = rest;
    Ok(*head)
}

fn take_bytes(record: &mut &[u8]) -> Result<Vec<u8>, StoreError> {
    let len = u32::from_be_bytes(take::<4>(record)?) as usize;
    if record.len() < len {
        return Err(corrupt("redo record is truncated"));
    }
    let (bytes, rest) = record.split_at(len);
    *record = rest;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let ops = vec![
            Op::put(TreeId::Monitors, b"m".to_vec(), b"{}".to_vec()),
            Op::remove(TreeId::CheckinIds, b"m".to_vec()),
            Op::put(TreeId::OutboxPending, b"p".to_vec(), Vec::new()),
            Op::put(
                TreeId::Upstream,
                7u64.to_be_bytes().to_vec(),
                vec![0xff; 300],
            ),
        ];
        let records = encode_records(42, &ops);
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(decode_record(record).unwrap(), (42, ops));
        // Every truncation is refused, never misread.
        for len in 0..record.len() {
            if let Ok((_, ops)) = decode_record(&record[..len]) {
                // A cut exactly between two ops decodes the ops before it; anything else fails.
                assert!(ops.len() < 4, "cut at {len} decoded everything");
            }
        }
    }

    #[test]
    fn a_schema_2_deadlines_write_is_skipped_and_the_rest_replayed() {
        let monitor = Op::put(TreeId::Monitors, b"m".to_vec(), b"{}".to_vec());
        let checkin = Op::put(TreeId::Checkins, b"c".to_vec(), b"{}".to_vec());
        // Version 2 wrote the monitor, then its deadlines under tag 1, then the check-in.
        let mut record = encode_records(9, std::slice::from_ref(&monitor)).remove(0);
        record.push(LEGACY_DEADLINES);
        put_bytes(&mut record, b"m");
        record.push(0);
        put_bytes(&mut record, b"[]");
        record.push(LEGACY_DEADLINES);
        put_bytes(&mut record, b"n");
        record.push(0xff);
        record.extend_from_slice(&encode_records(9, std::slice::from_ref(&checkin))[0][8..]);
        assert_eq!(decode_record(&record).unwrap(), (9, vec![monitor, checkin]));
        // Any other unknown tag is damage.
        let mut bad = encode_records(9, &[])
            .pop()
            .unwrap_or_else(|| 9u64.to_be_bytes().to_vec());
        bad.push(200);
        put_bytes(&mut bad, b"k");
        bad.push(0xff);
        assert!(decode_record(&bad).is_err());
    }

    #[test]
    fn a_large_write_set_is_cut_into_records_replayed_in_order() {
        let ops: Vec<Op<'_>> = (0..100u32)
            .map(|n| {
                Op::put(
                    TreeId::Checkins,
                    n.to_be_bytes().to_vec(),
                    vec![n as u8; 1000],
                )
            })
            .collect();
        let records = encode_records(7, &ops);
        assert!(records.len() >= 3, "{} records", records.len());
        assert!(records.iter().all(|r| r.len() < RECORD_SIZE + 1100));
        let decoded: Vec<Op<'_>> = records
            .iter()
            .flat_map(|r| {
                let (number, ops) = decode_record(r).unwrap();
                assert_eq!(number, 7);
                ops
            })
            .collect();
        assert_eq!(decoded, ops);
    }
}
