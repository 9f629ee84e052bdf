//! What the SDK sends, end to end: `#[monitored_job]` on sync and async functions, errors,
//! panics, heartbeats and captures, recorded by a real loopback HTTP server and compared with
//! the exact envelopes we expect. The last tests parse the same requests with the real
//! `sentry-types` crate and run the events through Relay's own normalizer
//! (`support/sentry_rules.rs`).

mod support;
// The virtualenv with Relay's normalizer, shared with the collector's interop tests.
#[allow(
    dead_code,
    unreachable_pub,
    reason = "only the interpreter is used here"
)]
#[path = "../../collector/tests/support/python.rs"]
mod python;
#[path = "support/sentry_rules.rs"]
mod sentry_rules;

use std::error::Error;
use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};
use support::{KEY, Recorder, serial};
use watchpost::checkin::{self, IntervalUnit, MonitorConfig};
use watchpost::protocol::{CheckIn, CheckInStatus, Level};
use watchpost::{ClientGuard, ClientOptions, monitored_job};

fn init(server: &Recorder) -> ClientGuard {
    watchpost::init(ClientOptions {
        dsn: Some(server.dsn()),
        release: Some("jobs@1.2.3".into()),
        server_name: Some("test-host".into()),
        ..Default::default()
    })
}

/// A check-in as JSON without its id and duration, which the tests check separately.
fn shape(check_in: &CheckIn) -> Value {
    let mut value = serde_json::to_value(check_in).unwrap();
    let object = value.as_object_mut().unwrap();
    object.remove("check_in_id");
    object.remove("duration");
    value
}

/// `expected` seconds (a sleep never returns early), plus what a loaded 2-core CI machine may add.
fn assert_duration(check_in: &CheckIn, expected: f64) {
    let duration = check_in
        .duration
        .expect("a terminal check-in has a duration");
    assert!(
        (expected..expected + 0.4).contains(&duration),
        "duration {duration} s, expected {expected} s"
    );
}

#[monitored_job(
    slug = "nightly-backup",
    schedule = "0 3 * * *",
    timezone = "Europe/Berlin",
    checkin_margin = "5m",
    max_runtime = "90s",
    failure_issue_threshold = 2,
    recovery_threshold = 3
)]
fn nightly_backup() -> u32 {
    std::thread::sleep(Duration::from_millis(100));
    7
}

#[test]
fn sync_job_sends_in_progress_then_ok_with_the_same_id() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    assert_eq!(nightly_backup(), 7);
    drop(guard); // flushes

    let requests = server.requests();
    let check_ins = support::check_ins(&requests);
    let config = json!({
        "schedule": {"type": "crontab", "value": "0 3 * * *"},
        "checkin_margin": 5,
        // 90 s: whole minutes, rounded up, for Sentry; exactly for Watchpost.
        "max_runtime": 2,
        "timezone": "Europe/Berlin",
        "failure_issue_threshold": 2,
        "recovery_threshold": 3,
        "watchpost": {"max_runtime": "90s"}
    });
    let expected = |status| {
        json!({"monitor_slug": "nightly-backup", "status": status, "environment": "production",
               "monitor_config": config})
    };
    assert_eq!(check_ins.len(), 2, "{check_ins:?}");
    assert_eq!(shape(&check_ins[0]), expected("in_progress"));
    assert_eq!(shape(&check_ins[1]), expected("ok"));
    assert_eq!(check_ins[0].duration, None);
    assert_duration(&check_ins[1], 0.1);
    assert!(check_ins[0].check_in_id.is_some());
    assert_eq!(check_ins[0].check_in_id, check_ins[1].check_in_id);

    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/api/42/envelope/")
    );
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_eq!(
        request.header("content-type"),
        Some("application/x-sentry-envelope")
    );
    let auth = watchpost_protocol::Auth::parse(request.header("x-sentry-auth").unwrap()).unwrap();
    assert_eq!(auth.key, KEY);
    assert_eq!(auth.version.as_deref(), Some("7"));
    assert_eq!(auth.client.as_deref(), Some(watchpost::CLIENT_NAME));
    assert!(request.envelope.headers.contains_key("sent_at"));
}

#[monitored_job(interval = "10m", environment = "staging")]
async fn poll_feed(pause: Duration) -> usize {
    tokio::time::sleep(pause).await;
    tokio::task::yield_now().await;
    3
}

#[test]
fn async_job_reports_like_a_sync_one_across_threads() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = runtime
        .block_on(async { tokio::spawn(poll_feed(Duration::from_millis(100))).await })
        .unwrap();
    assert_eq!(n, 3);
    drop(guard);

    let check_ins = support::check_ins(&server.requests());
    let expected = |status| {
        json!({"monitor_slug": "poll_feed", "status": status, "environment": "staging",
               "monitor_config": {"schedule": {"type": "interval", "value": 10, "unit": "minute"}}})
    };
    assert_eq!(check_ins.len(), 2, "{check_ins:?}");
    assert_eq!(shape(&check_ins[0]), expected("in_progress"));
    assert_eq!(shape(&check_ins[1]), expected("ok"));
    assert_eq!(check_ins[0].check_in_id, check_ins[1].check_in_id);
    assert_duration(&check_ins[1], 0.1);
}

#[derive(Debug)]
struct BackupError {
    source: std::io::Error,
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("backup failed")
    }
}

impl Error for BackupError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

#[monitored_job]
fn failing_backup() -> Result<(), BackupError> {
    let source = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "disk is read-only");
    Err(BackupError { source })
}

#[test]
fn job_returning_err_reports_error_and_an_event_with_the_source_chain() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    assert!(failing_backup().is_err());
    drop(guard);

    let requests = server.requests();
    let check_ins = support::check_ins(&requests);
    assert_eq!(check_ins.len(), 2, "{check_ins:?}");
    assert_eq!(check_ins[1].status, CheckInStatus::Error);
    assert_eq!(check_ins[0].check_in_id, check_ins[1].check_in_id);
    let id = check_ins[1].check_in_id.unwrap();

    let events = support::events(&requests);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    let chain: Vec<_> = event
        .exceptions()
        .iter()
        .map(|e| (e.ty.as_deref().unwrap(), e.value.as_deref().unwrap()))
        .collect();
    assert_eq!(
        chain,
        [
            ("Error", "disk is read-only"),
            ("BackupError", "backup failed")
        ]
    );
    let mechanism = event.exceptions()[1].mechanism.as_ref().unwrap();
    assert_eq!(
        (mechanism.ty.as_str(), mechanism.handled),
        ("watchpost.job", Some(true))
    );
    assert_eq!(event.level, Some(Level::Error));
    assert_eq!(event.environment.as_deref(), Some("production"));
    assert_eq!(event.release.as_deref(), Some("jobs@1.2.3"));
    assert_eq!(event.server_name.as_deref(), Some("test-host"));
    let monitor = &event.contexts.as_ref().unwrap()["monitor"];
    assert_eq!(
        monitor,
        &json!({"slug": "failing_backup", "check_in_id": id.simple().to_string()})
    );
}

#[monitored_job]
fn job_with_text_error() -> Result<(), String> {
    Err("quota exceeded".to_owned())
}

#[monitored_job]
fn job_with_anyhow_error() -> anyhow::Result<()> {
    let inner = std::io::Error::other("connection reset");
    Err(anyhow::Error::new(inner).context("fetching the feed"))
}

#[monitored_job]
fn job_with_boxed_error() -> Result<(), Box<dyn Error>> {
    Err("boxed failure".into())
}

#[test]
fn errors_that_are_not_std_errors_are_still_captured() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    job_with_text_error().unwrap_err();
    job_with_anyhow_error().unwrap_err();
    job_with_boxed_error().unwrap_err();
    drop(guard);

    let requests = server.requests();
    let errors = support::check_ins(&requests)
        .into_iter()
        .filter(|c| c.status == CheckInStatus::Error)
        .count();
    assert_eq!(errors, 3);
    let mut values: Vec<Vec<String>> = support::events(&requests)
        .iter()
        .map(|e| {
            e.exceptions()
                .iter()
                .map(|x| x.value.clone().unwrap())
                .collect()
        })
        .collect();
    values.sort();
    assert_eq!(
        values,
        [
            vec!["\"quota exceeded\"".to_owned()],
            vec!["boxed failure".to_owned()],
            vec![
                "connection reset".to_owned(),
                "fetching the feed".to_owned()
            ],
        ]
    );
}

#[monitored_job(slug = "exploding-job")]
fn exploding_job() {
    let items: Vec<u32> = Vec::new();
    if items.is_empty() {
        panic!("no items to process");
    }
}

#[test]
fn panic_reports_a_fatal_event_and_one_error_check_in() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    let thread = std::thread::Builder::new()
        .name("worker-7".into())
        .spawn(exploding_job)
        .unwrap();
    assert!(thread.join().is_err());
    drop(guard);

    let requests = server.requests();
    let check_ins = support::check_ins(&requests);
    let statuses: Vec<_> = check_ins.iter().map(|c| c.status).collect();
    // The hook marks the run; the unwinding drop must not report it a second time.
    assert_eq!(statuses, [CheckInStatus::InProgress, CheckInStatus::Error]);
    assert_eq!(check_ins[0].check_in_id, check_ins[1].check_in_id);
    assert!(check_ins[1].duration.is_some());

    let events = support::events(&requests);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.level, Some(Level::Fatal));
    let exception = &event.exceptions()[0];
    assert_eq!(exception.ty.as_deref(), Some("panic"));
    assert_eq!(exception.value.as_deref(), Some("no items to process"));
    let mechanism = exception.mechanism.as_ref().unwrap();
    assert_eq!(
        (mechanism.ty.as_str(), mechanism.handled),
        ("panic", Some(false))
    );
    let location = mechanism.other["data"]["location"].as_str().unwrap();
    assert!(
        location.starts_with("sdk/tests/reporting.rs:"),
        "{location}"
    );
    assert_eq!(event.other["threads"]["values"][0]["name"], "worker-7");
    let frames = &exception.stacktrace.as_ref().unwrap().frames;
    let crashing = frames
        .iter()
        .rfind(|f| f.in_app == Some(true))
        .unwrap_or_else(|| panic!("an in-app frame in {frames:#?}"));
    let function = crashing.function.as_deref().unwrap();
    assert!(
        function.starts_with("reporting::exploding_job"),
        "{function}"
    );
    assert!(
        !frames.iter().any(|f| f
            .function
            .as_deref()
            .is_some_and(|n| n.contains("rust_begin_unwind"))),
        "panic machinery is trimmed: {:#?}",
        frames
            .iter()
            .map(|f| f.function.as_deref().unwrap_or("?"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        event.contexts.as_ref().unwrap()["monitor"]["slug"],
        "exploding-job",
        "the panic is linked to the run"
    );
}

#[monitored_job(
    schedule = "*/5 * * * *",
    timezone = "UTC",
    checkin_margin = "2m",
    max_runtime = "1h"
)]
fn sentry_compatible_job() {
    std::thread::sleep(Duration::from_millis(20));
}

#[monitored_job]
async fn async_exploding_job() {
    tokio::task::yield_now().await;
    panic!("async boom");
}

#[monitored_job]
async fn async_bystander() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn async_panic_fails_only_the_run_that_panicked() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    // One thread, two interleaved tasks: only the panicking one may be marked.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let bystander = tokio::spawn(async_bystander());
        let exploding = tokio::spawn(async_exploding_job());
        assert!(exploding.await.unwrap_err().is_panic());
        bystander.await.unwrap();
    });
    drop(guard);

    let check_ins = support::check_ins(&server.requests());
    let ends = |slug: &str| {
        check_ins
            .iter()
            .filter(|c| c.monitor_slug == slug && c.status != CheckInStatus::InProgress)
            .map(|c| c.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(ends("async_exploding_job"), [CheckInStatus::Error]);
    assert_eq!(ends("async_bystander"), [CheckInStatus::Ok]);
}

#[monitored_job]
async fn slow_async_job(pause: Duration) -> Result<(), std::io::Error> {
    tokio::time::sleep(pause).await;
    Ok(())
}

#[test]
fn a_cancelled_async_job_reports_error_once() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Dropped mid-way, while it sleeps: it never finished its work.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(100),
            slow_async_job(Duration::from_secs(10)),
        )
        .await;
        assert!(cancelled.is_err(), "the timeout fired first");
        // The same job left to finish still reports `ok`.
        slow_async_job(Duration::from_millis(10)).await.unwrap();
    });
    drop(guard);

    let check_ins = support::check_ins(&server.requests());
    let summary: Vec<_> = check_ins
        .iter()
        .filter(|c| c.monitor_slug == "slow_async_job")
        .map(|c| (c.status, c.check_in_id.unwrap()))
        .collect();
    assert_eq!(summary.len(), 4, "{summary:?}");
    let (cancelled_id, finished_id) = (summary[0].1, summary[2].1);
    assert_ne!(cancelled_id, finished_id);
    assert_eq!(
        summary,
        [
            (CheckInStatus::InProgress, cancelled_id),
            (CheckInStatus::Error, cancelled_id),
            (CheckInStatus::InProgress, finished_id),
            (CheckInStatus::Ok, finished_id),
        ]
    );
    // The timeout's 100 ms count from before the job's first poll, and tokio's timer works in
    // whole milliseconds: the run measured from inside the job may be a millisecond or two
    // short of them (0.0985 s was seen on a loaded machine).
    assert_duration(&check_ins[1], 0.095);
    assert_eq!(
        support::events(&server.requests()),
        [],
        "a cancellation is no error event"
    );
}

#[test]
fn heartbeat_is_a_single_check_in() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    let config = MonitorConfig::interval(10, IntervalUnit::Minute)
        .checkin_margin(Duration::from_secs(120))
        .max_runtime(Duration::from_secs(45));
    let id = watchpost::capture_checkin("queue-consumer", CheckInStatus::Ok, Some(&config));
    drop(guard);

    let check_ins = support::check_ins(&server.requests());
    assert_eq!(check_ins.len(), 1);
    assert_eq!(check_ins[0].check_in_id, id);
    assert_eq!(check_ins[0].duration, None);
    assert_eq!(
        shape(&check_ins[0]),
        json!({"monitor_slug": "queue-consumer", "status": "ok", "environment": "production",
               "monitor_config": {"schedule": {"type": "interval", "value": 10, "unit": "minute"},
                                  "checkin_margin": 2, "max_runtime": 1,
                                  "watchpost": {"max_runtime": "45s"}}})
    );
}

#[test]
fn runs_by_hand_finish_or_fail_when_dropped() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    let run = checkin::start("db-vacuum", Some(MonitorConfig::crontab("*/5 * * * *")));
    let finished_id = run.id();
    std::thread::sleep(Duration::from_millis(50));
    run.finish(CheckInStatus::Ok);
    let dropped = checkin::start("forgotten", None);
    let dropped_id = dropped.id();
    drop(dropped);
    drop(guard);

    let check_ins = support::check_ins(&server.requests());
    let summary: Vec<_> = check_ins
        .iter()
        .map(|c| (c.monitor_slug.as_str(), c.status, c.check_in_id.unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("db-vacuum", CheckInStatus::InProgress, finished_id),
            ("db-vacuum", CheckInStatus::Ok, finished_id),
            ("forgotten", CheckInStatus::InProgress, dropped_id),
            ("forgotten", CheckInStatus::Error, dropped_id),
        ]
    );
    assert_duration(&check_ins[1], 0.05);
}

#[monitored_job(interval = "1m")]
fn pause_50ms() {
    std::thread::sleep(Duration::from_millis(50));
}

/// The duration comes from the SDK's run clock (`sdk/src/clock.rs`: the TSC scaled by
/// `quanta`'s calibration where the CPU has an invariant one); it must agree with the OS clock
/// measuring the same call from outside: at least the sleep, at most the whole call.
#[test]
fn a_jobs_duration_from_the_run_clock_agrees_with_the_os_clock() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);
    let outside = std::time::Instant::now();
    pause_50ms();
    let outside = outside.elapsed().as_secs_f64();
    drop(guard);

    let check_ins = support::check_ins(&server.requests());
    assert_eq!(check_ins.len(), 2, "{check_ins:?}");
    let duration = check_ins[1].duration.expect("a duration");
    // 1 ms of slack above: the calibration's scale factor is good to a few parts per million.
    assert!(
        (0.05..=outside + 0.001).contains(&duration),
        "reported {duration} s for a 50 ms sleep the OS clock timed at {outside} s"
    );
}

#[test]
fn captured_errors_and_messages_arrive_as_events() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    let err = BackupError {
        source: std::io::Error::other("no space left"),
    };
    let error_id = watchpost::capture_error(&err).unwrap();
    let message_id = watchpost::capture_message("disk usage above 90%", Level::Warning).unwrap();
    drop(guard);

    let requests = server.requests();
    let events = support::events(&requests);
    assert_eq!(events.len(), 2);
    let error = events.iter().find(|e| e.event_id == error_id).unwrap();
    assert_eq!(error.exceptions().len(), 2);
    assert_eq!(
        error.exceptions()[1].mechanism.as_ref().unwrap().ty,
        "generic"
    );
    let message = events.iter().find(|e| e.event_id == message_id).unwrap();
    assert_eq!(message.message_text(), Some("disk usage above 90%"));
    assert_eq!(message.level, Some(Level::Warning));
    let with_event_id = requests
        .iter()
        .filter(|r| {
            r.envelope.headers.get("event_id") == Some(&json!(error_id.simple().to_string()))
        })
        .count();
    assert_eq!(
        with_event_id, 1,
        "event envelopes carry the event id in their header"
    );
}

#[test]
fn without_a_dsn_everything_is_a_no_op() {
    let _serial = serial();
    let guard = watchpost::init(ClientOptions::default());
    assert!(!guard.is_enabled());
    assert!(!watchpost::is_enabled());

    assert_eq!(nightly_backup(), 7);
    assert_eq!(
        watchpost::capture_message("nobody listens", Level::Info),
        None
    );
    assert_eq!(
        watchpost::capture_checkin("x", CheckInStatus::Ok, None),
        None
    );
    assert!(checkin::start("x", None).id().is_nil());
    assert!(!watchpost::flush(Duration::from_millis(10)));
    assert_eq!(watchpost::stats(), watchpost::Stats::default());
}

#[test]
fn a_bad_dsn_leaves_the_sdk_disabled_with_a_reason() {
    let _serial = serial();
    let options = |dsn: &str| ClientOptions {
        dsn: Some(dsn.into()),
        ..Default::default()
    };
    let err = watchpost::try_init(options("ftp://key@host/1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid DSN: scheme must be http or https, got `ftp`"
    );
    let _ = watchpost::init(ClientOptions::default());
    let guard = watchpost::init(options("not a dsn"));
    assert!(!guard.is_enabled());
    assert!(!watchpost::is_enabled());
}

#[test]
fn sentry_types_understands_what_we_send() {
    use sentry_types::protocol::v7::{EnvelopeItem, MonitorCheckInStatus};

    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    let _ = failing_backup();
    let _ = std::thread::spawn(exploding_job).join();
    sentry_compatible_job();
    watchpost::capture_message("hello", Level::Info);
    drop(guard);

    let mut check_ins = Vec::new();
    let mut events = Vec::new();
    for request in server.requests() {
        let envelope = sentry_types::protocol::v7::Envelope::from_slice(&request.body)
            .unwrap_or_else(|e| {
                panic!(
                    "sentry-types rejects {:?}: {e}",
                    String::from_utf8_lossy(&request.body)
                )
            });
        for item in envelope.items() {
            match item {
                EnvelopeItem::MonitorCheckIn(c) => check_ins.push(c.clone()),
                EnvelopeItem::Event(e) => events.push(e.clone()),
                other => panic!("unexpected item {other:?}"),
            }
        }
    }
    let summary: Vec<_> = check_ins
        .iter()
        .map(|c| (c.monitor_slug.as_str(), c.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("failing_backup", MonitorCheckInStatus::InProgress),
            ("failing_backup", MonitorCheckInStatus::Error),
            ("exploding-job", MonitorCheckInStatus::InProgress),
            ("exploding-job", MonitorCheckInStatus::Error),
            ("sentry_compatible_job", MonitorCheckInStatus::InProgress),
            ("sentry_compatible_job", MonitorCheckInStatus::Ok),
        ]
    );
    assert_eq!(check_ins[4].check_in_id, check_ins[5].check_in_id);
    let config = check_ins[4].monitor_config.as_ref().unwrap();
    assert_eq!(
        (config.checkin_margin, config.max_runtime),
        (Some(2), Some(60))
    );
    assert_eq!(config.timezone.as_deref(), Some("UTC"));
    assert!(check_ins[5].duration.unwrap() >= 0.02);

    assert_eq!(events.len(), 3);
    let levels: Vec<_> = events.iter().map(|e| e.level).collect();
    use sentry_types::protocol::v7::Level as SentryLevel;
    assert_eq!(
        levels,
        [SentryLevel::Error, SentryLevel::Fatal, SentryLevel::Info]
    );
    let error = &events[0].exception.values;
    assert_eq!(error.len(), 2);
    assert_eq!(error[1].ty, "BackupError");
    assert_eq!(error[1].value.as_deref(), Some("backup failed"));
    let panic = &events[1].exception.values[0];
    assert_eq!(panic.ty, "panic");
    assert_eq!(panic.value.as_deref(), Some("no items to process"));
    assert_eq!(panic.mechanism.as_ref().unwrap().handled, Some(false));
    let frames = &panic.stacktrace.as_ref().unwrap().frames;
    assert!(frames.iter().any(|f| f.in_app == Some(true)));
    assert_eq!(events[1].environment.as_deref(), Some("production"));
    assert_eq!(events[2].message.as_deref(), Some("hello"));
}

#[test]
fn every_envelope_we_send_is_what_sentry_accepts_unchanged() {
    let _serial = serial();
    let server = Recorder::start();
    let guard = init(&server);

    // Check-ins with and without monitor_config, with values Sentry's fields cannot hold
    // (90 s runtime; a 90 s interval with a 30 s margin), events of every kind.
    assert_eq!(nightly_backup(), 7);
    let _ = failing_backup();
    let _ = std::thread::spawn(exploding_job).join();
    sentry_compatible_job();
    let seconds = MonitorConfig::interval(90, IntervalUnit::Second)
        .checkin_margin(Duration::from_secs(30))
        .max_runtime(Duration::from_millis(61_500))
        .timezone("Europe/Berlin")
        .failure_issue_threshold(3)
        .recovery_threshold(2);
    checkin::start("by-hand", Some(seconds)).finish(CheckInStatus::Ok);
    watchpost::capture_checkin("heartbeat", CheckInStatus::Error, None);
    let err = BackupError {
        source: std::io::Error::other("no space left"),
    };
    watchpost::capture_error(&err).unwrap();
    watchpost::capture_message("disk usage above 90%", Level::Warning).unwrap();
    drop(guard);

    let mut events = Vec::new();
    let mut check_ins = Vec::new();
    for request in server.requests() {
        let carried = sentry_rules::check_envelope(&request.body);
        events.extend(carried.events);
        check_ins.extend(carried.check_ins);
    }
    assert_eq!(events.len(), 4, "error, panic, captured error, message");
    assert!(events.iter().all(|e| e["platform"] == "native"));
    sentry_rules::assert_relay_keeps_events(&python::python(), &events);

    assert_eq!(check_ins.len(), 11, "{check_ins:#?}");
    let by_hand = check_ins
        .iter()
        .find(|c| c["monitor_slug"] == "by-hand")
        .unwrap();
    assert_eq!(
        by_hand["monitor_config"],
        json!({
            "schedule": {"type": "interval", "value": 2, "unit": "minute"},
            "checkin_margin": 1,
            "max_runtime": 2,
            "timezone": "Europe/Berlin",
            "failure_issue_threshold": 3,
            "recovery_threshold": 2,
            "watchpost": {
                "schedule": {"type": "interval", "value": 90, "unit": "second"},
                "checkin_margin": "30s",
                "max_runtime": "61500ms"
            }
        })
    );
}
