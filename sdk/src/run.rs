//! One run of a monitored job, shared by `checkin::Run` and the macro's `JobRun`, and the
//! per-thread list of runs executing right now, which the panic hook marks as failed.
//!
//! A run sends `in_progress` when it starts and exactly one terminal check-in (same id, with the
//! duration) when it ends, whichever of `finish`, `Drop`, the async wrapper's `catch_unwind` or
//! the panic hook gets there first. Must never block or allocate on the caller's thread beyond
//! the first push onto this thread's list.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use uuid::Uuid;

use crate::client::{self, Client};
use crate::clock::Stamp;
use crate::job::JobSite;
use crate::protocol::{CheckInStatus, Event};
use crate::record::{CheckInRecord, Monitor, Task};

/// An open run.
pub(crate) struct ActiveRun {
    pub(crate) monitor: Monitor,
    pub(crate) id: Uuid,
    start: Stamp,
    /// Set once the terminal check-in was sent (or deliberately not sent).
    done: AtomicBool,
}

/// A run executing on this thread right now. Only `#[monitored_job]` runs register (a `Run`
/// from `checkin::start` may move between threads), so the monitor is always a static site.
struct Running {
    site: &'static JobSite,
    id: Uuid,
    start: Stamp,
    /// The panic hook already sent `error` for it.
    marked: bool,
}

thread_local! {
    static RUNNING: RefCell<Vec<Running>> = const { RefCell::new(Vec::new()) };
}

impl ActiveRun {
    /// Starts a run: reads the clock, draws an id and queues `in_progress`. With `on_thread`, the
    /// run is also registered as executing on this thread (for sync jobs; async jobs register per
    /// poll instead).
    #[inline(never)]
    pub(crate) fn begin(generation: usize, monitor: Monitor, on_thread: bool) -> ActiveRun {
        let start = Stamp::now();
        let id = crate::rng::uuid_v4();
        if on_thread && let Monitor::Site(site) = monitor {
            enter(site, id, start);
        }
        let record = CheckInRecord {
            monitor: monitor.clone(),
            id,
            status: CheckInStatus::InProgress,
            duration: None,
        };
        client::with_client(generation, |c| c.enqueue(Task::CheckIn(record)));
        ActiveRun {
            monitor,
            id,
            start,
            done: AtomicBool::new(false),
        }
    }

    /// Whether the terminal check-in was sent already.
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Relaxed)
    }

    /// Sends the terminal check-in (and the event `event` builds, linked to this run), unless
    /// the run already ended or the panic hook reported it.
    #[inline(never)]
    pub(crate) fn end(&self, status: CheckInStatus, event: impl FnOnce() -> Option<Event>) {
        // Load and store rather than `swap`: a run ends on one task at a time (`finish` takes
        // it by value, `Drop` and the async wrapper run on the task that owns it), and a plain
        // store costs no locked instruction.
        if self.done.load(Relaxed) {
            return;
        }
        self.done.store(true, Relaxed);
        let duration = self.start.elapsed();
        if leave(self.id) == Some(true) {
            return;
        }
        let generation = client::generation();
        if generation == 0 {
            return;
        }
        let event = event().map(|mut e| {
            link_event(&mut e, self.monitor.slug(), self.id);
            crate::scope::apply(&mut e);
            e
        });
        let record = CheckInRecord {
            monitor: self.monitor.clone(),
            id: self.id,
            status,
            duration: Some(duration),
        };
        client::with_client(generation, |c| {
            if let Some(event) = event {
                c.enqueue(Task::Event(Box::new(event)));
            }
            c.enqueue(Task::CheckIn(record));
        });
    }

    /// Marks the run as ended without sending anything (the panic hook sent it).
    pub(crate) fn mark_done(&self) {
        self.done.store(true, Relaxed);
    }

    /// Registers the run as executing on this thread (one poll of an async job).
    pub(crate) fn enter_thread(&self) {
        if let Monitor::Site(site) = self.monitor {
            enter(site, self.id, self.start);
        }
    }

    /// Unregisters it; returns whether the panic hook marked it meanwhile.
    pub(crate) fn leave_thread(&self) -> bool {
        leave(self.id) == Some(true)
    }
}

/// Links an event to a run: `contexts.monitor = {slug, check_in_id}`.
pub(crate) fn link_event(event: &mut Event, slug: &str, id: Uuid) {
    let monitor = serde_json::json!({ "slug": slug, "check_in_id": id.simple().to_string() });
    event
        .contexts
        .get_or_insert_with(Default::default)
        .insert("monitor".to_owned(), monitor);
}

#[inline]
fn enter(site: &'static JobSite, id: Uuid, start: Stamp) {
    let _ = RUNNING.try_with(|running| {
        if let Ok(mut running) = running.try_borrow_mut() {
            running.push(Running {
                site,
                id,
                start,
                marked: false,
            });
        }
    });
}

/// Removes the newest registration of `id` on this thread; `Some(marked)` if there was one.
#[inline]
fn leave(id: Uuid) -> Option<bool> {
    RUNNING
        .try_with(|running| {
            let mut running = running.try_borrow_mut().ok()?;
            let at = running.iter().rposition(|r| r.id == id)?;
            Some(running.remove(at).marked)
        })
        .ok()
        .flatten()
}

/// Whether this thread's locals still exist (false while the thread is being torn down).
pub(crate) fn thread_locals_alive() -> bool {
    RUNNING.try_with(|_| ()).is_ok()
}

/// The innermost run executing on this thread, for linking a panic event to it.
pub(crate) fn innermost_on_thread() -> Option<(String, Uuid)> {
    RUNNING
        .try_with(|running| {
            let running = running.try_borrow().ok()?;
            running.last().map(|r| (r.site.slug.to_owned(), r.id))
        })
        .ok()
        .flatten()
}

/// Sends `error` for every run executing on this thread that was not reported yet, and marks
/// them so that nothing reports them again. Called from the panic hook: never waits.
pub(crate) fn fail_runs_on_thread(client: &Client) {
    let _ = RUNNING.try_with(|running| {
        let Ok(mut running) = running.try_borrow_mut() else {
            return;
        };
        for run in running.iter_mut().filter(|r| !r.marked) {
            run.marked = true;
            client.enqueue(Task::CheckIn(CheckInRecord {
                monitor: Monitor::Site(run.site),
                id: run.id,
                status: CheckInStatus::Error,
                duration: Some(run.start.elapsed()),
            }));
        }
    });
}
