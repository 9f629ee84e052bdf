//! The configured channels: which kind delivers a payload ([`Channel`]), built from the config.
//! Each kind delivers one payload to one destination and says how it went ([`Delivery`],
//! `send.rs`). Channels never retry, sleep or pace on their own (the dispatcher does, from the
//! outcome), and never print or log a secret: bot tokens and webhook URLs are kept in
//! [`Secret`](crate::config::Secret)s and `Debug` shows only what is safe.

use std::io::Write as _;
use std::time::Duration;

use super::alertmanager::Alertmanager;
use super::discord::Discord;
use super::email::Email;
use super::format;
use super::google_chat::GoogleChat;
use super::ntfy::Ntfy;
use super::pace::Pace;
use super::pagerduty::PagerDuty;
use super::pushover::{Pushover, PushoverSettings};
use super::send::{ChannelError, ChannelOptions, Delivery};
use super::slack::Slack;
use super::teams::Teams;
use super::telegram::Telegram;
use super::template::{self, Template};
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
    /// ntfy topic.
    Ntfy(Ntfy),
    /// Pushover messages API.
    Pushover(Pushover),
    /// PagerDuty Events API v2.
    PagerDuty(PagerDuty),
    /// Discord webhook.
    Discord(Discord),
    /// Microsoft Teams Workflows webhook.
    Teams(Teams),
    /// Google Chat incoming webhook.
    GoogleChat(GoogleChat),
    /// One line on stdout.
    Log(Log),
}

/// The channel's compiled `template`, if it has one. The config checked it already; a
/// `config::Channel` built in code is checked here.
fn compile_template(channel: &config::Channel) -> Result<Option<Template>, ChannelError> {
    let Some(source) = &channel.template else {
        return Ok(None);
    };
    let error = |reason: String| ChannelError::Template {
        channel: channel.name.clone(),
        reason,
    };
    let markup = channel.kind.markup().ok_or_else(|| {
        error(format!(
            "a `{}` channel takes no template",
            channel.kind.type_name()
        ))
    })?;
    Template::compile(source, markup)
        .map(Some)
        .map_err(|e| error(e.to_string()))
}

/// The `log` channel: one line per payload on stdout.
#[derive(Debug)]
pub struct Log {
    name: String,
    template: Option<Template>,
}

impl Log {
    /// A `log` channel named `name`.
    pub fn new(name: impl Into<String>) -> Log {
        Log {
            name: name.into(),
            template: None,
        }
    }

    fn send(&self, payload: &Payload) -> Delivery {
        let line = template::text(
            self.template.as_ref(),
            &self.name,
            payload,
            format::log_line,
        );
        // One line per alert, whatever the template wrote.
        let line: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
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
    /// (see [`http_client`](super::http_client)).
    pub fn from_config(
        channel: &config::Channel,
        client: &reqwest::Client,
        options: &ChannelOptions,
    ) -> Result<Channel, ChannelError> {
        let name = channel.name.clone();
        let template = compile_template(channel)?;
        let client = client.clone();
        Ok(match &channel.kind {
            ChannelKind::Webhook { url } => {
                Channel::Webhook(Webhook::new(name, url.clone(), client))
            }
            ChannelKind::Telegram {
                bot_token,
                chat_id,
                api_url,
            } => Channel::Telegram(
                Telegram::new(name, api_url, bot_token.clone(), chat_id, client)
                    .with_template(template),
            ),
            ChannelKind::Slack { url } => {
                Channel::Slack(Slack::new(name, url.clone(), client).with_template(template))
            }
            ChannelKind::Alertmanager { urls } => {
                Channel::Alertmanager(Alertmanager::new(name, urls.clone(), client, options))
            }
            ChannelKind::Email {
                smtp_url,
                username,
                password,
                from,
                to,
            } => Channel::Email(
                Email::new(
                    name,
                    smtp_url,
                    username.as_ref(),
                    password.as_ref(),
                    from,
                    to,
                    options.timeout,
                )?
                .with_template(template),
            ),
            ChannelKind::Ntfy {
                url,
                token,
                priority,
            } => Channel::Ntfy(Ntfy::new(
                name,
                url.clone(),
                token.clone(),
                *priority,
                template,
                client,
            )),
            ChannelKind::Pushover {
                app_token,
                user_key,
                priority,
                retry,
                expire,
                api_url,
            } => {
                let settings = PushoverSettings {
                    api_url: api_url.clone(),
                    app_token: app_token.clone(),
                    user_key: user_key.clone(),
                    priority: *priority,
                    retry: *retry,
                    expire: *expire,
                };
                Channel::Pushover(Pushover::new(name, settings, template, client))
            }
            ChannelKind::PagerDuty {
                routing_key,
                events_url,
            } => Channel::PagerDuty(PagerDuty::new(
                name,
                events_url,
                routing_key.clone(),
                template,
                client,
            )),
            ChannelKind::Discord { url, wait } => {
                Channel::Discord(Discord::new(name, url.clone(), *wait, template, client))
            }
            ChannelKind::Teams { url } => {
                Channel::Teams(Teams::new(name, url.clone(), template, client))
            }
            ChannelKind::GoogleChat { url } => {
                Channel::GoogleChat(GoogleChat::new(name, url.clone(), template, client))
            }
            ChannelKind::Log => Channel::Log(Log { name, template }),
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
            Channel::Ntfy(c) => c.name(),
            Channel::Pushover(c) => c.name(),
            Channel::PagerDuty(c) => c.name(),
            Channel::Discord(c) => c.name(),
            Channel::Teams(c) => c.name(),
            Channel::GoogleChat(c) => c.name(),
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
            Channel::Ntfy(_) => "ntfy",
            Channel::Pushover(_) => "pushover",
            Channel::PagerDuty(_) => "pagerduty",
            Channel::Discord(_) => "discord",
            Channel::Teams(_) => "teams",
            Channel::GoogleChat(_) => "google_chat",
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
            Channel::Ntfy(c) => c.send(payload).await,
            Channel::Pushover(c) => c.send(payload).await,
            Channel::PagerDuty(c) => c.send(payload).await,
            Channel::Discord(c) => c.send(payload).await,
            Channel::Teams(c) => c.send(payload).await,
            Channel::GoogleChat(c) => c.send(payload).await,
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
            // About one message a second: what Slack, Discord (5 per 2 s per webhook), Google
            // Chat (one per second per space) and PagerDuty (120 events a minute per key)
            // allow, and what a phone (ntfy, Pushover) or a Teams channel can take.
            Channel::Slack(_)
            | Channel::Ntfy(_)
            | Channel::Pushover(_)
            | Channel::PagerDuty(_)
            | Channel::Discord(_)
            | Channel::Teams(_)
            | Channel::GoogleChat(_) => Pace::every(options.chat_interval),
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
            Channel::Telegram(_)
                | Channel::Slack(_)
                | Channel::Email(_)
                | Channel::Ntfy(_)
                | Channel::Pushover(_)
                | Channel::Discord(_)
                | Channel::Teams(_)
                | Channel::GoogleChat(_)
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
