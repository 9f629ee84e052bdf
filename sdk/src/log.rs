//! The `log` facade (feature `log`): [`logger`] returns a [`log::Log`](::log::Log) that turns
//! records at or above a level (default `Error`) into Watchpost events and records lower ones
//! (down to `Info` by default) as breadcrumbs, as the [`tracing`](crate::tracing) layer does
//! for `tracing` events. For crates and services that log through `log` rather than `tracing`.
//!
//! ```no_run
//! let _guard = watchpost::init_from_env();
//! watchpost::log::logger().init().expect("no other logger was installed");
//! log::error!("payment provider refused the batch");
//! ```
//!
//! `log` has one global logger, so a service that already has one (an `env_logger`, a
//! `simplelog`) keeps it by wrapping it: every record still goes to it, filtered by it as before,
//! and Watchpost sees the same records.
//!
//! ```no_run
//! # struct StderrLogger;
//! # impl log::Log for StderrLogger {
//! #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
//! #     fn log(&self, record: &log::Record<'_>) { eprintln!("{}", record.args()) }
//! #     fn flush(&self) {}
//! # }
//! watchpost::log::logger()
//!     .wrap(StderrLogger, log::LevelFilter::Debug)
//!     .init()
//!     .expect("no other logger was installed");
//! ```
//!
//! A record becomes:
//!
//! - an event: the formatted message at the matching level, `logger` = the record's target,
//!   the module path, file and line as `extra`; logged inside a `#[monitored_job]` run on this
//!   thread, linked to the run (`contexts.monitor`), like the job's own error events;
//! - a breadcrumb: the message at its level, the target as its category.
//!
//! Records logged on the SDK's own threads (`watchpost-transport`, where reqwest and rustls
//! log, and `watchpost-heartbeat`) go to the wrapped logger only, never to Watchpost.
//!
//! A record below the breadcrumb level costs what `log` charges any disabled record (its
//! macros compare with [`log::max_level`](::log::max_level), which [`WatchpostLogger::init`]
//! sets) when there is no wrapped logger; with one, the wrapped logger's own filter decides.

use ::log::{Level, LevelFilter, Log, Metadata, Record, SetLoggerError};
use serde_json::{Map, Value};

use crate::capture::event_from_message;
use crate::protocol;
use crate::scope::Breadcrumb;

/// The logger: see the [module docs](self).
pub struct WatchpostLogger {
    event_level: Level,
    breadcrumb_level: Level,
    inner: Option<Inner>,
}

/// A logger records also go to, with the most verbose level it wants.
struct Inner {
    logger: Box<dyn Log>,
    max_level: LevelFilter,
}

impl std::fmt::Debug for WatchpostLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchpostLogger")
            .field("event_level", &self.event_level)
            .field("breadcrumb_level", &self.breadcrumb_level)
            .field("wraps", &self.inner.as_ref().map(|i| i.max_level))
            .finish()
    }
}

/// A logger sending `Error` records as events and `Warn` and `Info` ones as breadcrumbs.
pub fn logger() -> WatchpostLogger {
    WatchpostLogger {
        event_level: Level::Error,
        breadcrumb_level: Level::Info,
        inner: None,
    }
}

impl WatchpostLogger {
    /// Records at `level` or more severe become events (default `Error`).
    pub fn event_level(mut self, level: Level) -> WatchpostLogger {
        self.event_level = level;
        self
    }

    /// Records at `level` or more severe, but below the event level, become breadcrumbs
    /// (default `Info`).
    pub fn breadcrumb_level(mut self, level: Level) -> WatchpostLogger {
        self.breadcrumb_level = level;
        self
    }

    /// Passes every record to `inner` too (its own `enabled` still filters them), before
    /// Watchpost looks at it. `max_level` is the most verbose level `inner` wants: `log`'s
    /// macros skip anything more verbose than both it and the breadcrumb level.
    pub fn wrap(mut self, inner: impl Log + 'static, max_level: LevelFilter) -> WatchpostLogger {
        self.inner = Some(Inner {
            logger: Box::new(inner),
            max_level,
        });
        self
    }

    /// The most verbose level this logger (with the one it wraps) wants to see.
    pub fn max_level(&self) -> LevelFilter {
        let own = self
            .breadcrumb_level
            .max(self.event_level)
            .to_level_filter();
        self.inner.as_ref().map_or(own, |i| own.max(i.max_level))
    }

    /// Installs this as `log`'s global logger and sets [`log::set_max_level`](::log::set_max_level)
    /// to [`max_level`](Self::max_level). Fails if a logger was installed already.
    pub fn init(self) -> Result<(), SetLoggerError> {
        let max_level = self.max_level();
        ::log::set_boxed_logger(Box::new(self))?;
        ::log::set_max_level(max_level);
        Ok(())
    }

    /// Whether Watchpost itself takes records of `level` (as an event or a breadcrumb).
    #[inline]
    fn wants(&self, level: Level) -> bool {
        // `log` orders levels by verbosity: `Error` is the smallest.
        level <= self.breadcrumb_level.max(self.event_level) && crate::client::is_enabled()
    }
}

impl Log for WatchpostLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.wants(metadata.level())
            || self
                .inner
                .as_ref()
                .is_some_and(|i| i.logger.enabled(metadata))
    }

    fn log(&self, record: &Record<'_>) {
        if let Some(inner) = &self.inner {
            inner.logger.log(record);
        }
        let level = record.level();
        if !self.wants(level) || on_an_sdk_thread() {
            return;
        }
        if level <= self.event_level {
            crate::client::capture_event(to_event(record));
        } else {
            crate::scope::add_breadcrumb(
                Breadcrumb::new(record.args().to_string(), to_level(level))
                    .category(record.target()),
            );
        }
    }

    fn flush(&self) {
        if let Some(inner) = &self.inner {
            inner.logger.flush();
        }
    }
}

/// Whether this is one of the SDK's own threads (the transport, heartbeats). What is logged
/// there (reqwest, hyper and rustls under the transport) goes to the wrapped logger only:
/// reporting it would feed the transport its own failures, one event per failed send.
fn on_an_sdk_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|name| name.starts_with("watchpost-"))
}

/// An event-level record as an event, linked to the run executing on this thread, if any.
fn to_event(record: &Record<'_>) -> protocol::Event {
    let mut event = event_from_message(&record.args().to_string(), to_level(record.level()));
    event.logger = Some(record.target().to_owned());
    let mut extra = Map::new();
    if let Some(module) = record.module_path() {
        extra.insert("module_path".to_owned(), Value::from(module));
    }
    if let Some(file) = record.file() {
        extra.insert("file".to_owned(), Value::from(file));
    }
    if let Some(line) = record.line() {
        extra.insert("line".to_owned(), Value::from(line));
    }
    if !extra.is_empty() {
        event.other.insert("extra".to_owned(), Value::Object(extra));
    }
    if let Some((slug, id)) = crate::run::innermost_on_thread() {
        crate::run::link_event(&mut event, &slug, id);
    }
    event
}

fn to_level(level: Level) -> protocol::Level {
    match level {
        Level::Error => protocol::Level::Error,
        Level::Warn => protocol::Level::Warning,
        Level::Info => protocol::Level::Info,
        Level::Debug | Level::Trace => protocol::Level::Debug,
    }
}
