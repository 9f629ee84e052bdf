//! What one public project key may cost: token buckets consulted only after the key has
//! authenticated, so a stranger cannot grow any table.
//!
//! - per key: check-ins and events per second (`limits.ingest_per_second`, bursts of
//!   `limits.ingest_burst`), spent per item, not per request, since one envelope carries up to
//!   1,000 items;
//! - per monitor environment: check-ins per minute (`limits.monitor_checkins_per_minute`),
//!   checked *before* the key's bucket, so check-ins refused for one noisy monitor spend none of
//!   the key's budget and every other monitor of the key still goes through;
//! - per project: bytes of events stored per hour (`limits.event_bytes_per_hour`), which bounds
//!   how fast a public key can fill the disk.
//!
//! The per-monitor table is bounded (`MAX_MONITOR_BUCKETS`): a bucket that has refilled is the
//! same as no bucket, so idle ones are evicted when the table is full.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use parking_lot::Mutex;

use crate::config::Limits;
use crate::engine::MonitorKey;
use crate::http::HttpError;

/// Most monitor environments with a bucket at once. Beyond it, idle buckets are evicted, and
/// when none is idle the one refilled longest ago (which is then treated as fresh: lenient,
/// and still within the key's budget).
const MAX_MONITOR_BUCKETS: usize = 65_536;

/// The buckets of every project key, monitor environment and project seen so far.
#[derive(Debug)]
pub struct RateLimiter {
    key: Rate,
    monitor: Rate,
    event_bytes: Rate,
    keys: Mutex<HashMap<String, Bucket>>,
    monitors: Mutex<HashMap<MonitorKey, Bucket>>,
    projects: Mutex<HashMap<u64, Bucket>>,
}

/// A token bucket's refill rate and size.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// Tokens added per second.
    per_second: f64,
    /// Most tokens a bucket holds.
    burst: f64,
}

impl Rate {
    /// How long a bucket takes to refill from empty: after that, it is as good as new.
    fn refill_time(self) -> Duration {
        Duration::from_secs_f64(self.burst / self.per_second)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            refilled: now,
        }
    }

    /// Takes `cost` tokens at `now`, or says how long until there are that many (a cost above
    /// the burst is taken as the burst: a bucket never holds more).
    fn take(&mut self, rate: Rate, cost: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.refilled = now;
        let cost = cost.min(rate.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (cost - self.tokens) / rate.per_second,
            ))
        }
    }
}

/// Whole seconds, rounded up: a client that waits this long finds the tokens.
fn seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl RateLimiter {
    /// A limiter for `limits` (validated by the config: every rate ≥ 1).
    pub fn new(limits: Limits) -> RateLimiter {
        let per_minute = f64::from(limits.monitor_checkins_per_minute.max(1));
        let per_hour = limits.event_bytes_per_hour.max(1) as f64;
        RateLimiter {
            key: Rate {
                per_second: f64::from(limits.ingest_per_second.max(1)),
                burst: f64::from(limits.ingest_burst.max(1)),
            },
            monitor: Rate {
                per_second: per_minute / 60.0,
                burst: per_minute,
            },
            event_bytes: Rate {
                per_second: per_hour / 3600.0,
                burst: per_hour,
            },
            keys: Mutex::default(),
            monitors: Mutex::default(),
            projects: Mutex::default(),
        }
    }

    /// Spends `items` (check-ins and events; at least one per request) from `key`'s budget, or
    /// a `429` with `Retry-After` and `X-Sentry-Rate-Limits` (every category of this key).
    pub fn check_key(&self, key: &str, items: usize) -> Result<(), HttpError> {
        // The form `ProjectKeys` matched, so spelling a key differently gets no second bucket.
        let key = key.trim().to_ascii_lowercase();
        let items = items.max(1);
        self.take_key(&key, items, Instant::now()).map_err(|wait| {
            let seconds = seconds(wait);
            HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "rate limit exceeded: this project key may send {} check-ins and events per \
                     second (bursts of {}) and this request carried {items}; nothing was stored. \
                     Retry after {seconds} s, or raise limits.ingest_per_second in the config",
                    self.key.per_second, self.key.burst
                ),
            )
            .retry_after(seconds, "")
        })
    }

    /// Takes one check-in from `monitor`'s budget, or a `429` naming the monitor and the
    /// setting, limiting only the `monitor` category so SDKs keep sending events.
    pub fn check_monitor(&self, monitor: &MonitorKey) -> Result<(), HttpError> {
        self.take_monitor(monitor, Instant::now()).map_err(|wait| {
            let seconds = seconds(wait);
            HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "monitor_rate_limited",
                format!(
                    "monitor `{}` (environment `{}`) sent more than {} check-ins per minute \
                     (limits.monitor_checkins_per_minute); this check-in was not stored. Other \
                     monitors are not affected; retry after {seconds} s",
                    monitor.slug, monitor.environment, self.monitor.burst
                ),
            )
            .retry_after(seconds, "monitor")
        })
    }

    /// Spends `bytes` of events from `project`'s hourly budget, or a `429` saying so, limiting
    /// only the `error` category.
    pub fn check_event_bytes(&self, project: u64, bytes: usize) -> Result<(), HttpError> {
        self.take_event_bytes(project, bytes, Instant::now())
            .map_err(|wait| {
                let seconds = seconds(wait);
                HttpError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "event_bytes",
                    format!(
                        "project {project} has stored its budget of {} event bytes for the \
                         hour (limits.event_bytes_per_hour) and these events ({bytes} bytes) \
                         were not stored; retry after {seconds} s, or raise the limit in the \
                         config",
                        self.event_bytes.burst
                    ),
                )
                .retry_after(seconds, "error")
            })
    }

    fn take_key(&self, key: &str, items: usize, now: Instant) -> Result<(), Duration> {
        let mut keys = self.keys.lock();
        let bucket = match keys.get_mut(key) {
            Some(bucket) => bucket,
            None => keys
                .entry(key.to_owned())
                .or_insert(Bucket::full(self.key, now)),
        };
        bucket.take(self.key, items as f64, now)
    }

    fn take_event_bytes(&self, project: u64, bytes: usize, now: Instant) -> Result<(), Duration> {
        self.projects
            .lock()
            .entry(project)
            .or_insert(Bucket::full(self.event_bytes, now))
            .take(self.event_bytes, bytes as f64, now)
    }

    fn take_monitor(&self, monitor: &MonitorKey, now: Instant) -> Result<(), Duration> {
        let mut monitors = self.monitors.lock();
        if !monitors.contains_key(monitor) && monitors.len() >= MAX_MONITOR_BUCKETS {
            evict(&mut monitors, self.monitor, now);
        }
        monitors
            .entry(monitor.clone())
            .or_insert(Bucket::full(self.monitor, now))
            .take(self.monitor, 1.0, now)
    }

    /// Monitor buckets held, for tests.
    #[cfg(test)]
    fn monitor_buckets(&self) -> usize {
        self.monitors.lock().len()
    }
}

/// Makes room in a full table: drops every bucket that has refilled by `now` (it would be
/// created full again), or, if none has, the one refilled longest ago.
fn evict(monitors: &mut HashMap<MonitorKey, Bucket>, rate: Rate, now: Instant) {
    let refill = rate.refill_time();
    let before = monitors.len();
    monitors.retain(|_, bucket| now.saturating_duration_since(bucket.refilled) < refill);
    if monitors.len() < before {
        return;
    }
    let oldest = monitors
        .iter()
        .min_by_key(|(_, bucket)| bucket.refilled)
        .map(|(key, _)| key.clone());
    if let Some(oldest) = oldest {
        monitors.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(Limits {
            ingest_per_second: rate,
            ingest_burst: burst,
            ..Limits::default()
        })
    }

    fn monitor(slug: &str) -> MonitorKey {
        MonitorKey::new(1, slug, None).expect("valid slug")
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = limiter(2, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take_key("a", 1, start), Ok(()));
        }
        assert_eq!(
            limiter.take_key("a", 1, start),
            Err(Duration::from_millis(500))
        );
        // Other keys have their own bucket.
        assert_eq!(limiter.take_key("b", 1, start), Ok(()));
        // Half a second later one token is back, and only one.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.take_key("a", 1, later), Ok(()));
        assert!(limiter.take_key("a", 1, later).is_err());
        // Idle for long, the bucket holds no more than the burst.
        let idle = later + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.take_key("a", 1, idle), Ok(()));
        }
        assert!(limiter.take_key("a", 1, idle).is_err());
    }

    #[test]
    fn the_key_is_charged_per_item() {
        let limiter = limiter(10, 20);
        let start = Instant::now();
        // One envelope of 15 items leaves 5 tokens, not 19.
        assert_eq!(limiter.take_key("a", 15, start), Ok(()));
        assert_eq!(
            limiter.take_key("a", 6, start),
            Err(Duration::from_millis(100))
        );
        assert_eq!(limiter.take_key("a", 5, start), Ok(()));
        // More items than the burst cost the whole burst, so such an envelope can still pass
        // once the bucket is full.
        let full = start + Duration::from_secs(2);
        assert_eq!(limiter.take_key("a", 1000, full), Ok(()));
        assert!(limiter.take_key("a", 1, full).is_err());
    }

    #[test]
    fn one_monitor_over_its_rate_leaves_the_others_alone() {
        let limiter = RateLimiter::new(Limits {
            monitor_checkins_per_minute: 6,
            ..Limits::default()
        });
        let start = Instant::now();
        let noisy = monitor("noisy");
        for _ in 0..6 {
            assert_eq!(limiter.take_monitor(&noisy, start), Ok(()));
        }
        assert_eq!(
            limiter.take_monitor(&noisy, start),
            Err(Duration::from_secs(10))
        );
        assert_eq!(limiter.take_monitor(&monitor("quiet"), start), Ok(()));
        // The same slug in another environment is another monitor environment.
        let staging = MonitorKey::new(1, "noisy", Some("staging")).expect("valid");
        assert_eq!(limiter.take_monitor(&staging, start), Ok(()));
        // Ten seconds later one check-in of the noisy monitor goes through again.
        let later = start + Duration::from_secs(10);
        assert_eq!(limiter.take_monitor(&noisy, later), Ok(()));
        assert!(limiter.take_monitor(&noisy, later).is_err());
    }

    #[test]
    fn the_default_monitor_rate_takes_a_one_second_interval() {
        // Start and finish every second, for ten minutes: never refused.
        let limiter = RateLimiter::new(Limits::default());
        let start = Instant::now();
        let fast = monitor("every-second");
        for second in 0..600 {
            let now = start + Duration::from_secs(second);
            assert_eq!(limiter.take_monitor(&fast, now), Ok(()), "{second}");
            assert_eq!(limiter.take_monitor(&fast, now), Ok(()), "{second}");
        }
    }

    #[test]
    fn the_monitor_table_stays_bounded() {
        let limiter = RateLimiter::new(Limits {
            monitor_checkins_per_minute: 60,
            ..Limits::default()
        });
        let start = Instant::now();
        for i in 0..MAX_MONITOR_BUCKETS {
            limiter
                .take_monitor(&monitor(&format!("m{i}")), start)
                .expect("first check-in");
        }
        assert_eq!(limiter.monitor_buckets(), MAX_MONITOR_BUCKETS);
        // All active: one more evicts the stalest, and the table does not grow.
        let busy = start + Duration::from_secs(1);
        limiter
            .take_monitor(&monitor("one-more"), busy)
            .expect("new monitor");
        assert_eq!(limiter.monitor_buckets(), MAX_MONITOR_BUCKETS);
        // A minute on, every bucket but the newest has refilled: a new monitor sweeps them
        // away.
        let idle = start + Duration::from_millis(60_500);
        limiter
            .take_monitor(&monitor("after-a-minute"), idle)
            .expect("new monitor");
        assert_eq!(limiter.monitor_buckets(), 2);
    }

    #[test]
    fn event_bytes_per_project_and_hour() {
        let limiter = RateLimiter::new(Limits {
            event_bytes_per_hour: 3600 << 10,
            ..Limits::default()
        });
        let start = Instant::now();
        assert_eq!(limiter.take_event_bytes(1, 3000 << 10, start), Ok(()));
        // 1 KiB comes back per second.
        assert_eq!(
            limiter.take_event_bytes(1, 700 << 10, start),
            Err(Duration::from_secs(100))
        );
        assert_eq!(limiter.take_event_bytes(2, 700 << 10, start), Ok(()));
        let later = start + Duration::from_secs(100);
        assert_eq!(limiter.take_event_bytes(1, 700 << 10, later), Ok(()));
    }

    #[test]
    fn refusals_say_what_to_do() {
        let limiter = RateLimiter::new(Limits {
            ingest_per_second: 1,
            ingest_burst: 1,
            monitor_checkins_per_minute: 1,
            event_bytes_per_hour: 1 << 20,
            ..Limits::default()
        });
        assert!(limiter.check_key("k", 1).is_ok());
        let refusal = limiter.check_key("k", 1).unwrap_err();
        assert_eq!(refusal.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.reason, "rate_limited");
        assert_eq!(refusal.retry_after, Some(1));
        assert!(
            refusal.message.contains("limits.ingest_per_second"),
            "{refusal:?}"
        );

        let noisy = monitor("noisy");
        assert!(limiter.check_monitor(&noisy).is_ok());
        let refusal = limiter.check_monitor(&noisy).unwrap_err();
        assert_eq!(refusal.reason, "monitor_rate_limited");
        assert_eq!(refusal.retry_categories, "monitor");
        assert!(refusal.message.contains("monitor `noisy`"), "{refusal:?}");
        assert!(
            refusal
                .message
                .contains("limits.monitor_checkins_per_minute"),
            "{refusal:?}"
        );

        assert!(limiter.check_event_bytes(1, 1 << 20).is_ok());
        let refusal = limiter.check_event_bytes(1, 10).unwrap_err();
        assert_eq!(refusal.reason, "event_bytes");
        assert!(
            refusal.message.contains("limits.event_bytes_per_hour"),
            "{refusal:?}"
        );
    }
}
