//! The `alertmanager` channel: `POST {url}/api/v2/alerts` with a JSON array, to every listed
//! URL (Alertmanager replicas do not share alerts, so each must get each one).
//!
//! Labels are the alert's identity, the same for the firing alert and its resolution:
//! `alertname` (the kind family: `WatchpostMonitorFailed`, `WatchpostProbeDown`,
//! `WatchpostIssueFirstSeen`, …), `severity` (fixed per family), `project`, and `slug` +
//! `environment`, or `issue_id`, or `probe`. `monitor.failed` / `probe.down` fire without
//! `endsAt` and are re-sent every `alertmanager_resend` until `monitor.recovered` / `probe.up`
//! sends them with `endsAt`; the resolution is re-sent for `alertmanager_resolved_for`. Issue
//! alerts have no resolution: they go once with `endsAt` a fixed time after their timestamp.
//!
//! The firing set is in memory: after a restart, firing alerts are not re-sent until the next
//! alert about them, and Alertmanager resolves them on its own after its `resolve_timeout`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::TimeDelta;

use crate::engine::text::rfc3339;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

use super::send::{ChannelOptions, Delivery, RedactedUrl, classify, post_json};
use crate::config::Secret;
use crate::engine::alerting::{Alert, AlertKind, Payload, Severity, Subject};

/// One element of the `POST /api/v2/alerts` array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PostableAlert {
    /// The identity.
    pub labels: BTreeMap<String, String>,
    /// `summary` and `description`.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// When it stopped (absent while firing).
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// The dashboard link.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// An Alertmanager cluster (or several).
pub struct Alertmanager {
    name: String,
    urls: Vec<Secret>,
    client: reqwest::Client,
    resend: Duration,
    resolved_for: Duration,
    event_ttl: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Firing alerts by identity.
    firing: BTreeMap<String, PostableAlert>,
    /// Resolutions still re-sent, with when they were first sent.
    resolved: BTreeMap<String, (PostableAlert, Instant)>,
}

impl Alertmanager {
    /// A channel posting to each of `urls` (base URLs, without `/api/v2/alerts`).
    pub fn new(
        name: String,
        urls: Vec<Secret>,
        client: reqwest::Client,
        options: &ChannelOptions,
    ) -> Alertmanager {
        Alertmanager {
            name,
            urls,
            client,
            resend: options.alertmanager_resend,
            resolved_for: options.alertmanager_resolved_for,
            event_ttl: options.alertmanager_event_ttl,
            state: Mutex::new(State::default()),
        }
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How often firing alerts are re-sent.
    pub fn resend_interval(&self) -> Duration {
        self.resend
    }

    /// Alerts currently firing (what the next re-send posts), by identity.
    pub fn firing(&self) -> Vec<PostableAlert> {
        self.state.lock().firing.values().cloned().collect()
    }

    /// Posts the alert (a digest: each of its subjects' latest alerts) and updates the firing
    /// set. Sent only when every URL accepted it.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        let alerts: Vec<&Alert> = match payload {
            Payload::Alert(alert) => vec![alert],
            Payload::Digest(digest) => digest.entries.iter().map(|e| &e.latest).collect(),
        };
        let batch: Vec<PostableAlert> = {
            let mut state = self.state.lock();
            alerts.iter().map(|a| self.track(&mut state, a)).collect()
        };
        self.post_all(&batch).await
    }

    /// Re-sends firing alerts and recent resolutions to every URL.
    pub async fn resend(&self) {
        let batch: Vec<PostableAlert> = {
            let mut state = self.state.lock();
            let now = Instant::now();
            let keep = self.resolved_for;
            state
                .resolved
                .retain(|_, (_, first)| now.duration_since(*first) < keep);
            state
                .firing
                .values()
                .chain(state.resolved.values().map(|(a, _)| a))
                .cloned()
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Delivery::Retry { reason, .. } | Delivery::Permanent { reason } =
            self.post_all(&batch).await
        {
            tracing::warn!(channel = %self.name, %reason, "re-sending firing alerts to Alertmanager failed");
        }
    }

    /// The postable form of `alert`, recorded in the firing / resolved sets.
    fn track(&self, state: &mut State, alert: &Alert) -> PostableAlert {
        let (identity, labels) = identity(alert);
        let mut postable = PostableAlert {
            labels,
            annotations: BTreeMap::from([
                ("summary".to_owned(), alert.title.clone()),
                ("description".to_owned(), alert.message.clone()),
            ]),
            starts_at: rfc3339(alert.timestamp),
            ends_at: None,
            generator_url: alert.url.clone(),
        };
        match alert.kind {
            AlertKind::MonitorFailed | AlertKind::ProbeDown => {
                state.resolved.remove(&identity);
                state.firing.insert(identity, postable.clone());
            }
            // Alertmanager has no acknowledgement (silences are its own): the alert stays
            // firing since it started, and says who acknowledged it.
            AlertKind::MonitorAcknowledged | AlertKind::ProbeAcknowledged => {
                if let Some(firing) = state.firing.get(&identity) {
                    postable.starts_at = firing.starts_at.clone();
                }
                postable
                    .annotations
                    .insert("acknowledged".to_owned(), alert.title.clone());
                state.resolved.remove(&identity);
                state.firing.insert(identity, postable.clone());
            }
            AlertKind::MonitorRecovered | AlertKind::ProbeUp => {
                if let Some(firing) = state.firing.remove(&identity) {
                    postable.starts_at = firing.starts_at;
                }
                postable.ends_at = Some(rfc3339(alert.timestamp));
                state
                    .resolved
                    .insert(identity, (postable.clone(), Instant::now()));
            }
            AlertKind::IssueFirstSeen | AlertKind::IssueRegressed | AlertKind::IssueSpike => {
                let ttl = TimeDelta::from_std(self.event_ttl).unwrap_or(TimeDelta::MAX);
                let ends = alert
                    .timestamp
                    .checked_add_signed(ttl)
                    .unwrap_or(alert.timestamp);
                postable.ends_at = Some(rfc3339(ends));
            }
        }
        postable
    }

    async fn post_all(&self, batch: &[PostableAlert]) -> Delivery {
        let mut failures: Vec<Delivery> = Vec::new();
        for (i, base) in self.urls.iter().enumerate() {
            let url = format!("{}/api/v2/alerts", base.expose().trim_end_matches('/'));
            let outcome = match post_json(&self.client, &url, batch).await {
                Ok(reply) => classify(&reply),
                Err(reason) => Delivery::Retry {
                    after: None,
                    reason,
                },
            };
            match outcome {
                Delivery::Sent => {}
                Delivery::Retry { after, reason } => failures.push(Delivery::Retry {
                    after,
                    reason: format!("Alertmanager #{}: {reason}", i + 1),
                }),
                Delivery::Permanent { reason } => failures.push(Delivery::Permanent {
                    reason: format!("Alertmanager #{}: {reason}", i + 1),
                }),
            }
        }
        // Any replica that may still take it is worth a retry (re-posting is idempotent:
        // Alertmanager merges by labels); all refusing for good is permanent.
        let permanent = failures
            .iter()
            .all(|f| matches!(f, Delivery::Permanent { .. }));
        let reasons: Vec<String> = failures
            .iter()
            .map(|f| match f {
                Delivery::Retry { reason, .. } | Delivery::Permanent { reason } => reason.clone(),
                Delivery::Sent => String::new(),
            })
            .collect();
        let after = failures
            .iter()
            .filter_map(|f| match f {
                Delivery::Retry { after, .. } => *after,
                _ => None,
            })
            .max();
        match (failures.is_empty(), permanent) {
            (true, _) => Delivery::Sent,
            (false, true) => Delivery::Permanent {
                reason: reasons.join("; "),
            },
            (false, false) => Delivery::Retry {
                after,
                reason: reasons.join("; "),
            },
        }
    }
}

/// The identity key and labels of an alert: equal for a firing alert and its resolution.
fn identity(alert: &Alert) -> (String, BTreeMap<String, String>) {
    let alertname = match alert.kind {
        AlertKind::MonitorFailed | AlertKind::MonitorRecovered | AlertKind::MonitorAcknowledged => {
            "WatchpostMonitorFailed"
        }
        AlertKind::ProbeDown | AlertKind::ProbeUp | AlertKind::ProbeAcknowledged => {
            "WatchpostProbeDown"
        }
        AlertKind::IssueFirstSeen => "WatchpostIssueFirstSeen",
        AlertKind::IssueRegressed => "WatchpostIssueRegressed",
        AlertKind::IssueSpike => "WatchpostIssueSpike",
    };
    let severity = match alert.subject {
        Subject::Monitor(_) | Subject::Probe(_) => Severity::Critical,
        Subject::Issue(_) => alert.severity,
    };
    let mut labels = BTreeMap::from([
        ("alertname".to_owned(), alertname.to_owned()),
        ("severity".to_owned(), severity.as_str().to_owned()),
    ]);
    if let Some(project) = alert.project {
        labels.insert("project".to_owned(), project.to_string());
    }
    match &alert.subject {
        Subject::Monitor(m) => {
            labels.insert("slug".to_owned(), m.slug.clone());
            labels.insert("environment".to_owned(), m.environment.clone());
        }
        Subject::Issue(i) => {
            labels.insert("issue_id".to_owned(), i.id.clone());
        }
        Subject::Probe(p) => {
            labels.insert("probe".to_owned(), p.name.clone());
        }
    }
    let key = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    (key, labels)
}

impl fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<RedactedUrl<'_>> =
            self.urls.iter().map(|u| RedactedUrl(u.expose())).collect();
        f.debug_struct("Alertmanager")
            .field("name", &self.name)
            .field("urls", &urls)
            .field("resend", &self.resend)
            .finish_non_exhaustive()
    }
}
