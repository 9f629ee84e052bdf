//! The `pagerduty` channel: Events API v2, `POST {events_url}/v2/enqueue` with a
//! `routing_key`, an `event_action` (`trigger`, `acknowledge`, `resolve`) and a `dedup_key`
//! (developer.pagerduty.com, "Send an Alert Event").
//!
//! The `dedup_key` is a hash of the alert's subject ([`Alert::subject_key`]: one monitor
//! environment, issue or probe), so the trigger, acknowledgement and resolution of one
//! Watchpost incident reach the same PagerDuty alert, and PagerDuty opens a new one for the
//! next trigger after a resolve: one PagerDuty incident per Watchpost incident. Which action
//! an alert is follows from its kind's dotted name ([`event_action`]).
//!
//! PagerDuty is a machine consumer: the dispatcher never collapses its backlog into a digest
//! (`Channel::digests`). Were it handed one, it sends one event per subject, the subject's
//! latest state, and reports the first that did not go through (the others are repeated on
//! the retry, which PagerDuty deduplicates by key).
//!
//! Answers: `202` is sent; `400` (an event PagerDuty will never take) is permanent; `429`
//! (over the routing key's rate) and `5xx` are retried. The routing key is a secret.

use std::fmt;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::format;
use super::send::{Delivery, classify, post_json};
use super::template::{self, Template};
use crate::config::Secret;
use crate::engine::alerting::{Alert, Payload, Severity, Subject, when};

/// PagerDuty's limit on `payload.summary`, in characters.
pub const PAGERDUTY_SUMMARY_MAX: usize = 1024;

/// A PagerDuty service, through an Events API v2 integration.
pub struct PagerDuty {
    name: String,
    events_url: String,
    routing_key: Secret,
    template: Option<Template>,
    client: reqwest::Client,
}

/// The Events API v2 action for an alert kind, by its dotted name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// Opens (or adds to) the PagerDuty alert of the dedup key.
    Trigger,
    /// Someone is on it.
    Acknowledge,
    /// It is over.
    Resolve,
}

impl EventAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Trigger => "trigger",
            EventAction::Acknowledge => "acknowledge",
            EventAction::Resolve => "resolve",
        }
    }
}

/// `*.acknowledged` acknowledges; `monitor.recovered`, `probe.up` (and any other kind of
/// recovery, `*.recovered`, `*.up`, `*.resolved`) resolve; everything else — `failed`,
/// `down`, `first_seen`, `regressed`, `spike`, and kinds added later — triggers, because a
/// page too many is better than a missed one.
pub fn event_action(kind: &str) -> EventAction {
    let (_, state) = kind.rsplit_once('.').unwrap_or(("", kind));
    match state {
        "acknowledged" => EventAction::Acknowledge,
        "recovered" | "up" | "resolved" => EventAction::Resolve,
        _ => EventAction::Trigger,
    }
}

/// The dedup key of an alert's subject: `watchpost-` and 32 hex digits of its SHA-256, stable
/// across restarts and versions (PagerDuty allows 255 characters; the hash keeps slugs and
/// issue titles out of PagerDuty's key).
pub fn dedup_key(alert: &Alert) -> String {
    let hash = Sha256::digest(alert.subject_key().as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("watchpost-{hex}")
}

impl PagerDuty {
    /// A PagerDuty channel; `events_url` without trailing slash
    /// (`https://events.pagerduty.com`).
    pub fn new(
        name: String,
        events_url: &str,
        routing_key: Secret,
        template: Option<Template>,
        client: reqwest::Client,
    ) -> PagerDuty {
        PagerDuty {
            name,
            events_url: events_url.trim_end_matches('/').to_owned(),
            routing_key,
            template,
            client,
        }
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends the alert's event (a digest: one per subject, see the module docs).
    pub async fn send(&self, payload: &Payload) -> Delivery {
        match payload {
            Payload::Alert(alert) => self.send_alert(alert).await,
            Payload::Digest(digest) => {
                for entry in &digest.entries {
                    let outcome = self.send_alert(&entry.latest).await;
                    if outcome != Delivery::Sent {
                        return outcome;
                    }
                }
                Delivery::Sent
            }
        }
    }

    async fn send_alert(&self, alert: &Alert) -> Delivery {
        let url = format!("{}/v2/enqueue", self.events_url);
        let body = self.event(alert);
        match post_json(&self.client, &url, &body).await {
            Ok(reply) => classify(&reply),
            Err(reason) => Delivery::Retry {
                after: None,
                reason,
            },
        }
    }

    /// The Events API v2 body of one alert.
    fn event(&self, alert: &Alert) -> Value {
        let action = event_action(alert.kind.as_str());
        let mut event = json!({
            "routing_key": self.routing_key.expose(),
            "event_action": action.as_str(),
            "dedup_key": dedup_key(alert),
        });
        if action == EventAction::Trigger {
            let payload = Payload::Alert(alert.clone());
            let summary = template::text(self.template.as_ref(), &self.name, &payload, |_| {
                format!(
                    "{} — {}",
                    alert.title,
                    alert.message.lines().next().unwrap_or("")
                )
            });
            event["payload"] = json!({
                "summary": format::truncate_plain(&summary, PAGERDUTY_SUMMARY_MAX),
                "source": source(alert),
                "severity": severity(alert.severity),
                "timestamp": alert.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "component": alert.subject_name(),
                "group": alert.project.map(|p| format!("project {p}")),
                "class": alert.kind.as_str(),
                "custom_details": {
                    "message": alert.message,
                    "environment": alert.environment,
                    "raised": when(alert.timestamp),
                    "alert": alert,
                },
            });
            event["links"] = json!([{ "href": alert.url, "text": "Open in Watchpost" }]);
            event["client"] = json!("Watchpost");
            event["client_url"] = json!(alert.url);
        }
        event
    }
}

/// PagerDuty's `source`: where the problem is — the monitor environment's id, the probe's URL,
/// the issue's culprit.
fn source(alert: &Alert) -> String {
    match &alert.subject {
        Subject::Monitor(m) => m.id.clone(),
        Subject::Probe(p) => p.url.clone(),
        Subject::Issue(i) => i.culprit.clone().unwrap_or_else(|| i.title.clone()),
    }
}

/// PagerDuty's severities are `critical`, `error`, `warning`, `info`.
fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

impl fmt::Debug for PagerDuty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDuty")
            .field("name", &self.name)
            .field("events_url", &self.events_url)
            .field("routing_key", &"***")
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::alerting::AlertKind;

    #[test]
    fn maps_dotted_kinds_to_actions() {
        let cases = [
            ("monitor.failed", EventAction::Trigger),
            ("probe.down", EventAction::Trigger),
            ("issue.first_seen", EventAction::Trigger),
            ("issue.regressed", EventAction::Trigger),
            ("issue.spike", EventAction::Trigger),
            ("monitor.recovered", EventAction::Resolve),
            ("probe.up", EventAction::Resolve),
            ("monitor.acknowledged", EventAction::Acknowledge),
            ("probe.acknowledged", EventAction::Acknowledge),
            ("incident.acknowledged", EventAction::Acknowledge),
            ("monitor.repeated", EventAction::Trigger),
            ("something", EventAction::Trigger),
        ];
        for (kind, want) in cases {
            assert_eq!(event_action(kind), want, "{kind}");
        }
        for kind in AlertKind::ALL {
            let want = if kind.is_recovery() {
                EventAction::Resolve
            } else if matches!(
                kind,
                AlertKind::MonitorAcknowledged | AlertKind::ProbeAcknowledged
            ) {
                EventAction::Acknowledge
            } else {
                EventAction::Trigger
            };
            assert_eq!(event_action(kind.as_str()), want, "{kind}");
        }
    }
}
