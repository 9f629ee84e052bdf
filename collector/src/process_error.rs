//! Why an input, an edit or an acknowledgement was not applied ([`ProcessError`]). A leaf of
//! its own: the processor returns it, and so do the probe tasks the processor hands a probe's
//! acknowledgement to (`probe.rs`), which the processor in turn holds.

use std::time::Duration;

use crate::engine::caps::Refused;
use crate::engine::oncall::AckRefusal;
use crate::engine::{ConfigError, Rejection};
use crate::store::StoreError;

/// Why an input was not applied. Nothing was written when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The engine rejected check-in number `index` of the input.
    #[error("{rejection}")]
    Rejected {
        /// Position among the input's check-ins.
        index: usize,
        /// Why.
        rejection: Rejection,
    },
    /// Check-in number `index` would pass a cap or break the project's upsert policy: the
    /// whole input is refused (and the refusal kept for people to see).
    #[error("{refused}")]
    Refused {
        /// Position among the input's check-ins.
        index: usize,
        /// Which cap or rule.
        refused: Refused,
    },
    /// An API edit names a monitor (environment) or an issue that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An API edit carries an invalid configuration.
    #[error("{0}")]
    InvalidConfig(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write did not become durable in time; it may or may not survive a crash.
    #[error("the write was not confirmed durable within {0:?}")]
    NotDurable(Duration),
    /// An acknowledgement changed nothing: already acknowledged, resolved, a probe's, no name.
    #[error(transparent)]
    Acknowledge(#[from] AckRefusal),
}
