//! A full disk (docs/reliability.md, "Disk full"): the data dir on a small tmpfs, filled up. Ingest must
//! answer 503 with a JSON error (so SDKs retry), never acknowledge what it could not keep, keep
//! the store readable across a restart, and recover by itself once space returns. A job whose
//! deadline fell while writes were refused is not reported missed for it: the collector could
//! not have recorded its check-in (`engine/src/outage.rs`).
//!
//! Mounting needs root (or CAP_SYS_ADMIN). Without it this test fails, loudly: a disk-full test
//! that passes without filling a disk proves nothing.

use crate::support;

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::tmpfs::Tmpfs;
use support::{Collector, checkin, envelope, interval, poll};

const SLUG: &str = "nightly";
/// Most check-ins `Collector::checkins` lists.
const LISTED: usize = 1000;

/// Writes zeros to `path` until the file system refuses; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = file.sync_all();
    written
}

/// Posts one check-in of `SLUG`; returns the status and the `error` sentence, if any.
fn send(c: &Collector) -> (StatusCode, String) {
    let body = envelope(&[(
        "check_in",
        &checkin(SLUG, "ok", None, Some(interval(1, "hour"))),
    )]);
    let (status, reply) = c.post_envelope(body);
    let error = reply["error"].as_str().unwrap_or_default().to_owned();
    (status, error)
}

#[test]
fn a_full_disk_is_a_503_and_nothing_acknowledged_is_lost() {
    let root = tempfile::tempdir().expect("temp dir");
    let mount = Tmpfs::mount(&root.path().join("data"), "8m");
    // Keep every check-in so the counts below are exact.
    let config = "[server]\noutage_grace = \"20s\"\n[retention]\ncheckins_per_monitor = 100000\n";
    let mut c = Collector::start_in(root, Some(config), &[]);
    let filler = mount.path.join("filler");

    // A job due every 2 s (margin 1 s) whose deadlines fall while the disk is full.
    let tick = json!({"schedule": {"type": "interval", "value": 2, "unit": "second"},
                      "checkin_margin": "1s", "failure_issue_threshold": 1});
    let (status, reply) = c.post_envelope(envelope(&[(
        "check_in",
        &checkin("tick", "ok", None, Some(tick)),
    )]));
    assert_eq!(status, StatusCode::OK, "{reply}");

    let mut acknowledged = 0usize;
    for _ in 0..5 {
        let (status, error) = send(&c);
        assert_eq!(status, StatusCode::OK, "{error}");
        acknowledged += 1;
    }

    let filled = fill(&filler);
    assert!(filled > 0, "the tmpfs was full before the test filled it");
    // sled buffers writes: the refusal comes at the flush that would make one durable. Until
    // then a check-in may still be acknowledged (and is then durable); never a 500.
    let (status, error) = poll(Duration::from_secs(30), "a 503 from a full disk", || {
        let (status, error) = send(&c);
        match status {
            StatusCode::OK => {
                acknowledged += 1;
                None
            }
            StatusCode::SERVICE_UNAVAILABLE => Some((status, error)),
            other => panic!("a full disk must be a 503, got {other}: {error}"),
        }
    });
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error.contains("retry later"), "error: {error}");
    // Reads still work while writes cannot.
    assert!(c.checkins(SLUG).len() >= acknowledged.min(LISTED));

    // Full for longer than the tick job's deadline (its sweep is refused too).
    std::thread::sleep(Duration::from_secs(4));

    // Space returns: the next check-in gets through without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    poll(Duration::from_secs(30), "ingest to recover", || {
        let (status, error) = send(&c);
        match status {
            StatusCode::OK => Some(()),
            StatusCode::SERVICE_UNAVAILABLE => None,
            other => panic!("recovering from a full disk: {other}: {error}"),
        }
    });
    acknowledged += 1;

    // The sweep the full disk refused runs once writes are accepted again: the tick job's
    // slots in the refusal are `unknown`, not `missed`, and it has the grace to check in.
    let unknown = poll(
        Duration::from_secs(10),
        "the refused slots as unknown",
        || {
            c.checkins("tick")
                .into_iter()
                .find(|t| t["status"] == "unknown")
        },
    );
    assert!(
        unknown["log"]
            .as_str()
            .is_some_and(|log| log.contains("refused writes")),
        "{unknown}"
    );
    let (status, reply) = c.post_envelope(envelope(&[(
        "check_in",
        &checkin("tick", "ok", None, None),
    )]));
    assert_eq!(status, StatusCode::OK, "{reply}");
    let ticks = c.checkins("tick");
    let statuses: Vec<&str> = ticks
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(!statuses.contains(&"missed"), "{ticks:?}");

    // Everything acknowledged survives a hard kill and a restart; the store opens cleanly.
    c.restart();
    let kept = c.checkins(SLUG).len();
    assert!(
        kept >= acknowledged.min(LISTED),
        "acknowledged {acknowledged} check-ins, {kept} survived the restart"
    );
    let (status, error) = send(&c);
    assert_eq!(status, StatusCode::OK, "after restart: {error}");
    drop(c);
    drop(mount);
}
