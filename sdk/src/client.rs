//! The global client: which transport queue reports go to, reachable from any thread.
//!
//! The hot path reads one relaxed atomic (`GENERATION`, 0 when disabled). When enabled it finds
//! the client through a thread-local cache keyed by that generation, so it takes no lock and
//! touches no shared reference count. `init` (`init.rs`) replaces the client (tests rely on it); a thread
//! notices on its next call because the generation changed.
//!
//! Must never block the caller: queue sends are `try_send`, and the only lock (`CURRENT`) is taken
//! for reading once per thread per generation, and only with `try_read` from the panic hook.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::generation;
pub(crate) use crate::generation::generation;
pub use crate::generation::is_enabled;
use crate::protocol::Event;
use crate::record::{CheckInRecord, Task};

static NEXT_GENERATION: AtomicUsize = AtomicUsize::new(1);
static CURRENT: RwLock<Option<Arc<Client>>> = RwLock::new(None);

thread_local! {
    static CACHE: RefCell<Cached> = const { RefCell::new(Cached { generation: 0, client: None }) };
}

struct Cached {
    generation: usize,
    client: Option<Arc<Client>>,
}

/// An initialised SDK: the sending half of the transport queue and the counters.
pub(crate) struct Client {
    generation: usize,
    tx: SyncSender<Task>,
    /// The transport thread, unparked when a flush or shutdown marker is queued.
    worker: std::thread::Thread,
    counters: Arc<Counters>,
    pub(crate) shutdown_timeout: Duration,
}

/// What happened to reports. Callers write only `dropped` (the rare path); everything else is
/// counted by the transport thread, so a successful `try_send` touches no shared counter (a
/// counter bumped by every caller and read by the transport would bounce its cache line between
/// cores on every check-in).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) queued: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// Counts of check-ins and events since [`init`], from [`stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Accepted into the queue. Counted as the transport takes them off the queue, so right
    /// after a burst it lags by what is still waiting; after [`flush`] it is exact.
    pub queued: u64,
    /// Delivered: the server answered 2xx.
    pub sent: u64,
    /// Dropped for want of room: on the caller's thread because the queue was full (or the
    /// transport had stopped), or by the transport because its hold was full while the server
    /// was unreachable (these were counted as `queued` first).
    pub dropped: u64,
    /// Dropped because the server rate-limited their category for longer than we could hold
    /// them (see the transport's rate-limit policy), or still held when the client shut down.
    pub rate_limited: u64,
    /// Given up on: the server refused them (4xx other than 429), or it was still unreachable
    /// when the client shut down. Network errors and 5xx answers are retried until then.
    pub failed: u64,
}

/// Runs `f` with the current client, if there is one. `generation` is what the caller loaded from
/// [`generation()`] (non-zero). Never blocks except for a read lock taken once per thread per
/// generation; the panic hook uses [`current_nonblocking`] instead.
#[inline]
pub(crate) fn with_client<R>(generation: usize, f: impl FnOnce(&Client) -> R) -> Option<R> {
    let mut f = Some(f);
    let fast = CACHE.try_with(|cell| {
        let cache = cell.try_borrow().ok()?;
        if cache.generation != generation {
            return None;
        }
        Some(match (&cache.client, f.take()) {
            (Some(client), Some(f)) => Some(f(client)),
            _ => None,
        })
    });
    if let Ok(Some(served)) = fast {
        return served;
    }
    // The cache is stale, or this thread's locals are being destroyed.
    let client = refresh(generation);
    client.as_deref().and_then(|c| f.take().map(|f| f(c)))
}

#[cold]
fn refresh(generation: usize) -> Option<Arc<Client>> {
    let client = read_current();
    let _ = CACHE.try_with(|cell| {
        if let Ok(mut cache) = cell.try_borrow_mut() {
            cache.generation = client.as_ref().map_or(generation, |c| c.generation);
            cache.client = client.clone();
        }
    });
    client
}

fn read_current() -> Option<Arc<Client>> {
    CURRENT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The current client without ever waiting on a lock, for the panic hook: the panicking thread
/// may be the one holding it.
pub(crate) fn current_nonblocking() -> Option<Arc<Client>> {
    let generation = generation();
    if generation == 0 {
        return None;
    }
    let cached = CACHE
        .try_with(|cell| {
            let cache = cell.try_borrow().ok()?;
            (cache.generation == generation)
                .then(|| cache.client.clone())
                .flatten()
        })
        .ok()
        .flatten();
    cached.or_else(|| match CURRENT.try_read() {
        Ok(current) => current.clone(),
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().clone(),
        Err(std::sync::TryLockError::WouldBlock) => None,
    })
}

/// Queues a check-in; returns whether a client took it.
#[inline]
pub(crate) fn send_check_in(record: CheckInRecord) -> bool {
    let generation = generation();
    generation != 0
        && with_client(generation, |c| c.enqueue(Task::CheckIn(record))).unwrap_or(false)
}

/// Queues a check-in and wakes the transport at once, for the rare check-ins whose timing
/// matters to the second (heartbeats): otherwise an idle transport may take up to a second to
/// notice it. Returns whether a client took it.
pub(crate) fn send_check_in_now(record: CheckInRecord) -> bool {
    let generation = generation();
    generation != 0
        && with_client(generation, |c| {
            let queued = c.enqueue(Task::CheckIn(record));
            c.worker.unpark();
            queued
        })
        .unwrap_or(false)
}

/// Adds the current scope to an event and queues it; returns its id if a client took it.
pub(crate) fn capture_event(mut event: Event) -> Option<Uuid> {
    let generation = generation();
    if generation == 0 {
        return None;
    }
    crate::scope::apply(&mut event);
    let id = event.event_id;
    with_client(generation, |c| c.enqueue(Task::Event(Box::new(event))))
        .unwrap_or(false)
        .then_some(id)
}

impl Client {
    /// Hands `task` to the transport thread without waiting; counts it as dropped if the queue
    /// is full (or the transport gone).
    #[inline]
    pub(crate) fn enqueue(&self, task: Task) -> bool {
        match self.tx.try_send(task) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Waits until the transport has handled everything queued so far, at most `timeout`.
    /// Returns whether it did.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack, acked) = sync_channel(1);
        let mut marker = Task::Flush(ack);
        // The queue may be full: retry the marker until there is room, within the deadline.
        loop {
            match self.tx.try_send(marker) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    marker = m;
                    self.worker.unpark();
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return false,
            }
        }
        self.worker.unpark();
        acked
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            queued: c.queued.load(Relaxed),
            sent: c.sent.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            rate_limited: c.rate_limited.load(Relaxed),
            failed: c.failed.load(Relaxed),
        }
    }
}

/// Keeps the SDK running; dropping it sends what is queued (waiting at most
/// [`ClientOptions::shutdown_timeout`]) and stops the transport thread.
///
/// Keep it alive for as long as the program runs, typically as `let _guard = ...` in `main`
/// (not `let _ = ...`, which drops it at once).
#[must_use = "dropping the guard shuts the SDK down; bind it with `let _guard = ...`"]
pub struct ClientGuard {
    client: Option<Arc<Client>>,
}

impl ClientGuard {
    /// Whether this guard holds a running client (a DSN was given and parsed).
    pub fn is_enabled(&self) -> bool {
        self.client.is_some()
    }

    /// Waits until everything queued so far was handled, at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.client.as_ref().is_some_and(|c| c.flush(timeout))
    }
}

impl std::fmt::Debug for ClientGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientGuard")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        // Stop taking new reports for this client, unless `init` has replaced it already.
        {
            let mut current = CURRENT.write().unwrap_or_else(PoisonError::into_inner);
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &client)) {
                generation::set(0);
                *current = None;
            }
        }
        client.flush(client.shutdown_timeout);
        // If the queue is full the worker still sees the shutdown once it drains, or exits when
        // every sender is gone.
        let _ = client.tx.try_send(Task::Shutdown);
        client.worker.unpark();
    }
}

/// Makes a new client current (replacing any previous one) and returns the guard that keeps
/// it: `init` calls this once the transport thread runs.
pub(crate) fn install(
    tx: SyncSender<Task>,
    worker: std::thread::Thread,
    counters: Arc<Counters>,
    shutdown_timeout: Duration,
) -> ClientGuard {
    let client = Arc::new(Client {
        generation: NEXT_GENERATION.fetch_add(1, Relaxed),
        tx,
        worker,
        counters,
        shutdown_timeout,
    });
    replace_current(Some(Arc::clone(&client)));
    ClientGuard {
        client: Some(client),
    }
}

/// Disables the SDK (replacing any previous client) and returns a guard that holds nothing.
pub(crate) fn install_disabled() -> ClientGuard {
    replace_current(None);
    ClientGuard { client: None }
}

fn replace_current(client: Option<Arc<Client>>) {
    let mut current = CURRENT.write().unwrap_or_else(PoisonError::into_inner);
    generation::set(client.as_ref().map_or(0, |c| c.generation));
    *current = client;
}

/// Waits until everything queued so far was sent (or given up on), at most `timeout`. Returns
/// `false` on timeout or when the SDK is disabled.
pub fn flush(timeout: Duration) -> bool {
    if !is_enabled() {
        return false;
    }
    read_current().is_some_and(|c| c.flush(timeout))
}

/// Counts of what the current client queued, sent, dropped and failed to send; all zero when
/// the SDK is disabled.
pub fn stats() -> Stats {
    let generation = generation();
    if generation == 0 {
        return Stats::default();
    }
    with_client(generation, Client::stats).unwrap_or_default()
}
