//! Failures at start, through the real binary on a real store: a store file with a zeroed
//! region ends `serve` within seconds with exit code 1 and a message naming the file and what
//! to do, never a hang or a crash; a second `serve` on a data dir in use is told that another
//! watchpost holds it, and only then.

use crate::support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Collector, checkin, envelope};

/// How long a failing start may take.
const FAIL_WITHIN: Duration = Duration::from_secs(10);
/// The size of the region zeroed.
const REGION: u64 = 256 * 1024;

/// How one `watchpost serve` on a data dir went.
enum Start {
    /// It printed its listening line (and was stopped).
    Listening,
    /// It exited by itself.
    Exited {
        status: ExitStatus,
        stderr: String,
        took: Duration,
    },
}

/// Runs `watchpost serve --data-dir data` until it either listens or exits; panics if it does
/// neither within [`FAIL_WITHIN`] (a hang).
fn start(data: &Path) -> Start {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("WATCHPOST_ADMIN_TOKEN")
        .env("RUST_LOG", "info,sled=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watchpost");
    let stdout = child.stdout.take().expect("stdout");
    let (listening, heard) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("watchpost: listening on") {
                let _ = listening.send(());
            }
        }
    });
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    loop {
        if heard.try_recv().is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            return Start::Listening;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            return Start::Exited {
                status,
                stderr: stderr.join().expect("stderr reader"),
                took: started.elapsed(),
            };
        }
        if started.elapsed() > FAIL_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "watchpost neither listened nor exited within {FAIL_WITHIN:?}; stderr:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Copies a directory tree (the store is a directory with a `blobs/` folder).
fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    // Private like the original: `serve` refuses a data dir other users can reach.
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Overwrites `len` bytes of `file` at `at` with zeros.
fn zero(file: &Path, at: u64, len: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&vec![0; usize::try_from(len).unwrap()])
        .unwrap();
    f.sync_all().unwrap();
}

#[test]
fn a_store_file_with_a_zeroed_region_ends_serve_with_exit_1_and_the_remedy() {
    // A store written by the real binary: check-ins of 40 monitors and error events of 100
    // issues, ~3 KiB each, so the log holds a few MiB of records that are still live.
    let mut collector = Collector::start(None);
    let padding = "x".repeat(3000);
    for n in 0..400 {
        let event = json!({
            "event_id": format!("{n:032x}"),
            "timestamp": 1_800_000_000 + n,
            "level": "error",
            "exception": {"values": [{"type": format!("Damage{}", n % 100), "value": padding}]},
        });
        let body = envelope(&[
            ("event", &event.to_string()),
            (
                "check_in",
                &checkin(
                    &format!("job-{}", n % 40),
                    "ok",
                    None,
                    Some(support::interval(1, "hour")),
                ),
            ),
        ]);
        let (status, reply) = collector.post_envelope(body);
        assert_eq!(status, 200, "envelope {n}: {reply}");
    }
    assert!(collector.terminate().success());
    let written = collector.data_dir().join("data");
    let size = std::fs::metadata(written.join("db").join("db"))
        .unwrap()
        .len();
    assert!(size >= 4 * REGION, "the store is only {size} bytes");

    // sled stops reading its log at the first damaged record, as after a torn write, so a
    // zeroed region that held only records already superseded costs nothing and the
    // collector starts. Regions are tried from the middle of the file outwards, each on a
    // fresh copy, until one held records the store still needs: that one must end the start
    // with exit code 1 and a message, within seconds, rather than a crash or a hang.
    let regions = size / REGION;
    let middle = regions / 2;
    let order = (0..regions).map(|i| {
        let step = i.div_ceil(2);
        if i % 2 == 1 {
            middle + step
        } else {
            middle.saturating_sub(step)
        }
    });
    let scratch = tempfile::tempdir().unwrap();
    let mut started = Vec::new();
    for (attempt, region) in order.filter(|r| *r < regions).enumerate() {
        let data = scratch.path().join(format!("copy-{attempt}"));
        copy_dir(&written, &data);
        let file = data.join("db").join("db");
        zero(&file, region * REGION, REGION);
        match start(&data) {
            Start::Listening => started.push(region * REGION),
            Start::Exited {
                status,
                stderr,
                took,
            } => {
                eprintln!(
                    "zeroed {REGION} bytes at {}: exit {status} after {took:?} (started on {} \
                     other regions first: {started:?})",
                    region * REGION,
                    started.len()
                );
                assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
                assert!(took < FAIL_WITHIN, "took {took:?}");
                let message = error_line(&stderr);
                assert!(
                    message.contains(&file.display().to_string()),
                    "the message names the file: {message}"
                );
                assert!(
                    message.contains("damaged")
                        && message.contains("Restore the data dir from a backup")
                        && message.contains("move the data dir aside"),
                    "the message says what to do: {message}"
                );
                assert!(
                    !message.contains("another watchpost"),
                    "no lock hint for damage: {message}"
                );
                return;
            }
        }
    }
    panic!("the collector started on every zeroed region ({started:?}): none held live records");
}

#[test]
fn a_second_serve_on_a_data_dir_in_use_is_told_another_watchpost_holds_it() {
    let collector = Collector::start(None);
    let Start::Exited {
        status,
        stderr,
        took,
    } = start(&collector.data_dir().join("data"))
    else {
        panic!("a second collector started on a data dir in use");
    };
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(took < FAIL_WITHIN, "took {took:?}");
    let message = error_line(&stderr);
    assert!(
        message.contains("is another watchpost using this data dir?")
            && message.contains("its own --data-dir"),
        "{message}"
    );
    assert!(!message.contains("damaged"), "{message}");
    // The first collector was not disturbed.
    assert!(collector.api_get("/api/v1/monitors").is_array());
}

/// The line `serve` ends with when it cannot start: `watchpost: <what and what to do>`.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|line| line.starts_with("watchpost: "))
        .unwrap_or_else(|| panic!("no `watchpost:` line in\n{stderr}"))
}
