//! The `pushover` channel: `POST {api_url}/1/messages.json` as a form with `token` (the
//! application's API token), `user` (the user or group key), `title`, `message`, `priority`,
//! `url`, `url_title` and `timestamp` (pushover.net/api).
//!
//! Priorities: 2 (emergency: repeated every `retry` seconds until acknowledged in the app, for
//! `expire` seconds) for critical alerts, 1 for warnings, 0 for recoveries and other
//! information, unless the config fixes one. Pushover's limits are 1024 characters of
//! message, 250 of title, 512 of URL and 100 of URL title: longer text is cut to fit. Its
//! answers: `200` with `"status":1` is sent; other `4xx` mean the request (a key, a token)
//! is wrong and must not be repeated ("do not retry"), except `429` (the application's
//! monthly quota), retried; `5xx` are retried after the dispatcher's backoff. Both keys
//! are secrets.

use std::fmt;
use std::time::Duration;

use super::format;
use super::send::{Delivery, classify, send};
use super::template::{self, Template};
use crate::config::Secret;
use crate::engine::alerting::{Payload, Severity};

/// Pushover's limit on `message`, in characters.
pub const PUSHOVER_MESSAGE_MAX: usize = 1024;
/// Pushover's limit on `title`, in characters.
pub const PUSHOVER_TITLE_MAX: usize = 250;
/// Pushover's limit on `url`.
const URL_MAX: usize = 512;

/// A Pushover user or group, through an application.
pub struct Pushover {
    name: String,
    api_url: String,
    app_token: Secret,
    user_key: Secret,
    priority: Option<i8>,
    retry: Duration,
    expire: Duration,
    template: Option<Template>,
    client: reqwest::Client,
}

/// How a Pushover channel is set up (besides its name, client and template).
#[derive(Clone, Debug)]
pub struct PushoverSettings {
    /// API base URL without trailing slash (`https://api.pushover.net`).
    pub api_url: String,
    /// The application's API token.
    pub app_token: Secret,
    /// The user (or group) key.
    pub user_key: Secret,
    /// A fixed priority (−2…2) instead of the one mapped from the severity.
    pub priority: Option<i8>,
    /// Emergency priority: how often Pushover repeats (at least 30 s).
    pub retry: Duration,
    /// Emergency priority: for how long (at most 3 h).
    pub expire: Duration,
}

impl Pushover {
    /// A Pushover channel.
    pub fn new(
        name: String,
        settings: PushoverSettings,
        template: Option<Template>,
        client: reqwest::Client,
    ) -> Pushover {
        Pushover {
            name,
            api_url: settings.api_url.trim_end_matches('/').to_owned(),
            app_token: settings.app_token,
            user_key: settings.user_key,
            priority: settings.priority,
            retry: settings.retry,
            expire: settings.expire,
            template,
            client,
        }
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The form fields of one message.
    fn form(&self, payload: &Payload) -> Vec<(&'static str, String)> {
        let priority = self
            .priority
            .unwrap_or_else(|| priority(format::payload_severity(payload)));
        let message = template::text(
            self.template.as_ref(),
            &self.name,
            payload,
            format::plain_body,
        );
        let mut form = vec![
            ("token", self.app_token.expose().to_owned()),
            ("user", self.user_key.expose().to_owned()),
            (
                "title",
                format::truncate_plain(&format::plain_title(payload), PUSHOVER_TITLE_MAX),
            ),
            (
                "message",
                format::truncate_plain(&message, PUSHOVER_MESSAGE_MAX),
            ),
            ("priority", priority.to_string()),
        ];
        if priority == 2 {
            form.push(("retry", self.retry.as_secs().to_string()));
            form.push(("expire", self.expire.as_secs().to_string()));
        }
        if let Payload::Alert(alert) = payload {
            if alert.url.chars().count() <= URL_MAX {
                form.push(("url", alert.url.clone()));
                form.push(("url_title", "Open in Watchpost".to_owned()));
            }
            form.push(("timestamp", alert.timestamp.timestamp().to_string()));
        }
        form
    }

    /// Sends the payload as one message.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        let url = format!("{}/1/messages.json", self.api_url);
        let request = self.client.post(&url).form(&self.form(payload));
        match send(request, &url).await {
            Ok(reply) => classify(&reply),
            Err(reason) => Delivery::Retry {
                after: None,
                reason,
            },
        }
    }
}

/// 2 (emergency) for critical, 1 (high) for warnings, 0 (normal) otherwise.
fn priority(severity: Severity) -> i8 {
    match severity {
        Severity::Critical => 2,
        Severity::Warning => 1,
        Severity::Info => 0,
    }
}

impl fmt::Debug for Pushover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pushover")
            .field("name", &self.name)
            .field("api_url", &self.api_url)
            .field("app_token", &"***")
            .field("user_key", &"***")
            .field("priority", &self.priority)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}
