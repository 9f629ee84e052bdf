//! An axum service the way Watchpost sees it from three sides: a health route that checks a real
//! dependency (`HealthLayer`), handler failures reported as events (`CaptureLayer`), and a
//! background job reporting every run as a check-in (`#[monitored_job]`). The dependency is a
//! TCP server the app starts itself and can close on command, so you can watch a collector's
//! uptime probe go down and come back.
//!
//! ```sh
//! WATCHPOST_DSN=http://<public_key>@127.0.0.1:8470/1 cargo run -p watchpost-examples --bin health_app
//! # optional first argument: the address to listen on (default 127.0.0.1:3000)
//!
//! curl -i http://127.0.0.1:3000/health                  # 200 {"status":"healthy",...}
//! curl -X POST http://127.0.0.1:3000/dependency/close   # the dependency refuses connections
//! curl -i http://127.0.0.1:3000/health                  # 503 {"status":"degraded",...}
//! curl -X POST http://127.0.0.1:3000/dependency/open
//! curl -i http://127.0.0.1:3000/fail                    # a 500, reported as an event
//! ```
//!
//! To have a collector probe it, add to its config (README, "Health route and uptime probes"):
//!
//! ```toml
//! [[probes]]
//! name = "health-app"
//! url = "http://127.0.0.1:3000/health"
//! interval = "10s"
//! failure_threshold = 2
//! success_threshold = 2
//! expected_json = { path = "status", equals = "healthy" }
//! ```
//!
//! Without a DSN the app works the same and sends nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use watchpost::monitored_job;
use watchpost::tower::{CaptureLayer, HealthLayer, checks};

/// A stand-in for a database: a TCP server on a fixed loopback port that accepts connections
/// while open and refuses them while closed.
#[derive(Clone)]
struct Dependency {
    addr: SocketAddr,
    server: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Dependency {
    /// Starts it, open, on a free port.
    async fn start() -> std::io::Result<Dependency> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let dependency = Dependency {
            addr: listener.local_addr()?,
            server: Arc::default(),
        };
        *dependency.server.lock().await = Some(tokio::spawn(accept(listener)));
        Ok(dependency)
    }

    /// Stops listening: connections are refused from now on.
    async fn close(&self) -> &'static str {
        match self.server.lock().await.take() {
            Some(server) => {
                server.abort();
                // Wait until the listener is dropped, so the next health check sees it closed.
                let _ = server.await;
                "dependency closed: /health answers 503 from now on\n"
            }
            None => "dependency was already closed\n",
        }
    }

    /// Listens again on the same port.
    async fn open(&self) -> Result<&'static str, String> {
        let mut server = self.server.lock().await;
        if server.is_some() {
            return Ok("dependency was already open\n");
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|e| format!("cannot reopen the dependency: {e}\n"))?;
        *server = Some(tokio::spawn(accept(listener)));
        Ok("dependency open: /health answers 200 again within a second\n")
    }
}

/// Accepts and closes connections: enough for a TCP health check.
async fn accept(listener: TcpListener) {
    while let Ok((socket, _)) = listener.accept().await {
        drop(socket);
    }
}

/// Refreshes a cache from the dependency every 30 s. Each run is a check-in; a run that cannot
/// reach the dependency reports `error` with the I/O error attached, and after two in a row the
/// collector opens an incident on `health-app-refresh`.
#[monitored_job(
    slug = "health-app-refresh",
    interval = "30s",
    checkin_margin = "30s",
    failure_issue_threshold = 2
)]
async fn refresh_cache(dependency: SocketAddr) -> std::io::Result<()> {
    tokio::net::TcpStream::connect(dependency).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Keep the guard alive: dropping it flushes what is still queued.
    let _watchpost = watchpost::init_from_env();

    let listen: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:3000")
        .parse()?;
    let dependency = Dependency::start().await?;

    // `/health` runs the checks concurrently, each under its own timeout; results are reused
    // for a second so a busy prober cannot hammer the dependency.
    let health = HealthLayer::new()
        .with_check(
            checks::tcp("dependency", dependency.addr).with_timeout(Duration::from_millis(500)),
        )
        .cache_for(Duration::from_secs(1));
    // Name events after the route pattern (`/users/{id}`), not the concrete path.
    let capture = CaptureLayer::new().route_with(|request| {
        let matched = request.extensions.get::<MatchedPath>()?;
        Some(matched.as_str().to_owned())
    });

    let app = Router::new()
        .route("/", get(|| async { "health_app: see /health\n" }))
        .route(
            "/dependency/close",
            post(|State(d): State<Dependency>| async move { d.close().await }),
        )
        .route(
            "/dependency/open",
            post(|State(d): State<Dependency>| async move {
                d.open()
                    .await
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "a failure to report\n") }),
        )
        .with_state(dependency.clone())
        .layer(capture)
        // Outermost: `/health` never reaches the router or the capture layer.
        .layer(health);

    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        loop {
            every.tick().await;
            if let Err(error) = refresh_cache(dependency.addr).await {
                eprintln!("health_app: refresh failed: {error}");
            }
        }
    });

    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("health_app: listening on http://{addr}");
    println!("health_app: health route http://{addr}/health");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
