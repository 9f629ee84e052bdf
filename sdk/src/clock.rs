//! The clock a run reads on the caller's thread: when it started, and how long it took.
//!
//! A run needs two clock reads (its start and its end), and on the VMs services run on
//! `std::time::Instant::now()` (a vDSO `clock_gettime`) costs ~20–40 ns each: most of what a
//! monitored call costs. Where the CPU has a counter that ticks at a fixed rate whatever the
//! power state (an invariant TSC on x86-64, the system counter on AArch64), [`quanta`] reads it
//! in a few nanoseconds and scales the difference of two reads to nanoseconds with a factor it
//! calibrated against the OS clock. Elsewhere (other architectures, or an x86-64 CPU without an
//! invariant TSC, which `quanta` detects at run time) it is the OS's monotonic clock, and on
//! targets `quanta` does not cover, `std::time::Instant`.
//!
//! Calibrating takes up to ~200 ms, so [`calibrate`] runs it in `init` (only with a DSN: a
//! disabled SDK never reads this clock) and never on a job's first run. Used only for the
//! durations the SDK reports; timers and deadlines (transport, heartbeats) keep `Instant`.

use std::time::Duration;

/// A point in time on this clock. Only differences mean anything.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp(Inner);

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Duration;

    pub(super) type Inner = u64;

    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

    #[inline]
    fn clock() -> &'static quanta::Clock {
        CLOCK.get_or_init(quanta::Clock::new)
    }

    pub(super) fn calibrate() {
        clock();
    }

    #[inline]
    pub(super) fn now() -> Inner {
        clock().raw()
    }

    #[inline]
    pub(super) fn between(start: Inner, end: Inner) -> Duration {
        clock().delta(start, end)
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod imp {
    use std::time::{Duration, Instant};

    pub(super) type Inner = Instant;

    pub(super) fn calibrate() {}

    #[inline]
    pub(super) fn now() -> Inner {
        Instant::now()
    }

    #[inline]
    pub(super) fn between(start: Inner, end: Inner) -> Duration {
        end.saturating_duration_since(start)
    }
}

use imp::Inner;

/// Picks and calibrates the clock now, so that no run pays for it.
pub(crate) fn calibrate() {
    imp::calibrate();
}

impl Stamp {
    /// Now.
    #[inline]
    pub(crate) fn now() -> Stamp {
        Stamp(imp::now())
    }

    /// The time since `self`; zero if the clock says `self` is in the future (two cores'
    /// counters a few ticks apart).
    #[inline]
    pub(crate) fn elapsed(self) -> Duration {
        imp::between(self.0, imp::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The scaled ticks agree with the OS clock over a sleep: the calibration turned ticks into
    /// nanoseconds, not into some other unit.
    #[test]
    fn elapsed_agrees_with_the_os_clock() {
        calibrate();
        let os = Instant::now();
        let ours = Stamp::now();
        std::thread::sleep(Duration::from_millis(50));
        let ours = ours.elapsed();
        let os = os.elapsed();
        let diff = ours.abs_diff(os);
        assert!(
            diff < Duration::from_millis(5),
            "quanta said {ours:?}, the OS clock {os:?}"
        );
        assert!(ours >= Duration::from_millis(45), "{ours:?}");
    }
}
