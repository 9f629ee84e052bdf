//! The `discord` channel: an execute-webhook request, `POST {url}` (with `?wait=true` when
//! configured, so Discord answers only once the message exists) and `{"embeds": [...],
//! "allowed_mentions": {"parse": []}}` (discord.com/developers, "Execute Webhook").
//!
//! One embed per payload, coloured by severity, within Discord's embed limits: title 256
//! characters, description 4096, footer 2048, all of a message's embeds 6000 together (at
//! most 10 embeds; Watchpost sends one). `allowed_mentions` is empty, so an alert title that
//! contains `@everyone` pings nobody. Discord's `429` carries `retry_after` (seconds, with a
//! fraction) in its JSON and `Retry-After`: the dispatcher waits that long; `404` (the webhook
//! was deleted) and the other `4xx` are permanent. The webhook URL holds its token: `Debug`
//! shows the host only.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::format;
use super::send::{Delivery, RedactedUrl, classify, post_json};
use super::template::{self, Template};
use crate::config::Secret;
use crate::engine::alerting::{Alert, Payload, Severity, when};

/// Discord's limit on an embed's title.
pub const DISCORD_TITLE_MAX: usize = 256;
/// Discord's limit on an embed's description.
pub const DISCORD_DESCRIPTION_MAX: usize = 4096;
/// Discord's limit on the text of all embeds of a message together.
pub const DISCORD_TOTAL_MAX: usize = 6000;
/// Discord's limit on a footer's text.
const FOOTER_MAX: usize = 2048;

/// A Discord channel's webhook.
pub struct Discord {
    name: String,
    url: Secret,
    wait: bool,
    template: Option<Template>,
    client: reqwest::Client,
}

/// What Discord answers with a `429`.
#[derive(Debug, Default, Deserialize)]
struct RateLimited {
    #[serde(default)]
    retry_after: Option<f64>,
}

impl Discord {
    /// A Discord channel posting to the webhook `url`; `wait` adds `?wait=true`.
    pub fn new(
        name: String,
        url: Secret,
        wait: bool,
        template: Option<Template>,
        client: reqwest::Client,
    ) -> Discord {
        Discord {
            name,
            url,
            wait,
            template,
            client,
        }
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The webhook body of a payload.
    fn body(&self, payload: &Payload) -> Value {
        let title = format::truncate_plain(
            &format!(
                "{} {}",
                format::severity_mark(payload),
                format::plain_title(payload)
            ),
            DISCORD_TITLE_MAX,
        );
        let footer = match payload {
            Payload::Alert(alert) => context(alert),
            Payload::Digest(digest) => format!("Watchpost · since {}", when(digest.since)),
        };
        let footer = format::truncate_plain(&footer, FOOTER_MAX);
        let description =
            template::text(self.template.as_ref(), &self.name, payload, |p| match p {
                Payload::Alert(alert) => alert.message.clone(),
                Payload::Digest(_) => format::plain_body(p),
            });
        let room = DISCORD_TOTAL_MAX
            .saturating_sub(title.chars().count() + footer.chars().count())
            .min(DISCORD_DESCRIPTION_MAX);
        let mut embed = json!({
            "title": title,
            "description": format::truncate_plain(&description, room),
            "color": colour(format::payload_severity(payload)),
            "footer": { "text": footer },
        });
        if let Payload::Alert(alert) = payload {
            embed["url"] = json!(alert.url);
            embed["timestamp"] = json!(alert.timestamp.to_rfc3339());
        }
        json!({
            "username": "Watchpost",
            "embeds": [embed],
            "allowed_mentions": { "parse": [] },
        })
    }

    /// Posts the payload as one embed.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        let url = if self.wait {
            let separator = if self.url.expose().contains('?') {
                '&'
            } else {
                '?'
            };
            format!("{}{separator}wait=true", self.url.expose())
        } else {
            self.url.expose().to_owned()
        };
        let reply = match post_json(&self.client, &url, &self.body(payload)).await {
            Ok(reply) => reply,
            Err(reason) => {
                return Delivery::Retry {
                    after: None,
                    reason,
                };
            }
        };
        match classify(&reply) {
            Delivery::Retry { after, reason } if reply.status.as_u16() == 429 => {
                let asked = serde_json::from_str::<RateLimited>(&reply.body)
                    .unwrap_or_default()
                    .retry_after
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
                Delivery::Retry {
                    after: asked.or(after),
                    reason,
                }
            }
            other => other,
        }
    }
}

/// `monitor.failed · project 1 · production`.
fn context(alert: &Alert) -> String {
    let mut parts = vec![alert.kind.as_str().to_owned()];
    if let Some(project) = alert.project {
        parts.push(format!("project {project}"));
    }
    if let Some(environment) = &alert.environment {
        parts.push(environment.clone());
    }
    parts.join(" · ")
}

/// Red, orange, green.
fn colour(severity: Severity) -> u32 {
    match severity {
        Severity::Critical => 0xE0_1E_5A,
        Severity::Warning => 0xF2_A3_3A,
        Severity::Info => 0x2E_B6_7D,
    }
}

impl fmt::Debug for Discord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discord")
            .field("name", &self.name)
            .field("url", &RedactedUrl(self.url.expose()))
            .field("wait", &self.wait)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}
