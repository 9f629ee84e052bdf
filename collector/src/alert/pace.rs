//! When the next message to a destination may go ([`Pacer`]), and how long to wait after a
//! failed attempt ([`Backoff`]).
//!
//! Pure logic: the current instant and the random source are parameters, so every rule is
//! unit-tested with explicit times. Pacing only ever *defers* a message; dropping is not an
//! option it has.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// A destination's rate limit: at most one message per `min_interval`, and (optionally) at
/// most `limit.0` messages in any `limit.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Least time between two messages.
    pub min_interval: Duration,
    /// At most this many messages within this sliding window.
    pub limit: Option<(u32, Duration)>,
}

/// The providers' documented rate limits (docs/alerts.md, "Pacing and storms").
impl Pace {
    /// No limit: machine consumers (webhook, Alertmanager, stdout).
    pub const UNLIMITED: Pace = Pace {
        min_interval: Duration::ZERO,
        limit: None,
    };

    /// Telegram: about 1 message per second per chat, and 20 per minute in a group (a chat id
    /// that is negative).
    pub fn telegram(chat_id: &str, per_chat: Duration, group: (u32, Duration)) -> Pace {
        Pace {
            min_interval: per_chat,
            limit: chat_id.starts_with('-').then_some(group),
        }
    }

    /// At most one message per `interval` (Slack: 1 s; email: a few per minute).
    pub fn every(interval: Duration) -> Pace {
        Pace {
            min_interval: interval,
            limit: None,
        }
    }

    /// Messages this pace lets through in one minute; `None` when unlimited. The dispatcher
    /// collapses a backlog larger than this into a digest.
    pub fn per_minute(&self) -> Option<u32> {
        const MINUTE: Duration = Duration::from_secs(60);
        let by_interval = (!self.min_interval.is_zero())
            .then(|| (MINUTE.as_nanos() / self.min_interval.as_nanos()).max(1));
        let by_limit = self.limit.map(|(n, window)| {
            let windows = MINUTE.as_nanos().div_ceil(window.as_nanos().max(1));
            u128::from(n).saturating_mul(windows).max(1)
        });
        let per_minute = match (by_interval, by_limit) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(u32::try_from(per_minute).unwrap_or(u32::MAX))
    }
}

/// Sending history of one destination under a [`Pace`].
#[derive(Clone, Debug)]
pub struct Pacer {
    pace: Pace,
    /// Send instants within the `limit` window (or just the last one), oldest first.
    recent: VecDeque<Instant>,
    /// Nothing goes before this (a provider's `retry_after`).
    hold: Option<Instant>,
}

impl Pacer {
    /// A destination that has sent nothing yet.
    pub fn new(pace: Pace) -> Pacer {
        Pacer {
            pace,
            recent: VecDeque::new(),
            hold: None,
        }
    }

    /// The pace.
    pub fn pace(&self) -> Pace {
        self.pace
    }

    /// The earliest instant, not before `now`, at which the next message may go.
    pub fn ready_at(&self, now: Instant) -> Instant {
        let mut at = now;
        if let Some(hold) = self.hold {
            at = at.max(hold);
        }
        if let Some(&last) = self.recent.back() {
            at = at.max(last + self.pace.min_interval);
        }
        if let Some((n, window)) = self.pace.limit {
            let n = n.max(1) as usize;
            if self.recent.len() >= n {
                // The n-th most recent send must have left the window.
                at = at.max(self.recent[self.recent.len() - n] + window);
            }
        }
        at
    }

    /// Records a message sent at `at`.
    pub fn record(&mut self, at: Instant) {
        self.recent.push_back(at);
        let keep = match self.pace.limit {
            Some((n, _)) => n.max(1) as usize,
            None => 1,
        };
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
    }

    /// The message whose slot was taken at `sent` was answered at `answered`: the slot moves
    /// there. The provider counts a message when it arrives, somewhere between the two; spacing
    /// from the answer keeps its arrivals at least `min_interval` apart however long the
    /// request took to leave, where spacing from the send would let a slow request and a quick
    /// one arrive closer than that.
    pub fn answered(&mut self, sent: Instant, answered: Instant) {
        if let Some(slot) = self.recent.iter_mut().rev().find(|at| **at == sent) {
            *slot = answered.max(sent);
            self.recent.make_contiguous().sort_unstable();
        }
    }

    /// Sends nothing before `until` (the provider asked us to wait).
    pub fn hold_until(&mut self, until: Instant) {
        self.hold = Some(self.hold.map_or(until, |h| h.max(until)));
    }
}

/// Exponential backoff with full jitter: attempt `n` (1-based) waits a uniformly random time in
/// `[0, min(cap, base · 2^(n-1))]`, so retries of many deliveries spread out instead of
/// arriving together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The bound of the first retry.
    pub base: Duration,
    /// The largest bound.
    pub cap: Duration,
}

impl Default for Backoff {
    /// 1 s doubling up to 30 s: a destination back from an outage gets its first retry
    /// within 30 s, so the alerts held for it are not held minutes longer than the outage.
    /// Thirty seconds between attempts per channel is still no load on a destination.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The upper bound for attempt `attempt` (1-based).
    pub fn bound(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// How long to wait before attempt `attempt + 1`, after `attempt` failures.
    pub fn delay<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let bound = u64::try_from(self.bound(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(0..=bound))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn spaces_messages_to_one_chat() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(Pace::telegram("12345", S, (20, 60 * S)));
        assert_eq!(pacer.ready_at(t0), t0, "the first message goes at once");
        pacer.record(t0);
        assert_eq!(pacer.ready_at(t0), t0 + S);
        assert_eq!(pacer.ready_at(t0 + 3 * S), t0 + 3 * S);
    }

    #[test]
    fn spaces_from_the_answer_of_a_slow_request() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(Pace::every(S));
        pacer.record(t0);
        pacer.answered(t0, t0 + 3 * S);
        assert_eq!(
            pacer.ready_at(t0 + S),
            t0 + 4 * S,
            "the next message waits a full interval after the answer"
        );
        pacer.answered(t0, t0 + 9 * S);
        assert_eq!(
            pacer.ready_at(t0),
            t0 + 4 * S,
            "a slot already moved is not found again"
        );
    }

    #[test]
    fn limits_a_group_to_twenty_a_minute() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(Pace::telegram("-100123", S, (20, 60 * S)));
        let mut at = t0;
        for _ in 0..20 {
            at = pacer.ready_at(at);
            pacer.record(at);
        }
        assert_eq!(at, t0 + 19 * S, "one a second while under the group limit");
        assert_eq!(
            pacer.ready_at(at),
            t0 + 60 * S,
            "the 21st waits until the first leaves the minute"
        );
        pacer.record(t0 + 60 * S);
        assert_eq!(pacer.ready_at(t0 + 60 * S), t0 + 61 * S);
    }

    #[test]
    fn holds_for_retry_after() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(Pace::every(S));
        pacer.hold_until(t0 + 30 * S);
        pacer.hold_until(t0 + 10 * S);
        assert_eq!(pacer.ready_at(t0), t0 + 30 * S, "the longer hold wins");
        assert_eq!(Pacer::new(Pace::UNLIMITED).ready_at(t0), t0);
    }

    #[test]
    fn per_minute_capacity() {
        let cases = [
            (Pace::UNLIMITED, None),
            (Pace::every(S), Some(60)),
            (Pace::every(10 * S), Some(6)),
            (Pace::telegram("1", S, (20, 60 * S)), Some(60)),
            (Pace::telegram("-1", S, (20, 60 * S)), Some(20)),
            (Pace::every(Duration::from_millis(100)), Some(600)),
            (Pace::every(120 * S), Some(1)),
        ];
        for (pace, want) in cases {
            assert_eq!(pace.per_minute(), want, "{pace:?}");
        }
    }

    #[test]
    fn the_default_backoff_retries_within_thirty_seconds_however_long_the_outage() {
        let backoff = Backoff::default();
        assert_eq!(backoff.bound(1), S);
        assert_eq!(backoff.bound(5), 16 * S);
        assert_eq!(backoff.bound(6), 30 * S);
        assert_eq!(backoff.bound(1000), 30 * S);
        let mut rng = StdRng::seed_from_u64(3);
        assert!((0..1000).all(|_| backoff.delay(40, &mut rng) <= 30 * S));
    }

    #[test]
    fn backoff_is_exponential_capped_and_fully_jittered() {
        let backoff = Backoff {
            base: S,
            cap: 60 * S,
        };
        let bounds: Vec<u64> = (1..=8).map(|n| backoff.bound(n).as_secs()).collect();
        assert_eq!(bounds, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff.bound(200), 60 * S, "no overflow");
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..200).map(|_| backoff.delay(4, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= 8 * S));
        assert!(delays.iter().any(|d| *d < 2 * S), "full jitter reaches low");
        assert!(delays.iter().any(|d| *d > 6 * S), "and high");
    }
}
