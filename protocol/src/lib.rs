//! The Sentry wire format, as Watchpost speaks it: envelopes, `check_in` and `event` items, DSNs
//! and the auth header.
//!
//! *API boundary:* these types are the wire format shared by the SDK (which writes them) and the
//! collector (which parses with them). Parsing is lenient the way Sentry's is: unknown fields and
//! unknown item types are ignored, never rejected. Changing a type here is a protocol change.
//!
//! *Architecture invariant:* this crate depends on serde, serde_json, flate2 and small pure crates
//! only — no async runtime, no HTTP client, no server stack (`.ci/run` checks it). The SDK
//! re-exports the types its users construct or read (`watchpost::protocol`); the server-side
//! parsing (`Envelope::parse`, `decode_body`, `decoded_len`, `Auth::parse`) is used from here
//! by the collector.
#![warn(missing_docs)]

mod auth;
mod checkin;
mod dsn;
mod envelope;
mod event;
mod uuid_hex;

pub use auth::{Auth, AuthError};
pub use checkin::{
    CheckIn, CheckInStatus, DurationSpec, ExactConfig, IntervalUnit, MonitorConfig, MonitorSchedule,
};
pub use dsn::{Dsn, DsnError};
pub use envelope::{
    ContentEncoding, DecodeError, Envelope, EnvelopeError, Item, ItemHeaders, decode_body,
    decode_body_exact, decoded_len, gzip_encode,
};
pub use event::{
    Event, Exception, ExceptionList, Frame, Level, LogEntry, Mechanism, Message, Stacktrace,
    Timestamp,
};
