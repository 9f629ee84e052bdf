//! The outbox as the service hands it to the dispatcher: the store's, instrumented. Counts the
//! deliveries each channel finished (sent, failed, suppressed) for `/metrics`, and beats the
//! dispatcher's heartbeat on every read, so `/healthz` can tell a working dispatcher from a
//! stuck one. Adds no behaviour: every call is the inner outbox's.

use std::sync::Arc;

use chrono::Utc;

use super::dispatch::{DeliveryState, Outbox, OutboxEntry, OutboxError};
use crate::health::Heartbeat;
use crate::metrics::Metrics;

/// An [`Outbox`] that reports to the metrics and the dispatcher's heartbeat.
#[derive(Debug)]
pub struct MeteredOutbox<O> {
    outbox: O,
    metrics: Arc<Metrics>,
    heartbeat: Arc<Heartbeat>,
}

impl<O: Outbox> MeteredOutbox<O> {
    /// Wraps `outbox`.
    pub fn new(outbox: O, metrics: Arc<Metrics>, heartbeat: Arc<Heartbeat>) -> MeteredOutbox<O> {
        MeteredOutbox {
            outbox,
            metrics,
            heartbeat,
        }
    }
}

impl<O: Outbox> Outbox for MeteredOutbox<O> {
    fn pending(&self, channel: &str, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        // A worker's page read from the oldest: a beat too.
        self.heartbeat.beat(Utc::now());
        self.outbox.pending(channel, limit)
    }

    fn pending_after(
        &self,
        channel: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, OutboxError> {
        // Workers read here every step and at least once per poll interval: a beat.
        self.heartbeat.beat(Utc::now());
        self.outbox.pending_after(channel, after, limit)
    }

    fn pending_count(&self, channel: &str) -> usize {
        self.outbox.pending_count(channel)
    }

    fn save(&self, entries: &[OutboxEntry]) -> Result<(), OutboxError> {
        self.outbox.save(entries)?;
        // Only the worker that read an entry as pending saves it; a finished state is saved
        // once, so each delivery is counted once (or again after a failed save, when it is
        // really sent again).
        for entry in entries {
            if entry.state != DeliveryState::Pending {
                self.metrics.alert_finished(&entry.channel, entry.state);
            }
        }
        Ok(())
    }
}
