//! [`HealthLayer`]: answers `GET` and `HEAD` on one path by running every registered check
//! concurrently, each under its own timeout, and passes every other request straight through.
//!
//! Must never slow down or alter another request (one string comparison, no allocation, no
//! await), and never let the endpoint hammer a dependency: concurrent health requests share one
//! evaluation, and its result may be reused for [`HealthLayer::cache_for`].

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use ::tower::{Layer, Service};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use serde::{Serialize, Serializer};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::check::{CheckError, HealthCheck};
use super::checks;

/// A [`Layer`] that answers `GET` and `HEAD` on the health path (default `/health`) from the
/// registered checks, and passes every other request to the wrapped service untouched.
///
/// On a health request it runs all checks concurrently, each under its own timeout (default
/// 2 s), and answers `200` when all passed and `503` otherwise, with `application/json`:
///
/// ```json
/// {"status":"healthy","checks":{"database":{"status":"ok","latency_ms":5}}}
/// {"status":"degraded","checks":{"database":{"status":"ok","latency_ms":5},
///  "cache":{"status":"error","detail":"std::io::error::Error","latency_ms":1},
///  "search":{"status":"error","detail":"timeout","latency_ms":2000}}}
/// ```
///
/// - `detail` is the failing error's type name ([`CheckError`]), `"timeout"` for a check that ran
///   out of time and `"panic"` for one that panicked. The error's message is left out unless
///   [`expose_errors`](Self::expose_errors) is on: a health route is often public, and error
///   messages can name hosts, users or queries.
/// - `latency_ms` is how long the check took, on every check.
/// - Checks appear in the order they were registered. With no checks the answer is `200`
///   `{"status":"healthy","checks":{}}` (a liveness probe).
/// - `HEAD` gets the same status and headers with no body. Other methods on the health path go
///   to the wrapped service, as does every other path, `/` included.
/// - The response has `Cache-Control: no-store`, so that no proxy answers for the service.
///
/// Requests that arrive while an evaluation runs share it; with
/// [`cache_for`](Self::cache_for) its result is also reused for that long after it finished.
///
/// Needs a tokio runtime (for the timeouts), as axum and hyper-util servers have. The service
/// needs `ResBody: From<Bytes>` (see the [module docs](crate::tower#response-bodies)).
///
/// With axum, add it with `Router::layer` (it then also answers when no route matches the path)
/// or around the whole router with `ServiceBuilder`. The path is compared with the request's
/// path as the layer sees it, exactly: no trailing-slash or case folding, and inside a nested
/// router the path without the nesting prefix.
#[derive(Clone)]
pub struct HealthLayer {
    shared: Arc<Shared>,
}

/// The configuration and the latest evaluation, shared by every service the layer made.
struct Shared {
    config: Config,
    /// The running or most recent evaluation.
    latest: Mutex<Option<Arc<OnceCell<Report>>>>,
}

#[derive(Clone)]
struct Config {
    path: Cow<'static, str>,
    timeout: Duration,
    ttl: Duration,
    expose_errors: bool,
    checks: Vec<Arc<dyn HealthCheck>>,
}

impl HealthLayer {
    /// The path answered unless [`path`](Self::path) says otherwise.
    pub const DEFAULT_PATH: &'static str = "/health";

    /// How long a check may take unless [`timeout`](Self::timeout) or the check itself says
    /// otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// A layer answering `/health` with no checks, a 2 s timeout and no caching.
    pub fn new() -> HealthLayer {
        HealthLayer {
            shared: Arc::new(Shared::new(Config {
                path: Cow::Borrowed(Self::DEFAULT_PATH),
                timeout: Self::DEFAULT_TIMEOUT,
                ttl: Duration::ZERO,
                expose_errors: false,
                checks: Vec::new(),
            })),
        }
    }

    /// Answers on `path` instead of `/health`.
    ///
    /// # Panics
    ///
    /// If `path` does not start with `/` (it could never match a request).
    pub fn path(self, path: impl Into<Cow<'static, str>>) -> HealthLayer {
        let path = path.into();
        assert!(
            path.starts_with('/'),
            "health path {path:?} must start with '/'"
        );
        self.configure(|c| c.path = path)
    }

    /// How long each check may take, unless it sets its own ([`HealthCheck::timeout`],
    /// [`checks::Check::with_timeout`]). A check still running then is reported as
    /// `{"status":"error","detail":"timeout"}` and cancelled (its future is dropped).
    pub fn timeout(self, timeout: Duration) -> HealthLayer {
        self.configure(|c| c.timeout = timeout)
    }

    /// Reuses an evaluation's result for `ttl` after it finished, so that however often the
    /// route is hit, each check runs at most once per `ttl` plus its own duration. Zero (the
    /// default) still shares one evaluation among concurrent requests.
    pub fn cache_for(self, ttl: Duration) -> HealthLayer {
        self.configure(|c| c.ttl = ttl)
    }

    /// Adds each failed check's error message as `message` next to its `detail`. Off by default:
    /// messages can reveal internals to whoever can reach the route.
    pub fn expose_errors(self, expose: bool) -> HealthLayer {
        self.configure(|c| c.expose_errors = expose)
    }

    /// Registers a check named `name` that runs `check`, an async closure whose error is any
    /// [`std::error::Error`] or a [`CheckError`]:
    ///
    /// ```
    /// # use watchpost::tower::{CheckError, HealthLayer};
    /// HealthLayer::new().check("disk", || async {
    ///     tokio::fs::metadata("/var/lib/app").await?;
    ///     Ok::<_, CheckError>(())
    /// });
    /// ```
    ///
    /// Shorthand for `with_check(checks::from_fn(name, check))`.
    ///
    /// # Panics
    ///
    /// If a check with this name was registered already.
    pub fn check<F, Fut, E>(self, name: impl Into<String>, check: F) -> HealthLayer
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<CheckError>,
    {
        self.with_check(checks::from_fn(name, check))
    }

    /// Registers a check: one from [`checks`], or a type of your own.
    ///
    /// # Panics
    ///
    /// If a check with the same name was registered already.
    pub fn with_check(self, check: impl HealthCheck) -> HealthLayer {
        let known = self
            .shared
            .config
            .checks
            .iter()
            .any(|c| c.name() == check.name());
        assert!(
            !known,
            "health check {:?} is registered twice",
            check.name()
        );
        self.configure(|c| c.checks.push(Arc::new(check)))
    }

    /// Changes the configuration. A layer cloned before still shares our evaluations, so a
    /// changed layer gets its own.
    fn configure(mut self, change: impl FnOnce(&mut Config)) -> HealthLayer {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => change(&mut shared.config),
            None => {
                let mut config = self.shared.config.clone();
                change(&mut config);
                self.shared = Arc::new(Shared::new(config));
            }
        }
        self
    }
}

impl Default for HealthLayer {
    fn default() -> HealthLayer {
        HealthLayer::new()
    }
}

impl fmt::Debug for HealthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.config.fmt(f)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|c| c.name()).collect();
        f.debug_struct("HealthLayer")
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .field("cache_for", &self.ttl)
            .field("expose_errors", &self.expose_errors)
            .field("checks", &names)
            .finish()
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = HealthService<S>;

    fn layer(&self, inner: S) -> HealthService<S> {
        HealthService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`HealthLayer`] wraps around `S`: answers the health route, calls `S` for
/// everything else.
#[derive(Clone)]
pub struct HealthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> HealthService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for HealthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthService")
            .field("inner", &self.inner)
            .field("layer", &self.shared.config)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HealthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = HealthFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> HealthFuture<S::Future> {
        if request.uri().path() == self.shared.config.path {
            let head = match *request.method() {
                Method::GET => false,
                Method::HEAD => true,
                _ => return HealthFuture::inner(self.inner.call(request)),
            };
            let shared = Arc::clone(&self.shared);
            return HealthFuture {
                kind: Kind::Health {
                    answer: Box::pin(async move { shared.report().await.response(head) }),
                },
            };
        }
        HealthFuture::inner(self.inner.call(request))
    }
}

pin_project! {
    /// The response future of [`HealthService`]: the wrapped service's, or the health answer.
    pub struct HealthFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Health { answer: Pin<Box<dyn Future<Output = Response<Bytes>> + Send>> },
    }
}

impl<F> HealthFuture<F> {
    #[inline]
    fn inner(future: F) -> HealthFuture<F> {
        HealthFuture {
            kind: Kind::Inner { future },
        }
    }
}

impl<F, B, E> Future for HealthFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<Bytes>,
{
    type Output = Result<Response<B>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Health { answer } => answer.as_mut().poll(cx).map(|r| Ok(r.map(B::from))),
        }
    }
}

impl<F> fmt::Debug for HealthFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Health { .. } => "health",
        };
        f.debug_struct("HealthFuture").field("kind", &kind).finish()
    }
}

/// The outcome of one evaluation, rendered once and served to every request that shares it.
#[derive(Clone)]
struct Report {
    healthy: bool,
    body: Bytes,
    finished: Instant,
}

/// How one check ended.
#[derive(Debug)]
enum Outcome {
    Ok,
    Failed(CheckError),
    TimedOut,
    Panicked,
}

impl Shared {
    fn new(config: Config) -> Shared {
        Shared {
            config,
            latest: Mutex::new(None),
        }
    }

    /// The report of the running evaluation, of a fresh enough finished one, or of a new one.
    async fn report(&self) -> Report {
        let evaluation = {
            let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
            let reusable = latest.as_ref().filter(|e| {
                e.get()
                    .is_none_or(|r| r.finished.elapsed() < self.config.ttl)
            });
            match reusable {
                Some(evaluation) => Arc::clone(evaluation),
                None => Arc::clone(latest.insert(Arc::new(OnceCell::new()))),
            }
        };
        // Run by the first request; the others wait for it, and if it is cancelled (its client
        // went away), the next one in line runs the checks instead.
        evaluation.get_or_init(|| self.evaluate()).await.clone()
    }

    /// Runs every check concurrently on this task, each under its timeout and `catch_unwind`.
    async fn evaluate(&self) -> Report {
        let config = &self.config;
        let start = Instant::now();
        let mut running: Vec<_> = config
            .checks
            .iter()
            .map(|check| {
                let limit = check.timeout().unwrap_or(config.timeout);
                // `check()` is user code: call it inside the future, where a panic is caught.
                Some(Box::pin(tokio::time::timeout(limit, async move {
                    check.check().await
                })))
            })
            .collect();
        let mut outcomes: Vec<Option<(Outcome, Duration)>> = running.iter().map(|_| None).collect();
        poll_fn(|cx| {
            let mut pending = false;
            for (slot, outcome) in running.iter_mut().zip(&mut outcomes) {
                let Some(future) = slot else { continue };
                let ended = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => {
                        pending = true;
                        continue;
                    }
                    Ok(Poll::Ready(Ok(Ok(())))) => Outcome::Ok,
                    Ok(Poll::Ready(Ok(Err(err)))) => Outcome::Failed(err),
                    Ok(Poll::Ready(Err(_elapsed))) => Outcome::TimedOut,
                    Err(_panic) => Outcome::Panicked,
                };
                *outcome = Some((ended, start.elapsed()));
                *slot = None;
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        let results = config.checks.iter().zip(outcomes).map(|(check, outcome)| {
            let (outcome, latency) = outcome.expect("poll_fn ends once every check has ended");
            (check.name(), outcome, latency)
        });
        Report::render(results, config.expose_errors)
    }
}

impl Report {
    fn render<'a>(
        results: impl Iterator<Item = (&'a str, Outcome, Duration)>,
        expose_errors: bool,
    ) -> Report {
        let results: Vec<_> = results.collect();
        let healthy = results
            .iter()
            .all(|(_, outcome, _)| matches!(outcome, Outcome::Ok));
        let body = HealthJson {
            status: if healthy { "healthy" } else { "degraded" },
            checks: ChecksJson(
                results
                    .iter()
                    .map(|(name, outcome, latency)| {
                        let (status, detail, message) = match outcome {
                            Outcome::Ok => ("ok", None, None),
                            Outcome::Failed(err) => (
                                "error",
                                Some(err.type_name()),
                                expose_errors.then(|| err.message()),
                            ),
                            Outcome::TimedOut => ("error", Some("timeout"), None),
                            Outcome::Panicked => ("error", Some("panic"), None),
                        };
                        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
                        (
                            *name,
                            CheckJson {
                                status,
                                detail,
                                message,
                                latency_ms,
                            },
                        )
                    })
                    .collect(),
            ),
        };
        let body = serde_json::to_vec(&body).expect("strings and integers always serialize");
        Report {
            healthy,
            body: Bytes::from(body),
            finished: Instant::now(),
        }
    }

    fn response(&self, head: bool) -> Response<Bytes> {
        let body = if head {
            Bytes::new()
        } else {
            self.body.clone()
        };
        let mut response = Response::new(body);
        *response.status_mut() = if self.healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // What a `GET` would carry, for `HEAD` too (RFC 9110 §9.3.2).
        headers.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        response
    }
}

#[derive(Serialize)]
struct HealthJson<'a> {
    status: &'static str,
    checks: ChecksJson<'a>,
}

/// The `checks` object, in registration order.
struct ChecksJson<'a>(Vec<(&'a str, CheckJson<'a>)>);

impl Serialize for ChecksJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, check)| (name, check)))
    }
}

#[derive(Serialize)]
struct CheckJson<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    latency_ms: u64,
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    use ::tower::ServiceExt;
    use http_body_util::{BodyExt, Full};
    use serde_json::{Value, json};

    use super::*;

    /// A plain hyper-style service (no axum): `Full<Bytes>` bodies.
    fn app()
    -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
        ::tower::service_fn(|request: Request<()>| async move {
            let body = format!("app saw {} {}", request.method(), request.uri().path());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        })
    }

    async fn call(layer: &HealthLayer, method: Method, path: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        let response = layer.layer(app()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8(bytes.to_vec()).unwrap()));
        (status, body)
    }

    #[derive(Debug)]
    struct Broken;

    impl fmt::Display for Broken {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("it broke")
        }
    }

    impl std::error::Error for Broken {}

    #[tokio::test(start_paused = true)]
    async fn works_with_a_plain_tower_service_and_full_bodies() {
        let layer = HealthLayer::new()
            .path("/ready")
            .check("db", || async { Ok::<_, Broken>(()) });

        let (status, body) = call(&layer, Method::GET, "/ready").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"status": "healthy", "checks": {"db": {"status": "ok", "latency_ms": 0}}})
        );

        for (method, path) in [
            (Method::GET, "/health"),
            (Method::POST, "/ready"),
            (Method::GET, "/"),
        ] {
            let (status, body) = call(&layer, method.clone(), path).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, Value::String(format!("app saw {method} {path}")));
        }
    }

    async fn explode() -> Result<(), Broken> {
        panic!("a check panicked (on purpose)")
    }

    #[tokio::test(start_paused = true)]
    async fn failures_timeouts_and_panics_are_named_in_registration_order() {
        let layer = HealthLayer::new()
            .timeout(Duration::from_secs(1))
            .check("zeta", || async { Ok::<_, Broken>(()) })
            .check("broken", || async { Err(Broken) })
            .check("hangs", std::future::pending::<Result<(), Broken>>)
            .check("panics", explode)
            .with_check(
                checks::from_fn("slow", || async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, Broken>(())
                })
                .with_timeout(Duration::from_millis(100)),
            )
            .check("anyhow-like", || async {
                Err(CheckError::from_display("plain text"))
            });

        let (status, body) = call(&layer, Method::GET, "/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"status":"degraded","checks":{"#,
                r#""zeta":{"status":"ok","latency_ms":0},"#,
                r#""broken":{"status":"error","detail":"watchpost::tower::health::tests::Broken","latency_ms":0},"#,
                r#""hangs":{"status":"error","detail":"timeout","latency_ms":1000},"#,
                r#""panics":{"status":"error","detail":"panic","latency_ms":0},"#,
                r#""slow":{"status":"error","detail":"timeout","latency_ms":100},"#,
                r#""anyhow-like":{"status":"error","detail":"&str","latency_ms":0}}}"#,
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn messages_are_shown_only_when_exposed() {
        let layer = HealthLayer::new().check("broken", || async { Err(Broken) });
        let (_, body) = call(&layer, Method::GET, "/health").await;
        assert_eq!(body["checks"]["broken"].get("message"), None);

        let (_, body) = call(&layer.expose_errors(true), Method::GET, "/health").await;
        assert_eq!(body["checks"]["broken"]["message"], "it broke");
    }

    #[tokio::test(start_paused = true)]
    async fn head_has_the_headers_of_get_and_no_body() {
        let layer = HealthLayer::new().check("db", || async { Ok::<_, Broken>(()) });
        let get = Request::get("/health").body(()).unwrap();
        let get = layer.layer(app()).oneshot(get).await.unwrap();
        let head = Request::head("/health").body(()).unwrap();
        let head = layer.layer(app()).oneshot(head).await.unwrap();
        assert_eq!(head.status(), get.status());
        assert_eq!(head.headers(), get.headers());
        assert_eq!(get.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(get.headers()[CACHE_CONTROL], "no-store");
        assert!(
            head.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .is_empty()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_result_is_reused_within_the_ttl_and_not_after() {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let layer =
            HealthLayer::new()
                .cache_for(Duration::from_secs(5))
                .check("counted", || async {
                    RUNS.fetch_add(1, Relaxed);
                    Ok::<_, Broken>(())
                });
        call(&layer, Method::GET, "/health").await;
        tokio::time::advance(Duration::from_secs(4)).await;
        call(&layer, Method::GET, "/health").await;
        assert_eq!(RUNS.load(Relaxed), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        call(&layer, Method::GET, "/health").await;
        assert_eq!(RUNS.load(Relaxed), 2);
    }

    #[test]
    fn reconfiguring_a_shared_layer_does_not_share_its_cache() {
        let first = HealthLayer::new();
        let second = first.clone().path("/other");
        assert!(!Arc::ptr_eq(&first.shared, &second.shared));
        assert_eq!(first.shared.config.path, "/health");
        let alone = HealthLayer::new();
        let before = Arc::as_ptr(&alone.shared);
        assert_eq!(Arc::as_ptr(&alone.path("/x").shared), before);
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn names_are_unique() {
        let ok = || async { Ok::<_, Broken>(()) };
        let _ = HealthLayer::new().check("db", ok).check("db", ok);
    }
}
