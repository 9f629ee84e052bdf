//! Whether a client is installed, and which: one relaxed atomic, read on every hot path. Its
//! own module so that what only asks "is the SDK on?" (the scope) does not import the client.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// 0 when the SDK is disabled, else the generation of the current client.
static GENERATION: AtomicUsize = AtomicUsize::new(0);

/// The current generation: one relaxed load, 0 when the SDK is disabled.
#[inline(always)]
pub(crate) fn generation() -> usize {
    GENERATION.load(Relaxed)
}

/// Whether a client is installed. One relaxed atomic load.
#[inline(always)]
pub fn is_enabled() -> bool {
    generation() != 0
}

/// Installs generation `value` (0: disabled). Only the client's installation calls it.
pub(crate) fn set(value: usize) {
    GENERATION.store(value, Relaxed);
}
