//! Starting the SDK: [`init`], [`try_init`] and [`init_from_env`] turn [`ClientOptions`] into a
//! running transport thread and a current client (`client.rs`), and install the panic hook.
//!
//! Its own module so that the client (which every entry point reaches on the hot path) knows
//! nothing of options, the transport's configuration or the panic hook.

use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use crate::client::{ClientGuard, Counters, install, install_disabled};
use crate::options::{ClientOptions, InitError};
use crate::protocol::Dsn;

/// Starts the SDK. With no DSN, or a DSN that does not parse (the reason goes to stderr), the SDK
/// stays disabled and every call is a no-op. Calling it again replaces the previous client.
///
/// Also installs the panic hook (once per process): see [`try_init`].
pub fn init(options: ClientOptions) -> ClientGuard {
    try_init(options).unwrap_or_else(|err| {
        eprintln!("watchpost: {err}; the SDK stays disabled");
        install_disabled()
    })
}

/// Starts the SDK, or says why it cannot. Without a DSN this succeeds with a disabled guard.
///
/// On success it replaces any previous client, spawns the `watchpost-transport` thread and
/// installs (once per process) a panic hook that reports panics as `fatal` events, marks the jobs
/// running on the panicking thread as failed, and flushes within `shutdown_timeout` before
/// calling the previously installed hook.
pub fn try_init(options: ClientOptions) -> Result<ClientGuard, InitError> {
    let Some(dsn) = options
        .dsn
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    else {
        return Ok(install_disabled());
    };
    let dsn: Dsn = dsn.parse()?;
    let queue_size = options.queue_size.max(1);
    let (tx, rx) = sync_channel(queue_size);
    let counters = Arc::new(Counters::default());
    let worker = crate::transport::spawn(
        crate::transport::Config {
            dsn,
            environment: options
                .environment
                .unwrap_or_else(|| "production".to_owned()),
            release: options.release,
            server_name: options.server_name.or_else(hostname),
            debug: options.debug,
            hold_capacity: queue_size,
        },
        rx,
        Arc::clone(&counters),
    )
    .map_err(InitError::Transport)?;
    // Before the first run reads it: calibrating takes up to ~200 ms (`clock.rs`).
    crate::clock::calibrate();
    crate::panic::install_hook();
    Ok(install(tx, worker, counters, options.shutdown_timeout))
}

/// Starts the SDK from `WATCHPOST_DSN` (falling back to `SENTRY_DSN`), `WATCHPOST_ENVIRONMENT`,
/// `WATCHPOST_RELEASE` and `WATCHPOST_DEBUG`; see [`ClientOptions::from_env`].
pub fn init_from_env() -> ClientGuard {
    init(ClientOptions::from_env())
}

/// The host's name, the default `server_name` of events (as sentry-rust's default): the
/// kernel's where `/proc` has it, else `HOSTNAME`.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}
