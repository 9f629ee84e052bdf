//! The one-click acknowledge links alerts carry: `{public_url}/ack/{token}`.
//!
//! A token names one incident and when it stops working, and is signed with HMAC-SHA256 under
//! a per-install secret kept in the data dir (`ack_secret`, mode 0600, like the badge
//! secret): `{incident id, 32 hex}.{expires, unix seconds}.{signature, 32 hex}`. The signed
//! bytes start with a purpose tag, so no other key or token of Watchpost can stand in for
//! one. It is single-purpose (it acknowledges that incident, nothing else) and single-use in
//! effect: once the incident is acknowledged (or resolved), the link changes nothing and
//! says so. Deleting the secret file revokes every link at once.
//!
//! The link's `GET` only shows a confirmation page (chat apps and mail scanners fetch links
//! to preview them); the page's form `POST`s to the same URL, which acknowledges.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::engine::oncall::AckRefusal;
use crate::http::HttpError;
use crate::secret_file;
use axum::http::StatusCode;

/// The secret's file in the data dir.
pub const ACK_SECRET_FILE: &str = "ack_secret";

/// How long a link works after the alert that carries it was planned. Each repeat of an
/// alert carries a fresh link, so an open incident always has a working one in the newest
/// message.
pub const LINK_TTL: TimeDelta = TimeDelta::hours(24);

/// Hex characters of a signature (128 bits).
const SIGNATURE_HEX: usize = 32;

/// Signs and checks acknowledge tokens.
pub struct AckKeys {
    secret: [u8; 32],
}

impl std::fmt::Debug for AckKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckKeys(***)")
    }
}

/// Why a token was refused. Each says what the person can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not of the token's shape: cut short or mangled (mail clients wrap long URLs).
    #[error(
        "this acknowledge link is incomplete or damaged; open the whole link from the alert, \
         or acknowledge the incident on the dashboard"
    )]
    Malformed,
    /// The signature does not match: not made by this collector (or its secret changed).
    #[error(
        "this acknowledge link is not valid for this Watchpost (its signature does not match); \
         acknowledge the incident on the dashboard"
    )]
    BadSignature,
    /// It expired.
    #[error(
        "this acknowledge link expired at {}; the newest alert about the incident has a fresh \
         one, or acknowledge it on the dashboard",
        crate::engine::alerting::when(*.0)
    )]
    Expired(DateTime<Utc>),
}

impl AckKeys {
    /// Reads `dir/ack_secret`, creating it (random, mode 0600) on first use.
    pub fn load_or_create(dir: &Path) -> std::io::Result<AckKeys> {
        let secret = secret_file::load_or_create(
            &dir.join(ACK_SECRET_FILE),
            "this invalidates every acknowledge link already sent",
        )?;
        Ok(AckKeys { secret })
    }

    /// Keys from a given secret (tests, benches).
    pub fn from_secret(secret: [u8; 32]) -> AckKeys {
        AckKeys { secret }
    }

    /// The token acknowledging `incident`, working until `expires`.
    pub fn token(&self, incident: Uuid, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        format!(
            "{}.{expires}.{}",
            incident.simple(),
            self.signature(incident, expires)
        )
    }

    /// The incident a token acknowledges, if it is well formed, signed by this collector and
    /// not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Uuid, LinkError> {
        let mut parts = token.split('.');
        let (Some(id), Some(expires), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Malformed);
        };
        let id = Uuid::try_parse(id).map_err(|_| LinkError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        if signature.len() != SIGNATURE_HEX {
            return Err(LinkError::Malformed);
        }
        let good = self.signature(id, expires);
        if !bool::from(good.as_bytes().ct_eq(signature.as_bytes())) {
            return Err(LinkError::BadSignature);
        }
        let expires = DateTime::from_timestamp(expires, 0).ok_or(LinkError::Malformed)?;
        if now >= expires {
            return Err(LinkError::Expired(expires));
        }
        Ok(id)
    }

    fn signature(&self, incident: Uuid, expires: i64) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        // Fixed-size fields after the purpose tag: no two tokens feed the same bytes.
        mac.update(b"watchpost-acknowledge\0");
        mac.update(incident.as_bytes());
        mac.update(&expires.to_be_bytes());
        let mut signature = secret_file::hex(&mac.finalize().into_bytes());
        signature.truncate(SIGNATURE_HEX);
        signature
    }
}

/// The status and reason code of an acknowledgement that changed nothing: `409` when the
/// incident's state stands in the way (acknowledged already, recovered), `400` for what the
/// request can fix.
pub fn refusal_status(refusal: &AckRefusal) -> (StatusCode, &'static str) {
    match refusal {
        AckRefusal::NotOpen(_) => (StatusCode::CONFLICT, "incident_not_open"),
        AckRefusal::Already { .. } => (StatusCode::CONFLICT, "already_acknowledged"),
        AckRefusal::ProberAway(_) => (StatusCode::SERVICE_UNAVAILABLE, "prober_not_running"),
        AckRefusal::NoName => (StatusCode::BAD_REQUEST, "bad_request"),
    }
}

/// [`refusal_status`] as the API's error.
pub fn refusal_error(refusal: &AckRefusal) -> HttpError {
    let (status, reason) = refusal_status(refusal);
    HttpError::new(status, reason, refusal.to_string())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 4, 0, 0).unwrap()
    }

    #[test]
    fn a_token_works_until_it_expires_and_only_as_signed() {
        let keys = AckKeys::from_secret([7; 32]);
        let id = Uuid::from_u128(0x1234);
        let token = keys.token(id, now() + LINK_TTL);
        assert_eq!(keys.verify(&token, now()), Ok(id));
        assert_eq!(
            keys.verify(&token, now() + LINK_TTL),
            Err(LinkError::Expired(now() + LINK_TTL))
        );
        // Another install's secret, another incident, a moved expiry: all refused.
        let other = AckKeys::from_secret([8; 32]);
        assert_eq!(other.verify(&token, now()), Err(LinkError::BadSignature));
        let (_, rest) = token.split_once('.').unwrap();
        let forged = format!("{}.{rest}", Uuid::from_u128(0x1235).simple());
        assert_eq!(keys.verify(&forged, now()), Err(LinkError::BadSignature));
        let later = token.replacen(
            &(now() + LINK_TTL).timestamp().to_string(),
            &(now() + LINK_TTL * 30).timestamp().to_string(),
            1,
        );
        assert_eq!(keys.verify(&later, now()), Err(LinkError::BadSignature));
        for cut in [&token[..token.len() - 1], "", "a.b.c", &token[..33]] {
            assert_eq!(keys.verify(cut, now()), Err(LinkError::Malformed), "{cut}");
        }
        assert!(
            LinkError::Expired(now())
                .to_string()
                .contains("expired at 2026-05-01 04:00:00 UTC")
        );
    }

    #[test]
    fn the_secret_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let token = AckKeys::load_or_create(dir.path())
            .unwrap()
            .token(Uuid::nil(), now() + LINK_TTL);
        let again = AckKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(again.verify(&token, now()), Ok(Uuid::nil()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(ACK_SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
