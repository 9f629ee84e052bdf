//! Counters and gauges for `GET /metrics`, written in the Prometheus text format by hand.
//! Recording is a relaxed atomic (or a short lock for labelled counters); nothing here does I/O
//! or blocks a request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::alert::DeliveryState;
use crate::engine::MonitorStatus;
use crate::store::{DiskSpace, StoreStats, Usage};

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    checkins_accepted: AtomicU64,
    checkins_rejected: Mutex<BTreeMap<&'static str, u64>>,
    events_accepted: AtomicU64,
    /// Events refused by a quota, by reason.
    events_rejected: Mutex<BTreeMap<&'static str, u64>>,
    missed_recorded: AtomicU64,
    timeouts_recorded: AtomicU64,
    /// f64 bits.
    sweep_lag_seconds: AtomicU64,
    /// Per alert channel: deliveries finished as sent, failed and suppressed.
    deliveries: Mutex<BTreeMap<String, [u64; 3]>>,
}

/// Values read at scrape time from the store and the sweeper.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Monitor environments by status.
    pub monitors: BTreeMap<MonitorStatus, u64>,
    /// Pending deadlines in the sweeper's index.
    pub deadlines: usize,
    /// Store counters.
    pub store: StoreStats,
    /// Deliveries waiting in the outbox, per channel (channels with none may be absent).
    pub outbox_pending: BTreeMap<String, usize>,
}

impl Metrics {
    /// Counts check-ins accepted.
    pub fn checkins_accepted(&self, n: u64) {
        self.checkins_accepted.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a rejected check-in submission by reason.
    pub fn checkin_rejected(&self, reason: &'static str) {
        *self.checkins_rejected.lock().entry(reason).or_default() += 1;
    }

    /// Counts events accepted.
    pub fn events_accepted(&self, n: u64) {
        self.events_accepted.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` events refused for `reason` (a quota such as `event_bytes`).
    pub fn events_rejected(&self, reason: &'static str, n: u64) {
        *self.events_rejected.lock().entry(reason).or_default() += n;
    }

    /// Counts what a sweep recorded.
    pub fn swept(&self, missed: u64, timeouts: u64) {
        self.missed_recorded.fetch_add(missed, Ordering::Relaxed);
        self.timeouts_recorded
            .fetch_add(timeouts, Ordering::Relaxed);
    }

    /// How late the last sweep ran after its deadline.
    pub fn sweep_lag(&self, seconds: f64) {
        self.sweep_lag_seconds
            .store(seconds.max(0.0).to_bits(), Ordering::Relaxed);
    }

    /// The last sweep lag, in seconds.
    pub fn last_sweep_lag(&self) -> f64 {
        f64::from_bits(self.sweep_lag_seconds.load(Ordering::Relaxed))
    }

    /// Names the alert channels, so each has its series (at zero) from the start.
    pub fn alert_channels<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut deliveries = self.deliveries.lock();
        for name in names {
            deliveries.entry(name.to_owned()).or_default();
        }
    }

    /// Counts a delivery that left the outbox's pending state.
    pub fn alert_finished(&self, channel: &str, state: DeliveryState) {
        let index = match state {
            DeliveryState::Sent => 0,
            DeliveryState::Failed => 1,
            DeliveryState::Suppressed => 2,
            DeliveryState::Pending => return,
        };
        let mut deliveries = self.deliveries.lock();
        match deliveries.get_mut(channel) {
            Some(counts) => counts[index] += 1,
            None => {
                let mut counts = [0; 3];
                counts[index] = 1;
                deliveries.insert(channel.to_owned(), counts);
            }
        }
    }

    /// The exposition text.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let plain = |value: String| vec![(String::new(), value)];
        metric(
            "watchpost_checkins_accepted_total",
            "counter",
            "Check-ins accepted (envelope, cron endpoint and pings).",
            &plain(self.checkins_accepted.load(Ordering::Relaxed).to_string()),
        );
        let rejected: Vec<_> = self
            .checkins_rejected
            .lock()
            .iter()
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), n.to_string()))
            .collect();
        metric(
            "watchpost_checkins_rejected_total",
            "counter",
            "Check-in submissions rejected or dropped, by reason.",
            &rejected,
        );
        metric(
            "watchpost_events_accepted_total",
            "counter",
            "Error events accepted.",
            &plain(self.events_accepted.load(Ordering::Relaxed).to_string()),
        );
        let events_rejected: Vec<_> = self
            .events_rejected
            .lock()
            .iter()
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), n.to_string()))
            .collect();
        metric(
            "watchpost_events_rejected_total",
            "counter",
            "Error events refused by a quota, by reason.",
            &events_rejected,
        );
        let statuses = [
            MonitorStatus::Active,
            MonitorStatus::Ok,
            MonitorStatus::Error,
            MonitorStatus::Disabled,
        ];
        let monitors: Vec<_> = statuses
            .iter()
            .map(|status| {
                (
                    format!("{{status=\"{}\"}}", status_label(*status)),
                    snapshot
                        .monitors
                        .get(status)
                        .copied()
                        .unwrap_or(0)
                        .to_string(),
                )
            })
            .collect();
        metric(
            "watchpost_monitors",
            "gauge",
            "Monitor environments by status.",
            &monitors,
        );
        metric(
            "watchpost_sweep_lag_seconds",
            "gauge",
            "How long after its deadline the last sweep ran.",
            &plain(self.last_sweep_lag().to_string()),
        );
        metric(
            "watchpost_sweeps_recorded_total",
            "counter",
            "Synthetic check-ins recorded by the sweeper, by status.",
            &[
                (
                    "{status=\"missed\"}".to_owned(),
                    self.missed_recorded.load(Ordering::Relaxed).to_string(),
                ),
                (
                    "{status=\"timeout\"}".to_owned(),
                    self.timeouts_recorded.load(Ordering::Relaxed).to_string(),
                ),
            ],
        );
        metric(
            "watchpost_deadlines",
            "gauge",
            "Pending deadlines in the sweeper's index.",
            &plain(snapshot.deadlines.to_string()),
        );
        // A snapshot: the lock is released before anything is written.
        let deliveries = &self.deliveries.lock().clone();
        let mut channels: Vec<&String> = deliveries
            .keys()
            .chain(snapshot.outbox_pending.keys())
            .collect();
        channels.sort();
        channels.dedup();
        metric(
            "watchpost_outbox_backlog",
            "gauge",
            "Alert deliveries waiting in the outbox, all channels together.",
            &plain(snapshot.outbox_pending.values().sum::<usize>().to_string()),
        );
        let per_channel = |value: &dyn Fn(&str) -> String| -> Vec<(String, String)> {
            channels
                .iter()
                .map(|c| (format!("{{channel=\"{}\"}}", label(c)), value(c)))
                .collect()
        };
        let pending = |c: &str| {
            let n = snapshot.outbox_pending.get(c).copied().unwrap_or(0);
            n.to_string()
        };
        metric(
            "watchpost_outbox_pending",
            "gauge",
            "Alert deliveries waiting in the outbox, per channel.",
            &per_channel(&pending),
        );
        let finished = |index: usize| {
            move |c: &str| {
                deliveries
                    .get(c)
                    .map_or(0, |counts| counts[index])
                    .to_string()
            }
        };
        metric(
            "watchpost_alerts_sent_total",
            "counter",
            "Alert messages delivered, per channel (a digest counts once).",
            &per_channel(&finished(0)),
        );
        metric(
            "watchpost_alerts_failed_total",
            "counter",
            "Alert deliveries given up (a permanent error or the age limit), per channel.",
            &per_channel(&finished(1)),
        );
        metric(
            "watchpost_alerts_suppressed_total",
            "counter",
            "Alert deliveries not sent on their own: deduplicated, superseded or merged into a \
             digest, per channel.",
            &per_channel(&finished(2)),
        );
        metric(
            "watchpost_store_flushes_total",
            "counter",
            "fsyncs of the store; each acknowledges every write made before it started.",
            &plain(snapshot.store.flushes.to_string()),
        );
        metric(
            "watchpost_store_last_flush_seconds",
            "gauge",
            "Duration of the last store fsync.",
            &plain(snapshot.store.last_flush_seconds.to_string()),
        );
        metric(
            "watchpost_store_size_bytes",
            "gauge",
            "Bytes the store uses on disk.",
            &plain(snapshot.store.size_on_disk.to_string()),
        );
        metric(
            "watchpost_store_compactions_total",
            "counter",
            "Online compactions of the store since the start.",
            &plain(snapshot.store.compactions.to_string()),
        );
        metric(
            "watchpost_store_last_compaction_pause_seconds",
            "gauge",
            "How long ingest paused in the last compaction.",
            &plain(snapshot.store.last_compaction_pause_seconds.to_string()),
        );
        metric(
            "watchpost_events_stored",
            "gauge",
            "Error events held, all issues together.",
            &plain(snapshot.store.events.to_string()),
        );
        out
    }
}

/// Appends the store's usage (`store/usage.rs`: records and live bytes per tree, the files'
/// bytes) and the data dir's file system, so amplification and a filling disk are visible
/// to the same scraper. `usage` is `None` when it could not be counted; its series are then
/// left out rather than reported as zero.
pub fn write_store_usage(out: &mut String, usage: Option<&Usage>, disk: Option<DiskSpace>) {
    let mut gauge = |name: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    if let Some(usage) = usage {
        let per_tree = |value: fn(&crate::store::TreeUsage) -> u64| -> Vec<(String, u64)> {
            let trees = usage.trees.iter();
            trees
                .map(|t| (format!("{{tree=\"{}\"}}", label(&t.tree)), value(t)))
                .collect()
        };
        gauge(
            "watchpost_store_records",
            "Records in each store tree (counted at most once a minute).",
            &per_tree(|t| t.records),
        );
        gauge(
            "watchpost_store_live_bytes",
            "Bytes of keys and values in each store tree (counted at most once a minute).",
            &per_tree(crate::store::TreeUsage::live_bytes),
        );
        gauge(
            "watchpost_store_files_bytes",
            "Bytes of the store's files (log, snapshot, blobs); divided by the live bytes, the \
             space amplification.",
            &[(String::new(), usage.files_bytes)],
        );
    }
    if let Some(disk) = disk {
        gauge(
            "watchpost_disk_available_bytes",
            "Bytes free for the collector on the data dir's file system.",
            &[(String::new(), disk.available)],
        );
        gauge(
            "watchpost_disk_total_bytes",
            "Size of the data dir's file system.",
            &[(String::new(), disk.total)],
        );
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The API spelling of a status.
pub fn status_label(status: MonitorStatus) -> &'static str {
    match status {
        MonitorStatus::Active => "active",
        MonitorStatus::Ok => "ok",
        MonitorStatus::Error => "error",
        MonitorStatus::Disabled => "disabled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let metrics = Metrics::default();
        metrics.checkins_accepted(3);
        metrics.checkin_rejected("unauthorized");
        metrics.checkin_rejected("unauthorized");
        metrics.sweep_lag(0.25);
        let snapshot = Snapshot {
            monitors: BTreeMap::from([(MonitorStatus::Ok, 2)]),
            deadlines: 4,
            store: StoreStats {
                flushes: 1,
                last_flush_seconds: 0.001,
                events: 0,
                size_on_disk: 10,
                compactions: 2,
                last_compaction_pause_seconds: 0.25,
            },
            outbox_pending: BTreeMap::from([("tg".to_owned(), 3)]),
        };
        metrics.alert_channels(["hook", "tg"]);
        metrics.alert_finished("hook", DeliveryState::Sent);
        metrics.alert_finished("tg", DeliveryState::Failed);
        metrics.alert_finished("tg", DeliveryState::Suppressed);
        let text = metrics.render(&snapshot);
        for line in [
            "# TYPE watchpost_checkins_accepted_total counter",
            "watchpost_checkins_accepted_total 3",
            "watchpost_checkins_rejected_total{reason=\"unauthorized\"} 2",
            "watchpost_monitors{status=\"ok\"} 2",
            "watchpost_monitors{status=\"error\"} 0",
            "watchpost_sweep_lag_seconds 0.25",
            "watchpost_deadlines 4",
            "watchpost_outbox_backlog 3",
            "watchpost_outbox_pending{channel=\"hook\"} 0",
            "watchpost_outbox_pending{channel=\"tg\"} 3",
            "watchpost_alerts_sent_total{channel=\"hook\"} 1",
            "watchpost_alerts_sent_total{channel=\"tg\"} 0",
            "watchpost_alerts_failed_total{channel=\"tg\"} 1",
            "watchpost_alerts_suppressed_total{channel=\"tg\"} 1",
            "watchpost_store_compactions_total 2",
            "watchpost_store_last_compaction_pause_seconds 0.25",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn renders_the_store_usage_per_tree_and_the_disk() {
        let usage = Usage {
            trees: vec![crate::store::TreeUsage {
                tree: "checkins".to_owned(),
                records: 7,
                key_bytes: 100,
                value_bytes: 20,
            }],
            live_bytes: 120,
            size_on_disk: 4000,
            files: Vec::new(),
            files_bytes: 5000,
            amplification: 41.67,
        };
        let disk = DiskSpace {
            available: 10,
            total: 99,
        };
        let mut text = String::new();
        write_store_usage(&mut text, Some(&usage), Some(disk));
        for line in [
            "# TYPE watchpost_store_records gauge",
            "watchpost_store_records{tree=\"checkins\"} 7",
            "watchpost_store_live_bytes{tree=\"checkins\"} 120",
            "watchpost_store_files_bytes 5000",
            "watchpost_disk_available_bytes 10",
            "watchpost_disk_total_bytes 99",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let mut without = String::new();
        write_store_usage(&mut without, None, None);
        assert!(without.is_empty());
    }
}
