//! The global budget of decoded request bytes in flight (`limits.decoded_bytes_in_flight`).
//!
//! Each envelope is bounded on its own (1 MiB sent, 20 MiB decoded), but not all of them
//! together: 30 gzip bodies of 20 KB, each decoding to 19 MB, held 3.27 GB at once. So an
//! envelope's body is first measured (decoded into a sink: CPU, no memory), then it reserves
//! what it will hold from one semaphore of bytes *before* it is decoded, and keeps the
//! reservation until its answer. Beyond the budget a request waits briefly, then gets a `503`
//! asking it to retry later; total memory so stays bounded whatever the concurrency.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::HttpError;

/// What holding one decoded byte costs while the request is handled: the decoded body, the
/// parsed envelope's item copies, each event's payload copy and parsed form, and its encoded
/// write set. Measured on 19 MB bodies of events (docs/reliability.md).
const COPIES: u64 = 4;

/// How long a request waits for room before its `503`: long enough to ride out a burst of
/// large envelopes decoding one after the other, short enough for an SDK's request timeout.
const WAIT: Duration = Duration::from_secs(5);

/// The semaphore counts KiB, so a budget up to 1 TiB fits its `u32` acquisitions.
const UNIT: u64 = 1024;

/// The collector-wide budget of decoded bytes.
#[derive(Debug, Clone)]
pub struct DecodeBudget {
    permits: Arc<Semaphore>,
    /// The whole budget in units: a reservation never asks for more, so one envelope larger
    /// than the budget still goes through, alone.
    total: u32,
    wait: Duration,
}

impl DecodeBudget {
    /// A budget of `bytes` (validated by the config: 32 MiB to 1 TiB).
    pub fn new(bytes: u64) -> DecodeBudget {
        DecodeBudget::with_wait(bytes, WAIT)
    }

    fn with_wait(bytes: u64, wait: Duration) -> DecodeBudget {
        let total = u32::try_from((bytes / UNIT).max(1)).unwrap_or(u32::MAX);
        DecodeBudget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            wait,
        }
    }

    /// Reserves what a body decoding to `decoded` bytes will hold, waiting at most the wait
    /// for room; the reservation is returned when the permit is dropped.
    pub async fn reserve(&self, decoded: usize) -> Result<OwnedSemaphorePermit, HttpError> {
        let units = (decoded as u64)
            .saturating_mul(COPIES)
            .div_ceil(UNIT)
            .max(1);
        let units = u32::try_from(units).unwrap_or(u32::MAX).min(self.total);
        let acquire = self.permits.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one is as busy as can be.
            Ok(Err(_)) | Err(_) => Err(HttpError::unavailable(format!(
                "the collector is decoding as many request bytes as it may hold at once \
                 (limits.decoded_bytes_in_flight) and this body decodes to {decoded} bytes; \
                 nothing was stored, retry later"
            ))
            .retry_after(1, "")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_beyond_the_budget_wait_then_are_refused() {
        let budget = DecodeBudget::with_wait(8 << 20, Duration::from_millis(50));
        // 1.5 MiB decoded holds 6 MiB of the 8 MiB.
        let first = budget.reserve(3 << 19).await.expect("room");
        let refusal = budget.reserve(1 << 20).await.unwrap_err();
        assert_eq!(refusal.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(refusal.message.contains("retry later"), "{refusal:?}");
        assert!(refusal.message.contains("limits.decoded_bytes_in_flight"));
        // Small bodies still fit beside it.
        let small = budget
            .reserve(100 << 10)
            .await
            .expect("room for a small body");
        drop(first);
        drop(small);
        // A body larger than the whole budget goes through alone.
        let huge = budget.reserve(20 << 20).await.expect("alone");
        assert!(budget.reserve(1).await.is_err());
        drop(huge);
        // A waiter gets the room freed while it waits.
        let held = budget.reserve(2 << 20).await.expect("room");
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(1 << 20).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        waiter.await.expect("task").expect("room after the release");
    }
}
