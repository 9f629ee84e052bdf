//! A restart of the collector is not its jobs' failure. Ten jobs ping the real binary every 5 s
//! (plain HTTP pings, as a crontab's curl sends them); the collector is stopped for 20 s
//! (SIGTERM, or SIGKILL) and started again on the same port, and the jobs keep pinging. Nothing
//! may page: no `monitor.failed` at the webhook, no `missed` check-in; the slots it could not
//! watch are `unknown`. A job that really stopped during the outage is reported once, at the end
//! of the grace, by an alert that says when the collector was down. The webhook is a real HTTP
//! server on loopback that checks the alert JSON's shape.

use crate::alert_support;
use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use alert_support::{Fake, Seen, arrived, runtime, status, time};
use chrono::TimeDelta;
use reqwest::blocking::Client;
use serde_json::Value;
use support::{Collector, poll};

const JOBS: usize = 10;
const PERIOD: Duration = Duration::from_secs(5);
const OUTAGE: Duration = Duration::from_secs(20);
/// `[server] outage_grace`: more than the pingers' period, so every job that still runs pings
/// within it; the monitors' margin (3 s) is shorter, so this is the grace.
const GRACE_SECS: i64 = 12;

fn config(hook: &str) -> String {
    let mut config = format!(
        r#"
[server]
outage_grace = "{GRACE_SECS}s"

[[channels]]
name = "hook"
type = "webhook"
url = "{hook}/hook"

[[rules]]
name = "jobs"
on = ["monitor.failed", "monitor.recovered"]
channels = ["hook"]
"#
    );
    for job in 0..JOBS {
        config.push_str(&format!(
            r#"
[[monitors]]
project = 1
slug = "job-{job}"
schedule = {{ type = "interval", value = 5, unit = "second" }}
checkin_margin = "3s"
failure_issue_threshold = 1
"#
        ));
    }
    config
}

/// Ten jobs pinging every [`PERIOD`] from their own thread, as cron would run them; a ping the
/// collector does not answer is lost (no retry). `stopped[i]` stops job `i` for good.
struct Jobs {
    run: Arc<AtomicBool>,
    stopped: Arc<Vec<AtomicBool>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Jobs {
    fn start(base: &str, key: &str) -> Jobs {
        let run = Arc::new(AtomicBool::new(true));
        let stopped: Arc<Vec<AtomicBool>> =
            Arc::new((0..JOBS).map(|_| AtomicBool::new(false)).collect());
        let client = Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let threads = (0..JOBS)
            .map(|job| {
                let (run, stopped, client) = (run.clone(), stopped.clone(), client.clone());
                let url = format!("{base}/ping/{key}/job-{job}");
                thread::spawn(move || {
                    let mut next = Instant::now();
                    while run.load(Ordering::Relaxed) && !stopped[job].load(Ordering::Relaxed) {
                        let _ = client.get(&url).send();
                        next += PERIOD;
                        while Instant::now() < next && run.load(Ordering::Relaxed) {
                            thread::sleep(Duration::from_millis(50));
                        }
                    }
                })
            })
            .collect();
        Jobs {
            run,
            stopped,
            threads,
        }
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        self.run.store(false, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The `monitor.failed` alerts the webhook received, each checked for the §3.5 shape.
fn failed(hook: &Fake) -> Vec<(Seen, Value)> {
    hook.seen()
        .into_iter()
        .filter(|seen| seen.json["kind"] == "monitor.failed")
        .map(|seen| {
            let alert = seen.json.clone();
            assert_eq!(seen.path, "/hook");
            assert_eq!(alert["source"], "monitor", "{alert}");
            assert_eq!(alert["severity"], "critical", "{alert}");
            for field in ["title", "message", "url"] {
                assert!(alert[field].is_string(), "{field} in {alert}");
            }
            assert!(alert["monitor"]["slug"].is_string(), "{alert}");
            (seen, alert)
        })
        .collect()
}

/// Starts the collector and the jobs, lets them settle, stops the collector for [`OUTAGE`]
/// (`kill`: SIGKILL, else SIGTERM) with the jobs still pinging, and starts it again on the
/// same port. `stop_job` stops that job for good when the collector stops.
fn outage(hook: &Fake, kill: bool, stop_job: Option<usize>) -> (Collector, Jobs) {
    let mut collector = Collector::start(Some(&config(&hook.url)));
    let jobs = Jobs::start(&collector.base, &collector.key);
    // Every job pinged and is armed, and has been on schedule for a while.
    poll(Duration::from_secs(20), "every job checked in", || {
        (0..JOBS)
            .all(|job| collector.monitor(&format!("job-{job}"))[0]["status"] == "ok")
            .then_some(())
    });
    thread::sleep(Duration::from_secs(6));
    if kill {
        collector.kill();
    } else {
        let status = collector.terminate();
        assert!(status.success(), "SIGTERM exit: {status}");
    }
    if let Some(job) = stop_job {
        jobs.stopped[job].store(true, Ordering::Relaxed);
    }
    thread::sleep(OUTAGE);
    collector.restart_on_same_port();
    (collector, jobs)
}

fn no_false_alarms_after(kill: bool) {
    let runtime = runtime();
    let hook = runtime.block_on(Fake::start(|_, _| status(200, "ok")));
    let (collector, jobs) = outage(&hook, kill, None);
    // Past the end of the grace and the margin of the slots after it.
    thread::sleep(Duration::from_secs(GRACE_SECS as u64 + 6));
    drop(jobs);

    let alerts = failed(&hook);
    assert!(
        alerts.is_empty(),
        "no job failed, yet: {:?}\n{}",
        alerts
            .iter()
            .map(|(_, a)| a["message"].clone())
            .collect::<Vec<_>>(),
        collector.stderr()
    );
    for job in 0..JOBS {
        let slug = format!("job-{job}");
        let monitor = &collector.monitor(&slug)[0];
        assert_eq!(monitor["status"], "ok", "{monitor}");
        let checkins = collector.checkins(&slug);
        let statuses: Vec<&str> = checkins
            .iter()
            .map(|c| c["status"].as_str().unwrap())
            .collect();
        assert!(!statuses.contains(&"missed"), "{slug}: {statuses:?}");
        let unknown: Vec<&Value> = checkins
            .iter()
            .filter(|c| c["status"] == "unknown")
            .collect();
        // 20 s down with a 5 s interval: at least two slots' deadlines fell in the window.
        assert!(unknown.len() >= 2, "{slug}: {statuses:?}");
        for slot in unknown {
            assert!(
                slot["log"]
                    .as_str()
                    .unwrap()
                    .contains("the collector was down from"),
                "{slot}"
            );
        }
    }
    // The collector said what it saw.
    assert!(
        collector.stderr().contains("the collector was not running"),
        "{}",
        collector.stderr()
    );
}

#[test]
fn a_sigterm_restart_raises_no_alarm_and_records_the_unobserved_slots_as_unknown() {
    no_false_alarms_after(false);
}

#[test]
fn a_sigkill_restart_raises_no_alarm_and_records_the_unobserved_slots_as_unknown() {
    no_false_alarms_after(true);
}

#[test]
fn a_job_that_stopped_during_the_outage_is_reported_once_at_the_end_of_the_grace() {
    let runtime = runtime();
    let hook = runtime.block_on(Fake::start(|_, _| status(200, "ok")));
    let (collector, jobs) = outage(&hook, false, Some(7));
    let (seen, alert) = poll(
        Duration::from_secs(GRACE_SECS as u64 + 10),
        "the monitor.failed of the stopped job",
        || failed(&hook).into_iter().next(),
    );
    assert_eq!(alert["monitor"]["slug"], "job-7", "{alert}");
    // Decided at the end of the grace after the restart, not before, and at once then.
    let outage = &alert["monitor"]["collector_outage"];
    assert_eq!(outage["kind"], "down", "{alert}");
    let (from, to) = (time(&outage["from"]), time(&outage["to"]));
    let down = (to - from).num_milliseconds();
    assert!(
        (19_000..=25_000).contains(&down),
        "down for {down} ms: {alert}"
    );
    let after_restart = arrived(&seen) - to;
    assert!(
        after_restart >= TimeDelta::seconds(GRACE_SECS)
            && after_restart <= TimeDelta::seconds(GRACE_SECS + 1),
        "the alert came {after_restart} after the restart at {to}"
    );
    let message = alert["message"].as_str().unwrap();
    assert!(message.contains("the collector was down from"), "{message}");

    // Exactly one, and nobody else's.
    thread::sleep(Duration::from_secs(6));
    drop(jobs);
    let alerts = failed(&hook);
    let slugs: Vec<&Value> = alerts.iter().map(|(_, a)| &a["monitor"]["slug"]).collect();
    assert_eq!(slugs, ["job-7"], "{}", collector.stderr());
    // One `missed` for the outage (it replaced the `unknown` of its slot and names the
    // outage); the slots after it are missed as usual while the job stays dead.
    let checkins = collector.checkins("job-7");
    let after_outage: Vec<&Value> = checkins
        .iter()
        .filter(|c| c["status"] == "missed")
        .filter(|c| {
            c["log"]
                .as_str()
                .is_some_and(|log| log.contains("was down from"))
        })
        .collect();
    assert_eq!(after_outage.len(), 1, "{checkins:?}");
    assert!(
        time(&after_outage[0]["date_added"]) < to,
        "the missed slot is one the outage hid: {checkins:?}"
    );
}

/// The liveness mark reaches the disk on an idle collector too (no check-in, no sweep): after
/// a SIGKILL the next start measures the gap from the last second before the kill, not from
/// the last write that happened to be flushed.
#[test]
fn an_idle_collector_knows_how_long_it_was_down_after_a_sigkill() {
    let mut collector = Collector::start(None);
    thread::sleep(Duration::from_secs(4));
    collector.kill();
    thread::sleep(Duration::from_secs(5));
    collector.restart();
    // Logged before the startup lines, but stderr and stdout are read by two threads of the
    // harness: the line may reach the buffer a moment after `restart` saw the startup lines.
    let line = poll(Duration::from_secs(5), "the outage logged at start", || {
        without_colours(&collector.stderr())
            .lines()
            .find(|line| line.contains("the collector was not running"))
            .map(str::to_owned)
    });
    let seconds: i64 = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("seconds="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seconds= in {line}"));
    assert!(
        (5..=7).contains(&seconds),
        "down for 5 s, logged {seconds} s: {line}"
    );
}

/// `text` without the terminal colour codes the log may carry.
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}
