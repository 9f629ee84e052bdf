//! The ping route `/ping/{key}/{slug}[/start|/fail|/log|/{exit_code}][?rid=..&environment=..]`
//! on an arbitrary request target: split and percent-decoded as the router does, then every
//! pure step of the ping handler (query, key, action, rid, slug and environment). None may
//! panic; each either accepts or returns a 4xx with a message.
#![no_main]

use http::{HeaderMap, Uri};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use uuid::Uuid;
use watchpost_collector::http::{HttpError, query_pairs, query_value};
use watchpost_collector::ingest::auth::find_key;
use watchpost_collector::ingest::ping::parse_action;
use watchpost_engine::MonitorKey;

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = Uri::try_from(data) else {
        return;
    };
    if let Err(error) = ping(&uri) {
        assert!(error.status.is_client_error(), "{uri}: {error:?}");
        assert!(!error.message.is_empty(), "{uri}: an error with no message");
    }
});

fn ping(uri: &Uri) -> Result<(), HttpError> {
    // The router matches whole segments and hands the handler percent-decoded UTF-8.
    let segments: Vec<&str> = uri.path().split('/').skip(1).collect();
    let (key, slug, action) = match segments.as_slice() {
        ["ping", key, slug] => (*key, *slug, None),
        ["ping", key, slug, action] => (*key, *slug, Some(*action)),
        _ => return Ok(()),
    };
    let decode = |raw: &str| percent_decode_str(raw).decode_utf8().map(|s| s.into_owned());
    let (Ok(key), Ok(slug), action) = (decode(key), decode(slug), action.map(decode).transpose())
    else {
        return Ok(());
    };
    let Ok(action) = action else {
        return Ok(());
    };
    if key.is_empty() || slug.is_empty() || action.as_deref() == Some("") {
        return Ok(());
    }

    let query = query_pairs(uri)?;
    find_key(&HeaderMap::new(), &query, Some(&key))?;
    parse_action(action.as_deref())?;
    if let Some(rid) = query_value(&query, "rid") {
        Uuid::parse_str(rid).map_err(|_| HttpError::bad_request("invalid_checkin", "rid"))?;
    }
    let environment = query_value(&query, "environment");
    let key = MonitorKey::new(1, &slug, environment)
        .map_err(|e| HttpError::bad_request("invalid_checkin", e.to_string()))?;
    assert!(!key.slug.is_empty() && key.slug.len() <= 50, "{key:?}");
    Ok(())
}
