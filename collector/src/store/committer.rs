//! The committer: one thread that writes the write sets of concurrent requests to sled
//! together, one group at a time, and flushes after each group.
//!
//! **Why.** sled's fixed cost per atomic write is high: in 0.34 every transaction seals two log
//! buffers and wakes all seven threads of sled's I/O pool for each, and takes a process-wide
//! lock every other sled operation then waits on. One transaction per check-in measured ~10
//! thread switches and ~145 µs of CPU per check-in; so did one flush per request. Here one
//! group write (atomic without a transaction, see `redo.rs`) and one flush serve every request
//! that queued meanwhile (`benches/README.md`, "Collector ingest").
//!
//! **How.** Requests encode their write set on their own thread ([`Prepared`]), send it here
//! and wait. The thread takes the first waiting write set, then every other one already queued
//! (up to [`MAX_GROUP`]), writes them in submission order, numbers the group with one write
//! sequence number, answers every request, and flushes. While it writes and flushes, the next
//! group queues up: the busier the collector, the bigger the groups and the cheaper each
//! write. Nothing waits for more work to arrive: a lone request is written and flushed at
//! once, so grouping costs no latency. This thread is also the store's only flusher (requests
//! for a flush from other writers arrive as [`Job::Flush`]).
//!
//! **Atomicity.** Each write set is all-or-nothing: `redo.rs` makes a group whole after a
//! crash. A group that fails fails every request in it (the causes, a full disk or an I/O
//! error, are not specific to one write set).
//!
//! **Order.** Write sets of one monitor environment never meet in a group: the processor holds
//! the monitor's lock until its commit is answered. Write sets of different monitors commute.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::durability::GroupCommit;
use super::redo::Writer;
use super::{Prepared, Seq, StoreError, Trees, space};

/// Write sets per group at most: bounds how long one group keeps the others waiting.
pub(super) const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<Seq, StoreError>>;

enum Job {
    /// Write this, then flush.
    Write(Box<Prepared>, Reply),
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
        writer: Arc<parking_lot::Mutex<Writer>>,
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
                                batch.push(*prepared);
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
                        let result = space
                            .check()
                            .and_then(|()| writer.lock().write_group(&db, &trees, &batch));
                        Some(result.map(|()| group.record_write()))
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
        self.send(Job::Write(Box::new(prepared), reply))?;
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
