//! Ids for check-ins and events from a per-thread wyrand generator.
//!
//! Ids must be unique, not secret, so the hot path never asks the OS for randomness: each thread
//! seeds its generator once from std's per-thread random hash keys and then costs a multiply per
//! 64 bits. Must never block, allocate or make a system call after the first use on a thread.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher, RandomState};

use uuid::Uuid;

thread_local! {
    // `const` and without a destructor: access is a plain TLS read and can never fail.
    static STATE: Cell<u64> = const { Cell::new(0) };
}

#[cold]
fn seed() -> u64 {
    // RandomState's keys come from the OS once per thread and differ for every instance.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish() | 1
}

/// The next 64 random bits of this thread's generator (wyrand).
#[inline]
pub(crate) fn next_u64() -> u64 {
    STATE.with(|state| {
        let mut s = state.get();
        if s == 0 {
            s = seed();
        }
        s = s.wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// A random (version 4) UUID from this thread's generator.
#[inline]
pub(crate) fn uuid_v4() -> Uuid {
    let bits = (u128::from(next_u64()) << 64) | u128::from(next_u64());
    uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_v4_and_distinct_across_threads() {
        let ids: Vec<Uuid> = (0..4)
            .map(|_| std::thread::spawn(|| (0..1000).map(|_| uuid_v4()).collect::<Vec<_>>()))
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 4));
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    }
}
