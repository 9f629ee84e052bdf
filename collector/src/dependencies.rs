//! What the engine's dependency rules (`engine::dependencies`) need from the store: the state
//! of a monitor's or probe's dependencies (is one failing?), and the dependents of a failing
//! one whose alerts are held (for its follow-up). Reads only; the processor and the prober
//! decide through the engine and write what it returns in the write set of the change.
//!
//! A monitor named in `depends_on` is every `[[monitors]]` environment declared with that slug:
//! it is failing while any of them has an open incident.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Config, DEFAULT_DEPENDENCY_RECHECK};
use crate::engine::dependencies::{self, DependencyState, FailingDependent, Graph, Node};
use crate::engine::{MonitorEnv, MonitorKey};
use crate::store::{Store, StoreError};

/// The validated `depends_on` graph and the declared monitor environments of each slug.
#[derive(Debug, Clone)]
pub(crate) struct Dependencies {
    graph: Graph,
    monitors: BTreeMap<String, Vec<MonitorKey>>,
    recheck: Duration,
}

impl Default for Dependencies {
    fn default() -> Self {
        Dependencies {
            graph: Graph::default(),
            monitors: BTreeMap::new(),
            recheck: DEFAULT_DEPENDENCY_RECHECK,
        }
    }
}

impl Dependencies {
    /// The `depends_on` of the config's `[[monitors]]` and `[[probes]]`.
    pub(crate) fn from_config(config: &Config) -> Dependencies {
        let mut monitors: BTreeMap<String, Vec<MonitorKey>> = BTreeMap::new();
        for spec in &config.monitors {
            monitors
                .entry(spec.key.slug.clone())
                .or_default()
                .push(spec.key.clone());
        }
        Dependencies {
            graph: config.dependencies.clone(),
            monitors,
            recheck: config.alerts.dependency_recheck,
        }
    }

    /// `[alerts] dependency_recheck`: how often a held dependent looks again, and how long a
    /// burst of failing dependents must settle before it is named.
    pub(crate) fn recheck(&self) -> Duration {
        self.recheck
    }

    /// Whether `node` depends on anything.
    pub(crate) fn has_dependencies(&self, node: &Node) -> bool {
        self.graph.dependencies(node).next().is_some()
    }

    /// Whether anything depends on `node`.
    pub(crate) fn has_dependents(&self, node: &Node) -> bool {
        self.graph.dependents(node).next().is_some()
    }

    /// The names of what `node` depends on, for its messages: `probe database-health`.
    pub(crate) fn names(&self, node: &Node) -> Vec<String> {
        self.graph.dependencies(node).map(Node::to_string).collect()
    }

    /// Until when an alert of `node` is held at `now` because something it depends on is
    /// failing (`engine::dependencies::hold_until`); `None`: nothing holds it.
    pub(crate) fn hold_until(
        &self,
        store: &Store,
        node: &Node,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if !self.has_dependencies(node) {
            return Ok(None);
        }
        let states = self
            .graph
            .dependencies(node)
            .map(|dependency| {
                Ok(DependencyState {
                    node: dependency.clone(),
                    failing_since: self.failing_since(store, dependency)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(dependencies::hold_until(&states, self.recheck, now))
    }

    /// When `node`'s incident opened, while it is failing (the earliest of a monitor's
    /// declared environments).
    fn failing_since(
        &self,
        store: &Store,
        node: &Node,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        match node {
            Node::Probe(name) => Ok(store
                .probe_state(name)?
                .and_then(|state| state.open_incident)
                .map(|incident| incident.opened_at)),
            Node::Monitor(slug) => {
                let mut since = None;
                for monitor in self.declared(store, slug)? {
                    let opened = monitor.open_incident.map(|i| i.opened_at);
                    since = since.into_iter().chain(opened).min();
                }
                Ok(since)
            }
        }
    }

    /// The dependents of `node` failing since `since` or later with their alerts held: what
    /// its follow-up names.
    pub(crate) fn held_dependents(
        &self,
        store: &Store,
        node: &Node,
        since: DateTime<Utc>,
    ) -> Result<Vec<FailingDependent>, StoreError> {
        let mut failing = Vec::new();
        for dependent in self.graph.dependents(node) {
            match dependent {
                Node::Monitor(slug) => {
                    for monitor in self.declared(store, slug)? {
                        let Some(incident) = monitor.open_incident else {
                            continue;
                        };
                        if !incident.notified
                            && incident.handling.held_until.is_some()
                            && incident.opened_at >= since
                        {
                            failing.push(FailingDependent {
                                name: format!("{} ({})", slug, monitor.key.environment),
                                since: incident.opened_at,
                            });
                        }
                    }
                }
                Node::Probe(name) => {
                    let incident = store.probe_state(name)?.and_then(|s| s.open_incident);
                    if let Some(incident) = incident
                        && !incident.notified
                        && incident.opened_at >= since
                    {
                        failing.push(FailingDependent {
                            name: format!("probe {name}"),
                            since: incident.opened_at,
                        });
                    }
                }
            }
        }
        Ok(failing)
    }

    /// The stored environments declared for `slug`.
    fn declared(&self, store: &Store, slug: &str) -> Result<Vec<MonitorEnv>, StoreError> {
        let keys = self.monitors.get(slug).map(Vec::as_slice).unwrap_or(&[]);
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            found.extend(store.monitor(key)?);
        }
        Ok(found)
    }
}
