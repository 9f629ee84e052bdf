//! The configuration file (TOML, docs/configuration.md) turned into a validated [`Config`].
//! All validation happens here, once: later code trusts a `Config`. Errors name the field path
//! (`projects[0].keys[1]: ...`) so a person can fix the file; secrets never appear in messages.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::alert::template::{Markup, Template};
use crate::engine::alerting;
use crate::engine::caps::{Caps, CapsConfig, Upsert};
use crate::engine::dependencies::{Graph, Node};
use crate::engine::issues::SpikeRule;
use crate::engine::maintenance::{self, Window};
use crate::engine::probes::JsonExpectation;
use crate::engine::{ConfigError as MonitorConfigError, ConfigPatch, MonitorConfig, MonitorKey};
use crate::engine::{DEFAULT_TIMEZONE, Schedule, parse_timezone};

/// Where the collector listens without `--listen` or `server.listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
/// Where the data lives without `--data-dir` or `server.data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./watchpost-data";

/// File in the data dir that keeps a generated admin token (read by `serve` and by the CLI).
pub const ADMIN_TOKEN_FILE: &str = "admin_token";
/// The environment variable that supplies the admin token when the file does not.
pub const ADMIN_TOKEN_ENV: &str = "WATCHPOST_ADMIN_TOKEN";
/// Shortest admin token accepted from the config or the environment.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// Check-ins kept per monitor environment unless `retention.checkins_per_monitor` says otherwise.
pub const DEFAULT_CHECKINS_PER_MONITOR: usize = 100;
/// Events kept per issue unless `retention.events_per_issue` says otherwise.
pub const DEFAULT_EVENTS_PER_ISSUE: usize = 100;
/// Envelopes kept for the upstream while it is unreachable, unless `upstream.max_backlog` says
/// otherwise.
pub const DEFAULT_UPSTREAM_BACKLOG: usize = 10_000;
/// Results kept per probe unless `retention.probe_results` says otherwise.
pub const DEFAULT_PROBE_RESULTS: usize = 1000;
/// Most `[server] outage_grace` may be.
const MAX_OUTAGE_GRACE: Duration = Duration::from_secs(86_400);
/// Check-ins and events per second per project key unless `limits.ingest_per_second` says
/// otherwise.
pub const DEFAULT_INGEST_PER_SECOND: u32 = 1000;
/// Check-ins and events a key may send at once unless `limits.ingest_burst` says otherwise.
pub const DEFAULT_INGEST_BURST: u32 = 2 * DEFAULT_INGEST_PER_SECOND;
/// Highest `limits.ingest_per_second` and `limits.ingest_burst`.
pub const MAX_INGEST_RATE: u32 = 1_000_000;
/// Check-ins per minute per monitor environment unless `limits.monitor_checkins_per_minute`
/// says otherwise: a monitor with a 1-second interval sends a start and a finish every second
/// (120 a minute), so the default never refuses a schedule Watchpost accepts, while a client
/// flooding one monitor is held to 1/500 of the key's default rate.
pub const DEFAULT_MONITOR_CHECKINS_PER_MINUTE: u32 = 120;
/// Bytes of events stored per project per hour unless `limits.event_bytes_per_hour` says
/// otherwise: 100 MiB, room for ~2,000 typical 50 KB error events an hour, while a public
/// key can add at most 2.4 GiB of events a day.
pub const DEFAULT_EVENT_BYTES_PER_HOUR: u64 = 100 << 20;
/// Decoded request bytes in flight (all requests together) unless
/// `limits.decoded_bytes_in_flight` says otherwise.
pub const DEFAULT_DECODED_BYTES_IN_FLIGHT: u64 = 256 << 20;
/// sled's page cache unless `store.cache_size` says otherwise (`benches/README.md`, "Store
/// size and memory": the throughput against cache size curve this was chosen from).
pub const DEFAULT_CACHE_SIZE: u64 = crate::store::DEFAULT_CACHE_SIZE;
/// Shortest probe interval: sub-second intervals serve tests and local setups.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// `[alerts] dependency_recheck` when not set: a held dependent alerts on its own at most this
/// long after its dependency recovered.
pub const DEFAULT_DEPENDENCY_RECHECK: Duration = Duration::from_secs(30);

/// A configuration error: the field path and what is wrong, for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", path.as_deref().map(|p| format!("{p}: ")).unwrap_or_default())]
pub struct Error {
    /// The field path, e.g. `projects[0].keys[1]`; `None` for errors about the whole file.
    pub path: Option<String>,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl Error {
    fn at(path: impl fmt::Display, message: impl Into<String>) -> Error {
        Error {
            path: Some(path.to_string()),
            message: message.into(),
        }
    }

    fn file(message: impl Into<String>) -> Error {
        Error {
            path: None,
            message: message.into(),
        }
    }
}

/// Command-line flags that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--allow-shared-data-dir`: sets `server.allow_shared_data_dir` (a flag cannot unset it).
    pub allow_shared_data_dir: bool,
}

/// A value that must never be printed: an admin token, a password, a bot token, a key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: Server,
    /// `[[projects]]`; empty means "one project, `1`, with a key generated on first start".
    pub projects: Vec<Project>,
    /// `[[channels]]`.
    pub channels: Vec<Channel>,
    /// `[[rules]]`; every channel a rule names exists.
    pub rules: Vec<Rule>,
    /// `[alerts]`.
    pub alerts: Alerts,
    /// `[[monitors]]`: monitors as code, applied at every start.
    pub monitors: Vec<MonitorSpec>,
    /// `[[probes]]`.
    pub probes: Vec<Probe>,
    /// `[watchdog]`.
    pub watchdog: Option<Watchdog>,
    /// `[retention]` (Watchpost extension to §3.1).
    pub retention: Retention,
    /// `[upstream]`: relay accepted envelopes to a Sentry-compatible server (§3.9).
    pub upstream: Option<Upstream>,
    /// `[limits]` (Watchpost extension to §3.1).
    pub limits: Limits,
    /// `[caps]` and the overrides in `[[projects]]` (Watchpost extension to §3.1).
    pub caps: CapsConfig,
    /// `[store]`: how the embedded database is tuned.
    pub store: StoreConfig,
    /// `[[maintenance]]`: recurring windows in which incidents open without an alert.
    pub maintenance: Vec<Window>,
    /// The `depends_on` of `[[monitors]]` and `[[probes]]`, resolved and free of cycles.
    pub dependencies: Graph,
}

/// `[store]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreConfig {
    /// Bytes of sled's page cache: the decoded pages kept in memory, by sled's own estimate of
    /// their size.
    pub cache_size: u64,
    /// Compact the store online once its files take more than this many bytes per live byte
    /// (`store/compact.rs`); `0` never compacts on its own.
    pub compact_above: f64,
    /// ... and only once its files take at least this many bytes, so a small store, whose
    /// ratio is high but whose bytes do not matter, is never copied.
    pub compact_min_size: u64,
    /// How often the collector counts the store to decide whether to compact it (a walk of
    /// every record, about 50 ms per 100,000).
    pub compact_check: Duration,
}

/// `store.compact_above` unless configured: 0, off. Each compaction under a sustained full
/// load left the collector's memory about 70 MB larger in the soak (`benches/README.md`, "Store
/// size and memory"), a growth not yet explained, so the collector does not compact on its own
/// unless asked to; 8 (about twice a fresh copy's 3.4) is the value to set.
pub const DEFAULT_COMPACT_ABOVE: f64 = 0.0;
/// `store.compact_min_size` unless configured: 64 MiB.
pub const DEFAULT_COMPACT_MIN_SIZE: u64 = 64 << 20;
/// `store.compact_check` unless configured: every 5 minutes.
pub const DEFAULT_COMPACT_CHECK: Duration = Duration::from_secs(300);

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_size: DEFAULT_CACHE_SIZE,
            compact_above: DEFAULT_COMPACT_ABOVE,
            compact_min_size: DEFAULT_COMPACT_MIN_SIZE,
            compact_check: DEFAULT_COMPACT_CHECK,
        }
    }
}

impl StoreConfig {
    /// The store's open options.
    pub fn options(&self) -> crate::store::Options {
        crate::store::Options {
            cache_size: self.cache_size,
        }
    }
}

/// `[limits]`: what one public project key may cost the collector — items per second per key
/// and per monitor environment, event bytes per project and hour — and the memory all
/// requests together may hold decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Check-ins and events per second each project key may sustain.
    pub ingest_per_second: u32,
    /// Check-ins and events a key may send at once after being idle.
    pub ingest_burst: u32,
    /// Check-ins per minute each monitor environment may sustain (and send at once).
    pub monitor_checkins_per_minute: u32,
    /// Bytes of event payloads each project may have stored per hour.
    pub event_bytes_per_hour: u64,
    /// Decoded request bytes all requests together may hold at once.
    pub decoded_bytes_in_flight: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ingest_per_second: DEFAULT_INGEST_PER_SECOND,
            ingest_burst: DEFAULT_INGEST_BURST,
            monitor_checkins_per_minute: DEFAULT_MONITOR_CHECKINS_PER_MINUTE,
            event_bytes_per_hour: DEFAULT_EVENT_BYTES_PER_HOUR,
            decoded_bytes_in_flight: DEFAULT_DECODED_BYTES_IN_FLIGHT,
        }
    }
}

/// `[upstream]`.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Where to relay; its `Debug` never shows the key.
    pub dsn: watchpost_protocol::Dsn,
    /// Most envelopes queued while the upstream is unreachable; the oldest go first beyond it.
    pub max_backlog: usize,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Socket address to listen on.
    pub listen: SocketAddr,
    /// Directory of the sled store and the admin token file.
    pub data_dir: PathBuf,
    /// Start even when the data dir is accessible to other users (only warn). Off by
    /// default: the dir holds the admin token, the badge key and every check-in.
    pub allow_shared_data_dir: bool,
    /// The admin token when the config or the environment supplies it; otherwise it is kept
    /// in the data dir.
    pub admin_token: Option<ProvidedToken>,
    /// Base URL for links in alerts and the printed DSN (no trailing slash).
    pub public_url: Option<String>,
    /// The least grace a deadline gets when it fell in or shortly after a window in which the
    /// collector was not watching (`engine::outage`); a monitor's own margin, when longer, wins.
    pub outage_grace: Duration,
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection is kept (`listener.rs`).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Connections served at once, if configured; otherwise derived from the open-file limit
    /// (`listener::connection_cap`).
    pub max_connections: Option<usize>,
}

/// `server.header_timeout` unless configured: long enough for a slow mobile link to send a
/// few kilobytes of headers, short enough that idle or stalled connections do not pile up.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// `server.body_timeout` unless configured: a 1 MiB envelope at 20 KB/s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// An admin token supplied from outside the data dir.
#[derive(Debug, Clone)]
pub struct ProvidedToken {
    /// The token.
    pub token: Secret,
    /// Where it came from, for the startup line: `environment variable WATCHPOST_ADMIN_TOKEN`
    /// or `the config file`.
    pub origin: String,
}

/// `[[projects]]`.
#[derive(Debug, Clone)]
pub struct Project {
    /// Project id, as in the DSN.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Public keys: 32 lowercase hex characters each.
    pub keys: Vec<Secret>,
}

/// `[[channels]]`.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Unique name rules refer to.
    pub name: String,
    /// Destination and its settings.
    pub kind: ChannelKind,
    /// `template`: the minijinja source of the channel's text, checked at load
    /// (`alert::template`); `None`: the built-in text.
    pub template: Option<String>,
}

/// Where a channel delivers.
#[derive(Debug, Clone)]
pub enum ChannelKind {
    /// SMTP email.
    Email {
        /// `smtp://` or `smtps://` URL.
        smtp_url: Secret,
        /// SMTP user.
        username: Option<Secret>,
        /// SMTP password.
        password: Option<Secret>,
        /// `From:` header.
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
    /// A JSON POST of the alert.
    Webhook {
        /// Target URL.
        url: Secret,
    },
    /// Telegram Bot API `sendMessage`.
    Telegram {
        /// Bot token.
        bot_token: Secret,
        /// Chat id (`-100...`) or `@channel`.
        chat_id: String,
        /// API base URL without trailing slash.
        api_url: String,
    },
    /// Slack incoming webhook.
    Slack {
        /// Webhook URL.
        url: Secret,
    },
    /// Prometheus Alertmanager `POST /api/v2/alerts`.
    Alertmanager {
        /// Alertmanager base URLs.
        urls: Vec<Secret>,
    },
    /// ntfy JSON publish.
    Ntfy {
        /// Topic URL, `https://ntfy.sh/<topic>`.
        url: Secret,
        /// Access token (`Authorization: Bearer`).
        token: Option<Secret>,
        /// A fixed priority (1–5) instead of the one mapped from the severity.
        priority: Option<u8>,
    },
    /// Pushover messages API.
    Pushover {
        /// The application's API token.
        app_token: Secret,
        /// The user or group key.
        user_key: Secret,
        /// A fixed priority (−2…2) instead of the one mapped from the severity.
        priority: Option<i8>,
        /// Emergency priority: how often Pushover repeats (≥ 30 s).
        retry: Duration,
        /// Emergency priority: for how long (≤ 3 h).
        expire: Duration,
        /// API base URL without trailing slash.
        api_url: String,
    },
    /// PagerDuty Events API v2.
    PagerDuty {
        /// The integration's routing key.
        routing_key: Secret,
        /// Events API base URL without trailing slash.
        events_url: String,
    },
    /// Discord webhook.
    Discord {
        /// Webhook URL.
        url: Secret,
        /// Add `?wait=true`.
        wait: bool,
    },
    /// Microsoft Teams Workflows webhook.
    Teams {
        /// Webhook URL.
        url: Secret,
    },
    /// Google Chat incoming webhook.
    GoogleChat {
        /// Webhook URL (with its key and token).
        url: Secret,
    },
    /// Lines on stdout.
    Log,
}

impl ChannelKind {
    /// The `type` as written in the file.
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelKind::Email { .. } => "email",
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Telegram { .. } => "telegram",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Alertmanager { .. } => "alertmanager",
            ChannelKind::Ntfy { .. } => "ntfy",
            ChannelKind::Pushover { .. } => "pushover",
            ChannelKind::PagerDuty { .. } => "pagerduty",
            ChannelKind::Discord { .. } => "discord",
            ChannelKind::Teams { .. } => "teams",
            ChannelKind::GoogleChat { .. } => "google_chat",
            ChannelKind::Log => "log",
        }
    }

    /// What a `template` of this kind renders, and so how values are escaped in it; `None`
    /// for the kinds whose body is a contract (webhook, Alertmanager), which take no template.
    pub fn markup(&self) -> Option<Markup> {
        match self {
            ChannelKind::Webhook { .. } | ChannelKind::Alertmanager { .. } => None,
            ChannelKind::Email { .. } | ChannelKind::Telegram { .. } => Some(Markup::Html),
            ChannelKind::Slack { .. } => Some(Markup::Slack),
            ChannelKind::GoogleChat { .. } => Some(Markup::GoogleChat),
            ChannelKind::Ntfy { .. }
            | ChannelKind::Pushover { .. }
            | ChannelKind::PagerDuty { .. }
            | ChannelKind::Discord { .. }
            | ChannelKind::Teams { .. }
            | ChannelKind::Log => Some(Markup::Plain),
        }
    }
}

/// The kinds of alert a rule can route: the engine's own enum, so config and alerts never
/// disagree on a name.
pub use crate::engine::alerting::AlertKind;

/// `[[rules]]`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// What it routes where: its name, the alert kinds and the channel names (each exists in
    /// [`Config::channels`]), as alert planning takes them.
    pub route: alerting::Rule,
    /// For a rule on `issue.spike`: more than `threshold` events within `window`.
    pub spike: Option<SpikeRule>,
}

/// `[alerts]`.
#[derive(Debug, Clone)]
pub struct Alerts {
    /// Repeats of the same `(rule, kind, subject)` within this window are sent once.
    pub dedup_window: Duration,
    /// How often a dependent whose alert is held looks at its dependencies again, and how long
    /// the failing dependents must stop growing before their dependency's follow-up names
    /// them (`depends_on`).
    pub dependency_recheck: Duration,
}

/// `[[monitors]]`: a monitor environment declared in the file.
#[derive(Debug, Clone)]
pub struct MonitorSpec {
    /// Project, slug and environment (`production` unless given).
    pub key: MonitorKey,
    /// The validated configuration.
    pub config: MonitorConfig,
    /// `depends_on`: the probes and monitors (by name and slug) whose failure holds its alerts.
    pub depends_on: Vec<String>,
}

/// `[[probes]]`.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Unique name.
    pub name: String,
    /// URL to GET.
    pub url: Secret,
    /// Time between checks.
    pub interval: Duration,
    /// Per-check timeout; at most `interval`.
    pub timeout: Duration,
    /// Consecutive failures before the probe is down.
    pub failure_threshold: u32,
    /// Consecutive successes before it is up again.
    pub success_threshold: u32,
    /// The status code that counts as up.
    pub expected_status: u16,
    /// A substring the response body must contain (Watchpost extension).
    pub expected_body_contains: Option<String>,
    /// A JSON field the response body must have (Watchpost extension).
    pub expected_json: Option<JsonExpectation>,
    /// `depends_on`: the probes and monitors (by name and slug) whose failure holds its alerts.
    pub depends_on: Vec<String>,
}

/// How the watchdog sends its heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogMethod {
    /// `GET` without a body (healthchecks, Uptime Kuma push monitors).
    Get,
    /// `POST` with the collector's `/healthz` report as the JSON body (healthchecks keeps it as
    /// the ping's log).
    Post,
}

/// `[watchdog]`: the collector's own dead-man's switch.
#[derive(Debug, Clone)]
pub struct Watchdog {
    /// URL pinged on every interval.
    pub url: Secret,
    /// Time between pings.
    pub interval: Duration,
    /// `GET` (default) or `POST`.
    pub method: WatchdogMethod,
}

/// `[retention]`.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Newest check-ins (and ping log entries) kept per monitor environment.
    pub checkins_per_monitor: usize,
    /// Newest events kept per issue.
    pub events_per_issue: usize,
    /// Newest check results kept per probe.
    pub probe_results: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            checkins_per_monitor: DEFAULT_CHECKINS_PER_MONITOR,
            events_per_issue: DEFAULT_EVENTS_PER_ISSUE,
            probe_results: DEFAULT_PROBE_RESULTS,
        }
    }
}

impl Config {
    /// Reads and validates `path` (or the defaults when `None`), then applies `overrides`.
    /// `env:NAME` values and `WATCHPOST_ADMIN_TOKEN` come from the process environment.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, Error> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| Error::file(format!("cannot read {}: {e}", path.display())))?,
            None => String::new(),
        };
        Config::parse(&text, overrides, &|name| std::env::var(name).ok())
    }

    /// Validates TOML `text`; `env` looks up environment variables.
    pub fn parse(
        text: &str,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Error> {
        let raw = parse_toml(text)?;
        let mut config = Validator { env }.config(raw)?;
        if let Some(listen) = overrides.listen {
            config.server.listen = listen;
        }
        if let Some(dir) = &overrides.data_dir {
            config.server.data_dir = dir.clone();
        }
        config.server.allow_shared_data_dir |= overrides.allow_shared_data_dir;
        Ok(config)
    }
}

fn parse_toml(text: &str) -> Result<RawConfig, Error> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| toml_error(text, None, &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let path = (path != ".").then_some(path);
        toml_error(text, path, e.inner())
    })
}

fn toml_error(text: &str, path: Option<String>, error: &toml::de::Error) -> Error {
    let mut message = error.message().trim_end().replace('\n', "; ");
    if let Some(span) = error.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        message.push_str(&format!(" (line {line})"));
    }
    Error { path, message }
}

// ---------------------------------------------------------------------------------------------
// The file as written. `deny_unknown_fields` everywhere: a typo is an error, not a silent default.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    projects: Vec<RawProject>,
    #[serde(default)]
    channels: Vec<RawChannel>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    monitors: Vec<toml::Table>,
    #[serde(default)]
    probes: Vec<RawProbe>,
    watchdog: Option<RawWatchdog>,
    #[serde(default)]
    retention: RawRetention,
    upstream: Option<RawUpstream>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    caps: RawCaps,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    maintenance: Vec<RawMaintenance>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    cache_size: Option<u64>,
    compact_above: Option<f64>,
    compact_min_size: Option<u64>,
    compact_check: Option<RawDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    name: String,
    start: String,
    duration: RawDuration,
    timezone: Option<String>,
    project: Option<u64>,
    slug: Option<String>,
    probe: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    allow_shared_data_dir: Option<bool>,
    admin_token: Option<String>,
    public_url: Option<String>,
    outage_grace: Option<RawDuration>,
    header_timeout: Option<RawDuration>,
    body_timeout: Option<RawDuration>,
    max_connections: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    id: u64,
    name: Option<String>,
    keys: Vec<String>,
    monitors_per_project: Option<u64>,
    environments_per_monitor: Option<u64>,
    issues_per_project: Option<u64>,
    upsert: Option<String>,
}

/// A `[[channels]]` entry: its name, its `template` and the fields of its `type`.
/// (`flatten` would lose `deny_unknown_fields`, hence `template` in every variant.)
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawChannel {
    Email {
        name: String,
        smtp_url: String,
        username: Option<String>,
        password: Option<String>,
        from: String,
        to: Vec<String>,
        template: Option<String>,
    },
    Webhook {
        name: String,
        url: String,
        template: Option<String>,
    },
    Telegram {
        name: String,
        bot_token: String,
        chat_id: ChatId,
        api_url: Option<String>,
        template: Option<String>,
    },
    Slack {
        name: String,
        url: String,
        template: Option<String>,
    },
    Alertmanager {
        name: String,
        urls: Vec<String>,
        template: Option<String>,
    },
    Ntfy {
        name: String,
        url: String,
        token: Option<String>,
        priority: Option<RawNtfyPriority>,
        template: Option<String>,
    },
    Pushover {
        name: String,
        app_token: String,
        user_key: String,
        priority: Option<i64>,
        retry: Option<RawDuration>,
        expire: Option<RawDuration>,
        api_url: Option<String>,
        template: Option<String>,
    },
    #[serde(rename = "pagerduty")]
    PagerDuty {
        name: String,
        routing_key: String,
        events_url: Option<String>,
        template: Option<String>,
    },
    Discord {
        name: String,
        url: String,
        wait: Option<bool>,
        template: Option<String>,
    },
    Teams {
        name: String,
        url: String,
        template: Option<String>,
    },
    #[serde(rename = "google_chat")]
    GoogleChat {
        name: String,
        url: String,
        template: Option<String>,
    },
    Log {
        name: String,
        template: Option<String>,
    },
}

/// ntfy priorities are written as numbers (1–5) or names (`min` … `urgent`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawNtfyPriority {
    Number(i64),
    Name(String),
}

/// Telegram chat ids are often written as numbers; accept both.
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatId {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    on: Vec<String>,
    channels: Vec<String>,
    threshold: Option<u64>,
    window: Option<RawDuration>,
    repeat: Option<RawDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    dedup_window: Option<RawDuration>,
    dependency_recheck: Option<RawDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: String,
    url: String,
    interval: Option<RawDuration>,
    timeout: Option<RawDuration>,
    failure_threshold: Option<u64>,
    success_threshold: Option<u64>,
    expected_status: Option<u64>,
    expected_body_contains: Option<String>,
    expected_json: Option<RawJsonExpectation>,
    #[serde(default)]
    depends_on: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonExpectation {
    path: String,
    equals: toml::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatchdog {
    url: String,
    interval: Option<RawDuration>,
    method: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    dsn: String,
    max_backlog: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    ingest_per_second: Option<u64>,
    ingest_burst: Option<u64>,
    monitor_checkins_per_minute: Option<u64>,
    event_bytes_per_hour: Option<u64>,
    decoded_bytes_in_flight: Option<u64>,
}

/// `[caps]`, or the same keys in one `[[projects]]` entry.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCaps {
    monitors_per_project: Option<u64>,
    environments_per_monitor: Option<u64>,
    issues_per_project: Option<u64>,
    upsert: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    checkins_per_monitor: Option<u64>,
    events_per_issue: Option<u64>,
    probe_results: Option<u64>,
}

/// A humantime string such as `"30s"`, parsed during validation so the error names the field.
struct RawDuration(String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30s\", \"5m\" or \"1h 30m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_owned()))
            }
        }
        d.deserialize_str(Visitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Validation: raw file → Config.

struct Validator<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    fn config(&self, raw: RawConfig) -> Result<Config, Error> {
        let server = self.server(raw.server)?;
        let mut caps = CapsConfig {
            default: self::caps("caps", &raw.caps, &Caps::default())?,
            projects: HashMap::new(),
        };
        let projects = self.projects(raw.projects, &mut caps)?;
        let channels = raw
            .channels
            .into_iter()
            .enumerate()
            .map(|(i, c)| self.channel(&format!("channels[{i}]"), c))
            .collect::<Result<Vec<_>, _>>()?;
        unique(
            channels.iter().map(|c| c.name.as_str()),
            "channels",
            "channel",
        )?;
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| rule(&format!("rules[{i}]"), r, &channels))
            .collect::<Result<Vec<_>, _>>()?;
        unique(rules.iter().map(|r| r.route.name.as_str()), "rules", "rule")?;
        let alerts = Alerts {
            dedup_window: duration_or(
                "alerts.dedup_window",
                raw.alerts.dedup_window,
                Duration::from_secs(300),
                Duration::ZERO,
            )?,
            dependency_recheck: duration_or(
                "alerts.dependency_recheck",
                raw.alerts.dependency_recheck,
                DEFAULT_DEPENDENCY_RECHECK,
                Duration::from_secs(1),
            )?,
        };
        repeats_outlast_dedup(&rules, alerts.dedup_window)?;
        let project_ids: HashSet<u64> = if projects.is_empty() {
            HashSet::from([1])
        } else {
            projects.iter().map(|p| p.id).collect()
        };
        let monitors = raw
            .monitors
            .into_iter()
            .enumerate()
            .map(|(i, m)| monitor(&format!("monitors[{i}]"), m, &project_ids))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = HashSet::new();
        for (i, m) in monitors.iter().enumerate() {
            if !seen.insert(&m.key) {
                return Err(Error::at(
                    format!("monitors[{i}]"),
                    format!(
                        "monitor `{}` (project {}, environment `{}`) is declared twice",
                        m.key.slug, m.key.project, m.key.environment
                    ),
                ));
            }
        }
        let probes = raw
            .probes
            .into_iter()
            .enumerate()
            .map(|(i, p)| self.probe(&format!("probes[{i}]"), p))
            .collect::<Result<Vec<_>, _>>()?;
        unique(probes.iter().map(|p| p.name.as_str()), "probes", "probe")?;
        let watchdog = raw
            .watchdog
            .map(|w| {
                Ok::<_, Error>(Watchdog {
                    url: self.url("watchdog.url", &w.url, &["http", "https"])?,
                    interval: duration_or(
                        "watchdog.interval",
                        w.interval,
                        Duration::from_secs(60),
                        Duration::from_secs(1),
                    )?,
                    method: match w.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
                        None | Some("GET") => WatchdogMethod::Get,
                        Some("POST") => WatchdogMethod::Post,
                        Some(_) => {
                            return Err(Error::at(
                                "watchdog.method",
                                "expected \"GET\" or \"POST\"",
                            ));
                        }
                    },
                })
            })
            .transpose()?;
        let retention = Retention {
            checkins_per_monitor: count_or(
                "retention.checkins_per_monitor",
                raw.retention.checkins_per_monitor,
                DEFAULT_CHECKINS_PER_MONITOR,
                1..=100_000,
            )?,
            events_per_issue: count_or(
                "retention.events_per_issue",
                raw.retention.events_per_issue,
                DEFAULT_EVENTS_PER_ISSUE,
                1..=10_000,
            )?,
            probe_results: count_or(
                "retention.probe_results",
                raw.retention.probe_results,
                DEFAULT_PROBE_RESULTS,
                1..=100_000,
            )?,
        };
        let upstream = raw
            .upstream
            .as_ref()
            .map(|u| self.upstream(u))
            .transpose()?;
        let limits = limits(&raw.limits)?;
        // Below 1 MiB sled rereads and decodes pages for every write; above 16 GiB is a typo.
        let store = StoreConfig {
            cache_size: count_or(
                "store.cache_size",
                raw.store.cache_size,
                DEFAULT_CACHE_SIZE as usize,
                1 << 20..=16 << 30,
            )? as u64,
            compact_above: compact_above(raw.store.compact_above)?,
            compact_min_size: count_or(
                "store.compact_min_size",
                raw.store.compact_min_size,
                DEFAULT_COMPACT_MIN_SIZE as usize,
                0..=1 << 40,
            )? as u64,
            compact_check: duration_or(
                "store.compact_check",
                raw.store.compact_check,
                DEFAULT_COMPACT_CHECK,
                Duration::from_secs(1),
            )?,
        };
        let maintenance = raw
            .maintenance
            .into_iter()
            .enumerate()
            .map(|(i, m)| maintenance(&format!("maintenance[{i}]"), m, &project_ids))
            .collect::<Result<Vec<_>, _>>()?;
        unique(
            maintenance.iter().map(|w| w.name.as_str()),
            "maintenance",
            "maintenance window",
        )?;
        let dependencies = dependencies(&monitors, &probes)?;
        Ok(Config {
            server,
            projects,
            channels,
            rules,
            alerts,
            monitors,
            probes,
            watchdog,
            retention,
            upstream,
            limits,
            caps,
            store,
            maintenance,
            dependencies,
        })
    }

    /// Resolves `env:NAME`; anything else is the value itself. An unset or empty variable is an
    /// error naming the field (never the value).
    fn secret(&self, path: &str, raw: &str) -> Result<Secret, Error> {
        let Some(name) = raw.strip_prefix("env:") else {
            return Ok(Secret::new(raw));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::at(
                path,
                "`env:` needs a variable name, e.g. \"env:WATCHPOST_ADMIN_TOKEN\"",
            ));
        }
        match (self.env)(name) {
            Some(value) if !value.is_empty() => Ok(Secret::new(value)),
            Some(_) => Err(Error::at(
                path,
                format!("environment variable {name} is empty"),
            )),
            None => Err(Error::at(
                path,
                format!("environment variable {name} is not set"),
            )),
        }
    }

    fn url(&self, path: &str, raw: &str, schemes: &[&str]) -> Result<Secret, Error> {
        let secret = self.secret(path, raw)?;
        // Never echo the URL: it may carry a token.
        let url = reqwest::Url::parse(secret.expose())
            .map_err(|e| Error::at(path, format!("not a valid URL ({e})")))?;
        if !schemes.contains(&url.scheme()) || url.host_str().is_none_or(str::is_empty) {
            return Err(Error::at(
                path,
                format!(
                    "expected a {} URL with a host, such as \"{}://host/path\"",
                    schemes.join(" or "),
                    schemes[0]
                ),
            ));
        }
        Ok(secret)
    }

    fn upstream(&self, raw: &RawUpstream) -> Result<Upstream, Error> {
        let dsn = self.secret("upstream.dsn", &raw.dsn)?;
        // `DsnError` messages name the part that is wrong, never the key.
        let dsn = dsn
            .expose()
            .parse::<watchpost_protocol::Dsn>()
            .map_err(|e| Error::at("upstream.dsn", e.to_string()))?;
        Ok(Upstream {
            dsn,
            max_backlog: count_or(
                "upstream.max_backlog",
                raw.max_backlog,
                DEFAULT_UPSTREAM_BACKLOG,
                1..=10_000_000,
            )?,
        })
    }

    fn server(&self, raw: RawServer) -> Result<Server, Error> {
        let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen.parse().map_err(|_| {
            Error::at(
                "server.listen",
                format!("`{listen}` is not a socket address; expected IP:PORT such as \"127.0.0.1:8470\""),
            )
        })?;
        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if data_dir.as_os_str().is_empty() {
            return Err(Error::at("server.data_dir", "must not be empty"));
        }
        let admin_token = match raw.admin_token {
            Some(raw_token) => {
                let origin = match raw_token.strip_prefix("env:") {
                    Some(name) => format!("environment variable {}", name.trim()),
                    None => "the config file".to_owned(),
                };
                let token = self.secret("server.admin_token", &raw_token)?;
                Some(admin_token("server.admin_token", &token, origin)?)
            }
            None => match (self.env)(ADMIN_TOKEN_ENV) {
                Some(value) => Some(admin_token(
                    ADMIN_TOKEN_ENV,
                    &Secret::new(value),
                    format!("environment variable {ADMIN_TOKEN_ENV}"),
                )?),
                None => None,
            },
        };
        let public_url = raw
            .public_url
            .map(|url| {
                self.url("server.public_url", &url, &["http", "https"])
                    .map(|u| u.expose().trim_end_matches('/').to_owned())
            })
            .transpose()?;
        let outage_grace = duration_or(
            "server.outage_grace",
            raw.outage_grace,
            crate::engine::DEFAULT_OUTAGE_GRACE,
            Duration::ZERO,
        )?;
        if outage_grace > MAX_OUTAGE_GRACE {
            return Err(Error::at(
                "server.outage_grace",
                "must be at most 1 day; it delays the detection of every job that stops during an outage of the collector",
            ));
        }
        let header_timeout = duration_or(
            "server.header_timeout",
            raw.header_timeout,
            DEFAULT_HEADER_TIMEOUT,
            Duration::from_secs(1),
        )?;
        let body_timeout = duration_or(
            "server.body_timeout",
            raw.body_timeout,
            DEFAULT_BODY_TIMEOUT,
            Duration::from_secs(1),
        )?;
        let max_connections = raw
            .max_connections
            .map(|n| count_or("server.max_connections", Some(n), 0, 1..=1_000_000))
            .transpose()?;
        Ok(Server {
            listen,
            data_dir,
            allow_shared_data_dir: raw.allow_shared_data_dir.unwrap_or(false),
            admin_token,
            public_url,
            outage_grace,
            header_timeout,
            body_timeout,
            max_connections,
        })
    }

    /// The projects; the caps a project sets (each unset one from `[caps]`) go to
    /// `default_caps.projects`.
    fn projects(
        &self,
        raw: Vec<RawProject>,
        default_caps: &mut CapsConfig,
    ) -> Result<Vec<Project>, Error> {
        let mut ids = HashMap::new();
        let mut keys: HashMap<String, u64> = HashMap::new();
        let mut projects = Vec::with_capacity(raw.len());
        for (i, p) in raw.into_iter().enumerate() {
            let path = format!("projects[{i}]");
            if p.id == 0 {
                return Err(Error::at(
                    format!("{path}.id"),
                    "must be a positive integer",
                ));
            }
            if let Some(first) = ids.insert(p.id, i) {
                return Err(Error::at(
                    format!("{path}.id"),
                    format!("project {} is already defined by projects[{first}]", p.id),
                ));
            }
            let name = p.name.unwrap_or_else(|| format!("project-{}", p.id));
            if name.trim().is_empty() {
                return Err(Error::at(format!("{path}.name"), "must not be empty"));
            }
            if p.keys.is_empty() {
                return Err(Error::at(
                    format!("{path}.keys"),
                    "needs at least one public key (32 hex characters)",
                ));
            }
            let mut project_keys = Vec::with_capacity(p.keys.len());
            for (k, raw_key) in p.keys.iter().enumerate() {
                let key_path = format!("{path}.keys[{k}]");
                let key = self.secret(&key_path, raw_key)?;
                let key = key.expose().trim().to_ascii_lowercase();
                if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::at(key_path, "expected 32 hex characters"));
                }
                if let Some(owner) = keys.insert(key.clone(), p.id) {
                    return Err(Error::at(
                        key_path,
                        format!(
                            "this key is already used by project {owner}; every key must be unique"
                        ),
                    ));
                }
                project_keys.push(Secret::new(key));
            }
            let own = RawCaps {
                monitors_per_project: p.monitors_per_project,
                environments_per_monitor: p.environments_per_monitor,
                issues_per_project: p.issues_per_project,
                upsert: p.upsert,
            };
            let own = caps(&path, &own, &default_caps.default)?;
            if own != default_caps.default {
                default_caps.projects.insert(p.id, own);
            }
            projects.push(Project {
                id: p.id,
                name,
                keys: project_keys,
            });
        }
        Ok(projects)
    }

    fn channel(&self, path: &str, raw: RawChannel) -> Result<Channel, Error> {
        let (name, template, kind) = match raw {
            RawChannel::Email {
                name,
                smtp_url,
                username,
                password,
                from,
                to,
                template,
            } => {
                let smtp_url =
                    self.url(&format!("{path}.smtp_url"), &smtp_url, &["smtp", "smtps"])?;
                let username = username
                    .map(|u| self.secret(&format!("{path}.username"), &u))
                    .transpose()?;
                let password = password
                    .map(|p| self.secret(&format!("{path}.password"), &p))
                    .transpose()?;
                if password.is_some() && username.is_none() {
                    return Err(Error::at(
                        format!("{path}.username"),
                        "is required when a password is given",
                    ));
                }
                if !from.contains('@') {
                    return Err(Error::at(
                        format!("{path}.from"),
                        format!(
                            "`{from}` is not an email address; e.g. \"Watchpost <alerts@example.com>\""
                        ),
                    ));
                }
                if to.is_empty() {
                    return Err(Error::at(
                        format!("{path}.to"),
                        "needs at least one recipient",
                    ));
                }
                if let Some(k) = to.iter().position(|addr| !addr.contains('@')) {
                    return Err(Error::at(
                        format!("{path}.to[{k}]"),
                        format!("`{}` is not an email address", to[k]),
                    ));
                }
                (
                    name,
                    template,
                    ChannelKind::Email {
                        smtp_url,
                        username,
                        password,
                        from,
                        to,
                    },
                )
            }
            RawChannel::Webhook {
                name,
                url,
                template,
            } => {
                let url = self.url(&format!("{path}.url"), &url, &["http", "https"])?;
                (name, template, ChannelKind::Webhook { url })
            }
            RawChannel::Telegram {
                name,
                bot_token,
                chat_id,
                api_url,
                template,
            } => {
                let bot_token = self.secret(&format!("{path}.bot_token"), &bot_token)?;
                let chat_id = match chat_id {
                    ChatId::Number(n) => n.to_string(),
                    ChatId::Text(text) => {
                        let text = text.trim().to_owned();
                        let numeric = text.strip_prefix('-').unwrap_or(&text);
                        let valid = (!numeric.is_empty()
                            && numeric.bytes().all(|b| b.is_ascii_digit()))
                            || (text.len() > 1 && text.starts_with('@'));
                        if !valid {
                            return Err(Error::at(
                                format!("{path}.chat_id"),
                                format!(
                                    "`{text}` is not a chat id; expected a number such as \"-1001234567890\" or \"@channelname\""
                                ),
                            ));
                        }
                        text
                    }
                };
                let api_url = match api_url {
                    Some(url) => self
                        .url(&format!("{path}.api_url"), &url, &["http", "https"])?
                        .expose()
                        .trim_end_matches('/')
                        .to_owned(),
                    None => "https://api.telegram.org".to_owned(),
                };
                (
                    name,
                    template,
                    ChannelKind::Telegram {
                        bot_token,
                        chat_id,
                        api_url,
                    },
                )
            }
            RawChannel::Slack {
                name,
                url,
                template,
            } => {
                let url = self.url(&format!("{path}.url"), &url, &["http", "https"])?;
                (name, template, ChannelKind::Slack { url })
            }
            RawChannel::Alertmanager {
                name,
                urls,
                template,
            } => {
                if urls.is_empty() {
                    return Err(Error::at(
                        format!("{path}.urls"),
                        "needs at least one Alertmanager URL, e.g. [\"http://127.0.0.1:9093\"]",
                    ));
                }
                let urls = urls
                    .iter()
                    .enumerate()
                    .map(|(k, u)| self.url(&format!("{path}.urls[{k}]"), u, &["http", "https"]))
                    .collect::<Result<_, _>>()?;
                (name, template, ChannelKind::Alertmanager { urls })
            }
            RawChannel::Log { name, template } => (name, template, ChannelKind::Log),
            other => self.new_channel(path, other)?,
        };
        let template = template
            .map(|source| channel_template(&format!("{path}.template"), &kind, source))
            .transpose()?;
        Ok(Channel {
            name: name_field(&format!("{path}.name"), &name)?,
            kind,
            template,
        })
    }

    /// The kinds of issue 19: ntfy, Pushover, PagerDuty, Discord, Teams, Google Chat.
    fn new_channel(
        &self,
        path: &str,
        raw: RawChannel,
    ) -> Result<(String, Option<String>, ChannelKind), Error> {
        let http = &["http", "https"];
        Ok(match raw {
            RawChannel::Ntfy {
                name,
                url,
                token,
                priority,
                template,
            } => {
                let url = self.url(&format!("{path}.url"), &url, http)?;
                if !has_path_segment(url.expose()) {
                    return Err(Error::at(
                        format!("{path}.url"),
                        "needs the topic as its path, e.g. \"https://ntfy.sh/my-alerts\"",
                    ));
                }
                let token = token
                    .map(|t| self.secret(&format!("{path}.token"), &t))
                    .transpose()?;
                let priority = priority
                    .map(|p| ntfy_priority(&format!("{path}.priority"), &p))
                    .transpose()?;
                let kind = ChannelKind::Ntfy {
                    url,
                    token,
                    priority,
                };
                (name, template, kind)
            }
            RawChannel::Pushover {
                name,
                app_token,
                user_key,
                priority,
                retry,
                expire,
                api_url,
                template,
            } => {
                let app_token = self.secret(&format!("{path}.app_token"), &app_token)?;
                let user_key = self.secret(&format!("{path}.user_key"), &user_key)?;
                let priority = priority
                    .map(|p| {
                        i8::try_from(p)
                            .ok()
                            .filter(|p| (-2..=2).contains(p))
                            .ok_or_else(|| {
                                Error::at(
                                    format!("{path}.priority"),
                                    format!(
                                        "{p} is not a Pushover priority; expected -2, -1, 0, 1 or 2"
                                    ),
                                )
                            })
                    })
                    .transpose()?;
                let retry = duration_or(
                    &format!("{path}.retry"),
                    retry,
                    Duration::from_secs(60),
                    Duration::from_secs(30),
                )?;
                let expire = duration_or(
                    &format!("{path}.expire"),
                    expire,
                    Duration::from_secs(3600),
                    Duration::from_secs(1),
                )?;
                if expire > Duration::from_secs(10_800) {
                    return Err(Error::at(
                        format!("{path}.expire"),
                        "must be at most 3h (Pushover stops emergency repeats after 10800 s)",
                    ));
                }
                let api_url = self.base_url(
                    &format!("{path}.api_url"),
                    api_url,
                    "https://api.pushover.net",
                )?;
                let kind = ChannelKind::Pushover {
                    app_token,
                    user_key,
                    priority,
                    retry,
                    expire,
                    api_url,
                };
                (name, template, kind)
            }
            RawChannel::PagerDuty {
                name,
                routing_key,
                events_url,
                template,
            } => {
                let routing_key = self.secret(&format!("{path}.routing_key"), &routing_key)?;
                if routing_key.expose().trim().is_empty() {
                    return Err(Error::at(
                        format!("{path}.routing_key"),
                        "must not be empty: the integration key of an Events API v2 integration",
                    ));
                }
                let events_url = self.base_url(
                    &format!("{path}.events_url"),
                    events_url,
                    "https://events.pagerduty.com",
                )?;
                let kind = ChannelKind::PagerDuty {
                    routing_key,
                    events_url,
                };
                (name, template, kind)
            }
            RawChannel::Discord {
                name,
                url,
                wait,
                template,
            } => {
                let url = self.url(&format!("{path}.url"), &url, http)?;
                let kind = ChannelKind::Discord {
                    url,
                    wait: wait.unwrap_or(false),
                };
                (name, template, kind)
            }
            RawChannel::Teams {
                name,
                url,
                template,
            } => {
                let url = self.url(&format!("{path}.url"), &url, http)?;
                (name, template, ChannelKind::Teams { url })
            }
            RawChannel::GoogleChat {
                name,
                url,
                template,
            } => {
                let url = self.url(&format!("{path}.url"), &url, http)?;
                (name, template, ChannelKind::GoogleChat { url })
            }
            RawChannel::Email { name, .. }
            | RawChannel::Webhook { name, .. }
            | RawChannel::Telegram { name, .. }
            | RawChannel::Slack { name, .. }
            | RawChannel::Alertmanager { name, .. }
            | RawChannel::Log { name, .. } => {
                return Err(Error::at(
                    path,
                    format!("channel `{name}` is not one of the kinds of new_channel"),
                ));
            }
        })
    }

    /// An API base URL (`http`/`https`, no trailing slash), or `default`.
    fn base_url(&self, path: &str, raw: Option<String>, default: &str) -> Result<String, Error> {
        Ok(match raw {
            Some(url) => self
                .url(path, &url, &["http", "https"])?
                .expose()
                .trim_end_matches('/')
                .to_owned(),
            None => default.to_owned(),
        })
    }

    fn probe(&self, path: &str, raw: RawProbe) -> Result<Probe, Error> {
        let name = name_field(&format!("{path}.name"), &raw.name)?;
        let url = self.url(&format!("{path}.url"), &raw.url, &["http", "https"])?;
        let interval = duration_or(
            &format!("{path}.interval"),
            raw.interval,
            Duration::from_secs(30),
            MIN_PROBE_INTERVAL,
        )?;
        let timeout = duration_or(
            &format!("{path}.timeout"),
            raw.timeout,
            Duration::from_secs(2).min(interval),
            Duration::from_millis(1),
        )?;
        if timeout > interval {
            return Err(Error::at(
                format!("{path}.timeout"),
                format!(
                    "{} is longer than the interval {}; a check must finish before the next starts",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            ));
        }
        let threshold = |field: &str, value: Option<u64>, default: u32| -> Result<u32, Error> {
            count_or(
                &format!("{path}.{field}"),
                value,
                default as usize,
                1..=1000,
            )
            .map(|n| n as u32)
        };
        let expected_status = match raw.expected_status {
            None => 200,
            Some(code @ 100..=599) => code as u16,
            Some(code) => {
                return Err(Error::at(
                    format!("{path}.expected_status"),
                    format!("{code} is not an HTTP status code (100-599)"),
                ));
            }
        };
        let expected_body_contains = match raw.expected_body_contains {
            Some(text) if text.is_empty() => {
                return Err(Error::at(
                    format!("{path}.expected_body_contains"),
                    "must not be empty; remove it to accept any body",
                ));
            }
            other => other,
        };
        let expected_json = raw
            .expected_json
            .map(|raw| {
                let field = format!("{path}.expected_json");
                let equals = serde_json::to_value(&raw.equals)
                    .map_err(|e| Error::at(format!("{field}.equals"), e.to_string()))?;
                JsonExpectation::new(&raw.path, equals).map_err(|message| {
                    let which = if message.starts_with("`equals`") {
                        "equals"
                    } else {
                        "path"
                    };
                    Error::at(format!("{field}.{which}"), message)
                })
            })
            .transpose()?;
        Ok(Probe {
            name,
            url,
            interval,
            timeout,
            failure_threshold: threshold("failure_threshold", raw.failure_threshold, 2)?,
            success_threshold: threshold("success_threshold", raw.success_threshold, 1)?,
            expected_status,
            expected_body_contains,
            expected_json,
            depends_on: raw.depends_on,
        })
    }
}

fn admin_token(path: &str, token: &Secret, origin: String) -> Result<ProvidedToken, Error> {
    let trimmed = token.expose().trim();
    if trimmed.len() < MIN_ADMIN_TOKEN_LEN {
        return Err(Error::at(
            path,
            format!(
                "the admin token must be at least {MIN_ADMIN_TOKEN_LEN} characters (a random 64-hex token is best)"
            ),
        ));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::at(
            path,
            "the admin token must not contain whitespace",
        ));
    }
    Ok(ProvidedToken {
        token: Secret::new(trimmed),
        origin,
    })
}

fn rule(path: &str, raw: RawRule, channels: &[Channel]) -> Result<Rule, Error> {
    let name = name_field(&format!("{path}.name"), &raw.name)?;
    if raw.on.is_empty() {
        return Err(Error::at(
            format!("{path}.on"),
            "needs at least one alert kind",
        ));
    }
    let on = raw
        .on
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            AlertKind::parse(kind).ok_or_else(|| {
                let known: Vec<_> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
                Error::at(
                    format!("{path}.on[{k}]"),
                    format!(
                        "unknown alert kind `{kind}`; known kinds: {}",
                        known.join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if raw.channels.is_empty() {
        return Err(Error::at(
            format!("{path}.channels"),
            "needs at least one channel name",
        ));
    }
    for (k, channel) in raw.channels.iter().enumerate() {
        if !channels.iter().any(|c| &c.name == channel) {
            let known: Vec<_> = channels.iter().map(|c| c.name.as_str()).collect();
            let hint = if known.is_empty() {
                "no [[channels]] are defined".to_owned()
            } else {
                format!("defined channels: {}", known.join(", "))
            };
            return Err(Error::at(
                format!("{path}.channels[{k}]"),
                format!("no channel named `{channel}`; {hint}"),
            ));
        }
    }
    let spike = on.contains(&AlertKind::IssueSpike);
    let threshold = match (raw.threshold, spike) {
        (Some(n @ 1..=1_000_000), true) => Some(n as u32),
        (Some(n), true) => {
            return Err(Error::at(
                format!("{path}.threshold"),
                format!("{n} is out of range; give a number of events between 1 and 1000000"),
            ));
        }
        (None, true) => {
            return Err(Error::at(
                format!("{path}.threshold"),
                "is required for issue.spike: the number of events in `window` that makes a spike",
            ));
        }
        (Some(_), false) => {
            return Err(Error::at(
                format!("{path}.threshold"),
                "only applies to issue.spike; remove it or add \"issue.spike\" to `on`",
            ));
        }
        (None, false) => None,
    };
    let window = match (raw.window, spike) {
        (Some(w), true) => Some(duration(
            &format!("{path}.window"),
            &w,
            Duration::from_secs(1),
        )?),
        (None, true) => {
            return Err(Error::at(
                format!("{path}.window"),
                "is required for issue.spike, e.g. \"1h\"",
            ));
        }
        (Some(_), false) => {
            return Err(Error::at(
                format!("{path}.window"),
                "only applies to issue.spike; remove it or add \"issue.spike\" to `on`",
            ));
        }
        (None, false) => None,
    };
    let repeat = match (raw.repeat, on.contains(&AlertKind::MonitorFailed)) {
        (Some(r), true) => Some(duration(
            &format!("{path}.repeat"),
            &r,
            Duration::from_secs(1),
        )?),
        (Some(_), false) => {
            return Err(Error::at(
                format!("{path}.repeat"),
                "repeats a monitor's failure alert; add \"monitor.failed\" to `on` or remove it",
            ));
        }
        (None, _) => None,
    };
    let spike = match (threshold, window) {
        (Some(threshold), Some(window)) => Some(SpikeRule {
            name: name.clone(),
            threshold,
            window,
        }),
        _ => None,
    };
    Ok(Rule {
        route: alerting::Rule {
            name,
            on,
            channels: raw.channels,
            repeat,
        },
        spike,
    })
}

/// A `[[maintenance]]` window: a crontab start (the monitors' grammar), a duration of at most
/// a week, a timezone, and which monitors (a defined project, a slug glob; none: all).
fn maintenance(path: &str, raw: RawMaintenance, projects: &HashSet<u64>) -> Result<Window, Error> {
    let start = Schedule::crontab(raw.start.trim())
        .map_err(|e| Error::at(format!("{path}.start"), e.to_string()))?;
    let duration = duration(
        &format!("{path}.duration"),
        &raw.duration,
        Duration::from_secs(60),
    )?;
    if duration > maintenance::MAX_WINDOW {
        return Err(Error::at(
            format!("{path}.duration"),
            format!(
                "{} is too long; a window lasts at most a week",
                raw.duration.0
            ),
        ));
    }
    let timezone = parse_timezone(raw.timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE))
        .map_err(|e| Error::at(format!("{path}.timezone"), e.to_string()))?;
    if let Some(project) = raw.project
        && !projects.contains(&project)
    {
        let mut known: Vec<_> = projects.iter().collect();
        known.sort();
        let known: Vec<String> = known.iter().map(|p| p.to_string()).collect();
        return Err(Error::at(
            format!("{path}.project"),
            format!(
                "project {project} is not defined; defined projects: {}",
                known.join(", ")
            ),
        ));
    }
    let slug = match raw.slug {
        Some(glob) if glob.trim().is_empty() => {
            return Err(Error::at(
                format!("{path}.slug"),
                "is empty; give a slug or a glob such as \"db-*\", or remove it to match every slug",
            ));
        }
        other => other.map(|glob| glob.trim().to_owned()),
    };
    let probe = match raw.probe {
        Some(glob) if glob.trim().is_empty() => {
            return Err(Error::at(
                format!("{path}.probe"),
                "is empty; give a probe name or a glob such as \"api-*\", or remove it",
            ));
        }
        other => other.map(|glob| glob.trim().to_owned()),
    };
    if probe.is_some() && (raw.project.is_some() || slug.is_some()) {
        return Err(Error::at(
            format!("{path}.probe"),
            "a window names either monitors (`project`, `slug`) or probes (`probe`); write two windows for both",
        ));
    }
    Ok(Window {
        name: raw.name,
        start,
        timezone,
        duration,
        project: raw.project,
        slug,
        probe,
    })
}

/// A repeat within the dedup window would be held back as a duplicate of the alert before it
/// (`engine::alerting::Deduper`): refuse it where the person can fix it.
fn repeats_outlast_dedup(rules: &[Rule], dedup_window: Duration) -> Result<(), Error> {
    for (i, rule) in rules.iter().enumerate() {
        if let Some(repeat) = rule.route.repeat
            && repeat < dedup_window
        {
            return Err(Error::at(
                format!("rules[{i}].repeat"),
                format!(
                    "{} is shorter than [alerts] dedup_window ({}), which would hold every repeat back as a duplicate; repeat less often or shorten dedup_window",
                    humantime::format_duration(repeat),
                    humantime::format_duration(dedup_window)
                ),
            ));
        }
    }
    Ok(())
}

/// `[[monitors]]` entries are validated by the engine's own config parser, so the file, the API
/// and check-ins accept exactly the same fields.
fn monitor(
    path: &str,
    mut table: toml::Table,
    projects: &HashSet<u64>,
) -> Result<MonitorSpec, Error> {
    let project = match table.remove("project") {
        Some(toml::Value::Integer(id)) if id > 0 && projects.contains(&(id as u64)) => id as u64,
        Some(toml::Value::Integer(id)) if id > 0 => {
            let mut known: Vec<_> = projects.iter().collect();
            known.sort();
            let known: Vec<_> = known.iter().map(|id| id.to_string()).collect();
            return Err(Error::at(
                format!("{path}.project"),
                format!(
                    "project {id} is not defined; defined projects: {}",
                    known.join(", ")
                ),
            ));
        }
        Some(_) => {
            return Err(Error::at(
                format!("{path}.project"),
                "expected a positive project id",
            ));
        }
        None => return Err(Error::at(format!("{path}.project"), "is required")),
    };
    let slug = match table.remove("slug") {
        Some(toml::Value::String(slug)) => slug,
        Some(_) => return Err(Error::at(format!("{path}.slug"), "expected a string")),
        None => return Err(Error::at(format!("{path}.slug"), "is required")),
    };
    let environment = match table.remove("environment") {
        Some(toml::Value::String(env)) => Some(env),
        Some(_) => {
            return Err(Error::at(
                format!("{path}.environment"),
                "expected a string",
            ));
        }
        None => None,
    };
    let key = MonitorKey::new(project, &slug, environment.as_deref())
        .map_err(|e| monitor_error(path, &e))?;
    if key.slug != slug {
        return Err(Error::at(
            format!("{path}.slug"),
            format!("`{slug}` is not a normalized slug; write `{}`", key.slug),
        ));
    }
    let depends_on = depends_on(path, table.remove("depends_on"))?;
    let json = serde_json::to_value(&table)
        .map_err(|e| Error::at(path, format!("cannot read this monitor: {e}")))?;
    let config = ConfigPatch::from_json(&json)
        .and_then(|patch| patch.to_config())
        .map_err(|e| monitor_error(path, &e))?;
    Ok(MonitorSpec {
        key,
        config,
        depends_on,
    })
}

/// A monitor's `depends_on`: a list of names.
fn depends_on(path: &str, value: Option<toml::Value>) -> Result<Vec<String>, Error> {
    let field = format!("{path}.depends_on");
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let toml::Value::Array(items) = value else {
        return Err(Error::at(
            field,
            "expected a list of probe names and monitor slugs, e.g. [\"database-health\"]",
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            toml::Value::String(name) => Ok(name),
            _ => Err(Error::at(
                &field,
                "expected a list of probe names and monitor slugs, e.g. [\"database-health\"]",
            )),
        })
        .collect()
}

/// Resolves every `depends_on` (engine::dependencies): an unknown or ambiguous name, or a
/// cycle, is refused naming the entry.
fn dependencies(monitors: &[MonitorSpec], probes: &[Probe]) -> Result<Graph, Error> {
    let mut declared = Vec::new();
    let mut paths = Vec::new();
    for (i, m) in monitors.iter().enumerate() {
        declared.push((Node::Monitor(m.key.slug.clone()), m.depends_on.clone()));
        paths.push(format!("monitors[{i}].depends_on"));
    }
    for (i, p) in probes.iter().enumerate() {
        declared.push((Node::Probe(p.name.clone()), p.depends_on.clone()));
        paths.push(format!("probes[{i}].depends_on"));
    }
    let probe_names: BTreeSet<String> = probes.iter().map(|p| p.name.clone()).collect();
    let slugs: BTreeSet<String> = monitors.iter().map(|m| m.key.slug.clone()).collect();
    Graph::build(&declared, &probe_names, &slugs)
        .map_err(|(index, error)| Error::at(paths[index].clone(), error.to_string()))
}

/// Which field an engine validation error is about, so the message names `monitors[i].<field>`.
fn monitor_error(path: &str, error: &MonitorConfigError) -> Error {
    let field = match error {
        MonitorConfigError::Crontab { .. }
        | MonitorConfigError::CrontabFields { .. }
        | MonitorConfigError::CrontabAlias { .. }
        | MonitorConfigError::CrontabNeverMatches { .. }
        | MonitorConfigError::Interval { .. }
        | MonitorConfigError::ScheduleShape { .. }
        | MonitorConfigError::MissingSchedule => "schedule",
        MonitorConfigError::Timezone { .. } => "timezone",
        MonitorConfigError::Threshold { field, .. }
        | MonitorConfigError::Duration { field, .. } => field,
        MonitorConfigError::UnknownField { field } => field.as_str(),
        MonitorConfigError::Slug { .. } => "slug",
        MonitorConfigError::Environment { .. } => "environment",
    };
    Error::at(format!("{path}.{field}"), error.to_string())
}

/// Checks a channel's `template` for its kind: compiled and tried on a sample alert and digest
/// (`alert::template`), so an error stops the start with its line, not an alert at 03:00.
fn channel_template(path: &str, kind: &ChannelKind, source: String) -> Result<String, Error> {
    let Some(markup) = kind.markup() else {
        return Err(Error::at(
            path,
            format!(
                "a `{}` channel sends the alert JSON of docs/alerts.md and takes no template; remove it",
                kind.type_name()
            ),
        ));
    };
    Template::compile(&source, markup)
        .map_err(|e| Error::at(path, format!("the template does not work: {e}")))?;
    Ok(source)
}

/// Whether a URL has a non-empty path segment (an ntfy topic).
fn has_path_segment(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        u.path_segments()
            .is_some_and(|mut segments| segments.any(|s| !s.is_empty()))
    })
}

/// An ntfy priority: 1–5, or `min`, `low`, `default`, `high`, `max`/`urgent`.
fn ntfy_priority(path: &str, raw: &RawNtfyPriority) -> Result<u8, Error> {
    let priority = match raw {
        RawNtfyPriority::Number(n) => u8::try_from(*n).ok().filter(|n| (1..=5).contains(n)),
        RawNtfyPriority::Name(name) => match name.trim().to_lowercase().as_str() {
            "min" => Some(1),
            "low" => Some(2),
            "default" => Some(3),
            "high" => Some(4),
            "max" | "urgent" => Some(5),
            _ => None,
        },
    };
    priority.ok_or_else(|| {
        Error::at(
            path,
            "expected 1 to 5 or one of \"min\", \"low\", \"default\", \"high\", \"urgent\"",
        )
    })
}

fn name_field(path: &str, name: &str) -> Result<String, Error> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(Error::at(path, "must not be empty"));
    }
    if trimmed.len() > 100 || trimmed.chars().any(char::is_control) {
        return Err(Error::at(
            path,
            "must be at most 100 characters without control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

fn unique<'a>(
    names: impl Iterator<Item = &'a str>,
    section: &str,
    what: &str,
) -> Result<(), Error> {
    let mut seen = HashMap::new();
    for (i, name) in names.enumerate() {
        if let Some(first) = seen.insert(name, i) {
            return Err(Error::at(
                format!("{section}[{i}].name"),
                format!(
                    "{what} `{name}` is already defined by {section}[{first}]; names must be unique"
                ),
            ));
        }
    }
    Ok(())
}

fn duration(path: &str, raw: &RawDuration, min: Duration) -> Result<Duration, Error> {
    let value = humantime::parse_duration(raw.0.trim()).map_err(|e| {
        Error::at(
            path,
            format!(
                "`{}` is not a duration ({e}); write e.g. \"30s\", \"5m\" or \"1h 30m\"",
                raw.0
            ),
        )
    })?;
    if value < min {
        return Err(Error::at(
            path,
            format!(
                "{} is too short; the minimum is {}",
                raw.0,
                humantime::format_duration(min)
            ),
        ));
    }
    if value > Duration::from_secs(366 * 24 * 3600) {
        return Err(Error::at(
            path,
            format!("{} is too long; the maximum is one year", raw.0),
        ));
    }
    Ok(value)
}

fn duration_or(
    path: &str,
    raw: Option<RawDuration>,
    default: Duration,
    min: Duration,
) -> Result<Duration, Error> {
    raw.map_or(Ok(default), |raw| duration(path, &raw, min))
}

fn limits(raw: &RawLimits) -> Result<Limits, Error> {
    let rate = |path: &str, raw: Option<u64>, default: u32| {
        count_or(path, raw, default as usize, 1..=MAX_INGEST_RATE as usize)
            .map(|n| u32::try_from(n).unwrap_or(MAX_INGEST_RATE))
    };
    let ingest_per_second = rate(
        "limits.ingest_per_second",
        raw.ingest_per_second,
        DEFAULT_INGEST_PER_SECOND,
    )?;
    // The burst follows the rate unless it is set: twice the rate, as the defaults are.
    let ingest_burst = rate(
        "limits.ingest_burst",
        raw.ingest_burst,
        ingest_per_second.saturating_mul(2).min(MAX_INGEST_RATE),
    )?;
    if ingest_burst < ingest_per_second {
        return Err(Error::at(
            "limits.ingest_burst",
            format!(
                "{ingest_burst} is below limits.ingest_per_second ({ingest_per_second}); set it at least as high"
            ),
        ));
    }
    let monitor_checkins_per_minute = rate(
        "limits.monitor_checkins_per_minute",
        raw.monitor_checkins_per_minute,
        DEFAULT_MONITOR_CHECKINS_PER_MINUTE,
    )?;
    // A byte budget below one event item (1 MiB) would refuse large events forever.
    let event_bytes_per_hour = count_or(
        "limits.event_bytes_per_hour",
        raw.event_bytes_per_hour,
        DEFAULT_EVENT_BYTES_PER_HOUR as usize,
        1 << 20..=1 << 40,
    )? as u64;
    // Below 32 MiB one envelope (up to 20 MiB decoded) could not be decoded beside another.
    let decoded_bytes_in_flight = count_or(
        "limits.decoded_bytes_in_flight",
        raw.decoded_bytes_in_flight,
        DEFAULT_DECODED_BYTES_IN_FLIGHT as usize,
        32 << 20..=1 << 40,
    )? as u64;
    Ok(Limits {
        ingest_per_second,
        ingest_burst,
        monitor_checkins_per_minute,
        event_bytes_per_hour,
        decoded_bytes_in_flight,
    })
}

/// Caps from `[caps]` (`path` = `caps`) or a `[[projects]]` entry, each unset field taken
/// from `default`.
fn caps(path: &str, raw: &RawCaps, default: &Caps) -> Result<Caps, Error> {
    let cap = |field: &str, raw: Option<u64>, default: u32| {
        count_or(
            &format!("{path}.{field}"),
            raw,
            default as usize,
            1..=u32::MAX as usize,
        )
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let upsert = match &raw.upsert {
        None => default.upsert,
        Some(value) => Upsert::parse(value).ok_or_else(|| {
            Error::at(
                format!("{path}.upsert"),
                format!(
                    "`{value}` is not a policy; use \"none\", \"create\", \"create_update\" or \"create_update_any\""
                ),
            )
        })?,
    };
    Ok(Caps {
        monitors_per_project: cap(
            "monitors_per_project",
            raw.monitors_per_project,
            default.monitors_per_project,
        )?,
        environments_per_monitor: cap(
            "environments_per_monitor",
            raw.environments_per_monitor,
            default.environments_per_monitor,
        )?,
        issues_per_project: cap(
            "issues_per_project",
            raw.issues_per_project,
            default.issues_per_project,
        )?,
        upsert,
    })
}

/// `store.compact_above`: 0 (never), or a ratio from 2 (a fresh copy takes about 3.4, so
/// less would compact again and again) to 1000.
fn compact_above(raw: Option<f64>) -> Result<f64, Error> {
    match raw {
        None => Ok(DEFAULT_COMPACT_ABOVE),
        Some(ratio) if ratio == 0.0 || (2.0..=1000.0).contains(&ratio) => Ok(ratio),
        Some(ratio) => Err(Error::at(
            "store.compact_above",
            format!(
                "{ratio} is out of range; expected 0 (never compact) or 2 to 1000 bytes on disk \
                 per live byte (a fresh copy takes about 3.4)"
            ),
        )),
    }
}

fn count_or(
    path: &str,
    raw: Option<u64>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, Error> {
    let Some(value) = raw else {
        return Ok(default);
    };
    match usize::try_from(value) {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(Error::at(
            path,
            format!(
                "{value} is out of range; expected {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn env(name: &str) -> Option<String> {
        match name {
            "WATCHPOST_SMTP_PASSWORD" => Some("hunter2".into()),
            "WATCHPOST_TELEGRAM_BOT_TOKEN" => Some("123:abc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, &Overrides::default(), &env)
    }

    #[test]
    fn defaults_without_a_file() {
        let config = parse("").unwrap();
        assert_eq!(config.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.server.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(config.server.admin_token.is_none());
        assert!(config.projects.is_empty());
        assert_eq!(config.alerts.dedup_window, Duration::from_secs(300));
        assert_eq!(config.retention.checkins_per_monitor, 100);
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.limits.ingest_burst, 2000);
        assert_eq!(config.store.cache_size, DEFAULT_CACHE_SIZE);
    }

    #[test]
    fn compaction_is_off_unless_configured() {
        let config = parse("").unwrap();
        assert_eq!(config.store.compact_above, 0.0);
        assert_eq!(config.store.compact_min_size, 64 << 20);
        let config = parse("[store]\ncompact_above = 0\ncompact_min_size = 0\n").unwrap();
        assert_eq!(config.store.compact_above, 0.0);
        assert_eq!(config.store.compact_min_size, 0);
        let config = parse("[store]\ncompact_above = 4.5\n").unwrap();
        assert_eq!(config.store.compact_above, 4.5);
    }

    #[test]
    fn the_store_cache_size_is_configured_in_bytes() {
        let config = parse("[store]\ncache_size = 16777216\n").unwrap();
        assert_eq!(config.store.cache_size, 16 << 20);
        assert_eq!(config.store.options().cache_size, 16 << 20);
    }

    #[test]
    fn caps_default_to_sentry_like_values_and_a_project_overrides_what_it_sets() {
        let config = parse("").unwrap();
        assert_eq!(config.caps.of(1), Caps::default());
        assert_eq!(config.caps.of(1).upsert, Upsert::CreateUpdate);
        let text = format!(
            "[caps]\nmonitors_per_project = 20\nupsert = \"create\"\n\
             [[projects]]\nid = 1\nkeys = [\"{KEY}\"]\n\
             [[projects]]\nid = 2\nkeys = [\"{}\"]\nupsert = \"none\"\nissues_per_project = 5\n",
            "b".repeat(32)
        );
        let config = parse(&text).unwrap();
        let one = config.caps.of(1);
        assert_eq!((one.monitors_per_project, one.upsert), (20, Upsert::Create));
        let two = config.caps.of(2);
        assert_eq!(
            (two.monitors_per_project, two.issues_per_project, two.upsert),
            (20, 5, Upsert::None)
        );
        assert_eq!(
            two.environments_per_monitor,
            crate::engine::caps::DEFAULT_ENVIRONMENTS_PER_MONITOR
        );
        for (text, expected) in [
            (
                "[caps]\nupsert = \"update\"\n",
                "caps.upsert: `update` is not a policy",
            ),
            (
                "[caps]\nmonitors_per_project = 0\n",
                "caps.monitors_per_project: 0 is out of range",
            ),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn overrides_win_over_the_file() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some("/tmp/x".into()),
            allow_shared_data_dir: true,
        };
        let config = Config::parse(
            "[server]\nlisten = \"0.0.0.0:1\"\ndata_dir = \"/var/lib/w\"\n",
            &overrides,
            &env,
        )
        .unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.server.data_dir, PathBuf::from("/tmp/x"));
        assert!(config.server.allow_shared_data_dir);
        let from_file = Config::parse(
            "[server]\nallow_shared_data_dir = true\n",
            &Overrides::default(),
            &env,
        )
        .unwrap();
        assert!(from_file.server.allow_shared_data_dir);
        let default = Config::parse("", &Overrides::default(), &env).unwrap();
        assert!(!default.server.allow_shared_data_dir);
    }

    #[test]
    fn admin_token_from_the_environment_never_shows_in_debug() {
        let with_env =
            |name: &str| (name == ADMIN_TOKEN_ENV).then(|| "s3cr3t-s3cr3t-s3cr3t".to_owned());
        let config = Config::parse("", &Overrides::default(), &with_env).unwrap();
        let token = config.server.admin_token.unwrap();
        assert_eq!(token.token.expose(), "s3cr3t-s3cr3t-s3cr3t");
        assert_eq!(token.origin, "environment variable WATCHPOST_ADMIN_TOKEN");
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }

    /// A configuration using every section, as the product was first specified, apart from the
    /// env names it needs.
    const PRODUCT_EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8470"
data_dir = "./watchpost-data"
public_url = "http://127.0.0.1:8470"

[[projects]]
id = 1
name = "default"
keys = ["0123456789abcdef0123456789abcdef"]

[[channels]]
name = "ops-webhook"
type = "webhook"
url = "http://127.0.0.1:9000/hook"

[[channels]]
name = "ops-email"
type = "email"
smtp_url = "smtps://smtp.example.com:465"
username = "alerts@example.com"
password = "env:WATCHPOST_SMTP_PASSWORD"
from = "Watchpost <alerts@example.com>"
to = ["oncall@example.com"]

[[channels]]
name = "ops-telegram"
type = "telegram"
bot_token = "env:WATCHPOST_TELEGRAM_BOT_TOKEN"
chat_id = "-1001234567890"
api_url = "https://api.telegram.org"

[[rules]]
name = "new errors"
on = ["issue.first_seen", "issue.regressed"]
channels = ["ops-telegram", "ops-email"]

[[rules]]
name = "error spike"
on = ["issue.spike"]
threshold = 10
window = "1h"
channels = ["ops-telegram"]

[[rules]]
name = "jobs and uptime"
on = ["monitor.failed", "monitor.recovered", "probe.down", "probe.up"]
channels = ["ops-telegram", "ops-webhook"]

[alerts]
dedup_window = "5m"

[[monitors]]
project = 1
slug = "nightly-backup"
schedule = "0 3 * * *"
timezone = "Europe/Berlin"
checkin_margin = "5m"
max_runtime = "30m"
failure_issue_threshold = 2

[[probes]]
name = "api-health"
url = "http://127.0.0.1:8080/health"
interval = "30s"
timeout = "2s"
failure_threshold = 2
success_threshold = 1

[watchdog]
url = "https://hc-ping.example/your-uuid"
interval = "60s"
"#;

    #[test]
    fn accepts_the_documented_example() {
        let config = parse(PRODUCT_EXAMPLE).unwrap();
        assert_eq!(config.projects[0].keys[0].expose(), KEY);
        assert_eq!(config.channels.len(), 3);
        match &config.channels[1].kind {
            ChannelKind::Email { password, .. } => {
                assert_eq!(password.as_ref().unwrap().expose(), "hunter2");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            config.rules[1].spike.as_ref().map(|s| s.window),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(config.rules[2].route.on.len(), 4);
        let monitor = &config.monitors[0];
        assert_eq!(monitor.key.slug, "nightly-backup");
        assert_eq!(monitor.key.environment, "production");
        assert_eq!(monitor.config.checkin_margin, Duration::from_secs(300));
        assert_eq!(monitor.config.failure_issue_threshold, 2);
        assert_eq!(config.probes[0].failure_threshold, 2);
        assert_eq!(config.watchdog.unwrap().interval, Duration::from_secs(60));
        assert_eq!(
            config.server.public_url.as_deref(),
            Some("http://127.0.0.1:8470")
        );
    }

    /// Every bad config names the field and says what is wrong.
    #[test]
    fn bad_configs_name_the_field() {
        let project = format!("[[projects]]\nid = 1\nkeys = [\"{KEY}\"]\n");
        let cases: Vec<(String, &str)> = vec![
            ("[server]\nlisten = \"localhost\"\n".into(), "server.listen: `localhost` is not a socket address"),
            ("[server]\nlisten = 8470\n".into(), "server.listen: invalid type: integer `8470`, expected a string"),
            ("[server]\nlisen = \"x\"\n".into(), "server.lisen: unknown field `lisen`, expected one of `listen`"),
            ("[sever]\n".into(), "unknown field `sever`"),
            ("[server]\nadmin_token = \"short\"\n".into(), "server.admin_token: the admin token must be at least 16 characters"),
            ("[server]\nadmin_token = \"env:NOPE\"\n".into(), "server.admin_token: environment variable NOPE is not set"),
            ("[server]\nadmin_token = \"env:EMPTY\"\n".into(), "server.admin_token: environment variable EMPTY is empty"),
            ("[server]\npublic_url = \"ftp://x\"\n".into(), "server.public_url: expected a http or https URL"),
            (format!("[[projects]]\nid = 1\nkeys = [\"{KEY}\", \"abc\"]\n"), "projects[0].keys[1]: expected 32 hex characters"),
            (format!("[[projects]]\nid = 1\nkeys = [\"{}\"]\n", "g".repeat(32)), "projects[0].keys[0]: expected 32 hex characters"),
            ("[[projects]]\nid = 1\nkeys = []\n".into(), "projects[0].keys: needs at least one public key"),
            ("[[projects]]\nid = 0\nkeys = []\n".into(), "projects[0].id: must be a positive integer"),
            ("[[projects]]\nid = -1\nkeys = []\n".into(), "projects[0].id: invalid value: integer `-1`"),
            (format!("{project}[[projects]]\nid = 1\nkeys = [\"{}\"]\n", "a".repeat(32)), "projects[1].id: project 1 is already defined by projects[0]"),
            (format!("{project}[[projects]]\nid = 2\nkeys = [\"{KEY}\"]\n"), "projects[1].keys[0]: this key is already used by project 1"),
            ("[[projects]]\nid = 1\nkeys = [\"env:NOPE\"]\n".into(), "projects[0].keys[0]: environment variable NOPE is not set"),
            ("[[channels]]\nname = \"a\"\ntype = \"sms\"\n".into(), "channels[0].type: unknown variant `sms`, expected one of `email`"),
            ("[[channels]]\nname = \"a\"\n".into(), "channels[0]: missing field `type`"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\nurl = \"x\"\n".into(), "channels[0]: unknown field `url`"),
            ("[[channels]]\nname = \"a\"\ntype = \"webhook\"\nurl = \"not a url\"\n".into(), "channels[0].url: not a valid URL"),
            ("[[channels]]\nname = \"a\"\ntype = \"webhook\"\nurl = \"env:NOPE\"\n".into(), "channels[0].url: environment variable NOPE is not set"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\n[[channels]]\nname = \"a\"\ntype = \"log\"\n".into(), "channels[1].name: channel `a` is already defined by channels[0]"),
            ("[[channels]]\nname = \" \"\ntype = \"log\"\n".into(), "channels[0].name: must not be empty"),
            ("[[channels]]\nname = \"t\"\ntype = \"telegram\"\nbot_token = \"env:NOPE\"\nchat_id = 1\n".into(), "channels[0].bot_token: environment variable NOPE is not set"),
            ("[[channels]]\nname = \"t\"\ntype = \"telegram\"\nbot_token = \"x\"\nchat_id = \"ops\"\n".into(), "channels[0].chat_id: `ops` is not a chat id"),
            ("[[channels]]\nname = \"e\"\ntype = \"email\"\nsmtp_url = \"http://x\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n".into(), "channels[0].smtp_url: expected a smtp or smtps URL"),
            ("[[channels]]\nname = \"e\"\ntype = \"email\"\nsmtp_url = \"smtp://x\"\nfrom = \"a@b\"\nto = []\n".into(), "channels[0].to: needs at least one recipient"),
            ("[[channels]]\nname = \"e\"\ntype = \"email\"\nsmtp_url = \"smtp://x\"\nfrom = \"a@b\"\nto = [\"nobody\"]\n".into(), "channels[0].to[0]: `nobody` is not an email address"),
            ("[[channels]]\nname = \"m\"\ntype = \"alertmanager\"\nurls = []\n".into(), "channels[0].urls: needs at least one Alertmanager URL"),
            ("[[rules]]\nname = \"r\"\non = [\"monitor.failed\"]\nchannels = [\"nope\"]\n".into(), "rules[0].channels[0]: no channel named `nope`; no [[channels]] are defined"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\n[[rules]]\nname = \"r\"\non = [\"monitor.exploded\"]\nchannels = [\"a\"]\n".into(), "rules[0].on[0]: unknown alert kind `monitor.exploded`"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\n[[rules]]\nname = \"r\"\non = [\"issue.spike\"]\nchannels = [\"a\"]\nwindow = \"1h\"\n".into(), "rules[0].threshold: is required for issue.spike"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\n[[rules]]\nname = \"r\"\non = [\"issue.spike\"]\nchannels = [\"a\"]\nthreshold = 5\nwindow = \"soon\"\n".into(), "rules[0].window: `soon` is not a duration"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\n[[rules]]\nname = \"r\"\non = [\"probe.up\"]\nchannels = [\"a\"]\nthreshold = 5\n".into(), "rules[0].threshold: only applies to issue.spike"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\n[[rules]]\nname = \"r\"\non = []\nchannels = [\"a\"]\n".into(), "rules[0].on: needs at least one alert kind"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\n[[rules]]\nname = \"r\"\non = [\"probe.down\"]\nchannels = [\"a\"]\nrepeat = \"30m\"\n".into(), "rules[0].repeat: repeats a monitor's failure alert; add \"monitor.failed\" to `on`"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\n[[rules]]\nname = \"r\"\non = [\"monitor.failed\"]\nchannels = [\"a\"]\nrepeat = \"1m\"\n".into(), "rules[0].repeat: 1m is shorter than [alerts] dedup_window (5m)"),
            ("[[channels]]\nname = \"a\"\ntype = \"log\"\n[[rules]]\nname = \"r\"\non = [\"monitor.failed\"]\nchannels = [\"a\"]\nrepeat = \"often\"\n".into(), "rules[0].repeat: `often` is not a duration"),
            ("[alerts]\ndedup_window = 5\n".into(), "alerts.dedup_window: invalid type: integer `5`, expected a duration string"),
            ("[alerts]\ndedup_window = \"5 parsecs\"\n".into(), "alerts.dedup_window: `5 parsecs` is not a duration"),
            ("[[monitors]]\nproject = 1\nslug = \"job\"\nschedule = \"61 * * * *\"\n".into(), "monitors[0].schedule: schedule `61 * * * *` is not a valid crontab expression"),
            ("[[monitors]]\nproject = 1\nslug = \"job\"\nschedule = \"0 * * * *\"\ntimezone = \"Mars/Olympus\"\n".into(), "monitors[0].timezone: timezone `Mars/Olympus` is not a known IANA timezone name"),
            ("[[monitors]]\nproject = 1\nslug = \"job\"\nschedule = \"0 * * * *\"\nfailure_issue_threshold = 0\n".into(), "monitors[0].failure_issue_threshold: failure_issue_threshold must be a whole number between 1 and 720"),
            ("[[monitors]]\nproject = 1\nslug = \"job\"\nschedule = \"0 * * * *\"\ncolour = \"red\"\n".into(), "monitors[0].colour: unknown monitor config field `colour`"),
            ("[[monitors]]\nproject = 1\nslug = \"job\"\n".into(), "monitors[0].schedule: schedule is required"),
            ("[[monitors]]\nproject = 2\nslug = \"job\"\nschedule = \"0 * * * *\"\n".into(), "monitors[0].project: project 2 is not defined; defined projects: 1"),
            ("[[monitors]]\nslug = \"job\"\nschedule = \"0 * * * *\"\n".into(), "monitors[0].project: is required"),
            ("[[monitors]]\nproject = 1\nslug = \"My Job\"\nschedule = \"0 * * * *\"\n".into(), "monitors[0].slug: `My Job` is not a normalized slug; write `my-job`"),
            ("[[monitors]]\nproject = 1\nslug = \"job\"\nschedule = \"@hourly\"\n[[monitors]]\nproject = 1\nslug = \"job\"\nschedule = \"@daily\"\n".into(), "monitors[1]: monitor `job` (project 1, environment `production`) is declared twice"),
            ("[[probes]]\nname = \"p\"\nurl = \"http://x/\"\ninterval = \"10s\"\ntimeout = \"20s\"\n".into(), "probes[0].timeout: 20s is longer than the interval 10s"),
            ("[[probes]]\nname = \"p\"\nurl = \"http://x/\"\nfailure_threshold = 0\n".into(), "probes[0].failure_threshold: 0 is out of range"),
            ("[[probes]]\nname = \"p\"\nurl = \"http://x/\"\nexpected_status = 999\n".into(), "probes[0].expected_status: 999 is not an HTTP status code"),
            ("[[probes]]\nname = \"p\"\nurl = \"x\"\n".into(), "probes[0].url: not a valid URL"),
            ("[[probes]]\nname = \"p\"\nurl = \"http://x/\"\ninterval = \"50ms\"\n".into(), "probes[0].interval: 50ms is too short; the minimum is 100ms"),
            ("[[probes]]\nname = \"p\"\nurl = \"http://x/\"\nexpected_body_contains = \"\"\n".into(), "probes[0].expected_body_contains: must not be empty"),
            ("[[probes]]\nname = \"p\"\nurl = \"http://x/\"\nexpected_json = { path = \"a..b\", equals = 1 }\n".into(), "probes[0].expected_json.path: `a..b` is not a field path"),
            ("[[probes]]\nname = \"p\"\nurl = \"http://x/\"\nexpected_json = { path = \"a\", equals = [1] }\n".into(), "probes[0].expected_json.equals: `equals` must be a string, a number or a boolean"),
            ("[[probes]]\nname = \"p\"\nurl = \"http://x/\"\nexpected_json = { path = \"a\" }\n".into(), "probes[0].expected_json: missing field `equals`"),
            ("[[probes]]\nname = \"p\"\nurl = \"http://x/\"\nexpected_json = { path = \"a\", equals = 1, is = 2 }\n".into(), "probes[0].expected_json.is: unknown field `is`, expected `path` or `equals`"),
            ("[watchdog]\nurl = \"https://hc/x\"\nmethod = \"PUT\"\n".into(), "watchdog.method: expected \"GET\" or \"POST\""),
            ("[retention]\nprobe_results = 0\n".into(), "retention.probe_results: 0 is out of range"),
            ("[limits]\ningest_per_second = 0\n".into(), "limits.ingest_per_second: 0 is out of range"),
            ("[limits]\ningest_per_second = 10\ningest_burst = 5\n".into(), "limits.ingest_burst: 5 is below limits.ingest_per_second (10)"),
            ("[limits]\nmonitor_checkins_per_minute = 0\n".into(), "limits.monitor_checkins_per_minute: 0 is out of range"),
            ("[limits]\nevent_bytes_per_hour = 1000\n".into(), "limits.event_bytes_per_hour: 1000 is out of range"),
            ("[limits]\ndecoded_bytes_in_flight = 1000\n".into(), "limits.decoded_bytes_in_flight: 1000 is out of range"),
            ("[watchdog]\ninterval = \"1m\"\n".into(), "watchdog: missing field `url`"),
            ("[watchdog]\nurl = \"https://hc/x\"\ninterval = \"0s\"\n".into(), "watchdog.interval: 0s is too short"),
            ("[retention]\ncheckins_per_monitor = 0\n".into(), "retention.checkins_per_monitor: 0 is out of range"),
            ("[store]\ncache_size = 1000\n".into(), "store.cache_size: 1000 is out of range; expected 1048576 to 17179869184"),
            ("[store]\ncompact_above = 1.5\n".into(), "store.compact_above: 1.5 is out of range; expected 0 (never compact) or 2 to 1000 bytes on disk per live byte (a fresh copy takes about 3.4)"),
            ("[store]\ncache = 1\n".into(), "unknown field `cache`"),
            ("[server\n".into(), "(line 1)"),
        ];
        let mut failures = Vec::new();
        for (text, expected) in cases {
            match parse(&text) {
                Ok(_) => failures.push(format!(
                    "config:\n{text}\nwas accepted; expected: {expected}"
                )),
                Err(err) => {
                    let err = err.to_string();
                    if !err.contains(expected) || err.contains('\n') {
                        failures.push(format!(
                            "config:\n{text}\ngot:      {err}\nexpected: {expected}"
                        ));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn probes_take_body_conditions_and_sub_second_intervals() {
        let config = parse(
            r#"
[[probes]]
name = "api"
url = "http://127.0.0.1:8080/health"
interval = "200ms"
expected_body_contains = "ok"
expected_json = { path = "checks.db.status", equals = "ok" }

[[probes]]
name = "plain"
url = "https://example.com/"

[watchdog]
url = "https://hc-ping.example/uuid"
method = "post"

[retention]
probe_results = 50
"#,
        )
        .unwrap();
        let api = &config.probes[0];
        assert_eq!(api.interval, Duration::from_millis(200));
        assert_eq!(api.timeout, Duration::from_millis(200));
        assert_eq!(api.expected_body_contains.as_deref(), Some("ok"));
        let json = api.expected_json.as_ref().unwrap();
        assert_eq!(json.path(), "checks.db.status");
        assert_eq!(json.equals(), &serde_json::json!("ok"));
        let plain = &config.probes[1];
        assert_eq!(plain.expected_status, 200);
        assert_eq!((plain.failure_threshold, plain.success_threshold), (2, 1));
        assert!(plain.expected_body_contains.is_none() && plain.expected_json.is_none());
        let watchdog = config.watchdog.unwrap();
        assert_eq!(watchdog.method, WatchdogMethod::Post);
        assert_eq!(watchdog.interval, Duration::from_secs(60));
        assert_eq!(config.retention.probe_results, 50);
        assert_eq!(
            parse("").unwrap().retention.probe_results,
            DEFAULT_PROBE_RESULTS
        );
    }

    #[test]
    fn upstream_takes_a_dsn_and_a_bound() {
        let config = parse("[upstream]\ndsn = \"https://k3y@sentry.example.com/42\"\n").unwrap();
        let upstream = config.upstream.unwrap();
        assert_eq!(
            upstream.dsn.envelope_url(),
            "https://sentry.example.com/api/42/envelope/"
        );
        assert_eq!(upstream.max_backlog, DEFAULT_UPSTREAM_BACKLOG);
        assert!(!format!("{upstream:?}").contains("k3y"));
        assert!(parse("").unwrap().upstream.is_none());
        for (text, needle) in [
            ("[upstream]\ndsn = \"ftp://k3y@h/1\"\n", "upstream.dsn: "),
            ("[upstream]\ndsn = \"https://k3y@h/x\"\n", "project id"),
            ("[upstream]\ndsn = \"env:NOPE\"\n", "NOPE is not set"),
            (
                "[upstream]\ndsn = \"https://k3y@h/1\"\nmax_backlog = 0\n",
                "upstream.max_backlog",
            ),
            ("[upstream]\nurl = \"https://k3y@h/1\"\n", "unknown field"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains("k3y"), "{err}");
        }
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let text =
            "[[channels]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"ftp://token-1234@host/x\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.starts_with("channels[0].url:"), "{err}");
        assert!(!err.contains("token-1234"), "{err}");
    }

    /// The minimal config of each channel of issue 19 (as docs/alerts.md shows them) parses to
    /// its kind, with the defaults documented there.
    #[test]
    fn accepts_the_new_channel_kinds_with_their_defaults() {
        let text = r#"
[[channels]]
name = "phone"
type = "ntfy"
url = "https://ntfy.sh/watchpost-alerts"

[[channels]]
name = "pushover"
type = "pushover"
app_token = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
user_key = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"

[[channels]]
name = "pager"
type = "pagerduty"
routing_key = "R0UTINGKEY0000000000000000000000"

[[channels]]
name = "discord"
type = "discord"
url = "https://discord.com/api/webhooks/1/abc"

[[channels]]
name = "teams"
type = "teams"
url = "https://prod.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=s"

[[channels]]
name = "chat"
type = "google_chat"
url = "https://chat.googleapis.com/v1/spaces/S/messages?key=k&token=t"
template = "{{ alert.title }}"
"#;
        let config = parse(text).unwrap();
        let kinds: Vec<&str> = config.channels.iter().map(|c| c.kind.type_name()).collect();
        assert_eq!(
            kinds,
            [
                "ntfy",
                "pushover",
                "pagerduty",
                "discord",
                "teams",
                "google_chat"
            ]
        );
        match &config.channels[1].kind {
            ChannelKind::Pushover {
                priority,
                retry,
                expire,
                api_url,
                ..
            } => {
                assert_eq!(*priority, None);
                assert_eq!(*retry, Duration::from_secs(60));
                assert_eq!(*expire, Duration::from_secs(3600));
                assert_eq!(api_url, "https://api.pushover.net");
            }
            other => panic!("{other:?}"),
        }
        match &config.channels[2].kind {
            ChannelKind::PagerDuty { events_url, .. } => {
                assert_eq!(events_url, "https://events.pagerduty.com");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            config.channels[5].template.as_deref(),
            Some("{{ alert.title }}")
        );
        let shown = format!("{:?}", config.channels);
        for secret in [
            "azGDORe",
            "uQiRzpo",
            "R0UTINGKEY",
            "abc",
            "sig=s",
            "token=t",
        ] {
            assert!(!shown.contains(secret), "Debug shows {secret}: {shown}");
        }
    }

    /// Bad settings of the new kinds, and bad templates, name the field (and the line).
    #[test]
    fn bad_new_channels_and_templates_name_the_field() {
        let channel = |body: &str| format!("[[channels]]\nname = \"c\"\n{body}");
        let cases = [
            (
                channel("type = \"ntfy\"\nurl = \"https://ntfy.sh\"\n"),
                "channels[0].url: needs the topic as its path",
            ),
            (
                channel("type = \"ntfy\"\nurl = \"https://ntfy.sh/t\"\npriority = 9\n"),
                "channels[0].priority: expected 1 to 5",
            ),
            (
                channel("type = \"ntfy\"\nurl = \"https://ntfy.sh/t\"\npriority = \"loud\"\n"),
                "channels[0].priority: expected 1 to 5",
            ),
            (
                channel(
                    "type = \"pushover\"\napp_token = \"a\"\nuser_key = \"u\"\nretry = \"10s\"\n",
                ),
                "channels[0].retry: 10s is too short; the minimum is 30s",
            ),
            (
                channel(
                    "type = \"pushover\"\napp_token = \"a\"\nuser_key = \"u\"\nexpire = \"4h\"\n",
                ),
                "channels[0].expire: must be at most 3h",
            ),
            (
                channel("type = \"pushover\"\napp_token = \"a\"\nuser_key = \"u\"\npriority = 3\n"),
                "channels[0].priority: 3 is not a Pushover priority",
            ),
            (
                channel("type = \"pushover\"\napp_token = \"env:NOPE\"\nuser_key = \"u\"\n"),
                "channels[0].app_token: environment variable NOPE is not set",
            ),
            (
                channel("type = \"pagerduty\"\nrouting_key = \" \"\n"),
                "channels[0].routing_key: must not be empty",
            ),
            (
                channel("type = \"pagerduty\"\nrouting_key = \"k\"\nevents_url = \"ftp://x\"\n"),
                "channels[0].events_url: expected a http or https URL",
            ),
            (
                channel("type = \"discord\"\nurl = \"nope\"\n"),
                "channels[0].url: not a valid URL",
            ),
            (
                channel("type = \"teams\"\n"),
                "channels[0]: missing field `url`",
            ),
            (
                channel(
                    "type = \"google_chat\"\nurl = \"https://chat.googleapis.com/x\"\ncolour = 1\n",
                ),
                "channels[0]: unknown field `colour`",
            ),
            (
                channel(
                    "type = \"webhook\"\nurl = \"https://h/x\"\ntemplate = \"{{ alert.title }}\"\n",
                ),
                "channels[0].template: a `webhook` channel sends the alert JSON",
            ),
            (
                channel(
                    "type = \"telegram\"\nbot_token = \"x\"\nchat_id = 1\ntemplate = \"\"\"\n<b>{{ alert.title }}</b>\n{% if alert.message %}\n{{ alert.message }\n{% endif %}\n\"\"\"\n",
                ),
                "channels[0].template: the template does not work: syntax error",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).expect_err(&text).to_string();
            assert!(
                err.starts_with(want),
                "{text}\n  got:  {err}\n  want: {want}…"
            );
        }
        let broken = channel(
            "type = \"slack\"\nurl = \"https://h/x\"\ntemplate = \"\"\"\nfirst\nsecond {{ alert.title | nosuchfilter }}\n\"\"\"\n",
        );
        let err = parse(&broken).unwrap_err().to_string();
        assert!(
            err.contains("nosuchfilter") && err.ends_with("(line 2)"),
            "{err}"
        );
    }

    /// Every TOML example of docs/alerts.md (the minimal config of each channel, the template
    /// example) is a valid config.
    #[test]
    fn the_toml_examples_in_docs_alerts_parse() {
        let doc = include_str!("../../docs/alerts.md");
        let any_env = |_: &str| Some("https://example.com/from-env".to_owned());
        let blocks: Vec<&str> = doc
            .split("```toml\n")
            .skip(1)
            .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
            .collect();
        assert!(blocks.len() >= 2, "the channel and template examples");
        for block in blocks {
            let config = Config::parse(block, &Overrides::default(), &any_env)
                .unwrap_or_else(|e| panic!("{e}\n{block}"));
            assert!(!config.channels.is_empty(), "{block}");
        }
    }
}
