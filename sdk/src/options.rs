//! What `init` is told: [`ClientOptions`], read from code or from the environment, and the
//! [`InitError`] it can fail with. Pure data: no I/O beyond reading environment variables.

use std::time::Duration;

use crate::protocol::DsnError;

/// How the SDK is set up. Build it with struct update syntax over [`Default`]:
///
/// ```
/// let options = watchpost::ClientOptions {
///     dsn: Some("http://0123456789abcdef0123456789abcdef@127.0.0.1:8470/1".into()),
///     release: Some("backup@1.2.3".into()),
///     ..Default::default()
/// };
/// # drop(options);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Where to send reports: `http(s)://<public_key>@<host>[:port][/path]/<project_id>`.
    /// `None` (or an empty string) disables the SDK: every call becomes a no-op.
    pub dsn: Option<String>,
    /// The environment check-ins and events belong to; `production` when `None`.
    pub environment: Option<String>,
    /// The release, attached to events.
    pub release: Option<String>,
    /// The host name, attached to events; the machine's host name when `None`.
    pub server_name: Option<String>,
    /// Capacity of the queue between callers and the transport thread (in check-ins and events).
    /// When it is full, new reports are dropped and counted rather than blocking the caller. The
    /// same number bounds how many reports are held back while the server is unreachable (they
    /// are sent once it is back) or rate-limits us; beyond it the oldest held ones are dropped
    /// and counted, so the newest reach the server.
    pub queue_size: usize,
    /// How long dropping the [`ClientGuard`](crate::ClientGuard) (and the panic hook) waits for
    /// queued reports to be sent.
    pub shutdown_timeout: Duration,
    /// Print a line to stderr for every failed send and for reports dropped.
    pub debug: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            dsn: None,
            environment: None,
            release: None,
            server_name: None,
            queue_size: crate::DEFAULT_QUEUE_SIZE,
            shutdown_timeout: crate::DEFAULT_SHUTDOWN_TIMEOUT,
            debug: false,
        }
    }
}

impl ClientOptions {
    /// Options from the environment: `WATCHPOST_DSN` (falling back to `SENTRY_DSN`),
    /// `WATCHPOST_ENVIRONMENT`, `WATCHPOST_RELEASE` and `WATCHPOST_DEBUG` (`1`, `true`, `yes`
    /// or `on`). Empty variables count as unset.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        ClientOptions {
            dsn: get("WATCHPOST_DSN").or_else(|| get("SENTRY_DSN")),
            environment: get("WATCHPOST_ENVIRONMENT"),
            release: get("WATCHPOST_RELEASE"),
            debug: get("WATCHPOST_DEBUG").is_some_and(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            }),
            ..Self::default()
        }
    }
}

/// Why [`try_init`](crate::try_init) could not start the SDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The DSN does not parse. The message says what is wrong, never the key.
    #[error(transparent)]
    Dsn(#[from] DsnError),
    /// The transport thread could not be spawned.
    #[error("watchpost could not start its transport thread: {0}")]
    Transport(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_falls_back_to_sentry_dsn_and_ignores_empty_values() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            ClientOptions::from_lookup(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let o = env(&[("SENTRY_DSN", "http://k@h/1"), ("WATCHPOST_DSN", " ")]);
        assert_eq!(o.dsn.as_deref(), Some("http://k@h/1"));
        let o = env(&[
            ("SENTRY_DSN", "http://k@h/1"),
            ("WATCHPOST_DSN", "http://w@h/2"),
            ("WATCHPOST_ENVIRONMENT", "staging"),
            ("WATCHPOST_DEBUG", "TRUE"),
        ]);
        assert_eq!(o.dsn.as_deref(), Some("http://w@h/2"));
        assert_eq!(o.environment.as_deref(), Some("staging"));
        assert!(o.debug);
        assert!(!env(&[("WATCHPOST_DEBUG", "0")]).debug);
        assert_eq!(env(&[]), ClientOptions::default());
    }
}
