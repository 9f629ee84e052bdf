//! Throttling of admin token guesses, per client address: the dashboard login form and the
//! management API's bearer token are the two doors to the one secret. A client gets
//! [`FREE_FAILURES`] wrong tokens; from then on each further wrong token locks its address out
//! for a delay that doubles (1 s, 2 s, 4 s, … up to [`MAX_DELAY`]), during which every attempt
//! from it is refused with `429` before the token is even compared. A right token forgets the
//! address. Guessing a generated token (256 bits) is hopeless anyway; this is for the
//! operator-chosen ones (at least 16 characters) and for the log noise of a scanner.
//!
//! The pure part, [`Throttle`], takes the time as an argument so it is tested without
//! sleeping; [`AuthThrottle`] is the shared, locked handle with the clock.
//!
//! The address is the TCP peer: behind a reverse proxy every client shares the proxy's
//! address, and a guesser there delays the operator too (`docs/reliability.md`). Forwarded
//! headers are not trusted: any client can write them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Wrong tokens an address may send before it is locked out.
pub(crate) const FREE_FAILURES: u32 = 5;
/// The lockout after the [`FREE_FAILURES`]-th wrong token; each further one doubles it.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest lockout: long enough to make guessing slow (about 100 tries an hour at the
/// cap), short enough that an operator who mistyped is not locked out for a day.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// An address without a wrong token for this long starts over with its free tries.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Most addresses remembered; beyond it the one whose last wrong token is oldest is
/// forgotten, so a spray of addresses costs bounded memory.
const MAX_CLIENTS: usize = 10_000;

/// Wrong-token counts by client address, with the time passed in.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    clients: HashMap<IpAddr, Client>,
}

#[derive(Debug, Clone, Copy)]
struct Client {
    failures: u32,
    last_failure: Instant,
    /// Refused until then, once past the free tries.
    locked_until: Option<Instant>,
}

impl Client {
    fn stale(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_failure) > FORGET_AFTER
            && self.locked_until.is_none_or(|until| until <= now)
    }
}

/// The key of an address: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4), IPv6 by its
/// `/64`, which one host or one customer usually holds whole and could otherwise walk.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Throttle {
    /// `Err(wait)` while `ip` is locked out, else `Ok`.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.clients.get(&key(ip)).and_then(|c| c.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a wrong token from `ip`; returns the lockout it starts, if any.
    pub(crate) fn failed(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let ip = key(ip);
        if !self.clients.contains_key(&ip) {
            self.make_room(now);
        }
        let client = self.clients.entry(ip).or_insert(Client {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if client.stale(now) {
            client.failures = 0;
        }
        client.failures = client.failures.saturating_add(1);
        client.last_failure = now;
        let doublings = client.failures.checked_sub(FREE_FAILURES)?;
        let delay = FIRST_DELAY
            .checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
            .map_or(MAX_DELAY, |d| d.min(MAX_DELAY));
        client.locked_until = Some(now + delay);
        Some(delay)
    }

    /// A right token from `ip`: it starts over.
    pub(crate) fn succeeded(&mut self, ip: IpAddr) {
        self.clients.remove(&key(ip));
    }

    /// Before a new address is added at the bound: forget the stale ones, and if none is,
    /// the one whose last wrong token is oldest.
    fn make_room(&mut self, now: Instant) {
        if self.clients.len() < MAX_CLIENTS {
            return;
        }
        self.clients.retain(|_, c| !c.stale(now));
        if self.clients.len() >= MAX_CLIENTS
            && let Some(oldest) = self
                .clients
                .iter()
                .min_by_key(|(_, c)| c.last_failure)
                .map(|(ip, _)| *ip)
        {
            self.clients.remove(&oldest);
        }
    }
}

/// The collector's one [`Throttle`], shared by the login form and the API, on the clock.
#[derive(Debug, Default)]
pub struct AuthThrottle {
    inner: Mutex<Throttle>,
}

impl AuthThrottle {
    /// `Err(seconds to wait, at least 1)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.inner
            .lock()
            .check(ip, Instant::now())
            .map_err(retry_after)
    }

    /// Counts a wrong token from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        if let Some(delay) = self.inner.lock().failed(ip, Instant::now()) {
            tracing::warn!(
                client = %ip,
                lockout_seconds = delay.as_secs_f64(),
                "wrong admin tokens from one address; refusing it for a while"
            );
        }
    }

    /// A right token from `ip`.
    pub fn succeeded(&self, ip: IpAddr) {
        self.inner.lock().succeeded(ip);
    }
}

/// Whole seconds for `Retry-After`, rounded up so a client that waits them is let in.
fn retry_after(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// The sentence of a refusal, the same for the login page and the API.
pub(crate) fn refusal(seconds: u64) -> String {
    format!(
        "too many wrong admin tokens from your address; try again in {seconds} s. Each further \
         wrong token doubles the wait (up to {} min); the right token ends it.",
        MAX_DELAY.as_secs() / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_free_tries_then_a_doubling_lockout_up_to_the_cap() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 1..FREE_FAILURES {
            assert_eq!(throttle.failed(a, start), None);
            assert_eq!(throttle.check(a, start), Ok(()));
        }
        let mut now = start;
        let mut expected = FIRST_DELAY;
        for _ in 0..15 {
            assert_eq!(throttle.failed(a, now), Some(expected));
            assert_eq!(throttle.check(a, now), Err(expected));
            // Still refused an instant before the end, let in at it.
            now += expected;
            assert!(throttle.check(a, now - Duration::from_millis(1)).is_err());
            assert_eq!(throttle.check(a, now), Ok(()));
            expected = (expected * 2).min(MAX_DELAY);
        }
        assert_eq!(expected, MAX_DELAY, "the cap was reached");
        // Another address is not affected.
        assert_eq!(throttle.check(ip("192.0.2.2"), now), Ok(()));
    }

    #[test]
    fn a_right_token_or_an_hour_without_a_wrong_one_starts_over() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..FREE_FAILURES {
            throttle.failed(a, now);
        }
        assert!(throttle.check(a, now).is_err());
        throttle.succeeded(a);
        assert_eq!(throttle.check(a, now), Ok(()));
        for _ in 1..FREE_FAILURES {
            assert_eq!(throttle.failed(a, now), None, "free tries again");
        }
        let later = now + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(throttle.failed(a, later), None, "forgotten after an hour");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        for i in 0..FREE_FAILURES {
            throttle.failed(ip(&format!("2001:db8:1:2::{i:x}")), now);
        }
        assert!(throttle.check(ip("2001:db8:1:2:ffff::1"), now).is_err());
        assert_eq!(throttle.check(ip("2001:db8:1:3::1"), now), Ok(()));
        for _ in 0..FREE_FAILURES {
            throttle.failed(ip("::ffff:192.0.2.9"), now);
        }
        assert!(throttle.check(ip("192.0.2.9"), now).is_err());
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_address_goes_first() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        let first = ip("10.255.255.255");
        for _ in 0..FREE_FAILURES {
            throttle.failed(first, start);
        }
        for i in 0..u32::try_from(MAX_CLIENTS).unwrap() {
            let now = start + Duration::from_millis(u64::from(i) + 1);
            throttle.failed(IpAddr::V4(i.into()), now);
        }
        assert_eq!(throttle.clients.len(), MAX_CLIENTS);
        assert!(
            !throttle.clients.contains_key(&first),
            "the oldest went first"
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after(Duration::from_secs(4)), 4);
        assert!(refusal(4).contains("try again in 4 s"));
    }
}
