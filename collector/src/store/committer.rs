//! The committer: one thread that writes the write sets of concurrent requests to sled
//! together, one transaction per group, instead of one transaction per request.
//!
//! **Why.** In sled 0.34 every transaction starts by sealing the current log buffer and ends
//! by sealing the one holding its batch manifest (`pin_log`, `seal_batch`): two buffer writes
//! per transaction, each handed to sled's I/O thread pool, whose `notify_all` wakes all its
//! threads. It also takes a process-wide write lock that every other sled operation then
//! waits on. One transaction per check-in measured ~10 thread switches and ~145 µs of CPU per
//! check-in (`benches/README.md`, "Collector ingest"); a transaction per group shares that
//! cost among every request waiting meanwhile, and only this thread takes the write lock on
//! the request path.
//!
//! **How.** Requests encode their write set on their own thread ([`Prepared`]), send it here
//! and wait. The thread takes the first waiting write set, then every other one already queued
//! (up to [`MAX_GROUP`]), writes them in submission order in one transaction, numbers the
//! group with one write sequence number, flushes, and answers every request. While it writes
//! and flushes, the next group queues up: the busier the collector, the bigger the groups and
//! the cheaper each write. Nothing waits for more work to arrive: a lone request is written and
//! flushed at once, so grouping costs no latency. This thread is also the store's only
//! flusher (requests for a flush from other writers arrive as [`Job::Flush`]).
//!
//! **Atomicity.** Each write set is still all-or-nothing: it is written whole inside the
//! group's transaction, which succeeds or fails as one. A failed group fails every request in
//! it (the causes, a full disk or an I/O error, are not specific to one write set); nothing
//! of it was written.
//!
//! **Order.** Write sets of one monitor environment never meet in a group: the processor holds
//! the monitor's lock until its commit is answered. Write sets of different monitors commute.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::durability::GroupCommit;
use super::{Prepared, Seq, StoreError, Trees, space, write_group};

/// Write sets per transaction at most: bounds how long one transaction holds sled's lock.
pub(super) const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<Seq, StoreError>>;

enum Job {
    /// Write this, then flush.
    Write(Prepared, Reply),
    /// Flush what was written elsewhere; answer when done.
    Flush(oneshot::Sender<()>),
}

/// The handle the store keeps; dropping it stops the thread and waits for it.
pub(super) struct Committer {
    queue: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(super) fn start(
        db: sled::Db,
        trees: Trees,
        space: space::Space,
        group: Arc<GroupCommit>,
    ) -> Committer {
        let (queue, mut jobs) = mpsc::unbounded_channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("watchpost-commit".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(MAX_GROUP);
                let mut replies = Vec::with_capacity(MAX_GROUP);
                let mut flushes = Vec::new();
                while let Some(first) = jobs.blocking_recv() {
                    let mut next = Some(first);
                    while let Some(job) = next.take() {
                        match job {
                            Job::Write(prepared, reply) => {
                                batch.push(prepared);
                                replies.push(reply);
                            }
                            Job::Flush(done) => flushes.push(done),
                        }
                        if batch.len() < MAX_GROUP {
                            next = jobs.try_recv().ok();
                        }
                    }
                    let written = if batch.is_empty() {
                        None
                    } else {
                        Some(write_group(&trees, &space, &batch).map(|()| group.record_write()))
                    };
                    // Answer before flushing, so the writers release their monitors' locks
                    // while the fsync runs; they wait for it in `wait_durable`, which knows
                    // this flush is coming and does not ask for another. A failed flush is
                    // recorded in `group` and reported there.
                    if let Some(result) = written {
                        if let Ok(seq) = result {
                            group.will_flush(seq);
                        }
                        for reply in replies.drain(..) {
                            // A request that stopped waiting (its client went away) is fine:
                            // its write happened or failed like the others'.
                            let _ = reply.send(result.as_ref().copied().map_err(StoreError::again));
                        }
                    }
                    group.flush(&db);
                    for done in flushes.drain(..) {
                        let _ = done.send(());
                    }
                    batch.clear();
                }
            })
            .expect("spawn the store's committer thread");
        Committer {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    /// Writes `prepared` with whatever else is waiting and flushes; the sequence number to
    /// wait on (normally durable already).
    pub(super) async fn submit(&self, prepared: Prepared) -> Result<Seq, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Write(prepared, reply))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Flushes everything written so far.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.send(Job::Flush(done))?;
        answer.await.map_err(|_| StoreError::Closed)
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.queue
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
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
    }
}
