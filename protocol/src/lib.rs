//! The Sentry wire format, as Watchpost speaks it: envelopes, `check_in` and `event` items, DSNs
//! and the auth header.
//!
//! *API boundary:* these types are the wire format shared by the SDK (which writes them) and the
//! collector (which parses with them). Parsing is lenient the way Sentry's is: unknown fields and
//! unknown item types are ignored, never rejected. Changing a type here is a protocol change.

mod auth;
mod checkin;
mod dsn;
mod envelope;
mod event;
mod uuid_hex;

pub use auth::{Auth, AuthError};
pub use checkin::{
    CheckIn, CheckInStatus, DurationSpec, IntervalUnit, MonitorConfig, MonitorSchedule,
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
