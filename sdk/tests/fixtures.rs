//! Every request captured from `sentry-sdk` (Python) and `sentry-cli` parses with our protocol
//! types, and writing it back reproduces the same envelope.

use std::path::PathBuf;

use watchpost_protocol::{CheckIn, CheckInStatus, Envelope, Event, MonitorSchedule};

/// One captured request: request line, headers, a blank line, then the (gunzipped) body.
struct Capture {
    name: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn captures() -> Vec<Capture> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let raw = std::fs::read(&path).unwrap();
            let split = raw
                .windows(2)
                .position(|w| w == b"\n\n")
                .expect("blank line");
            let head = String::from_utf8(raw[..split].to_vec()).unwrap();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
                .collect();
            out.push(Capture {
                name: path.strip_prefix(&root).unwrap().display().to_string(),
                headers,
                body: raw[split + 2..].to_vec(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(out.len(), 11, "all captured requests are found");
    out
}

#[test]
fn every_fixture_round_trips() {
    for capture in captures() {
        let envelope =
            Envelope::parse(&capture.body).unwrap_or_else(|e| panic!("{}: {e}", capture.name));
        assert_eq!(
            envelope.to_vec(),
            capture.body,
            "{}: bytes round-trip",
            capture.name
        );
        assert_eq!(envelope.items.len(), 1, "{}", capture.name);
        let item = &envelope.items[0];
        match item.ty() {
            "check_in" => {
                let check_in: CheckIn = item.json().unwrap();
                let again: CheckIn =
                    serde_json::from_slice(&serde_json::to_vec(&check_in).unwrap()).unwrap();
                assert_eq!(again, check_in, "{}", capture.name);
                assert!(check_in.check_in_id.is_some(), "{}", capture.name);
            }
            "event" => {
                let event: Event = item.json().unwrap();
                let again: Event =
                    serde_json::from_slice(&serde_json::to_vec(&event).unwrap()).unwrap();
                assert_eq!(again, event, "{}", capture.name);
            }
            other => panic!("{}: unexpected item type {other}", capture.name),
        }
        let auth = capture
            .headers
            .iter()
            .find(|(k, _)| k == "x-sentry-auth")
            .unwrap();
        let auth = watchpost_protocol::Auth::parse(&auth.1).unwrap();
        assert_eq!(auth.key, "0123456789abcdef0123456789abcdef");
    }
}

#[test]
fn fixture_contents_read_as_expected() {
    let captures = captures();
    let item = |name: &str| {
        let c = captures.iter().find(|c| c.name.ends_with(name)).unwrap();
        Envelope::parse(&c.body).unwrap().items.remove(0)
    };
    let cli_start: CheckIn = item("sentry-cli-3.8.2/01.request.txt").json().unwrap();
    assert_eq!(cli_start.monitor_slug, "db-vacuum");
    assert_eq!(cli_start.status, CheckInStatus::InProgress);
    let config = cli_start.monitor_config.unwrap();
    assert_eq!(
        config.schedule,
        MonitorSchedule::Crontab {
            value: "*/5 * * * *".into()
        }
    );
    assert_eq!(config.failure_issue_threshold, Some(3));

    let cli_end: CheckIn = item("sentry-cli-3.8.2/02.request.txt").json().unwrap();
    assert_eq!(cli_end.check_in_id, cli_start.check_in_id);
    assert_eq!(cli_end.status, CheckInStatus::Error);
    assert!((cli_end.duration.unwrap() - 0.022128321).abs() < 1e-9);

    let py_heartbeat: CheckIn = item("sentry-python-2.75.0/05.request.txt").json().unwrap();
    assert_eq!(py_heartbeat.status, CheckInStatus::Ok);
    assert_eq!(py_heartbeat.duration, None);

    let exception: Event = item("sentry-python-2.75.0/06.request.txt").json().unwrap();
    let ex = &exception.exceptions()[0];
    assert_eq!(ex.ty.as_deref(), Some("KeyError"));
    let frames = &ex.stacktrace.as_ref().unwrap().frames;
    assert_eq!(frames.last().unwrap().function.as_deref(), Some("inner"));
    assert_eq!(frames.last().unwrap().in_app, Some(true));

    let message: Event = item("sentry-python-2.75.0/07.request.txt").json().unwrap();
    assert_eq!(message.message_text(), Some("disk usage above 90%"));
    assert_eq!(message.level, Some(watchpost::protocol::Level::Warning));
}
