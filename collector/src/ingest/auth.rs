//! Ingest authentication: finds the project key in exactly one of the five places Sentry
//! clients put it, and maps it to its project in constant time. Never logs or echoes a key.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use watchpost_protocol::Auth;

use crate::http::HttpError;

/// Length of a public key: 32 hex characters.
const KEY_LEN: usize = 32;

/// Every project's public keys, for lookups that take the same time whichever key matches.
#[derive(Debug, Clone, Default)]
pub struct ProjectKeys {
    keys: Vec<(u64, [u8; KEY_LEN])>,
}

impl ProjectKeys {
    /// Builds the table from `(project, keys)` pairs; keys that are not 32 characters are
    /// skipped (config validation rules them out).
    pub fn new<'a>(projects: impl IntoIterator<Item = (u64, &'a [String])>) -> ProjectKeys {
        let mut keys = Vec::new();
        for (project, project_keys) in projects {
            for key in project_keys {
                if let Ok(bytes) = <[u8; KEY_LEN]>::try_from(key.to_ascii_lowercase().as_bytes()) {
                    keys.push((project, bytes));
                }
            }
        }
        ProjectKeys { keys }
    }

    /// The project owning `key`, comparing against every key in constant time. Project ids
    /// are positive (config validation), so 0 can stand for "no match".
    pub fn project_of(&self, key: &str) -> Option<u64> {
        let candidate = key.trim().to_ascii_lowercase();
        let candidate = candidate.as_bytes();
        // A length mismatch reveals only that the key is malformed, not which key exists.
        if candidate.len() != KEY_LEN {
            return None;
        }
        let mut found = 0u64;
        for (project, key) in &self.keys {
            found = u64::conditional_select(&found, project, key.as_slice().ct_eq(candidate));
        }
        (found != 0).then_some(found)
    }
}

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    SentryHeader,
    AuthorizationHeader,
    Query,
    Path,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::SentryHeader => "the X-Sentry-Auth header",
            Source::AuthorizationHeader => "the Authorization header",
            Source::Query => "the sentry_key query parameter",
            Source::Path => "the URL path",
        }
    }
}

/// Finds the one credential of a request: `X-Sentry-Auth: Sentry sentry_key=..`,
/// `Authorization: Sentry ..` or `Basic base64("key:")`, `?sentry_key=`, or a key in the path.
/// None is a 401, several are a 400 naming them, a malformed one a 401 saying what is wrong.
pub fn find_key(
    headers: &HeaderMap,
    query: &[(String, String)],
    path_key: Option<&str>,
) -> Result<String, HttpError> {
    let mut found: Vec<(Source, Result<String, String>)> = Vec::new();
    if let Some(value) = headers.get("x-sentry-auth") {
        let parsed = value
            .to_str()
            .map_err(|_| "X-Sentry-Auth is not valid text".to_owned())
            .and_then(|v| Auth::parse(v).map_err(|e| format!("X-Sentry-Auth: {e}")))
            .map(|auth| auth.key);
        found.push((Source::SentryHeader, parsed));
    }
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default().trim();
        let scheme = value.split_whitespace().next().unwrap_or_default();
        if scheme.eq_ignore_ascii_case("sentry") {
            let parsed = Auth::parse(value)
                .map(|auth| auth.key)
                .map_err(|e| format!("Authorization: {e}"));
            found.push((Source::AuthorizationHeader, parsed));
        } else if scheme.eq_ignore_ascii_case("basic") {
            found.push((
                Source::AuthorizationHeader,
                basic_key(&value[scheme.len()..]),
            ));
        }
        // Other schemes (a proxy's Bearer token, say) are not ours to judge.
    }
    if let Some((_, key)) = query.iter().find(|(name, _)| name == "sentry_key") {
        found.push((Source::Query, Ok(key.clone())));
    }
    if let Some(key) = path_key {
        found.push((Source::Path, Ok(key.to_owned())));
    }
    match found.len() {
        0 => Err(HttpError::unauthorized(
            "missing credentials: send the project's public key in the X-Sentry-Auth header \
             (\"Sentry sentry_key=<key>, sentry_version=7\"), an Authorization header, the \
             sentry_key query parameter, or the URL path",
        )),
        1 => {
            let (_, key) = found.remove(0);
            key.map_err(HttpError::unauthorized)
        }
        _ => {
            let places: Vec<_> = found.iter().map(|(source, _)| source.describe()).collect();
            Err(HttpError::bad_request(
                "multiple_credentials",
                format!(
                    "credentials found in more than one place ({}); send the key in exactly one",
                    places.join(", ")
                ),
            ))
        }
    }
}

fn basic_key(encoded: &str) -> Result<String, String> {
    let problem =
        || "Authorization: Basic credentials must be base64 of \"<public key>:\"".to_owned();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| problem())?;
    let text = String::from_utf8(decoded).map_err(|_| problem())?;
    let (key, _secret) = text.split_once(':').ok_or_else(problem)?;
    if key.is_empty() {
        return Err(problem());
    }
    Ok(key.to_owned())
}

/// Checks that `key` belongs to `project` (403 otherwise).
pub fn check_project(keys: &ProjectKeys, key: &str, project: u64) -> Result<(), HttpError> {
    match keys.project_of(key) {
        Some(owner) if owner == project => Ok(()),
        Some(_) => Err(HttpError::forbidden(format!(
            "this key does not belong to project {project}"
        ))),
        None => Err(HttpError::forbidden(
            "unknown project key; check the DSN the client uses",
        )),
    }
}

/// The project that owns `key` (403 if none).
pub fn project_for(keys: &ProjectKeys, key: &str) -> Result<u64, HttpError> {
    keys.project_of(key)
        .ok_or_else(|| HttpError::forbidden("unknown project key; check the ping URL"))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};

    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn finds_the_key_in_each_place() {
        let sentry = format!("Sentry sentry_key={KEY}, sentry_version=7");
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"))
        );
        let query = vec![("sentry_key".to_owned(), KEY.to_owned())];
        let none: &[(String, String)] = &[];
        assert_eq!(
            find_key(&headers(&[("x-sentry-auth", &sentry)]), none, None).unwrap(),
            KEY
        );
        assert_eq!(
            find_key(&headers(&[("authorization", &sentry)]), none, None).unwrap(),
            KEY
        );
        assert_eq!(
            find_key(&headers(&[("authorization", &basic)]), none, None).unwrap(),
            KEY
        );
        assert_eq!(find_key(&HeaderMap::new(), &query, None).unwrap(), KEY);
        assert_eq!(find_key(&HeaderMap::new(), none, Some(KEY)).unwrap(), KEY);
        assert_eq!(
            find_key(
                &headers(&[("authorization", "Bearer xyz")]),
                none,
                Some(KEY)
            )
            .unwrap(),
            KEY
        );
    }

    #[test]
    fn rejects_none_many_and_malformed() {
        let none: &[(String, String)] = &[];
        let err = find_key(&HeaderMap::new(), none, None).unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        let query = vec![("sentry_key".to_owned(), KEY.to_owned())];
        let err = find_key(&HeaderMap::new(), &query, Some(KEY)).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.message
                .contains("the sentry_key query parameter, the URL path"),
            "{}",
            err.message
        );
        let err = find_key(
            &headers(&[("x-sentry-auth", "Sentry sentry_version=7")]),
            none,
            None,
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert!(err.message.contains("sentry_key"), "{}", err.message);
        let err = find_key(&headers(&[("authorization", "Basic !!!")]), none, None).unwrap_err();
        assert!(err.message.contains("base64"), "{}", err.message);
    }

    #[test]
    fn keys_map_to_their_project() {
        let one = vec![KEY.to_owned()];
        let two = vec!["f".repeat(32)];
        let keys = ProjectKeys::new([(1, one.as_slice()), (2, two.as_slice())]);
        assert_eq!(keys.project_of(KEY), Some(1));
        assert_eq!(keys.project_of(&"F".repeat(32)), Some(2));
        assert_eq!(keys.project_of(&"e".repeat(32)), None);
        assert_eq!(keys.project_of("short"), None);
        assert!(check_project(&keys, KEY, 1).is_ok());
        assert_eq!(
            check_project(&keys, KEY, 2).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }
}
