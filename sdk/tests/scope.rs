//! The scope as events carry it, recorded by the loopback server of `support/`: what
//! `configure_scope` sets, `with_scope` across `.await`s and between concurrent tokio tasks
//! (no leakage either way), the breadcrumb ring, the default contexts, and the request that
//! `CaptureLayer` adds. The SDK client and the process-wide scope are globals: every test runs
//! under `serial()` and clears the scope first.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Recorder, serial};
use watchpost::protocol::{Event, Level, Message};
use watchpost::{Breadcrumb, ClientGuard, ClientOptions, MAX_BREADCRUMBS, User};

fn init(server: &Recorder) -> ClientGuard {
    watchpost::configure_scope(watchpost::Scope::clear);
    watchpost::init(ClientOptions {
        dsn: Some(server.dsn()),
        release: Some("shop@2.0.0".into()),
        environment: Some("staging".into()),
        server_name: Some("web-1".into()),
        ..Default::default()
    })
}

fn text(event: &Event) -> &str {
    match &event.message {
        Some(Message::Text(text)) => text,
        other => panic!("a text message, not {other:?}"),
    }
}

fn tag<'a>(event: &'a Event, key: &str) -> Option<&'a str> {
    event.tags.as_ref()?.get(key)?.as_str()
}

fn breadcrumbs(event: &Event) -> Vec<String> {
    let values = event.other.get("breadcrumbs").map(|b| &b["values"]);
    let values = values
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    values
        .iter()
        .map(|b| b["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn every_event_carries_the_scope_release_environment_server_and_default_contexts() {
    let _serial = serial();
    let server = Recorder::start();
    let _guard = init(&server);
    watchpost::configure_scope(|scope| {
        scope.set_tag("region", "eu-central-1");
        scope.set_user(Some(User {
            id: Some("42".into()),
            email: Some("ada@example.com".into()),
            ..Default::default()
        }));
        scope.set_extra("cart_items", 3);
        scope.set_context("queue", json!({"name": "orders", "depth": 17}));
    });
    watchpost::add_breadcrumb(Breadcrumb::new("cart loaded", Level::Info).category("cart"));
    watchpost::capture_message("checkout failed", Level::Error);

    let event = server.wait_events(1).remove(0);
    assert_eq!(tag(&event, "region"), Some("eu-central-1"));
    assert_eq!(
        event.other["user"],
        json!({"id": "42", "email": "ada@example.com"})
    );
    assert_eq!(event.other["extra"], json!({"cart_items": 3}));
    let contexts = event.contexts.as_ref().expect("contexts");
    assert_eq!(contexts["queue"], json!({"name": "orders", "depth": 17}));
    assert_eq!(contexts["os"]["name"], std::env::consts::OS);
    assert_eq!(contexts["runtime"]["name"], "rustc");
    assert!(
        contexts["runtime"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{contexts:?}"
    );
    assert_eq!(contexts["device"]["arch"], std::env::consts::ARCH);
    assert_eq!(event.release.as_deref(), Some("shop@2.0.0"));
    assert_eq!(event.environment.as_deref(), Some("staging"));
    assert_eq!(event.server_name.as_deref(), Some("web-1"));
    assert_eq!(breadcrumbs(&event), ["cart loaded"]);
    assert_eq!(event.other["breadcrumbs"]["values"][0]["category"], "cart");
}

#[test]
fn the_breadcrumb_ring_sends_the_newest_hundred() {
    let _serial = serial();
    let server = Recorder::start();
    let _guard = init(&server);
    for i in 0..MAX_BREADCRUMBS + 20 {
        watchpost::add_breadcrumb(Breadcrumb::new(format!("step {i}"), Level::Debug));
    }
    watchpost::capture_message("after many steps", Level::Warning);
    let event = server.wait_events(1).remove(0);
    let trail = breadcrumbs(&event);
    assert_eq!(trail.len(), MAX_BREADCRUMBS);
    assert_eq!(trail[0], "step 20");
    assert_eq!(
        trail[MAX_BREADCRUMBS - 1],
        format!("step {}", MAX_BREADCRUMBS + 19)
    );
}

/// One request handler: its own scope, changed after an `.await`, a breadcrumb, more awaits
/// (during which the other handlers run on other threads), then an event.
async fn handle(order: u32) {
    watchpost::with_scope(
        |scope| scope.set_tag("order", order.to_string()),
        async move {
            tokio::time::sleep(Duration::from_millis(u64::from(order % 3) * 5)).await;
            watchpost::configure_scope(|scope| scope.set_tag("step", format!("paid-{order}")));
            watchpost::add_breadcrumb(Breadcrumb::new(format!("order {order} paid"), Level::Info));
            for _ in 0..3 {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            watchpost::capture_message(&format!("order {order} failed"), Level::Error);
        },
    )
    .await;
}

#[test]
fn with_scope_follows_its_task_across_awaits_and_never_leaks_into_another() {
    let _serial = serial();
    let server = Recorder::start();
    let _guard = init(&server);
    watchpost::configure_scope(|scope| scope.set_tag("service", "shop"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    const TASKS: u32 = 16;
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|order| tokio::spawn(handle(order)))
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    watchpost::capture_message("outside any task", Level::Info);

    let events = server.wait_events(TASKS as usize + 1);
    assert_eq!(events.len(), TASKS as usize + 1);
    for event in &events {
        assert_eq!(
            tag(event, "service"),
            Some("shop"),
            "the process scope is inherited"
        );
        let message = text(event);
        if message == "outside any task" {
            assert_eq!(tag(event, "order"), None, "a task's tag leaked out");
            assert_eq!(
                tag(event, "step"),
                None,
                "a task's configure_scope leaked out"
            );
            assert!(breadcrumbs(event).is_empty(), "{:?}", breadcrumbs(event));
            continue;
        }
        let order = message
            .strip_prefix("order ")
            .and_then(|m| m.strip_suffix(" failed"))
            .expect("a handler's event");
        assert_eq!(tag(event, "order"), Some(order), "{message}");
        assert_eq!(tag(event, "step"), Some(format!("paid-{order}").as_str()));
        assert_eq!(breadcrumbs(event), [format!("order {order} paid")]);
    }
}

#[cfg(feature = "tower")]
#[test]
fn capture_layer_adds_the_request_without_cookies_or_credentials() {
    use axum::Router;
    use axum::routing::get;
    use http::StatusCode;
    use watchpost::tower::CaptureLayer;

    let _serial = serial();
    let server = Recorder::start();
    let _guard = init(&server);
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|| async { (StatusCode::BAD_GATEWAY, "upstream down") }),
        )
        .layer(CaptureLayer::new());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let response = reqwest::Client::new()
            .get(format!("http://{addr}/orders/7?token=abc"))
            .header("cookie", "session=secret")
            .header("authorization", "Bearer secret")
            .header("x-request-id", "r-1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    });
    let event = server.wait_events(1).remove(0);
    let request = &event.other["request"];
    assert_eq!(request["method"], "GET");
    assert_eq!(request["url"], "/orders/7");
    let headers = request["headers"].as_object().expect("headers");
    assert_eq!(headers["x-request-id"], "r-1");
    assert!(!headers.contains_key("cookie"), "{headers:?}");
    assert!(!headers.contains_key("authorization"), "{headers:?}");
    assert!(!request.to_string().contains("secret"), "{request}");
}
