//! The upstream relay queue: accepted envelopes, raw, keyed by a sled-generated id so iteration
//! order is acceptance order. Ingest writes it inside [`Store::commit`] (same transaction as the
//! state change, so an acknowledged envelope is queued durably); the forwarder reads it oldest
//! first and removes what the upstream took. It stores bytes and never decides what to send.

use super::Store;
use super::error::StoreError;

/// One queued envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEnvelope {
    /// Position in the queue; increases with acceptance order.
    pub id: u64,
    /// The envelope exactly as accepted (decompressed).
    pub body: Vec<u8>,
}

impl Store {
    /// The oldest `limit` queued envelopes, oldest first.
    pub fn upstream_oldest(&self, limit: usize) -> Result<Vec<QueuedEnvelope>, StoreError> {
        self.trees()
            .upstream
            .iter()
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                Ok(QueuedEnvelope {
                    id: queue_id(&key),
                    body: value.to_vec(),
                })
            })
            .collect()
    }

    /// Removes a relayed envelope. Returns whether it was still queued (overflow may have
    /// dropped it meanwhile). Made durable by the next group commit: a crash before then
    /// relays it again, so delivery is at least once.
    pub fn upstream_remove(&self, id: u64) -> Result<bool, StoreError> {
        let removed = self.trees().upstream.remove(id.to_be_bytes())?.is_some();
        if removed {
            self.inner.group.record_write();
        }
        Ok(removed)
    }

    /// Drops the oldest queued envelope (overflow). Returns whether there was one.
    pub fn upstream_drop_oldest(&self) -> Result<bool, StoreError> {
        let dropped = self.trees().upstream.pop_min()?.is_some();
        if dropped {
            self.inner.group.record_write();
        }
        Ok(dropped)
    }

    /// Number of queued envelopes. Walks the tree: for startup, not for every request.
    pub fn upstream_len(&self) -> usize {
        self.trees().upstream.len()
    }
}

fn queue_id(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key).map_or(0, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use crate::store::{Store, WriteSet};

    #[test]
    fn the_queue_keeps_acceptance_order_and_forgets_what_was_sent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        for body in ["a", "b", "c"] {
            let set = WriteSet {
                upstream: vec![body.as_bytes().to_vec()],
                ..WriteSet::default()
            };
            store.commit(&set, now).unwrap();
        }
        let queued = store.upstream_oldest(10).unwrap();
        let bodies: Vec<_> = queued.iter().map(|q| q.body.as_slice()).collect();
        assert_eq!(bodies, [b"a", b"b", b"c"]);
        assert!(queued.windows(2).all(|w| w[0].id < w[1].id));

        assert!(store.upstream_remove(queued[1].id).unwrap());
        assert!(!store.upstream_remove(queued[1].id).unwrap());
        assert!(store.upstream_drop_oldest().unwrap());
        assert_eq!(store.upstream_len(), 1);
        assert_eq!(store.upstream_oldest(10).unwrap()[0].body, b"c");
    }
}
