//! Per-key ingest rate limiting: one token bucket per project key (`[limits]`), consulted only
//! after the key has authenticated, so the table holds at most one bucket per configured key and
//! a stranger cannot grow it. One request costs one token, whatever it carries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use parking_lot::Mutex;

use crate::config::Limits;
use crate::http::HttpError;

/// The token buckets of every project key seen so far.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens added per second.
    rate: f64,
    /// Most tokens a bucket holds.
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// A limiter for `limits` (validated by the config: rate and burst ≥ 1).
    pub fn new(limits: Limits) -> RateLimiter {
        RateLimiter {
            rate: f64::from(limits.ingest_per_second.max(1)),
            burst: f64::from(limits.ingest_burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes one token from `key`'s bucket, or says how long until one is there: a `429` with
    /// `Retry-After` and `X-Sentry-Rate-Limits` (every category of this key).
    pub fn check(&self, key: &str) -> Result<(), HttpError> {
        // The form `ProjectKeys` matched, so spelling a key differently gets no second bucket.
        let key = key.trim().to_ascii_lowercase();
        self.acquire(&key, Instant::now()).map_err(|wait| {
            // Whole seconds, rounded up: a client that waits this long finds a token.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "rate limit exceeded: this project key may send {} requests per second \
                     (bursts of {}); retry after {seconds} s or raise [limits] in the config",
                    self.rate, self.burst
                ),
            )
            .retry_after(seconds)
        })
    }

    /// The token-bucket step at `now`: `Err(wait)` when the bucket is empty.
    fn acquire(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock();
        let bucket = match buckets.get_mut(key) {
            Some(bucket) => bucket,
            None => buckets.entry(key.to_owned()).or_insert(Bucket {
                tokens: self.burst,
                refilled: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(Limits {
            ingest_per_second: rate,
            ingest_burst: burst,
        })
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = limiter(2, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.acquire("a", start), Ok(()));
        }
        assert_eq!(limiter.acquire("a", start), Err(Duration::from_millis(500)));
        // Other keys have their own bucket.
        assert_eq!(limiter.acquire("b", start), Ok(()));
        // Half a second later one token is back, and only one.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.acquire("a", later), Ok(()));
        assert!(limiter.acquire("a", later).is_err());
        // Idle for long, the bucket holds no more than the burst.
        let idle = later + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.acquire("a", idle), Ok(()));
        }
        assert!(limiter.acquire("a", idle).is_err());
    }

    #[test]
    fn a_refusal_says_when_to_retry() {
        let limiter = limiter(1, 1);
        assert!(limiter.check("k").is_ok());
        let refusal = limiter.check("k").unwrap_err();
        assert_eq!(refusal.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.reason, "rate_limited");
        assert_eq!(refusal.retry_after, Some(1));
        assert!(
            refusal.message.contains("1 requests per second"),
            "{refusal:?}"
        );
    }
}
