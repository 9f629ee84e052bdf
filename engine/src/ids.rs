//! Deterministic ids for the check-ins and incidents the engine creates, so the engine needs no
//! randomness: an FNV-1a 128 hash of (monitor key, sequence number, purpose), stamped as a
//! version-8 UUID. Unique per monitor environment because the sequence number never repeats.
//! The check-in of a slot the collector could not watch is named by the slot instead
//! ([`slot_id`]), so recording that slot again (or its `missed` at the end of the grace)
//! replaces its record rather than adding one.

use uuid::{Builder, Uuid};

use super::model::MonitorEnv;

/// What a derived id is for; part of the hash, so purposes never collide.
#[derive(Clone, Copy)]
pub(super) enum Purpose {
    CheckIn,
    Missed,
    Incident,
    Slot,
}

/// Derives a fresh id for `monitor` and advances its sequence number.
pub(super) fn next_id(monitor: &mut MonitorEnv, purpose: Purpose) -> Uuid {
    monitor.seq += 1;
    let mut hash = Fnv128::new();
    hash.write(&monitor.key.project.to_le_bytes());
    hash.write_str(&monitor.key.slug);
    hash.write_str(&monitor.key.environment);
    hash.write(&monitor.seq.to_le_bytes());
    hash.write(&[purpose as u8]);
    Builder::from_custom_bytes(hash.finish().to_be_bytes()).into_uuid()
}

/// The id of the check-in recorded for `monitor`'s slot at `slot` after an outage of the
/// collector: the same for the same slot, whatever happened in between.
pub(super) fn slot_id(monitor: &MonitorEnv, slot: chrono::DateTime<chrono::Utc>) -> Uuid {
    let mut hash = Fnv128::new();
    hash.write(&monitor.key.project.to_le_bytes());
    hash.write_str(&monitor.key.slug);
    hash.write_str(&monitor.key.environment);
    hash.write(&slot.timestamp_micros().to_le_bytes());
    hash.write(&[Purpose::Slot as u8]);
    Builder::from_custom_bytes(hash.finish().to_be_bytes()).into_uuid()
}

/// FNV-1a, 128-bit variant: the engine's one hash for the ids it derives (these and issue ids).
pub(super) struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    pub(super) fn new() -> Self {
        Fnv128(Self::OFFSET)
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u128::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Length-prefixed, so ("ab","c") and ("a","bc") differ.
    pub(super) fn write_str(&mut self, s: &str) {
        self.write(&(s.len() as u64).to_le_bytes());
        self.write(s.as_bytes());
    }

    pub(super) fn finish(&self) -> u128 {
        self.0
    }
}
