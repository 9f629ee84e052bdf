//! The `webhook` channel: POSTs the alert JSON of docs/alerts.md, "Webhook JSON", exactly as
//! [`Alert`](crate::engine::alerting::Alert) serializes, to one URL.
//!
//! The URL is a secret (webhook URLs usually carry a token): it is never logged, and `Debug`
//! shows the host only.

use std::fmt;

use super::send::{Delivery, RedactedUrl, classify, post_json};
use crate::config::Secret;
use crate::engine::alerting::Payload;

/// A webhook destination.
pub struct Webhook {
    name: String,
    url: Secret,
    client: reqwest::Client,
}

impl Webhook {
    /// A webhook channel POSTing to `url`.
    pub fn new(name: String, url: Secret, client: reqwest::Client) -> Webhook {
        Webhook { name, url, client }
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// POSTs the alert (a digest, which the dispatcher never makes for webhooks, would go as
    /// `{"digest": {...}}`). 2xx is sent; 408, 429 and 5xx are retried; other statuses fail.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        let reply = match payload {
            Payload::Alert(alert) => post_json(&self.client, self.url.expose(), alert).await,
            Payload::Digest(_) => post_json(&self.client, self.url.expose(), payload).await,
        };
        match reply {
            Ok(reply) => classify(&reply),
            Err(reason) => Delivery::Retry {
                after: None,
                reason,
            },
        }
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &RedactedUrl(self.url.expose()))
            .finish_non_exhaustive()
    }
}
