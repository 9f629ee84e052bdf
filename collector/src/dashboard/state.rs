//! The dashboard's own state, held by the app's shared state: login sessions and the badge keys
//! (an HMAC secret kept in the data dir). Kept apart from the handlers, which read it through
//! `app::AppState`, so the state the app holds does not import the handlers that read it.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::session::Sessions;
use crate::secret_file;

/// The dashboard's own state: sessions and badge keys.
#[derive(Debug)]
pub struct Dashboard {
    pub(super) sessions: Sessions,
    pub(super) badges: BadgeKeys,
    /// `Secure` cookies when the collector is reached over HTTPS (`server.public_url`).
    pub(super) secure_cookies: bool,
    /// Base of absolute URLs shown on pages (badges): `server.public_url`, else the listen
    /// address. Never the request's `Host` header, which the client chooses: a page reached
    /// with `Host: evil.example` would otherwise hand out badge URLs (with their keys) that
    /// point elsewhere.
    pub(super) base_url: String,
}

impl Dashboard {
    /// Loads (or creates) the badge secret in `data_dir`. `base_url` is where the collector
    /// is reached (`server.public_url` or the listen address); `public_url` says whether
    /// that is HTTPS.
    pub fn new(
        data_dir: &Path,
        public_url: Option<&str>,
        base_url: &str,
    ) -> std::io::Result<Dashboard> {
        Ok(Dashboard {
            sessions: Sessions::default(),
            badges: BadgeKeys::load_or_create(data_dir)?,
            secure_cookies: public_url.is_some_and(|url| url.starts_with("https://")),
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The badge key of a monitor (shown on its page; the CLI and tests use it too).
    pub fn badge_key(&self, project: u64, slug: &str) -> String {
        self.badges.key(project, slug)
    }
}

/// The secret's file in the data dir.
pub(crate) const BADGE_SECRET_FILE: &str = "badge_secret";
/// Hex characters of a badge key (128 bits).
const KEY_HEX: usize = 32;

/// Derives and checks badge keys.
pub(crate) struct BadgeKeys {
    secret: [u8; 32],
}

impl std::fmt::Debug for BadgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BadgeKeys(***)")
    }
}

impl BadgeKeys {
    /// Reads `dir/badge_secret`, creating it (random, mode 0600) on first use.
    pub(crate) fn load_or_create(dir: &Path) -> std::io::Result<BadgeKeys> {
        let secret = secret_file::load_or_create(
            &dir.join(BADGE_SECRET_FILE),
            "this changes every badge URL",
        )?;
        Ok(BadgeKeys { secret })
    }

    /// Keys from a given secret (tests).
    #[cfg(test)]
    fn from_secret(secret: [u8; 32]) -> BadgeKeys {
        BadgeKeys { secret }
    }

    /// The badge key of a monitor.
    pub(crate) fn key(&self, project: u64, slug: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        // Length-prefixed fields: no two (project, slug) pairs feed the same bytes.
        mac.update(b"watchpost-badge\0");
        mac.update(&project.to_be_bytes());
        mac.update(&(slug.len() as u64).to_be_bytes());
        mac.update(slug.as_bytes());
        let mut key = secret_file::hex(&mac.finalize().into_bytes());
        key.truncate(KEY_HEX);
        key
    }

    /// Whether `presented` is the key of this monitor (constant time).
    pub(crate) fn verify(&self, project: u64, slug: &str, presented: &str) -> bool {
        bool::from(
            self.key(project, slug)
                .as_bytes()
                .ct_eq(presented.trim().as_bytes()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_monitor_and_per_secret() {
        let keys = BadgeKeys::from_secret([7; 32]);
        let key = keys.key(1, "backup");
        assert_eq!(key.len(), KEY_HEX);
        assert_eq!(key, keys.key(1, "backup"), "stable");
        assert_ne!(key, keys.key(2, "backup"));
        assert_ne!(key, keys.key(1, "backup2"));
        assert_ne!(key, BadgeKeys::from_secret([8; 32]).key(1, "backup"));
        assert!(keys.verify(1, "backup", &key));
        assert!(!keys.verify(1, "backup", &key[..KEY_HEX - 1]));
        assert!(!keys.verify(1, "other", &key));
    }

    #[test]
    fn the_secret_survives_a_restart_and_rotates_by_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let first = BadgeKeys::load_or_create(dir.path()).unwrap().key(1, "a");
        let again = BadgeKeys::load_or_create(dir.path()).unwrap().key(1, "a");
        assert_eq!(first, again);
        std::fs::remove_file(dir.path().join(BADGE_SECRET_FILE)).unwrap();
        let rotated = BadgeKeys::load_or_create(dir.path()).unwrap().key(1, "a");
        assert_ne!(first, rotated);
        std::fs::write(dir.path().join(BADGE_SECRET_FILE), "nope").unwrap();
        assert!(BadgeKeys::load_or_create(dir.path()).is_err());
    }
}
