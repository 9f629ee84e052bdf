//! The `teams` channel: a Microsoft Teams Workflows webhook (the "Post to a channel when a
//! webhook request is received" flow; the Office 365 connectors it replaces are retired),
//! `POST {url}` with `{"type": "message", "attachments": [{"contentType":
//! "application/vnd.microsoft.card.adaptive", "content": <Adaptive Card 1.4>}]}`.
//!
//! The card: the title (bold, coloured by severity), the message, a fact set (kind, project,
//! environment, time) and an "Open in Watchpost" button. Teams refuses messages over 28 KB,
//! so the message is cut until the whole body fits. The flow answers `202`; `429` is retried
//! after `Retry-After`; other `4xx` (a deleted or disabled flow) are permanent. The URL holds
//! the flow's signature: `Debug` shows the host only.

use std::fmt;

use serde_json::{Value, json};

use super::format;
use super::send::{Delivery, RedactedUrl, classify, post_json};
use super::template::{self, Template};
use crate::config::Secret;
use crate::engine::alerting::{Payload, Severity, when};

/// Teams' limit on a message, in bytes.
pub const TEAMS_MAX_BYTES: usize = 28 * 1024;

/// A Teams channel, through a Workflows webhook.
pub struct Teams {
    name: String,
    url: Secret,
    template: Option<Template>,
    client: reqwest::Client,
}

impl Teams {
    /// A Teams channel posting to the Workflows webhook `url`.
    pub fn new(
        name: String,
        url: Secret,
        template: Option<Template>,
        client: reqwest::Client,
    ) -> Teams {
        Teams {
            name,
            url,
            template,
            client,
        }
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The message body, at most [`TEAMS_MAX_BYTES`] long.
    fn body(&self, payload: &Payload) -> Value {
        let text = template::text(self.template.as_ref(), &self.name, payload, |p| match p {
            Payload::Alert(alert) => alert.message.clone(),
            Payload::Digest(_) => format::plain_body(p),
        });
        // What the card takes without the text (plus the text's quotes) is fixed; the text
        // gets the rest, measured as JSON (quotes and control characters grow when escaped).
        let overhead = card(payload, "").to_string().len();
        card(
            payload,
            &fit_json(&text, TEAMS_MAX_BYTES.saturating_sub(overhead)),
        )
    }

    /// Posts the payload as one Adaptive Card.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        match post_json(&self.client, self.url.expose(), &self.body(payload)).await {
            Ok(reply) => classify(&reply),
            Err(reason) => Delivery::Retry {
                after: None,
                reason,
            },
        }
    }
}

/// The longest prefix of `text` (ending with `…` when cut) whose JSON string form is at most
/// `room` bytes longer than `""`.
fn fit_json(text: &str, room: usize) -> String {
    let json_len = |s: &str| serde_json::to_string(s).map_or(usize::MAX, |j| j.len() - 2);
    if json_len(text) <= room {
        return text.to_owned();
    }
    // Binary search over character boundaries: the longer the prefix, the longer its JSON.
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let fits = |end: usize| json_len(&format!("{}…", &text[..end])) <= room;
    let k = bounds.partition_point(|&end| fits(end));
    let end = k.checked_sub(1).map_or(0, |k| bounds[k]);
    format!("{}…", &text[..end])
}

/// The Workflows message around an Adaptive Card with `text` under the title.
fn card(payload: &Payload, text: &str) -> Value {
    let title = format::truncate_plain(&format::plain_title(payload), 500);
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": title,
            "weight": "Bolder",
            "size": "Medium",
            "color": colour(format::payload_severity(payload)),
            "wrap": true,
        }),
        json!({ "type": "TextBlock", "text": text, "wrap": true }),
    ];
    let mut actions = Vec::new();
    if let Payload::Alert(alert) = payload {
        let mut facts = vec![json!({ "title": "Kind", "value": alert.kind.as_str() })];
        if let Some(project) = alert.project {
            facts.push(json!({ "title": "Project", "value": project.to_string() }));
        }
        if let Some(environment) = &alert.environment {
            facts.push(json!({ "title": "Environment", "value": environment }));
        }
        facts.push(json!({ "title": "Time", "value": when(alert.timestamp) }));
        body.push(json!({ "type": "FactSet", "facts": facts }));
        actions.push(
            json!({ "type": "Action.OpenUrl", "title": "Open in Watchpost", "url": alert.url }),
        );
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
}

/// Adaptive Card text colours.
fn colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "Attention",
        Severity::Warning => "Warning",
        Severity::Info => "Good",
    }
}

impl fmt::Debug for Teams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Teams")
            .field("name", &self.name)
            .field("url", &RedactedUrl(self.url.expose()))
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}
