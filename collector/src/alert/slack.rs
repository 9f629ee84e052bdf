//! The `slack` channel: an incoming webhook, `POST url {"text": "<mrkdwn>"}`.
//!
//! Slack answers with plain statuses and short bodies: `429` with `Retry-After` is retried as
//! asked; `404`/`410`, and `400`/`403` with `invalid_token`, `channel_not_found`,
//! `channel_is_archived`, `no_service` or `action_prohibited` mean the webhook is gone and
//! are permanent (healthchecks does the same). The URL is the secret; `Debug` hides it.

use std::fmt;

use serde_json::json;

use super::format;
use super::send::{Delivery, RedactedUrl, classify, describe, post_json};
use super::template::{self, Template};
use crate::config::Secret;
use crate::engine::alerting::Payload;

/// Bodies Slack answers when the webhook can never work again.
const GONE: &[&str] = &[
    "invalid_token",
    "channel_not_found",
    "channel_is_archived",
    "no_service",
    "no_team",
    "team_disabled",
    "action_prohibited",
];

/// A Slack incoming webhook.
pub struct Slack {
    name: String,
    url: Secret,
    template: Option<Template>,
    client: reqwest::Client,
}

impl Slack {
    /// A Slack channel posting to the webhook `url`.
    pub fn new(name: String, url: Secret, client: reqwest::Client) -> Slack {
        Slack {
            name,
            url,
            template: None,
            client,
        }
    }

    /// Renders messages with `template` (values escaped for mrkdwn) instead of the built-in
    /// text.
    pub fn with_template(mut self, template: Option<Template>) -> Slack {
        self.template = template;
        self
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Posts the payload as mrkdwn text.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        let text = template::text(self.template.as_ref(), &self.name, payload, format::slack);
        let body = json!({ "text": format::truncate_plain(&text, format::SLACK_MAX) });
        let reply = match post_json(&self.client, self.url.expose(), &body).await {
            Ok(reply) => reply,
            Err(reason) => {
                return Delivery::Retry {
                    after: None,
                    reason,
                };
            }
        };
        let gone = GONE.iter().any(|code| reply.body.contains(code));
        match reply.status.as_u16() {
            404 | 410 => Delivery::Permanent {
                reason: format!("the Slack webhook is gone ({})", describe(&reply)),
            },
            400 | 403 if gone => Delivery::Permanent {
                reason: format!("Slack refused the webhook ({})", describe(&reply)),
            },
            _ => classify(&reply),
        }
    }
}

impl fmt::Debug for Slack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slack")
            .field("name", &self.name)
            .field("url", &RedactedUrl(self.url.expose()))
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}
