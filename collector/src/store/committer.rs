//! The committer: one thread that writes the write sets of concurrent requests to sled
//! together, one group at a time, and a flush thread that makes them durable behind it.
//!
//! **Why.** sled's fixed cost per atomic write is high: in 0.34 every transaction seals two log
//! buffers and hands each to sled's I/O pool, and takes a process-wide lock every other sled
//! operation then waits on. One transaction per check-in measured ~10 thread switches and
//! ~145 µs of CPU per check-in; so did one flush per request. Here one group write (atomic
//! without a transaction, see `redo.rs`) and one flush serve every request that queued
//! meanwhile (`benches/README.md`, "Collector ingest").
//!
//! **How.** Requests encode their write set on their own thread ([`Prepared`]), send it here
//! and wait. The thread takes the first waiting write set, then every other one already queued
//! (up to [`MAX_GROUP`]), writes them in submission order, numbers the group with one write
//! sequence number, asks the flush thread for a flush and answers every request, which then
//! waits for that flush in `wait_durable`. The committer does not wait for the fsync: it
//! writes the next group while the flush thread flushes the last, and the next flush covers
//! every group written meanwhile. The busier the collector, the bigger the groups and the
//! flushes, and the cheaper each write. Nothing waits for more work to arrive: a lone request
//! is written and flushed at once, so grouping costs no latency. The flush thread is the
//! store's only flusher (requests for a flush from other writers arrive as [`Job::Flush`]).
//!
//! **Atomicity.** Each write set is all-or-nothing: `redo.rs` makes a group whole after a
//! crash. A flush may land while a group is half written; a crash then leaves at most that
//! one group cut, which is what `redo.rs` completes. A group that fails fails every request
//! in it (the causes, a full disk or an I/O error, are not specific to one write set).
//!
//! **Order.** Write sets of one monitor environment never meet in a group: the processor holds
//! the monitor's lock until its commit is answered. Write sets of different monitors commute.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::durability::GroupCommit;
use super::durability::Seq;
use super::error::StoreError;
use super::handles::Handles;
use super::prepared::Prepared;
use super::redo::Writer;
use super::space;

/// Write sets per group at most: bounds how long one group keeps the others waiting.
pub(super) const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<Seq, StoreError>>;

enum Job {
    /// Write this; the flush thread makes it durable.
    Write(Box<Prepared>, Reply),
    /// Flush what was written elsewhere; answer when done.
    Flush(oneshot::Sender<()>),
}

/// The handle the store keeps; dropping it stops both threads and waits for them.
pub(super) struct Committer {
    queue: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
    flusher: Arc<Flushes>,
    flush_thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(super) fn start(
        handles: Arc<parking_lot::RwLock<Handles>>,
        space: space::Space,
        group: Arc<GroupCommit>,
        writer: Arc<parking_lot::Mutex<Writer>>,
    ) -> Committer {
        let flusher = Arc::new(Flushes::default());
        let flush_thread = {
            let (handles, group, flusher) = (handles.clone(), group.clone(), flusher.clone());
            std::thread::Builder::new()
                .name("watchpost-flush".into())
                .spawn(move || flusher.run(&handles, &group))
                .expect("spawn the store's flush thread")
        };
        let (queue, mut jobs) = mpsc::unbounded_channel::<Job>();
        let thread = {
            let flusher = flusher.clone();
            std::thread::Builder::new()
                .name("watchpost-commit".into())
                .spawn(move || {
                    let mut batch = Vec::with_capacity(MAX_GROUP);
                    let mut replies = Vec::with_capacity(MAX_GROUP);
                    while let Some(first) = jobs.blocking_recv() {
                        let mut next = Some(first);
                        while let Some(job) = next.take() {
                            match job {
                                // A request that gave up waiting (its deadline passed while
                                // an earlier group was stuck) was answered `503 retry later`:
                                // writing it now would store what the client will send again.
                                Job::Write(_, reply) if reply.is_closed() => {}
                                Job::Write(prepared, reply) => {
                                    batch.push(*prepared);
                                    replies.push(reply);
                                }
                                Job::Flush(done) => flusher.want(Some(done)),
                            }
                            if batch.len() < MAX_GROUP {
                                next = jobs.try_recv().ok();
                            }
                        }
                        if batch.is_empty() {
                            continue;
                        }
                        // Under the handles' read lock: a compaction's swap waits for the
                        // group, and the next group waits for the swap (`compact.rs`).
                        let result = group
                            .writing(|| {
                                let handles = handles.read_recursive();
                                space.check().map_err(StoreError::from).and_then(|()| {
                                    writer
                                        .lock()
                                        .write_group(&handles.ids, &handles.trees, &batch)
                                })
                            })
                            .map(|()| group.record_write());
                        // Announced before the writers hear back, so that they wait in
                        // `wait_durable` for the flush asked for below and do not ask for
                        // another. A failed flush is recorded in `group` and reported there.
                        if let Ok(seq) = result {
                            group.will_flush(seq);
                            flusher.want(None);
                        }
                        for reply in replies.drain(..) {
                            // A request that stopped waiting (its client went away) is fine:
                            // its write happened or failed like the others'.
                            let _ = reply.send(result.as_ref().copied().map_err(StoreError::again));
                        }
                        batch.clear();
                    }
                })
                .expect("spawn the store's committer thread")
        };
        Committer {
            queue: Some(queue),
            thread: Some(thread),
            flusher,
            flush_thread: Some(flush_thread),
        }
    }

    /// Writes `prepared` with whatever else is waiting; the sequence number to wait on for
    /// its durability (the flush is already asked for). Gives up after `deadline` with
    /// [`StoreError::Stalled`]: a write set still queued then is never written; one whose
    /// group had already started may still land (like a write that was not confirmed durable).
    pub(super) async fn submit(
        &self,
        prepared: Prepared,
        deadline: Duration,
    ) -> Result<Seq, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Write(Box::new(prepared), reply))?;
        match tokio::time::timeout(deadline, answer).await {
            Ok(answer) => answer.map_err(|_| StoreError::Closed)?,
            Err(_) => Err(StoreError::Stalled {
                what: "write",
                waited: deadline,
            }),
        }
    }

    /// Flushes everything written so far; [`StoreError::Stalled`] after `deadline`.
    pub(super) async fn flush(&self, deadline: Duration) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.send(Job::Flush(done))?;
        match tokio::time::timeout(deadline, answer).await {
            Ok(answer) => answer.map_err(|_| StoreError::Closed),
            Err(_) => Err(StoreError::Stalled {
                what: "flush",
                waited: deadline,
            }),
        }
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.queue
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }
}

/// The flush thread's to-do list: whether a flush is wanted and who waits for it to end.
#[derive(Default)]
struct Flushes {
    state: parking_lot::Mutex<FlushState>,
    ready: parking_lot::Condvar,
}

#[derive(Default)]
struct FlushState {
    /// Something was written (or a flush asked for) since the last flush started.
    wanted: bool,
    /// Told when the next flush has ended.
    waiting: Vec<oneshot::Sender<()>>,
    /// Stop once nothing is wanted any more.
    stop: bool,
}

impl Flushes {
    /// Asks for a flush that starts after this call; `done` is told when it has ended.
    fn want(&self, done: Option<oneshot::Sender<()>>) {
        let mut state = self.state.lock();
        state.wanted = true;
        state.waiting.extend(done);
        drop(state);
        self.ready.notify_one();
    }

    fn stop(&self) {
        self.state.lock().stop = true;
        self.ready.notify_one();
    }

    /// One flush at a time, each covering everything written before it started, for as long
    /// as flushes are wanted; requests that arrive during a flush share the next one.
    fn run(&self, handles: &parking_lot::RwLock<Handles>, group: &GroupCommit) {
        loop {
            let waiting = {
                let mut state = self.state.lock();
                while !state.wanted && !state.stop {
                    self.ready.wait(&mut state);
                }
                if !state.wanted {
                    return;
                }
                state.wanted = false;
                std::mem::take(&mut state.waiting)
            };
            // The database of the moment and the writes made so far, read together: every
            // write numbered up to `target` is in that database (a compaction's copy holds,
            // flushed, every write the old one did: `compact.rs`). The fsync itself runs
            // without the lock, so that a compaction waiting to swap waits for no fsync.
            let (db, target) = {
                let handles = handles.read_recursive();
                (handles.db.clone(), group.written())
            };
            group.flush_upto(&db, target);
            for done in waiting {
                let _ = done.send(());
            }
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has answered what was queued; joining it
        // releases its handles on sled before the database itself is dropped.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Then the flush thread, after the flush of the last group.
        self.flusher.stop();
        if let Some(thread) = self.flush_thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long a request waits for the committer to write its write set. A group normally takes
/// milliseconds (256 write sets at most); 5 s means the committer is stuck inside sled, and
/// together with the processor's 5 s wait for durability it bounds a request's store time
/// at 10 s, well inside the 30 s timeouts of common HTTP clients, so the client sees a `503
/// ... retry later` rather than its own timeout.
pub(super) const WRITE_DEADLINE: Duration = Duration::from_secs(5);
