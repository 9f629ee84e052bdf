//! The Sentry wire types an app constructs or reads: levels and events for
//! [`capture_message`](crate::capture_message), check-in statuses and monitor schedules, the DSN.
//!
//! They live in the `watchpost-protocol` crate, which the collector shares; this module
//! re-exports only what an app needs. Envelopes, the auth header and body decoding are the
//! transport's and the server's business and are not part of the SDK's API.

pub use watchpost_protocol::{
    CheckIn, CheckInStatus, Dsn, DsnError, DurationSpec, Event, ExactConfig, Exception,
    ExceptionList, Frame, IntervalUnit, Level, LogEntry, Mechanism, Message, MonitorConfig,
    MonitorSchedule, Stacktrace, Timestamp,
};

// Server-side parsing is not reachable from the SDK (each block must fail to compile):
//
/// ```compile_fail
/// let _ = watchpost::protocol::Envelope::parse(b"{}\n");
/// ```
///
/// ```compile_fail
/// let _ = watchpost::protocol::decode_body;
/// ```
///
/// ```compile_fail
/// let _ = watchpost::protocol::decoded_len;
/// ```
#[cfg(doctest)]
pub struct NoServerSideParsing;
