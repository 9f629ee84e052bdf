//! Test harness for alert delivery: an in-memory [`Outbox`] (test-only: the real one is the
//! store's, over sled), fake destinations that are real HTTP servers on loopback, a real SMTP
//! server (`aiosmtpd` from the test venv), and alert factories.
//!
//! Part of the `it` test binary (`it/main.rs`); each test uses a subset of it, hence the allows.
#![allow(dead_code, unreachable_pub)]

pub use crate::support::python;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::time::Instant;
use watchpost_collector::alert::{
    Backoff, Channel, ChannelOptions, DeliveryState, DispatchHandle, DispatchOptions, Dispatcher,
    NewDelivery, Outbox, OutboxEntry, OutboxError, http_client,
};
use watchpost_collector::config::{self, ChannelKind};
use watchpost_collector::engine::alerting::{self, Alert, Links, Payload};
use watchpost_collector::engine::probes::ProbeNotice;
use watchpost_collector::engine::{
    Effect, FailureCounts, Incident, IncidentKind, IncidentReason, MonitorConfig, MonitorEnv,
    MonitorKey, Schedule,
};

/// The outbox, in memory. Test-only: the collector's outbox is the store's, in sled.
#[derive(Default)]
pub struct MemoryOutbox {
    state: Mutex<(u64, BTreeMap<u64, OutboxEntry>)>,
}

impl MemoryOutbox {
    /// Adds a pending delivery of `alert` to `channel` (rule `rule`); returns its id.
    pub fn push(&self, channel: &str, rule: &str, alert: &Alert) -> u64 {
        self.push_new(NewDelivery {
            channel: channel.to_owned(),
            rule: rule.to_owned(),
            payload: Payload::Alert(alert.clone()),
        })
    }

    /// Adds a pending delivery.
    pub fn push_new(&self, delivery: NewDelivery) -> u64 {
        let mut state = self.state.lock();
        state.0 += 1;
        let id = state.0;
        state
            .1
            .insert(id, OutboxEntry::new(id, delivery, Utc::now()));
        id
    }

    /// Every entry, by id.
    pub fn entries(&self) -> Vec<OutboxEntry> {
        self.state.lock().1.values().cloned().collect()
    }

    /// One entry.
    pub fn entry(&self, id: u64) -> OutboxEntry {
        self.state.lock().1[&id].clone()
    }

    /// Whether no entry is pending.
    pub fn drained(&self) -> bool {
        self.state
            .lock()
            .1
            .values()
            .all(|e| e.state != DeliveryState::Pending)
    }
}

impl Outbox for MemoryOutbox {
    fn pending(&self, channel: &str, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        Ok(self
            .state
            .lock()
            .1
            .values()
            .filter(|e| e.channel == channel && e.state == DeliveryState::Pending)
            .take(limit)
            .cloned()
            .collect())
    }

    fn pending_after(
        &self,
        channel: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, OutboxError> {
        Ok(self
            .state
            .lock()
            .1
            .range(after.map_or(0, |a| a.saturating_add(1))..)
            .map(|(_, e)| e)
            .filter(|e| e.channel == channel && e.state == DeliveryState::Pending)
            .take(limit)
            .cloned()
            .collect())
    }

    fn pending_count(&self, channel: &str) -> usize {
        self.state
            .lock()
            .1
            .values()
            .filter(|e| e.channel == channel && e.state == DeliveryState::Pending)
            .count()
    }

    fn save(&self, entries: &[OutboxEntry]) -> Result<(), OutboxError> {
        let mut state = self.state.lock();
        for entry in entries {
            state.1.insert(entry.id, entry.clone());
        }
        Ok(())
    }
}

/// Polls `done` every 10 ms; panics with `what` after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A runtime for the fakes of a synchronous test (the collector runs as its own process).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An RFC 3339 time from an alert's JSON.
pub fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("a time: {value}")))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// The wall-clock time a fake received a request.
pub fn arrived(seen: &Seen) -> DateTime<Utc> {
    Utc::now() - chrono::TimeDelta::from_std(seen.at.elapsed()).unwrap()
}

/// A free loopback port: nothing listens there until a test starts a server on it, so until
/// then connections are refused.
pub fn reserve_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// One request a fake received, and what it answered.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Null` if it is not JSON).
    pub json: Value,
    /// The raw body.
    pub body: String,
    /// The status answered.
    pub status: u16,
}

/// An answer: status, headers, body.
pub type Answer = (StatusCode, Vec<(&'static str, String)>, String);

/// Decides the answer to the `n`-th request (0-based).
pub type Responder = Arc<dyn Fn(&Seen, usize) -> Answer + Send + Sync>;

/// A fake destination: a real HTTP server on loopback that records every request.
pub struct Fake {
    /// Its address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    respond: Responder,
}

impl Fake {
    /// Serves on a new port.
    pub async fn start(respond: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Fake {
        Fake::start_on("127.0.0.1:0".parse().unwrap(), respond).await
    }

    /// Serves on `addr` (e.g. a [`reserve_port`]).
    pub async fn start_on(
        addr: SocketAddr,
        respond: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static,
    ) -> Fake {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind fake");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            seen: Arc::clone(&seen),
            respond: Arc::new(respond),
        };
        let app = axum::Router::new().fallback(record).with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve fake");
        });
        Fake {
            addr,
            url: format!("http://{addr}"),
            seen,
            task,
        }
    }

    /// Requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| (200..300).contains(&s.status))
            .collect()
    }

    /// The `monitor.failed` alerts about `slug` a webhook fake received.
    pub fn failures(&self, slug: &str) -> Vec<Value> {
        self.seen()
            .into_iter()
            .map(|seen| seen.json)
            .filter(|a| a["kind"] == "monitor.failed" && a["monitor"]["slug"] == slug)
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(state): State<FakeState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut seen = Seen {
        at: Instant::now(),
        method,
        path: uri.to_string(),
        headers,
        json: serde_json::from_str(&body).unwrap_or(Value::Null),
        body,
        status: 0,
    };
    let n = state.seen.lock().len();
    let (status, headers, body) = (state.respond)(&seen, n);
    seen.status = status.as_u16();
    state.seen.lock().push(seen);
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// `200` with a JSON body.
pub fn ok_json(body: &Value) -> Answer {
    (
        StatusCode::OK,
        vec![("content-type", "application/json".to_owned())],
        body.to_string(),
    )
}

/// A status with a plain body.
pub fn status(code: u16, body: &str) -> Answer {
    (
        StatusCode::from_u16(code).unwrap(),
        Vec::new(),
        body.to_owned(),
    )
}

/// A real SMTP server: `aiosmtpd` from the test venv, requiring LOGIN/PLAIN auth as `user` /
/// `secret` (over plain text: loopback), writing each message it receives, parsed by Python's
/// `email` package, as a JSON file in `dir`.
pub struct Smtp {
    child: Child,
    /// Where messages land, one `*.json` per message.
    pub dir: PathBuf,
}

const SMTP_SERVER: &str = r#"
import email, json, os, sys, time
from email import policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=policy.default)
        parts = [{"type": p.get_content_type(), "content": p.get_content()}
                 for p in msg.walk() if not p.is_multipart()]
        data = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "authenticated": bool(session.authenticated),
                "subject": str(msg["subject"]), "from": str(msg["from"]), "to": str(msg["to"]),
                "content_type": msg.get_content_type(), "parts": parts}
        name = os.path.join(out, "%020d.json" % time.time_ns())
        with open(name + ".tmp", "w") as f:
            json.dump(data, f)
        os.rename(name + ".tmp", name)
        return "250 Message accepted"

def check(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=auth_data.login == b"user" and auth_data.password == b"secret")

controller = Controller(Handler(), hostname=host, port=port, authenticator=check,
                        auth_required=True, auth_require_tls=False)
controller.start()
print("ready", flush=True)
try:
    sys.stdin.read()
finally:
    controller.stop()
"#;

impl Smtp {
    /// Starts it on `addr` and waits until it accepts connections. Blocks: call it from
    /// `spawn_blocking`.
    pub fn start(addr: SocketAddr, dir: &Path) -> Smtp {
        use std::io::BufRead as _;
        let mut child = Command::new(python::python())
            .arg("-c")
            .arg(SMTP_SERVER)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read aiosmtpd output");
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        Smtp {
            child,
            dir: dir.to_owned(),
        }
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read message");
                serde_json::from_str(&text).expect("message JSON")
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        // Closing stdin stops it; kill it if it lingers.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixed time for alert timestamps.
pub fn t(hour: u32, min: u32, sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, hour, min, sec).unwrap()
}

/// Dashboard links under a fixed public URL.
pub fn links() -> Links {
    Links::new("http://watchpost.example:8470/")
}

/// A `monitor.failed` (or, with `recovered`, `monitor.recovered`) alert for `slug`, built by
/// the engine's alert builder from an incident like the engine makes.
pub fn monitor_alert(slug: &str, recovered: bool) -> Alert {
    let key = MonitorKey::new(1, slug, Some("production")).unwrap();
    let mut monitor = MonitorEnv::new(
        key.clone(),
        MonitorConfig::new(Schedule::crontab("0 3 * * *").unwrap()),
    );
    monitor.last_ok = Some(t(1, 0, 0));
    let mut incident = Incident {
        id: uuid::Uuid::nil(),
        key,
        kind: IncidentKind::Monitor,
        opened_at: t(3, 5, 0),
        resolved_at: None,
        reason: IncidentReason::MissedCheckin,
        starting_checkin: uuid::Uuid::nil(),
        starting_timestamp: t(3, 0, 0),
        resolving_checkin: None,
        failures: FailureCounts {
            missed: 3,
            timeout: 0,
            error: 0,
        },
        notified: true,
        handling: Default::default(),
    };
    let (effect, now) = if recovered {
        incident.resolved_at = Some(t(4, 0, 0));
        (
            Effect::IncidentResolved {
                incident,
                notify: true,
            },
            t(4, 0, 0),
        )
    } else {
        (
            Effect::IncidentOpened {
                incident,
                notify: true,
            },
            t(3, 5, 0),
        )
    };
    alerting::monitor_alert(&effect, &monitor, None, &links(), now).expect("announced")
}

/// A `probe.down` (or `probe.up`) alert for probe `name`.
pub fn probe_alert(name: &str, down: bool) -> Alert {
    alerting::probe_alert(
        &ProbeNotice {
            down,
            name: name.to_owned(),
            url: "https://user:pw@api.example.com/health?token=abc".to_owned(),
            status_code: down.then_some(503),
            error: None,
            since: Some(t(3, 0, 0)),
        },
        &links(),
        t(3, 1, 0),
    )
}

/// Dispatcher settings for tests: short backoffs, paces and polls, dedup off (tests that want
/// it set a window).
pub fn fast_options() -> DispatchOptions {
    DispatchOptions {
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
        max_retry_after: Duration::from_secs(300),
        dedup_window: Duration::ZERO,
        batch: 1000,
        digest_backlog: None,
        give_up_after: None,
        poll: Duration::from_millis(50),
        channels: ChannelOptions {
            timeout: Duration::from_secs(2),
            telegram_chat_interval: Duration::from_millis(100),
            telegram_group_limit: (20, Duration::from_secs(60)),
            chat_interval: Duration::from_millis(100),
            email_interval: Duration::from_millis(10),
            alertmanager_resend: Duration::from_millis(150),
            alertmanager_resolved_for: Duration::from_secs(1),
            alertmanager_event_ttl: Duration::from_secs(3600),
        },
    }
}

/// A channel built the way the service builds it: from a `[[channels]]` entry.
pub fn channel(name: &str, kind: ChannelKind, options: &DispatchOptions) -> Channel {
    let client = http_client(&options.channels).expect("client");
    let config = config::Channel {
        name: name.to_owned(),
        kind,
        template: None,
    };
    Channel::from_config(&config, &client, &options.channels).expect("channel")
}

/// A running dispatcher.
pub struct Running {
    /// Wakes its workers.
    pub handle: DispatchHandle,
    /// Its channels.
    pub channels: Vec<Arc<Channel>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a dispatcher over `outbox`.
pub fn run(
    outbox: &Arc<MemoryOutbox>,
    channels: Vec<Channel>,
    options: DispatchOptions,
) -> Running {
    let outbox: Arc<dyn Outbox> = Arc::clone(outbox) as Arc<dyn Outbox>;
    let dispatcher = Dispatcher::new(outbox, channels, options);
    let handle = dispatcher.handle();
    let channels = dispatcher.channels().to_vec();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dispatcher.run(async move {
        let _ = stopped.await;
    }));
    Running {
        handle,
        channels,
        stop: Some(stop),
        task,
    }
}

impl Running {
    /// Stops it and waits for its workers.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("dispatcher task");
    }
}
