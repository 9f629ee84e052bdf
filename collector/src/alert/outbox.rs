//! The outbox as the dispatcher sees it: the deliveries, where each one is, and the trait the
//! store implements over sled. Shared by the dispatcher's workers and their backlogs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::alerting::Payload;

/// Where an outbox entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting to be (re)tried.
    Pending,
    /// Delivered.
    Sent,
    /// Given up: a permanent error (or the age limit); `last_error` says why.
    Failed,
    /// Not sent on its own because another message carries it: a repeat within the dedup
    /// window, superseded by a newer alert about the same subject, or merged into a digest
    /// (`last_error` says which).
    Suppressed,
}

/// A delivery to create: what the store writes to the outbox with the state change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewDelivery {
    /// The channel name.
    pub channel: String,
    /// The rule that routed it.
    pub rule: String,
    /// What to deliver.
    pub payload: Payload,
}

/// One delivery in the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the outbox: assigned by the store, increasing in commit order.
    pub id: u64,
    /// The channel name.
    pub channel: String,
    /// The rule that routed it ([`DIGEST_RULE`](super::dispatch::DIGEST_RULE) for a digest).
    pub rule: String,
    /// What to deliver.
    pub payload: Payload,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Not to be tried before this.
    pub next_attempt_at: DateTime<Utc>,
    /// Held back by dedup until `next_attempt_at` (does not block later entries, unlike a
    /// backoff).
    pub deferred: bool,
    /// Why the last attempt failed, or why it was suppressed.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub sent_at: Option<DateTime<Utc>>,
}

impl OutboxEntry {
    /// A pending entry, due at once.
    pub fn new(id: u64, delivery: NewDelivery, now: DateTime<Utc>) -> OutboxEntry {
        OutboxEntry {
            id,
            channel: delivery.channel,
            rule: delivery.rule,
            payload: delivery.payload,
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            deferred: false,
            last_error: None,
            sent_at: None,
        }
    }
}

/// An outbox store failed.
#[derive(Debug, thiserror::Error)]
#[error("outbox: {0}")]
pub struct OutboxError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Durable storage of deliveries. The store implements it over sled; entries are written
/// there in the same batch as the state change that caused them. Reads are pages: their cost
/// is bounded by `limit` (and a seek), never by how much the channel has pending.
pub trait Outbox: Send + Sync {
    /// `channel`'s entries in state [`DeliveryState::Pending`], in id order, at most `limit`.
    fn pending(&self, channel: &str, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError>;

    /// Like [`Outbox::pending`], but only entries with an id above `after` (`None`: from the
    /// first).
    fn pending_after(
        &self,
        channel: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, OutboxError>;

    /// How many entries `channel` has pending, from a counter (no scan).
    fn pending_count(&self, channel: &str) -> usize;

    /// Replaces these entries (by id), all of them or none (one batch).
    fn save(&self, entries: &[OutboxEntry]) -> Result<(), OutboxError>;
}
