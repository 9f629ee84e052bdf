//! The `ntfy` channel: ntfy's JSON publish, `POST {server}/ {"topic", "title", "message",
//! "priority", "tags", "click"}` (docs.ntfy.sh, "Publish as JSON"), optionally with
//! `Authorization: Bearer <token>`.
//!
//! JSON rather than the `Title`/`Priority` headers because a title is user data and headers
//! carry only ASCII safely. The configured topic URL (`https://ntfy.sh/alerts`) names both
//! the server (everything before the last path segment) and the topic. A message longer than
//! ntfy's limit (4096 bytes by default) would become an attachment, so it is cut to fit.
//! ntfy answers `429` when a visitor's budget is spent: retried after the dispatcher's backoff
//! (or the `Retry-After` it sends); other `4xx` (bad token, forbidden topic) are permanent.
//! The topic URL and the token are secrets: `Debug` shows the host only.

use std::fmt;

use serde_json::json;

use super::format;
use super::send::{Delivery, RedactedUrl, classify, send};
use super::template::{self, Template};
use crate::config::Secret;
use crate::engine::alerting::{Payload, Severity};

/// ntfy's default `message-size-limit`, in bytes.
pub const NTFY_MAX: usize = 4096;

/// Longest title sent (ntfy sets none; a phone shows far less).
const TITLE_MAX: usize = 250;

/// An ntfy topic.
pub struct Ntfy {
    name: String,
    topic_url: Secret,
    token: Option<Secret>,
    priority: Option<u8>,
    template: Option<Template>,
    client: reqwest::Client,
}

impl Ntfy {
    /// An ntfy channel publishing to `topic_url`; `priority` (1–5) overrides the one mapped
    /// from the severity.
    pub fn new(
        name: String,
        topic_url: Secret,
        token: Option<Secret>,
        priority: Option<u8>,
        template: Option<Template>,
        client: reqwest::Client,
    ) -> Ntfy {
        Ntfy {
            name,
            topic_url,
            token,
            priority,
            template,
            client,
        }
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes the payload.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        let (server, topic) = split_topic_url(self.topic_url.expose());
        let severity = format::payload_severity(payload);
        let message = template::text(
            self.template.as_ref(),
            &self.name,
            payload,
            format::plain_body,
        );
        let mut body = json!({
            "topic": topic,
            "title": format::truncate_plain(&format::plain_title(payload), TITLE_MAX),
            "message": format::truncate_bytes(&message, NTFY_MAX),
            "priority": self.priority.unwrap_or_else(|| priority(severity)),
            "tags": [tag(severity)],
        });
        if let Payload::Alert(alert) = payload {
            body["click"] = json!(alert.url);
        }
        let mut request = self.client.post(&server).json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        match send(request, &server).await {
            Ok(reply) => classify(&reply),
            Err(reason) => Delivery::Retry {
                after: None,
                reason,
            },
        }
    }
}

/// `https://ntfy.example/sub/alerts?x` → (`https://ntfy.example/sub/`, `alerts`).
fn split_topic_url(url: &str) -> (String, String) {
    let path_end = url.find(['?', '#']).unwrap_or(url.len());
    let url = url[..path_end].trim_end_matches('/');
    match url.rsplit_once('/') {
        Some((server, topic)) => (format!("{server}/"), topic.to_owned()),
        None => (format!("{url}/"), String::new()),
    }
}

/// ntfy priorities: 5 (urgent) for critical, 4 (high) for warnings, 3 (default) otherwise.
fn priority(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 5,
        Severity::Warning => 4,
        Severity::Info => 3,
    }
}

/// The tag ntfy shows as an emoji before the title.
fn tag(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "rotating_light",
        Severity::Warning => "warning",
        Severity::Info => "white_check_mark",
    }
}

impl fmt::Debug for Ntfy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ntfy")
            .field("name", &self.name)
            .field("topic_url", &RedactedUrl(self.topic_url.expose()))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("priority", &self.priority)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_server_and_topic() {
        let cases = [
            ("https://ntfy.sh/alerts", ("https://ntfy.sh/", "alerts")),
            ("https://h/sub/alerts/", ("https://h/sub/", "alerts")),
            ("http://h:8/t?auth=x", ("http://h:8/", "t")),
        ];
        for (url, (server, topic)) in cases {
            assert_eq!(split_topic_url(url), (server.to_owned(), topic.to_owned()));
        }
    }
}
