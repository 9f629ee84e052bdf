//! `Envelope::parse` on arbitrary bytes, and the body decoder on the same bytes as gzip and
//! deflate under a small output limit. Neither may panic; the decoder never returns more than
//! the limit, and whatever parses writes back out and parses to the same items. Check-in and
//! event items go on through the conversions ingest applies to them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use chrono::{DateTime, Utc};
use watchpost_engine::{ConfigPatch, MonitorConfig, MonitorKey};
use watchpost_protocol::{self as protocol, ContentEncoding, DecodeError, Envelope, decode_body};

/// Small, so bombs hit it within one iteration.
const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    check_envelope(data);
    for encoding in [ContentEncoding::Gzip, ContentEncoding::Deflate, ContentEncoding::Identity] {
        match decode_body(data, encoding, LIMIT) {
            Ok(body) => {
                assert!(body.len() <= LIMIT, "decoded {} bytes past the limit", body.len());
                check_envelope(&body);
            }
            Err(DecodeError::TooLarge { limit }) => assert_eq!(limit, LIMIT),
            Err(DecodeError::Corrupt { .. }) => {}
        }
    }
});

fn check_envelope(bytes: &[u8]) {
    let Ok(envelope) = Envelope::parse(bytes) else {
        return;
    };
    // Written with explicit lengths, an envelope must read back item for item.
    let written = envelope.to_vec();
    let again = Envelope::parse(&written).expect("a written envelope parses");
    assert_eq!(again.items.len(), envelope.items.len());
    for (a, b) in again.items.iter().zip(&envelope.items) {
        assert_eq!(a.ty(), b.ty());
        assert_eq!(a.payload, b.payload);
    }
    for item in &envelope.items {
        match item.ty() {
            "check_in" => check_checkin(item),
            "event" => {
                let _ = item.json::<protocol::Event>();
            }
            _ => {}
        }
    }
}

/// What `ingest::checkin_input` and the processor do with a check-in, minus the store.
fn check_checkin(item: &protocol::Item) {
    let Ok(wire) = item.json::<protocol::CheckIn>() else {
        return;
    };
    let _ = MonitorKey::new(1, &wire.monitor_slug, wire.environment.as_deref());
    let Some(Ok(patch)) = wire.monitor_config.as_ref().map(ConfigPatch::from_protocol) else {
        return;
    };
    if let Ok(config) = patch.to_config() {
        next_slots(&config);
    }
    if let Ok(config) = patch.apply_to(&MonitorConfig::new(
        watchpost_engine::Schedule::crontab("* * * * *").expect("a valid crontab"),
    )) {
        next_slots(&config);
    }
}

fn next_slots(config: &MonitorConfig) {
    for reference in [DateTime::<Utc>::MIN_UTC, DateTime::UNIX_EPOCH, DateTime::<Utc>::MAX_UTC] {
        if let Some(next) = config.next_checkin_after(reference) {
            assert!(next > reference);
            let _ = config.latest_for(next);
        }
    }
}
