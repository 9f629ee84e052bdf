//! Real Sentry clients for interop tests: the Python virtualenv under `target/venv` with the
//! `sentry-sdk` and `sentry-cli` versions our fixtures were captured from.
//!
//! `scripts/setup-test-env.sh` makes it (idempotent, under a flock, a stamp makes repeats a
//! no-op); this runs the script once per test process, so a fresh clone needs no manual step.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The virtualenv, created on first use.
pub fn venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the collector crate sits in the workspace root");
        let script = root.join("scripts/setup-test-env.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
        assert!(
            output.status.success(),
            "{} failed ({}); see its output above",
            script.display(),
            output.status
        );
        let path = String::from_utf8(output.stdout).expect("the venv path is UTF-8");
        PathBuf::from(path.trim())
    })
    .clone()
}

/// The venv's Python interpreter.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// The venv's `sentry-cli`.
pub fn sentry_cli() -> PathBuf {
    venv().join("bin/sentry-cli")
}

/// Runs a Python script with `SENTRY_DSN` set and returns its output; panics with the script's
/// stderr if it fails. The script is written to a fresh temporary directory so tracebacks
/// point at a real file.
pub fn run_python(script: &str, dsn: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("job.py");
    std::fs::write(&path, script).expect("write the script");
    let output = Command::new(python())
        .arg(&path)
        .env("SENTRY_DSN", dsn)
        .env_remove("WATCHPOST_DSN")
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python failed ({}):\n--- script\n{script}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
