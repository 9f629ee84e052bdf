//! `HealthLayer` through real HTTP: an axum app served on an ephemeral loopback port, asked with
//! reqwest. The JSON shapes are the product contract (README.md, "Health route and uptime probes"); timing bounds are the
//! layer's promises (a check gets its timeout and no more, checks run concurrently).
#![cfg(feature = "tower")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use watchpost::tower::{CheckError, HealthLayer, checks};

/// Serves `app` on `127.0.0.1:0` for the rest of the test's runtime.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The application the layer wraps: `/` answers with a body and a header of its own.
fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { ([("x-app", "yes")], "hello from the app") }),
        )
        .route(
            "/fails",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        )
}

/// One response, as the client saw it.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    elapsed: Duration,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    /// The JSON with every `latency_ms` (checked to be an integer) replaced by `"<ms>"`, for
    /// comparing exact shapes.
    fn shape(&self) -> Value {
        let mut json = self.json();
        for check in json["checks"].as_object_mut().unwrap().values_mut() {
            assert!(
                check["latency_ms"].is_u64(),
                "latency_ms is an integer: {check}"
            );
            check["latency_ms"] = json!("<ms>");
        }
        json
    }

    fn latency(&self, check: &str) -> Duration {
        Duration::from_millis(self.json()["checks"][check]["latency_ms"].as_u64().unwrap())
    }
}

async fn send(client: &reqwest::Client, method: reqwest::Method, url: String) -> Answer {
    let start = Instant::now();
    let response = client.request(method, url).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    Answer {
        status,
        headers,
        body,
        elapsed: start.elapsed(),
    }
}

async fn get_once(addr: SocketAddr, path: &str) -> Answer {
    send(
        &reqwest::Client::new(),
        reqwest::Method::GET,
        format!("http://{addr}{path}"),
    )
    .await
}

/// Serves `app()` behind `layer` and asks for `/health`.
async fn health(layer: HealthLayer) -> Answer {
    let addr = serve(app().layer(layer)).await;
    get_once(addr, "/health").await
}

fn ok() -> impl Fn() -> std::future::Ready<Result<(), CheckError>> + Clone {
    || std::future::ready(Ok(()))
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn all_checks_ok_answer_200_with_the_exact_json() {
    let answer = health(
        HealthLayer::new()
            .check("database", ok())
            .check("cache", ok()),
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert_eq!(
        answer.shape(),
        json!({"status": "healthy", "checks": {
            "database": {"status": "ok", "latency_ms": "<ms>"},
            "cache": {"status": "ok", "latency_ms": "<ms>"},
        }})
    );
    let keys: Vec<_> = answer.json()["checks"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        ["database", "cache"],
        "checks keep their registration order"
    );
}

#[tokio::test]
async fn no_checks_is_healthy() {
    let answer = health(HealthLayer::new()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, r#"{"status":"healthy","checks":{}}"#);
}

#[tokio::test]
async fn one_failing_check_answers_503_with_its_error_type_and_the_others_ok() {
    let layer = HealthLayer::new()
        .check("database", ok())
        .with_check(checks::tcp("cache", closed_port()))
        .check("search", ok());
    let answer = health(layer).await;

    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(
        answer.shape(),
        json!({"status": "degraded", "checks": {
            "database": {"status": "ok", "latency_ms": "<ms>"},
            "cache": {"status": "error", "detail": "std::io::error::Error", "latency_ms": "<ms>"},
            "search": {"status": "ok", "latency_ms": "<ms>"},
        }})
    );
}

#[tokio::test]
async fn error_messages_are_shown_only_when_exposed() {
    let failing = || async { Err(CheckError::new("replication_lag", "replica is 42 s behind")) };
    let hidden = health(HealthLayer::new().check("replica", failing)).await;
    assert_eq!(
        hidden.shape()["checks"]["replica"],
        json!({"status": "error", "detail": "replication_lag", "latency_ms": "<ms>"})
    );

    let shown = health(
        HealthLayer::new()
            .check("replica", failing)
            .expose_errors(true),
    )
    .await;
    assert_eq!(
        shown.shape()["checks"]["replica"],
        json!({"status": "error", "detail": "replication_lag", "message": "replica is 42 s behind",
               "latency_ms": "<ms>"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_check_times_out_at_its_own_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let layer = HealthLayer::new()
        .check("database", ok())
        .with_check(
            checks::from_fn("queue", std::future::pending::<Result<(), CheckError>>)
                .with_timeout(TIMEOUT),
        )
        .check("cache", ok());
    let addr = serve(app().layer(layer)).await;
    let client = reqwest::Client::new();
    // Connect first, so that the measured request is the health answer alone.
    send(&client, reqwest::Method::GET, format!("http://{addr}/")).await;

    let answer = send(
        &client,
        reqwest::Method::GET,
        format!("http://{addr}/health"),
    )
    .await;

    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.shape(),
        json!({"status": "degraded", "checks": {
            "database": {"status": "ok", "latency_ms": "<ms>"},
            "queue": {"status": "error", "detail": "timeout", "latency_ms": "<ms>"},
            "cache": {"status": "ok", "latency_ms": "<ms>"},
        }})
    );
    assert!(answer.latency("queue") >= TIMEOUT, "{answer:?}");
    // The upper bound tells the check's own timeout from the layer's default (2 s) with room
    // for a loaded machine; the answer's promptness itself is a bench figure, not a test's.
    assert!(
        answer.elapsed >= TIMEOUT && answer.elapsed < HealthLayer::DEFAULT_TIMEOUT,
        "answered in {:?}, the check's timeout is {TIMEOUT:?}",
        answer.elapsed
    );
}

async fn explode() -> Result<(), CheckError> {
    panic!("a check panicked (on purpose)")
}

#[tokio::test]
async fn a_panicking_check_is_an_error_not_a_dropped_connection() {
    let layer = HealthLayer::new()
        .check("database", ok())
        .check("buggy", explode);
    let answer = health(layer).await;

    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.shape()["checks"]["buggy"],
        json!({"status": "error", "detail": "panic", "latency_ms": "<ms>"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_pass_through_untouched_and_never_wait_for_checks() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let hanging = HealthLayer::new().check("queue", move || {
        counted.fetch_add(1, Relaxed);
        std::future::pending::<Result<(), CheckError>>()
    });
    let plain = serve(app()).await;
    let layered = serve(app().layer(hanging)).await;
    let client = reqwest::Client::new();

    for (method, path) in [
        (reqwest::Method::GET, "/"),
        (reqwest::Method::HEAD, "/"),
        (reqwest::Method::GET, "/fails"),
        (reqwest::Method::GET, "/missing"),
        (reqwest::Method::POST, "/health"),
        (reqwest::Method::GET, "/health/"),
        (reqwest::Method::GET, "/HEALTH"),
    ] {
        let expected = send(&client, method.clone(), format!("http://{plain}{path}")).await;
        let answer = send(&client, method.clone(), format!("http://{layered}{path}")).await;
        assert_eq!(answer.status, expected.status, "{method} {path}");
        assert_eq!(
            without_date(&answer.headers),
            without_date(&expected.headers),
            "{method} {path}"
        );
        assert_eq!(answer.body, expected.body, "{method} {path}");
        assert!(
            answer.elapsed < HealthLayer::DEFAULT_TIMEOUT,
            "{method} {path} took {:?}, as if it waited for the hanging check",
            answer.elapsed
        );
    }
    assert_eq!(
        runs.load(Relaxed),
        0,
        "no request but the health route runs checks"
    );
}

fn without_date(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    headers.remove("date");
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_run_concurrently_so_the_slowest_sets_the_pace() {
    // Each check waits until all three have started: run one after another, the first would
    // wait for the others forever and fail at its timeout, so passing proves they overlap
    // whatever the machine's load.
    let started = Arc::new(tokio::sync::Barrier::new(3));
    let together = |name: &'static str| {
        let started = Arc::clone(&started);
        checks::from_fn(name, move || {
            let started = Arc::clone(&started);
            async move {
                started.wait().await;
                Ok::<_, CheckError>(())
            }
        })
        .with_timeout(Duration::from_secs(10))
    };
    let layer = HealthLayer::new()
        .with_check(together("a"))
        .with_check(together("b"))
        .with_check(together("c"));
    let addr = serve(app().layer(layer)).await;
    let client = reqwest::Client::new();

    let answer = send(
        &client,
        reqwest::Method::GET,
        format!("http://{addr}/health"),
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(
        answer.elapsed < Duration::from_secs(10),
        "the three checks waited for each other until their timeout: they ran one after another"
    );
}

/// A check that counts its runs and takes `delay`.
fn counted(runs: &Arc<AtomicUsize>, delay: Duration) -> checks::Check {
    let runs = Arc::clone(runs);
    checks::from_fn("counted", move || {
        runs.fetch_add(1, Relaxed);
        async move {
            tokio::time::sleep(delay).await;
            Ok::<_, CheckError>(())
        }
    })
}

#[tokio::test]
async fn within_the_ttl_a_result_is_reused() {
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = HealthLayer::new()
        .cache_for(Duration::from_secs(60))
        .with_check(counted(&runs, Duration::ZERO));
    let addr = serve(app().layer(layer)).await;

    let first = get_once(addr, "/health").await;
    let second = get_once(addr, "/health").await;

    assert_eq!(
        runs.load(Relaxed),
        1,
        "the second request within the TTL ran the check again"
    );
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(first.body, second.body);
}

#[tokio::test]
async fn without_a_ttl_every_request_runs_the_checks() {
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = HealthLayer::new().with_check(counted(&runs, Duration::ZERO));
    let addr = serve(app().layer(layer)).await;

    get_once(addr, "/health").await;
    get_once(addr, "/health").await;

    assert_eq!(runs.load(Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_evaluation() {
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = HealthLayer::new().with_check(counted(&runs, Duration::from_millis(300)));
    let addr = serve(app().layer(layer)).await;

    let answers = futures_join_all((0..5).map(|_| get_once(addr, "/health"))).await;

    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{answers:?}"
    );
    assert_eq!(
        runs.load(Relaxed),
        1,
        "five concurrent requests ran the check more than once"
    );
}

/// Runs the futures concurrently on the test's runtime, in order of their outputs.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn the_path_is_configurable_and_head_gets_the_headers_of_get() {
    let layer = HealthLayer::new().path("/healthz").check("database", ok());
    let addr = serve(app().layer(layer)).await;
    let client = reqwest::Client::new();

    let get = send(
        &client,
        reqwest::Method::GET,
        format!("http://{addr}/healthz"),
    )
    .await;
    let head = send(
        &client,
        reqwest::Method::HEAD,
        format!("http://{addr}/healthz"),
    )
    .await;
    let old = send(
        &client,
        reqwest::Method::GET,
        format!("http://{addr}/health"),
    )
    .await;

    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.body, "");
    assert_eq!(without_date(&head.headers), without_date(&get.headers));
    assert_eq!(
        head.headers["content-length"],
        get.body.len().to_string().as_str()
    );
    assert_eq!(
        old.status,
        StatusCode::NOT_FOUND,
        "/health is the app's again"
    );
}

#[tokio::test]
async fn ready_made_checks_probe_real_servers() {
    let target = serve(app()).await;
    let layer = HealthLayer::new()
        .with_check(checks::tcp("tcp-up", target))
        .with_check(checks::tcp("tcp-down", closed_port()))
        .with_check(checks::http_get("http-up", format!("http://{target}/")))
        .with_check(checks::http_get(
            "http-500",
            format!("http://{target}/fails"),
        ))
        .with_check(checks::http_get(
            "http-down",
            format!("http://{}/", closed_port()),
        ))
        .with_check(checks::http_get("http-bad-url", "not a url"));
    let answer = health(layer).await;

    let detail = |check: &str| answer.json()["checks"][check]["detail"].clone();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["checks"]["tcp-up"]["status"], "ok");
    assert_eq!(detail("tcp-down"), "std::io::error::Error");
    assert_eq!(answer.json()["checks"]["http-up"]["status"], "ok");
    assert_eq!(
        detail("http-500"),
        "watchpost::tower::checks::UnexpectedStatus"
    );
    assert_eq!(detail("http-down"), "reqwest::error::Error");
    assert_eq!(detail("http-bad-url"), "url::parser::ParseError");
}
