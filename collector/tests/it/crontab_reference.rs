//! Crontabs as Sentry computes them, checked against the reference itself: cronsim (the
//! version Sentry pins, in the test virtualenv) run with Sentry's validator steps by
//! `support/cronsim_reference.py`.
//!
//! The list is `tests/data/crontabs.txt`, which also drives the macro's unit test, so the
//! collector, `#[monitored_job]` and Sentry agree on what is a crontab, and the collector and
//! Sentry on when it fires.

use crate::support::python;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::json;
use watchpost_collector::engine::{ConfigError, Schedule};

/// The list, one `accept` or `refuse` and an expression per line.
const CRONTABS: &str = include_str!("../data/crontabs.txt");

/// Two zones with DST changes on different dates and on either side of UTC, and UTC itself,
/// the default (Sentry evaluates it as a zone too, `ZoneInfo("UTC")`).
const ZONES: [&str; 3] = ["Europe/Berlin", "America/New_York", "UTC"];

/// How many expected times each chain follows.
const COUNT: usize = 6;

/// Start instants: around both DST changes of 2026 in both zones (before, inside the gap or
/// overlap, in each pass of the overlap), and ordinary days, a leap day and a year end.
const STARTS: [&str; 13] = [
    "2026-03-28T22:30:00Z", // Berlin 23:30, the night of the spring change
    "2026-03-29T00:59:30Z", // Berlin 01:59:30, a moment before 02:00 becomes 03:00
    "2026-10-24T23:00:00Z", // Berlin 01:00 CEST, the night of the autumn change
    "2026-10-25T00:30:00Z", // Berlin 02:30 CEST, first pass of the repeated hour
    "2026-10-25T01:10:00Z", // Berlin 02:10 CET, second pass
    "2026-03-08T05:00:00Z", // New York 00:00 EST, the night of the spring change
    "2026-03-08T06:59:00Z", // New York 01:59 EST
    "2026-11-01T04:30:00Z", // New York 00:30 EDT, the night of the autumn change
    "2026-11-01T05:45:00Z", // New York 01:45 EDT, first pass of the repeated hour
    "2026-11-01T06:10:00Z", // New York 01:10 EST, second pass
    "2026-12-07T10:15:30Z",
    "2028-02-27T12:00:00Z",
    "2025-12-31T23:59:59Z",
];

/// One line of the list.
struct Case {
    accept: bool,
    expr: String,
}

fn cases() -> Vec<Case> {
    CRONTABS
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (verdict, expr) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("`{line}`: a verdict and an expression"));
            let accept = match verdict {
                "accept" => true,
                "refuse" => false,
                other => panic!("`{line}`: verdict `{other}` is neither accept nor refuse"),
            };
            Case {
                accept,
                expr: expr.trim().to_owned(),
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct Reference {
    verdicts: BTreeMap<String, bool>,
    chains: Vec<Chain>,
}

#[derive(Deserialize)]
struct Chain {
    crontab: String,
    zone: String,
    start: i64,
    times: Vec<i64>,
    first_not_after: bool,
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 start")
        .with_timezone(&Utc)
}

/// Runs the reference on the whole list once.
fn reference(cases: &[Case]) -> Reference {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/cronsim_reference.py"
    );
    let request = json!({
        "crontabs": cases.iter().map(|c| c.expr.as_str()).collect::<Vec<_>>(),
        "starts": STARTS.iter().map(|s| at(s).timestamp()).collect::<Vec<_>>(),
        "zones": ZONES,
        "count": COUNT,
    });
    let mut child = Command::new(python::python())
        .arg(script)
        // The pinned `tzdata` package's zones, not whatever the system has.
        .env("PYTHONTZPATH", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the reference");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("send the request");
    let output = child.wait_with_output().expect("reference output");
    assert!(
        output.status.success(),
        "the reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the reference's JSON")
}

/// One test, so the reference (a few seconds of Python) runs once.
#[test]
fn crontabs_match_sentry_and_cronsim() {
    let cases = cases();
    let reference = reference(&cases);

    // The list's verdicts are Sentry's, and the collector's validation agrees with them.
    for case in &cases {
        assert_eq!(
            reference.verdicts[&case.expr], case.accept,
            "Sentry's verdict on `{}` is not the list's",
            case.expr
        );
        match Schedule::crontab(&case.expr) {
            Ok(_) => assert!(case.accept, "the collector accepts `{}`", case.expr),
            Err(error) => {
                assert!(
                    !case.accept,
                    "the collector refuses `{}`: {error}",
                    case.expr
                );
                assert_sentence(&case.expr, &error);
            }
        }
    }

    // Every accepted crontab's next expected times, chained, as Sentry computes them.
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for chain in &reference.chains {
        let schedule = Schedule::crontab(&chain.crontab).expect("accepted above");
        let tz: Tz = chain.zone.parse().expect("a zone");
        let mut previous = Utc.timestamp_opt(chain.start, 0).single().expect("a start");
        for &want in &chain.times {
            let got = schedule.next_after(tz, previous);
            compared += 1;
            if got.map(|t| t.timestamp()) != Some(want) {
                mismatches.push(format!(
                    "`{}` in {} after {previous}: cronsim {}, Watchpost {got:?}",
                    chain.crontab,
                    chain.zone,
                    Utc.timestamp_opt(want, 0).single().expect("a time"),
                ));
                break;
            }
            previous = Utc.timestamp_opt(want, 0).single().expect("a time");
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} chains differ from cronsim:\n{}",
        mismatches.len(),
        reference.chains.len(),
        mismatches.join("\n")
    );
    assert!(compared > 5_000, "only {compared} expected times compared");

    // The documented difference is exercised: from a check-in in the second pass of a
    // repeated hour, cronsim's first answer for a fixed-time job can be the time already
    // passed in the first pass; Watchpost (and the chains above) take the next one.
    assert!(
        reference.chains.iter().any(|c| c.first_not_after),
        "no chain starts in the second pass of a repeated hour at a fixed-time job's time"
    );
}

/// A refusal says what is wrong with which expression, as a sentence a person can act on.
fn assert_sentence(expr: &str, error: &ConfigError) {
    let text = error.to_string();
    assert!(
        text.starts_with("schedule `"),
        "`{expr}`: the message names the schedule: {text}"
    );
    assert!(
        !text.contains("Invalid pattern") && !text.contains("Bad "),
        "`{expr}`: no parser jargon: {text}"
    );
}
