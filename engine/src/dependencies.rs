//! Dependencies: a monitor or probe may name the monitors and probes it depends on
//! (`depends_on`). While a dependency is failing, a dependent's own alert is held, and the
//! dependents are named in the dependency's alert instead: one message ("Probe database-health
//! is down; 10 dependents are failing") rather than eleven pages for one cause.
//!
//! The rules, all decided here with `now` as a parameter (the collector only reads the states
//! they need and writes what they return):
//!
//! - **Graph** ([`Graph::build`]): names resolve to a probe (`[[probes]]` name) or a monitor
//!   (`[[monitors]]` slug, every declared environment of it). An unknown or ambiguous name is
//!   refused, and so is a cycle (`a → b → a` would hold both alerts for ever).
//! - **Hold** ([`hold_until`]): an incident of a dependent that opens while one of its
//!   dependencies is failing is held like one opening in a maintenance window: tracked, not
//!   alerted, looked at again at the next recheck. While a dependency still fails, the hold
//!   moves on; once none does and the incident is still open, its alert goes out then, once
//!   (the hold's release, [`super::oncall::sweep_repeat`]). One that recovers meanwhile is
//!   never announced, nor is its recovery.
//! - **Fold** ([`fold`]): the dependency's alert names its failing dependents whose alerts are
//!   held. Dependents usually fail *after* their dependency's alert went out (the database is
//!   down first; the jobs miss their next check-ins later), so the dependency sends a
//!   follow-up naming them, once the set of failing dependents has stopped growing for
//!   `settle` (a burst of ten misses becomes one message, not ten), or at the latest
//!   [`MAX_FOLD_WAIT`] after the first unnamed one failed. A follow-up rather than waiting for
//!   the dependency's next repeat: probes do not repeat, and a rule without `repeat` would
//!   otherwise never tell anyone that the jobs are failing too.
//!
//! Pure: no clock, no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The longest a failing dependent waits to be named in its dependency's follow-up while
/// more dependents keep failing (a steady trickle would otherwise never settle).
pub const MAX_FOLD_WAIT: Duration = Duration::from_secs(300);

/// Most dependents a message lists by name; the rest are counted (the JSON lists all).
pub const MAX_NAMED: usize = 20;

/// Something that can be depended on, or depend: a monitor by slug (every environment
/// declared for it) or a probe by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// A `[[monitors]]` slug.
    Monitor(String),
    /// A `[[probes]]` name.
    Probe(String),
}

impl Node {
    /// The name as `depends_on` writes it.
    pub fn name(&self) -> &str {
        match self {
            Node::Monitor(name) | Node::Probe(name) => name,
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Monitor(slug) => write!(f, "monitor {slug}"),
            Node::Probe(name) => write!(f, "probe {name}"),
        }
    }
}

/// Why `depends_on` was refused. `Display` is a sentence for the person editing the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DependencyError {
    /// A name that is no probe and no declared monitor.
    #[error(
        "`{0}` is neither a [[probes]] name nor a [[monitors]] slug; depends_on names probes by `name` and monitors declared in the file by `slug`"
    )]
    Unknown(String),
    /// A name that is a probe and a monitor alike.
    #[error(
        "`{0}` is both a probe's name and a monitor's slug, so depends_on cannot tell which is meant; rename one of them"
    )]
    Ambiguous(String),
    /// The dependencies go round.
    #[error(
        "depends_on goes round in a cycle ({}): each would hold the other's alerts; remove one of these dependencies",
        .0.join(" → ")
    )]
    Cycle(Vec<String>),
}

/// Who depends on what, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// Dependent → its dependencies.
    edges: BTreeMap<Node, BTreeSet<Node>>,
}

impl Graph {
    /// Builds the graph from each declaration's `depends_on`, resolving names against the
    /// configured `probes` and monitor `slugs`. A refusal comes with the index of the
    /// declaration it is about.
    pub fn build(
        declared: &[(Node, Vec<String>)],
        probes: &BTreeSet<String>,
        slugs: &BTreeSet<String>,
    ) -> Result<Graph, (usize, DependencyError)> {
        let mut graph = Graph::default();
        for (index, (node, names)) in declared.iter().enumerate() {
            for name in names {
                let target = match (probes.contains(name), slugs.contains(name)) {
                    (true, true) => return Err((index, DependencyError::Ambiguous(name.clone()))),
                    (true, false) => Node::Probe(name.clone()),
                    (false, true) => Node::Monitor(name.clone()),
                    (false, false) => return Err((index, DependencyError::Unknown(name.clone()))),
                };
                graph.edges.entry(node.clone()).or_default().insert(target);
            }
        }
        if let Some(cycle) = graph.cycle() {
            let first = cycle.first().cloned();
            let index = declared
                .iter()
                .position(|(node, _)| Some(node) == first.as_ref())
                .unwrap_or(0);
            let names = cycle.iter().map(Node::to_string).collect();
            return Err((index, DependencyError::Cycle(names)));
        }
        Ok(graph)
    }

    /// Whether nothing depends on anything.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// What `node` depends on.
    pub fn dependencies(&self, node: &Node) -> impl Iterator<Item = &Node> {
        self.edges.get(node).into_iter().flatten()
    }

    /// What depends on `node` directly.
    pub fn dependents(&self, node: &Node) -> impl Iterator<Item = &Node> {
        self.edges
            .iter()
            .filter(move |(_, targets)| targets.contains(node))
            .map(|(dependent, _)| dependent)
    }

    /// A cycle, as the nodes on it with the first repeated at the end; `None` when there is
    /// none. Depth-first search with the path kept.
    fn cycle(&self) -> Option<Vec<Node>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            OnPath,
            Done,
        }
        fn visit<'g>(
            graph: &'g Graph,
            node: &'g Node,
            marks: &mut BTreeMap<&'g Node, Mark>,
            path: &mut Vec<&'g Node>,
        ) -> Option<Vec<Node>> {
            match marks.get(node) {
                Some(Mark::Done) => return None,
                Some(Mark::OnPath) => {
                    let start = path.iter().position(|n| *n == node).unwrap_or(0);
                    let mut cycle: Vec<Node> = path[start..].iter().map(|n| (*n).clone()).collect();
                    cycle.push(node.clone());
                    return Some(cycle);
                }
                None => {}
            }
            marks.insert(node, Mark::OnPath);
            path.push(node);
            for next in graph.dependencies(node) {
                if let Some(cycle) = visit(graph, next, marks, path) {
                    return Some(cycle);
                }
            }
            path.pop();
            marks.insert(node, Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        let mut path = Vec::new();
        self.edges
            .keys()
            .find_map(|node| visit(self, node, &mut marks, &mut path))
    }
}

/// A dependency as the collector found it: failing (a monitor with an open incident, a probe
/// that is down) since when, or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyState {
    /// Which.
    pub node: Node,
    /// When its incident opened, while it is failing.
    pub failing_since: Option<DateTime<Utc>>,
}

/// Until when a dependent's alert is held at `now`: the next recheck (`now + recheck`) while
/// any of its dependencies is failing; `None` when none is (its alert may go out).
pub fn hold_until(
    dependencies: &[DependencyState],
    recheck: Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let failing = dependencies.iter().any(|d| d.failing_since.is_some());
    let step = TimeDelta::from_std(recheck)
        .unwrap_or(TimeDelta::MAX)
        .max(TimeDelta::seconds(1));
    failing.then(|| {
        now.checked_add_signed(step)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    })
}

/// The later of two hold ends (a quiet time and a dependency), as the hold to keep.
pub fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.into_iter().chain(b).max()
}

/// A dependent that is failing with its alert held, as its dependency's alert names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailingDependent {
    /// How the alert names it: `nightly-backup (production)`, `probe api`.
    pub name: String,
    /// When its incident opened.
    pub since: DateTime<Utc>,
}

/// What a dependency's alert says about its dependents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    /// Every failing dependent with a held alert, by name (sorted): the alert lists them.
    pub failing: Vec<String>,
    /// Those not named in an earlier alert of this incident.
    pub new: Vec<String>,
}

/// Whether the dependency (failing) owes a follow-up about its dependents at `now`, and what
/// it says. `named`: the dependents named by its alerts so far in this incident. `None` while
/// no dependent is unnamed, or while the unnamed ones are still arriving: the newest failed
/// less than `settle` ago and the oldest less than [`MAX_FOLD_WAIT`] ago.
pub fn fold(
    failing: &[FailingDependent],
    named: &[String],
    settle: Duration,
    now: DateTime<Utc>,
) -> Option<Fold> {
    let unnamed: Vec<&FailingDependent> = failing
        .iter()
        .filter(|d| !named.contains(&d.name))
        .collect();
    let newest = unnamed.iter().map(|d| d.since).max()?;
    let oldest = unnamed.iter().map(|d| d.since).min()?;
    let age = |since: DateTime<Utc>| (now - since).to_std().unwrap_or(Duration::ZERO);
    if age(newest) < settle && age(oldest) < MAX_FOLD_WAIT {
        return None;
    }
    Some(Fold::of(failing, named))
}

impl Fold {
    /// The fold of `failing` dependents at a moment the dependency's alert goes out anyway
    /// (it just went down): every one of them, the ones not in `named` as new.
    pub fn of(failing: &[FailingDependent], named: &[String]) -> Fold {
        let set: BTreeSet<&str> = failing.iter().map(|d| d.name.as_str()).collect();
        let new = set
            .iter()
            .filter(|name| !named.iter().any(|n| n == *name))
            .map(|name| (*name).to_owned())
            .collect();
        Fold {
            failing: set.into_iter().map(str::to_owned).collect(),
            new,
        }
    }

    /// `10 dependents are failing`.
    pub fn headline(&self) -> String {
        match self.failing.len() {
            1 => "1 dependent is failing".to_owned(),
            n => format!("{n} dependents are failing"),
        }
    }

    /// The names, at most [`MAX_NAMED`], then how many more: `a, b, c`, `a, b, … and 5 more`.
    pub fn list(&self) -> String {
        let shown: Vec<&str> = self
            .failing
            .iter()
            .take(MAX_NAMED)
            .map(String::as_str)
            .collect();
        let rest = self.failing.len().saturating_sub(MAX_NAMED);
        if rest == 0 {
            shown.join(", ")
        } else {
            format!("{}, … and {rest} more", shown.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn monitor(slug: &str, deps: &[&str]) -> (Node, Vec<String>) {
        (
            Node::Monitor(slug.to_owned()),
            deps.iter().map(|d| (*d).to_owned()).collect(),
        )
    }

    fn probe(name: &str, deps: &[&str]) -> (Node, Vec<String>) {
        (
            Node::Probe(name.to_owned()),
            deps.iter().map(|d| (*d).to_owned()).collect(),
        )
    }

    fn at(min: i64, sec: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 3, 0, 0).unwrap()
            + TimeDelta::minutes(min)
            + TimeDelta::seconds(sec)
    }

    #[test]
    fn names_resolve_to_probes_and_monitor_slugs_and_unknown_ambiguous_or_cyclic_are_refused() {
        let probes = names(&["database-health", "api"]);
        let slugs = names(&["nightly-backup", "report", "api-warmup"]);
        let graph = Graph::build(
            &[
                monitor("nightly-backup", &["database-health"]),
                monitor("report", &["nightly-backup", "database-health"]),
                probe("api", &["database-health"]),
            ],
            &probes,
            &slugs,
        )
        .unwrap();
        let db = Node::Probe("database-health".to_owned());
        let dependents: Vec<String> = graph.dependents(&db).map(Node::to_string).collect();
        assert_eq!(
            dependents,
            ["monitor nightly-backup", "monitor report", "probe api"]
        );
        let of_report: Vec<String> = graph
            .dependencies(&Node::Monitor("report".to_owned()))
            .map(Node::to_string)
            .collect();
        assert_eq!(
            of_report,
            ["monitor nightly-backup", "probe database-health"]
        );

        let refused = |declared: &[(Node, Vec<String>)]| {
            Graph::build(declared, &probes, &slugs).expect_err("refused")
        };
        let (index, error) = refused(&[
            monitor("report", &[]),
            monitor("nightly-backup", &["databse-health"]),
        ]);
        assert_eq!(index, 1);
        assert_eq!(error, DependencyError::Unknown("databse-health".to_owned()));
        assert!(error.to_string().contains("neither a [[probes]] name"));

        let both = names(&["database-health", "report"]);
        let (_, error) = Graph::build(&[monitor("nightly-backup", &["report"])], &both, &slugs)
            .expect_err("ambiguous");
        assert_eq!(error, DependencyError::Ambiguous("report".to_owned()));

        let (_, error) = refused(&[
            monitor("report", &["nightly-backup"]),
            monitor("nightly-backup", &["api"]),
            probe("api", &["report"]),
        ]);
        assert_eq!(
            error.to_string(),
            "depends_on goes round in a cycle (monitor nightly-backup → probe api → monitor report → monitor nightly-backup): each would hold the other's alerts; remove one of these dependencies"
        );
        let (_, error) = refused(&[probe("api", &["api"])]);
        assert_eq!(
            error,
            DependencyError::Cycle(vec!["probe api".to_owned(), "probe api".to_owned()])
        );
    }

    #[test]
    fn a_dependent_is_held_until_the_next_recheck_while_a_dependency_fails() {
        let recheck = Duration::from_secs(30);
        let db = |failing: bool| DependencyState {
            node: Node::Probe("database-health".to_owned()),
            failing_since: failing.then(|| at(0, 0)),
        };
        assert_eq!(hold_until(&[db(true)], recheck, at(1, 0)), Some(at(1, 30)));
        assert_eq!(hold_until(&[db(false)], recheck, at(1, 0)), None);
        assert_eq!(hold_until(&[], recheck, at(1, 0)), None);
        // A maintenance window that ends later keeps the later end.
        assert_eq!(
            later(Some(at(10, 0)), hold_until(&[db(true)], recheck, at(1, 0))),
            Some(at(10, 0))
        );
        assert_eq!(later(None, None), None);
    }

    #[test]
    fn a_burst_of_dependents_folds_into_one_follow_up_once_it_settles() {
        let settle = Duration::from_secs(2);
        let failing: Vec<FailingDependent> = (0..10)
            .map(|i| FailingDependent {
                name: format!("job-{i}"),
                // Ten misses within 300 ms.
                since: at(5, 0) + TimeDelta::milliseconds(30 * i),
            })
            .collect();
        // Seven arrived, more are coming: wait.
        assert_eq!(fold(&failing[..7], &[], settle, at(5, 1)), None);
        assert_eq!(fold(&failing, &[], settle, at(5, 2)), None);
        let once = fold(&failing, &[], settle, at(5, 3)).expect("settled");
        assert_eq!(once.failing.len(), 10);
        assert_eq!(once.new, once.failing);
        assert_eq!(once.headline(), "10 dependents are failing");
        assert_eq!(
            once.list(),
            "job-0, job-1, job-2, job-3, job-4, job-5, job-6, job-7, job-8, job-9"
        );
        // Named once: nothing more until another dependent fails.
        assert_eq!(fold(&failing, &once.failing, settle, at(9, 0)), None);
        let mut more = failing;
        more.push(FailingDependent {
            name: "report".to_owned(),
            since: at(9, 0),
        });
        let next = fold(&more, &once.failing, settle, at(9, 5)).unwrap();
        assert_eq!(next.new, ["report"]);
        assert_eq!(next.failing.len(), 11);
    }

    #[test]
    fn a_steady_trickle_is_named_after_the_longest_wait_and_long_lists_are_cut() {
        let settle = Duration::from_secs(60);
        // One new dependent every 30 s never settles for 60 s.
        let trickle: Vec<FailingDependent> = (0..12)
            .map(|i| FailingDependent {
                name: format!("job-{i:02}"),
                since: at(0, 30 * i),
            })
            .collect();
        assert_eq!(fold(&trickle[..9], &[], settle, at(4, 10)), None);
        let forced = fold(&trickle[..11], &[], settle, at(5, 10)).expect("waited 5 min");
        assert_eq!(forced.failing.len(), 11);

        let many: Vec<FailingDependent> = (0..25)
            .map(|i| FailingDependent {
                name: format!("job-{i:02}"),
                since: at(0, 0),
            })
            .collect();
        let list = Fold::of(&many, &[]).list();
        assert!(list.starts_with("job-00, job-01"), "{list}");
        assert!(list.ends_with("job-19, … and 5 more"), "{list}");
    }
}
