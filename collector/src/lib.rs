//! The Watchpost collector library: everything the `watchpost` binary runs.
//!
//! Data flows one way: `ingest` (HTTP → engine inputs), the `sweep`er (deadlines) and the `api`
//! (edits) feed the `processor`, which runs the pure `engine` and commits through the `store`
//! (the only module that knows sled). `server` wires them together; `config` validates the
//! configuration file once.

/// The pure rules live in their own crate, `watchpost-engine` (`engine/`), so the compiler holds
/// them to no I/O; re-exported under the old path so `crate::engine::...` keeps working.
pub use watchpost_engine as engine;

pub mod ack;
pub mod alert;
pub mod api;
pub mod app;
pub(crate) mod caps;
pub mod cli;
pub(crate) mod compactor;
pub mod config;
pub(crate) mod dashboard;
pub mod deadlines;
pub(crate) mod dependencies;
pub mod health;
pub mod http;
pub mod ingest;
pub(crate) mod listener;
pub(crate) mod liveness;
pub mod metrics;
pub mod probe;
pub mod process_error;
pub mod processor;
pub(crate) mod redirect;
pub mod run_cmd;
pub(crate) mod secret_file;
pub mod server;
pub mod store;
pub mod sweep;
pub(crate) mod throttle;
pub(crate) mod upstream;
pub mod watchdog;
pub(crate) mod words;
