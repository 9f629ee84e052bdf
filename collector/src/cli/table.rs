//! Human output of the client commands: aligned columns read from the API's JSON (docs/cli.md), with schedules and times in words. Tolerant: a missing field prints as `-`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::engine::Schedule;
use crate::engine::text;
use crate::words;

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
pub(super) fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < widths.len() {
                out.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push('\n');
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn time(value: &Value, now: DateTime<Utc>) -> String {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or_else(
            || "-".to_owned(),
            |at| text::relative(at.with_timezone(&Utc), now),
        )
}

fn schedule(monitor: &Value) -> String {
    let timezone = monitor["timezone"].as_str().unwrap_or("UTC");
    serde_json::from_value::<Schedule>(monitor["schedule"].clone()).map_or_else(
        |_| text(&monitor["schedule"]),
        |s| words::schedule(&s, timezone),
    )
}

fn status(monitor: &Value) -> String {
    let mut status = text(&monitor["status"]);
    if monitor["muted"] == Value::Bool(true) {
        status.push_str(" (muted)");
    }
    status
}

fn items(list: &Value) -> &[Value] {
    list.as_array().map_or(&[], Vec::as_slice)
}

pub(super) fn monitors(list: &Value) -> String {
    let now = Utc::now();
    let rows: Vec<Vec<String>> = items(list)
        .iter()
        .map(|m| {
            vec![
                text(&m["project"]),
                text(&m["slug"]),
                text(&m["environment"]),
                status(m),
                schedule(m),
                time(&m["last_checkin"], now),
                time(&m["next_checkin"], now),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no monitors".to_owned();
    }
    render(
        &[
            "PROJECT", "SLUG", "ENV", "STATUS", "SCHEDULE", "LAST", "NEXT",
        ],
        &rows,
    )
}

pub(super) fn monitor(envs: &Value, checkins: &Value) -> String {
    let now = Utc::now();
    let mut out = String::new();
    for m in items(envs) {
        out.push_str(&format!(
            "{} ({}) in project {}: {}\n",
            text(&m["slug"]),
            text(&m["environment"]),
            text(&m["project"]),
            status(m)
        ));
        let fields = [
            ("schedule", schedule(m)),
            ("last check-in", time(&m["last_checkin"], now)),
            ("next check-in", time(&m["next_checkin"], now)),
            ("margin", format!("{} s", text(&m["checkin_margin_s"]))),
            ("max runtime", format!("{} s", text(&m["max_runtime_s"]))),
            (
                "thresholds",
                format!(
                    "incident after {} failure(s), recovery after {} ok",
                    text(&m["failure_issue_threshold"]),
                    text(&m["recovery_threshold"])
                ),
            ),
            (
                "open incident",
                match &m["open_incident"] {
                    Value::Null => "none".to_owned(),
                    i => format!(
                        "{} since {}",
                        text(&i["reason"]),
                        time(&i["opened_at"], now)
                    ),
                },
            ),
        ];
        for (name, value) in fields {
            out.push_str(&format!("  {name:<14} {value}\n"));
        }
        out.push('\n');
    }
    let rows: Vec<Vec<String>> = items(checkins)
        .iter()
        .map(|c| {
            vec![
                time(&c["date_added"], now),
                text(&c["environment"]),
                text(&c["status"]),
                c["duration_ms"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), text::duration_ms),
                c["log"]
                    .as_str()
                    .map(|log| {
                        log.lines()
                            .next()
                            .unwrap_or_default()
                            .chars()
                            .take(60)
                            .collect()
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no check-ins yet");
    } else {
        out.push_str(&render(
            &["CHECK-IN", "ENV", "STATUS", "DURATION", "LOG"],
            &rows,
        ));
    }
    out
}

pub(super) fn incidents(list: &Value) -> String {
    let now = Utc::now();
    let rows: Vec<Vec<String>> = items(list)
        .iter()
        .map(|i| {
            vec![
                text(&i["id"]),
                text(&i["kind"]),
                text(&i["project"]),
                text(&i["slug"]),
                text(&i["environment"]),
                text(&i["reason"]),
                time(&i["opened_at"], now),
                match &i["resolved_at"] {
                    Value::Null => "open".to_owned(),
                    at => time(at, now),
                },
                match &i["acknowledged"] {
                    Value::Null => "-".to_owned(),
                    ack => format!("{} {}", text(&ack["by"]), time(&ack["at"], now)),
                },
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no incidents".to_owned();
    }
    render(
        &[
            "ID", "KIND", "PROJECT", "SLUG", "ENV", "REASON", "OPENED", "RESOLVED", "ACKED",
        ],
        &rows,
    )
}

pub(super) fn issues(list: &Value) -> String {
    let now = Utc::now();
    let rows: Vec<Vec<String>> = items(list)
        .iter()
        .map(|i| {
            vec![
                text(&i["id"]),
                text(&i["status"]),
                text(&i["level"]),
                text(&i["count"]),
                time(&i["last_seen"], now),
                text(&i["title"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no issues".to_owned();
    }
    render(
        &["ID", "STATUS", "LEVEL", "EVENTS", "LAST SEEN", "TITLE"],
        &rows,
    )
}

pub(super) fn issue(issue: &Value, events: &Value) -> String {
    let now = Utc::now();
    let mut out = format!("{}\n", text(&issue["title"]));
    for (name, value) in [
        ("id", text(&issue["id"])),
        ("project", text(&issue["project"])),
        ("status", text(&issue["status"])),
        ("level", text(&issue["level"])),
        ("culprit", text(&issue["culprit"])),
        ("events", text(&issue["count"])),
        ("first seen", time(&issue["first_seen"], now)),
        ("last seen", time(&issue["last_seen"], now)),
    ] {
        out.push_str(&format!("  {name:<11} {value}\n"));
    }
    let n = items(events).len();
    out.push_str(&format!("\n{n} recent event(s)"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_line_up() {
        let out = render(
            &["A", "LONGER", "C"],
            &[
                vec!["wide-cell".into(), "x".into(), "last".into()],
                vec!["y".into(), "z".into(), "".into()],
            ],
        );
        assert_eq!(
            out,
            "A          LONGER  C\nwide-cell  x       last\ny          z"
        );
    }

    #[test]
    fn monitors_read_in_words() {
        let list = json!([{
            "project": 1, "slug": "backup", "environment": "production", "status": "error",
            "muted": true, "schedule": {"type": "crontab", "value": "0 3 * * *"},
            "timezone": "Europe/Berlin", "last_checkin": null, "next_checkin": null
        }]);
        let out = monitors(&list);
        assert!(out.contains("every day at 03:00 (Europe/Berlin)"), "{out}");
        assert!(out.contains("error (muted)"), "{out}");
        assert_eq!(monitors(&json!([])), "no monitors");
    }
}
