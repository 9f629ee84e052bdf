//! Probe state and results. A check's outcome is one write set (`WriteSet::probes`, written by
//! the committer like every other change): the probe's state, its result, and — when a
//! threshold was crossed — the incident and the alert's deliveries, so a `probe.down` / `probe.up` reaches the outbox exactly when the state that
//! caused it is stored. Stores what the engine decided; never judges a check itself.
//!
//! Results are a ring per probe: check number `n` goes to slot `n % keep`, replacing the oldest
//! result in the same write, so retention is bounded by construction and needs no scan or
//! prune pass on the hot path.

use chrono::{DateTime, Utc};

use super::durability::Seq;
use super::error::{StoreError, decode, encode};
use super::keys;
use super::page::{self, Cursor, Page};
use super::prepared::RawPut;
use super::trees::TreeId;
use super::{ProbeWrite, Store, WriteSet};
use crate::alert::NewDelivery;
use crate::engine::probes::{ProbeEffect, ProbeResult, ProbeState, ProbeTransition};

impl Store {
    /// One probe's state.
    pub fn probe_state(&self, name: &str) -> Result<Option<ProbeState>, StoreError> {
        self.trees()
            .probes
            .get(name.as_bytes())?
            .map(|v| decode("probes", &v))
            .transpose()
    }

    /// Every stored probe state, by name (including probes no longer configured).
    pub fn probe_states(&self) -> Result<Vec<ProbeState>, StoreError> {
        self.trees()
            .probes
            .iter()
            .values()
            .map(|v| decode("probes", &v?))
            .collect()
    }

    /// The newest `limit` results of a probe, newest first.
    pub fn probe_results(&self, name: &str, limit: usize) -> Result<Vec<ProbeResult>, StoreError> {
        Ok(self.probe_results_page(name, &Cursor::Start, limit)?.items)
    }

    /// A page of a probe's results, newest first. They are a ring of at most
    /// `retention.probe_results` slots in slot order, not time order, so the ring is read
    /// whole and paged in memory: the cursor names a time and id, like every timeline.
    pub fn probe_results_page(
        &self,
        name: &str,
        from: &Cursor,
        limit: usize,
    ) -> Result<Page<ProbeResult>, StoreError> {
        let results = self
            .trees()
            .probe_results
            .scan_prefix(results_prefix(name))
            .values()
            .map(|v| {
                let result: ProbeResult = decode("probe_results", &v?)?;
                Ok((keys::timed(&[], result.at, result.id), result))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page::held_timeline(results, from, limit))
    }

    /// Writes one check's transition: state, result (into its ring slot of `keep`), each
    /// effect's incident, and `deliveries` (the alerts of those effects, created at `now`), as
    /// one write set.
    pub fn commit_probe(
        &self,
        transition: &ProbeTransition,
        deliveries: &[NewDelivery],
        keep: usize,
        now: DateTime<Utc>,
    ) -> Result<Seq, StoreError> {
        let set = WriteSet {
            probes: vec![ProbeWrite::Checked {
                state: Box::new(transition.state.clone()),
                result: Box::new(transition.result.clone()),
                keep,
            }],
            effects: transition
                .effects
                .iter()
                .map(|e| e.effect.clone())
                .collect(),
            deliveries: deliveries.to_vec(),
            ..WriteSet::default()
        };
        self.commit(&set, now)
    }

    /// Writes a probe's state after someone handled its open incident (acknowledged it), the
    /// incident's record with it, and `deliveries` (the alert saying so), in one transaction.
    pub fn commit_probe_handled(
        &self,
        state: &ProbeState,
        deliveries: &[NewDelivery],
        now: DateTime<Utc>,
    ) -> Result<Seq, StoreError> {
        let set = WriteSet {
            probes: vec![ProbeWrite::Handled {
                state: Box::new(state.clone()),
            }],
            deliveries: deliveries.to_vec(),
            ..WriteSet::default()
        };
        self.commit(&set, now)
    }

    /// Drops result slots at or beyond `keep` (left over when `retention.probe_results`
    /// shrank). Returns how many were removed.
    pub fn trim_probe_results(&self, name: &str, keep: usize) -> Result<usize, StoreError> {
        let set = WriteSet {
            probes: vec![ProbeWrite::Trimmed {
                name: name.to_owned(),
                keep,
            }],
            ..WriteSet::default()
        };
        let prepared = self.prepare(&set, DateTime::UNIX_EPOCH)?;
        let removed = prepared.removes.len();
        self.write_now(&set, &prepared)?;
        Ok(removed)
    }

    /// Forgets a probe that left the config: its state and results go, and its open incident,
    /// if `effect` resolves one, is stored resolved with `deliveries` (its alert's, if any),
    /// as one write set.
    pub fn retire_probe(
        &self,
        name: &str,
        effect: Option<&ProbeEffect>,
        deliveries: &[NewDelivery],
        now: DateTime<Utc>,
    ) -> Result<Seq, StoreError> {
        let set = WriteSet {
            probes: vec![ProbeWrite::Retired {
                name: name.to_owned(),
            }],
            effects: effect.iter().map(|e| e.effect.clone()).collect(),
            deliveries: deliveries.to_vec(),
            ..WriteSet::default()
        };
        self.commit(&set, now)
    }

    /// The puts and removals of `probes` in a write set.
    pub(super) fn prepare_probes(
        &self,
        probes: &[ProbeWrite],
        removes: &mut Vec<(TreeId, Vec<u8>)>,
    ) -> Result<Vec<RawPut>, StoreError> {
        let tree = &self.trees().probe_results;
        let mut puts = Vec::new();
        for write in probes {
            match write {
                ProbeWrite::Checked {
                    state,
                    result,
                    keep,
                } => {
                    let keep = (*keep).max(1) as u64;
                    let slot = (state.checks.saturating_sub(1) % keep) as u32;
                    puts.push((
                        TreeId::Probes,
                        state.name.as_bytes().to_vec(),
                        encode(state),
                    ));
                    let at = result_key(&state.name, slot);
                    puts.push((TreeId::ProbeResults, at, encode(result)));
                }
                ProbeWrite::Handled { state } => {
                    puts.push((
                        TreeId::Probes,
                        state.name.as_bytes().to_vec(),
                        encode(state),
                    ));
                }
                ProbeWrite::Retired { name } => {
                    removes.push((TreeId::Probes, name.as_bytes().to_vec()));
                    for key in tree.scan_prefix(results_prefix(name)).keys() {
                        removes.push((TreeId::ProbeResults, key?.to_vec()));
                    }
                }
                ProbeWrite::Trimmed { name, keep } => {
                    let prefix = results_prefix(name);
                    let first_stale = result_key(name, u32::try_from(*keep).unwrap_or(u32::MAX));
                    for key in tree.range(first_stale..).keys() {
                        let key = key?;
                        if !key.starts_with(&prefix) {
                            break;
                        }
                        removes.push((TreeId::ProbeResults, key.to_vec()));
                    }
                }
            }
        }
        Ok(puts)
    }
}

/// `len (u16 BE) ++ name`: a probe's results, never spilling into a longer name's.
fn results_prefix(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + name.len() + 4);
    // Names are at most 100 characters (config), so at most 400 bytes.
    key.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

/// `results_prefix ++ slot (u32 BE)`.
fn result_key(name: &str, slot: u32) -> Vec<u8> {
    let mut key = results_prefix(name);
    key.extend_from_slice(&slot.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeDelta;
    use uuid::Uuid;

    use super::*;
    use crate::alert::{NewDelivery, Planner};
    use crate::engine::alerting::{AlertKind, Payload};
    use crate::engine::probes::{
        Check, Expectation, Observation, ProbeRules, ProbeStatus, record_check, retire,
    };
    use crate::engine::{Effect, IncidentKind};

    fn rules() -> ProbeRules {
        ProbeRules {
            url: "http://127.0.0.1:1/health".to_owned(),
            failure_threshold: 2,
            success_threshold: 1,
            expect: Expectation::status(200),
        }
    }

    /// Plans with the default rule (everything to `log`).
    fn planner() -> Planner {
        Planner::default_rule()
    }

    fn deliveries(effects: &[ProbeEffect], now: DateTime<Utc>) -> Vec<NewDelivery> {
        effects
            .iter()
            .flat_map(|e| planner().probe(e, now))
            .collect()
    }

    /// The kinds of the alerts in the outbox, oldest first.
    fn outbox_kinds(store: &Store) -> Vec<AlertKind> {
        let mut entries = store
            .deliveries(&crate::store::DeliveryFilter::default(), 100, 100)
            .unwrap();
        entries.reverse();
        entries
            .iter()
            .map(|e| match &e.payload {
                Payload::Alert(alert) => alert.kind,
                Payload::Digest(_) => panic!("no digest is planned"),
            })
            .collect()
    }

    /// Feeds `statuses` (one check per second) to probe `name`, committing each transition.
    fn run(store: &Store, name: &str, statuses: &[u16], keep: usize) -> ProbeState {
        let start = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000);
        let mut state = store
            .probe_state(name)
            .unwrap()
            .unwrap_or_else(|| ProbeState::new(name));
        for &status in statuses {
            let at = start + TimeDelta::seconds(state.checks as i64);
            let check = Check {
                id: Uuid::new_v4(),
                started: at,
                latency: Duration::from_millis(3),
                observation: Observation::Response { status, body: None },
            };
            let transition = record_check(&state, &rules(), &check, at);
            let planned = deliveries(&transition.effects, at);
            store.commit_probe(&transition, &planned, keep, at).unwrap();
            state = transition.state;
        }
        state
    }

    #[test]
    fn a_transition_stores_state_result_incident_and_outbox_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = run(&store, "api", &[200, 500, 500, 500, 200], 100);
        assert_eq!(store.probe_state("api").unwrap(), Some(state.clone()));
        assert_eq!(state.status, ProbeStatus::Up);

        let incidents = store.incidents(false, 1000).unwrap();
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        assert_eq!(incidents[0].kind, IncidentKind::Probe);
        assert_eq!(incidents[0].key.slug, "api");
        assert!(incidents[0].resolved_at.is_some());

        assert_eq!(
            outbox_kinds(&store),
            [AlertKind::ProbeDown, AlertKind::ProbeUp]
        );

        let results = store.probe_results("api", 10).unwrap();
        let codes: Vec<_> = results.iter().map(|r| r.status_code.unwrap()).collect();
        assert_eq!(codes, [200, 500, 500, 500, 200]);
        assert_eq!(results[0], state.last_result.unwrap());
    }

    #[test]
    fn results_are_a_bounded_ring_per_probe() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        run(&store, "a", &[200; 12], 5);
        // A name that is a prefix of another never mixes results.
        run(&store, "a-b", &[503; 3], 5);
        let kept = store.probe_results("a", 100).unwrap();
        assert_eq!(kept.len(), 5);
        let newest = store
            .probe_state("a")
            .unwrap()
            .unwrap()
            .last_result
            .unwrap();
        assert_eq!(kept[0], newest);
        assert!(kept.windows(2).all(|w| w[0].at > w[1].at));
        assert_eq!(store.probe_results("a-b", 100).unwrap().len(), 3);

        // Retention shrinks: the slots beyond it go, the ring continues within it.
        assert_eq!(store.trim_probe_results("a", 2).unwrap(), 3);
        assert_eq!(store.probe_results("a-b", 100).unwrap().len(), 3);
        run(&store, "a", &[200; 4], 2);
        assert_eq!(store.probe_results("a", 100).unwrap().len(), 2);
    }

    #[test]
    fn retiring_a_probe_resolves_its_incident_and_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = run(&store, "gone", &[500, 500], 10);
        assert_eq!(store.incidents(true, 1000).unwrap().len(), 1);
        let now = Utc::now();
        let effect = retire(&state, &rules().url, now);
        let planned = deliveries(effect.as_slice(), now);
        assert!(planned.is_empty(), "a retired probe is resolved silently");
        store
            .retire_probe("gone", effect.as_ref(), &planned, now)
            .unwrap();
        assert!(store.probe_state("gone").unwrap().is_none());
        assert!(store.probe_results("gone", 10).unwrap().is_empty());
        assert!(store.incidents(true, 1000).unwrap().is_empty());
        assert!(matches!(
            effect.map(|e| e.effect),
            Some(Effect::IncidentResolved { notify: false, .. })
        ));
        assert_eq!(outbox_kinds(&store), [AlertKind::ProbeDown]);
    }
}
