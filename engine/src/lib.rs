//! The pure state machine behind cron monitoring: `(state, input, now) -> (new state, effects)`.
//!
//! *Architecture invariant:* this crate does no I/O and reads no clock (time is always the
//! `now` parameter) and uses no randomness (ids it creates are derived from the state). The
//! store persists its types as JSON; ingest, the API and the sweeper feed it and act on the
//! [`Transition`]s it returns. It is a crate of its own (`watchpost-engine`) so that its
//! dependencies say so: no runtime, no HTTP, no store (`.ci/run` checks
//! `cargo tree -p watchpost-engine -e normal`). The collector re-exports it as
//! `watchpost_collector::engine`.
//!
//! How the IO side drives it:
//! - **Check-in**: normalize the key ([`MonitorKey::new`]), convert the config
//!   ([`ConfigPatch::from_protocol`]), load the [`MonitorEnv`], call [`target_checkin_id`], load
//!   that [`CheckIn`] if it exists, call [`process_checkin`]; on `Ok`, store `monitor` and
//!   `checkin`, write `effects` to the outbox in the same batch, and
//!   [`DeadlineIndex::upsert_for`] the new monitor.
//! - **Sweep**: [`DeadlineIndex::pop_due`]; for [`DeadlineKind::Missed`] call [`sweep_missed`],
//!   for [`DeadlineKind::Timeout`] load the check-in and call [`sweep_timeout`]; store the
//!   transition if any, then `upsert_for` the monitor's (new or unchanged) state.
//! - **API**: [`MonitorEnv::apply_config`], [`MonitorEnv::set_muted`],
//!   [`MonitorEnv::set_disabled`], then store and `upsert_for` (or [`DeadlineIndex::remove`] on
//!   delete).
//!
//! Semantics follow Sentry Crons; the deviations are listed on each function and collected in
//! `docs/` by the lead.

mod acknowledge;
pub mod alerting;
pub mod caps;
mod checkin;
mod config;
pub mod crontab;
pub mod deadlines;
pub mod dependencies;
mod ids;
mod incident;
pub mod issues;
pub mod maintenance;
mod model;
pub mod oncall;
pub mod outage;
pub mod probes;
mod schedule;
mod sweep;
pub mod text;
mod validate;

#[cfg(test)]
mod tests;

pub use alerting::{Alert, AlertKind, Severity};
pub use checkin::{process_checkin, target_checkin_id};
pub use config::{
    ConfigPatch, DEFAULT_CHECKIN_MARGIN, DEFAULT_MAX_RUNTIME, DEFAULT_TIMEZONE, IntervalUnit,
    MonitorConfig, Schedule,
};
pub use deadlines::{Deadline, DeadlineIndex, DeadlineKind, DeadlineSource, deadlines_of};
pub use issues::{Issue, IssueEffect, IssueStatus, SpikeRule};
pub use model::{
    Acknowledgement, CheckIn, CheckInInput, CheckInStatus, Effect, FailureCounts, Handling,
    Incident, IncidentKind, IncidentReason, MAX_OPEN_RUNS, MonitorEnv, MonitorKey, MonitorStatus,
    OpenRun, Rejection, Streak, Transition,
};
pub use outage::{DEFAULT_OUTAGE_GRACE, Outage, OutageKind, Outages};
pub use sweep::{sweep_missed, sweep_timeout};
pub use validate::{
    ConfigError, DEFAULT_ENVIRONMENT, MAX_CHECKIN_DURATION_MS, MAX_CONFIG_DURATION,
    MAX_ENVIRONMENT_LEN, MAX_SLUG_LEN, MAX_THRESHOLD, normalize_environment, normalize_slug,
    parse_minutes_or_humantime, parse_threshold, parse_timezone,
};
