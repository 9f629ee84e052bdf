//! Status badges: `GET /badge/{project}/{slug}.svg` and `.json` (the shields.io endpoint
//! format), for READMEs and wall screens that cannot log in.
//!
//! A badge needs `?key=`, an HMAC-SHA256 of the project and slug under a per-install secret
//! kept in the data dir (`badge_secret`, mode 0600). Keys are stable across restarts, differ per
//! monitor, and are all revoked at once by deleting the secret file. A missing or wrong key
//! answers exactly like an unknown path, so a badge URL reveals nothing about which monitors
//! exist. Badges show a status and the slug, never a log or a message.

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::json;

use crate::app::AppState;
use crate::engine::{MonitorEnv, MonitorKey, MonitorStatus};
use crate::http::{HttpError, query_pairs, query_value};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_svg_is_well_formed_and_escaped() {
        let svg = svg("a<b", "ok", "#2da44e");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("a&lt;b"));
        assert!(!svg.contains("a<b"));
    }
}
