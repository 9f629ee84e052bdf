//! Tower layers for HTTP services (feature `tower`, on by default): [`HealthLayer`] answers a
//! health route from dependency checks, [`CaptureLayer`] reports handler panics and 5xx
//! responses as events.
//!
//! Both are hand-written `Layer` + `Service` pairs with named futures, in the shape of tower-http,
//! so they fit axum's `Router::layer`, `tower::ServiceBuilder` and plain hyper services alike,
//! and the SDK depends on no server stack.
//!
//! *Must never* touch a request or response that is not theirs: every request but `GET`/`HEAD`
//! on the health path goes through [`HealthLayer`] at the cost of one string comparison, and
//! [`CaptureLayer`] only reads the status of the responses it passes on (it turns a panic into
//! a `500`, since there is no response to pass on). Neither blocks the runtime: checks are
//! async, events are queued with `try_send`.
//!
//! # Response bodies
//!
//! The layers keep the wrapped service's response type, so they add no boxing and no body
//! conversion to the requests they pass through:
//!
//! - [`HealthLayer`] needs `ResBody: From<Bytes>` to write its JSON. axum's `Body` and
//!   `http_body_util::Full<Bytes>` qualify. For a service with another body type (a `String`, a
//!   `BoxBody`), map its responses into one of those first (`tower::util::MapResponseLayer`).
//! - [`CaptureLayer`] needs `ResBody: Default` for the empty `500` it answers a panic with;
//!   axum's `Body`, `Full`, `Empty` and `BoxBody` qualify.
//!
//! # With axum
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, extract::MatchedPath, routing::get};
//! use watchpost::tower::{CaptureLayer, HealthLayer, checks};
//!
//! let health = HealthLayer::new()
//!     .check("database", || async {
//!         // e.g. `sqlx::query("SELECT 1").execute(&pool).await?;`
//!         Ok::<_, std::io::Error>(())
//!     })
//!     .with_check(checks::tcp("cache", "127.0.0.1:6379").with_timeout(Duration::from_millis(500)))
//!     .cache_for(Duration::from_secs(5));
//!
//! // `Router::layer` runs after routing, so axum's `MatchedPath` is there to name the route.
//! let capture = CaptureLayer::new().route_with(|request| {
//!     let matched = request.extensions.get::<MatchedPath>()?;
//!     Some(matched.as_str().to_owned())
//! });
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(capture)
//!     .layer(health); // outermost: `/health` never reaches the router or the capture layer
//! ```

mod capture;
mod check;
pub mod checks;
mod health;

pub use capture::{CaptureFuture, CaptureLayer, CaptureService, RouteFn};
pub use check::{CheckError, CheckFuture, HealthCheck};
pub use health::{HealthFuture, HealthLayer, HealthService};

pub(crate) use capture::defer_panic;
