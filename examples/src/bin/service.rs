//! The service a team copies: an axum app with `tracing` reporting errors through
//! `watchpost::tracing::layer()`, `HealthLayer` and `CaptureLayer`, a queue worker kept alive by
//! a heartbeat, and two jobs the SDK runs on the schedules their attributes declare.
//!
//! ```sh
//! WATCHPOST_DSN=http://<public_key>@127.0.0.1:8470/1 cargo run -p watchpost-examples --bin service
//! # optional first argument: the address to listen on (default 127.0.0.1:3000)
//!
//! curl -i http://127.0.0.1:3000/orders/7          # 200; the order's tag is on its events
//! curl -i http://127.0.0.1:3000/orders/0          # 502, an `error!` and a CaptureLayer event
//! curl -X POST http://127.0.0.1:3000/worker/wedge # the worker stops beating: `missed` follows
//! curl -X POST http://127.0.0.1:3000/worker/panic # the worker panics: `error` at once
//! ```
//!
//! What each failure looks like on the dashboard: README, "The service example".
//! Without a DSN it works the same and sends nothing. Ctrl-C stops it: the scheduler lets the
//! runs under way finish, and the guard flushes what is queued.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tracing_subscriber::prelude::*;
use watchpost::monitored_job;
use watchpost::tower::{CaptureLayer, HealthLayer};

/// What the HTTP routes can do to the worker.
#[derive(Default)]
struct Worker {
    wedged: AtomicBool,
    panic: AtomicBool,
}

/// Every five minutes; an incident after two failed runs in a row.
#[monitored_job(
    schedule = "*/5 * * * *",
    checkin_margin = "1m",
    failure_issue_threshold = 2
)]
async fn refresh_rates() -> Result<(), std::io::Error> {
    tracing::info!("fetching exchange rates");
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// Every night at 03:00 Berlin time; a run longer than 30 minutes times out.
#[monitored_job(
    schedule = "0 3 * * *",
    timezone = "Europe/Berlin",
    max_runtime = "30m"
)]
fn nightly_cleanup() -> std::io::Result<usize> {
    let removed = std::fs::read_dir(std::env::temp_dir())?.count();
    tracing::info!(removed, "cleanup done");
    Ok(removed)
}

/// The queue worker: one message a second, a heartbeat every 10 s, caught within 30 s of a
/// stall (plus the interval and the margin) by the collector.
async fn queue_worker(worker: Arc<Worker>) {
    let heartbeat = watchpost::heartbeat("orders-worker", Duration::from_secs(10))
        .checkin_margin(Duration::from_secs(10))
        .stall_after(Duration::from_secs(30));
    loop {
        if worker.panic.load(Relaxed) {
            panic!("poisoned message in the orders queue");
        }
        if !worker.wedged.load(Relaxed) {
            heartbeat.beat();
            tracing::debug!("message handled");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn order(Path(id): Path<u32>) -> Result<String, StatusCode> {
    watchpost::with_scope(|scope| scope.set_tag("order", id.to_string()), async move {
        tracing::info!(order = id, "loading order");
        if id == 0 {
            let err = std::io::Error::other("inventory service reset the connection");
            tracing::error!(
                error = &err as &(dyn std::error::Error + 'static),
                "order lookup failed"
            );
            return Err(StatusCode::BAD_GATEWAY);
        }
        Ok(format!("order {id}\n"))
    })
    .await
}

fn app(worker: Arc<Worker>) -> Router {
    let capture = CaptureLayer::new()
        .route_with(|request| Some(request.extensions.get::<MatchedPath>()?.as_str().to_owned()));
    Router::new()
        .route("/orders/{id}", get(order))
        .route(
            "/worker/wedge",
            post(|State(w): State<Arc<Worker>>| async move { w.wedged.store(true, Relaxed) }),
        )
        .route(
            "/worker/panic",
            post(|State(w): State<Arc<Worker>>| async move { w.panic.store(true, Relaxed) }),
        )
        .with_state(worker)
        .layer(capture)
        .layer(HealthLayer::new())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _guard = watchpost::init_from_env();
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(watchpost::tracing::layer())
        .init();

    let worker = Arc::new(Worker::default());
    tokio::spawn(queue_worker(Arc::clone(&worker)));
    let jobs = tokio::spawn(
        watchpost::schedule()
            .job(watchpost::job!(refresh_rates))
            .job(watchpost::job!(nightly_cleanup))
            .run_until(async {
                tokio::signal::ctrl_c().await.ok();
            }),
    );

    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
        .parse()?;
    let listener = TcpListener::bind(addr).await?;
    tracing::info!("listening on http://{addr}");
    axum::serve(listener, app(worker))
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    jobs.await??;
    Ok(())
}
