//! Rate limits the server asked for: `429` + `Retry-After`, and `X-Sentry-Rate-Limits` on any
//! response, per data category. Pure bookkeeping with the time passed in; no I/O, no clock reads.

use std::time::{Duration, Instant};

/// What the server limits separately. Check-ins are `monitor`, events are `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    /// `check_in` items.
    Monitor,
    /// `event` items.
    Error,
}

/// How long a bare `429` (no usable header) blocks everything, as Sentry's SDKs do.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Until when each category is limited.
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    all: Option<Instant>,
    monitor: Option<Instant>,
    error: Option<Instant>,
}

impl RateLimits {
    /// Applies a response. `X-Sentry-Rate-Limits` wins when present (on any status); otherwise a
    /// `429` limits every category for `Retry-After` (seconds or an HTTP date), else 60 s.
    pub(crate) fn update(
        &mut self,
        status: u16,
        retry_after: Option<&str>,
        rate_limits: Option<&str>,
        now: Instant,
    ) {
        if let Some(header) = rate_limits {
            for limit in header.split(',') {
                self.apply_limit(limit.trim(), now);
            }
        } else if status == 429 {
            let wait = retry_after
                .and_then(parse_retry_after)
                .unwrap_or(DEFAULT_RETRY_AFTER);
            extend(&mut self.all, now + wait);
        }
    }

    /// `<seconds>:<cat;cat>:<scope>[:<reason>...]`; empty categories mean all; a limit naming
    /// only categories we do not send is ignored.
    fn apply_limit(&mut self, limit: &str, now: Instant) {
        let mut fields = limit.split(':');
        let Some(seconds) = fields.next().and_then(|s| s.trim().parse::<f64>().ok()) else {
            return;
        };
        let Ok(wait) = Duration::try_from_secs_f64(seconds.max(0.0)) else {
            return;
        };
        let until = now + wait;
        let categories = fields.next().unwrap_or("").trim();
        if categories.is_empty() {
            extend(&mut self.all, until);
            return;
        }
        for category in categories.split(';') {
            match category.trim() {
                "monitor" => extend(&mut self.monitor, until),
                "error" | "default" => extend(&mut self.error, until),
                _ => {}
            }
        }
    }

    /// Whether items of `category` must wait at `now`.
    pub(crate) fn is_limited(&self, category: Category, now: Instant) -> bool {
        let specific = match category {
            Category::Monitor => self.monitor,
            Category::Error => self.error,
        };
        [self.all, specific]
            .into_iter()
            .flatten()
            .any(|until| until > now)
    }

    /// When `category` stops being limited (`now` if it is not).
    pub(crate) fn limited_until(&self, category: Category, now: Instant) -> Instant {
        let specific = match category {
            Category::Monitor => self.monitor,
            Category::Error => self.error,
        };
        [self.all, specific]
            .into_iter()
            .flatten()
            .fold(now, Instant::max)
    }
}

fn extend(slot: &mut Option<Instant>, until: Instant) {
    *slot = Some(slot.map_or(until, |current| current.max(until)));
}

/// `Retry-After`: delta seconds (fractions tolerated) or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds.max(0.0)).ok();
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        status: u16,
        retry_after: Option<&str>,
        header: Option<&str>,
        monitor: Option<u64>,
        error: Option<u64>,
    ) {
        let now = Instant::now();
        let mut limits = RateLimits::default();
        limits.update(status, retry_after, header, now);
        let secs = |c| {
            limits
                .is_limited(c, now)
                .then(|| limits.limited_until(c, now).duration_since(now).as_secs())
        };
        assert_eq!(
            (secs(Category::Monitor), secs(Category::Error)),
            (monitor, error),
            "{status} {retry_after:?} {header:?}"
        );
    }

    #[test]
    fn responses_set_limits_per_category() {
        check(200, None, None, None, None);
        check(429, None, None, Some(60), Some(60));
        check(429, Some("7"), None, Some(7), Some(7));
        check(429, Some("soon"), None, Some(60), Some(60));
        check(
            429,
            Some("3"),
            Some("20:error:organization"),
            None,
            Some(20),
        );
        check(
            200,
            None,
            Some("20:monitor;transaction:key, 5::org"),
            Some(20),
            Some(5),
        );
        check(429, None, Some("30:transaction:key"), None, None);
        check(
            429,
            None,
            Some("10:error:key, 40:error:org"),
            None,
            Some(40),
        );
    }

    #[test]
    fn limits_expire() {
        let now = Instant::now();
        let mut limits = RateLimits::default();
        limits.update(429, Some("1"), None, now);
        assert!(limits.is_limited(Category::Monitor, now));
        assert!(!limits.is_limited(Category::Monitor, now + Duration::from_secs(1)));
    }
}
