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
//! event per envelope). Check-ins keep their order, and so do events.
//!
//! # Outages
//!
//! A network error or a `5xx` means the server is down or unwell, not that the reports are bad:
//! the envelope and everything after it are *held* in order on this thread, and the first of
//! them is tried again with exponential backoff (100 ms doubling, at most 4 s, ±25 % jitter, so
//! at most 5 s between tries) for as long as the process lives. Delivery resumes within those
//! few seconds of the server coming back, oldest first. Meanwhile reports keep arriving through
//! the bounded queue into the hold, which is bounded by the queue size; when it is full, the
//! oldest held report makes room for the new one and is counted as `dropped` (as the queue's own
//! overflow is, on the caller's thread). So an outage loses nothing until the hold is full, every
//! loss is counted, and what is lost is the oldest: the server learns the current state first,
//! no run's `in_progress` survives without its `ok` (a false timeout), and reports made after
//! the server is back push old ones out rather than being lost while the transport has not yet
//! noticed it is back. Only a refusal
//! (a `4xx` other than `429`) is final: those items count as `failed` at once.
//!
//! # Rate limits
//!
//! `429` with `Retry-After`, and `X-Sentry-Rate-Limits` on any answer, limit a category
//! (`monitor` for check-ins, `error` for events; empty categories mean all; a bare `429` means 60 s
//! for all). Policy: items of a limited category, including those of the rejected envelope, are
//! held in order, as in an outage, and sent once the limit expires, so a short limit loses
//! nothing. The hold is the same, bounded by the queue size; beyond it the oldest held items
//! are dropped, counted as `rate_limited` if their category is limited. Other categories keep
//! flowing meanwhile.
//!
//! # Flush and shutdown
//!
//! `flush` enqueues a marker; it is acknowledged once everything queued before it was sent,
//! refused, dropped, or held for a rate limit, i.e. not while the server is unreachable. The
//! marker also makes the next retry due at once. The caller waits at most its timeout either
//! way (then `flush` returns `false`), so shutdown (`ClientGuard`'s drop flushes within
//! `shutdown_timeout`) still ends at its bound during an outage. When the transport then stops,
//! what it still holds is counted as `rate_limited` if its category is limited, else as
//! `failed` (the server was still unreachable).

mod gzip;
mod ratelimit;

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use self::gzip::Gzip;
use self::ratelimit::{Category, RateLimits};
use crate::client::Counters;
use crate::record::Task;
use watchpost_protocol::{Auth, CheckIn, Dsn, Envelope, Event};

/// Most items taken from the queue, and put in one check-in envelope, at a time.
pub(crate) const MAX_BATCH: usize = 100;
/// After a network error or a `5xx`, the first retry waits this long, each further one twice as
/// long up to [`BACKOFF_MAX`], all with ±25 % jitter: so at most 5 s pass between tries, and
/// delivery resumes within that of the server coming back.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// Flush markers kept while the server is unreachable; older ones are let go (their callers
/// have timed out, or see `false` at once).
const MAX_FLUSHES: usize = 64;
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
    /// How many items may wait for a rate limit to expire or for the server to come back.
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

/// How one envelope went.
enum Delivery {
    Sent,
    RateLimited,
    /// Refused (a `4xx` other than `429`): final.
    Refused,
    /// No answer, or a `5xx`: the server is down or unwell; try again later.
    Unreachable,
}

/// The server could not be reached (or answered `5xx`): held items wait until `at`.
#[derive(Clone, Copy)]
struct Outage {
    /// Failed tries in a row.
    attempts: u32,
    /// When to try again.
    at: Instant,
    /// When the first of these tries failed.
    since: Instant,
}

struct Worker {
    config: Config,
    counters: Arc<Counters>,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    url: String,
    auth: String,
    limits: RateLimits,
    /// Items taken off the queue and not sent yet, in order within each category: waiting for a
    /// rate limit to expire or for the server to come back (or just taken, until `pump`).
    held: VecDeque<Pending>,
    /// Set while the server is unreachable.
    outage: Option<Outage>,
    /// Flushes waiting for the server to come back.
    flushes: Vec<SyncSender<()>>,
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
            outage: None,
            flushes: Vec::new(),
            drops_reported: 0,
            gzip: Gzip::new(),
            json: Vec::new(),
            body: Vec::new(),
        })
    }

    fn run(mut self, queue: &Receiver<Task>) {
        let mut idle = POLL_MIN;
        loop {
            // Take what is queued, up to a batch, stopping at a flush or shutdown marker so that
            // it is answered for what was queued before it.
            let mut taken = 0;
            let mut stop = false;
            while taken < MAX_BATCH {
                match queue.try_recv() {
                    Ok(Task::CheckIn(record)) => {
                        let check_in = record.to_check_in(&self.config.environment);
                        self.take(Pending::CheckIn(check_in));
                    }
                    Ok(Task::Event(event)) => {
                        let event = self.enrich(event);
                        self.take(Pending::Event(event));
                    }
                    Ok(Task::Flush(ack)) => {
                        // A flush is worth a try now, even while backing off.
                        if let Some(outage) = &mut self.outage {
                            outage.at = Instant::now();
                        }
                        self.flushes.push(ack);
                        break;
                    }
                    Ok(Task::Shutdown) | Err(TryRecvError::Disconnected) => {
                        stop = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
                taken += 1;
            }
            self.pump();
            if self.outage.is_none() {
                // Everything queued before them was sent, refused, dropped or is waiting for a
                // rate limit: acknowledge.
                for ack in self.flushes.drain(..) {
                    let _ = ack.try_send(());
                }
            } else if self.flushes.len() > MAX_FLUSHES {
                // Callers long gone (a flush returns at its timeout): their markers say no more.
                self.flushes.drain(..self.flushes.len() - MAX_FLUSHES);
            }
            self.report_drops();
            if stop {
                break;
            }
            if taken > 0 {
                idle = POLL_MIN;
                continue; // there may be more
            }
            // Nothing queued: sleep without registering as a waiting receiver, so that callers'
            // `try_send`s never have to wake us (no syscall on their side). `flush` and shutdown
            // unpark us; held items wake us when their limit ends or their retry is due.
            let now = Instant::now();
            let wait = match self.next_due(now) {
                Some(due) => idle.min(due.saturating_duration_since(now)),
                None => idle,
            };
            if !wait.is_zero() {
                std::thread::park_timeout(wait);
                idle = (idle * 2).min(POLL_MAX);
            }
        }
        // Whatever is still held is lost now: counted as rate-limited if its category is, else
        // as failed (the server was still unreachable).
        let now = Instant::now();
        for pending in std::mem::take(&mut self.held) {
            self.count_lost(&pending, now, &self.counters.failed);
        }
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
        let contexts = event.contexts.get_or_insert_with(Default::default);
        for (key, value) in default_contexts() {
            contexts.entry(key.clone()).or_insert_with(|| value.clone());
        }
        event.other.entry("sdk").or_insert_with(
            || json!({ "name": "watchpost", "version": env!("CARGO_PKG_VERSION") }),
        );
        event
    }

    /// Takes an item off the queue and holds it for `pump`. If it would have to wait (an outage
    /// or a rate limit) and the hold is full, the oldest held item makes room and is counted.
    fn take(&mut self, pending: Pending) {
        self.counters.queued.fetch_add(1, Relaxed);
        let now = Instant::now();
        let waits = self.outage.is_some() || self.limits.is_limited(pending.category(), now);
        if waits && self.held.len() >= self.config.hold_capacity {
            self.drop_oldest(now);
        }
        self.held.push_back(pending);
    }

    /// Drops the oldest held item, counting it. The oldest, not the newest: after an outage the
    /// server learns the jobs' current state first, a run's `in_progress` is never kept while its
    /// later `ok` is dropped (which would end as a false timeout), and reports made after the
    /// server is back push out old ones instead of being lost to a hold still full of them.
    fn drop_oldest(&mut self, now: Instant) {
        if let Some(oldest) = self.held.pop_front() {
            self.count_lost(&oldest, now, &self.counters.dropped);
        }
    }

    /// Counts an item given up on: `rate_limited` if its category is limited, else `otherwise`.
    fn count_lost(&self, pending: &Pending, now: Instant, otherwise: &AtomicU64) {
        if self.limits.is_limited(pending.category(), now) {
            self.counters.rate_limited.fetch_add(1, Relaxed);
        } else {
            otherwise.fetch_add(1, Relaxed);
        }
    }

    /// When held items may next go: the retry after an outage, else the earliest expiry among
    /// the limited categories that hold items. `None` when nothing is held.
    fn next_due(&self, now: Instant) -> Option<Instant> {
        if self.held.is_empty() {
            return None;
        }
        if let Some(outage) = &self.outage {
            return Some(outage.at);
        }
        [Category::Monitor, Category::Error]
            .into_iter()
            .filter(|c| self.held.iter().any(|p| p.category() == *c))
            .map(|c| self.limits.limited_until(c, now))
            .min()
    }

    /// Sends what is held, in order: check-ins in envelopes of up to [`MAX_BATCH`], then each
    /// event in its own. Items of a limited category stay held; at the first envelope the
    /// server does not take (no answer or `5xx`), it and everything after it stay held and the
    /// next try is scheduled with backoff.
    fn pump(&mut self) {
        if self.held.is_empty() || self.outage.is_some_and(|o| Instant::now() < o.at) {
            return;
        }
        let mut check_ins = VecDeque::new();
        let mut events = VecDeque::new();
        for pending in self.held.drain(..) {
            match pending {
                Pending::CheckIn(c) => check_ins.push_back(c),
                Pending::Event(e) => events.push_back(e),
            }
        }
        let mut limited = Vec::new();
        let mut unreachable = false;
        while !check_ins.is_empty() && !unreachable {
            if self.limits.is_limited(Category::Monitor, Instant::now()) {
                limited.extend(check_ins.drain(..).map(Pending::CheckIn));
                break;
            }
            let count = check_ins.len().min(MAX_BATCH);
            let mut envelope = self.envelope(None);
            for check_in in check_ins.range(..count) {
                envelope.add_json_item("check_in", check_in);
            }
            match self.send(Category::Monitor, &envelope, count) {
                Delivery::Unreachable => unreachable = true,
                Delivery::RateLimited => {} // held on the next turn of the loop
                Delivery::Sent | Delivery::Refused => {
                    check_ins.drain(..count);
                }
            }
        }
        while !events.is_empty() && !unreachable {
            if self.limits.is_limited(Category::Error, Instant::now()) {
                limited.extend(events.drain(..).map(Pending::Event));
                break;
            }
            let mut envelope = self.envelope(events.front().map(|e| &**e));
            if let Some(event) = events.front() {
                envelope.add_json_item("event", &**event);
            }
            match self.send(Category::Error, &envelope, 1) {
                Delivery::Unreachable => unreachable = true,
                Delivery::RateLimited => {}
                Delivery::Sent | Delivery::Refused => {
                    events.pop_front();
                }
            }
        }
        self.held.extend(limited);
        self.held
            .extend(check_ins.into_iter().map(Pending::CheckIn));
        self.held.extend(events.into_iter().map(Pending::Event));
        // Items taken while the server seemed fine may exceed the hold: drop the oldest.
        let now = Instant::now();
        while self.held.len() > self.config.hold_capacity {
            self.drop_oldest(now);
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

    /// Sends one envelope of `count` items once; counts them if sent or refused, and keeps the
    /// outage and rate-limit state up to date.
    fn send(&mut self, category: Category, envelope: &Envelope, count: usize) -> Delivery {
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
        let delivery = self.post_once(&body, what);
        self.body = body;
        let count = count as u64;
        match delivery {
            Delivery::Sent => {
                self.counters.sent.fetch_add(count, Relaxed);
            }
            Delivery::Refused => {
                self.counters.failed.fetch_add(count, Relaxed);
            }
            Delivery::RateLimited => {
                let now = Instant::now();
                if !self.limits.is_limited(category, now) {
                    // A 429 whose header names only other categories: wait as for a bare 429
                    // rather than retrying at once.
                    self.limits.update(429, None, None, now);
                }
            }
            Delivery::Unreachable => {}
        }
        delivery
    }

    /// One POST of `body`; records an outage (or its end) and the rate limits the answer set.
    fn post_once(&mut self, body: &[u8], what: &str) -> Delivery {
        let failure = match self.post(body) {
            Ok((status, retry_after, rate_limits)) => {
                self.limits.update(
                    status,
                    retry_after.as_deref(),
                    rate_limits.as_deref(),
                    Instant::now(),
                );
                let delivery = match status {
                    200..=299 => Delivery::Sent,
                    429 => {
                        self.debug(format_args!("sending {what} was rate-limited (HTTP 429)"));
                        Delivery::RateLimited
                    }
                    500..=599 => Delivery::Unreachable,
                    _ => {
                        self.debug(format_args!(
                            "sending {what} failed: HTTP {status}; not retrying"
                        ));
                        Delivery::Refused
                    }
                };
                if !matches!(delivery, Delivery::Unreachable) {
                    if let Some(outage) = self.outage.take() {
                        self.debug(format_args!(
                            "the server answers again after {:.1?} and {} failed tries",
                            outage.since.elapsed(),
                            outage.attempts
                        ));
                    }
                    return delivery;
                }
                format!("HTTP {status}")
            }
            Err(err) => err,
        };
        let now = Instant::now();
        let attempts = self.outage.map_or(0, |o| o.attempts) + 1;
        let wait = backoff(attempts);
        self.outage = Some(Outage {
            attempts,
            at: now + wait,
            since: self.outage.map_or(now, |o| o.since),
        });
        self.debug(format_args!(
            "sending {what} failed (try {attempts}): {failure}; holding it and what follows, \
             next try in {wait:.1?}"
        ));
        Delivery::Unreachable
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

/// `100 ms · 2^(attempt-1)`, at most [`BACKOFF_MAX`], ±25 % so that many clients do not retry
/// in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(BACKOFF_MAX);
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

/// The `os`, `runtime` and `device` contexts of every event: read once per process (the kernel
/// release from `/proc` where there is one), on the transport thread.
fn default_contexts() -> &'static serde_json::Map<String, serde_json::Value> {
    static CONTEXTS: std::sync::OnceLock<serde_json::Map<String, serde_json::Value>> =
        std::sync::OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let mut os = json!({ "name": std::env::consts::OS });
        if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
            os["kernel_version"] = release.trim().into();
        }
        let mut contexts = serde_json::Map::new();
        contexts.insert("os".to_owned(), os);
        contexts.insert(
            "runtime".to_owned(),
            json!({ "name": "rustc", "version": env!("WATCHPOST_RUSTC_VERSION") }),
        );
        contexts.insert(
            "device".to_owned(),
            json!({ "arch": std::env::consts::ARCH, "family": std::env::consts::FAMILY }),
        );
        contexts
    })
}
