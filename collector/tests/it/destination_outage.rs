//! A webhook destination that is down (answers 503) for a while as monitors fail and recover:
//! once it is back, every alert is delivered exactly once, in the order the incidents changed.
//! The dispatcher's default backoff (1 s doubling) is short enough for a 10 s outage, so no
//! test-only knob is needed; `WATCHPOST_DESTINATION_OUTAGE_SECS` stretches the window.

// Both harnesses are needed: the collector's (`support`) and the fake destinations
// (`alert_support`); each carries its own copy of `support/python.rs`.
use crate::alert_support;
use crate::support;

use std::time::{Duration, Instant};

use alert_support::{Fake, status};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Collector, checkin, envelope, poll};

fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("WATCHPOST_DESTINATION_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    )
}

/// A check-in that creates its monitor (hourly; one failure opens, one success resolves).
fn report(collector: &Collector, slug: &str, status: &str) {
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "failure_issue_threshold": 1, "recovery_threshold": 1});
    let body = envelope(&[("check_in", &checkin(slug, status, None, Some(config)))]);
    assert_eq!(collector.post_envelope(body).0, StatusCode::OK);
}

/// `monitor.failed job-3` for an alert body.
fn label(alert: &Value) -> String {
    format!(
        "{} {}",
        alert["kind"].as_str().unwrap_or("?"),
        alert["monitor"]["slug"].as_str().unwrap_or("?")
    )
}

#[test]
fn alerts_held_while_the_webhook_is_down_arrive_in_order_once_it_returns() {
    let outage = outage();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let down_until = Instant::now() + outage;
    // The fake stamps requests with tokio's clock.
    let hook_down_until = tokio::time::Instant::now() + outage;
    let hook = runtime.block_on(Fake::start(move |seen, _| {
        if seen.at < hook_down_until {
            status(503, "down for maintenance")
        } else {
            status(200, "ok")
        }
    }));
    let collector = Collector::start(Some(&format!(
        r#"
[[channels]]
name = "hook"
type = "webhook"
url = "{}/hook"

[[rules]]
name = "jobs"
on = ["monitor.failed", "monitor.recovered"]
channels = ["hook"]

[alerts]
dedup_window = "0s"
"#,
        hook.url
    )));

    // While the destination is down: six monitors fail, one by one, and the first two recover.
    let mut expected = Vec::new();
    let step = outage / 20;
    for i in 0..6 {
        let slug = format!("job-{i}");
        report(&collector, &slug, "error");
        expected.push(format!("monitor.failed {slug}"));
        std::thread::sleep(step);
    }
    for i in 0..2 {
        let slug = format!("job-{i}");
        report(&collector, &slug, "ok");
        expected.push(format!("monitor.recovered {slug}"));
        std::thread::sleep(step);
    }
    assert!(
        Instant::now() < down_until,
        "the alerts were raised while the destination was down"
    );
    poll(outage * 2, "a refused delivery attempt", || {
        hook.seen().iter().any(|s| s.status == 503).then_some(())
    });

    let delivered = poll(outage + Duration::from_secs(60), "every alert", || {
        let got: Vec<String> = hook.accepted().iter().map(|s| label(&s.json)).collect();
        (got.len() >= expected.len()).then_some(got)
    });
    let refused = hook.seen().iter().filter(|s| s.status == 503).count();
    let last = hook.accepted().last().unwrap().at;
    println!(
        "destination down {outage:?}: {refused} refused attempts, {} alerts delivered {:?} after it returned",
        delivered.len(),
        last.saturating_duration_since(hook_down_until)
    );
    assert_eq!(delivered, expected, "each alert once, in order");
    // The retry backoff is capped at 30 s: the first delivery after the destination is back
    // comes within that (plus a moment to send), however long the outage was.
    let first = hook.accepted().first().unwrap().at;
    assert!(
        first.saturating_duration_since(hook_down_until) <= Duration::from_secs(31),
        "first delivery {:?} after the destination returned",
        first.saturating_duration_since(hook_down_until)
    );
    poll(Duration::from_secs(10), "the outbox to drain", || {
        let pending = collector.api_get("/api/v1/alerts?state=pending&limit=1000");
        pending.as_array().unwrap().is_empty().then_some(())
    });
    let failed = collector.api_get("/api/v1/alerts?state=failed&limit=1000");
    assert_eq!(failed, json!([]), "nothing given up");
}
