//! The I/O side of the caps and the reconfiguration policy (`engine::caps` decides): the
//! counts the caps are checked against, which monitors a person configured, and the refusal
//! log people read.
//!
//! **Counts are kept, never scanned.** Loaded once at start (monitor keys are read from the
//! tree's keys, issues decoded once), then changed by the processor as it creates and deletes,
//! so a check-in costs one map lookup under a short lock. A creation is *reserved* before the
//! engine runs and undone if the request fails ([`Held`]), so concurrent requests cannot
//! together pass a cap that each alone respects.
//!
//! **Refusals** are kept per project, the newest [`KEPT_PER_PROJECT`] for [`KEPT_FOR`], in
//! memory for reads and in the store so a restart keeps them; recording one is an insert (and a
//! remove of the one it pushes out), never a scan.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;

use crate::engine::MonitorKey;
pub(crate) use crate::engine::caps::CapsConfig;
use crate::engine::caps::{Caps, MonitorCounts, Refused, may_create, may_open_issue};
use crate::store::{RefusalRecord, Store, StoreError};

/// Refusals kept per project.
pub(crate) const KEPT_PER_PROJECT: usize = 100;
/// How long a refusal is kept.
pub(crate) const KEPT_FOR: TimeDelta = TimeDelta::days(7);

/// What the caps count, and which monitor environments a person configured.
#[derive(Debug, Default)]
pub(crate) struct Census {
    /// Per project: environments per monitor slug (the number of slugs is the monitor count).
    monitors: Mutex<HashMap<u64, HashMap<String, u32>>>,
    /// Issues per project, overflow issues not counted.
    issues: Mutex<HashMap<u64, u32>>,
    /// Monitor environments declared in `[[monitors]]` or set through the API.
    managed: Mutex<HashSet<MonitorKey>>,
}

impl Census {
    /// The counts of what `store` holds.
    pub(crate) fn load(store: &Store) -> Result<Census, StoreError> {
        let census = Census::default();
        for key in store.monitor_keys()? {
            census.add_monitor(&key);
        }
        *census.issues.lock() = store.issue_counts()?;
        census.managed.lock().extend(store.managed_monitors()?);
        Ok(census)
    }

    /// Counts a monitor environment created by a person (`[[monitors]]`, the API): never
    /// refused, but counted, so check-ins meet the cap.
    pub(crate) fn add_monitor(&self, key: &MonitorKey) {
        *self
            .monitors
            .lock()
            .entry(key.project)
            .or_default()
            .entry(key.slug.clone())
            .or_default() += 1;
    }

    /// Stops counting a deleted monitor environment.
    pub(crate) fn remove_monitor(&self, key: &MonitorKey) {
        let mut monitors = self.monitors.lock();
        let Some(slugs) = monitors.get_mut(&key.project) else {
            return;
        };
        if let Some(envs) = slugs.get_mut(&key.slug) {
            *envs = envs.saturating_sub(1);
            if *envs == 0 {
                slugs.remove(&key.slug);
            }
        }
    }

    /// Whether a person configured this monitor environment.
    pub(crate) fn is_managed(&self, key: &MonitorKey) -> bool {
        self.managed.lock().contains(key)
    }

    /// Records whether a person configured this monitor environment.
    pub(crate) fn set_managed(&self, key: &MonitorKey, managed: bool) {
        let mut set = self.managed.lock();
        if managed {
            set.insert(key.clone());
        } else {
            set.remove(key);
        }
    }
}

/// Creations reserved by one request: undone when dropped, unless [`Held::keep`] says the
/// request's write went through.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    census: &'a Census,
    monitors: Vec<MonitorKey>,
    issues: Vec<u64>,
}

impl<'a> Held<'a> {
    /// Nothing reserved yet.
    pub(crate) fn new(census: &'a Census) -> Held<'a> {
        Held {
            census,
            monitors: Vec::new(),
            issues: Vec::new(),
        }
    }

    /// Reserves monitor environment `key` for a check-in if `caps` allow it.
    pub(crate) fn monitor(&mut self, caps: &Caps, key: &MonitorKey) -> Result<(), Refused> {
        let mut monitors = self.census.monitors.lock();
        let slugs = monitors.entry(key.project).or_default();
        let counts = MonitorCounts {
            monitors: u32::try_from(slugs.len()).unwrap_or(u32::MAX),
            environments: slugs.get(&key.slug).copied(),
        };
        may_create(caps, key, counts)?;
        *slugs.entry(key.slug.clone()).or_default() += 1;
        self.monitors.push(key.clone());
        Ok(())
    }

    /// Reserves a new issue in `project` if `caps` allow it; `false` means the event goes to
    /// the overflow issue.
    pub(crate) fn issue(&mut self, caps: &Caps, project: u64) -> bool {
        let mut issues = self.census.issues.lock();
        let count = issues.entry(project).or_default();
        if !may_open_issue(caps, *count) {
            return false;
        }
        *count += 1;
        self.issues.push(project);
        true
    }

    /// The request's write went through: what it reserved now exists.
    pub(crate) fn keep(mut self) {
        self.monitors.clear();
        self.issues.clear();
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        for key in &self.monitors {
            self.census.remove_monitor(key);
        }
        if !self.issues.is_empty() {
            let mut issues = self.census.issues.lock();
            for project in &self.issues {
                if let Some(count) = issues.get_mut(project) {
                    *count = count.saturating_sub(1);
                }
            }
        }
    }
}

/// The refusals people can look at, and their counts for `/metrics`.
#[derive(Debug)]
pub struct RefusalLog {
    store: Option<Store>,
    kept: Mutex<HashMap<u64, VecDeque<RefusalRecord>>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    /// The next record's id: one above the highest kept, so ids keep increasing over restarts.
    next_id: AtomicU64,
}

impl RefusalLog {
    /// A log that keeps nothing on disk (processor unit tests).
    pub fn in_memory() -> RefusalLog {
        RefusalLog {
            store: None,
            kept: Mutex::default(),
            counts: Mutex::default(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The refusals `store` kept from earlier runs; those older than [`KEPT_FOR`] are dropped.
    pub fn load(store: &Store, now: DateTime<Utc>) -> Result<RefusalLog, StoreError> {
        let mut kept: HashMap<u64, VecDeque<RefusalRecord>> = HashMap::new();
        let mut next_id = 1;
        for record in store.refusals()? {
            next_id = next_id.max(record.id + 1);
            if now - record.at > KEPT_FOR {
                store.remove_refusal(record.project, record.id)?;
            } else {
                kept.entry(record.project).or_default().push_back(record);
            }
        }
        Ok(RefusalLog {
            store: Some(store.clone()),
            kept: Mutex::new(kept),
            counts: Mutex::default(),
            next_id: AtomicU64::new(next_id),
        })
    }

    /// Counts and keeps a refusal. A failure to persist it is logged, never fails the request.
    pub fn record(&self, refused: &Refused, now: DateTime<Utc>) {
        *self.counts.lock().entry(refused.reason()).or_default() += 1;
        let project = refused.project();
        let monitor = refused.monitor();
        tracing::info!(project, reason = refused.reason(), "refused: {refused}");
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let record = RefusalRecord {
            id,
            at: now,
            project,
            reason: refused.reason().to_owned(),
            slug: monitor.map(|key| key.slug.clone()),
            environment: monitor.map(|key| key.environment.clone()),
            message: refused.to_string(),
        };
        let evicted = {
            let mut kept = self.kept.lock();
            let ring = kept.entry(project).or_default();
            ring.push_back(record.clone());
            (ring.len() > KEPT_PER_PROJECT)
                .then(|| ring.pop_front())
                .flatten()
        };
        if let Some(store) = &self.store {
            let result = store.save_refusal(&record).and_then(|()| match evicted {
                Some(old) => store.remove_refusal(old.project, old.id),
                None => Ok(()),
            });
            if let Err(error) = result {
                tracing::warn!(%error, "cannot keep a refusal");
            }
        }
    }

    /// The refusals of the last [`KEPT_FOR`], of one project or all, newest first.
    pub fn list(&self, project: Option<u64>, now: DateTime<Utc>) -> Vec<RefusalRecord> {
        let kept = self.kept.lock();
        let mut out: Vec<RefusalRecord> = kept
            .iter()
            .filter(|(p, _)| project.is_none_or(|want| **p == want))
            .flat_map(|(_, ring)| ring.iter())
            .filter(|r| now - r.at <= KEPT_FOR)
            .cloned()
            .collect();
        out.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
        out
    }

    /// Refusals counted since start, by reason.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().clone()
    }

    /// Appends `watchpost_refusals_total` to the `/metrics` text: every reason has its series
    /// (at zero) from the start, so an alert on its rate needs no special case.
    pub fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let counts = self.counts();
        let _ = writeln!(
            out,
            "# HELP watchpost_refusals_total Check-ins, events and config changes refused by a cap or the upsert policy, by reason."
        );
        let _ = writeln!(out, "# TYPE watchpost_refusals_total counter");
        for reason in Refused::REASONS {
            let n = counts.get(reason).copied().unwrap_or(0);
            let _ = writeln!(out, "watchpost_refusals_total{{reason=\"{reason}\"}} {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::caps::Upsert;

    fn key(project: u64, slug: &str, env: &str) -> MonitorKey {
        MonitorKey::new(project, slug, Some(env)).unwrap()
    }

    fn caps() -> Caps {
        Caps {
            monitors_per_project: 2,
            environments_per_monitor: 2,
            issues_per_project: 1,
            upsert: Upsert::CreateUpdate,
        }
    }

    #[test]
    fn a_failed_request_gives_back_what_it_reserved() {
        let census = Census::default();
        let mut held = Held::new(&census);
        held.monitor(&caps(), &key(1, "a", "prod")).unwrap();
        held.monitor(&caps(), &key(1, "b", "prod")).unwrap();
        assert!(held.monitor(&caps(), &key(1, "c", "prod")).is_err());
        assert!(held.issue(&caps(), 1));
        assert!(!held.issue(&caps(), 1));
        drop(held);
        let mut held = Held::new(&census);
        held.monitor(&caps(), &key(1, "c", "prod")).unwrap();
        assert!(held.issue(&caps(), 1));
        held.keep();
        // Kept: the project now has one monitor and one issue.
        let mut held = Held::new(&census);
        held.monitor(&caps(), &key(1, "c", "staging")).unwrap();
        held.monitor(&caps(), &key(1, "d", "prod")).unwrap();
        assert_eq!(
            held.monitor(&caps(), &key(1, "c", "dev"))
                .unwrap_err()
                .reason(),
            "environments_per_monitor"
        );
        assert!(!held.issue(&caps(), 1));
        // Another project has its own counts.
        assert!(held.issue(&caps(), 2));
    }

    #[test]
    fn a_deleted_monitor_frees_its_place() {
        let census = Census::default();
        census.add_monitor(&key(1, "a", "prod"));
        census.add_monitor(&key(1, "b", "prod"));
        let mut held = Held::new(&census);
        assert!(held.monitor(&caps(), &key(1, "c", "prod")).is_err());
        census.remove_monitor(&key(1, "b", "prod"));
        held.monitor(&caps(), &key(1, "c", "prod")).unwrap();
    }

    #[test]
    fn the_log_keeps_the_newest_per_project_for_a_week() {
        let log = RefusalLog::in_memory();
        let t0: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        for i in 0..(KEPT_PER_PROJECT as i64 + 5) {
            let refused = Refused::CreateNotAllowed {
                key: key(1, &format!("m{i}"), "prod"),
            };
            log.record(&refused, t0 + TimeDelta::seconds(i));
        }
        log.record(
            &Refused::CreateNotAllowed {
                key: key(2, "other", "prod"),
            },
            t0,
        );
        let one = log.list(Some(1), t0 + TimeDelta::hours(1));
        assert_eq!(one.len(), KEPT_PER_PROJECT);
        assert_eq!(
            one[0].slug.as_deref(),
            Some(format!("m{}", KEPT_PER_PROJECT + 4).as_str()),
            "newest first"
        );
        assert_eq!(log.list(None, t0).len(), KEPT_PER_PROJECT + 1);
        assert!(
            log.list(None, t0 + KEPT_FOR + TimeDelta::days(1))
                .is_empty()
        );
        assert_eq!(log.counts()["upsert_create"], KEPT_PER_PROJECT as u64 + 6);
    }
}
