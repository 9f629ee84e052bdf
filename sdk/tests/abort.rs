//! A program built with `panic = "abort"` panics inside a `#[monitored_job]`; its panic hook's
//! report (the fatal event and the job's `error` check-in) must reach the server before the
//! process dies. The program is the standalone crate `tests/abort-app`, built here into its own
//! target dir (the outer cargo holds the lock on ours); the first build takes a minute or two.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;

use support::Recorder;
use watchpost::protocol::{CheckInStatus, Level};

#[test]
fn a_panic_under_panic_abort_still_reaches_the_server() {
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = sdk.parent().unwrap();
    let app = sdk.join("tests/abort-app");
    // Same dependency versions as the workspace, and no registry round trip to resolve them.
    std::fs::copy(workspace.join("Cargo.lock"), app.join("Cargo.lock")).unwrap();
    let target_dir = workspace.join("target/abort-app");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "--quiet", "--manifest-path"])
        .arg(app.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("cargo runs");
    assert!(build.success(), "building tests/abort-app failed");

    let server = Recorder::start();
    let output = Command::new(target_dir.join("debug/watchpost-abort-app"))
        .env("WATCHPOST_DSN", server.dsn())
        .env("WATCHPOST_DEBUG", "1")
        .env_remove("SENTRY_DSN")
        .env_remove("ABORT_APP_CONFIG")
        .output()
        .expect("the app runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        Some(6),
        "died by SIGABRT; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("the job config is missing"),
        "the default hook still ran: {stderr}"
    );

    // Everything arrived before the abort: no waiting here.
    let requests = server.requests();
    let check_ins = support::check_ins(&requests);
    let statuses: Vec<_> = check_ins
        .iter()
        .map(|c| (c.monitor_slug.as_str(), c.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("abort-job", CheckInStatus::InProgress),
            ("abort-job", CheckInStatus::Error)
        ],
        "stderr:\n{stderr}"
    );
    assert_eq!(check_ins[0].check_in_id, check_ins[1].check_in_id);
    assert!(check_ins[1].duration.unwrap() >= 0.02);

    let events = support::events(&requests);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.level, Some(Level::Fatal));
    let exception = &event.exceptions()[0];
    assert_eq!(exception.ty.as_deref(), Some("panic"));
    assert_eq!(
        exception.value.as_deref(),
        Some("the job config is missing")
    );
    assert_eq!(event.other["threads"]["values"][0]["name"], "main");
    let frames = &exception.stacktrace.as_ref().unwrap().frames;
    assert!(
        frames.iter().any(|f| f.in_app == Some(true)
            && f.function
                .as_deref()
                .is_some_and(|n| n.starts_with("watchpost_abort_app::abort_job"))),
        "{frames:#?}"
    );
}
