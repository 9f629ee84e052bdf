//! Watchpost SDK: job check-ins, error and panic reports for Rust services, over the Sentry
//! envelope protocol.
//!
//! ```no_run
//! use watchpost::monitored_job;
//!
//! #[monitored_job(schedule = "0 3 * * *", timezone = "Europe/Berlin", max_runtime = "30m")]
//! fn nightly_backup() -> Result<(), std::io::Error> {
//!     Ok(())
//! }
//!
//! let _guard = watchpost::init_from_env(); // WATCHPOST_DSN=http://<key>@127.0.0.1:8470/1
//! nightly_backup().ok();
//! // dropping the guard flushes what is queued, bounded by `shutdown_timeout`
//! ```
//!
//! # Shape
//!
//! The SDK is a client, a transport worker and thin integrations on top, as in sentry-rust:
//!
//! - [`client`](init) (`client.rs`): the one global client, reached from any thread with a single
//!   relaxed atomic load when the SDK is disabled and a thread-local cache when it is not.
//! - `transport/`: a dedicated `watchpost-transport` thread fed by a bounded queue. It batches,
//!   serializes, compresses, sends, retries and honours rate limits. Only this thread does I/O.
//! - integrations: [`checkin`] (runs and heartbeats), [`heartbeat`] (workers), `capture`
//!   ([`capture_error`], [`capture_message`]) with the [`Scope`] ([`configure_scope`],
//!   [`with_scope`]), the panic hook (installed by [`init`]) and `#[monitored_job]`, whose
//!   expansion calls the hidden `__private` module; behind features, the `tower` layers, the
//!   `tracing` layer, the `log` logger and the `schedule` runner (guide: `docs/sdk.md` in the repository).
//!
//! *Architecture invariant:* the caller's thread never blocks, never does I/O and never
//! serializes. A check-in is a small record (a `&'static` job site, an id, a status, a duration)
//! handed to the queue with `try_send`; when the queue is full the record is dropped and counted
//! in [`stats`].
//!
//! *Architecture invariant:* without a DSN every entry point is a no-op whose cost is one relaxed
//! atomic load.
//!
//! # What goes on the wire
//!
//! Everything the SDK sends is accepted by a Sentry server unchanged, so the DSN may point at
//! Sentry or at a Watchpost collector: events carry `"platform": "native"` (Sentry's platform
//! for Rust), envelopes carry `sent_at`, and a `monitor_config` holds whole minutes and
//! interval units from `minute` up. A finer margin, runtime or a second-based interval is
//! rounded up in those fields and sent exactly in the `watchpost` member beside them, which
//! Sentry ignores and the collector reads ([`protocol::MonitorConfig::for_sentry`]).
#![warn(missing_docs)]

pub mod protocol;

pub mod checkin;

#[cfg(feature = "tower")]
pub mod tower;

#[cfg(feature = "tracing")]
pub mod tracing;

#[cfg(feature = "log")]
pub mod log;

#[cfg(feature = "schedule")]
mod schedule;

mod capture;
mod client;
mod clock;
mod generation;
mod heartbeat;
mod init;
mod job;
mod monitor_config;
mod options;
mod panic;
mod record;
mod rng;
mod run;
mod scope;
mod transport;

#[doc(hidden)]
pub mod __private;

use std::time::Duration;

pub use uuid::Uuid;
pub use watchpost_macros::{job, monitored_job};

pub use crate::client::{ClientGuard, Stats, flush, is_enabled, stats};
pub use crate::heartbeat::{Heartbeat, MIN_HEARTBEAT_INTERVAL, heartbeat};
pub use crate::init::{init, init_from_env, try_init};
pub use crate::options::{ClientOptions, InitError};
#[cfg(feature = "schedule")]
pub use crate::schedule::{Overlap, ScheduleError, ScheduledJob, Scheduler, schedule};
pub use crate::scope::{
    Breadcrumb, MAX_BREADCRUMBS, Scope, User, add_breadcrumb, configure_scope, with_scope,
};

/// Reports `err` as an `error` event and returns its id, or `None` when the SDK is disabled.
///
/// The event's exception list is the error's [`source()`](std::error::Error::source) chain,
/// oldest cause first and `err` itself last, as Sentry expects. The event is built on the
/// caller's thread (it borrows `err`, which need not be `'static`); serializing and sending
/// happen on the transport thread.
pub fn capture_error(err: &(dyn std::error::Error + '_)) -> Option<Uuid> {
    if !client::is_enabled() {
        return None;
    }
    let event = capture::event_from_error(err, capture::MECHANISM_GENERIC, true);
    client::capture_event(event)
}

/// Reports `msg` as an event at `level` and returns its id, or `None` when the SDK is disabled.
pub fn capture_message(msg: &str, level: protocol::Level) -> Option<Uuid> {
    if !client::is_enabled() {
        return None;
    }
    client::capture_event(capture::event_from_message(msg, level))
}

/// Sends a single check-in for `slug`: a heartbeat (`ok` or `error` with no duration) or an
/// `in_progress` you will close yourself. Returns the check-in id, or `None` when the SDK is
/// disabled.
///
/// `config`, when given, creates or updates the monitor on the server (upsert). For a run with a
/// start and an end, use [`checkin::start`].
pub fn capture_checkin(
    slug: &str,
    status: protocol::CheckInStatus,
    config: Option<&checkin::MonitorConfig>,
) -> Option<Uuid> {
    if !client::is_enabled() {
        return None;
    }
    let monitor = record::Monitor::spec(slug, config.cloned());
    let id = rng::uuid_v4();
    client::send_check_in(record::CheckInRecord {
        monitor,
        id,
        status,
        duration: None,
    })
    .then_some(id)
}

/// How long [`ClientGuard`] waits for queued reports when it is dropped, unless
/// [`ClientOptions::shutdown_timeout`] says otherwise.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// The queue capacity used unless [`ClientOptions::queue_size`] says otherwise.
pub const DEFAULT_QUEUE_SIZE: usize = 1024;

/// `watchpost/<version>`, sent as `sentry_client` in the auth header.
pub const CLIENT_NAME: &str = concat!("watchpost/", env!("CARGO_PKG_VERSION"));
