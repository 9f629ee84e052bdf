//! `watchpost store stats` and the store gauges against a real collector: the counts are what
//! was written and retention kept, from the API, `/metrics`, the CLI asking the running
//! collector, and the CLI reading the stopped collector's data dir; and the mistakes an operator
//! can make with `--data-dir` get a sentence and no side effect.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{Collector, checkin, envelope, interval};

/// Check-ins each monitor keeps, and how many are sent to each.
const KEEP: u64 = 5;
const SENT: usize = 8;
const MONITORS: usize = 3;

fn watchpost(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_watchpost"));
    command
        .args(args)
        .env_remove("WATCHPOST_URL")
        .env_remove("WATCHPOST_ADMIN_TOKEN");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run watchpost")
}

#[track_caller]
fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn records(stats: &Value, tree: &str) -> u64 {
    stats["trees"]
        .as_array()
        .expect("trees")
        .iter()
        .find(|t| t["tree"] == tree)
        .unwrap_or_else(|| panic!("no tree {tree} in {stats}"))["records"]
        .as_u64()
        .expect("records")
}

/// The counts retention leaves, and live bytes that add up.
#[track_caller]
fn assert_counts(stats: &Value) {
    let kept = KEEP * MONITORS as u64;
    assert_eq!(records(stats, "checkins"), kept, "{stats}");
    assert_eq!(records(stats, "checkin_ids"), kept, "{stats}");
    assert_eq!(records(stats, "monitors"), MONITORS as u64, "{stats}");
    let trees = stats["trees"].as_array().unwrap();
    let live: u64 = trees
        .iter()
        .map(|t| t["key_bytes"].as_u64().unwrap() + t["value_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(stats["live_bytes"].as_u64(), Some(live));
    // A check-in record is tens of bytes, never kilobytes: live bytes measure data, not files.
    let checkins = trees.iter().find(|t| t["tree"] == "checkins").unwrap();
    let per_record = (checkins["key_bytes"].as_u64().unwrap()
        + checkins["value_bytes"].as_u64().unwrap())
        / kept;
    assert!(
        (40..400).contains(&per_record),
        "{per_record} bytes per check-in"
    );
    let files = stats["files_bytes"].as_u64().unwrap();
    assert!(files >= stats["size_on_disk"].as_u64().unwrap() && files > live);
    assert!(stats["disk"]["available"].as_u64().unwrap() > 0);
    assert!(
        stats["disk"]["total"].as_u64().unwrap() >= stats["disk"]["available"].as_u64().unwrap()
    );
}

fn send_checkins(collector: &Collector) {
    for n in 0..SENT {
        let items: Vec<(String, String)> = (0..MONITORS)
            .map(|m| {
                let config = (n == 0).then(|| interval(1, "hour"));
                let id = format!("{m:08x}-0000-4000-8000-{n:012x}");
                let item = checkin(&format!("job-{m}"), "ok", Some(&id), config);
                ("check_in".to_owned(), item)
            })
            .collect();
        let items: Vec<(&str, &str)> = items
            .iter()
            .map(|(t, p)| (t.as_str(), p.as_str()))
            .collect();
        let (status, body) = collector.post_envelope(envelope(&items));
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[test]
fn store_stats_count_what_retention_keeps_running_and_stopped() {
    let config = format!("[retention]\ncheckins_per_monitor = {KEEP}\n");
    let mut collector = Collector::start(Some(&config));
    send_checkins(&collector);
    let env = [
        ("WATCHPOST_URL", collector.base.as_str()),
        ("WATCHPOST_ADMIN_TOKEN", collector.token.as_str()),
    ];

    // The API, and the CLI asking it.
    let api = collector.api_get("/api/v1/store/stats");
    assert_counts(&api);
    let cli = json_of(&watchpost(&env, &["store", "stats", "--json"]));
    assert_counts(&cli);
    let table = watchpost(&env, &["store", "stats"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("checkins") && l.contains(" 15 ")),
        "{table}"
    );
    assert!(
        table.contains("on disk: ") && table.contains("free of"),
        "{table}"
    );

    // The gauges.
    let metrics = collector
        .request(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    for line in [
        "watchpost_store_records{tree=\"checkins\"} 15",
        "watchpost_store_records{tree=\"monitors\"} 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in\n{metrics}"
        );
    }
    for gauge in [
        "watchpost_store_live_bytes{tree=\"checkins\"} ",
        "watchpost_store_files_bytes ",
        "watchpost_disk_available_bytes ",
        "watchpost_disk_total_bytes ",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(gauge)),
            "no {gauge} in\n{metrics}"
        );
    }
    // Without the token, the stats are refused like the rest of the management API.
    let anonymous = collector
        .request(Method::GET, "/api/v1/store/stats")
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The running collector's data dir is refused by its lock, with what to do instead.
    let data = collector.data_dir().join("data");
    let data_arg = data.to_str().unwrap();
    let locked = watchpost(&[], &["store", "stats", "--data-dir", data_arg]);
    assert_eq!(locked.status.code(), Some(1));
    let said = String::from_utf8_lossy(&locked.stderr);
    assert!(
        said.contains("a running collector holds this store"),
        "{said}"
    );

    // Stopped: read from the data dir, the same counts.
    collector.terminate();
    let offline = json_of(&watchpost(
        &[],
        &["store", "stats", "--json", "--data-dir", data_arg],
    ));
    assert_counts(&offline);
    // The check-in data did not change on the way down: same records, same bytes.
    let tree = |stats: &Value, name: &str| {
        let trees = stats["trees"].as_array().unwrap();
        trees.iter().find(|t| t["tree"] == name).cloned()
    };
    for name in ["checkins", "checkin_ids", "monitors"] {
        assert_eq!(tree(&offline, name), tree(&api, name), "{name}");
    }
}

/// `--data-dir` naming a directory without a store: exit 2, a sentence, and nothing created.
#[test]
fn store_stats_of_a_directory_without_a_store_creates_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let output = watchpost(
        &[],
        &[
            "store",
            "stats",
            "--data-dir",
            empty.path().to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("no store there"), "{said}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    let missing = empty.path().join("nope");
    let output = watchpost(
        &[],
        &["store", "stats", "--data-dir", missing.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(!Path::new(&missing).exists());
}
