//! The `log` facade's logger, installed once for this binary (as `log` allows) in front of a
//! logger that records what it is handed, reporting to the loopback recorder of `support/`: an
//! `error!` inside a `#[monitored_job]` run is one event linked to the run with the earlier
//! `info!`s as breadcrumbs; records below the levels send nothing; the wrapped logger sees
//! every record either way, with the SDK on or off. Tests run under `serial()` (the SDK client,
//! the scope and the logger are global).
#![cfg(feature = "log")]

mod support;

use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use serde_json::Value;
use support::{Recorder, serial};
use watchpost::protocol::{Event, Level, Message};
use watchpost::{ClientGuard, ClientOptions, monitored_job};

/// The logger the SDK's logger wraps: keeps `level target: message` of what it is handed
/// from this file's targets.
struct Kept;

static KEPT: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl log::Log for Kept {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Debug
    }

    fn log(&self, record: &log::Record<'_>) {
        // Only this test's own targets: the SDK's transport logs too (reqwest, rustls).
        let ours = matches!(record.target(), "billing" | "log_facade");
        if ours && self.enabled(record.metadata()) {
            KEPT.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!(
                    "{} {}: {}",
                    record.level(),
                    record.target(),
                    record.args()
                ));
        }
    }

    fn flush(&self) {}
}

fn kept() -> Vec<String> {
    std::mem::take(&mut *KEPT.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Installs the logger once: events from `Error`, breadcrumbs from `Warn` (so `info!` is
/// below it), wrapping `Kept` up to `Debug`.
fn install_logger() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        watchpost::log::logger()
            .breadcrumb_level(log::Level::Warn)
            .wrap(Kept, log::LevelFilter::Debug)
            .init()
            .expect("the only logger of this binary");
    });
}

fn init(server: &Recorder) -> ClientGuard {
    install_logger();
    kept();
    watchpost::configure_scope(watchpost::Scope::clear);
    watchpost::init(ClientOptions {
        dsn: Some(server.dsn()),
        ..Default::default()
    })
}

fn message(event: &Event) -> Option<&str> {
    match &event.message {
        Some(Message::Text(text)) => Some(text),
        _ => None,
    }
}

fn breadcrumbs(event: &Event) -> Vec<Value> {
    event.other["breadcrumbs"]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[monitored_job(schedule = "*/10 * * * *")]
fn settle_invoices() -> usize {
    log::warn!(target: "billing", "invoice {} has no customer", 7);
    log::info!("below the breadcrumb level: only the wrapped logger sees it");
    log::error!(target: "billing", "could not settle {} invoices", 3);
    3
}

#[test]
fn an_error_in_a_job_is_one_event_linked_to_the_run_with_earlier_warnings_as_breadcrumbs() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);
    assert_eq!(settle_invoices(), 3);
    assert!(guard.flush(Duration::from_secs(5)));

    let requests = server.requests();
    let events = support::events(&requests);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    let check_ins = support::check_ins(&requests);
    assert_eq!(check_ins.len(), 2, "in_progress and ok: {check_ins:?}");
    let run_id = check_ins[0]
        .check_in_id
        .expect("an id")
        .simple()
        .to_string();

    assert_eq!(event.level, Some(Level::Error));
    assert_eq!(message(event), Some("could not settle 3 invoices"));
    assert_eq!(event.logger.as_deref(), Some("billing"));
    assert_eq!(event.other["extra"]["module_path"], "log_facade");
    assert!(
        event.other["extra"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("log_facade.rs")),
        "{:?}",
        event.other["extra"]
    );
    assert_eq!(
        event.contexts.as_ref().expect("contexts")["monitor"],
        serde_json::json!({"slug": "settle_invoices", "check_in_id": run_id}),
        "linked to its run"
    );
    let crumbs = breadcrumbs(event);
    assert_eq!(crumbs.len(), 1, "only the warning: {crumbs:?}");
    assert_eq!(crumbs[0]["message"], "invoice 7 has no customer");
    assert_eq!(crumbs[0]["level"], "warning");
    assert_eq!(crumbs[0]["category"], "billing");

    assert_eq!(
        kept(),
        [
            "WARN billing: invoice 7 has no customer",
            "INFO log_facade: below the breadcrumb level: only the wrapped logger sees it",
            "ERROR billing: could not settle 3 invoices",
        ],
        "the wrapped logger still gets every record it wants"
    );
}

#[test]
fn records_below_the_levels_send_nothing_and_outside_a_job_link_to_no_run() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);
    log::warn!("disk filling up");
    log::info!("not even a breadcrumb");
    log::debug!("nor this");
    log::trace!("nor this, nor the wrapped logger");
    assert!(guard.flush(Duration::from_secs(5)));
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert_eq!(
        log::max_level(),
        log::LevelFilter::Debug,
        "the wrapped logger's"
    );

    log::error!("outside any job");
    let event = server.wait_events(1).remove(0);
    assert_eq!(message(&event), Some("outside any job"));
    assert!(
        event
            .contexts
            .as_ref()
            .is_none_or(|c| !c.contains_key("monitor")),
        "{:?}",
        event.contexts
    );
    let crumbs = breadcrumbs(&event);
    assert_eq!(crumbs.len(), 1, "{crumbs:?}");
    assert_eq!(crumbs[0]["message"], "disk filling up");
    assert_eq!(kept().len(), 4, "warn, info, debug and error reached it");
}

#[test]
fn with_the_sdk_disabled_the_wrapped_logger_still_gets_its_records() {
    let _serial = serial();
    install_logger();
    kept();
    let guard = watchpost::init(ClientOptions::default());
    assert!(!watchpost::is_enabled());
    log::error!("no DSN, still logged");
    drop(guard);
    assert_eq!(kept(), ["ERROR log_facade: no DSN, still logged"]);
}

#[test]
fn what_the_sdks_own_threads_log_is_never_reported() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);
    std::thread::Builder::new()
        .name("watchpost-transport".to_owned())
        .spawn(|| log::error!("connection reset while posting"))
        .expect("spawn")
        .join()
        .expect("join");
    assert!(guard.flush(Duration::from_secs(5)));
    assert!(support::events(&server.requests()).is_empty());
    assert_eq!(
        kept(),
        ["ERROR log_facade: connection reset while posting"],
        "the wrapped logger still has it"
    );
}
