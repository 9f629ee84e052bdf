//! [`CaptureLayer`]: reports handler panics and 5xx responses as `error` events carrying the
//! request's method, route, status and duration.
//!
//! Must never change a response it passes on (a panic, which has none, becomes an empty `500`),
//! block (events are queued with `try_send`), or cost more than one relaxed atomic load per
//! request while the SDK is disabled.
//!
//! # Panics and the panic hook
//!
//! The SDK's panic hook sees a panic before this layer catches it. While this layer polls a
//! handler on a thread (and the SDK is enabled) it marks the thread, and the hook hands the
//! event it built (message, location, backtrace) to [`defer_panic`] instead of sending it and
//! flushing: the layer adds the request and sends it as one `error` event, and no runtime thread
//! waits on a flush for a panic the process survives. A panic the handler catches itself is sent
//! as the hook built it. Should the hook not defer (a hook of its own replaced ours, or it
//! predates [`defer_panic`]), the hook's event is the report and the layer sends none, so a
//! panic is never reported twice.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use ::tower::{Layer, Service};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use serde_json::{Map, Value, json};

use crate::capture::new_event;
use crate::client;
use crate::protocol::{Event, Level, Message};

/// Names the route of a request for [`CaptureLayer::route_with`]; `None` falls back to the
/// URI's path.
pub type RouteFn = fn(&Parts) -> Option<String>;

/// A [`Layer`] that reports handler panics and `5xx` responses as `error` events.
///
/// An event's message is `"GET /users/{id} → 503"`; it carries the tags `http.method`,
/// `http.route` and `http.status_code`, a `http` context with `method`, `route`,
/// `status_code` and `duration_ms`, and the route as its `transaction`. A panic is reported
/// with its message and backtrace (from the SDK's panic hook) and answered with an empty `500`,
/// as `tower_http::catch_panic` does, with or without the SDK enabled. Every response is passed
/// on as it is; errors of the wrapped service (not responses) pass through unreported.
///
/// The route defaults to the URI's path, which for `/users/42` makes one issue per user. Name
/// routes by their pattern with [`route_with`](Self::route_with); with axum, add the layer with
/// `Router::layer` (it then runs after routing) and read `MatchedPath`:
///
/// ```
/// use axum::{Router, extract::MatchedPath, routing::get};
/// use watchpost::tower::CaptureLayer;
///
/// let capture = CaptureLayer::new().route_with(|request| {
///     let matched = request.extensions.get::<MatchedPath>()?;
///     Some(matched.as_str().to_owned())
/// });
/// let app: Router = Router::new().route("/users/{id}", get(|| async { "user" })).layer(capture);
/// ```
///
/// The service needs `ResBody: Default` (for the panic's `500`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureLayer {
    route_of: Option<RouteFn>,
}

impl CaptureLayer {
    /// A layer naming routes by the URI's path.
    pub fn new() -> CaptureLayer {
        CaptureLayer::default()
    }

    /// Names each request's route with `route_of`, called with the request's head before the
    /// wrapped service sees it, and only while the SDK is enabled.
    pub fn route_with(self, route_of: RouteFn) -> CaptureLayer {
        CaptureLayer {
            route_of: Some(route_of),
        }
    }
}

impl<S> Layer<S> for CaptureLayer {
    type Service = CaptureService<S>;

    fn layer(&self, inner: S) -> CaptureService<S> {
        CaptureService {
            inner,
            route_of: self.route_of,
        }
    }
}

/// The service [`CaptureLayer`] wraps around `S`.
#[derive(Debug, Clone, Copy)]
pub struct CaptureService<S> {
    inner: S,
    route_of: Option<RouteFn>,
}

impl<S> CaptureService<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CaptureService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = CaptureFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> CaptureFuture<S::Future> {
        if !client::is_enabled() {
            let kind = match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
                Ok(future) => Kind::Inner { future },
                Err(_panic) => Kind::Panicked,
            };
            return CaptureFuture {
                kind,
                request: None,
            };
        }
        let (seen, request) = Seen::read(request, self.route_of);
        let (called, deferred) = catching(|| self.inner.call(request));
        let kind = match called {
            Ok(future) => {
                if let Some(event) = deferred {
                    client::capture_event(event); // caught inside `call`, not by us
                }
                Kind::Inner { future }
            }
            Err(_panic) => {
                seen.report_panic(deferred);
                Kind::Panicked
            }
        };
        CaptureFuture {
            kind,
            request: Some(seen),
        }
    }
}

pin_project! {
    /// The response future of [`CaptureService`].
    pub struct CaptureFuture<F> {
        #[pin]
        kind: Kind<F>,
        // What the report needs; `None` while the SDK is disabled or once reported.
        request: Option<Seen>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Panicked,
    }
}

impl<F, B, E> Future for CaptureFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = match this.kind.project() {
            KindProj::Inner { future } => future,
            KindProj::Panicked => return Poll::Ready(Ok(panic_response())),
        };
        let Some(seen) = this.request else {
            return match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                Ok(polled) => polled,
                Err(_panic) => Poll::Ready(Ok(panic_response())),
            };
        };
        let (polled, deferred) = catching(|| future.poll(cx));
        let polled = match polled {
            Ok(polled) => polled,
            Err(_panic) => {
                seen.report_panic(deferred);
                *this.request = None;
                return Poll::Ready(Ok(panic_response()));
            }
        };
        let failed = match &polled {
            Poll::Ready(Ok(response)) => {
                Some(response.status()).filter(StatusCode::is_server_error)
            }
            _ => None,
        };
        match (deferred, failed) {
            // A panic caught inside (say by tower_http's `CatchPanic`) that became this 5xx:
            // one event for both, the panic's, with the request.
            (Some(mut event), Some(status)) => {
                seen.describe(&mut event, status);
                client::capture_event(event);
            }
            // A panic the handler caught and answered well, or recovered from and goes on.
            (Some(event), None) => {
                client::capture_event(event);
            }
            (None, Some(status)) => seen.report_status(status),
            (None, None) => {}
        }
        if polled.is_ready() {
            *this.request = None;
        }
        polled
    }
}

impl<F> fmt::Debug for CaptureFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureFuture").finish_non_exhaustive()
    }
}

/// What the layer noted about a request while the SDK was enabled.
struct Seen {
    method: Method,
    route: String,
    start: Instant,
    /// The request's path and headers, for the event's `request` interface.
    request: Value,
}

impl Seen {
    fn read<B>(request: Request<B>, route_of: Option<RouteFn>) -> (Seen, Request<B>) {
        let start = Instant::now();
        let method = request.method().clone();
        let described = describe_request(request.method(), request.uri(), request.headers());
        let Some(route_of) = route_of else {
            let route = request.uri().path().to_owned();
            return (
                Seen {
                    method,
                    route,
                    start,
                    request: described,
                },
                request,
            );
        };
        let (parts, body) = request.into_parts();
        let route = route_of(&parts).unwrap_or_else(|| parts.uri.path().to_owned());
        (
            Seen {
                method,
                route,
                start,
                request: described,
            },
            Request::from_parts(parts, body),
        )
    }

    fn report_status(&self, status: StatusCode) {
        let mut event = new_event(Level::Error);
        event.message = Some(Message::Text(format!(
            "{} {} → {}",
            self.method,
            self.route,
            status.as_u16()
        )));
        self.describe(&mut event, status);
        client::capture_event(event);
    }

    /// Sends the event the panic hook deferred to us, with the request added. Without one, the
    /// hook has reported the panic itself (see the module docs).
    fn report_panic(&self, deferred: Option<Event>) {
        if let Some(mut event) = deferred {
            self.describe(&mut event, StatusCode::INTERNAL_SERVER_ERROR);
            client::capture_event(event);
        }
    }

    /// Adds the request to `event`, an `error`: a panic the process survived is not `fatal`.
    fn describe(&self, event: &mut Event, status: StatusCode) {
        let (method, route, status) = (self.method.as_str(), self.route.as_str(), status.as_u16());
        let duration_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        event.level = Some(Level::Error);
        event.transaction = Some(route.to_owned());
        event.culprit = Some(format!("{method} {route}"));
        let tags = event.tags.get_or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(tags) = tags {
            tags.insert("http.method".to_owned(), method.into());
            tags.insert("http.route".to_owned(), route.into());
            tags.insert("http.status_code".to_owned(), status.to_string().into());
        }
        event
            .other
            .insert("request".to_owned(), self.request.clone());
        event.contexts.get_or_insert_with(Map::new).insert(
            "http".to_owned(),
            json!({"method": method, "route": route, "status_code": status, "duration_ms": duration_ms}),
        );
    }
}

/// Headers never sent with an event: they carry credentials.
const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-sentry-auth",
];

/// Sentry's `request` interface for a request: method, path (the query is left out: it may
/// carry tokens) and headers without [`SECRET_HEADERS`] (values that are not text are left
/// out too).
fn describe_request(method: &Method, uri: &http::Uri, headers: &http::HeaderMap) -> Value {
    let headers: Map<String, Value> = headers
        .iter()
        .filter(|(name, _)| !SECRET_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.into())))
        .collect();
    json!({ "method": method.as_str(), "url": uri.path(), "headers": headers })
}

fn panic_response<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

thread_local! {
    /// Set while a `CaptureLayer` polls on this thread with the SDK enabled: a panic raised now
    /// will be caught by it.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The event the panic hook deferred to the layer polling on this thread.
    static DEFERRED: RefCell<Option<Event>> = const { RefCell::new(None) };
}

/// Runs `f` under `catch_unwind` with this thread marked as catching; returns what it returned
/// or the panic, and the event the panic hook deferred meanwhile (from a panic we caught or one
/// caught inside `f`).
fn catching<R>(f: impl FnOnce() -> R) -> (std::thread::Result<R>, Option<Event>) {
    let outer = CATCHING.try_with(|c| c.replace(true)).unwrap_or(false);
    let result = catch_unwind(AssertUnwindSafe(f));
    let _ = CATCHING.try_with(|c| c.set(outer));
    let deferred = DEFERRED
        .try_with(|d| d.try_borrow_mut().ok().and_then(|mut d| d.take()))
        .ok()
        .flatten();
    (result, deferred)
}

/// For the SDK's panic hook, on the panicking thread: when a `CaptureLayer` on this thread will
/// catch the panic, keeps `event` for it and returns `None` (the layer adds the request and
/// sends it; the process lives on, so there is nothing to flush or mark failed). Otherwise
/// gives `event` back for the hook to send as usual.
///
/// Safe to call from a hook: it takes no lock, never waits, and cannot panic.
pub(crate) fn defer_panic(event: Event) -> Option<Event> {
    // Under `panic = "abort"` nothing unwinds to the layer: the hook must send and flush.
    if !cfg!(panic = "unwind") || !CATCHING.try_with(Cell::get).unwrap_or(false) {
        return Some(event);
    }
    let mut event = Some(event);
    let _ = DEFERRED.try_with(|deferred| {
        if let Ok(mut deferred) = deferred.try_borrow_mut() {
            // A second panic before the layer took the first: the hook reports it itself.
            if deferred.is_none() {
                *deferred = event.take();
            }
        }
    });
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event the test can tell apart from others.
    fn event(name: &str) -> Event {
        Event {
            message: Some(Message::Text(name.to_owned())),
            ..new_event(Level::Fatal)
        }
    }

    fn name(event: Option<Event>) -> Option<String> {
        event.map(|e| match e.message {
            Some(Message::Text(text)) => text,
            other => panic!("unexpected message {other:?}"),
        })
    }

    #[test]
    fn outside_a_layer_the_hook_keeps_its_event() {
        assert_eq!(name(defer_panic(event("a"))).as_deref(), Some("a"));
    }

    #[test]
    fn inside_a_layer_the_event_waits_for_the_layer() {
        let (result, deferred) = catching(|| defer_panic(event("a")));
        assert_eq!(
            name(result.unwrap()),
            None,
            "the hook was told to leave it to the layer"
        );
        assert_eq!(name(deferred).as_deref(), Some("a"));
        assert_eq!(
            name(defer_panic(event("b"))).as_deref(),
            Some("b"),
            "the mark is cleared"
        );
    }

    #[test]
    fn a_second_panic_before_the_layer_took_the_first_is_the_hooks() {
        let (result, deferred) = catching(|| (defer_panic(event("a")), defer_panic(event("b"))));
        let (first, second) = result.unwrap();
        assert_eq!((name(first), name(second).as_deref()), (None, Some("b")));
        assert_eq!(name(deferred).as_deref(), Some("a"));
    }

    #[test]
    fn the_innermost_layer_takes_the_event_and_the_outer_stays_marked() {
        let (outer, outer_deferred) = catching(|| {
            let (_, inner_deferred) = catching(|| defer_panic(event("inner")));
            let still_marked = defer_panic(event("outer"));
            (name(inner_deferred), name(still_marked))
        });
        assert_eq!(outer.unwrap(), (Some("inner".to_owned()), None));
        assert_eq!(name(outer_deferred).as_deref(), Some("outer"));
    }

    #[test]
    fn a_caught_panic_is_returned_with_the_deferred_event() {
        let (result, deferred) = catching(|| {
            assert!(defer_panic(event("a")).is_none());
            panic!("caught by the layer (on purpose)");
        });
        assert!(result.is_err());
        assert_eq!(name(deferred).as_deref(), Some("a"));
    }

    #[test]
    fn describe_adds_the_request_to_an_event() {
        let request = Request::post("/users/7?token=secret")
            .header("user-agent", "curl/8")
            .header("cookie", "session=1")
            .header("authorization", "Bearer x")
            .body(())
            .unwrap();
        let (seen, _) = Seen::read(request, Some(|_: &Parts| Some("/users/{id}".to_owned())));
        let mut event = event("panic");
        event.tags = Some(serde_json::json!({"kept": "yes"}));
        seen.describe(&mut event, StatusCode::BAD_GATEWAY);
        assert_eq!(event.level, Some(Level::Error));
        assert_eq!(event.culprit.as_deref(), Some("POST /users/{id}"));
        assert_eq!(
            event.tags,
            Some(serde_json::json!({"kept": "yes", "http.method": "POST",
                "http.route": "/users/{id}", "http.status_code": "502"}))
        );
        let http = &event.contexts.unwrap()["http"];
        assert_eq!(http["status_code"], 502);
        assert_eq!(http["route"], "/users/{id}");
        assert_eq!(
            event.other["request"],
            serde_json::json!({"method": "POST", "url": "/users/7",
                "headers": {"user-agent": "curl/8"}}),
            "no cookie, no authorization, no query"
        );
    }
}
