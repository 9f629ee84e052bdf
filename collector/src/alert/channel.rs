//! The configured channels: which kind delivers a payload ([`Channel`]), built from the config.
//! Each kind delivers one payload to one destination and says how it went ([`Delivery`],
//! `send.rs`). Channels never retry, sleep or pace on their own (the dispatcher does, from the
//! outcome), and never print or log a secret: bot tokens and webhook URLs are kept in
//! [`Secret`](crate::config::Secret)s and `Debug` shows only what is safe.

use std::io::Write as _;
use std::time::Duration;

use super::alertmanager::Alertmanager;
use super::email::Email;
use super::format;
use super::pace::Pace;
use super::send::{ChannelError, ChannelOptions, Delivery};
use super::slack::Slack;
use super::telegram::Telegram;
use super::webhook::Webhook;
use crate::config::{self, ChannelKind};
use crate::engine::alerting::Payload;

/// A configured destination.
#[derive(Debug)]
pub enum Channel {
    /// POSTs the alert JSON.
    Webhook(Webhook),
    /// Telegram Bot API.
    Telegram(Telegram),
    /// Slack incoming webhook.
    Slack(Slack),
    /// Prometheus Alertmanager.
    Alertmanager(Alertmanager),
    /// SMTP email.
    Email(Email),
    /// One line on stdout.
    Log(Log),
}

/// The `log` channel: one line per payload on stdout.
#[derive(Debug)]
pub struct Log {
    name: String,
}

impl Log {
    /// A `log` channel named `name`.
    pub fn new(name: impl Into<String>) -> Log {
        Log { name: name.into() }
    }

    fn send(&self, payload: &Payload) -> Delivery {
        let line = format::log_line(payload);
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Ok(()) => Delivery::Sent,
            Err(err) => Delivery::Retry {
                after: None,
                reason: format!("cannot write to stdout: {err}"),
            },
        }
    }
}

impl Channel {
    /// Builds a channel from its `[[channels]]` entry. `client` is shared by all HTTP channels
    /// (see [`http_client`]).
    pub fn from_config(
        channel: &config::Channel,
        client: &reqwest::Client,
        options: &ChannelOptions,
    ) -> Result<Channel, ChannelError> {
        let name = channel.name.clone();
        Ok(match &channel.kind {
            ChannelKind::Webhook { url } => {
                Channel::Webhook(Webhook::new(name, url.clone(), client.clone()))
            }
            ChannelKind::Telegram {
                bot_token,
                chat_id,
                api_url,
            } => Channel::Telegram(Telegram::new(
                name,
                api_url,
                bot_token.clone(),
                chat_id,
                client.clone(),
            )),
            ChannelKind::Slack { url } => {
                Channel::Slack(Slack::new(name, url.clone(), client.clone()))
            }
            ChannelKind::Alertmanager { urls } => Channel::Alertmanager(Alertmanager::new(
                name,
                urls.clone(),
                client.clone(),
                options,
            )),
            ChannelKind::Email {
                smtp_url,
                username,
                password,
                from,
                to,
            } => Channel::Email(Email::new(
                name,
                smtp_url,
                username.as_ref(),
                password.as_ref(),
                from,
                to,
                options.timeout,
            )?),
            ChannelKind::Log => Channel::Log(Log::new(name)),
        })
    }

    /// The channel's name (rules refer to it).
    pub fn name(&self) -> &str {
        match self {
            Channel::Webhook(c) => c.name(),
            Channel::Telegram(c) => c.name(),
            Channel::Slack(c) => c.name(),
            Channel::Alertmanager(c) => c.name(),
            Channel::Email(c) => c.name(),
            Channel::Log(c) => &c.name,
        }
    }

    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Telegram(_) => "telegram",
            Channel::Slack(_) => "slack",
            Channel::Alertmanager(_) => "alertmanager",
            Channel::Email(_) => "email",
            Channel::Log(_) => "log",
        }
    }

    /// Delivers one payload, once.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        match self {
            Channel::Webhook(c) => c.send(payload).await,
            Channel::Telegram(c) => c.send(payload).await,
            Channel::Slack(c) => c.send(payload).await,
            Channel::Alertmanager(c) => c.send(payload).await,
            Channel::Email(c) => c.send(payload).await,
            Channel::Log(c) => c.send(payload),
        }
    }

    /// Its rate limit.
    pub fn pace(&self, options: &ChannelOptions) -> Pace {
        match self {
            Channel::Telegram(c) => Pace::telegram(
                &c.chat_id(),
                options.telegram_chat_interval,
                options.telegram_group_limit,
            ),
            Channel::Slack(_) => Pace::every(options.slack_interval),
            Channel::Email(_) => Pace::every(options.email_interval),
            Channel::Webhook(_) | Channel::Alertmanager(_) | Channel::Log(_) => Pace::UNLIMITED,
        }
    }

    /// The key its pace is shared under: two channels writing to one Telegram chat share the
    /// chat's limit. Never contains a secret.
    pub fn destination(&self) -> String {
        match self {
            Channel::Telegram(c) => format!("telegram:{}", c.chat_id()),
            other => format!("{}:{}", other.type_name(), other.name()),
        }
    }

    /// Whether a backlog may be collapsed into a digest: only for channels a person reads.
    /// Machine consumers (webhook, Alertmanager, the log) always get every alert as it is.
    pub fn digests(&self) -> bool {
        matches!(
            self,
            Channel::Telegram(_) | Channel::Slack(_) | Channel::Email(_)
        )
    }

    /// How often [`Channel::tick`] must run, for channels with periodic work.
    pub fn tick_interval(&self) -> Option<Duration> {
        match self {
            Channel::Alertmanager(c) => Some(c.resend_interval()),
            _ => None,
        }
    }

    /// Periodic work: Alertmanager re-sends firing alerts. Failures are logged; the next tick
    /// tries again.
    pub async fn tick(&self) {
        if let Channel::Alertmanager(c) = self {
            c.resend().await;
        }
    }
}
