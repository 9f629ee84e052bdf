//! Uptime probes and the watchdog, against real loopback services: the collector binary probes
//! a target the test switches between `200`, `503` and not listening; a target that never
//! answers must not slow another probe down; results are bounded; `/healthz` and `/metrics`
//! report the prober; the watchdog's heartbeats stop while the collector is unhealthy.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use chrono::Utc;
use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use watchpost_collector::alert::Planner;
use watchpost_collector::config::{Retention, Secret, Watchdog, WatchdogMethod};
use watchpost_collector::deadlines::Deadlines;
use watchpost_collector::engine::IncidentKind;
use watchpost_collector::engine::probes::ProbeResult;
use watchpost_collector::health::{HealthSources, Heartbeat};
use watchpost_collector::metrics::Metrics;
use watchpost_collector::probe::Probes;
use watchpost_collector::processor::Processor;
use watchpost_collector::store::Store;
use watchpost_collector::sweep;
use watchpost_collector::watchdog;

use support::{Collector, json, poll};

/// How long any awaited state change may take.
const WITHIN: Duration = Duration::from_secs(20);

/// A service on a fixed loopback port that a test switches between answering `status` and not
/// listening at all (connections refused).
struct Target {
    runtime: Runtime,
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    server: Option<JoinHandle<()>>,
}

impl Target {
    fn start() -> Target {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let mut target = Target {
            addr: listener.local_addr().unwrap(),
            runtime,
            status: Arc::new(AtomicU16::new(200)),
            server: None,
        };
        target.serve(listener);
        target
    }

    fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .fallback(|State(status): State<Arc<AtomicU16>>| async move {
                AxumStatus::from_u16(status.load(Ordering::Relaxed)).unwrap()
            })
            .with_state(Arc::clone(&self.status));
        self.server = Some(self.runtime.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// Stops listening; returns once connections are refused.
    fn close(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = self.runtime.block_on(server);
        }
        let refused = std::net::TcpStream::connect(self.addr)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        assert!(refused, "the target still accepts connections");
    }

    /// Listens again on the same port.
    fn open(&mut self) {
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .unwrap();
        self.serve(listener);
    }
}

/// A TCP server that accepts connections and never answers.
fn black_hole(runtime: &Runtime) -> SocketAddr {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// `GET /api/v1/probes`, by name.
fn probe(collector: &Collector, name: &str) -> Value {
    let probes = collector.api_get("/api/v1/probes");
    probes
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no probe {name} in {probes}"))
        .clone()
}

/// Polls probe `name` until `done` holds; returns its view.
#[track_caller]
fn wait_probe(
    collector: &Collector,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    poll(WITHIN, what, || {
        let view = probe(collector, name);
        done(&view).then_some(view)
    })
}

fn probe_incidents(collector: &Collector, open: bool) -> Vec<Value> {
    let path = if open {
        "/api/v1/incidents?open=true"
    } else {
        "/api/v1/incidents"
    };
    let all = collector.api_get(path);
    all.as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "probe")
        .cloned()
        .collect()
}

#[test]
fn a_probe_goes_down_and_up_once_at_its_thresholds() {
    let mut target = Target::start();
    // Nothing listens here until the end: the outbox must keep the alerts while it is down.
    let hook = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let mut collector = Collector::start(Some(&format!(
        r#"
[[channels]]
name = "hook"
type = "webhook"
url = "http://{hook}/hook"

[[rules]]
name = "uptime"
on = ["probe.down", "probe.up"]
channels = ["hook"]

[[probes]]
name = "api"
url = "{url}"
interval = "500ms"
timeout = "500ms"
failure_threshold = 2
success_threshold = 2
"#,
        url = target.url()
    )));

    // 200: up after two successes.
    let up = wait_probe(&collector, "api", "the probe to be up", |p| {
        p["status"] == "up"
    });
    assert_eq!(up["url"], target.url());
    assert_eq!(up["last_check"]["status_code"], 200);
    assert_eq!(up["last_check"]["outcome"], "ok");
    assert!(up["open_incident"].is_null());

    // 503: down after two failures, with one open probe incident.
    target.answer(503);
    let down = wait_probe(&collector, "api", "the probe to be down", |p| {
        p["status"] == "down"
    });
    assert_eq!(down["last_check"]["status_code"], 503);
    assert_eq!(down["last_check"]["outcome"], "unexpected_status");
    assert_eq!(down["last_check"]["error"], "expected HTTP 200, got 503");
    assert_eq!(down["open_incident"]["kind"], "probe");
    let open = probe_incidents(&collector, true);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["slug"], "api");
    assert_eq!(open[0]["reason"], "error");
    assert_eq!(open[0]["id"], down["open_incident"]["id"]);

    // Connection refused: still the same incident, the failures keep counting.
    target.close();
    let refused = wait_probe(&collector, "api", "refused connections to count", |p| {
        p["last_check"]["outcome"] == "connect_error"
            && p["consecutive_failures"].as_u64().unwrap() >= 4
    });
    assert_eq!(refused["last_check"]["error"], "connection refused");
    assert!(refused["last_check"]["status_code"].is_null());
    assert_eq!(refused["open_incident"]["id"], open[0]["id"]);
    assert_eq!(probe_incidents(&collector, false).len(), 1);

    // 200 again: up after two successes, the incident resolved.
    target.answer(200);
    target.open();
    let back = wait_probe(&collector, "api", "the probe to be up again", |p| {
        p["status"] == "up"
    });
    assert!(back["open_incident"].is_null());
    assert_eq!(back["consecutive_successes"].as_u64(), Some(2));
    let all = probe_incidents(&collector, false);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0]["resolved_at"].is_string());
    assert!(probe_incidents(&collector, true).is_empty());

    // The webhook was down all along; the outbox kept both alerts. It comes up: exactly one
    // `probe.down`, then one `probe.up`, each the §3.5 JSON with the probe as its subject.
    let hook_calls = webhook(&target.runtime, hook);
    let alerts = poll(WITHIN, "both probe alerts at the webhook", || {
        let calls = hook_calls.lock();
        (calls.len() >= 2).then(|| calls.clone())
    });
    let kinds: Vec<&str> = alerts.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["probe.down", "probe.up"], "{alerts:#?}");
    for (alert, code) in alerts.iter().zip([503, 200]) {
        assert_eq!(alert["source"], "probe");
        assert_eq!(alert["probe"]["name"], "api");
        assert_eq!(alert["probe"]["url"], target.url());
        assert_eq!(alert["probe"]["status_code"], code);
        assert!(alert["project"].is_null() && alert["environment"].is_null());
    }
    assert_eq!(alerts[0]["probe"]["error"], "expected HTTP 200, got 503");
    assert!(alerts[1]["probe"]["error"].is_null());

    // One incident, decided at the thresholds: opened by the second failure in a row,
    // resolved by the second success in a row.
    assert!(collector.terminate().success());
    assert_eq!(hook_calls.lock().len(), 2, "no alert twice");
    let store = Store::open(&collector.data_dir().join("data")).unwrap();
    let mut results: Vec<ProbeResult> = store.probe_results("api", 1000).unwrap();
    results.reverse();
    let incidents = store.incidents(false, 1000).unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let incident = &incidents[0];
    assert_eq!(incident.kind, IncidentKind::Probe);
    let position = |id| results.iter().position(|r| r.id == id).unwrap();
    let start = position(incident.starting_checkin);
    assert!(
        results[start - 1].outcome.is_ok(),
        "the run of failures starts after a success"
    );
    assert_eq!(
        position(incident.id),
        start + 1,
        "opened by the second failure in a row"
    );
    let resolving = position(incident.resolving_checkin.unwrap());
    assert!(results[resolving].outcome.is_ok() && results[resolving - 1].outcome.is_ok());
    assert!(
        !results[resolving - 2].outcome.is_ok(),
        "resolved by the second success in a row"
    );

    let since = results[start]
        .at
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let message = alerts[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("Down since {since}")),
        "{message}"
    );
}

/// A webhook on `addr` (reserved by the test): records every alert posted to it, answers 200.
fn webhook(runtime: &Runtime, addr: SocketAddr) -> Arc<Mutex<Vec<Value>>> {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .fallback(
            |State(calls): State<Arc<Mutex<Vec<Value>>>>, body: String| async move {
                calls
                    .lock()
                    .push(serde_json::from_str(&body).unwrap_or(Value::Null));
                "ok"
            },
        )
        .with_state(Arc::clone(&calls));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    calls
}

#[test]
fn a_target_that_never_answers_does_not_delay_another_probe() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let silent = black_hole(&runtime);
    let fast = Target::start();
    let collector = Collector::start(Some(&format!(
        r#"
[[probes]]
name = "silent"
url = "http://{silent}/health"
interval = "3s"
timeout = "3s"

[[probes]]
name = "fast"
url = "{fast}"
interval = "100ms"
timeout = "100ms"
"#,
        fast = fast.url()
    )));

    // While the silent probe's first check hangs, the fast one keeps checking.
    let probes = poll(WITHIN, "five checks of the fast probe", || {
        let probes = collector.api_get("/api/v1/probes");
        (probes[1]["checks"].as_u64().unwrap() >= 5).then_some(probes)
    });
    assert_eq!(probes[0]["name"], "silent");
    assert_eq!(
        probes[0]["checks"], 0,
        "the silent probe's first check must still be waiting: {probes}"
    );

    // Its own timeout ends the silent check; the fast probe went on all along.
    let silent = wait_probe(&collector, "silent", "the silent check to time out", |p| {
        p["checks"].as_u64() >= Some(1)
    });
    assert_eq!(silent["last_check"]["outcome"], "timeout");
    assert_eq!(silent["last_check"]["error"], "no answer within 3s");
    assert!(silent["last_check"]["latency_ms"].as_f64().unwrap() >= 3000.0);
    assert!(probe(&collector, "fast")["checks"].as_u64().unwrap() > 5);
}

#[test]
fn results_are_kept_within_retention() {
    let target = Target::start();
    let collector = Collector::start(Some(&format!(
        r#"
[retention]
probe_results = 3

[[probes]]
name = "api"
url = "{url}"
interval = "100ms"
"#,
        url = target.url()
    )));
    let view = wait_probe(&collector, "api", "eight checks", |p| {
        p["checks"].as_u64().unwrap() >= 8
    });
    let results = collector.api_get("/api/v1/probes/api/results?limit=1000");
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 3, "{results:?}");
    let times: Vec<&str> = results.iter().map(|r| r["at"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "newest first: {times:?}"
    );
    let latest = collector.api_get("/api/v1/probes/api/results?limit=1");
    assert!(latest[0]["at"].as_str().unwrap() >= view["last_check"]["at"].as_str().unwrap());

    let missing = collector
        .admin(Method::GET, "/api/v1/probes/nope/results")
        .send()
        .unwrap();
    support::assert_error(missing, StatusCode::NOT_FOUND, "no probe named `nope`");
}

#[test]
fn healthz_and_metrics_cover_the_prober() {
    let target = Target::start();
    let collector = Collector::start(Some(&format!(
        r#"
[[probes]]
name = "api \"main\""
url = "{url}"
interval = "100ms"
"#,
        url = target.url()
    )));
    wait_probe(&collector, "api \"main\"", "the probe to be up", |p| {
        p["status"] == "up"
    });

    let (status, health) = json(collector.request(Method::GET, "/healthz").send().unwrap());
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["prober"]["alive"], true);
    assert_eq!(health["prober"]["probes"], 1);
    assert_eq!(health["prober"]["running"], 1);
    assert_eq!(health["prober"]["stale"], serde_json::json!([]));
    assert_eq!(health["dispatcher"]["running"], true);
    assert_eq!(health["dispatcher"]["state"], "running");
    assert!(health["outbox"]["backlog"].is_u64());
    assert_eq!(health["store"]["writable"], true);
    assert_eq!(health["sweeper"]["alive"], true);

    let text = collector
        .request(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let label = r#"probe="api \"main\"""#;
    assert!(
        text.lines()
            .any(|l| l == format!("watchpost_probe_up{{{label}}} 1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("watchpost_probe_latency_seconds{{{label}}} "))),
        "{text}"
    );
    let ok_checks = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "watchpost_probe_checks_total{{{label},result=\"ok\"}} "
            ))
        })
        .unwrap_or_else(|| panic!("no ok counter in\n{text}"));
    assert!(ok_checks.parse::<u64>().unwrap() >= 1);
    assert!(text.contains(&format!(
        "watchpost_probe_checks_total{{{label},result=\"timeout\"}} "
    )));
}

/// A fake dead-man's switch: records the body of every request.
async fn dead_mans_switch() -> (String, Arc<Mutex<Vec<String>>>) {
    let pings = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .fallback(
            |State(pings): State<Arc<Mutex<Vec<String>>>>, body: String| async move {
                pings.lock().push(body);
                "OK"
            },
        )
        .with_state(Arc::clone(&pings));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ping/5f3a", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, pings)
}

/// Polls `done` every 10 ms; panics with `what` after [`WITHIN`].
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The real store, sweeper and health verdict; the sweeper is really stopped to make the
/// collector unhealthy (a store that refuses writes cannot be provoked without fault injection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_beats_only_while_the_collector_is_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (stop_flusher, flusher_stop) = tokio::sync::oneshot::channel::<()>();
    let flusher = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .run_flusher(async move {
                    let _ = flusher_stop.await;
                })
                .await;
        }
    });
    let deadlines = Arc::new(Deadlines::load(&store).unwrap());
    let processor = Arc::new(Processor::new(
        store.clone(),
        Arc::clone(&deadlines),
        Retention::default(),
        Arc::new(Planner::default_rule()),
    ));
    let metrics = Arc::new(Metrics::default());
    let start_sweeper = || {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sweep::run(
            Arc::clone(&deadlines),
            Arc::clone(&processor),
            Arc::clone(&metrics),
            async move {
                let _ = stopped.await;
            },
        ));
        (stop, task)
    };
    let (stop_sweeper, sweeper) = start_sweeper();
    let health = HealthSources {
        store: store.clone(),
        deadlines: Arc::clone(&deadlines),
        metrics: Arc::clone(&metrics),
        dispatcher: Arc::new(Heartbeat::default()),
        probes: Probes::new(&[]),
    };
    let (url, pings) = dead_mans_switch().await;
    let (stop_watchdog, watchdog_stop) = tokio::sync::oneshot::channel::<()>();
    let watchdog = tokio::spawn(watchdog::run(
        Watchdog {
            url: Secret::new(url),
            interval: Duration::from_millis(100),
            method: WatchdogMethod::Post,
        },
        health.clone(),
        async move {
            let _ = watchdog_stop.await;
        },
    ));

    // Healthy: heartbeats, each carrying the health report.
    until("three heartbeats", || pings.lock().len() >= 3).await;
    let report: Value = serde_json::from_str(&pings.lock()[0]).unwrap();
    assert_eq!(report["status"], "ok", "{report}");

    // The sweeper stops: unhealthy at once, and the heartbeats stop (one may be in flight).
    stop_sweeper.send(()).unwrap();
    sweeper.await.unwrap();
    let verdict = health.check(Utc::now());
    assert!(!verdict.healthy());
    assert_eq!(verdict.problems(), ["sweeper not running"]);
    let at_stop = pings.lock().len();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let settled = pings.lock().len();
    assert!(settled <= at_stop + 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pings.lock().len(), settled, "no heartbeat while unhealthy");

    // It runs again: so do the heartbeats.
    let (stop_sweeper, sweeper) = start_sweeper();
    until("heartbeats to resume", || pings.lock().len() > settled).await;

    // A dispatcher that ran and stopped is unhealthy too; one that never ran is not.
    assert!(health.check(Utc::now()).healthy());
    drop(health.dispatcher.start());
    let verdict = health.check(Utc::now());
    assert_eq!(verdict.problems(), ["alert dispatcher stopped"]);

    stop_watchdog.send(()).unwrap();
    watchdog.await.unwrap();
    stop_sweeper.send(()).unwrap();
    sweeper.await.unwrap();
    stop_flusher.send(()).unwrap();
    flusher.await.unwrap();
}
