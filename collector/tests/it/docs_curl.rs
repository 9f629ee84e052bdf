//! The crontab and curl lines users copy from the README, `docs/` and `examples/` survive a
//! collector restart: every `curl` that retries also retries a refused connection. Without
//! `--retry-connrefused`, `curl --retry 5` gives up at once on a collector that is restarting
//! (exit code 7), and the check-in is lost (`docs/operations.md`, "Backup and restore").

use std::path::{Path, PathBuf};

/// The files users copy command lines from: README.md, and everything under docs/ and
/// examples/ that is text.
fn copied_from(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "md" || ext == "rs" || ext == "sh" || ext == "toml")
            {
                out.push(path);
            }
        }
    }
    let mut files = vec![root.join("README.md")];
    walk(&root.join("docs"), &mut files);
    walk(&root.join("examples"), &mut files);
    files
}

/// The command lines of a file: in Markdown, the lines of fenced code blocks (prose may quote a
/// wrong flag set on purpose); elsewhere every line (code and its comments).
fn command_lines(path: &Path, text: &str) -> Vec<(usize, String)> {
    let markdown = path.extension().is_some_and(|ext| ext == "md");
    let mut fenced = false;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if markdown && line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !markdown || fenced {
            lines.push((number + 1, line.to_owned()));
        }
    }
    lines
}

/// The curl commands of a line, each from `curl ` to the next one (a crontab line may hold
/// several).
fn curls(line: &str) -> impl Iterator<Item = &str> {
    line.split("curl ").skip(1)
}

/// Whether a curl command has `--retry N` (not `--retry-connrefused` or `--retry-max-time`).
fn retries(command: &str) -> bool {
    command.match_indices("--retry").any(|(at, flag)| {
        command[at + flag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c == ' ')
    })
}

#[test]
fn every_retrying_curl_line_in_the_docs_retries_a_refused_connection() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut checked = 0;
    let mut missing = Vec::new();
    for path in copied_from(root) {
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in command_lines(&path, &text) {
            for command in curls(&line).filter(|command| retries(command)) {
                checked += 1;
                if !command.contains("--retry-connrefused") {
                    missing.push(format!("{}:{number}: curl {command}", path.display()));
                }
            }
        }
    }
    // The README shows one, the HTTP API page's crontab line two.
    assert!(
        checked >= 3,
        "found only {checked} curl commands with --retry"
    );
    assert!(
        missing.is_empty(),
        "curl commands that give up at once on a restarting collector (add \
         --retry-connrefused):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_scan_tells_retry_counts_from_other_retry_flags_and_each_curl_apart() {
    assert!(retries("-fsS --retry 5 http://x/"));
    assert!(!retries(
        "--retry-connrefused --retry-max-time 40 http://x/"
    ));
    assert!(!retries("-fsS http://x/"));
    let line = "curl --retry 5 --retry-connrefused http://x/a; job; curl --retry 5 http://x/b";
    let commands: Vec<_> = curls(line).collect();
    assert_eq!(commands.len(), 2);
    assert!(commands[0].contains("--retry-connrefused"));
    assert!(!commands[1].contains("--retry-connrefused"));
}
