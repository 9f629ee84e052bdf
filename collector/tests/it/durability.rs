//! Durability: what was acknowledged survives SIGKILL, and a restart after missed deadlines
//! records the miss exactly once.

use crate::support;

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::json;
use support::{Collector, checkin, envelope, interval, poll, sentry_auth};
use uuid::Uuid;

const MONITORS: usize = 4;
const THREADS: usize = 8;
const PER_THREAD: usize = 12;

#[test]
fn acknowledged_checkins_survive_sigkill() {
    let mut collector = Collector::start(None);
    for m in 0..MONITORS {
        let body = envelope(&[(
            "check_in",
            &checkin(&format!("job-{m}"), "ok", None, Some(interval(1, "hour"))),
        )]);
        assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
    }
    // Concurrent writers, so acknowledgements share flushes.
    let url = collector.url("/api/1/envelope/");
    let auth = sentry_auth(&collector.key);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (url, auth) = (url.clone(), auth.clone());
            thread::spawn(move || {
                let client = Client::new();
                let mut acked = Vec::new();
                for i in 0..PER_THREAD {
                    let slug = format!("job-{}", (t + i) % MONITORS);
                    let id = Uuid::new_v4().simple().to_string();
                    let body = envelope(&[("check_in", &checkin(&slug, "ok", Some(&id), None))]);
                    let response = client
                        .post(&url)
                        .header("X-Sentry-Auth", &auth)
                        .body(body)
                        .send();
                    let status = response.expect("request").status();
                    assert_eq!(status, StatusCode::OK);
                    acked.push((slug, id));
                }
                acked
            })
        })
        .collect();
    let acked: Vec<(String, String)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(acked.len(), THREADS * PER_THREAD);

    collector.kill();
    collector.restart();
    for m in 0..MONITORS {
        let slug = format!("job-{m}");
        let stored: BTreeSet<String> = collector
            .checkins(&slug)
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        for (_, id) in acked.iter().filter(|(s, _)| *s == slug) {
            assert!(
                stored.contains(id),
                "acknowledged check-in {id} of {slug} was lost"
            );
        }
    }
}

#[test]
fn a_restart_after_missed_deadlines_records_their_slots_unknown_and_one_missed_after_the_grace() {
    let mut collector = Collector::start(Some("[server]\noutage_grace = \"3s\"\n"));
    let config = json!({"schedule": {"type": "interval", "value": 3, "unit": "second"},
                        "checkin_margin": "1s"});
    let body = envelope(&[("check_in", &checkin("nightly", "ok", None, Some(config)))]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
    let acknowledged = Instant::now();
    assert!(collector.terminate().success());

    // Stay down past two slots (latest at most 4 s and 7 s after the check-in).
    thread::sleep(Duration::from_millis(7500).saturating_sub(acknowledged.elapsed()));
    collector.restart();
    let restarted = Instant::now();
    // The catch-up sweep: the slots the collector could not watch are unknown, not missed.
    let checkins = poll(Duration::from_secs(2), "the catch-up sweep", || {
        let checkins = collector.checkins("nightly");
        checkins
            .iter()
            .any(|c| c["status"] == "unknown")
            .then_some(checkins)
    });
    assert!(
        !checkins.iter().any(|c| c["status"] == "missed"),
        "nothing is missed before the grace ends: {checkins:?}"
    );
    // The job does not check in: one missed for the outage at the end of the 3 s grace.
    let checkins = poll(Duration::from_secs(6), "the missed after the grace", || {
        let checkins = collector.checkins("nightly");
        checkins
            .iter()
            .any(|c| c["status"] == "missed")
            .then_some(checkins)
    });
    assert!(
        restarted.elapsed() >= Duration::from_millis(2500),
        "{checkins:?}"
    );
    let missed = checkins.iter().filter(|c| c["status"] == "missed").count();
    assert_eq!(
        missed, 1,
        "one missed for the outage, not one per slot: {checkins:?}"
    );
    let monitor = &collector.monitor("nightly")[0];
    assert_eq!(monitor["status"], "error");
    let next: chrono::DateTime<chrono::Utc> =
        monitor["next_checkin"].as_str().unwrap().parse().unwrap();
    assert!(
        next > chrono::Utc::now() - chrono::TimeDelta::seconds(1),
        "re-planned after the outage: {next}"
    );
}
