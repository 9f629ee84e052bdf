//! Test harness: starts the real `watchpost serve` binary on an ephemeral loopback port with a
//! temporary data dir, reads the startup lines it prints, and speaks HTTP to it.
//!
//! Each test binary compiles this module privately and uses a subset of it, hence the allows.
#![allow(dead_code, unreachable_pub)]

pub mod python;
pub mod tmpfs;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

/// How long the binary may take to print its startup lines.
const STARTUP: Duration = Duration::from_secs(30);

/// A running collector.
pub struct Collector {
    child: Option<Child>,
    data_dir: TempDir,
    config: Option<(TempDir, PathBuf)>,
    env: Vec<(String, String)>,
    /// `--listen`: an ephemeral port until [`Collector::restart_on_same_port`].
    listen: String,
    /// Soft and hard `RLIMIT_NOFILE` of the child, set with `prlimit` (our code forbids the
    /// `unsafe` a `pre_exec` would need); the harness's own limit when `None`.
    nofile: Option<u64>,
    stderr: Arc<Mutex<String>>,
    client: Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The first DSN printed.
    pub dsn: String,
    /// Its public key.
    pub key: String,
    /// The admin token.
    pub token: String,
    /// Everything printed on stdout at startup.
    pub lines: Vec<String>,
}

impl Collector {
    /// Starts a collector, with `config` (TOML) if given.
    pub fn start(config: Option<&str>) -> Collector {
        Collector::start_with_env(config, &[])
    }

    /// Starts a collector with extra environment variables.
    pub fn start_with_env(config: Option<&str>, env: &[(&str, &str)]) -> Collector {
        Collector::start_in(tempfile::tempdir().expect("temp dir"), config, env)
    }

    /// Starts a collector whose data dir is `data_dir/data`, which the caller may have prepared
    /// (a small tmpfs mounted there, say).
    pub fn start_in(data_dir: TempDir, config: Option<&str>, env: &[(&str, &str)]) -> Collector {
        Collector::start_limited(data_dir, config, env, None)
    }

    /// Starts a collector allowed at most `nofile` open files (soft and hard limit alike).
    pub fn start_with_nofile(config: Option<&str>, nofile: u64) -> Collector {
        let data_dir = tempfile::tempdir().expect("temp dir");
        Collector::start_limited(data_dir, config, &[], Some(nofile))
    }

    fn start_limited(
        data_dir: TempDir,
        config: Option<&str>,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Collector {
        let config = config.map(|text| {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("watchpost.toml");
            std::fs::write(&path, text).expect("write config");
            (dir, path)
        });
        let mut collector = Collector {
            child: None,
            data_dir,
            config,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            listen: "127.0.0.1:0".to_owned(),
            nofile,
            stderr: Arc::default(),
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            base: String::new(),
            dsn: String::new(),
            key: String::new(),
            token: String::new(),
            lines: Vec::new(),
        };
        collector.launch();
        collector
    }

    /// The data dir (it outlives restarts).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    fn command(&self) -> Command {
        let binary = env!("CARGO_BIN_EXE_watchpost");
        // `prlimit` sets its own limits and then executes the binary: same process id.
        let mut command = match self.nofile {
            Some(n) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.arg("serve").arg("--listen").arg(&self.listen);
        command
            .arg("--data-dir")
            .arg(self.data_dir.path().join("data"));
        if let Some((_, path)) = &self.config {
            command.arg("--config").arg(path);
        }
        command.env_remove("WATCHPOST_ADMIN_TOKEN");
        command.env("RUST_LOG", "info,sled=warn");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    fn launch(&mut self) {
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn watchpost");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        self.stderr = Arc::default();
        let sink = Arc::clone(&self.stderr);
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                    continue;
                }
            }
        });
        self.child = Some(child);
        self.lines.clear();
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let done = line.starts_with("watchpost: admin token");
                    self.lines.push(line);
                    if done {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                        panic!(
                            "watchpost exited during startup ({status}):\n{}",
                            self.stderr()
                        );
                    }
                }
                Err(_) => panic!(
                    "watchpost printed no admin token line; stdout so far: {:?}\nstderr:\n{}",
                    self.lines,
                    self.stderr()
                ),
            }
        }
        self.parse_lines();
    }

    fn parse_lines(&mut self) {
        let value = |prefix: &str| {
            self.lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no `{prefix}` line in {:?}", self.lines))
        };
        self.base = value("watchpost: listening on ");
        self.dsn = value("watchpost: DSN ");
        self.key = self
            .dsn
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .map(|(key, _)| key.to_owned())
            .expect("DSN has a key");
        let token_line = value("watchpost: admin token ");
        self.token = if let Some(path) = token_line.strip_prefix("in ") {
            std::fs::read_to_string(path)
                .expect("admin token file")
                .trim()
                .to_owned()
        } else if token_line.starts_with("from ") {
            self.env
                .iter()
                .find(|(k, _)| k == "WATCHPOST_ADMIN_TOKEN")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        } else {
            token_line
                .split_whitespace()
                .next()
                .expect("token")
                .to_owned()
        };
    }

    /// What the collector logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no shutdown work at all.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit (graceful shutdown).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "watchpost did not exit on SIGTERM"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts again on the same data dir (after `kill` or `terminate`).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Starts again on the same data dir and the same port, so clients holding the DSN
    /// reconnect (after `kill` or `terminate`).
    pub fn restart_on_same_port(&mut self) {
        self.kill();
        self.listen = self
            .base
            .strip_prefix("http://")
            .expect("an http base")
            .to_owned();
        self.launch();
    }

    /// A request to `path`, unauthenticated.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with the admin token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(&self.token)
    }

    /// `GET` a management path; asserts 200 and returns the JSON.
    pub fn api_get(&self, path: &str) -> Value {
        let response = self.admin(Method::GET, path).send().expect("request");
        let (status, body) = json(response);
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Posts an envelope with the DSN key in `X-Sentry-Auth`.
    pub fn post_envelope(&self, body: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .request(Method::POST, "/api/1/envelope/")
            .header("X-Sentry-Auth", sentry_auth(&self.key))
            .body(body)
            .send()
            .expect("request");
        json(response)
    }

    /// Check-ins of a monitor, newest first (`[]` if the monitor does not exist).
    pub fn checkins(&self, slug: &str) -> Vec<Value> {
        let response = self
            .admin(
                Method::GET,
                &format!("/api/v1/monitors/1/{slug}/checkins?limit=1000"),
            )
            .send()
            .expect("request");
        match json(response) {
            (StatusCode::OK, Value::Array(items)) => items,
            (StatusCode::NOT_FOUND, _) => Vec::new(),
            (status, body) => panic!("checkins of {slug}: {status} {body}"),
        }
    }

    /// The environments of a monitor (`[]` if it does not exist).
    pub fn monitor(&self, slug: &str) -> Vec<Value> {
        let response = self
            .admin(Method::GET, &format!("/api/v1/monitors/1/{slug}"))
            .send()
            .expect("request");
        match json(response) {
            (StatusCode::OK, Value::Array(items)) => items,
            (StatusCode::NOT_FOUND, _) => Vec::new(),
            (status, body) => panic!("monitor {slug}: {status} {body}"),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Status and JSON body of a response (`Value::Null` for an empty or non-JSON body).
pub fn json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts a JSON error response: the status, and an `error` sentence containing `needle`.
#[track_caller]
pub fn assert_error(response: Response, status: StatusCode, needle: &str) {
    let (got, body) = json(response);
    let message = body["error"].as_str().unwrap_or_default();
    assert_eq!(got, status, "body: {body}");
    assert!(
        message.contains(needle),
        "error {message:?} should contain {needle:?}"
    );
}

/// `Sentry sentry_key=<key>, sentry_version=7`.
pub fn sentry_auth(key: &str) -> String {
    format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=watchpost-tests/1")
}

/// An envelope of items `(type, payload)`, each with an explicit `length`.
pub fn envelope(items: &[(&str, &str)]) -> Vec<u8> {
    let mut out = b"{}\n".to_vec();
    for (ty, payload) in items {
        out.extend_from_slice(
            format!("{{\"type\":\"{ty}\",\"length\":{}}}\n", payload.len()).as_bytes(),
        );
        out.extend_from_slice(payload.as_bytes());
        out.push(b'\n');
    }
    out
}

/// A check-in JSON payload.
pub fn checkin(slug: &str, status: &str, id: Option<&str>, config: Option<Value>) -> String {
    let mut value = serde_json::json!({ "monitor_slug": slug, "status": status });
    if let Some(id) = id {
        value["check_in_id"] = id.into();
    }
    if let Some(config) = config {
        value["monitor_config"] = config;
    }
    value.to_string()
}

/// A monitor config with an interval schedule of `value` `unit`s.
pub fn interval(value: u64, unit: &str) -> Value {
    serde_json::json!({ "schedule": { "type": "interval", "value": value, "unit": unit } })
}

/// Held by the tests that load the machine the most (100,000 monitors, alert storms, floods of
/// bad input): they run one at a time, as they did when each file was a test binary of its
/// own, while lighter tests run beside them. Their bounds are generous, not speed claims; this
/// keeps two of them from sharing two cores and a 30 s request timeout.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Peak resident memory of a process in KiB, from `/proc/<pid>/status`.
pub fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// Calls `probe` every 25 ms until it returns `Some`, or panics after `within`.
#[track_caller]
pub fn poll<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(25));
    }
}

/// Runs `watchpost serve` with `config` expecting it to exit by itself (a config error);
/// returns the exit status and stderr.
pub fn run_to_exit(config: &str, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("watchpost.toml");
    std::fs::write(&path, config).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_watchpost"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("WATCHPOST_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn watchpost");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("watchpost kept running with config:\n{config}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status, stderr)
}
