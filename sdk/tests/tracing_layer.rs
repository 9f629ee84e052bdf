//! The `tracing` layer with a real `tracing_subscriber` registry, reporting to the loopback
//! recorder of `support/`: an `error!` inside a span inside a `#[monitored_job]` run is one
//! event with the span stack, the earlier `info!`s as breadcrumbs and the link to the run;
//! levels below the thresholds send nothing. Each test installs the subscriber for its own
//! thread only (`with_default`) and runs under `serial()` (the SDK client is global).
#![cfg(feature = "tracing")]

mod support;

use std::error::Error;
use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Recorder, serial};
use tracing_subscriber::prelude::*;
use watchpost::protocol::{Event, Level, Message};
use watchpost::{ClientGuard, ClientOptions, monitored_job};

fn init(server: &Recorder) -> ClientGuard {
    watchpost::configure_scope(watchpost::Scope::clear);
    watchpost::init(ClientOptions {
        dsn: Some(server.dsn()),
        ..Default::default()
    })
}

#[derive(Debug)]
struct ImportError(std::io::Error);

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("order import failed")
    }
}

impl Error for ImportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

#[monitored_job(schedule = "*/5 * * * *")]
fn import_orders() -> usize {
    tracing::info!(batch = 3, "fetching orders");
    let fetch = tracing::info_span!("fetch", shop = "eu-1");
    let _in_fetch = fetch.enter();
    tracing::info!("page 1 fetched");
    tracing::debug!("below the breadcrumb level: not recorded");
    let err = ImportError(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "shop API reset the connection",
    ));
    tracing::error!(
        error = &err as &(dyn Error + 'static),
        tags.shop = "eu-1",
        orders = 17,
        "could not import orders"
    );
    17
}

fn message(event: &Event) -> Option<&str> {
    match &event.message {
        Some(Message::Text(text)) => Some(text),
        _ => None,
    }
}

#[test]
fn an_error_in_a_span_in_a_job_is_one_event_with_spans_breadcrumbs_and_the_run() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);
    let subscriber = tracing_subscriber::registry().with(watchpost::tracing::layer());
    let imported = tracing::subscriber::with_default(subscriber, import_orders);
    assert_eq!(imported, 17);
    assert!(guard.flush(Duration::from_secs(5)));

    let requests = server.requests();
    let events = support::events(&requests);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    let check_ins = support::check_ins(&requests);
    assert_eq!(check_ins.len(), 2, "in_progress and ok: {check_ins:?}");
    let run_id = check_ins[0]
        .check_in_id
        .expect("a check-in id")
        .simple()
        .to_string();

    assert_eq!(event.level, Some(Level::Error));
    assert_eq!(message(event), Some("could not import orders"));
    assert_eq!(event.logger.as_deref(), Some("tracing_layer"));
    let chain: Vec<_> = event
        .exceptions()
        .iter()
        .map(|e| e.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        chain,
        ["shop API reset the connection", "order import failed"]
    );
    assert_eq!(event.tags, Some(json!({"shop": "eu-1"})));
    assert_eq!(event.other["extra"]["orders"], 17);

    let contexts = event.contexts.as_ref().expect("contexts");
    assert_eq!(
        contexts["monitor"],
        json!({"slug": "import_orders", "check_in_id": run_id}),
        "linked to its run"
    );
    let spans = contexts["tracing"]["spans"]
        .as_array()
        .expect("the span stack");
    let names: Vec<_> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["watchpost.job", "fetch"], "root first");
    assert_eq!(spans[0]["fields"]["monitor.slug"], "import_orders");
    assert_eq!(spans[0]["fields"]["monitor.check_in_id"], run_id);
    assert_eq!(spans[1]["fields"]["shop"], "eu-1");

    let crumbs: Vec<Value> = event.other["breadcrumbs"]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let texts: Vec<_> = crumbs
        .iter()
        .map(|b| b["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["fetching orders", "page 1 fetched"]);
    assert_eq!(crumbs[0]["level"], "info");
    assert_eq!(crumbs[0]["category"], "tracing_layer");
    assert_eq!(crumbs[0]["data"]["batch"], 3);
}

#[test]
fn levels_below_the_thresholds_send_nothing() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);
    let layer = watchpost::tracing::layer()
        .event_level(tracing::Level::ERROR)
        .breadcrumb_level(tracing::Level::WARN);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(disk = "92%", "disk filling up");
        tracing::info!("not even a breadcrumb");
        tracing::debug!("nor this");
    });
    assert!(guard.flush(Duration::from_secs(5)));
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // The warning was kept as a breadcrumb (the info was not): the next event shows it.
    watchpost::capture_message("later", Level::Error);
    let event = server.wait_events(1).remove(0);
    let crumbs = &event.other["breadcrumbs"]["values"];
    assert_eq!(crumbs.as_array().map(Vec::len), Some(1), "{crumbs}");
    assert_eq!(crumbs[0]["message"], "disk filling up");
    assert_eq!(crumbs[0]["level"], "warning");
}

#[monitored_job(schedule = "@hourly")]
async fn sync_prices() -> Result<(), ImportError> {
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    tracing::error!(attempt = 2, "price feed answered garbage");
    Ok(())
}

#[test]
fn an_async_job_links_its_events_across_awaits_and_threads() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);
    let subscriber = tracing_subscriber::registry().with(watchpost::tracing::layer());
    let _default = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The runtime's threads need the subscriber too: give it to the task explicitly.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    runtime
        .block_on(async {
            tokio::spawn(tracing::instrument::WithSubscriber::with_subscriber(
                sync_prices(),
                dispatch,
            ))
            .await
        })
        .unwrap()
        .unwrap();
    assert!(guard.flush(Duration::from_secs(5)));
    let requests = server.requests();
    let events = support::events(&requests);
    assert_eq!(events.len(), 1, "{events:?}");
    let run_id = support::check_ins(&requests)[0].check_in_id.unwrap();
    let monitor = &events[0].contexts.as_ref().unwrap()["monitor"];
    assert_eq!(
        monitor,
        &json!({"slug": "sync_prices", "check_in_id": run_id.simple().to_string()})
    );
    assert_eq!(events[0].other["extra"]["attempt"], 2);
}
