//! Serving HTTP connections: the accept loop `axum::serve` was, with the limits it lacked.
//!
//! **Why.** `axum::serve` gives hyper no timer, so it had no header, body or idle timeout,
//! and it accepts every connection it can: 2,000 idle and 1,000 slow-header connections all
//! stayed open, 1,000 half-sent 380 KB headers pinned 410 MB, and once idle connections held
//! the process's 1,024 descriptors, sled failed to open a file and the store stuck.
//!
//! **What.**
//! - Descriptors: [`raise_nofile`] lifts the soft `RLIMIT_NOFILE` to the hard limit at start,
//!   and [`connection_cap`] keeps connections below it, with headroom for the store, the
//!   outbound clients (alerts, probes, upstream, watchdog) and the runtime.
//! - Connections: each holds a permit of a semaphore of `max_connections` permits, taken
//!   *before* `accept`, so an excess connection waits in the kernel's accept backlog
//!   ([`ACCEPT_BACKLOG`]), costing the process no descriptor, instead of being accepted and
//!   dropped.
//! - Request heads: hyper's `header_read_timeout`, which also bounds an idle keep-alive
//!   connection (hyper starts it whenever it waits for the next request's head), and
//!   `max_header_size` with `max_buf_size`, the bytes of a request head buffered per
//!   connection (more is a `431`).
//! - Bodies: each request body is a [`TimedBody`] with a deadline; the body readers of
//!   `http.rs` answer its [`BodyTimedOut`] with a `408` and a sentence.
//! - Shutdown: on the signal, stop accepting, let in-flight requests finish for at most
//!   `grace`, then leave the rest to be dropped with the runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::Service as _;

/// Descriptors kept out of the connection cap for everything else the collector opens: sled's
/// files (it opens a new one for every large value), the outbound HTTP clients, the runtime's
/// own (epoll, eventfds) and the standard streams. Half the limit when that is smaller.
pub(crate) const NOFILE_HEADROOM: u64 = 256;

/// Connections at most, however many descriptors there are: with [`MAX_HEADER_BYTES`] each,
/// a worst case of 128 MB of buffered request heads.
pub(crate) const MAX_CONNECTIONS: usize = 4096;

/// Bytes of a request head one connection may buffer. Real clients send well under 8 KiB
/// (Sentry SDKs under 1 KiB); nginx allows 4 x 8 KiB by default.
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;

/// What each connection is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections served at once; more wait in the accept backlog.
    pub max_connections: usize,
    /// How long a request head may take to arrive, and how long a keep-alive connection may
    /// stay idle.
    pub header_timeout: Duration,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
}

/// Connections the kernel completes and queues for `accept` while every permit is taken
/// (std's and tokio's `bind` ask for 128): a burst of clients waits there, costing the
/// process nothing, rather than having its connection attempts dropped and retried a second
/// or more later.
pub(crate) const ACCEPT_BACKLOG: u32 = 1024;

/// Binds `addr` for [`serve`], with [`ACCEPT_BACKLOG`] and, like `std`, `SO_REUSEADDR`, so a
/// restart does not wait for the last run's connections in `TIME_WAIT`.
pub(crate) fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Raises the soft limit on open files to the hard limit (the most an unprivileged process
/// may) and returns the soft limit now in force. A failure is logged and the old limit kept.
pub(crate) fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // Linux refuses an infinite `RLIMIT_NOFILE`; its default ceiling (`nr_open`) is 2^20.
    const CEILING: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(CEILING).min(CEILING);
    let wanted = limit.maximum.unwrap_or(CEILING).min(CEILING);
    if wanted <= current {
        return current;
    }
    let raised = Rlimit {
        current: Some(wanted),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => wanted,
        Err(error) => {
            tracing::warn!(%error, current, wanted, "cannot raise the limit on open files");
            current
        }
    }
}

/// The connections to serve at once with `nofile` descriptors: all but the headroom
/// ([`NOFILE_HEADROOM`], or half of `nofile` if that is less), at most [`MAX_CONNECTIONS`]
/// and at least one.
pub(crate) fn connection_cap(nofile: u64) -> usize {
    let headroom = NOFILE_HEADROOM.min(nofile / 2);
    usize::try_from(nofile.saturating_sub(headroom))
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_CONNECTIONS)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish for at most `grace`. Returns whether every connection finished in time.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> bool {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Both: the buffer may hold a whole oversized head at once, which parses; the header
        // size is then what refuses it (`431`).
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // Log the first failed accept of a streak, not every retry of it.
    let mut failing = false;
    tokio::pin!(shutdown);
    loop {
        // The permit first: without one, the connection stays in the backlog.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors (EMFILE) and the like: the connection stays in the
                    // backlog; try again shortly rather than spin.
                    if !failing {
                        tracing::error!(%error, "cannot accept connections; retrying");
                        failing = true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if failing {
            tracing::info!("accepting connections again");
            failing = false;
        }
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(|body| TimedBody::new(body, body_timeout));
            // The client's address, for what is judged per client (`throttle.rs`).
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Timeouts and clients that go away end here; nothing a person needs to read.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => true,
        Err(_) => {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "requests still in flight at the end of the shutdown grace period; dropping them"
            );
            false
        }
    }
}

/// A request body that must have arrived by a deadline: a client that sends its body slowly
/// cannot hold a connection (and the request's locks and buffers) indefinitely.
#[derive(Debug)]
pub(crate) struct TimedBody {
    body: Incoming,
    limit: Duration,
    started: Instant,
    /// Created the first time the body is not ready: most bodies arrive with their head.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(body: Incoming, limit: Duration) -> TimedBody {
        TimedBody {
            body,
            limit,
            started: Instant::now(),
            deadline: None,
        }
    }
}

/// The error a [`TimedBody`] ends with when its deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
pub(crate) struct BodyTimedOut(pub Duration);

impl Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let at = this.started + this.limit;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut(this.limit).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Whether `error` (from reading a request body) is a [`TimedBody`]'s deadline, and which.
pub(crate) fn body_timed_out(error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    std::iter::successors(Some(error), |e| e.source())
        .find_map(|e| e.downcast_ref::<BodyTimedOut>())
        .map(|timed_out| timed_out.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_headroom_for_the_store() {
        assert_eq!(connection_cap(1024), 768);
        assert_eq!(connection_cap(256), 128);
        assert_eq!(connection_cap(1 << 20), MAX_CONNECTIONS);
        assert_eq!(connection_cap(1), 1);
    }
}
