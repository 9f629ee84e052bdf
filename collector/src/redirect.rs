//! Outbound requests to configured URLs never follow a redirect, to any host.
//!
//! Those URLs carry secrets: the watchdog's check URL, the upstream DSN's key (in a header
//! that a redirected request keeps), webhook paths, bot tokens. Following a `3xx` would send
//! the request again, with its secret header, path or body, to wherever the answer points,
//! and reqwest adds the secret URL as `Referer`. So the watchdog, the upstream relay and the
//! alert channels build their clients with [`policy`], and a `3xx` becomes a failure whose
//! reason, from [`refused`], names the new location so the operator can fix the URL. Callers
//! retry it like other transient failures: a redirect is often a passing state of the
//! destination (a migration, a proxy misconfigured for a while). Probes follow no redirect
//! either, for their own reason (`probe.rs`).

use reqwest::StatusCode;
use reqwest::header::HeaderValue;

/// The redirect policy of every client that sends to a configured URL: none followed.
pub(crate) fn policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::none()
}

/// For a `3xx` answer to a request for `url`, the reason to record: the status, where it
/// pointed and what to do. `None` for any other status.
pub(crate) fn refused(
    status: StatusCode,
    location: Option<&HeaderValue>,
    url: &str,
) -> Option<String> {
    if !status.is_redirection() {
        return None;
    }
    let to = match location {
        None => "without a Location".to_owned(),
        Some(location) => format!("to {}", shown(url, location)),
    };
    Some(format!(
        "HTTP {status} {to}: redirects are not followed (the URL carries a secret); \
         set the URL to the new location"
    ))
}

/// The location as the operator needs it to fix the URL, without repeating a secret: scheme,
/// host, port and path, with "the same path" instead of a path the request already had (it may
/// be a token or a check id) and no user info or query (either may hold one).
fn shown(url: &str, location: &HeaderValue) -> String {
    let Ok(base) = reqwest::Url::parse(url) else {
        return "an unreadable location".to_owned();
    };
    let Some(target) = location
        .to_str()
        .ok()
        .and_then(|location| base.join(location).ok())
    else {
        return "an unreadable location".to_owned();
    };
    let host = target.host_str().unwrap_or_default();
    let port = target.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = if target.path() == base.path() {
        " (the same path)"
    } else {
        target.path()
    };
    let query = if target.query().is_some() {
        " (query left out)"
    } else {
        ""
    };
    format!("{}://{host}{port}{path}{query}", target.scheme())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_to(url: &str, location: &str) -> String {
        refused(
            StatusCode::TEMPORARY_REDIRECT,
            Some(&HeaderValue::from_str(location).unwrap()),
            url,
        )
        .unwrap()
    }

    #[test]
    fn names_the_location_without_repeating_a_secret() {
        let moved = refused_to(
            "http://hc.example/ping/secret-id",
            "http://127.0.0.1:9/moved",
        );
        assert_eq!(
            moved,
            "HTTP 307 Temporary Redirect to http://127.0.0.1:9/moved: redirects are not followed \
             (the URL carries a secret); set the URL to the new location"
        );
        // Only the scheme changed: the secret path is not repeated.
        let https = refused_to(
            "http://api.example/botTOKEN/sendMessage",
            "https://api.example/botTOKEN/sendMessage",
        );
        assert!(
            https.contains("to https://api.example (the same path):"),
            "{https}"
        );
        assert!(!https.contains("TOKEN"), "{https}");
        // Relative locations are resolved; user info and queries are left out.
        let relative = refused_to("http://u:pw@h.example:8080/a/b", "/c?key=SECRET");
        assert!(
            relative.contains("to http://h.example:8080/c (query left out):"),
            "{relative}"
        );
        assert!(
            !relative.contains("SECRET") && !relative.contains("pw"),
            "{relative}"
        );
    }

    #[test]
    fn only_redirects_are_refused() {
        let url = "http://h.example/x";
        assert_eq!(refused(StatusCode::OK, None, url), None);
        assert_eq!(refused(StatusCode::NOT_FOUND, None, url), None);
        assert!(
            refused(StatusCode::MOVED_PERMANENTLY, None, url)
                .unwrap()
                .contains("HTTP 301 Moved Permanently without a Location")
        );
    }
}
