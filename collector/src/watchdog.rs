//! The collector's own dead-man's switch (`[watchdog]`): every `interval`, *while the collector
//! is healthy* (the same verdict as `GET /healthz`: store writable, sweeper, dispatcher and
//! probe tasks running), it sends a heartbeat to an external service such as healthchecks.io
//! or an Uptime Kuma push monitor. When the collector is unhealthy, hung or dead, the heartbeats
//! stop and that service raises the alarm: the one failure a collector cannot report itself.
//!
//! *Must never* send a heartbeat while unhealthy, catch up on missed heartbeats (a burst after a
//! stall would hide the stall), or show the URL anywhere: whoever has it can keep the switch
//! quiet, so it is a secret like a token. For the same reason it follows no redirect (which
//! would hand the URL to another host as `Referer`): a `3xx` is logged as a failure naming the
//! new location, and the next interval tries again.

use std::time::Duration;

use chrono::Utc;
use tokio::time::MissedTickBehavior;

use crate::config::{Watchdog, WatchdogMethod};
use crate::health::HealthSources;

/// A heartbeat request may take at most this long (or the interval, if shorter).
const MAX_REQUEST_TIME: Duration = Duration::from_secs(10);

/// Sends heartbeats until `shutdown` resolves. The first goes out at once if healthy.
pub async fn run(config: Watchdog, health: HealthSources, shutdown: impl Future<Output = ()>) {
    let timeout = config.interval.min(MAX_REQUEST_TIME);
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .redirect(crate::redirect::policy())
        .user_agent(concat!("watchpost/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the watchdog HTTP client; no heartbeats");
            return;
        }
    };
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Log changes, not every interval: a person reads these lines.
    let mut last = Outcome::Sent;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = ticks.tick() => {}
        }
        let report = health.check(Utc::now());
        let outcome = if report.healthy() {
            let request = match config.method {
                WatchdogMethod::Get => client.get(config.url.expose()),
                WatchdogMethod::Post => client.post(config.url.expose()).json(&report),
            };
            let sent = tokio::select! {
                biased;
                () = &mut shutdown => break,
                sent = request.send() => sent,
            };
            match sent {
                Ok(response) if response.status().is_success() => Outcome::Sent,
                // Not followed: the URL is a secret (`crate::redirect`).
                Ok(response) => Outcome::Failed(
                    crate::redirect::refused(
                        response.status(),
                        response.headers().get(reqwest::header::LOCATION),
                        config.url.expose(),
                    )
                    .unwrap_or_else(|| format!("HTTP {}", response.status())),
                ),
                Err(error) => Outcome::Failed(reason(&error)),
            }
        } else {
            Outcome::Withheld(report.problems().join("; "))
        };
        if outcome != last {
            match &outcome {
                Outcome::Sent => tracing::info!("watchdog heartbeats are going out"),
                Outcome::Failed(why) => {
                    tracing::warn!(problem = %why, "watchdog heartbeat not accepted");
                }
                Outcome::Withheld(why) => tracing::warn!(
                    problem = %why,
                    "collector unhealthy: watchdog heartbeats withheld until it recovers"
                ),
            }
        }
        last = outcome;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Sent,
    Failed(String),
    Withheld(String),
}

/// A reqwest error without its URL.
fn reason(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut innermost = None;
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        innermost = Some(current);
        cause = current.source();
    }
    match innermost {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_owned(),
    }
}
