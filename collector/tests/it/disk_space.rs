//! The dashboard's overview shows the store's size and the free space of the data dir's disk,
//! and warns well before the disk is full (at under a tenth free, long before the 2 MiB at
//! which writes are refused): the data dir on a small tmpfs, filled with a ballast file.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); without it this test fails loudly, like
//! `disk_full.rs`: a warning test that never fills a disk proves nothing.

use crate::support;

use std::io::Write;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use support::tmpfs::Tmpfs;
use support::{Collector, checkin, envelope, interval};

const WARNING: &str = "running out of space";

fn log_in(client: &Client, collector: &Collector) -> String {
    let response = client
        .post(collector.url("/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={}&next=%2F", collector.token))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

fn overview(client: &Client, collector: &Collector, cookie: &str) -> String {
    let response = client
        .get(collector.url("/"))
        .header("Cookie", cookie)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().unwrap()
}

#[test]
fn the_overview_shows_store_size_and_free_space_and_warns_before_the_disk_fills() {
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(&dir.path().join("data"), "64m");
    let collector = Collector::start_in(dir, None, &[]);
    let item = checkin("nightly", "ok", None, Some(interval(1, "day")));
    let (status, body) = collector.post_envelope(envelope(&[("check_in", &item)]));
    assert_eq!(status, StatusCode::OK, "{body}");
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let cookie = log_in(&client, &collector);

    let plenty = overview(&client, &collector, &cookie);
    assert!(plenty.contains("store on disk"), "{plenty}");
    assert!(plenty.contains("free on the data dir's disk"), "{plenty}");
    assert!(
        !plenty.contains(WARNING),
        "warned with most of the disk free"
    );

    // Leave about 5 MiB of 64 free: under a tenth, still above the 2 MiB where writes stop.
    let ballast_path = tmpfs.path.join("ballast");
    let mut ballast = std::fs::File::create(&ballast_path).unwrap();
    let leave = 5u64 << 20;
    let chunk = vec![0u8; 1 << 20];
    while tmpfs.available() > leave + (1 << 20) {
        ballast.write_all(&chunk).unwrap();
        ballast.flush().unwrap();
    }
    let low = overview(&client, &collector, &cookie);
    assert!(
        low.contains(WARNING),
        "no warning with {} bytes free:\n{low}",
        tmpfs.available()
    );
    assert!(low.contains("of 64.0 MiB"), "{low}");
    assert!(low.contains("watchpost store stats"));
    // Still well before the refusal: check-ins are accepted.
    let item = checkin("nightly", "ok", None, None);
    let (status, body) = collector.post_envelope(envelope(&[("check_in", &item)]));
    assert_eq!(status, StatusCode::OK, "{body}");

    // Space back: the warning goes.
    drop(ballast);
    std::fs::remove_file(&ballast_path).unwrap();
    let back = overview(&client, &collector, &cookie);
    assert!(
        !back.contains(WARNING),
        "still warning after space returned"
    );
}
