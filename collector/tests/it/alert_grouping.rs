//! Errors become issues: grouping of real event JSON (as the SDK's panic hook and Sentry SDKs
//! send it), the issue lifecycle, and the issue alerts. Pure engine functions, explicit times.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};
use watchpost_collector::engine::issues::{
    self, Issue, IssueEffect, IssueStatus, SpikeRule, event_issue_id, fingerprint, process_event,
    set_status,
};
use watchpost_protocol::{Event, Level};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn event(json: Value) -> Event {
    let mut json = json;
    let object = json.as_object_mut().unwrap();
    object
        .entry("event_id")
        .or_insert_with(|| json!(uuid::Uuid::new_v4().simple().to_string()));
    object.entry("timestamp").or_insert(json!(1_777_636_800.5));
    object.entry("platform").or_insert(json!("native"));
    serde_json::from_value(json).expect("a valid event")
}

/// A frame as the SDK's panic hook makes it from a backtrace line (module derived from the
/// symbol after its hash is stripped, like `sdk/src/panic.rs`).
fn frame(function: &str, file: &str, line: u64, in_app: bool) -> Value {
    let symbol = match function.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 => head,
        _ => function,
    };
    let module = symbol
        .rsplit_once("::")
        .map(|(m, _)| m.trim_end_matches("::{{closure}}"));
    json!({"function": function, "module": module, "filename": file,
           "abs_path": format!("/build/{file}"), "lineno": line, "colno": 9, "in_app": in_app})
}

/// A Rust panic as the SDK's hook reports it.
fn panic_event(thread: &str, release: &str, message: &str, frames: Vec<Value>) -> Event {
    event(json!({
        "level": "fatal",
        "release": release,
        "environment": "production",
        "exception": {"values": [{
            "type": "panic",
            "value": message,
            "mechanism": {"type": "panic", "handled": false,
                          "data": {"location": "src/job.rs:42:10"}},
            "stacktrace": {"frames": Value::Array(frames)}
        }]},
        "threads": {"values": [{"name": thread, "crashed": true, "current": true}]}
    }))
}

/// An exception without stack frames, as a Python SDK sends a handled error.
fn error_event(ty: &str, value: &str) -> Event {
    event(json!({"level": "error", "platform": "python",
                 "exception": {"values": [{"type": ty, "value": value}]}}))
}

fn id(event: &Event) -> String {
    event_issue_id(1, event)
}

#[test]
fn the_same_panic_from_two_threads_is_one_issue() {
    let main_thread = panic_event(
        "main",
        "job@1.0.0",
        "called `Option::unwrap()` on a `None` value",
        vec![
            frame("std::rt::lang_start_internal", "std/src/rt.rs", 1, false),
            frame("myjob::main::h0011223344556677", "src/main.rs", 10, true),
            frame("myjob::run", "src/job.rs", 30, true),
            frame("myjob::work", "src/job.rs", 42, true),
            frame(
                "core::option::unwrap_failed",
                "core/src/option.rs",
                2,
                false,
            ),
        ],
    );
    let worker_thread = panic_event(
        "worker-3",
        "job@1.0.0",
        "called `Option::unwrap()` on a `None` value",
        vec![
            frame(
                "std::sys::thread::unix::Thread::new::thread_start",
                "std/src/sys.rs",
                1,
                false,
            ),
            frame(
                "std::thread::Builder::spawn_unchecked_::{{closure}}",
                "std/src/thread.rs",
                5,
                false,
            ),
            frame(
                "myjob::main::{{closure}}::h8899aabbccddeeff",
                "src/main.rs",
                14,
                true,
            ),
            frame("myjob::run", "src/job.rs", 30, true),
            frame("myjob::work", "src/job.rs", 42, true),
            frame(
                "core::option::unwrap_failed",
                "core/src/option.rs",
                2,
                false,
            ),
        ],
    );
    assert_eq!(id(&main_thread), id(&worker_thread));
    assert_eq!(
        fingerprint(&main_thread),
        ["stack", "panic", "myjob::main", "myjob::run", "myjob::work"]
    );
}

#[test]
fn the_same_panic_in_two_releases_is_one_issue() {
    let frames = |line_shift: u64, hash: &str| {
        vec![
            frame(
                &format!("myjob::main::h{hash}"),
                "src/main.rs",
                10 + line_shift,
                true,
            ),
            frame("myjob::work", "src/job.rs", 42 + line_shift, true),
        ]
    };
    let v1 = panic_event("main", "job@1.0.0", "boom", frames(0, "0011223344556677"));
    let v2 = panic_event("main", "job@1.1.0", "boom", frames(17, "ffeeddccbbaa9988"));
    assert_eq!(
        id(&v1),
        id(&v2),
        "line numbers, symbol hashes, releases do not split"
    );
}

#[test]
fn different_errors_are_different_issues() {
    let at = |function: &str| {
        panic_event(
            "main",
            "job@1",
            "boom",
            vec![frame(function, "src/job.rs", 1, true)],
        )
    };
    let cases = [
        (
            at("myjob::work"),
            at("myjob::cleanup"),
            "panics in different functions",
        ),
        (
            error_event("KeyError", "'missing'"),
            error_event("ValueError", "'missing'"),
            "exception types",
        ),
        (
            error_event("KeyError", "'missing'"),
            error_event("KeyError", "'other'"),
            "exception values without frames",
        ),
        (
            event(json!({"message": "disk full"})),
            event(json!({"message": "disk on fire"})),
            "messages",
        ),
    ];
    for (a, b, what) in &cases {
        assert_ne!(id(a), id(b), "{what}");
    }
    // Spelling a default fingerprint out by hand is the way to merge into it.
    assert_eq!(
        id(&event(json!({"message": "KeyError"}))),
        id(&event(json!({"fingerprint": ["message", "KeyError"]})))
    );
    // Other projects have their own issues.
    assert_ne!(
        event_issue_id(1, &cases[0].0),
        event_issue_id(2, &cases[0].0)
    );
}

#[test]
fn messages_group_with_their_numbers_and_ids_normalized() {
    let a = event(
        json!({"logentry": {"formatted": "user 42 not found in 550e8400-e29b-41d4-a716-446655440000"}}),
    );
    let b = event(json!({"message": "user 7 not found in 6ba7b810-9dad-11d1-80b4-00c04fd430c8"}));
    assert_eq!(id(&a), id(&b));
    assert_eq!(
        fingerprint(&a),
        ["message", "user <int> not found in <uuid>"]
    );
    let (issue, _) = process_event(None, &a, 1, t(0), &[]);
    assert_eq!(
        issue.title, "user 42 not found in 550e8400-e29b-41d4-a716-446655440000",
        "the title keeps the text as sent"
    );
}

#[test]
fn a_custom_fingerprint_overrides_and_default_combines() {
    let error = |ty: &str, fp: Option<Value>| {
        let mut json = json!({"exception": {"values": [{"type": ty, "value": "x"}]}});
        if let Some(fp) = fp {
            json["fingerprint"] = fp;
        }
        event(json)
    };
    // Override: two different errors, one issue.
    let a = error("TimeoutError", Some(json!(["payments-provider-down"])));
    let b = error("ConnectionError", Some(json!(["payments-provider-down"])));
    assert_eq!(id(&a), id(&b));
    assert_eq!(fingerprint(&a), ["payments-provider-down"]);
    // `{{ default }}` alone is the default grouping.
    assert_eq!(
        id(&error("E", Some(json!(["{{ default }}"])))),
        id(&error("E", None))
    );
    // `{{ default }}` plus a value splits the default issue by that value.
    let tenant_a = error("E", Some(json!(["{{ default }}", "tenant-a"])));
    let tenant_b = error("E", Some(json!(["{{default}}", "tenant-b"])));
    assert_ne!(id(&tenant_a), id(&tenant_b));
    assert_ne!(id(&tenant_a), id(&error("E", None)));
    assert_eq!(fingerprint(&tenant_a), ["exception", "E", "x", "tenant-a"]);
    // Other variables.
    let mut with_vars = error(
        "E",
        Some(json!(["{{ transaction }}", "{{ type }}", "{{ level }}"])),
    );
    with_vars.transaction = Some("GET /pay".to_owned());
    assert_eq!(fingerprint(&with_vars), ["GET /pay", "E", "error"]);
}

#[test]
fn a_new_issue_is_announced_with_what_and_where() {
    let event = panic_event(
        "main",
        "job@1.0.0",
        "index out of bounds: the len is 3 but the index is 5",
        vec![
            frame("myjob::main", "src/main.rs", 10, true),
            frame("myjob::work::{{closure}}", "src/job.rs", 42, true),
            frame(
                "core::panicking::panic_bounds_check",
                "core/src/panicking.rs",
                1,
                false,
            ),
        ],
    );
    let (issue, effects) = process_event(None, &event, 1, t(0), &[]);
    assert_eq!(effects, [IssueEffect::FirstSeen]);
    assert_eq!(issue.id, id(&event));
    assert_eq!(issue.id.len(), 32);
    assert_eq!(
        issue.title,
        "panic: index out of bounds: the len is 3 but the index is 5"
    );
    assert_eq!(issue.culprit.as_deref(), Some("myjob::work"));
    assert_eq!(issue.level, Level::Fatal);
    assert_eq!(issue.status, IssueStatus::Unresolved);
    assert_eq!(
        (issue.first_seen, issue.last_seen, issue.count),
        (t(0), t(0), 1)
    );
    assert_eq!(issue.release.as_deref(), Some("job@1.0.0"));
    let (issue, effects) = process_event(Some(issue), &event, 1, t(5), &[]);
    assert_eq!(effects, [], "a known issue does not alert again");
    assert_eq!(
        (issue.first_seen, issue.last_seen, issue.count),
        (t(0), t(5), 2)
    );
    let (issue, _) = process_event(Some(issue), &event, 1, t(3), &[]);
    assert_eq!(issue.last_seen, t(5), "last_seen never moves back");
    // Python-style culprit.
    let py = event_with_python_frames();
    let (issue, _) = process_event(None, &py, 1, t(0), &[]);
    assert_eq!(issue.culprit.as_deref(), Some("process in job"));
    assert_eq!(issue.title, "KeyError: 'missing'");
}

fn event_with_python_frames() -> Event {
    event(
        json!({"platform": "python", "level": "error", "exception": {"values": [{
        "type": "KeyError", "value": "'missing'", "module": "builtins",
        "stacktrace": {"frames": [
            {"function": "<module>", "module": "__main__", "filename": "job.py", "lineno": 30, "in_app": true},
            {"function": "process", "module": "job", "filename": "job.py", "lineno": 12, "in_app": true}
        ]}}]}}),
    )
}

#[test]
fn a_resolved_issue_that_sees_a_new_event_regresses_and_alerts_once() {
    let event = error_event("KeyError", "'missing'");
    let (mut issue, _) = process_event(None, &event, 1, t(0), &[]);
    set_status(&mut issue, IssueStatus::Resolved, t(60));
    assert_eq!(issue.resolved_at, Some(t(60)));
    let (issue, effects) = process_event(Some(issue), &event, 1, t(120), &[]);
    assert_eq!(
        effects,
        [IssueEffect::Regressed {
            resolved_at: Some(t(60))
        }]
    );
    assert_eq!(issue.status, IssueStatus::Unresolved);
    assert_eq!(issue.resolved_at, None);
    let (issue, effects) = process_event(Some(issue), &event, 1, t(121), &[]);
    assert_eq!(effects, [], "once");
    assert_eq!(issue.count, 3);
}

fn spike_rule(threshold: u32, window_secs: u64) -> SpikeRule {
    SpikeRule {
        name: "error spike".to_owned(),
        threshold,
        window: Duration::from_secs(window_secs),
    }
}

/// Feeds events at these times; returns the times at which a spike fired, and the issue.
fn spikes_at(times: &[i64], rules: &[SpikeRule], issue: Option<Issue>) -> (Vec<i64>, Issue) {
    let event = error_event("TimeoutError", "upstream timed out");
    let mut issue = issue;
    let mut fired = Vec::new();
    for &secs in times {
        let (next, effects) = process_event(issue, &event, 1, t(secs), rules);
        for effect in effects {
            if let IssueEffect::Spike {
                count, threshold, ..
            } = effect
            {
                assert!(count > threshold);
                fired.push(secs);
            }
        }
        issue = Some(next);
    }
    (fired, issue.unwrap())
}

#[test]
fn a_spike_fires_once_per_window_not_per_event() {
    let rules = [spike_rule(3, 60)];
    // 4 events within a minute make a spike; 40 more in that minute do not fire again; the
    // burst still going a full window later fires once more.
    let mut times: Vec<i64> = vec![0, 1, 2, 3];
    times.extend(4..44);
    times.extend([63, 64, 65]);
    let (fired, issue) = spikes_at(&times, &rules, None);
    assert_eq!(fired, [3, 63]);
    assert_eq!(issue.count, times.len() as u64);
    // Events spread out never make a spike: at most 3 in any minute.
    let slow: Vec<i64> = (0..20).map(|i| i * 25).collect();
    assert_eq!(spikes_at(&slow, &rules, None).0, Vec::<i64>::new());
    // The window slides: 3 events at the end of one minute and 1 at the start of the next are
    // 4 within 60 s; events older than the window no longer count.
    assert_eq!(spikes_at(&[50, 55, 59, 61], &rules, None).0, [61]);
    assert_eq!(
        spikes_at(&[0, 30, 59, 61], &rules, None).0,
        Vec::<i64>::new()
    );
}

#[test]
fn spike_state_is_bounded_and_follows_the_rules() {
    let rules = [spike_rule(1_000_000, 3600)];
    let times: Vec<i64> = (0..5000).collect();
    let (_, issue) = spikes_at(&times, &rules, None);
    let state = &issue.spikes["error spike"];
    assert!(state.buckets.len() <= issues::SPIKE_BUCKETS as usize + 1);
    // A rule that is gone loses its state.
    let (_, issue) = spikes_at(&[6000], &[], Some(issue));
    assert!(issue.spikes.is_empty());
}

#[test]
fn an_ignored_issue_is_counted_but_never_alerts() {
    let rules = [spike_rule(2, 60)];
    let (_, mut issue) = spikes_at(&[0], &rules, None);
    set_status(&mut issue, IssueStatus::Ignored, t(1));
    let (fired, issue) = spikes_at(&[2, 3, 4, 5, 6], &rules, Some(issue));
    assert_eq!(fired, Vec::<i64>::new());
    assert_eq!((issue.count, issue.status), (6, IssueStatus::Ignored));
    // Unignoring does not announce it as new.
    let mut issue = issue;
    set_status(&mut issue, IssueStatus::Unresolved, t(7));
    let event = error_event("TimeoutError", "upstream timed out");
    let (_, effects) = process_event(Some(issue), &event, 1, t(200), &rules);
    assert_eq!(effects, []);
    assert_eq!("ignored".parse::<IssueStatus>(), Ok(IssueStatus::Ignored));
    assert!("open".parse::<IssueStatus>().is_err());
}
