//! The `google_chat` channel: a Google Chat incoming webhook, `POST {url}` with
//! `{"text": ...}` in Chat's simple format (`*bold*`, `_italic_`, `<url|text>`), at most 4096
//! characters (longer text is cut).
//!
//! Chat allows about one message a second per space: the dispatcher paces it like a chat
//! webhook, and a `429` is retried (after `Retry-After` when given); other `4xx` (a deleted
//! webhook, a wrong key) are permanent. The URL carries the webhook's `key` and `token`:
//! `Debug` shows the host only.

use std::fmt;

use serde_json::json;

use super::format;
use super::send::{Delivery, RedactedUrl, classify, post_json};
use super::template::{self, Template};
use crate::config::Secret;
use crate::engine::alerting::Payload;

/// The longest text sent to Google Chat, in characters.
pub const GOOGLE_CHAT_MAX: usize = 4096;

/// A Google Chat space's incoming webhook.
pub struct GoogleChat {
    name: String,
    url: Secret,
    template: Option<Template>,
    client: reqwest::Client,
}

impl GoogleChat {
    /// A Google Chat channel posting to the webhook `url`.
    pub fn new(
        name: String,
        url: Secret,
        template: Option<Template>,
        client: reqwest::Client,
    ) -> GoogleChat {
        GoogleChat {
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

    /// Posts the payload as one text message.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        let text = template::text(
            self.template.as_ref(),
            &self.name,
            payload,
            format::google_chat,
        );
        let body = json!({ "text": format::truncate_plain(&text, GOOGLE_CHAT_MAX) });
        match post_json(&self.client, self.url.expose(), &body).await {
            Ok(reply) => classify(&reply),
            Err(reason) => Delivery::Retry {
                after: None,
                reason,
            },
        }
    }
}

impl fmt::Debug for GoogleChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleChat")
            .field("name", &self.name)
            .field("url", &RedactedUrl(self.url.expose()))
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}
