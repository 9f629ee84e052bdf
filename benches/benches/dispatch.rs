//! The dispatcher's cost per delivery with 10 and with 100,000 deliveries pending on the
//! channel, side by side in one run: what a storm's backlog costs each delivery.
//!
//! Each size has its own real sled store in a temp dir, filled with that many pending
//! deliveries for one `webhook` channel, and a real `Dispatcher` over it whose webhook posts
//! to a loopback HTTP server written for the bench: it reads the request and answers `200`
//! with an empty body, nothing more, so the figure is the dispatcher's own work (take the
//! next entry, format the JSON, one `POST` on a kept-alive loopback connection, record the
//! outcome in sled) plus the cheapest send there is. The server answers only as many
//! requests as the bench allows: the bench adds 10 deliveries to the backlog (untimed), lets
//! 10 through and times until they are answered, and so on for the `iters` criterion asks;
//! between chunks the dispatcher waits on its next send. So every delivery is made with
//! between N and N + 10 pending, N being 10 or 100,000.
//!
//! All deliveries are about one subject (a flapping probe) with dedup off: none can go ahead
//! of the backlog (its older alerts are always pending), so every delivery takes the in-order
//! path a storm's backlog takes; dedup would suppress the repeats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, oneshot, watch};
use watchpost_collector::alert::{
    Channel, ChannelOptions, DispatchOptions, Dispatcher, NewDelivery, http_client,
};
use watchpost_collector::config::{self, ChannelKind, Secret};
use watchpost_collector::store::{Store, WriteSet};
use watchpost_engine::alerting::{Links, Payload, probe_alert};
use watchpost_engine::probes::ProbeNotice;

const CHANNEL: &str = "hook";
/// Deliveries let through at a time (see [`Rig::deliver`]).
const CHUNK: u64 = 10;

fn delivery() -> NewDelivery {
    let change = ProbeNotice {
        down: true,
        name: "api".to_owned(),
        url: "http://127.0.0.1:8080/health".to_owned(),
        status_code: Some(503),
        error: None,
        since: None,
    };
    NewDelivery {
        channel: CHANNEL.to_owned(),
        rule: "uptime".to_owned(),
        payload: Payload::Alert(probe_alert(
            &change,
            &Links::new("http://127.0.0.1:8470"),
            Utc::now(),
        )),
    }
}

/// Adds `n` pending deliveries, in write sets of up to 1,000.
fn fill(store: &Store, n: u64) {
    let mut left = n;
    while left > 0 {
        let chunk = left.min(1_000);
        let set = WriteSet {
            deliveries: (0..chunk).map(|_| delivery()).collect(),
            ..WriteSet::default()
        };
        store.commit(&set, Utc::now()).unwrap();
        left -= chunk;
    }
}

/// The loopback webhook: answers a request only with a permit; counts its answers.
async fn serve(
    listener: tokio::net::TcpListener,
    permits: Arc<Semaphore>,
    answered: watch::Sender<u64>,
) {
    let answered = Arc::new(answered);
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let (permits, answered) = (Arc::clone(&permits), Arc::clone(&answered));
        tokio::spawn(async move {
            let (read, mut write) = socket.into_split();
            let mut read = BufReader::new(read);
            let mut line = String::new();
            loop {
                let mut length = 0;
                loop {
                    line.clear();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let header = line.to_ascii_lowercase();
                    if let Some(value) = header.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                read.read_exact(&mut body).await.unwrap();
                permits.acquire().await.unwrap().forget();
                write
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await
                    .unwrap();
                answered.send_modify(|n| *n += 1);
            }
        });
    }
}

/// A store with `pending` deliveries and a dispatcher draining it into the gated webhook.
struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    permits: Arc<Semaphore>,
    answered: watch::Receiver<u64>,
    stop: Option<oneshot::Sender<()>>,
}

impl Rig {
    fn new(runtime: &Runtime, pending: u64) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        // One more than the backlog: the one the dispatcher holds in its waiting send.
        fill(&store, pending + 1);
        store.flush_blocking().unwrap();

        let permits = Arc::new(Semaphore::new(0));
        let (answered_tx, answered) = watch::channel(0);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        runtime.spawn(serve(listener, Arc::clone(&permits), answered_tx));

        let options = DispatchOptions {
            dedup_window: Duration::ZERO,
            channels: ChannelOptions {
                // The bench holds a send between samples: it must not time out.
                timeout: Duration::from_secs(3600),
                ..ChannelOptions::default()
            },
            ..DispatchOptions::default()
        };
        let client = http_client(&options.channels).unwrap();
        let channel = Channel::from_config(
            &config::Channel {
                name: CHANNEL.to_owned(),
                kind: ChannelKind::Webhook {
                    url: Secret::new(url),
                },
                template: None,
            },
            &client,
            &options.channels,
        )
        .unwrap();
        let dispatcher = Dispatcher::new(Arc::new(store.clone()), vec![channel], options);
        let flusher = store.clone();
        runtime.spawn(async move {
            let (flusher_stop, flusher_stopped) = oneshot::channel::<()>();
            let flush = tokio::spawn(async move {
                flusher
                    .run_flusher(async {
                        let _ = flusher_stopped.await;
                    })
                    .await;
            });
            dispatcher.run(stopped).await;
            let _ = flusher_stop.send(());
            let _ = flush.await;
        });
        let rig = Rig {
            _dir: dir,
            store,
            permits,
            answered,
            stop: Some(stop),
        };
        // The dispatcher has loaded its backlog once it waits on its first send.
        rig.deliver(runtime, 1);
        rig
    }

    /// Lets `n` deliveries through, [`CHUNK`] at a time, and returns how long they took. Each
    /// chunk is added to the backlog first (untimed), so the backlog stays within `CHUNK` of
    /// its size whatever `n` criterion asks for.
    fn deliver(&self, runtime: &Runtime, n: u64) -> Duration {
        let mut answered = self.answered.clone();
        let mut total = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let chunk = left.min(CHUNK);
            fill(&self.store, chunk);
            let target = *answered.borrow() + chunk;
            let start = Instant::now();
            self.permits.add_permits(usize::try_from(chunk).unwrap());
            runtime
                .block_on(answered.wait_for(|&done| done >= target))
                .unwrap();
            total += start.elapsed();
            left -= chunk;
        }
        total
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Lets the waiting send finish so the dispatcher can stop.
        self.permits.add_permits(1);
    }
}

fn dispatch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sizes = [10, 100_000];
    let rigs: Vec<Rig> = sizes.iter().map(|&n| Rig::new(&runtime, n)).collect();
    let mut group = c.benchmark_group("dispatch/per_delivery");
    for (rig, pending) in rigs.iter().zip(sizes) {
        group.bench_with_input(BenchmarkId::new("pending", pending), &pending, |b, _| {
            b.iter_custom(|iters| rig.deliver(&runtime, iters));
        });
        // The backlog plus the one in its send, and the last answered if its save is late.
        let left = watchpost_collector::alert::Outbox::pending_count(&rig.store, CHANNEL) as u64;
        assert!(
            (pending + 1..=pending + 2).contains(&left),
            "the backlog stayed at its size: {left} pending"
        );
    }
    group.finish();
    drop(rigs);
    runtime.shutdown_timeout(Duration::from_secs(10));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(15));
    targets = dispatch
}
criterion_main!(benches);
