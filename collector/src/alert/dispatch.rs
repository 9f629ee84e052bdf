//! The dispatcher: one worker per channel delivers that channel's outbox entries, in order per
//! subject, at least once.
//!
//! Each worker keeps its channel's pending entries in a `Backlog` (`backlog.rs`) (loaded from the outbox
//! once, then following it), so a delivery costs a few map operations and one save whatever
//! the backlog. It loops: learn what was added to the outbox; collapse the backlog into a
//! digest when it is larger than the channel's pace can send in a minute; take the next entry
//! (an alert about a subject new to a storm first, see `Backlog` (`backlog.rs`), else the oldest that is
//! not deferred); wait while it is in backoff (so later alerts never overtake it); ask the
//! [`Deduper`]; wait for the destination's [`Pacer`]; send; record the outcome through the
//! [`Outbox`]. A channel that is down therefore only delays itself.
//!
//! A *storm* is a backlog larger than what the channel sends in about a minute: its pace's
//! capacity, or, for a channel without a pace (webhook, Alertmanager, log), sixty seconds over
//! the time its destination has recently taken to answer. Channels that digest collapse a
//! storm; the others send alerts about subjects new to it ahead of it.
//!
//! The dispatcher never drops an alert: transient failures are retried with capped, jittered
//! exponential backoff (a provider's `retry_after` wins, up to
//! [`DispatchOptions::max_retry_after`]), only permanent errors (and, if configured, an age
//! limit) fail an entry, and dedup/digest mark entries `suppressed` only when what they say
//! reaches the person in another message. It knows no storage: the [`Outbox`] trait is
//! implemented over sled by the store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::backlog::Backlog;
use super::channel::Channel;
pub use super::outbox::{DeliveryState, NewDelivery, Outbox, OutboxEntry, OutboxError};
use super::pace::{Backoff, Pacer};
use super::send::{ChannelOptions, Delivery};
use crate::engine::alerting::{self, Alert, Deduper, Digest, Payload, Rule, Verdict};

/// How long a worker pauses when the outbox cannot be read or written.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The `rule` of a digest entry: it stands for several rules and is never deduplicated.
pub const DIGEST_RULE: &str = "digest";

/// The deliveries an alert needs (see [`alerting::route`]), ready for the outbox.
pub fn plan(rules: &[Rule], alert: &Alert, spike_rule: Option<&str>) -> Vec<NewDelivery> {
    alerting::route(rules, alert, spike_rule)
        .into_iter()
        .map(|route| NewDelivery {
            channel: route.channel,
            rule: route.rule,
            payload: Payload::Alert(alert.clone()),
        })
        .collect()
}

/// Dispatcher settings.
#[derive(Clone, Debug)]
pub struct DispatchOptions {
    /// Backoff after a failed attempt (when the destination named no wait).
    pub backoff: Backoff,
    /// The longest a destination's own `retry_after` / `Retry-After` is honoured: a provider
    /// asking for an hour would otherwise silence the channel for that hour; asked too early,
    /// it answers with a new wait, which costs one request.
    pub max_retry_after: Duration,
    /// `[alerts] dedup_window`; zero disables dedup.
    pub dedup_window: Duration,
    /// Pending entries read at a time, and held in memory per lane of a worker's `Backlog` (`backlog.rs`).
    pub batch: usize,
    /// Collapse a backlog larger than this into a digest; `None`: what the channel's pace
    /// sends in a minute. Only channels that [`Channel::digests`].
    pub digest_backlog: Option<usize>,
    /// Fail a delivery still not sent this long after it was created; `None`: never.
    pub give_up_after: Option<Duration>,
    /// Re-read the outbox this often even without a wake-up.
    pub poll: Duration,
    /// Paces and timeouts of the channels.
    pub channels: ChannelOptions,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            backoff: Backoff::default(),
            max_retry_after: Duration::from_secs(300),
            dedup_window: alerting::DEFAULT_DEDUP_WINDOW,
            batch: 1000,
            digest_backlog: None,
            give_up_after: Some(Duration::from_secs(24 * 3600)),
            poll: Duration::from_secs(30),
            channels: ChannelOptions::default(),
        }
    }
}

/// Wakes workers when new deliveries were committed.
#[derive(Clone, Debug)]
pub struct DispatchHandle {
    wakers: Arc<HashMap<String, Arc<Notify>>>,
}

impl DispatchHandle {
    /// New entries for `channel` are in the outbox.
    pub fn wake(&self, channel: &str) {
        if let Some(notify) = self.wakers.get(channel) {
            notify.notify_one();
        }
    }

    /// New entries may be anywhere.
    pub fn wake_all(&self) {
        for notify in self.wakers.values() {
            notify.notify_one();
        }
    }
}

/// Runs one worker per channel.
pub struct Dispatcher {
    outbox: Arc<dyn Outbox>,
    channels: Vec<Arc<Channel>>,
    options: DispatchOptions,
    wakers: Arc<HashMap<String, Arc<Notify>>>,
    pacers: Arc<Mutex<HashMap<String, Pacer>>>,
}

impl Dispatcher {
    /// A dispatcher over `outbox` for `channels` (names unique).
    pub fn new(
        outbox: Arc<dyn Outbox>,
        channels: Vec<Channel>,
        options: DispatchOptions,
    ) -> Dispatcher {
        let channels: Vec<Arc<Channel>> = channels.into_iter().map(Arc::new).collect();
        let wakers = channels
            .iter()
            .map(|c| (c.name().to_owned(), Arc::new(Notify::new())))
            .collect();
        Dispatcher {
            outbox,
            channels,
            options,
            wakers: Arc::new(wakers),
            pacers: Arc::default(),
        }
    }

    /// A handle to wake the workers.
    pub fn handle(&self) -> DispatchHandle {
        DispatchHandle {
            wakers: Arc::clone(&self.wakers),
        }
    }

    /// The channels, e.g. to inspect a Telegram chat id after a migration.
    pub fn channels(&self) -> &[Arc<Channel>] {
        &self.channels
    }

    /// Runs the workers until `shutdown` completes; a send in flight finishes first. Entries
    /// not yet sent stay pending in the outbox for the next start.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for channel in &self.channels {
            let worker = Worker {
                outbox: Arc::clone(&self.outbox),
                channel: Arc::clone(channel),
                pace: channel.pace(&self.options.channels),
                destination: channel.destination(),
                options: self.options.clone(),
                wake: Arc::clone(&self.wakers[channel.name()]),
                pacers: Arc::clone(&self.pacers),
                deduper: Deduper::new(self.options.dedup_window),
                rng: StdRng::from_os_rng(),
                backlog: Backlog::new(channel.name(), self.options.batch),
                answer_time: None,
            };
            tasks.spawn(worker.run(stop_rx.clone()));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

/// What a worker does next.
enum Step {
    /// Look again at once.
    Again,
    /// Nothing to do before this instant (or a wake-up).
    Wait(Option<Instant>),
}

struct Worker {
    outbox: Arc<dyn Outbox>,
    channel: Arc<Channel>,
    pace: super::pace::Pace,
    destination: String,
    options: DispatchOptions,
    wake: Arc<Notify>,
    pacers: Arc<Mutex<HashMap<String, Pacer>>>,
    deduper: Deduper,
    rng: StdRng,
    backlog: Backlog,
    /// How long the destination has recently taken to answer (a moving average), for the
    /// storm threshold of a channel without a pace.
    answer_time: Option<Duration>,
}

impl Worker {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let tick_every = self.channel.tick_interval();
        let mut next_tick = tick_every.map(|every| Instant::now() + every);
        loop {
            if *stop.borrow() {
                return;
            }
            if let Some(at) = next_tick
                && at <= Instant::now()
            {
                self.channel.tick().await;
                next_tick = tick_every.map(|every| Instant::now() + every);
            }
            let until = match self.step().await {
                Step::Again => continue,
                Step::Wait(until) => until,
            };
            let poll = Instant::now() + self.options.poll;
            let until = [until, next_tick]
                .into_iter()
                .flatten()
                .fold(poll, Instant::min);
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(until) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn step(&mut self) -> Step {
        let now = Utc::now();
        let instant = Instant::now();
        let name = self.channel.name().to_owned();
        let pending = self.outbox.pending_count(&name);
        let storm = !self.channel.digests() && self.minute().is_some_and(|n| pending > n);
        let more = match self
            .backlog
            .learn(&*self.outbox, storm)
            .and_then(|more| self.backlog.refill(&*self.outbox, pending).map(|()| more))
        {
            Ok(more) => more,
            Err(err) => {
                tracing::error!(channel = %name, error = %err, "cannot read the outbox");
                return Step::Wait(Some(instant + STORE_RETRY));
            }
        };
        let backlog_limit = self
            .options
            .digest_backlog
            .or_else(|| self.pace.per_minute().map(|n| n as usize));
        if let Some(limit) = backlog_limit
            && self.channel.digests()
        {
            let ready = self.backlog.ready_page(now);
            if ready.len() > limit.max(1) {
                let entries = collapse(&ready);
                tracing::info!(channel = %name, entries = ready.len(), "backlog collapsed into a digest");
                return self.save(&entries);
            }
        }
        let Some(head) = self.backlog.next(now) else {
            if more {
                return Step::Again;
            }
            // Only deferred entries: wake up for the first of them.
            let next = self.backlog.first_deferred();
            return Step::Wait(next.map(|at| instant_at(at, now, instant)));
        };
        if head.next_attempt_at > now {
            // In backoff: later entries wait behind it, so they are delivered in order.
            return Step::Wait(Some(instant_at(head.next_attempt_at, now, instant)));
        }
        let mut entry = head.clone();
        let payload = match &entry.payload {
            Payload::Alert(alert) if entry.rule != DIGEST_RULE => {
                self.deduper.prune(now);
                match self.deduper.check(&entry.rule, alert, entry.id, now) {
                    Verdict::Send { suppressed } => {
                        let mut alert = alert.clone();
                        alert.note_suppressed(suppressed, self.options.dedup_window);
                        Payload::Alert(alert)
                    }
                    Verdict::Suppress => {
                        return self.finish_unsent(
                            entry,
                            "suppressed: a repeat within the dedup window of what was last sent",
                        );
                    }
                    Verdict::Supersede => {
                        return self.finish_unsent(
                            entry,
                            "suppressed: superseded by a newer alert about the same subject",
                        );
                    }
                    Verdict::Defer { until } => {
                        entry.deferred = true;
                        entry.next_attempt_at = until;
                        return self.save(&[entry]);
                    }
                }
            }
            payload => payload.clone(),
        };
        let sending = Instant::now();
        let ready_at = {
            let mut pacers = self.pacers.lock();
            let pacer = pacers
                .entry(self.destination.clone())
                .or_insert_with(|| Pacer::new(self.pace));
            let ready_at = pacer.ready_at(sending);
            if ready_at <= sending {
                // Take the slot before sending, so a second channel to the same
                // destination waits for it.
                pacer.record(sending);
            }
            ready_at
        };
        if ready_at > sending {
            return Step::Wait(Some(ready_at));
        }
        let outcome = self.channel.send(&payload).await;
        let answered = Instant::now();
        if let Some(pacer) = self.pacers.lock().get_mut(&self.destination) {
            pacer.answered(sending, answered);
        }
        self.answered(answered - sending);
        let now = Utc::now();
        entry.attempts = entry.attempts.saturating_add(1);
        match outcome {
            Delivery::Sent => {
                entry.state = DeliveryState::Sent;
                entry.sent_at = Some(now);
                entry.deferred = false;
                if let (Payload::Alert(alert), false) = (&entry.payload, entry.rule == DIGEST_RULE)
                {
                    self.deduper.sent(&entry.rule, alert, now);
                }
                tracing::debug!(channel = %name, id = entry.id, attempts = entry.attempts, "alert delivered");
            }
            Delivery::Retry { after, reason } => {
                let delay = match after.map(|a| a.min(self.options.max_retry_after)) {
                    Some(after) => {
                        if let Some(pacer) = self.pacers.lock().get_mut(&self.destination) {
                            pacer.hold_until(Instant::now() + after);
                        }
                        after
                    }
                    None => self.options.backoff.delay(entry.attempts, &mut self.rng),
                };
                let too_old = self.options.give_up_after.is_some_and(|limit| {
                    TimeDelta::from_std(limit)
                        .ok()
                        .and_then(|l| entry.created_at.checked_add_signed(l))
                        .is_some_and(|deadline| now >= deadline)
                });
                tracing::warn!(channel = %name, id = entry.id, attempts = entry.attempts, %reason, retry_in = ?delay, "alert delivery failed");
                if too_old {
                    entry.state = DeliveryState::Failed;
                    entry.last_error = Some(format!(
                        "gave up after {} attempts: {reason}",
                        entry.attempts
                    ));
                } else {
                    entry.next_attempt_at =
                        now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
                    entry.deferred = false;
                    entry.last_error = Some(reason);
                }
            }
            Delivery::Permanent { reason } => {
                tracing::error!(channel = %name, id = entry.id, %reason, "alert delivery failed for good");
                entry.state = DeliveryState::Failed;
                entry.last_error = Some(reason);
            }
        }
        self.save(&[entry])
    }

    /// What the channel sends in about a minute: its pace's capacity, bounded by how fast
    /// its destination has been answering; `None` while neither says.
    fn minute(&self) -> Option<usize> {
        let paced = self.pace.per_minute().map(|n| n as usize);
        let measured = self.answer_time.map(|t| {
            let nanos = t.as_nanos().max(1);
            usize::try_from(Duration::from_secs(60).as_nanos() / nanos).unwrap_or(usize::MAX)
        });
        match (paced, measured) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Folds one answer's time into the moving average (a fifth of the weight each).
    fn answered(&mut self, took: Duration) {
        self.answer_time = Some(match self.answer_time {
            Some(average) => (average * 4 + took) / 5,
            None => took,
        });
    }

    /// Marks an entry suppressed (dedup) and moves on.
    fn finish_unsent(&mut self, mut entry: OutboxEntry, why: &str) -> Step {
        entry.state = DeliveryState::Suppressed;
        entry.deferred = false;
        entry.last_error = Some(why.to_owned());
        self.save(&[entry])
    }

    /// Saves through the outbox, then into the worker's view. On failure the entries stay as
    /// they were in the store and the view (a sent one may be sent again: at least once) and
    /// the worker pauses rather than spin.
    fn save(&mut self, entries: &[OutboxEntry]) -> Step {
        match self.outbox.save(entries) {
            Ok(()) => {
                self.backlog.saved(entries);
                Step::Again
            }
            Err(err) => {
                tracing::error!(channel = %self.channel.name(), error = %err, "cannot update the outbox");
                Step::Wait(Some(Instant::now() + STORE_RETRY))
            }
        }
    }
}

/// Collapses `ready` (oldest first, at least two) into one digest in the place of the oldest,
/// which keeps its attempts and backoff; the others are marked merged. Returns what to save.
fn collapse(ready: &[&OutboxEntry]) -> Vec<OutboxEntry> {
    let mut head = ready[0].clone();
    if let Some(digest) = Digest::collect(ready.iter().map(|e| &e.payload)) {
        head.payload = Payload::Digest(digest);
    }
    head.rule = DIGEST_RULE.to_owned();
    head.deferred = false;
    let head_id = head.id;
    let mut entries = vec![head];
    for part in &ready[1..] {
        let mut part = (*part).clone();
        part.state = DeliveryState::Suppressed;
        part.deferred = false;
        part.last_error = Some(format!("merged into digest #{head_id}"));
        entries.push(part);
    }
    entries
}

/// The instant corresponding to `at`, given that `now` is `instant`.
fn instant_at(at: DateTime<Utc>, now: DateTime<Utc>, instant: Instant) -> Instant {
    instant + (at - now).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::engine::alerting::{AlertKind, Links, probe_alert};
    use crate::engine::probes::ProbeNotice;

    fn alert(name: &str, down: bool) -> Alert {
        let change = ProbeNotice {
            down,
            name: name.to_owned(),
            url: "http://127.0.0.1:8080/health".to_owned(),
            status_code: Some(503),
            error: None,
            since: None,
        };
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 3, 0, 0).unwrap();
        probe_alert(&change, &Links::new("http://127.0.0.1:8470"), now)
    }

    #[test]
    fn entries_round_trip_through_json() {
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 3, 0, 0).unwrap();
        let single = Payload::Alert(alert("api", true));
        let digest = Payload::Digest(
            Digest::collect(&[single.clone(), Payload::Alert(alert("db", true))]).unwrap(),
        );
        for payload in [single, digest] {
            let entry = OutboxEntry::new(
                7,
                NewDelivery {
                    channel: "tg".to_owned(),
                    rule: "uptime".to_owned(),
                    payload,
                },
                now,
            );
            let json = serde_json::to_string(&entry).unwrap();
            let back: OutboxEntry = serde_json::from_str(&json).unwrap();
            assert_eq!(back, entry, "{json}");
        }
    }

    #[test]
    fn plans_one_delivery_per_routed_channel() {
        let rules = [Rule {
            name: "uptime".to_owned(),
            on: vec![AlertKind::ProbeDown],
            channels: vec!["tg".to_owned(), "hook".to_owned()],
            repeat: None,
        }];
        let planned = plan(&rules, &alert("api", true), None);
        let routes: Vec<(&str, &str)> = planned
            .iter()
            .map(|d| (d.rule.as_str(), d.channel.as_str()))
            .collect();
        assert_eq!(routes, [("uptime", "tg"), ("uptime", "hook")]);
        assert!(plan(&rules, &alert("api", false), None).is_empty());
        assert_eq!(plan(&[], &alert("api", false), None)[0].channel, "log");
    }
}
