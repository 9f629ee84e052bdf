//! Dashboard sessions: a login with the admin token creates a random session id (the cookie)
//! and a random CSRF token (the hidden field of every form), both kept only in memory. The
//! cookie never carries the token or anything derived from it, so a leaked cookie dies with
//! logout, expiry or a restart, and the token itself is never sent back to a browser.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use parking_lot::Mutex;
use rand::Rng;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "watchpost_session";
/// A session unused this long is gone.
const IDLE: Duration = Duration::from_secs(12 * 3600);
/// No session outlives this, used or not.
const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most live sessions; logging in beyond it ends the least recently used one.
const MAX_SESSIONS: usize = 256;

/// Live sessions by id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

#[derive(Debug)]
struct Session {
    csrf: String,
    created: Instant,
    seen: Instant,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.seen) > IDLE || now.duration_since(self.created) > LIFETIME
    }
}

/// A logged-in browser, as a handler sees it.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The session id (the cookie value), for logout.
    pub(crate) session: String,
    /// The CSRF token every form of this session must carry.
    pub(crate) csrf: String,
    /// Whether probes are configured (the navigation links to them only then).
    pub(crate) probes: bool,
}

impl Viewer {
    /// Whether a submitted form carries this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

impl Sessions {
    /// Starts a session; returns it (the id goes into the cookie).
    pub(crate) fn create(&self) -> Viewer {
        let now = Instant::now();
        let viewer = Viewer {
            session: random_hex(),
            csrf: random_hex(),
            probes: false,
        };
        let mut live = self.live.lock();
        live.retain(|_, s| !s.expired(now));
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(id, _)| id.clone())
        {
            live.remove(&oldest);
        }
        live.insert(
            viewer.session.clone(),
            Session {
                csrf: viewer.csrf.clone(),
                created: now,
                seen: now,
            },
        );
        viewer
    }

    /// The live session named by the request's cookie, if any; marks it as used.
    pub(crate) fn find(&self, headers: &HeaderMap) -> Option<Viewer> {
        let id = cookie(headers, COOKIE_NAME)?;
        let now = Instant::now();
        let mut live = self.live.lock();
        let session = live.get_mut(id)?;
        if session.expired(now) {
            live.remove(id);
            return None;
        }
        session.seen = now;
        Some(Viewer {
            session: id.to_owned(),
            csrf: session.csrf.clone(),
            probes: false,
        })
    }

    /// Ends a session.
    pub(crate) fn end(&self, session: &str) {
        self.live.lock().remove(session);
    }
}

/// The `Set-Cookie` value that starts a session.
pub(crate) fn set_cookie(viewer: &Viewer, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        viewer.session,
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
}

/// 32 random bytes as hex: 256 bits, unguessable.
fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_session_is_found_by_its_cookie_until_it_ends() {
        let sessions = Sessions::default();
        let viewer = sessions.create();
        assert_ne!(viewer.session, viewer.csrf);
        let headers = with_cookie(&format!("theme=dark; {COOKIE_NAME}={}", viewer.session));
        let found = sessions.find(&headers).expect("live");
        assert!(found.csrf_matches(&viewer.csrf));
        assert!(!found.csrf_matches(""));
        assert!(!found.csrf_matches(&viewer.session));
        sessions.end(&viewer.session);
        assert!(sessions.find(&headers).is_none());
        assert!(
            sessions
                .find(&with_cookie(&format!("{COOKIE_NAME}=forged")))
                .is_none()
        );
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let viewer = Sessions::default().create();
        let cookie = set_cookie(&viewer, true);
        for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(!set_cookie(&viewer, false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let sessions = Sessions::default();
        let first = sessions.create();
        std::thread::sleep(Duration::from_millis(2));
        for _ in 0..MAX_SESSIONS {
            sessions.create();
        }
        assert_eq!(sessions.live.lock().len(), MAX_SESSIONS);
        let headers = with_cookie(&format!("{COOKIE_NAME}={}", first.session));
        assert!(sessions.find(&headers).is_none(), "the oldest went first");
    }
}
