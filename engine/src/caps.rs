//! Caps per project and the reconfiguration policy: what a public project key may create and
//! change. The project key ships inside every app and crontab, so whoever holds it must not be
//! able to grow the store without bound (one request carries up to 1,000 items, so a rate
//! limit on requests alone let one key create 500,000 monitors in 36 s) nor silence detection
//! by sending a `monitor_config` that makes a monitor yearly.
//!
//! Pure like the rest of the engine: the processor passes in the counts it maintains and the
//! monitor's origin, and acts on the verdict.

use super::config::{ConfigPatch, MonitorConfig};
use super::issues::Issue;
use super::model::MonitorKey;

/// `caps.monitors_per_project` unless configured. Sentry caps monitors per organization at
/// the same order of magnitude.
pub const DEFAULT_MONITORS_PER_PROJECT: u32 = 10_000;
/// `caps.environments_per_monitor` unless configured (Sentry: 1,000 per monitor).
pub const DEFAULT_ENVIRONMENTS_PER_MONITOR: u32 = 1_000;
/// `caps.issues_per_project` unless configured. Sentry has no such cap; without one, each
/// distinct fingerprint a key sends is an issue kept for ever.
pub const DEFAULT_ISSUES_PER_PROJECT: u32 = 10_000;

/// The fingerprint of a project's overflow issue: events with a new fingerprint once the
/// project has `caps.issues_per_project` issues are counted against it.
pub const OVERFLOW_FINGERPRINT: &str = "watchpost:issues-over-cap";

/// The caps of one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Distinct monitor slugs.
    pub monitors_per_project: u32,
    /// Environments of one monitor.
    pub environments_per_monitor: u32,
    /// Issues (distinct fingerprints), the overflow issue not counted.
    pub issues_per_project: u32,
    /// What check-ins may do to monitors.
    pub upsert: Upsert,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            monitors_per_project: DEFAULT_MONITORS_PER_PROJECT,
            environments_per_monitor: DEFAULT_ENVIRONMENTS_PER_MONITOR,
            issues_per_project: DEFAULT_ISSUES_PER_PROJECT,
            upsert: Upsert::default(),
        }
    }
}

/// What a check-in's `monitor_config` may do (`upsert` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Upsert {
    /// Check-ins never create or change monitors; `monitor_config` of an existing monitor is
    /// ignored (and the refusal recorded), a check-in for an unknown one is refused.
    None,
    /// Check-ins create monitors but never change an existing monitor's config.
    Create,
    /// Check-ins create monitors and change the config of monitors check-ins created; the
    /// monitors declared in `[[monitors]]` or created or changed through the API keep theirs.
    #[default]
    CreateUpdate,
    /// Check-ins create and change any monitor, as Sentry does.
    CreateUpdateAny,
}

impl Upsert {
    /// The spelling in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Upsert::None => "none",
            Upsert::Create => "create",
            Upsert::CreateUpdate => "create_update",
            Upsert::CreateUpdateAny => "create_update_any",
        }
    }

    /// Parses the config file's spelling.
    pub fn parse(raw: &str) -> Option<Upsert> {
        [
            Upsert::None,
            Upsert::Create,
            Upsert::CreateUpdate,
            Upsert::CreateUpdateAny,
        ]
        .into_iter()
        .find(|u| u.as_str() == raw)
    }
}

/// Where a monitor environment's config came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A check-in's `monitor_config` created it.
    CheckIn,
    /// `[[monitors]]` or the admin API set it: a person decided it.
    Managed,
}

/// Why a check-in, or its `monitor_config`, was refused. `Display` is a sentence naming the cap
/// or rule and the setting that changes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The project has as many monitors as `caps.monitors_per_project` allows.
    #[error(
        "project {} already has {limit} monitors, the cap caps.monitors_per_project; monitor `{}` was not created and nothing of this request was stored — delete unused monitors or raise the cap",
        .key.project, .key.slug
    )]
    MonitorsPerProject {
        /// The monitor environment the check-in would have created.
        key: MonitorKey,
        /// The cap.
        limit: u32,
    },
    /// The monitor has as many environments as `caps.environments_per_monitor` allows.
    #[error(
        "monitor `{}` of project {} already has {limit} environments, the cap caps.environments_per_monitor; environment `{}` was not created and nothing of this request was stored — delete unused environments or raise the cap",
        .key.slug, .key.project, .key.environment
    )]
    EnvironmentsPerMonitor {
        /// The monitor environment the check-in would have created.
        key: MonitorKey,
        /// The cap.
        limit: u32,
    },
    /// `upsert = "none"`: check-ins do not create monitors.
    #[error(
        "monitor `{}` does not exist in project {} (environment `{}`) and the project's upsert = \"none\" lets no check-in create one; nothing of this request was stored — declare it in [[monitors]] or create it through the API",
        .key.slug, .key.project, .key.environment
    )]
    CreateNotAllowed {
        /// The monitor environment the check-in would have created.
        key: MonitorKey,
    },
    /// The project has as many issues as `caps.issues_per_project` allows: the event was
    /// recorded under the project's overflow issue instead of a new one.
    #[error(
        "project {project} already has {limit} issues, the cap caps.issues_per_project; events with a new fingerprint are counted against the project's overflow issue — resolve and delete old issues, or raise the cap"
    )]
    IssuesPerProject {
        /// The project.
        project: u64,
        /// The cap.
        limit: u32,
    },
    /// The check-in was recorded, its `monitor_config` change was not applied.
    #[error(
        "monitor `{}` (environment `{}`) kept its configuration: {why}; the check-in itself was recorded",
        .key.slug, .key.environment
    )]
    ConfigChange {
        /// The monitor environment.
        key: MonitorKey,
        /// Which rule kept it.
        why: ConfigKept,
    },
}

/// Which rule kept a monitor's config from a check-in's `monitor_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigKept {
    /// The monitor is declared in the config file or was set through the API.
    #[error(
        "it was declared in [[monitors]] or set through the API, and the project's upsert = \"create_update\" lets check-ins change only monitors check-ins created (upsert = \"create_update_any\" allows it)"
    )]
    Managed,
    /// The policy lets no check-in change a config.
    #[error(
        "the project's upsert = \"{}\" lets no check-in change a monitor's configuration",
        .0.as_str()
    )]
    Policy(Upsert),
}

impl Refused {
    /// Every [`Refused::reason`].
    pub const REASONS: [&'static str; 5] = [
        "monitors_per_project",
        "environments_per_monitor",
        "upsert_create",
        "issues_per_project",
        "upsert_update",
    ];

    /// The label in `/metrics` and the `reason` of the API.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::MonitorsPerProject { .. } => "monitors_per_project",
            Refused::EnvironmentsPerMonitor { .. } => "environments_per_monitor",
            Refused::CreateNotAllowed { .. } => "upsert_create",
            Refused::IssuesPerProject { .. } => "issues_per_project",
            Refused::ConfigChange { .. } => "upsert_update",
        }
    }

    /// The monitor environment concerned, if a monitor is.
    pub fn monitor(&self) -> Option<&MonitorKey> {
        match self {
            Refused::MonitorsPerProject { key, .. }
            | Refused::EnvironmentsPerMonitor { key, .. }
            | Refused::CreateNotAllowed { key }
            | Refused::ConfigChange { key, .. } => Some(key),
            Refused::IssuesPerProject { .. } => None,
        }
    }

    /// The project of the key that sent what was refused.
    pub fn project(&self) -> u64 {
        match self {
            Refused::IssuesPerProject { project, .. } => *project,
            other => other.monitor().map_or(0, |key| key.project),
        }
    }
}

/// How many monitors a project has, as the processor counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorCounts {
    /// Distinct slugs of the project.
    pub monitors: u32,
    /// Environments of the slug in question; `None` when the slug is new.
    pub environments: Option<u32>,
}

/// Whether a check-in may create monitor environment `key`, given the project's counts.
pub fn may_create(caps: &Caps, key: &MonitorKey, counts: MonitorCounts) -> Result<(), Refused> {
    if caps.upsert == Upsert::None {
        return Err(Refused::CreateNotAllowed { key: key.clone() });
    }
    match counts.environments {
        None if counts.monitors >= caps.monitors_per_project => Err(Refused::MonitorsPerProject {
            key: key.clone(),
            limit: caps.monitors_per_project,
        }),
        Some(envs) if envs >= caps.environments_per_monitor => {
            Err(Refused::EnvironmentsPerMonitor {
                key: key.clone(),
                limit: caps.environments_per_monitor,
            })
        }
        _ => Ok(()),
    }
}

/// Whether a check-in's `monitor_config` may change an existing monitor environment's config.
pub fn may_update(upsert: Upsert, origin: Origin) -> Result<(), ConfigKept> {
    match (upsert, origin) {
        (Upsert::CreateUpdateAny, _) | (Upsert::CreateUpdate, Origin::CheckIn) => Ok(()),
        (Upsert::CreateUpdate, Origin::Managed) => Err(ConfigKept::Managed),
        (policy @ (Upsert::None | Upsert::Create), _) => Err(ConfigKept::Policy(policy)),
    }
}

/// What becomes of a check-in's `monitor_config` for an existing monitor environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigVerdict {
    /// Apply it (the engine's upsert does the rest).
    Apply,
    /// Drop it: the policy keeps the config, but it would change nothing (SDKs send the same
    /// config with every check-in, which is no attempt to reconfigure).
    Ignore,
    /// Drop it and report the refused change.
    Refuse(ConfigKept),
}

/// The verdict on `patch` for a monitor of `origin` configured as `current`, under `upsert`.
/// A patch that does not validate counts as a change.
pub fn config_verdict(
    upsert: Upsert,
    origin: Origin,
    patch: &ConfigPatch,
    current: &MonitorConfig,
) -> ConfigVerdict {
    match may_update(upsert, origin) {
        Ok(()) => ConfigVerdict::Apply,
        Err(why) => match patch.apply_to(current) {
            Ok(config) if config == *current => ConfigVerdict::Ignore,
            _ => ConfigVerdict::Refuse(why),
        },
    }
}

/// Whether an event with a fingerprint the project has no issue for yet gets its own issue
/// (`true`) or is counted against the project's overflow issue, given how many the project has.
pub fn may_open_issue(caps: &Caps, issues: u32) -> bool {
    issues < caps.issues_per_project
}

/// Whether `issue` is its project's overflow issue (it does not count against the cap).
pub fn is_overflow(issue: &Issue) -> bool {
    issue.fingerprint.len() == 1 && issue.fingerprint[0] == OVERFLOW_FINGERPRINT
}

/// The caps of every project: `[caps]`, with `upsert` overridden per `[[projects]]`.
#[derive(Debug, Clone, Default)]
pub struct CapsConfig {
    /// Every project's caps unless overridden.
    pub default: Caps,
    /// Projects whose caps differ.
    pub projects: std::collections::HashMap<u64, Caps>,
}

impl CapsConfig {
    /// The caps of `project`.
    pub fn of(&self, project: u64) -> Caps {
        self.projects.get(&project).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(slug: &str) -> MonitorKey {
        MonitorKey::new(1, slug, None).unwrap()
    }

    fn caps(upsert: Upsert) -> Caps {
        Caps {
            monitors_per_project: 2,
            environments_per_monitor: 3,
            issues_per_project: 1,
            upsert,
        }
    }

    #[test]
    fn a_new_monitor_is_refused_at_the_project_cap_a_new_environment_at_the_monitor_cap() {
        let c = caps(Upsert::CreateUpdate);
        let new_slug = |monitors| MonitorCounts {
            monitors,
            environments: None,
        };
        assert_eq!(may_create(&c, &key("a"), new_slug(1)), Ok(()));
        let refused = may_create(&c, &key("a"), new_slug(2)).unwrap_err();
        assert_eq!(refused.reason(), "monitors_per_project");
        assert!(refused.to_string().contains("caps.monitors_per_project"));
        // Another environment of an existing monitor is not a new monitor.
        let envs = |environments| MonitorCounts {
            monitors: 2,
            environments: Some(environments),
        };
        assert_eq!(may_create(&c, &key("a"), envs(2)), Ok(()));
        let refused = may_create(&c, &key("a"), envs(3)).unwrap_err();
        assert_eq!(refused.reason(), "environments_per_monitor");
        assert!(
            refused
                .to_string()
                .contains("caps.environments_per_monitor")
        );
    }

    #[test]
    fn upsert_none_creates_nothing() {
        let refused = may_create(
            &caps(Upsert::None),
            &key("a"),
            MonitorCounts {
                monitors: 0,
                environments: None,
            },
        )
        .unwrap_err();
        assert_eq!(refused.reason(), "upsert_create");
        assert!(refused.to_string().contains("upsert = \"none\""));
    }

    #[test]
    fn only_the_policy_and_the_origin_decide_an_update() {
        use Origin::{CheckIn, Managed};
        assert_eq!(may_update(Upsert::CreateUpdateAny, Managed), Ok(()));
        assert_eq!(may_update(Upsert::CreateUpdate, CheckIn), Ok(()));
        assert_eq!(
            may_update(Upsert::CreateUpdate, Managed),
            Err(ConfigKept::Managed)
        );
        for policy in [Upsert::None, Upsert::Create] {
            for origin in [CheckIn, Managed] {
                assert_eq!(may_update(policy, origin), Err(ConfigKept::Policy(policy)));
            }
        }
    }

    #[test]
    fn a_kept_config_is_refused_only_when_the_check_in_would_change_it() {
        use super::super::config::{IntervalUnit, Schedule};
        let current = MonitorConfig::new(Schedule::interval(1, IntervalUnit::Hour).unwrap());
        let same = ConfigPatch::from_json(&serde_json::json!({
            "schedule": {"type": "interval", "value": 1, "unit": "hour"}
        }))
        .unwrap();
        let yearly = ConfigPatch::from_json(&serde_json::json!({"schedule": "@yearly"})).unwrap();
        let kept = (Upsert::CreateUpdate, Origin::Managed);
        assert_eq!(
            config_verdict(kept.0, kept.1, &same, &current),
            ConfigVerdict::Ignore
        );
        assert_eq!(
            config_verdict(kept.0, kept.1, &yearly, &current),
            ConfigVerdict::Refuse(ConfigKept::Managed)
        );
        assert_eq!(
            config_verdict(Upsert::CreateUpdate, Origin::CheckIn, &yearly, &current),
            ConfigVerdict::Apply
        );
    }

    #[test]
    fn issues_overflow_at_the_cap() {
        let c = caps(Upsert::CreateUpdate);
        assert!(may_open_issue(&c, 0));
        assert!(!may_open_issue(&c, 1));
    }

    #[test]
    fn upsert_spellings_round_trip() {
        for raw in ["none", "create", "create_update", "create_update_any"] {
            assert_eq!(Upsert::parse(raw).unwrap().as_str(), raw);
        }
        assert_eq!(Upsert::parse("update"), None);
    }
}
