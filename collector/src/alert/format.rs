//! How an alert or a digest reads on each channel: Telegram HTML, Slack mrkdwn, email plain
//! text and HTML, one stdout line. Every piece of user data (titles, messages, names) is
//! escaped for the target format; nothing here decides *whether* to send.
//!
//! Each message says what broke and where (title), the summary and since when (message), the
//! kind, project, environment and time, and links to the dashboard.

use crate::engine::alerting::{Alert, Digest, Payload, Severity, when};

/// Telegram's limit on a message's text, after entity parsing (counted in UTF-16 code units,
/// which is never less than Telegram's count).
pub const TELEGRAM_MAX: usize = 4096;

/// Slack truncates a message text past 40,000 characters; stay well below.
pub const SLACK_MAX: usize = 12_000;

/// Lines of a digest before "… and N more".
const DIGEST_LINES: usize = 50;

/// A severity as a colored mark.
fn mark(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "🔴",
        Severity::Warning => "🟠",
        Severity::Info => "🟢",
    }
}

/// `monitor.failed · project 1 · production · 2026-05-01 03:05:00 UTC`.
fn context_line(alert: &Alert) -> String {
    let mut parts = vec![alert.kind.as_str().to_owned()];
    if let Some(project) = alert.project {
        parts.push(format!("project {project}"));
    }
    if let Some(environment) = &alert.environment {
        parts.push(environment.clone());
    }
    parts.push(when(alert.timestamp));
    parts.join(" · ")
}

/// Escapes text for Telegram's HTML mode and HTML email: `&`, `<`, `>` and `"`.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for Slack mrkdwn: `&`, `<`, `>` (Slack's control characters).
pub fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The Telegram `sendMessage` text (HTML parse mode), at most [`TELEGRAM_MAX`] long.
pub fn telegram(payload: &Payload) -> String {
    let html = match payload {
        Payload::Alert(alert) => format!(
            "{} <b>{}</b>\n{}\n<i>{}</i>\n<a href=\"{}\">Open in Watchpost</a>{}",
            mark(alert.severity),
            html_escape(&alert.title),
            html_escape(&alert.message),
            html_escape(&context_line(alert)),
            html_escape(&alert.url),
            alert
                .acknowledge_url
                .as_ref()
                .map_or_else(String::new, |url| format!(
                    " · <a href=\"{}\">Acknowledge</a>",
                    html_escape(url)
                ))
        ),
        Payload::Digest(digest) => {
            let mut html = format!(
                "{} <b>Watchpost digest: {}</b>",
                mark(digest.severity()),
                html_escape(&digest.headline())
            );
            for entry in digest.entries.iter().take(DIGEST_LINES) {
                html.push_str(&format!(
                    "\n{} <a href=\"{}\">{}</a>",
                    mark(entry.latest.severity),
                    html_escape(&entry.latest.url),
                    html_escape(&entry.line())
                ));
            }
            html.push_str(&more(digest));
            html
        }
    };
    truncate_html(&html, TELEGRAM_MAX)
}

/// The Slack incoming-webhook text (mrkdwn).
pub fn slack(payload: &Payload) -> String {
    let text = match payload {
        Payload::Alert(alert) => format!(
            "{} *{}*\n{}\n_{}_\n<{}|Open in Watchpost>{}",
            mark(alert.severity),
            slack_escape(&alert.title),
            slack_escape(&alert.message),
            slack_escape(&context_line(alert)),
            slack_escape(&alert.url),
            alert
                .acknowledge_url
                .as_ref()
                .map_or_else(String::new, |url| format!(
                    " · <{}|Acknowledge>",
                    slack_escape(url)
                ))
        ),
        Payload::Digest(digest) => {
            let mut text = format!(
                "{} *Watchpost digest: {}*",
                mark(digest.severity()),
                slack_escape(&digest.headline())
            );
            for entry in digest.entries.iter().take(DIGEST_LINES) {
                text.push_str(&format!(
                    "\n{} <{}|{}>",
                    mark(entry.latest.severity),
                    slack_escape(&entry.latest.url),
                    slack_escape(&entry.line()).replace('|', "¦")
                ));
            }
            text.push_str(&more(digest));
            text
        }
    };
    truncate_plain(&text, SLACK_MAX)
}

/// An email's subject, plain-text body and HTML body.
pub fn email(payload: &Payload) -> (String, String, String) {
    match payload {
        Payload::Alert(alert) => {
            let subject = format!("[Watchpost] {}", one_line(&alert.title));
            let plain = format!(
                "{}\n\n{}\n\n{}\n{}\n{}",
                alert.title,
                alert.message,
                context_line(alert),
                alert.url,
                alert
                    .acknowledge_url
                    .as_ref()
                    .map_or_else(String::new, |url| format!("Acknowledge: {url}\n"))
            );
            let html = format!(
                "<!DOCTYPE html><html><body>\
                 <h2>{} {}</h2><p>{}</p><p><small>{}</small></p>\
                 <p><a href=\"{}\">Open in Watchpost</a>{}</p></body></html>",
                mark(alert.severity),
                html_escape(&alert.title),
                html_escape(&alert.message).replace('\n', "<br>"),
                html_escape(&context_line(alert)),
                html_escape(&alert.url),
                alert
                    .acknowledge_url
                    .as_ref()
                    .map_or_else(String::new, |url| format!(
                        " · <a href=\"{}\">Acknowledge</a>",
                        html_escape(url)
                    ))
            );
            (subject, plain, html)
        }
        Payload::Digest(digest) => {
            let headline = digest.headline();
            let subject = format!("[Watchpost] digest: {headline}");
            let mut plain = format!("Watchpost digest: {headline}\n\n");
            let mut html = format!(
                "<!DOCTYPE html><html><body><h2>{} Watchpost digest: {}</h2><ul>",
                mark(digest.severity()),
                html_escape(&headline)
            );
            for entry in &digest.entries {
                plain.push_str(&format!(
                    "{} {}\n  {}\n",
                    mark(entry.latest.severity),
                    entry.line(),
                    entry.latest.url
                ));
                html.push_str(&format!(
                    "<li>{} <a href=\"{}\">{}</a></li>",
                    mark(entry.latest.severity),
                    html_escape(&entry.latest.url),
                    html_escape(&entry.line())
                ));
            }
            if digest.omitted > 0 {
                let line = format!("… and {} more alerts", digest.omitted);
                plain.push_str(&format!("{line}\n"));
                html.push_str(&format!("<li>{line}</li>"));
            }
            html.push_str("</ul></body></html>");
            (subject, plain, html)
        }
    }
}

/// A plain-text title (ntfy, Pushover, Discord, Teams): the alert's title, or the digest's
/// headline; one line.
pub fn plain_title(payload: &Payload) -> String {
    match payload {
        Payload::Alert(alert) => one_line(&alert.title),
        Payload::Digest(digest) => format!("Watchpost digest: {}", digest.headline()),
    }
}

/// A plain-text body to go under [`plain_title`]: the message and the context line, or one
/// line per digest entry. Links travel in the channel's own field (a click URL, a button).
pub fn plain_body(payload: &Payload) -> String {
    match payload {
        Payload::Alert(alert) => format!("{}\n{}", alert.message, context_line(alert)),
        Payload::Digest(digest) => {
            let mut text = String::new();
            for entry in digest.entries.iter().take(DIGEST_LINES) {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&format!("{} {}", mark(entry.latest.severity), entry.line()));
            }
            text.push_str(&more(digest));
            text
        }
    }
}

/// The colored mark of a payload's severity (a digest: its most severe subject).
pub fn severity_mark(payload: &Payload) -> &'static str {
    mark(payload_severity(payload))
}

/// A payload's severity (a digest: its most severe current state).
pub fn payload_severity(payload: &Payload) -> Severity {
    match payload {
        Payload::Alert(alert) => alert.severity,
        Payload::Digest(digest) => digest.severity(),
    }
}

/// Defuses Google Chat's angle-bracket syntax in text a sender chose (an error's message, a
/// monitor's name): `<users/all>` in an event sent with the public key would otherwise notify
/// everyone in the space, and `<url|text>` would dress up a link. Chat documents no escape, so
/// a zero-width space after each `<` keeps the text as it reads while no longer matching.
pub fn google_chat_escape(text: &str) -> String {
    text.replace('<', "<\u{200B}")
}

/// Google Chat's simple text format (`*bold*`, `_italic_`, `<url|text>`).
pub fn google_chat(payload: &Payload) -> String {
    match payload {
        Payload::Alert(alert) => format!(
            "{} *{}*\n{}\n_{}_\n<{}|Open in Watchpost>",
            mark(alert.severity),
            google_chat_escape(&one_line(&alert.title)),
            google_chat_escape(&alert.message),
            google_chat_escape(&context_line(alert)),
            alert.url
        ),
        Payload::Digest(digest) => {
            let mut text = format!(
                "{} *Watchpost digest: {}*",
                mark(digest.severity()),
                digest.headline()
            );
            for entry in digest.entries.iter().take(DIGEST_LINES) {
                text.push_str(&format!(
                    "\n{} <{}|{}>",
                    mark(entry.latest.severity),
                    entry.latest.url,
                    google_chat_escape(&entry.line().replace(['|', '>'], "¦"))
                ));
            }
            text.push_str(&more(digest));
            text
        }
    }
}

/// Cuts text to at most `max` bytes of UTF-8 (never inside a character), ending with `…`.
pub fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let budget = max.saturating_sub('…'.len_utf8());
    let end = (0..=budget)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &text[..end])
}

/// One stdout line: `watchpost alert critical monitor.failed: <title> — <message> <url>`.
pub fn log_line(payload: &Payload) -> String {
    match payload {
        Payload::Alert(alert) => one_line(&format!(
            "watchpost alert {} {} project={} environment={}: {} — {} {}",
            alert.severity.as_str(),
            alert.kind,
            alert
                .project
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
            alert.environment.as_deref().unwrap_or("-"),
            alert.title,
            alert.message,
            alert.url
        )),
        Payload::Digest(digest) => {
            let lines: Vec<String> = digest.entries.iter().map(|e| e.line()).collect();
            one_line(&format!(
                "watchpost digest {}: {}: {}",
                digest.severity().as_str(),
                digest.headline(),
                lines.join("; ")
            ))
        }
    }
}

fn more(digest: &Digest) -> String {
    let hidden =
        digest.entries.len().saturating_sub(DIGEST_LINES) as u64 + u64::from(digest.omitted);
    if hidden > 0 {
        format!("\n… and {hidden} more")
    } else {
        String::new()
    }
}

/// Newlines and other control characters become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Cuts plain text to `max` characters, ending with `…`.
pub fn truncate_plain(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Cuts HTML made of text, entities and simple tags so its *visible* text (entities count as
/// one character, tags as none; UTF-16 code units) is at most `max`, never inside a tag or an
/// entity, ending with `…` and closing the tags left open.
pub fn truncate_html(html: &str, max: usize) -> String {
    if visible_len(html) <= max {
        return html.to_owned();
    }
    let budget = max.saturating_sub(1); // room for the ellipsis
    let mut out = String::with_capacity(html.len().min(max * 4));
    let mut open: Vec<&str> = Vec::new();
    let mut visible = 0;
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        let (token, units) = match c {
            '<' => match rest.find('>') {
                Some(end) => (&rest[..=end], 0),
                None => break, // a broken tag: stop before it
            },
            '&' => match entity_end(rest) {
                Some(end) => (&rest[..=end], 1),
                None => (&rest[..1], 1),
            },
            c => (&rest[..c.len_utf8()], c.len_utf16()),
        };
        if units > 0 && visible + units > budget {
            break;
        }
        if units == 0 {
            let inner = token.trim_start_matches('<').trim_end_matches('>');
            if let Some(name) = inner.strip_prefix('/') {
                if let Some(pos) = open.iter().rposition(|t| *t == name.trim()) {
                    open.truncate(pos);
                }
            } else if !inner.ends_with('/') {
                let name = inner.split_whitespace().next().unwrap_or_default();
                open.push(name);
            }
        }
        visible += units;
        out.push_str(token);
        rest = &rest[token.len()..];
    }
    out.push('…');
    for tag in open.iter().rev() {
        out.push_str(&format!("</{tag}>"));
    }
    out
}

/// The index of the `;` ending an entity that starts `text`, if it is within 10 bytes.
fn entity_end(text: &str) -> Option<usize> {
    let end = text.bytes().take(10).position(|b| b == b';')?;
    let name = &text.as_bytes()[1..end];
    (!name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'#'))
        .then_some(end)
}

/// Visible length of HTML as Telegram counts it (see [`truncate_html`]).
pub fn visible_len(html: &str) -> usize {
    let mut len = 0;
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => match rest.find('>') {
                Some(end) => rest = &rest[end + 1..],
                None => return len + rest.encode_utf16().count(),
            },
            '&' => {
                len += 1;
                let end = entity_end(rest).map_or(1, |e| e + 1);
                rest = &rest[end..];
            }
            c => {
                len += c.len_utf16();
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_user_data() {
        assert_eq!(html_escape("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
        assert_eq!(slack_escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
        assert_eq!(
            google_chat_escape("ping <users/all> or <https://evil.example|docs>"),
            "ping <\u{200B}users/all> or <\u{200B}https://evil.example|docs>"
        );
    }

    #[test]
    fn a_google_chat_alert_mentions_nobody_a_sender_named() {
        use chrono::TimeZone;
        let change = crate::engine::probes::ProbeNotice {
            down: true,
            name: "api".to_owned(),
            url: "http://127.0.0.1:8080/health".to_owned(),
            status_code: Some(503),
            error: None,
            since: None,
        };
        let now = chrono::Utc.with_ymd_and_hms(2026, 5, 1, 3, 0, 0).unwrap();
        let links = crate::engine::alerting::Links::new("http://127.0.0.1:8470");
        let mut alert = crate::engine::alerting::probe_alert(&change, &links, now);
        alert.title = "Error <users/all> in checkout".to_owned();
        alert.message = "see <users/123456789>".to_owned();
        let text = google_chat(&Payload::Alert(alert));
        assert!(!text.contains("<users/"), "{text}");
        assert!(text.contains("<\u{200B}users/all>"), "{text}");
        assert!(
            text.contains("|Open in Watchpost>"),
            "our own link stays a link: {text}"
        );
    }

    #[test]
    fn counts_visible_html() {
        assert_eq!(visible_len("<b>ab</b>&lt;c"), 4);
        assert_eq!(visible_len("😀"), 2, "UTF-16 units");
    }

    #[test]
    fn truncates_html_without_breaking_tags_or_entities() {
        let cases = [
            ("<b>hello</b>", 10, "<b>hello</b>"),
            ("<b>hello world</b>", 6, "<b>hello…</b>"),
            ("a&amp;b&lt;cdef", 4, "a&amp;b…"),
            (
                "<a href=\"x\">link text</a> after",
                5,
                "<a href=\"x\">link…</a>",
            ),
            ("<b>x</b><i>yyyyyy</i>", 4, "<b>x</b><i>yy…</i>"),
            ("😀😀😀", 5, "😀😀…"),
            ("a & é; long text", 4, "a &…"),
        ];
        for (html, max, want) in cases {
            let got = truncate_html(html, max);
            assert_eq!(got, want, "{html} to {max}");
            assert!(visible_len(&got) <= max);
        }
    }

    #[test]
    fn truncates_bytes_on_char_boundaries() {
        assert_eq!(truncate_bytes("short", 10), "short");
        let cut = truncate_bytes(&"é".repeat(10), 8);
        assert_eq!(cut, "éé…");
        assert!(cut.len() <= 8);
    }

    #[test]
    fn long_user_data_stays_within_telegram_limit() {
        let long = "<&>".repeat(3000);
        let html = format!("<b>{}</b>\n<a href=\"u\">x</a>", html_escape(&long));
        let got = truncate_html(&html, TELEGRAM_MAX);
        assert_eq!(visible_len(&got), TELEGRAM_MAX);
        assert!(got.ends_with("…</b>"), "{got}");
        assert!(!got.contains("&a…") && !got.contains("&l…"));
    }
}
