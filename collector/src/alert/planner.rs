//! From effects to outbox deliveries: the [`Planner`] builds the alert of each monitor, issue
//! and probe effect (`engine::alerting`), routes it through the rules ([`plan`]), and wakes the
//! dispatcher once the deliveries are durable.
//!
//! It writes nothing: whoever commits the state change puts the deliveries into that same
//! transaction (the processor for monitors and issues, the prober for probes), so an alert
//! exists exactly when the change that caused it does. It decides nothing either: what an
//! alert says is `engine::alerting`'s, where it goes the rules'.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::dispatch::{DispatchHandle, NewDelivery, plan};
use crate::ack::{AckKeys, LINK_TTL};
use crate::config::Config;
use crate::dependencies::Dependencies;
use crate::engine::alerting::{self, Alert, AlertKind, Links, Rule};
use crate::engine::dependencies::{self, Fold, Node};
use crate::engine::issues::{IssueEffect, SpikeRule};
use crate::engine::maintenance::{self, Window};
use crate::engine::oncall::{self, Repeat, Repeats};
use crate::engine::probes::{ProbeEffect, ProbeNotice, ProbeState};
use crate::engine::{Effect, Incident, Issue, MonitorEnv, Outage, Transition};

/// The rules and links alerts are planned with, and the dispatcher to wake. Shared by the
/// processor and the prober.
#[derive(Debug)]
pub struct Planner {
    rules: Vec<Rule>,
    spike_rules: Vec<SpikeRule>,
    repeats: Repeats,
    /// `[[maintenance]]` windows: incidents opening inside one are held until its end.
    windows: Vec<Window>,
    links: Links,
    /// Signs the acknowledge links of alerts about open incidents; none: no links.
    ack_keys: Option<Arc<AckKeys>>,
    /// `depends_on`: whose alerts are held while what they depend on is failing.
    dependencies: Dependencies,
    dispatcher: Option<DispatchHandle>,
}

impl Planner {
    /// Plans with `rules` (none: the default rule) and `spike_rules`, linking to the dashboard
    /// at `links`. Wakes nobody until [`Planner::waking`] names a dispatcher.
    pub fn new(rules: Vec<Rule>, spike_rules: Vec<SpikeRule>, links: Links) -> Planner {
        Planner {
            repeats: Repeats::of_rules(&rules),
            rules,
            spike_rules,
            windows: Vec::new(),
            links,
            ack_keys: None,
            dependencies: Dependencies::default(),
            dispatcher: None,
        }
    }

    /// Puts an acknowledge link signed with `keys` on every alert about an open,
    /// unacknowledged monitor incident.
    pub fn with_ack_links(mut self, keys: Arc<AckKeys>) -> Planner {
        self.ack_keys = Some(keys);
        self
    }

    /// The key acknowledge links are signed with, to check the ones that come back.
    pub fn ack_keys(&self) -> Option<&AckKeys> {
        self.ack_keys.as_deref()
    }

    /// Checks incidents against these `[[maintenance]]` windows: one that opens inside a
    /// window is held until its end.
    pub fn with_maintenance(mut self, windows: Vec<Window>) -> Planner {
        self.windows = windows;
        self
    }

    /// Holds the alerts of monitors and probes while what they depend on is failing
    /// (`depends_on`).
    pub(crate) fn with_dependencies(mut self, dependencies: Dependencies) -> Planner {
        self.dependencies = dependencies;
        self
    }

    /// The `depends_on` graph, for the processor and the prober to read dependency states.
    pub(crate) fn dependencies(&self) -> &Dependencies {
        &self.dependencies
    }

    /// Follows up the incidents `transition` opens (`engine::oncall::arm`): held while the
    /// monitor is quiet (a window, a snooze) or `blocked` (a dependency is failing: held until
    /// that recheck), else their first repeat set. Called before [`Planner::monitor`], so the
    /// state stored carries the deadline and the effect says whether to announce.
    pub fn arm_repeats(
        &self,
        transition: &mut Transition,
        blocked: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let quiet = maintenance::quiet_until(&self.windows, &transition.monitor, now);
        oncall::arm(
            transition,
            &self.repeats,
            dependencies::later(quiet, blocked),
        );
    }

    /// What is due for a [`crate::engine::DeadlineKind::Repeat`] deadline of `monitor`: a
    /// repeat, or a held alert released (or held on, while quiet or `blocked`).
    pub fn sweep_repeat(
        &self,
        monitor: &MonitorEnv,
        blocked: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<Repeat> {
        let quiet = maintenance::quiet_until(&self.windows, monitor, now);
        oncall::sweep_repeat(
            monitor,
            &self.repeats,
            dependencies::later(quiet, blocked),
            now,
        )
    }

    /// The deliveries of a follow-up: a released alert through every rule, or a repeat
    /// through the rules whose interval came round. A repeat names `dependents`, the monitors
    /// and probes failing with their alerts held for this one (`depends_on`).
    pub(crate) fn repeat(
        &self,
        repeat: &Repeat,
        dependents: Option<&Fold>,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        if repeat.released {
            let mut alert = self.released_alert(repeat, now);
            self.link(&mut alert, &repeat.incident, now);
            return plan(&self.rules, &alert, None);
        }
        if repeat.rules.is_empty() {
            return Vec::new();
        }
        let rules: Vec<Rule> = self
            .rules
            .iter()
            .filter(|rule| repeat.rules.contains(&rule.name))
            .cloned()
            .collect();
        let mut alert = alerting::repeat_alert(&repeat.incident, &repeat.monitor, &self.links, now);
        if let Some(fold) = dependents {
            alerting::fold_into(&mut alert, fold);
        }
        self.link(&mut alert, &repeat.incident, now);
        plan(&rules, &alert, None)
    }

    /// The alert of a hold released: after a dependency recovered when the monitor has
    /// dependencies and no maintenance window or snooze covered the incident's opening,
    /// else after a quiet time.
    fn released_alert(&self, repeat: &Repeat, now: DateTime<Utc>) -> Alert {
        let node = Node::Monitor(repeat.monitor.key.slug.clone());
        let opened = repeat.incident.opened_at;
        let quiet_then = maintenance::quiet_until(&self.windows, &repeat.monitor, opened);
        if self.dependencies.has_dependencies(&node) && quiet_then.is_none() {
            return alerting::released_after_dependency(
                &repeat.incident,
                &repeat.monitor,
                &self.dependencies.names(&node),
                &self.links,
                now,
            );
        }
        alerting::released_alert(&repeat.incident, &repeat.monitor, &self.links, now)
    }

    /// The deliveries of a probe's down alert held for a dependency and released now.
    pub(crate) fn probe_released(
        &self,
        notice: &ProbeNotice,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        let names = self.dependencies.names(&Node::Probe(notice.name.clone()));
        let alert = alerting::probe_released_alert(notice, &names, &self.links, now);
        plan(&self.rules, &alert, None)
    }

    /// Whether the probe `state` is quiet at `now`: snoozed, or inside a `[[maintenance]]`
    /// window that names it (`probe = "glob"`). Its alerts are held then.
    pub(crate) fn probe_quiet(&self, state: &ProbeState, now: DateTime<Utc>) -> bool {
        maintenance::probe_quiet_until(&self.windows, state, now).is_some()
    }

    /// The deliveries of a probe's down alert held while it was snoozed and released now that
    /// the snooze is over (it is still down): the plain `probe.down`, with its incident and
    /// acknowledge link.
    pub(crate) fn probe_unsnoozed(
        &self,
        notice: &ProbeNotice,
        incident: &Incident,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        let mut alert = alerting::probe_alert(notice, &self.links, now);
        alerting::note_probe_incident(&mut alert, incident);
        self.link(&mut alert, incident, now);
        plan(&self.rules, &alert, None)
    }

    /// The deliveries of a down probe's follow-up naming its failing dependents (`fold`).
    pub(crate) fn probe_follow_up(
        &self,
        notice: &ProbeNotice,
        fold: &Fold,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        let mut alert = alerting::probe_alert(notice, &self.links, now);
        alerting::fold_into(&mut alert, fold);
        plan(&self.rules, &alert, None)
    }

    /// The deliveries of `monitor.acknowledged` for `incident`, just acknowledged.
    pub fn acknowledged(
        &self,
        incident: &Incident,
        monitor: &MonitorEnv,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        let alert = alerting::acknowledged_alert(incident, monitor, &self.links, now);
        plan(&self.rules, &alert, None)
    }

    /// Adds the acknowledge link to a failure alert about an open, unacknowledged incident.
    fn link(&self, alert: &mut Alert, incident: &Incident, now: DateTime<Utc>) {
        let open = incident.resolved_at.is_none() && incident.handling.acknowledged.is_none();
        if let Some(keys) = &self.ack_keys
            && open
            && matches!(alert.kind, AlertKind::MonitorFailed | AlertKind::ProbeDown)
        {
            let token = keys.token(incident.id, now + LINK_TTL);
            alert.acknowledge_url = Some(self.links.acknowledge(&token));
        }
    }

    /// The default rule only (everything to `log`), no spike rules, links to a collector on
    /// the default address: what a config without `[[rules]]` plans, for tests and benches.
    pub fn default_rule() -> Planner {
        Planner::new(
            Vec::new(),
            Vec::new(),
            Links::new(&format!("http://{}", crate::config::DEFAULT_LISTEN)),
        )
    }

    /// The `[[rules]]` of the config, with dashboard links under `public_url`.
    pub fn from_config(config: &Config, public_url: &str) -> Planner {
        Planner::new(
            rules_from_config(config),
            spike_rules_from_config(config),
            Links::new(public_url),
        )
        .with_maintenance(config.maintenance.clone())
        .with_dependencies(Dependencies::from_config(config))
    }

    /// Wakes `dispatcher` after deliveries were made durable.
    pub fn waking(mut self, dispatcher: DispatchHandle) -> Planner {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// The `issue.spike` rules, for `engine::issues::process_event`.
    pub fn spike_rules(&self) -> &[SpikeRule] {
        &self.spike_rules
    }

    /// The deliveries of a monitor effect; `monitor` is the environment's state after the
    /// transition that caused it, `outage` the collector's outage its deadline fell near. None
    /// when the effect is not announced (muted).
    pub fn monitor(
        &self,
        effect: &Effect,
        monitor: &MonitorEnv,
        outage: Option<&Outage>,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        let Some(mut alert) = alerting::monitor_alert(effect, monitor, outage, &self.links, now)
        else {
            return Vec::new();
        };
        if let Effect::IncidentOpened { incident, .. } = effect {
            self.link(&mut alert, incident, now);
        }
        plan(&self.rules, &alert, None)
    }

    /// The deliveries of an issue effect; `issue` is the issue after the event.
    pub fn issue(
        &self,
        effect: &IssueEffect,
        issue: &Issue,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        let alert = alerting::issue_alert(effect, issue, &self.links, now);
        let spike_rule = match effect {
            IssueEffect::Spike { rule, .. } => Some(rule.as_str()),
            IssueEffect::FirstSeen | IssueEffect::Regressed { .. } => None,
        };
        plan(&self.rules, &alert, spike_rule)
    }

    /// The deliveries of a probe effect. None when it is not announced (a probe that left the
    /// config is resolved silently).
    pub fn probe(&self, effect: &ProbeEffect, now: DateTime<Utc>) -> Vec<NewDelivery> {
        let announced = match &effect.effect {
            Effect::IncidentOpened { notify, .. } | Effect::IncidentResolved { notify, .. } => {
                *notify
            }
        };
        if !announced {
            return Vec::new();
        }
        let mut alert = alerting::probe_alert(&effect.notice, &self.links, now);
        let (Effect::IncidentOpened { incident, .. } | Effect::IncidentResolved { incident, .. }) =
            &effect.effect;
        alerting::note_probe_incident(&mut alert, incident);
        self.link(&mut alert, incident, now);
        plan(&self.rules, &alert, None)
    }

    /// The deliveries of `probe.acknowledged`: `incident` as acknowledged, `down` what the
    /// probe's down alert says now (its last check).
    pub fn probe_acknowledged(
        &self,
        incident: &Incident,
        down: &ProbeNotice,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        let alert = alerting::probe_acknowledged_alert(incident, down, &self.links, now);
        plan(&self.rules, &alert, None)
    }

    /// New deliveries are durable: every channel worker looks at the outbox now instead of at
    /// its next poll.
    pub fn wake(&self) {
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher.wake_all();
        }
    }
}

/// The routing rules of the config; the default rule (everything to `log`) when there are
/// none.
fn rules_from_config(config: &Config) -> Vec<Rule> {
    if config.rules.is_empty() {
        return alerting::default_rules();
    }
    config.rules.iter().map(|rule| rule.route.clone()).collect()
}

/// The `issue.spike` rules, for `engine::issues::process_event`.
fn spike_rules_from_config(config: &Config) -> Vec<SpikeRule> {
    config
        .rules
        .iter()
        .filter_map(|rule| rule.spike.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::engine::alerting::{AlertKind, Payload};
    use crate::engine::issues::process_event;

    fn planner() -> Planner {
        let rules = vec![
            Rule {
                name: "errors".to_owned(),
                on: vec![AlertKind::IssueFirstSeen, AlertKind::IssueSpike],
                channels: vec!["tg".to_owned(), "hook".to_owned()],
                repeat: None,
            },
            Rule {
                name: "burst".to_owned(),
                on: vec![AlertKind::IssueSpike],
                channels: vec!["pager".to_owned()],
                repeat: None,
            },
        ];
        let spikes = vec![SpikeRule {
            name: "burst".to_owned(),
            threshold: 1,
            window: std::time::Duration::from_secs(60),
        }];
        Planner::new(rules, spikes, Links::new("http://watchpost.example"))
    }

    #[test]
    fn an_issue_effect_goes_to_every_channel_of_its_rules_and_a_spike_only_by_its_own() {
        let planner = planner();
        let event: watchpost_protocol::Event = serde_json::from_value(serde_json::json!({
            "event_id": "0123456789abcdef0123456789abcdef",
            "timestamp": 1_777_636_800,
            "message": "disk full",
        }))
        .unwrap();
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        let (issue, effects) = process_event(None, &event, 1, now, planner.spike_rules());
        assert_eq!(effects, [IssueEffect::FirstSeen]);
        let first = planner.issue(&effects[0], &issue, now);
        let channels: Vec<&str> = first.iter().map(|d| d.channel.as_str()).collect();
        assert_eq!(channels, ["tg", "hook"]);

        let (issue, effects) = process_event(Some(issue), &event, 1, now, planner.spike_rules());
        let spike = planner.issue(&effects[0], &issue, now);
        let routes: Vec<(&str, &str)> = spike
            .iter()
            .map(|d| (d.rule.as_str(), d.channel.as_str()))
            .collect();
        assert_eq!(routes, [("burst", "pager")]);
        let Payload::Alert(alert) = &spike[0].payload else {
            panic!("an alert")
        };
        assert_eq!(alert.kind, AlertKind::IssueSpike);
        assert_eq!(
            alert.url,
            format!("http://watchpost.example/issues/{}", issue.id)
        );
    }
}
