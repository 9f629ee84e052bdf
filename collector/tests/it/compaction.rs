//! Online compaction against the real collector binary: SIGKILL in the middle of a compaction
//! loses no acknowledged check-in, whichever side of `db.current`'s rename it lands on; and a
//! compaction, asked through the API or of a stopped data dir through the CLI, gives back
//! space and keeps every record.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{Collector, checkin, envelope, interval, poll, sentry_auth};

/// The collector's own threshold stays out of the way: these tests ask for compactions.
const CONFIG: &str = "[limits]\ningest_per_second = 1000000\ningest_burst = 1000000\n\
                      monitor_checkins_per_minute = 1000000\n\
                      [retention]\ncheckins_per_monitor = 5000\n\
                      [store]\ncompact_above = 0\n";
const MONITORS: usize = 4;
const WRITERS: usize = 4;

/// Sends `ok` check-ins to `job-<m>` until `stop`, returning the (slug, id) of each one
/// acknowledged with a 200. Requests the kill cuts off are not acknowledged, and not counted.
fn writer(
    url: &str,
    key: &str,
    w: usize,
    stop: &AtomicBool,
    count: &AtomicUsize,
) -> Vec<(String, String)> {
    let client = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut acked = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let slug = format!("job-{}", (w + n as usize) % MONITORS);
        let id = format!("{w:08x}-0000-4000-8000-{n:012x}");
        n += 1;
        let body = envelope(&[("check_in", &checkin(&slug, "ok", Some(&id), None))]);
        let sent = client
            .post(url)
            .header("X-Sentry-Auth", sentry_auth(key))
            .body(body)
            .send();
        match sent {
            Ok(response) if response.status() == StatusCode::OK => {
                acked.push((slug, id));
                count.fetch_add(1, Ordering::Relaxed);
            }
            // The collector is gone (killed): nothing more will be acknowledged.
            Ok(_) | Err(_) => break,
        }
    }
    acked
}

fn create_monitors(collector: &Collector) {
    for m in 0..MONITORS {
        let body = envelope(&[(
            "check_in",
            &checkin(&format!("job-{m}"), "ok", None, Some(interval(1, "hour"))),
        )]);
        assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
    }
}

/// Every check-in id of every monitor, as the API lists them, page by page.
fn stored_ids(collector: &Collector) -> std::collections::BTreeSet<String> {
    let mut ids = std::collections::BTreeSet::new();
    for m in 0..MONITORS {
        let mut path = format!("/api/v1/monitors/1/job-{m}/checkins?limit=1000");
        loop {
            let response = collector.admin(Method::GET, &path).send().unwrap();
            if response.status() == StatusCode::NOT_FOUND {
                break;
            }
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let next = response
                .headers()
                .get("x-next-cursor")
                .map(|c| c.to_str().unwrap().to_owned());
            let page: Vec<Value> = response.json().unwrap();
            ids.extend(
                page.iter()
                    .map(|c| c["id"].as_str().unwrap().replace('-', "")),
            );
            match next {
                Some(cursor) => {
                    path =
                        format!("/api/v1/monitors/1/job-{m}/checkins?limit=1000&cursor={cursor}");
                }
                None => break,
            }
        }
    }
    ids
}

/// Starts a compaction through the API on a thread of its own; its answer never comes if the
/// process is killed meanwhile.
fn ask_compaction(collector: &Collector) {
    let url = collector.url("/api/v1/store/compact");
    let token = collector.token.clone();
    thread::spawn(move || {
        let _ = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap()
            .post(url)
            .bearer_auth(token)
            .send();
    });
}

/// One run: ingest under way, a compaction held at each of `steps` in turn (at each but the
/// last until 100 more check-ins were acknowledged), SIGKILL at the last, restart; every
/// acknowledged check-in is found, and `expected` is the database directory in use.
fn killed_at(steps: &[&str], expected: &str) {
    let mut collector = Collector::start_with_env(
        Some(CONFIG),
        &[("WATCHPOST_TEST_COMPACT_HOLD", &steps.join(","))],
    );
    create_monitors(&collector);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let url = collector.url("/api/1/envelope/");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, key) = (url.clone(), collector.key.clone());
            let (stop, count) = (stop.clone(), count.clone());
            thread::spawn(move || writer(&url, &key, w, &stop, &count))
        })
        .collect();
    // Some data before the compaction starts.
    poll(
        Duration::from_secs(60),
        "check-ins before the compaction",
        || (count.load(Ordering::Relaxed) >= 200).then_some(()),
    );
    ask_compaction(&collector);
    let data = collector.data_dir().join("data");
    for (i, step) in steps.iter().enumerate() {
        let marker = data.join(format!("compact.{step}"));
        poll(
            Duration::from_secs(120),
            "the compaction to reach its hold",
            || marker.exists().then_some(()),
        );
        if i + 1 < steps.len() {
            // Writes acknowledged while it is held here (after the copy, before the
            // reconcile): only the reconcile carries them into the copy.
            let target = count.load(Ordering::Relaxed) + 100;
            poll(Duration::from_secs(60), "check-ins during the hold", || {
                (count.load(Ordering::Relaxed) >= target).then_some(())
            });
            std::fs::remove_file(&marker).unwrap();
        }
    }
    // Held at the last step: writes go on (after the copy) or wait (ingest paused).
    thread::sleep(Duration::from_millis(300));
    collector.kill();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<(String, String)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(acked.len() >= 200, "only {} acknowledged", acked.len());

    collector.restart();
    let stored = stored_ids(&collector);
    let lost: Vec<_> = acked
        .iter()
        .filter(|(_, id)| !stored.contains(&id.replace('-', "")))
        .collect();
    assert!(
        lost.is_empty(),
        "killed at {steps:?}: {} of {} acknowledged check-ins lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(
        databases(&data),
        vec![expected.to_owned()],
        "killed at {steps:?}"
    );
    // And the store takes writes after the restart.
    let body = envelope(&[("check_in", &checkin("job-0", "ok", None, None))]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
}

/// The database directories in a data dir.
fn databases(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n == "db" || n.starts_with("db."))
        .collect();
    names.sort();
    names
}

#[test]
fn sigkill_after_the_copy_while_ingest_goes_on_loses_no_acknowledged_checkin() {
    killed_at(&["copied"], "db");
}

#[test]
fn sigkill_with_the_copy_reconciled_before_the_rename_loses_no_acknowledged_checkin() {
    killed_at(&["copied", "reconciled"], "db");
}

#[test]
fn sigkill_after_the_rename_before_the_swap_loses_no_acknowledged_checkin() {
    killed_at(&["copied", "pointed"], "db.1");
}

fn files_bytes(collector: &Collector) -> u64 {
    collector.api_get("/api/v1/store/stats")["files_bytes"]
        .as_u64()
        .unwrap()
}

/// Check-ins through retention: the log grows far past the live data.
fn churn(collector: &Collector, rounds: usize) {
    for n in 0..rounds {
        let items: Vec<String> = (0..20)
            .map(|m| checkin(&format!("job-{}", m % MONITORS), "ok", None, None))
            .collect();
        let items: Vec<(&str, &str)> = items.iter().map(|p| ("check_in", p.as_str())).collect();
        let (status, body) = collector.post_envelope(envelope(&items));
        assert_eq!(status, StatusCode::OK, "round {n}: {body}");
    }
}

#[test]
fn a_compaction_gives_back_space_and_keeps_every_record_online_and_offline() {
    let config = CONFIG.replace("checkins_per_monitor = 5000", "checkins_per_monitor = 20");
    let mut collector = Collector::start(Some(&config));
    create_monitors(&collector);
    churn(&collector, 400);
    let before = stored_ids(&collector);
    assert_eq!(before.len(), 20 * MONITORS);
    let bytes_before = files_bytes(&collector);

    let response = collector
        .admin(Method::POST, "/api/v1/store/compact")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().unwrap();
    assert_eq!(report["to"], "db.1", "{report}");
    assert!(
        report["pause_seconds"].as_f64().unwrap() < report["copy_seconds"].as_f64().unwrap() + 1.0
    );
    let bytes_after = files_bytes(&collector);
    assert!(
        bytes_after * 2 < bytes_before,
        "{bytes_after} bytes on disk after, {bytes_before} before"
    );
    assert_eq!(stored_ids(&collector), before);
    let metrics = collector
        .request(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "watchpost_store_compactions_total 1"),
        "{metrics}"
    );

    // Stopped: the CLI compacts the data dir itself, into the next generation.
    churn(&collector, 100);
    let before = stored_ids(&collector);
    collector.terminate();
    let data = collector.data_dir().join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["store", "compact", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.starts_with("compacted db.1 into db.2: ") && printed.contains("ingest paused"),
        "{printed}"
    );
    assert_eq!(databases(&data), vec!["db.2".to_owned()]);
    collector.restart();
    assert_eq!(stored_ids(&collector), before);
}

#[test]
fn the_collector_compacts_on_its_own_past_the_threshold() {
    let config = CONFIG
        .replace("checkins_per_monitor = 5000", "checkins_per_monitor = 20")
        .replace(
            "compact_above = 0",
            "compact_above = 4\ncompact_min_size = 0\ncompact_check = \"1s\"",
        );
    let collector = Collector::start(Some(&config));
    create_monitors(&collector);
    churn(&collector, 200);
    let before = stored_ids(&collector);
    poll(Duration::from_secs(60), "an automatic compaction", || {
        let metrics = collector
            .request(Method::GET, "/metrics")
            .send()
            .ok()?
            .text()
            .ok()?;
        metrics
            .lines()
            .any(|l| {
                l.strip_prefix("watchpost_store_compactions_total ")
                    .is_some_and(|n| n != "0")
            })
            .then_some(())
    });
    assert!(collector.stderr().contains("store compacted"));
    assert_eq!(stored_ids(&collector), before);
}
