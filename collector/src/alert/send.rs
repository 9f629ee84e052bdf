//! What every channel shares to deliver one payload and say how it went: the outcome
//! ([`Delivery`]), the options and errors of a channel, the HTTP client, and posting JSON with
//! the reply classified. Channels (`webhook.rs`, `telegram.rs`, ...) build on these;
//! `channel.rs` picks the channel. Nothing here retries, sleeps or paces (the dispatcher does,
//! from the outcome), and nothing prints a secret: `RedactedUrl` is what `Debug` shows of a URL,
//! and HTTP errors are stripped of their URL before they become a reason.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::Serialize;

/// How one attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The destination accepted it.
    Sent,
    /// Try again: after `after` when the destination said so (`429`, `Retry-After`), else
    /// after the dispatcher's backoff.
    Retry {
        /// The wait the destination asked for.
        after: Option<Duration>,
        /// What went wrong, for `last_error` (no secrets).
        reason: String,
    },
    /// Retrying cannot help (wrong token, chat or URL gone): fail the delivery visibly.
    Permanent {
        /// What went wrong, for `last_error` (no secrets).
        reason: String,
    },
}

/// Settings of the channels that are not in the config file: timeouts and paces (tests make
/// them short).
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// Per-request timeout (HTTP and SMTP).
    pub timeout: Duration,
    /// Telegram: least time between messages to one chat (the Bot API FAQ: about 1 s).
    pub telegram_chat_interval: Duration,
    /// Telegram: at most this many messages per window to a group (20 per minute).
    pub telegram_group_limit: (u32, Duration),
    /// The chat and push channels (Slack, Discord, Google Chat, Teams, ntfy, Pushover,
    /// PagerDuty): least time between messages to one destination (about 1 s, within every one
    /// of their limits; see `Channel::pace`).
    pub chat_interval: Duration,
    /// Email: least time between messages, so a storm is digested rather than mailed
    /// message by message.
    pub email_interval: Duration,
    /// Alertmanager: how often firing alerts are re-sent (well under its `resolve_timeout`,
    /// default 5 min).
    pub alertmanager_resend: Duration,
    /// Alertmanager: how long a resolution keeps being re-sent (Alertmanager keeps no state
    /// across its own restarts).
    pub alertmanager_resolved_for: Duration,
    /// Alertmanager: `endsAt` of one-off alerts (issue kinds), after their timestamp.
    pub alertmanager_event_ttl: Duration,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            timeout: Duration::from_secs(10),
            telegram_chat_interval: Duration::from_secs(1),
            telegram_group_limit: (20, Duration::from_secs(60)),
            chat_interval: Duration::from_secs(1),
            email_interval: Duration::from_secs(10),
            alertmanager_resend: Duration::from_secs(60),
            alertmanager_resolved_for: Duration::from_secs(300),
            alertmanager_event_ttl: Duration::from_secs(3600),
        }
    }
}

/// A channel that cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The SMTP URL is not usable.
    #[error("channel `{channel}`: smtp_url {reason}")]
    SmtpUrl {
        /// Channel name.
        channel: String,
        /// What is wrong (never the URL itself: it may hold a password).
        reason: String,
    },
    /// An email address does not parse.
    #[error("channel `{channel}`: {field} `{address}` is not a valid address: {reason}")]
    Address {
        /// Channel name.
        channel: String,
        /// `from` or `to`.
        field: &'static str,
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// TLS settings for SMTP could not be built.
    #[error("channel `{channel}`: cannot set up TLS for SMTP: {reason}")]
    Tls {
        /// Channel name.
        channel: String,
        /// Why.
        reason: String,
    },
    /// The channel's `template` does not compile, or its kind takes none.
    #[error("channel `{channel}`: template: {reason}")]
    Template {
        /// Channel name.
        channel: String,
        /// Why (with the template's line).
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for alert channels: {0}")]
    Http(#[source] reqwest::Error),
}

/// The HTTP client the channels share: a per-request timeout, no redirects (the URLs carry
/// secrets, and a redirected POST would silently turn into a GET; `crate::redirect`).
pub fn http_client(options: &ChannelOptions) -> Result<reqwest::Client, ChannelError> {
    reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .redirect(crate::redirect::policy())
        .user_agent(concat!("watchpost/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ChannelError::Http)
}

/// A response, read (body capped) so the channel can classify it.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) retry_after: Option<Duration>,
    pub(super) body: String,
    /// For a `3xx`: the reason naming where it pointed (`crate::redirect::refused`).
    pub(super) redirect: Option<String>,
}

/// Most bytes of a response body kept for classification and error messages.
const MAX_BODY: usize = 16 * 1024;

/// POSTs JSON; `Err` is a transport failure as a reason without the URL.
pub(super) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &(impl Serialize + ?Sized),
) -> Result<Reply, String> {
    send(client.post(url).json(body), url).await
}

/// Sends a request built for `url` (a form, extra headers); `Err` is a transport failure as a
/// reason without the URL.
pub(super) async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<Reply, String> {
    let response = request.send().await.map_err(|err| transport_reason(&err))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()));
    let redirect = crate::redirect::refused(
        status,
        response.headers().get(reqwest::header::LOCATION),
        url,
    );
    let bytes = response.bytes().await.unwrap_or_default();
    let body = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
    Ok(Reply {
        status,
        retry_after,
        body,
        redirect,
    })
}

/// A reqwest error as a sentence, without the URL (it may hold a token).
pub(super) fn transport_reason(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut reason = kind.to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !reason.ends_with(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    reason
}

/// `Retry-After`: seconds, or an HTTP date.
pub(super) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

/// The usual reading of an HTTP status for a JSON POST: 2xx sent; 3xx (not followed), 408,
/// 425, 429 and 5xx retried (honouring `Retry-After`); other statuses permanent.
pub(super) fn classify(reply: &Reply) -> Delivery {
    let status = reply.status;
    if status.is_success() {
        return Delivery::Sent;
    }
    let reason = describe(reply);
    let transient = status.is_server_error()
        || matches!(status.as_u16(), 408 | 425 | 429)
        || status.is_informational()
        || status.is_redirection();
    if transient {
        Delivery::Retry {
            after: reply.retry_after,
            reason,
        }
    } else {
        Delivery::Permanent { reason }
    }
}

/// `HTTP 500 Internal Server Error: <start of the body>`; for a redirect, where it pointed.
pub(super) fn describe(reply: &Reply) -> String {
    if let Some(redirect) = &reply.redirect {
        return redirect.clone();
    }
    let body: String = reply
        .body
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let body = body.trim();
    if body.is_empty() {
        format!("HTTP {}", reply.status)
    } else {
        format!("HTTP {}: {body}", reply.status)
    }
}

/// `Debug` for a URL that may hold a secret: scheme and host only.
pub(super) struct RedactedUrl<'a>(pub(super) &'a str);

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", self.0));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        write!(f, "\"{scheme}://{host}/***\"")
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, retry_after: Option<u64>) -> Reply {
        let status = StatusCode::from_u16(status).unwrap();
        Reply {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: String::new(),
            redirect: crate::redirect::refused(
                status,
                Some(&reqwest::header::HeaderValue::from_static(
                    "https://new.example/hook",
                )),
                "https://old.example/hook",
            ),
        }
    }

    #[test]
    fn classifies_statuses() {
        let retry = |after: Option<u64>, status: u16| Delivery::Retry {
            after: after.map(Duration::from_secs),
            reason: describe(&reply(status, after)),
        };
        let permanent = |status: u16| Delivery::Permanent {
            reason: describe(&reply(status, None)),
        };
        let cases = [
            (reply(200, None), Delivery::Sent),
            (reply(204, None), Delivery::Sent),
            (reply(429, Some(7)), retry(Some(7), 429)),
            (reply(503, None), retry(None, 503)),
            (reply(408, None), retry(None, 408)),
            (reply(404, None), permanent(404)),
            (reply(401, None), permanent(401)),
            (reply(301, None), retry(None, 301)),
            (reply(307, Some(5)), retry(Some(5), 307)),
        ];
        for (reply, want) in cases {
            assert_eq!(classify(&reply), want, "{}", reply.status);
        }
    }

    #[test]
    fn parses_retry_after() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn redacts_urls_in_debug() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET?x=1";
        let shown = format!("{:?}", RedactedUrl(url));
        assert_eq!(shown, "\"https://hooks.slack.com/***\"");
        let shown = format!("{:?}", RedactedUrl("http://user:pw@host:9/x"));
        assert_eq!(shown, "\"http://host:9/***\"");
    }
}
