//! Status badges: `GET /badge/{project}/{slug}.svg` and `.json` (the shields.io endpoint
//! format), for READMEs and wall screens that cannot log in.
//!
//! A badge needs `?key=`, an HMAC-SHA256 of the project and slug under a per-install secret
//! kept in the data dir (`badge_secret`, mode 0600). Keys are stable across restarts, differ per
//! monitor, and are all revoked at once by deleting the secret file. A missing or wrong key
//! answers exactly like an unknown path, so a badge URL reveals nothing about which monitors
//! exist. Badges show a status and the slug, never a log or a message.

use std::io::Write as _;
use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use maud::html;
use rand::Rng;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::engine::{MonitorEnv, MonitorKey, MonitorStatus};
use crate::http::{HttpError, query_pairs, query_value};
use crate::server::AppState;

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
        let path = dir.join(BADGE_SECRET_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_secret(text.trim())
                .map(|secret| BadgeKeys { secret })
                .ok_or_else(|| {
                    std::io::Error::other(format!(
                        "{} is not 64 hex characters; delete it to have a new one made \
                         (this changes every badge URL)",
                        path.display()
                    ))
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; 32] = rand::rng().random();
                write_private(&path, &hex(&secret))?;
                Ok(BadgeKeys { secret })
            }
            Err(e) => Err(e),
        }
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
        let mut key = hex(&mac.finalize().into_bytes());
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

/// `GET /badge/{project}/{slug}.svg|.json?key=[&environment=]`.
pub(super) async fn badge(
    State(state): State<AppState>,
    UrlPath((project, file)): UrlPath<(String, String)>,
    uri: Uri,
) -> Result<Response, HttpError> {
    // Every refusal is the router's own 404, word for word.
    let hidden = || HttpError::not_found(format!("no route for {} {}", Method::GET, uri.path()));
    let (slug, format) = match (file.strip_suffix(".svg"), file.strip_suffix(".json")) {
        (Some(slug), _) => (slug, Format::Svg),
        (_, Some(slug)) => (slug, Format::Json),
        _ => return Err(hidden()),
    };
    let Ok(project) = project.parse::<u64>() else {
        return Err(hidden());
    };
    let query = query_pairs(&uri).map_err(|_| hidden())?;
    let key = query_value(&query, "key").unwrap_or_default();
    let Ok(monitor) = MonitorKey::new(project, slug, None) else {
        return Err(hidden());
    };
    if !state.dashboard.badges.verify(project, &monitor.slug, key) {
        return Err(hidden());
    }
    let mut envs = state.store.monitor_envs(project, &monitor.slug)?;
    if let Some(environment) = query_value(&query, "environment") {
        envs.retain(|m| m.key.environment == environment);
    }
    let Some(status) = overall(&envs) else {
        return Err(hidden());
    };
    let (message, color, hex_color) = look(status);
    let label = monitor.slug.as_str();
    Ok(match format {
        Format::Json => (
            [(CACHE_CONTROL, "no-cache, max-age=0")],
            axum::Json(json!({
                "schemaVersion": 1,
                "label": label,
                "message": message,
                "color": color,
            })),
        )
            .into_response(),
        Format::Svg => (
            [
                (CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
                (CACHE_CONTROL, "no-cache, max-age=0"),
            ],
            svg(label, message, hex_color),
        )
            .into_response(),
    })
}

enum Format {
    Svg,
    Json,
}

/// The status a badge shows for several environments: the worst one.
fn overall(envs: &[MonitorEnv]) -> Option<MonitorStatus> {
    let rank = |status: &MonitorStatus| match status {
        MonitorStatus::Error => 3,
        MonitorStatus::Ok => 2,
        MonitorStatus::Active => 1,
        MonitorStatus::Disabled => 0,
    };
    envs.iter().map(|m| m.status).max_by_key(rank)
}

/// Message, shields color name and hex color of a status.
fn look(status: MonitorStatus) -> (&'static str, &'static str, &'static str) {
    match status {
        MonitorStatus::Ok => ("ok", "brightgreen", "#2da44e"),
        MonitorStatus::Error => ("failing", "red", "#cf222e"),
        MonitorStatus::Active => ("waiting", "lightgrey", "#8c959f"),
        MonitorStatus::Disabled => ("disabled", "inactive", "#6e7781"),
    }
}

/// A flat two-part badge. Widths are estimated (Verdana 11px averages under 7px a glyph).
fn svg(label: &str, message: &str, color: &str) -> String {
    let width = |text: &str| 10 + 7 * text.chars().count();
    let (left, right) = (width(label), width(message));
    let total = left + right;
    let aria = format!("{label}: {message}");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(total) height="20" role="img"
            aria-label=(aria) {
            title { (aria) }
            clipPath id="r" { rect width=(total) height="20" rx="3" fill="#fff" {} }
            g clip-path="url(#r)" {
                rect width=(left) height="20" fill="#555" {}
                rect x=(left) width=(right) height="20" fill=(color) {}
            }
            g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif"
                font-size="11" {
                text x=(left / 2) y="14" { (label) }
                text x=(left + right / 2) y="14" { (message) }
            }
        }
    }
    .into_string()
}

fn parse_secret(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut secret = [0u8; 32];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(secret)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a new file readable only by its owner, and syncs it.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{contents}")?;
    file.sync_all()
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

    #[test]
    fn the_svg_is_well_formed_and_escaped() {
        let svg = svg("a<b", "ok", "#2da44e");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("a&lt;b"));
        assert!(!svg.contains("a<b"));
    }
}
