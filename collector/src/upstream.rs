//! Upstream forwarding (docs/configuration.md, `[upstream]`): every envelope the collector accepts is relayed to a
//! Sentry-compatible server (`[upstream] dsn`), so a team can keep alerting locally while
//! Sentry or Relay does the heavy lifting.
//!
//! Ingest hands the raw envelope to the processor ([`crate::processor::Batch::forward`]), which
//! queues it in the store's `upstream` tree *in the same transaction* as the state change: an
//! acknowledged envelope is durably queued, with no window. A forwarder task relays the queue
//! oldest first, removes what the upstream took, and backs off (with jitter, honouring
//! `Retry-After`) while it is unreachable or answers with a redirect, which it never follows
//! (`crate::redirect`). The queue is bounded: beyond `max_backlog` the oldest
//! envelopes are dropped and counted.
//!
//! It must never slow or fail ingest: the only work on the request path is one more insert in a
//! transaction that happens anyway, plus the bookkeeping in [`Upstream::queued`]. Delivery is at
//! least once (a crash between the upstream's `200` and the queue removal sends it again).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::Notify;
use watchpost_protocol::{self as protocol, Auth, Dsn, Envelope};

use crate::config;
use crate::store::{QueuedEnvelope, Store, StoreError};

/// Envelopes read from the queue per round.
const BATCH: usize = 32;
/// First retry delay after a failure; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts while the upstream is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Whole-request timeout for one relay attempt.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `sentry_client` in the auth header.
const CLIENT: &str = concat!("watchpost-collector/", env!("CARGO_PKG_VERSION"));

/// The handle ingest, `/metrics` and the wiring share. Cheap to clone; "off" when no
/// `[upstream]` is configured.
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dsn: Dsn,
    store: Store,
    max_backlog: usize,
    /// Envelopes queued: counted at startup, then kept by increments and decrements (a sled
    /// tree's `len` walks the tree). Signed because a removal can overtake its increment.
    backlog: AtomicI64,
    wake: Notify,
    sent: AtomicU64,
    failed_attempts: AtomicU64,
    rejected: AtomicU64,
    overflowed: AtomicU64,
}

/// What one relay attempt came to.
#[derive(Debug)]
enum Outcome {
    /// The upstream took it.
    Sent,
    /// The upstream refused this envelope for good (400, 413, ...): retrying cannot help.
    Rejected(StatusCode),
    /// Try again later: the upstream is unreachable, overloaded or refusing every envelope
    /// (a bad DSN must not drop the queue). `retry_after` is the server's wish, if it said.
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
}

impl Upstream {
    /// Forwarding as configured: off without `[upstream]`.
    pub fn new(config: Option<&config::Upstream>, store: &Store) -> Upstream {
        let backlog = store.upstream_len();
        let Some(config) = config else {
            if backlog > 0 {
                tracing::warn!(
                    backlog,
                    "envelopes are queued for an upstream that is no longer configured; \
                     they are kept until [upstream] is set again"
                );
            }
            return Upstream::default();
        };
        Upstream {
            inner: Some(Arc::new(Inner {
                dsn: config.dsn.clone(),
                store: store.clone(),
                max_backlog: config.max_backlog,
                backlog: AtomicI64::new(i64::try_from(backlog).unwrap_or(i64::MAX)),
                wake: Notify::new(),
                sent: AtomicU64::new(0),
                failed_attempts: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                overflowed: AtomicU64::new(0),
            })),
        }
    }

    /// Whether accepted envelopes should be queued.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The bytes to queue for an accepted envelope: `Some` only when forwarding is on.
    pub fn forward(&self, envelope: &[u8]) -> Option<Vec<u8>> {
        self.enabled().then(|| envelope.to_vec())
    }

    /// A check-in that arrived without an envelope (cron endpoint, ping) as the envelope a
    /// Sentry SDK would have sent; `None` when forwarding is off.
    pub fn forward_checkin(&self, checkin: &protocol::CheckIn) -> Option<Vec<u8>> {
        self.enabled().then(|| {
            let mut envelope = Envelope::new();
            envelope.add_json_item("check_in", checkin);
            envelope.to_vec()
        })
    }

    /// Called after an envelope was committed to the queue: counts it, enforces the bound
    /// (oldest first) and wakes the forwarder. Never fails: overflow is cleanup, and a store
    /// error here only leaves the queue longer than its bound until the next call.
    pub fn queued(&self) {
        let Some(inner) = &self.inner else { return };
        let mut backlog = inner.backlog.fetch_add(1, Ordering::Relaxed) + 1;
        while usize::try_from(backlog).is_ok_and(|n| n > inner.max_backlog) {
            match inner.store.upstream_drop_oldest() {
                Ok(true) => {
                    inner.overflowed.fetch_add(1, Ordering::Relaxed);
                    backlog = inner.backlog.fetch_sub(1, Ordering::Relaxed) - 1;
                }
                Ok(false) => break,
                Err(error) => {
                    tracing::warn!(%error, "cannot trim the upstream queue");
                    break;
                }
            }
        }
        inner.wake.notify_one();
    }

    /// Envelopes waiting to be relayed.
    pub fn backlog(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| {
            u64::try_from(inner.backlog.load(Ordering::Relaxed)).unwrap_or(0)
        })
    }

    /// Appends the `watchpost_upstream_*` metrics in the Prometheus text format (nothing when
    /// forwarding is off).
    pub fn write_metrics(&self, out: &mut String) {
        let Some(inner) = &self.inner else { return };
        let counter = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "watchpost_upstream_backlog",
            "gauge",
            "Accepted envelopes queued for the upstream.",
            &[("", self.backlog())],
        );
        metric(
            "watchpost_upstream_sent_total",
            "counter",
            "Envelopes the upstream accepted.",
            &[("", counter(&inner.sent))],
        );
        metric(
            "watchpost_upstream_failed_total",
            "counter",
            "Relay attempts that failed and will be retried (unreachable, 429, 5xx, 401/403).",
            &[("", counter(&inner.failed_attempts))],
        );
        metric(
            "watchpost_upstream_dropped_total",
            "counter",
            "Envelopes given up on, by reason: rejected by the upstream, or pushed out of a \
             full queue.",
            &[
                ("{reason=\"rejected\"}", counter(&inner.rejected)),
                ("{reason=\"overflow\"}", counter(&inner.overflowed)),
            ],
        );
    }

    /// The forwarder: relays the queue until `shutdown` resolves. Returns at once when
    /// forwarding is off.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Some(inner) = self.inner else { return };
        let client = match reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(crate::redirect::policy())
            .user_agent(CLIENT)
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build the upstream HTTP client; not forwarding");
                return;
            }
        };
        tracing::info!(
            upstream = %inner.dsn.envelope_url(),
            backlog = inner.backlog.load(Ordering::Relaxed),
            "forwarding accepted envelopes upstream"
        );
        tokio::pin!(shutdown);
        let mut backoff = Backoff::default();
        loop {
            let wait = match inner.relay_some(&client, &mut backoff).await {
                Ok(Round::Drained) => None,
                Ok(Round::More) => continue,
                Ok(Round::Retry(after)) => Some(after),
                Err(error) => {
                    tracing::error!(%error, "cannot read the upstream queue");
                    Some(backoff.next())
                }
            };
            // A permit left by `queued` during the round makes `notified` return at once, so
            // nothing accepted meanwhile waits for the next envelope.
            tokio::select! {
                () = async {
                    match wait {
                        Some(after) => tokio::time::sleep(after).await,
                        None => inner.wake.notified().await,
                    }
                } => {}
                () = &mut shutdown => break,
            }
        }
    }
}

/// How a round of relaying ended.
enum Round {
    /// The queue is empty: wait for the next envelope.
    Drained,
    /// A full batch went out: read the next one at once.
    More,
    /// The upstream is unavailable: wait this long.
    Retry(Duration),
}

impl Inner {
    /// Relays up to [`BATCH`] envelopes in order, stopping at the first that must wait.
    async fn relay_some(
        &self,
        client: &reqwest::Client,
        backoff: &mut Backoff,
    ) -> Result<Round, StoreError> {
        let batch = self.store.upstream_oldest(BATCH)?;
        let full = batch.len() == BATCH;
        if batch.is_empty() {
            return Ok(Round::Drained);
        }
        for envelope in batch {
            match self.send(client, &envelope).await {
                Outcome::Sent => {
                    backoff.reset();
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    self.forget(envelope.id)?;
                }
                Outcome::Rejected(status) => {
                    tracing::warn!(
                        %status,
                        "the upstream rejected an envelope; dropping it (retrying cannot help)"
                    );
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    self.forget(envelope.id)?;
                }
                Outcome::Retry { why, retry_after } => {
                    self.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    let wait =
                        retry_after.map_or_else(|| backoff.next(), |after| after.min(MAX_BACKOFF));
                    tracing::warn!(
                        error = %why,
                        retry_in = ?wait,
                        backlog = self.backlog.load(Ordering::Relaxed),
                        "upstream unavailable; envelopes stay queued"
                    );
                    return Ok(Round::Retry(wait));
                }
            }
        }
        Ok(if full { Round::More } else { Round::Drained })
    }

    fn forget(&self, id: u64) -> Result<(), StoreError> {
        if self.store.upstream_remove(id)? {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn send(&self, client: &reqwest::Client, envelope: &QueuedEnvelope) -> Outcome {
        let auth = Auth::new(self.dsn.public_key(), CLIENT);
        let body = protocol::gzip_encode(&for_upstream(&envelope.body));
        let response = client
            .post(self.dsn.envelope_url())
            .header("X-Sentry-Auth", auth.to_string())
            .header(CONTENT_TYPE, "application/x-sentry-envelope")
            .header(CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            // Without the URL: a DSN-bearing error message must not end up in the log.
            Err(error) => {
                return Outcome::Retry {
                    why: describe(&error),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Sent;
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Not followed (the request carries the DSN's key): kept and retried like an
        // unreachable upstream, with a reason naming where it pointed.
        if let Some(why) = crate::redirect::refused(
            status,
            response.headers().get(reqwest::header::LOCATION),
            &self.dsn.envelope_url(),
        ) {
            return Outcome::Retry { why, retry_after };
        }
        match status {
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND => Outcome::Retry {
                why: format!("the upstream answered {status}"),
                retry_after,
            },
            status if status.is_server_error() => Outcome::Retry {
                why: format!("the upstream answered {status}"),
                retry_after,
            },
            status => Outcome::Rejected(status),
        }
    }
}

/// The envelope as the upstream should see it: a `dsn` header naming this collector would
/// contradict the upstream key in the auth header, so it goes; everything else is relayed
/// byte for byte.
fn for_upstream(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match Envelope::parse(body) {
        Ok(mut envelope) if envelope.headers.contains_key("dsn") => {
            envelope.headers.remove("dsn");
            envelope.to_vec().into()
        }
        _ => body.into(),
    }
}

/// A transport error as a sentence without the URL.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "cannot connect"
    } else if error.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// Exponential backoff with ±20 % jitter, from [`MIN_BACKOFF`] to [`MAX_BACKOFF`].
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = MIN_BACKOFF
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_ceiling_and_resets() {
        let mut backoff = Backoff::default();
        let waits: Vec<_> = (0..10).map(|_| backoff.next()).collect();
        assert!(waits[0] >= MIN_BACKOFF.mul_f64(0.8) && waits[0] <= MIN_BACKOFF.mul_f64(1.2));
        assert!(waits[3] > waits[0]);
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF.mul_f64(1.2)));
        backoff.reset();
        assert!(backoff.next() <= MIN_BACKOFF.mul_f64(1.2));
    }

    #[test]
    fn the_local_dsn_header_is_not_relayed() {
        let with_dsn =
            b"{\"dsn\":\"http://k@127.0.0.1:8470/1\",\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"check_in\",\"length\":2}\n{}\n";
        let relayed = for_upstream(with_dsn);
        let parsed = Envelope::parse(&relayed).unwrap();
        assert!(!parsed.headers.contains_key("dsn"));
        assert!(parsed.headers.contains_key("event_id"));
        assert_eq!(parsed.items.len(), 1);

        let plain = b"{}\n{\"type\":\"session\"}\n{\"sid\":1}\n";
        assert_eq!(&*for_upstream(plain), plain.as_slice());
    }
}
