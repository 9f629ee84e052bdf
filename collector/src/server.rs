//! Wiring for `watchpost serve`: opens the store, settles projects and the admin token, starts
//! the flusher, the alert dispatcher, the sweeper and the prober, builds the router, prints the
//! startup lines and shuts down gracefully on SIGTERM/SIGINT (final flush). Holds no logic of
//! its own.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rand::Rng;
use tokio::sync::watch;

use crate::ack::AckKeys;
use crate::alert::{
    self, Channel, ChannelError, ChannelOptions, DispatchOptions, Dispatcher, MeteredOutbox,
    Planner,
};
use crate::app::{AppState, Shared};
use crate::config::{ADMIN_TOKEN_FILE, Config, Secret};
use crate::deadlines::Deadlines;
use crate::health::{HealthSources, Heartbeat};
use crate::ingest::auth::ProjectKeys;
use crate::ingest::inflight::DecodeBudget;
use crate::ingest::ratelimit::RateLimiter;
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::probe::Probes;
use crate::processor::{ProcessError, Processor};
use crate::store::{ProjectRecord, Store, StoreError};
use crate::sweep;
use crate::throttle::AuthThrottle;
use crate::upstream::Upstream;
use crate::{api, dashboard, http, ingest, listener, watchdog};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The dashboard's badge secret could not be read or created.
    #[error("dashboard: {0}")]
    Dashboard(std::io::Error),
    /// The secret acknowledge links are signed with could not be read or created.
    #[error("acknowledge links: {0}")]
    AckSecret(std::io::Error),
    /// The data dir could not be created.
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The data dir exists and other users may read or enter it, which `serve` refuses unless
    /// told otherwise: it holds the admin token, the badge key and every check-in.
    #[error(
        "data dir {path} is accessible to other users (mode {mode:04o}); make it private with \
         `chmod 700 {path}`, or start with --allow-shared-data-dir (or `[server] \
         allow_shared_data_dir = true`) if sharing it is intended",
        path = .path.display()
    )]
    SharedDataDir {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The admin token file could not be read or written, or is unusable.
    #[error("admin token file {path}: {problem}")]
    AdminToken {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An alert channel could not be set up.
    #[error("alert channels: {0}")]
    Channels(#[from] ChannelError),
    /// `[[monitors]]` could not be applied.
    #[error("cannot apply [[monitors]] from the config: {0}")]
    Monitors(ProcessError),
    /// The listen address is unusable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// How long SIGTERM may take, from the signal to the exit: long enough for most requests in
/// flight, the tasks' last rounds and a final flush (milliseconds when the store is well),
/// short enough for an orchestrator's default grace period (Kubernetes: 30 s, systemd: 90 s).
/// The sum of the three parts below, plus a second of margin.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);
/// The part of [`SHUTDOWN_BOUND`] requests in flight get to finish.
const CONNECTION_GRACE: Duration = Duration::from_secs(4);
/// The part the background tasks get to stop, after the requests.
const TASKS_GRACE: Duration = Duration::from_secs(3);
/// The part the final flush gets, after the tasks; the remaining second is margin.
const FINAL_FLUSH: Duration = Duration::from_secs(2);
const _: () = assert!(
    CONNECTION_GRACE.as_secs() + TASKS_GRACE.as_secs() + FINAL_FLUSH.as_secs()
        < SHUTDOWN_BOUND.as_secs()
);

/// Every route: ingest, management API, health, metrics; JSON 404/405 for the rest.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ingest::routes())
        .merge(api::routes(&state))
        .merge(dashboard::routes())
        .fallback(http::no_route)
        .method_not_allowed_fallback(http::wrong_method)
        .with_state(state)
}

/// Runs the collector until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let data_dir = config.server.data_dir.clone();
    private_files();
    create_data_dir(&data_dir, config.server.allow_shared_data_dir)?;
    // Before the store opens anything: sled, the connections and the outbound clients share
    // these descriptors, and running out of them once stuck sled for good.
    let nofile = listener::raise_nofile();
    let cap = listener::connection_cap(nofile);
    let max_connections = config.server.max_connections.unwrap_or(cap);
    if max_connections > cap {
        tracing::warn!(
            max_connections,
            open_files = nofile,
            "server.max_connections is above the {cap} connections the open-file limit leaves \
             room for beside the store; clients holding connections can use up the file \
             descriptors and make writes fail"
        );
    }
    let limits = listener::Limits {
        max_connections,
        header_timeout: config.server.header_timeout,
        body_timeout: config.server.body_timeout,
    };
    tracing::info!(
        open_files = nofile,
        max_connections = limits.max_connections,
        "connection limit"
    );
    let store = Store::open_with(&data_dir, config.store.options())?;
    let projects = settle_projects(&config, &store)?;
    let (admin_token, token_line) = settle_admin_token(&config, &data_dir)?;
    // Bound before anything starts: alert links need the real address (`--listen :0`).
    let listen = config.server.listen;
    let listener = listener::bind(listen).map_err(|source| ServerError::Bind {
        addr: listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: listen,
        source,
    })?;

    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        // An error means the sender is gone, which is a stop too.
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let flusher = tokio::spawn({
        let store = store.clone();
        let stopped = until_stopped(stopped.clone());
        async move { store.run_flusher(stopped).await }
    });

    let metrics = Arc::new(Metrics::default());
    let dispatcher_heartbeat = Arc::new(Heartbeat::default());
    let channel_options = ChannelOptions::default();
    let channels = alert::channels_from_config(&config, &channel_options)?;
    metrics.alert_channels(channels.iter().map(Channel::name));
    let dispatcher = Dispatcher::new(
        Arc::new(MeteredOutbox::new(
            store.clone(),
            Arc::clone(&metrics),
            Arc::clone(&dispatcher_heartbeat),
        )),
        channels,
        DispatchOptions {
            dedup_window: config.alerts.dedup_window,
            channels: channel_options,
            ..DispatchOptions::default()
        },
    );
    let links_base = public_base(config.server.public_url.as_deref(), addr);
    let ack_keys = AckKeys::load_or_create(&data_dir).map_err(ServerError::AckSecret)?;
    let planner = Arc::new(
        Planner::from_config(&config, links_base.as_str())
            .with_ack_links(Arc::new(ack_keys))
            .waking(dispatcher.handle()),
    );
    // Deliveries left pending by the last run go out as soon as this starts.
    let dispatcher = tokio::spawn({
        let heartbeat = Arc::clone(&dispatcher_heartbeat);
        let stopped = until_stopped(stopped.clone());
        async move {
            let _running = heartbeat.start();
            dispatcher.run(stopped).await;
        }
    });

    // Before the first sweep: the window this process was not running, if the gap since the
    // last liveness mark is one, so deadlines that fell in it get their grace.
    let liveness = Arc::new(Liveness::start(
        &store,
        config.server.outage_grace,
        chrono::Utc::now(),
    )?);
    let marker = tokio::spawn(Arc::clone(&liveness).run(until_stopped(stopped.clone())));
    let deadlines = Arc::new(Deadlines::load(&store)?);
    let processor = Arc::new(
        Processor::new(
            store.clone(),
            Arc::clone(&deadlines),
            config.retention.clone(),
            Arc::clone(&planner),
        )
        .watching(liveness)
        .with_caps(config.caps.clone())?,
    );
    processor
        .apply_specs(&config.monitors)
        .await
        .map_err(ServerError::Monitors)?;
    let sweeper = tokio::spawn(sweep::run(
        Arc::clone(&deadlines),
        Arc::clone(&processor),
        Arc::clone(&metrics),
        until_stopped(stopped.clone()),
    ));

    let probes = Probes::new(&config.probes);
    processor.attach_probes(probes.clone());
    let prober = tokio::spawn(probes.clone().run(
        store.clone(),
        planner,
        config.retention.probe_results,
        until_stopped(stopped.clone()),
    ));
    let health = HealthSources {
        store: store.clone(),
        deadlines: Arc::clone(&deadlines),
        metrics: Arc::clone(&metrics),
        dispatcher: dispatcher_heartbeat,
        probes: probes.clone(),
    };
    let watchdog = config.watchdog.clone().map(|config| {
        tokio::spawn(watchdog::run(
            config,
            health.clone(),
            until_stopped(stopped.clone()),
        ))
    });

    let compactor = crate::compactor::Policy::of(&config.store).map(|policy| {
        tokio::spawn(crate::compactor::run(
            store.clone(),
            policy,
            until_stopped(stopped.clone()),
        ))
    });

    let upstream = Upstream::new(config.upstream.as_ref(), &store);
    let forwarder = tokio::spawn(upstream.clone().run(until_stopped(stopped.clone())));
    let dashboard = dashboard::state::Dashboard::new(
        &data_dir,
        config.server.public_url.as_deref(),
        links_base.as_str(),
    )
    .map_err(ServerError::Dashboard)?;

    print_startup(&startup_lines(&config, addr, &projects, &token_line));

    let state = AppState::new(Shared {
        store: store.clone(),
        processor,
        deadlines,
        keys: ProjectKeys::new(projects.iter().map(|p| (p.id, p.keys.as_slice()))),
        admin_token,
        metrics,
        dashboard,
        upstream,
        probes,
        health,
        rate_limits: RateLimiter::new(config.limits),
        decode_budget: DecodeBudget::new(config.limits.decoded_bytes_in_flight),
        auth_throttle: AuthThrottle::default(),
    });
    let drained = listener::serve(
        listener,
        router(state),
        limits,
        shutdown_signal(),
        CONNECTION_GRACE,
    )
    .await;

    tracing::info!("shutting down");
    let _ = stop.send(true);
    let tasks_stopped = tokio::time::timeout(TASKS_GRACE, async {
        if let Err(error) = sweeper.await {
            tracing::error!(%error, "sweeper task failed");
        }
        if let Err(error) = forwarder.await {
            tracing::error!(%error, "upstream forwarder task failed");
        }
        if let Err(error) = prober.await {
            tracing::error!(%error, "prober task failed");
        }
        // After every producer of deliveries, before the final flush that keeps its last saves.
        if let Err(error) = dispatcher.await {
            tracing::error!(%error, "alert dispatcher task failed");
        }
        if let Some(watchdog) = watchdog
            && let Err(error) = watchdog.await
        {
            tracing::error!(%error, "watchdog task failed");
        }
        // A compaction under way goes on on its blocking thread; the process may exit in its
        // middle, which leaves the store as it was (`store/compact.rs`).
        if let Some(compactor) = compactor
            && let Err(error) = compactor.await
        {
            tracing::error!(%error, "store compaction task failed");
        }
        // Its last liveness mark, so the next start measures the gap from here.
        if let Err(error) = marker.await {
            tracing::error!(%error, "liveness task failed");
        }
        if let Err(error) = flusher.await {
            tracing::error!(%error, "flusher task failed");
        }
    })
    .await
    .is_ok();
    if !tasks_stopped {
        // One waits on a destination or on the store; the final flush is tried all the same.
        tracing::warn!(
            "background tasks did not stop within {} s; flushing without them",
            TASKS_GRACE.as_secs()
        );
    }
    match store.flush_within(FINAL_FLUSH).await {
        Ok(()) => {
            if !drained {
                tracing::warn!("shut down with requests cut short; none of them was acknowledged");
            }
            Ok(())
        }
        Err(StoreError::Stalled { .. }) => exit_stuck(),
        Err(error) => Err(error.into()),
    }
}

/// Ends the process now, when the final flush did not finish within its bound: returning
/// would drop the store, whose destructors (ours and sled's) wait for the very write or flush
/// that is stuck. `std::process::exit` runs no destructors.
fn exit_stuck() -> ! {
    tracing::error!(
        bound_seconds = SHUTDOWN_BOUND.as_secs(),
        "shutdown: the store's final flush did not finish in time (sled is stuck); exiting \
         without it. Nothing acknowledged is lost: a write is acknowledged only once it is \
         durable. Deliveries marked sent since the last flush may go out again."
    );
    std::process::exit(1);
}

/// Makes every file and directory this process creates from now on private to its owner
/// (`0600` / `0700`), whatever the umask it was started with. sled creates its files (the
/// database, new log segments, blobs, the snapshot) with the process umask, and so would any
/// file a later version adds; clearing the group and other bits of the umask covers all of
/// them at once, where a `chmod` after the fact would have to chase each new file.
fn private_files() {
    use rustix::fs::Mode;
    let previous = rustix::process::umask(Mode::from_raw_mode(0o077));
    // Keep bits the operator masked beyond ours (e.g. `0o277`), never loosen them.
    rustix::process::umask(previous | Mode::from_raw_mode(0o077));
}

/// Creates the data dir readable only by its owner; refuses an existing one that other users
/// can reach unless `allow_shared` (`--allow-shared-data-dir`), where it only warns.
fn create_data_dir(path: &Path, allow_shared: bool) -> Result<(), ServerError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let error = |source| ServerError::DataDir {
        path: path.to_owned(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                if !allow_shared {
                    return Err(ServerError::SharedDataDir {
                        path: path.to_owned(),
                        mode,
                    });
                }
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:04o}"),
                    "data dir is accessible to other users (allowed by allow_shared_data_dir)"
                );
            }
            Ok(())
        }
        Ok(_) => Err(error(std::io::Error::other(
            "exists and is not a directory",
        ))),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(error),
    }
}

/// Projects from the config; without any, the ones an earlier start created; on the very first
/// start, project 1 with a fresh random key (persisted before it is printed).
fn settle_projects(config: &Config, store: &Store) -> Result<Vec<ProjectRecord>, ServerError> {
    if !config.projects.is_empty() {
        return Ok(config
            .projects
            .iter()
            .map(|p| ProjectRecord {
                id: p.id,
                name: p.name.clone(),
                keys: p.keys.iter().map(|k| k.expose().to_owned()).collect(),
            })
            .collect());
    }
    let stored = store.projects()?;
    if !stored.is_empty() {
        return Ok(stored);
    }
    let project = ProjectRecord {
        id: 1,
        name: "default".to_owned(),
        keys: vec![random_hex::<16>()],
    };
    store.save_project(&project)?;
    Ok(vec![project])
}

/// The admin token and the startup line that tells where it is. A provided token (config or
/// environment) is never printed; a generated one is printed once, when it is created.
fn settle_admin_token(config: &Config, data_dir: &Path) -> Result<(Secret, String), ServerError> {
    if let Some(provided) = &config.server.admin_token {
        return Ok((
            provided.token.clone(),
            format!("watchpost: admin token from {}", provided.origin),
        ));
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let error = |problem: String| ServerError::AdminToken {
        path: path.clone(),
        problem,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim();
            if token.len() < crate::config::MIN_ADMIN_TOKEN_LEN {
                return Err(error(
                    "is shorter than 16 characters; delete it to have a new token generated".into(),
                ));
            }
            Ok((
                Secret::new(token),
                format!("watchpost: admin token in {}", path.display()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_hex::<32>();
            write_private(&path, token.as_bytes()).map_err(|e| error(e.to_string()))?;
            let line = format!(
                "watchpost: admin token {token} (saved in {})",
                path.display()
            );
            Ok((Secret::new(token), line))
        }
        Err(e) => Err(error(e.to_string())),
    }
}

/// Writes a new file with mode 0600 and syncs it.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// `N` random bytes as lowercase hex.
fn random_hex<const N: usize>() -> String {
    let bytes: [u8; N] = rand::rng().random();
    bytes
        .iter()
        .fold(String::with_capacity(2 * N), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// The lines test harnesses and people read: listen address, dashboard, one DSN per key, and
/// where the admin token is.
fn startup_lines(
    config: &Config,
    addr: SocketAddr,
    projects: &[ProjectRecord],
    token_line: &str,
) -> Vec<String> {
    let base = public_base(config.server.public_url.as_deref(), addr);
    let mut lines = vec![
        format!("watchpost: listening on http://{addr}"),
        format!(
            "watchpost: dashboard {}/",
            base.as_str().trim_end_matches('/')
        ),
    ];
    for project in projects {
        for key in &project.keys {
            lines.push(format!("watchpost: DSN {}", dsn(&base, key, project.id)));
        }
    }
    lines.push(token_line.to_owned());
    lines
}

/// The URL clients should use: `server.public_url`, else the listen address (loopback when
/// listening on all interfaces).
fn public_base(public_url: Option<&str>, addr: SocketAddr) -> reqwest::Url {
    if let Some(url) = public_url.and_then(|u| reqwest::Url::parse(u).ok()) {
        return url;
    }
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}", SocketAddr::new(ip, addr.port()));
    reqwest::Url::parse(&url).expect("a socket address makes a valid URL")
}

/// `scheme://key@host[:port][/path]/project`.
fn dsn(base: &reqwest::Url, key: &str, project: u64) -> String {
    let mut dsn = base.clone();
    // Keys are hex, so this cannot fail for an http(s) base.
    let _ = dsn.set_username(key);
    let path = format!("{}/{project}", base.path().trim_end_matches('/'));
    dsn.set_path(&path);
    dsn.to_string()
}

fn print_startup(lines: &[String]) {
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(stdout, "{line}");
    }
    let _ = stdout.flush();
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_and_dashboard_follow_the_address_or_public_url() {
        let addr: SocketAddr = "0.0.0.0:8470".parse().unwrap();
        let base = public_base(None, addr);
        assert_eq!(dsn(&base, "abc", 1), "http://abc@127.0.0.1:8470/1");
        let base = public_base(Some("https://mon.example.com/watchpost/"), addr);
        assert_eq!(
            dsn(&base, "abc", 7),
            "https://abc@mon.example.com/watchpost/7"
        );
        assert_eq!(random_hex::<16>().len(), 32);
    }
}
