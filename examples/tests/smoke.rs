//! The examples for teams that already run their jobs on tokio-cron-scheduler or apalis, run
//! as a user would (the built binary, `WATCHPOST_DSN` in its environment) with `--once`,
//! against the SDK tests' loopback recorder: each job's run arrives as `in_progress` then `ok`
//! with one check-in id and the monitor config its attribute declares, so an example that no
//! longer builds its schedule, runs its job or reports it fails here.

// support/ allows its own unused parts (dead_code), as each SDK test binary uses a part.
#[path = "../../sdk/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use support::Recorder;
use watchpost_protocol::{CheckIn, CheckInStatus};

/// Runs `binary --once` against `server`; returns its output once it has exited.
fn run_once(binary: &str, server: &Recorder) -> Output {
    let output = Command::new(binary)
        .arg("--once")
        .env("WATCHPOST_DSN", server.dsn())
        .env_remove("SENTRY_DSN")
        .output()
        .expect("the example starts");
    assert!(
        output.status.success(),
        "{binary} --once failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The check-ins of `slug`, in order; waits for `n` of them in all.
fn runs_of(server: &Recorder, n: usize, slug: &str) -> Vec<CheckIn> {
    let all = server.wait_for(Duration::from_secs(30), |r| {
        support::check_ins(r).len() >= n
    });
    let mine: Vec<_> = support::check_ins(&all)
        .into_iter()
        .filter(|c| c.monitor_slug == slug)
        .collect();
    assert_eq!(
        mine.iter().map(|c| c.status).collect::<Vec<_>>(),
        [CheckInStatus::InProgress, CheckInStatus::Ok],
        "{slug}: {mine:?}"
    );
    assert_eq!(mine[0].check_in_id, mine[1].check_in_id, "one run");
    mine
}

fn schedule_of(check_in: &CheckIn) -> serde_json::Value {
    let config = serde_json::to_value(&check_in.monitor_config).expect("serializes");
    json!({"schedule": config["schedule"], "timezone": config["timezone"]})
}

#[test]
fn tokio_cron_scheduler_runs_both_jobs_once_and_they_report() {
    let server = Recorder::start();
    let output = run_once(env!("CARGO_BIN_EXE_cron_scheduler"), &server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ran refresh_rates"), "{stdout}");
    assert!(stdout.contains("ran compact_uploads"), "{stdout}");

    let rates = runs_of(&server, 4, "refresh_rates");
    assert_eq!(
        schedule_of(&rates[1]),
        json!({"schedule": {"type": "crontab", "value": "*/5 * * * *"}, "timezone": "Europe/Berlin"})
    );
    let uploads = runs_of(&server, 4, "compact_uploads");
    assert_eq!(
        schedule_of(&uploads[1]),
        json!({"schedule": {"type": "crontab", "value": "@hourly"}, "timezone": null})
    );
}

#[test]
fn an_apalis_worker_runs_the_job_once_and_it_reports() {
    let server = Recorder::start();
    let output = run_once(env!("CARGO_BIN_EXE_apalis_worker"), &server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("synced 12 invoices"), "{stdout}");
    assert!(stdout.contains("ran sync_invoices"), "{stdout}");

    let runs = runs_of(&server, 2, "sync_invoices");
    assert_eq!(
        schedule_of(&runs[0]),
        json!({"schedule": {"type": "crontab", "value": "*/15 * * * *"}, "timezone": null})
    );
}
