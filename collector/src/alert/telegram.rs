//! The `telegram` channel: Bot API `POST {api_url}/bot{token}/sendMessage` with
//! `{chat_id, text, parse_mode: "HTML", disable_web_page_preview: true}`.
//!
//! Reads the Bot API's answers: `429` waits `parameters.retry_after`; a group that became a
//! supergroup answers `parameters.migrate_to_chat_id`, which is followed at once and kept for
//! later messages (and logged, so the config can be updated); `401`/`403`/`404` and
//! `chat not found` are permanent. The bot token is a secret: it is only ever part of the
//! request URL, which is never logged (errors are stripped of it), and `Debug` hides it.

use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

use super::format;
use super::send::{Delivery, describe, post_json};
use super::template::{self, Template};
use crate::config::Secret;
use crate::engine::alerting::Payload;

/// A Telegram chat reached through a bot.
pub struct Telegram {
    name: String,
    api_url: String,
    token: Secret,
    chat_id: Mutex<String>,
    template: Option<Template>,
    client: reqwest::Client,
}

/// The Bot API's answer envelope.
#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Debug, Default, Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

impl Telegram {
    /// A Telegram channel; `api_url` without trailing slash (`https://api.telegram.org`).
    pub fn new(
        name: String,
        api_url: &str,
        token: Secret,
        chat_id: &str,
        client: reqwest::Client,
    ) -> Telegram {
        Telegram {
            name,
            api_url: api_url.trim_end_matches('/').to_owned(),
            token,
            chat_id: Mutex::new(chat_id.to_owned()),
            template: None,
            client,
        }
    }

    /// Renders messages with `template` (values HTML-escaped) instead of the built-in text.
    pub fn with_template(mut self, template: Option<Template>) -> Telegram {
        self.template = template;
        self
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chat messages go to: the configured one, or the supergroup it migrated to.
    pub fn chat_id(&self) -> String {
        self.chat_id.lock().clone()
    }

    /// Sends the payload as one HTML message (at most 4096 characters).
    pub async fn send(&self, payload: &Payload) -> Delivery {
        let text = template::text(
            self.template.as_ref(),
            &self.name,
            payload,
            format::telegram,
        );
        let text = format::truncate_html(&text, format::TELEGRAM_MAX);
        let url = format!("{}/bot{}/sendMessage", self.api_url, self.token.expose());
        // At most one migration per message: a chat does not migrate twice.
        for _ in 0..2 {
            let chat_id = self.chat_id();
            let body = json!({
                "chat_id": chat_value(&chat_id),
                "text": text,
                "parse_mode": "HTML",
                "disable_web_page_preview": true,
            });
            let reply = match post_json(&self.client, &url, &body).await {
                Ok(reply) => reply,
                Err(reason) => {
                    return Delivery::Retry {
                        after: None,
                        reason,
                    };
                }
            };
            let answer: Answer = serde_json::from_str(&reply.body).unwrap_or_default();
            let parameters = answer.parameters.unwrap_or_default();
            if reply.status.is_success() && answer.ok {
                return Delivery::Sent;
            }
            if let Some(new_id) = parameters.migrate_to_chat_id {
                let new_id = new_id.to_string();
                tracing::warn!(
                    channel = %self.name,
                    old_chat_id = %chat_id,
                    new_chat_id = %new_id,
                    "the Telegram group became a supergroup; sending to the new chat id \
                     (update chat_id in the config to keep it after a restart)"
                );
                *self.chat_id.lock() = new_id;
                continue;
            }
            let description = answer
                .description
                .unwrap_or_else(|| describe(&reply))
                .chars()
                .take(300)
                .collect::<String>();
            let reason = format!("Telegram {}: {description}", reply.status.as_u16());
            return match reply.status.as_u16() {
                429 => Delivery::Retry {
                    after: parameters
                        .retry_after
                        .map(Duration::from_secs)
                        .or(reply.retry_after),
                    reason,
                },
                401 | 403 | 404 => Delivery::Permanent { reason },
                400 if description.to_lowercase().contains("chat not found") => {
                    Delivery::Permanent { reason }
                }
                // Another 400 is a message Telegram will never take (e.g. bad HTML).
                400 => Delivery::Permanent { reason },
                // A redirect is not followed (the URL holds the bot token); its reason names
                // the new location.
                s if s >= 500 || reply.status.is_success() || reply.status.is_redirection() => {
                    Delivery::Retry {
                        after: reply.retry_after,
                        reason,
                    }
                }
                _ => Delivery::Permanent { reason },
            };
        }
        Delivery::Retry {
            after: None,
            reason: "Telegram kept answering migrate_to_chat_id".to_owned(),
        }
    }
}

/// Numeric chat ids go as numbers, `@channel` names as strings.
fn chat_value(chat_id: &str) -> Value {
    chat_id
        .parse::<i64>()
        .map_or_else(|_| Value::String(chat_id.to_owned()), Value::from)
}

impl fmt::Debug for Telegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telegram")
            .field("name", &self.name)
            .field("api_url", &self.api_url)
            .field("token", &"***")
            .field("chat_id", &*self.chat_id.lock())
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}
