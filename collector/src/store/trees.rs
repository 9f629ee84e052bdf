//! The trees of the store: [`Trees`], the handles the store writes through, and [`TreeId`], the
//! tag a redo record names a tree by; and the schema version of this layout.

/// The layout version this build reads and writes (`migrate.rs` upgrades older ones).
pub const SCHEMA_VERSION: u32 = 5;
/// Key in `meta` of the store's schema version ([`SCHEMA_VERSION`]).
pub(super) const SCHEMA_KEY: &[u8] = b"schema_version";

#[derive(Clone)]
pub(super) struct Trees {
    pub(super) meta: sled::Tree,
    pub(super) monitors: sled::Tree,
    pub(super) checkins: sled::Tree,
    pub(super) checkin_ids: sled::Tree,
    pub(super) incidents: sled::Tree,
    /// Index of `incidents` by time (`opened_at ++ id` → incident key), for the list of all.
    pub(super) incident_times: sled::Tree,
    /// The same, for open incidents only.
    pub(super) open_incidents: sled::Tree,
    pub(super) outbox: sled::Tree,
    pub(super) outbox_pending: sled::Tree,
    pub(super) issues: sled::Tree,
    /// Index of `issues` by when they were last seen (`last_seen ++ issue key`).
    pub(super) issue_times: sled::Tree,
    pub(super) events: sled::Tree,
    pub(super) ping_logs: sled::Tree,
    pub(super) upstream: sled::Tree,
    pub(super) probes: sled::Tree,
    pub(super) probe_results: sled::Tree,
    /// Redo records of the group being written (`redo.rs`).
    pub(super) redo: sled::Tree,
}

impl Trees {
    /// Opens (or creates) every tree of the layout in `db`.
    pub(super) fn open(db: &sled::Db) -> Result<Trees, sled::Error> {
        let open = |name: &str| db.open_tree(name);
        Ok(Trees {
            meta: open("meta")?,
            monitors: open("monitors")?,
            checkins: open("checkins")?,
            checkin_ids: open("checkin_ids")?,
            incidents: open("incidents")?,
            incident_times: open("incident_times")?,
            open_incidents: open("open_incidents")?,
            outbox: open("outbox")?,
            outbox_pending: open("outbox_pending")?,
            issues: open("issues")?,
            issue_times: open("issue_times")?,
            events: open("events")?,
            ping_logs: open("ping_logs")?,
            upstream: open("upstream")?,
            probes: open("probes")?,
            probe_results: open("probe_results")?,
            redo: open("redo")?,
        })
    }
}

/// The trees a group writes to; the number is the tree's tag in redo records. Tag 1 was the
/// `deadlines` tree of schema version 2 (`redo.rs`, `LEGACY_DEADLINES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum TreeId {
    Monitors = 0,
    Checkins = 2,
    CheckinIds = 3,
    Incidents = 4,
    Outbox = 5,
    OutboxPending = 6,
    Issues = 7,
    Events = 8,
    PingLogs = 9,
    Upstream = 10,
    IncidentTimes = 11,
    IssueTimes = 12,
    OpenIncidents = 13,
    Probes = 14,
    ProbeResults = 15,
    Meta = 16,
}

impl TreeId {
    pub(super) const ALL: [TreeId; 16] = [
        TreeId::Monitors,
        TreeId::Checkins,
        TreeId::CheckinIds,
        TreeId::Incidents,
        TreeId::Outbox,
        TreeId::OutboxPending,
        TreeId::Issues,
        TreeId::Events,
        TreeId::PingLogs,
        TreeId::Upstream,
        TreeId::IncidentTimes,
        TreeId::IssueTimes,
        TreeId::OpenIncidents,
        TreeId::Probes,
        TreeId::ProbeResults,
        TreeId::Meta,
    ];

    pub(super) fn tree(self, trees: &Trees) -> &sled::Tree {
        match self {
            TreeId::Monitors => &trees.monitors,
            TreeId::Checkins => &trees.checkins,
            TreeId::CheckinIds => &trees.checkin_ids,
            TreeId::Incidents => &trees.incidents,
            TreeId::Outbox => &trees.outbox,
            TreeId::OutboxPending => &trees.outbox_pending,
            TreeId::Issues => &trees.issues,
            TreeId::Events => &trees.events,
            TreeId::PingLogs => &trees.ping_logs,
            TreeId::Upstream => &trees.upstream,
            TreeId::IncidentTimes => &trees.incident_times,
            TreeId::IssueTimes => &trees.issue_times,
            TreeId::OpenIncidents => &trees.open_incidents,
            TreeId::Probes => &trees.probes,
            TreeId::ProbeResults => &trees.probe_results,
            TreeId::Meta => &trees.meta,
        }
    }
}
