//! `CaptureLayer` through real HTTP: an axum app on an ephemeral loopback port, asked with
//! reqwest, reporting to the recording collector of `support/`. The SDK client is a process
//! global, so this binary holds only these tests and each runs under `serial()`.
#![cfg(feature = "tower")]

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::MatchedPath;
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use support::{Recorder, serial};
use watchpost::protocol::{Event, Level, Message};
use watchpost::tower::CaptureLayer;
use watchpost::{ClientGuard, ClientOptions};

fn init(server: &Recorder) -> ClientGuard {
    watchpost::init(ClientOptions {
        dsn: Some(server.dsn()),
        ..Default::default()
    })
}

/// Names routes by axum's `MatchedPath`, as the docs tell axum users to.
fn matched_path(request: &http::request::Parts) -> Option<String> {
    Some(request.extensions.get::<MatchedPath>()?.as_str().to_owned())
}

fn app(capture: CaptureLayer) -> Router {
    Router::new()
        .route("/ok", get(|| async { ([("x-app", "yes")], "fine") }))
        .route(
            "/unavailable/{id}",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "5")],
                    "try later",
                )
            }),
        )
        .route("/panics", get(panicking_handler))
        .layer(capture)
}

async fn panicking_handler() -> &'static str {
    panic!("handler panicked (on purpose)")
}

/// One response, as the client saw it.
#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// Serves `app` on a fresh runtime, sends `GET` for each path, shuts the server down and
/// returns the answers.
fn get_all(app: Router, paths: &[&str]) -> Vec<Answer> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest::Client::new();
        let mut answers = Vec::new();
        for path in paths {
            let response = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
            let mut headers = response.headers().clone();
            headers.remove("date");
            answers.push(Answer {
                status: response.status(),
                headers,
                body: response.text().await.unwrap(),
            });
        }
        answers
    })
}

/// Runs `paths` against `app` with the SDK reporting to a fresh recorder; returns the answers
/// and every event the recorder accepted once the SDK was shut down (which flushes).
fn reported(app: impl FnOnce() -> Router, paths: &[&str]) -> (Vec<Answer>, Vec<Event>) {
    let server = Recorder::start();
    let guard = init(&server);
    let answers = get_all(app(), paths);
    drop(guard);
    (answers, support::events(&server.requests()))
}

#[test]
fn a_5xx_response_is_reported_with_method_route_and_status_and_passed_on_unchanged() {
    let _serial = serial();
    let unreported = get_all(app(CaptureLayer::new()), &["/unavailable/7"]);

    let capture = CaptureLayer::new().route_with(matched_path);
    let (answers, events) = reported(|| app(capture), &["/unavailable/7"]);

    assert_eq!(
        answers, unreported,
        "the client got the handler's own response"
    );
    assert_eq!(answers[0].status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.level, Some(Level::Error));
    assert_eq!(
        event.message,
        Some(Message::Text("GET /unavailable/{id} → 503".into()))
    );
    assert_eq!(event.transaction.as_deref(), Some("/unavailable/{id}"));
    assert_eq!(event.culprit.as_deref(), Some("GET /unavailable/{id}"));
    assert_eq!(
        event.tags,
        Some(
            json!({"http.method": "GET", "http.route": "/unavailable/{id}", "http.status_code": "503"})
        )
    );
    let http = &event.contexts.as_ref().expect("contexts")["http"];
    assert!(http["duration_ms"].is_u64(), "{http}");
    let mut http = http.clone();
    http["duration_ms"] = Value::Null;
    assert_eq!(
        http,
        json!({"method": "GET", "route": "/unavailable/{id}", "status_code": 503, "duration_ms": null})
    );
}

#[test]
fn without_route_with_the_route_is_the_uri_path() {
    let _serial = serial();
    let (_, events) = reported(|| app(CaptureLayer::new()), &["/unavailable/7"]);

    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        events[0].message,
        Some(Message::Text("GET /unavailable/7 → 503".into()))
    );
}

#[test]
fn success_and_client_errors_are_not_reported() {
    let _serial = serial();
    let unreported = get_all(app(CaptureLayer::new()), &["/ok", "/missing"]);

    let (answers, events) = reported(|| app(CaptureLayer::new()), &["/ok", "/missing"]);

    assert_eq!(answers, unreported);
    assert_eq!(answers[0].status, StatusCode::OK);
    assert_eq!(answers[1].status, StatusCode::NOT_FOUND);
    assert_eq!(events, [], "nothing to report");
}

#[test]
fn a_panicking_handler_answers_500_and_is_reported_once() {
    let _serial = serial();
    let capture = CaptureLayer::new().route_with(matched_path);
    let (answers, events) = reported(|| app(capture), &["/panics", "/ok"]);

    assert_eq!(answers[0].status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answers[0].body, "");
    assert_eq!(answers[1].status, StatusCode::OK, "the server lives on");
    assert_eq!(events.len(), 1, "{events:#?}");
    let exception = &events[0].exceptions()[0];
    assert_eq!(exception.ty.as_deref(), Some("panic"));
    assert_eq!(
        exception.value.as_deref(),
        Some("handler panicked (on purpose)")
    );
    assert!(
        exception.stacktrace.is_some(),
        "the panic hook's backtrace is kept"
    );
    // The panic hook deferred its event to the layer, which added the request.
    let event = &events[0];
    assert_eq!(event.level, Some(Level::Error));
    assert_eq!(event.transaction.as_deref(), Some("/panics"));
    assert_eq!(
        event.tags,
        Some(json!({"http.method": "GET", "http.route": "/panics", "http.status_code": "500"}))
    );
}

#[test]
fn with_the_sdk_disabled_responses_pass_and_a_panic_still_answers_500() {
    let _serial = serial();
    let server = Recorder::start();
    drop(init(&server)); // enabled once, then shut down: the panic hook stays installed
    assert!(!watchpost::is_enabled());

    let answers = get_all(
        app(CaptureLayer::new()),
        &["/unavailable/7", "/panics", "/ok"],
    );

    let statuses: Vec<_> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(statuses, [503, 500, 200]);
    assert_eq!(answers[0].body, "try later");
    assert_eq!(support::events(&server.requests()), []);
}
