//! Alert delivery: the effects side of `engine::alerting`. Channels (webhook, Telegram, Slack,
//! Alertmanager, email, log), per-destination pacing and backoff, and the dispatcher that
//! drains the durable outbox one worker per channel.
//!
//! *Architecture invariant:* nothing here decides *what* to alert (that is
//! `engine::alerting`, pure) or touches sled (the store implements [`dispatch::Outbox`]). A
//! delivery leaves the outbox only as `sent`, `failed` (permanent error, visible in the API)
//! or `suppressed` (its content reached the person in another message); secrets never reach
//! a log line, an error message or a `Debug` output.
//!
//! Wiring, as `server.rs` does it:
//! - at start: [`channels_from_config`], a [`Dispatcher`] over the store's [`Outbox`] (wrapped
//!   in a [`MeteredOutbox`] for `/metrics` and `/healthz`), `tokio::spawn(dispatcher.run(..))`,
//!   and a [`Planner`] from the rules that wakes that dispatcher;
//! - per monitor, issue or probe effect: the [`Planner`] builds the
//!   [`Alert`](crate::engine::alerting::Alert) and [`plan`]s its deliveries, the processor (or
//!   the prober) writes them to the outbox in the state change's transaction, and once that is
//!   durable [`Planner::wake`] wakes the workers.

mod alertmanager;
mod backlog;
mod channel;
pub mod dispatch;
mod email;
pub mod format;
mod metered;
mod outbox;
pub mod pace;
mod planner;
mod send;
mod slack;
mod telegram;
mod webhook;

pub use alertmanager::{Alertmanager, PostableAlert};
pub use channel::{Channel, Log};
pub use dispatch::{
    DIGEST_RULE, DeliveryState, DispatchHandle, DispatchOptions, Dispatcher, NewDelivery, Outbox,
    OutboxEntry, OutboxError, plan,
};
pub use email::{Email, Security};
pub use metered::MeteredOutbox;
pub use pace::{Backoff, Pace, Pacer};
pub use planner::Planner;
pub use send::{ChannelError, ChannelOptions, Delivery, http_client};
pub use slack::Slack;
pub use telegram::Telegram;
pub use webhook::Webhook;

use crate::config::Config;
use crate::engine::alerting::{self, Rule};
use crate::engine::issues::SpikeRule;

/// The routing rules of the config; the default rule (everything to `log`) when there are
/// none.
pub fn rules_from_config(config: &Config) -> Vec<Rule> {
    if config.rules.is_empty() {
        return alerting::default_rules();
    }
    config
        .rules
        .iter()
        .map(|rule| Rule {
            name: rule.name.clone(),
            on: rule.on.clone(),
            channels: rule.channels.clone(),
            repeat: rule.repeat,
        })
        .collect()
}

/// The `issue.spike` rules, for `engine::issues::process_event`.
pub fn spike_rules_from_config(config: &Config) -> Vec<SpikeRule> {
    config
        .rules
        .iter()
        .filter_map(|rule| {
            Some(SpikeRule {
                name: rule.name.clone(),
                threshold: rule.threshold?,
                window: rule.window?,
            })
        })
        .collect()
}

/// The configured channels, plus a `log` channel when the config has no rules (the default
/// rule sends there) and defines no channel of that name.
pub fn channels_from_config(
    config: &Config,
    options: &ChannelOptions,
) -> Result<Vec<Channel>, ChannelError> {
    let client = http_client(options)?;
    let mut channels = config
        .channels
        .iter()
        .map(|c| Channel::from_config(c, &client, options))
        .collect::<Result<Vec<_>, _>>()?;
    let has_default = channels
        .iter()
        .any(|c| c.name() == alerting::DEFAULT_CHANNEL);
    if config.rules.is_empty() && !has_default {
        channels.push(Channel::Log(Log::new(alerting::DEFAULT_CHANNEL)));
    }
    Ok(channels)
}
