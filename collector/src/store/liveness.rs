//! The collector's liveness mark and its known outages, in the `meta` tree: `alive` is the
//! last moment the collector is known to have been watching (written about once a second, so
//! the durable mark trails the truth by about a second plus a flush), `outages` the recent
//! windows in which it was not (`engine::Outage`, JSON). At start the gap since the mark is the
//! window it was down. Written like every change, as a write set (`WriteSet::meta`): the mark
//! and the outages together, and sled recovers a prefix of its log, so a durable write made
//! after a mark implies the mark.

use chrono::{DateTime, Utc};

use super::error::{StoreError, decode};
use super::keys;
use super::{MetaWrite, Store};
use crate::engine::Outage;

impl Store {
    /// The last liveness mark and the outages recorded so far.
    pub fn liveness(&self) -> Result<(Option<DateTime<Utc>>, Vec<Outage>), StoreError> {
        let meta = &self.trees().meta;
        let alive = meta.get(keys::ALIVE)?.and_then(|bytes| {
            let bytes: [u8; 8] = bytes.as_ref().try_into().ok()?;
            let micros = (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64;
            DateTime::from_timestamp_micros(micros)
        });
        let outages = match meta.get(keys::OUTAGES)? {
            Some(bytes) => decode("meta", &bytes)?,
            None => Vec::new(),
        };
        Ok((alive, outages))
    }

    /// Marks the collector alive at `now` (and saves `outages` when given), if the store takes
    /// writes: the same free-space and last-flush checks a commit passes. Asks for a flush
    /// without waiting for it (about once a second on an idle collector: one small fsync).
    pub fn mark_alive(
        &self,
        now: DateTime<Utc>,
        outages: Option<&[Outage]>,
    ) -> Result<(), StoreError> {
        if let Some(why) = self.inner.group.failure() {
            return Err(StoreError::Flush(why));
        }
        // The mark and the outages together, as a write set (free space checked by it).
        self.write_meta(MetaWrite::Alive {
            at: now,
            outages: outages.map(<[Outage]>::to_vec),
        })?;
        self.inner.group.request();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::OutageKind;
    use crate::store::tests::reopen;

    use super::*;

    #[test]
    fn the_mark_and_the_outages_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.liveness().unwrap(), (None, Vec::new()));
        let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let outage = Outage {
            from: at(0),
            to: Some(at(20)),
            kind: OutageKind::Down,
        };
        store.mark_alive(at(30), Some(&[outage])).unwrap();
        store.mark_alive(at(31), None).unwrap();
        store.flush_blocking().unwrap();
        drop(store);
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.liveness().unwrap(), (Some(at(31)), vec![outage]));
    }
}
