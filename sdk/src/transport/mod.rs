//! The transport: one `watchpost-transport` thread that drains the bounded queue, turns records
//! into envelopes, compresses and sends them, retries, and honours the server's rate limits.
//!
//! This is the only place that serializes or does I/O. It must never call back into user code
//! and never hold up a caller: callers only ever `try_send` into its queue.
//!
//! # Why a current-thread tokio runtime and async reqwest
//!
//! Sending happens on a dedicated std thread that owns a current-thread tokio runtime and an
//! async `reqwest::Client` (as sentry-rust's `tokio_thread` transport does). The application's
//! runtime, if any, is never used, so a panicking or blocked app runtime cannot stall reports, and
//! the thread exists whether or not the app is async. `reqwest::blocking` would hide a second
//! thread with its own runtime behind every client; this way there is exactly one thread.
//!
//! # Waking up
//!
//! When the queue is empty the thread parks with a timeout (20 ms after activity, doubling to
//! 1 s while idle) instead of blocking in `recv`. A receiver blocked in `recv` must be woken by
//! the next sender with a futex syscall, on the application's thread; a parked poller costs the
//! sender nothing, and bursts arrive already batched. The price is up to a second of latency for
//! the first report after a quiet spell, which no monitor notices (margins are minutes), and about
//! one wake-up per second while idle. `flush` and shutdown `unpark` the thread at once.
//!
//! # Batching, retries and order
//!
//! Everything waiting in the queue (up to [`MAX_BATCH`]) is taken at once: check-ins go out as one
//! envelope with one `check_in` item each, every event as its own envelope (Sentry accepts one
//! event per envelope). A network error or a `5xx` is retried with exponential backoff, up to
//! [`MAX_ATTEMPTS`] tries, before the next envelope is sent, so order is kept; after the last try
//! the items count as failed. Other `4xx` answers are final and count as failed at once.
//!
//! # Rate limits
//!
//! `429` with `Retry-After`, and `X-Sentry-Rate-Limits` on any answer, limit a category
//! (`monitor` for check-ins, `error` for events; empty categories mean all; a bare `429` means 60 s
//! for all). Policy: items of a limited category, including those of the rejected envelope, are
//! *held* in order on this thread and sent once the limit expires, so a short limit loses nothing.
//! The hold is bounded by the queue size; items beyond it are dropped and counted as
//! `rate_limited`, as are items still held when the client shuts down. Other categories keep
//! flowing meanwhile.
//!
//! # Flush
//!
//! `flush` enqueues a marker; it is acknowledged once everything queued before it was sent,
//! failed, or held for a rate limit.

mod gzip;
mod ratelimit;

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use self::gzip::Gzip;
use self::ratelimit::{Category, RateLimits};
use crate::client::Counters;
use crate::protocol::{Auth, CheckIn, Dsn, Envelope, Event};
use crate::record::Task;

/// Most items taken from the queue, and put in one check-in envelope, at a time.
pub(crate) const MAX_BATCH: usize = 100;
/// Tries per envelope on network errors and `5xx` answers.
pub(crate) const MAX_ATTEMPTS: u32 = 5;
/// The first retry waits this long, each further one twice as long (with ±25 % jitter).
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// How long the idle transport sleeps before looking at the queue again: `POLL_MIN` after
/// activity, doubling up to `POLL_MAX` while nothing comes. So a report waits at most `POLL_MAX`
/// before it is sent (unless flushed), and an idle process wakes about once a second.
const POLL_MIN: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the transport thread needs from the options.
pub(crate) struct Config {
    pub(crate) dsn: Dsn,
    pub(crate) environment: String,
    pub(crate) release: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) debug: bool,
    /// How many items may wait for a rate limit to expire.
    pub(crate) hold_capacity: usize,
}

thread_local! {
    static IS_TRANSPORT: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is a transport thread (the panic hook must not wait on itself).
pub(crate) fn is_transport_thread() -> bool {
    IS_TRANSPORT.get()
}

/// Spawns the transport thread, which runs until it receives `Shutdown` or every sender is gone.
/// Returns its handle, to `unpark` it when a flush or shutdown marker is queued.
pub(crate) fn spawn(
    config: Config,
    queue: Receiver<Task>,
    counters: Arc<Counters>,
) -> std::io::Result<std::thread::Thread> {
    let handle = std::thread::Builder::new()
        .name("watchpost-transport".to_owned())
        .spawn(move || {
            IS_TRANSPORT.set(true);
            let debug = config.debug;
            match Worker::new(config, counters) {
                Ok(worker) => worker.run(&queue),
                Err(err) => {
                    if debug {
                        eprintln!(
                            "watchpost: transport could not start, reports are dropped: {err}"
                        );
                    }
                }
            }
        })?;
    Ok(handle.thread().clone())
}

/// A converted item waiting to be sent.
#[allow(
    clippy::large_enum_variant,
    reason = "lives only on the transport thread, in a short Vec or the bounded hold queue"
)]
enum Pending {
    CheckIn(CheckIn),
    Event(Box<Event>),
}

impl Pending {
    fn category(&self) -> Category {
        match self {
            Pending::CheckIn(_) => Category::Monitor,
            Pending::Event(_) => Category::Error,
        }
    }
}

enum Control {
    Flush(SyncSender<()>),
    Shutdown,
}

enum Delivery {
    Sent,
    RateLimited,
    Failed,
}

struct Worker {
    config: Config,
    counters: Arc<Counters>,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    url: String,
    auth: String,
    limits: RateLimits,
    held: VecDeque<Pending>,
    drops_reported: u64,
    gzip: Gzip,
    /// Reused for every envelope: the serialized form, then the compressed body.
    json: Vec<u8>,
    body: Vec<u8>,
}

impl Worker {
    fn new(config: Config, counters: Arc<Counters>) -> Result<Worker, Box<dyn std::error::Error>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let http = {
            let _entered = runtime.enter();
            reqwest::Client::builder()
                .user_agent(crate::CLIENT_NAME)
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .build()?
        };
        let mut auth = Auth::new(config.dsn.public_key(), crate::CLIENT_NAME);
        auth.secret = config.dsn.secret_key().map(str::to_owned);
        Ok(Worker {
            url: config.dsn.envelope_url(),
            auth: auth.to_string(),
            config,
            counters,
            runtime,
            http,
            limits: RateLimits::default(),
            held: VecDeque::new(),
            drops_reported: 0,
            gzip: Gzip::new(),
            json: Vec::new(),
            body: Vec::new(),
        })
    }

    fn run(mut self, queue: &Receiver<Task>) {
        let mut idle = POLL_MIN;
        loop {
            let first = match queue.try_recv() {
                Ok(task) => Some(task),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    // Nothing queued: sleep without registering as a waiting receiver, so that
                    // callers' `try_send`s never have to wake us (no syscall on their side).
                    // `flush` and shutdown unpark us; held items wake us when their limit ends.
                    let now = Instant::now();
                    let mut wait = idle;
                    if !self.held.is_empty() {
                        wait = wait.min(self.release_time(now).saturating_duration_since(now));
                    }
                    if !wait.is_zero() {
                        std::thread::park_timeout(wait);
                        idle = (idle * 2).min(POLL_MAX);
                        continue;
                    }
                    None // held items are due: deliver them below
                }
            };
            idle = POLL_MIN;
            let mut batch = Vec::new();
            let mut control = None;
            let mut next = first;
            while let Some(task) = next {
                if matches!(task, Task::CheckIn(_) | Task::Event(_)) {
                    self.counters.queued.fetch_add(1, Relaxed);
                }
                match task {
                    Task::CheckIn(record) => {
                        batch.push(Pending::CheckIn(
                            record.to_check_in(&self.config.environment),
                        ));
                    }
                    Task::Event(event) => batch.push(Pending::Event(self.enrich(event))),
                    Task::Flush(ack) => control = Some(Control::Flush(ack)),
                    Task::Shutdown => control = Some(Control::Shutdown),
                }
                if control.is_some() || batch.len() >= MAX_BATCH {
                    break;
                }
                next = queue.try_recv().ok();
            }
            self.deliver(batch);
            self.report_drops();
            match control {
                Some(Control::Flush(ack)) => {
                    let _ = ack.try_send(());
                }
                Some(Control::Shutdown) => break,
                None => {}
            }
        }
        // Whatever still waits for a rate limit is lost now.
        let held = self.held.len() as u64;
        self.counters.rate_limited.fetch_add(held, Relaxed);
        self.report_drops();
    }

    fn enrich(&self, mut event: Box<Event>) -> Box<Event> {
        let config = &self.config;
        event
            .environment
            .get_or_insert_with(|| config.environment.clone());
        if event.release.is_none() {
            event.release.clone_from(&config.release);
        }
        if event.server_name.is_none() {
            event.server_name.clone_from(&config.server_name);
        }
        event.other.entry("sdk").or_insert_with(
            || json!({ "name": "watchpost", "version": env!("CARGO_PKG_VERSION") }),
        );
        event
    }

    /// When held items may go: the earliest expiry among the categories that hold items.
    fn release_time(&self, now: Instant) -> Instant {
        [Category::Monitor, Category::Error]
            .into_iter()
            .filter(|c| self.held.iter().any(|p| p.category() == *c))
            .map(|c| self.limits.limited_until(c, now))
            .min()
            .unwrap_or(now)
    }

    /// Sends held items (first, to keep order) and `new` ones, or holds them while limited.
    fn deliver(&mut self, new: Vec<Pending>) {
        let mut check_ins = Vec::new();
        let mut events = Vec::new();
        for pending in self.held.drain(..).chain(new) {
            match pending {
                Pending::CheckIn(c) => check_ins.push(c),
                Pending::Event(e) => events.push(e),
            }
        }
        while !check_ins.is_empty() {
            let rest = check_ins.split_off(check_ins.len().min(MAX_BATCH));
            let chunk = std::mem::replace(&mut check_ins, rest);
            let mut envelope = self.envelope(None);
            for check_in in &chunk {
                envelope.add_json_item("check_in", check_in);
            }
            let items = chunk.into_iter().map(Pending::CheckIn).collect();
            self.send(Category::Monitor, &envelope, items);
        }
        for event in events {
            let mut envelope = self.envelope(Some(&event));
            envelope.add_json_item("event", &*event);
            self.send(Category::Error, &envelope, vec![Pending::Event(event)]);
        }
    }

    fn envelope(&self, event: Option<&Event>) -> Envelope {
        let mut headers = Map::new();
        if let Some(event) = event {
            headers.insert(
                "event_id".into(),
                Value::String(event.event_id.simple().to_string()),
            );
        }
        let sent_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        headers.insert("sent_at".into(), Value::String(sent_at));
        headers.insert(
            "sdk".into(),
            json!({ "name": "watchpost", "version": env!("CARGO_PKG_VERSION") }),
        );
        Envelope {
            headers,
            items: Vec::new(),
        }
    }

    fn send(&mut self, category: Category, envelope: &Envelope, items: Vec<Pending>) {
        if self.limits.is_limited(category, Instant::now()) {
            self.hold(items);
            return;
        }
        self.json.clear();
        envelope
            .write_to(&mut self.json)
            .expect("writing to a Vec never fails");
        let mut body = std::mem::take(&mut self.body);
        self.gzip.encode(&self.json, &mut body);
        let what = match category {
            Category::Monitor => "check-ins",
            Category::Error => "an event",
        };
        let count = items.len() as u64;
        let delivery = self.post_with_retries(&body, what);
        self.body = body;
        match delivery {
            Delivery::Sent => {
                self.counters.sent.fetch_add(count, Relaxed);
            }
            Delivery::RateLimited => {
                let now = Instant::now();
                if !self.limits.is_limited(category, now) {
                    // A 429 whose header names only other categories: wait as for a bare 429
                    // rather than retrying at once.
                    self.limits.update(429, None, None, now);
                }
                self.hold(items);
            }
            Delivery::Failed => {
                self.counters.failed.fetch_add(count, Relaxed);
            }
        }
    }

    fn hold(&mut self, items: Vec<Pending>) {
        for item in items {
            if self.held.len() < self.config.hold_capacity {
                self.held.push_back(item);
            } else {
                self.counters.rate_limited.fetch_add(1, Relaxed);
            }
        }
    }

    fn post_with_retries(&mut self, body: &[u8], what: &str) -> Delivery {
        for attempt in 1..=MAX_ATTEMPTS {
            let failure = match self.post(body) {
                Ok((status, retry_after, rate_limits)) => {
                    self.limits.update(
                        status,
                        retry_after.as_deref(),
                        rate_limits.as_deref(),
                        Instant::now(),
                    );
                    match status {
                        200..=299 => return Delivery::Sent,
                        429 => {
                            self.debug(format_args!("sending {what} was rate-limited (HTTP 429)"));
                            return Delivery::RateLimited;
                        }
                        500..=599 => format!("HTTP {status}"),
                        _ => {
                            self.debug(format_args!(
                                "sending {what} failed: HTTP {status}; not retrying"
                            ));
                            return Delivery::Failed;
                        }
                    }
                }
                Err(err) => err,
            };
            self.debug(format_args!(
                "sending {what} failed (attempt {attempt} of {MAX_ATTEMPTS}): {failure}"
            ));
            if attempt < MAX_ATTEMPTS {
                std::thread::sleep(backoff(attempt));
            }
        }
        Delivery::Failed
    }

    /// One POST; the status and the rate-limit headers, or why there was no answer.
    #[allow(clippy::type_complexity)]
    fn post(&self, body: &[u8]) -> Result<(u16, Option<String>, Option<String>), String> {
        let request = self
            .http
            .post(&self.url)
            .header("X-Sentry-Auth", &self.auth)
            .header("Content-Type", "application/x-sentry-envelope")
            .header("Content-Encoding", "gzip")
            .body(body.to_vec());
        self.runtime.block_on(async move {
            let response = request.send().await.map_err(|e| error_chain(&e))?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let answer = (
                response.status().as_u16(),
                header("retry-after"),
                header("x-sentry-rate-limits"),
            );
            // Read the (small) body so the connection can be reused.
            let _ = response.bytes().await;
            Ok(answer)
        })
    }

    fn report_drops(&mut self) {
        let dropped = self.counters.dropped.load(Relaxed);
        let rate_limited = self.counters.rate_limited.load(Relaxed);
        let total = dropped + rate_limited;
        if total > self.drops_reported {
            self.drops_reported = total;
            self.debug(format_args!(
                "{total} reports dropped so far ({dropped} because the queue was full, \
                 {rate_limited} because of rate limits)"
            ));
        }
    }

    fn debug(&self, message: std::fmt::Arguments<'_>) {
        if self.config.debug {
            eprintln!("watchpost: {message}");
        }
    }
}

/// `100 ms · 2^(attempt-1)`, ±25 % so that many clients do not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE * 2u32.saturating_pow(attempt.saturating_sub(1));
    let jitter = 0.75 + (crate::rng::next_u64() >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
    base.mul_f64(jitter)
}

/// `error sending request: connection refused`, not just the outermost message.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
