//! Load generator for the collector's envelope ingest.
//!
//! Opens `--connections` keep-alive HTTP/1.1 connections to `POST /api/{project}/envelope/` and
//! sends one `check_in` envelope per request: `in_progress` then `ok` with the same
//! `check_in_id` for one of `--monitors` monitors, each carrying `monitor_config` as
//! sentry-python does. Reports acknowledged (2xx) check-ins per second and latency percentiles.
//!
//! With `--batch N` each request carries N check-ins for N different monitors (opening N runs,
//! then closing them), as the watchpost SDK's transport batches the check-ins queued while it
//! was sending; throughput and `--rate` still count check-ins, latency is per request.
//!
//! At a fixed `--rate` the latency of a request is measured from the moment it was *scheduled*
//! to be sent, not from when it was written, so a stalled server shows up in the percentiles
//! instead of silently lowering the offered load (no coordinated omission). At `--rate 0` every
//! connection sends its next request as soon as the previous one is answered.
//!
//! ```text
//! cargo run --release -p watchpost-benches --bin loadgen -- \
//!     --url http://127.0.0.1:8470 --dsn-key <key> --project 1 --rate 10000 --duration 30s
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use uuid::Uuid;

#[derive(Parser, Debug, Clone)]
#[command(about = "Drive a Watchpost collector's envelope endpoint with check-ins")]
struct Args {
    /// Base URL of the collector (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8470")]
    url: String,
    /// A public key of the project (the part of the DSN before `@`).
    #[arg(long)]
    dsn_key: String,
    /// Project id (the last path segment of the DSN).
    #[arg(long, default_value_t = 1)]
    project: u64,
    /// Target check-ins per second over all connections; 0 sends as fast as the server answers.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to measure, e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load sent before measuring starts (not counted), e.g. `2s`.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Distinct monitor slugs the check-ins are spread over.
    #[arg(long, default_value_t = 1000)]
    monitors: usize,
    /// Check-ins per envelope (1, as Sentry SDKs send them; more, as the watchpost SDK batches).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Runtime worker threads for the generator itself.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Where to connect and what to send, shared by every connection task.
struct Target {
    authority: String,
    path: String,
    auth_header: String,
}

/// What one connection observed during the measured window.
#[derive(Default)]
struct Tally {
    /// Latency of each acknowledged request, in microseconds.
    latencies_us: Vec<u32>,
    /// Check-ins acknowledged (requests times `--batch`).
    acked: u64,
    /// Non-2xx answers by status code.
    rejected: BTreeMap<u16, u64>,
    /// Connection or protocol errors.
    errors: u64,
    /// Requests scheduled within the window but never sent because the server fell behind.
    unsent: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.acked += other.acked;
        for (status, n) in other.rejected {
            *self.rejected.entry(status).or_default() += n;
        }
        self.errors += other.errors;
        self.unsent += other.unsent;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.monitors == 0 || args.threads == 0 || args.batch == 0 {
        bail!("--connections, --monitors, --threads and --batch must be at least 1");
    }
    if args.batch > args.monitors {
        bail!("--batch cannot exceed --monitors: one envelope's check-ins go to distinct monitors");
    }
    let rest = args
        .url
        .strip_prefix("http://")
        .context("--url must start with http:// (the load generator speaks plain HTTP/1.1)")?;
    let (authority, prefix) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let target = Target {
        authority: authority.to_owned(),
        path: format!("{prefix}/api/{}/envelope/", args.project),
        auth_header: format!(
            "Sentry sentry_key={}, sentry_version=7, sentry_client=watchpost-loadgen/0.1",
            args.dsn_key
        ),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let (tally, measured) = runtime.block_on(run(&args, target))?;
    print!("{}", report(&args, tally, measured));
    Ok(())
}

async fn run(args: &Args, target: Target) -> anyhow::Result<(Tally, Duration)> {
    let target = Arc::new(target);
    // Fail fast with a clear message when nothing listens, instead of N connection errors.
    TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("cannot connect to {}", target.authority))?;

    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let mut tasks = Vec::with_capacity(args.connections);
    for conn in 0..args.connections {
        let plan = Plan {
            conn,
            connections: args.connections,
            monitors: args.monitors,
            batch: args.batch,
            rate: args.rate,
            start,
            measure_from,
            end,
        };
        tasks.push(tokio::spawn(connection(plan, Arc::clone(&target))));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await?);
    }
    Ok((tally, end - measure_from))
}

/// One connection's share of the work.
struct Plan {
    conn: usize,
    connections: usize,
    monitors: usize,
    batch: usize,
    rate: u64,
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

async fn connection(plan: Plan, target: Arc<Target>) -> Tally {
    let mut tally = Tally::default();
    // Each connection sends every `period`; offsets spread the connections evenly over a period.
    // `rate` counts check-ins, so a request of `batch` check-ins is sent `batch` times less often.
    let period = (plan.rate > 0).then(|| {
        Duration::from_secs_f64((plan.connections * plan.batch) as f64 / plan.rate as f64)
    });
    let offset = period.map_or(Duration::ZERO, |p| {
        p * plan.conn as u32 / plan.connections as u32
    });
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    let mut runs: Vec<(usize, Uuid)> = Vec::with_capacity(plan.batch);
    let mut monitor = plan.conn % plan.monitors;

    for seq in 0u64.. {
        let scheduled = match period {
            Some(p) => {
                let at = plan.start + offset + p.mul_f64(seq as f64);
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        if scheduled >= plan.end {
            break;
        }
        // A server slower than the offered rate leaves this connection behind its schedule.
        // Requests it could not even send before the window closed are reported, not sent late.
        if let Some(p) = period
            && Instant::now() >= plan.end
        {
            let left = (plan.end - scheduled).as_secs_f64() / p.as_secs_f64();
            tally.unsent += left.ceil() as u64 * plan.batch as u64;
            break;
        }
        // Even requests open a run on each of the next `batch` monitors, odd ones close them
        // with the same ids.
        let body = if seq % 2 == 0 {
            runs.clear();
            while runs.len() < plan.batch {
                monitor = (monitor + plan.connections) % plan.monitors;
                if runs.iter().any(|&(m, _)| m == monitor) {
                    // The stride cycled back (connections and monitors share a factor): step on.
                    monitor = (monitor + 1) % plan.monitors;
                    continue;
                }
                runs.push((monitor, Uuid::new_v4()));
            }
            envelope(&runs, None)
        } else {
            envelope(&runs, Some(0.25))
        };
        let counted = scheduled >= plan.measure_from;

        let result = send(&mut sender, &target, body).await;
        match result {
            Ok(status) if (200..300).contains(&status) => {
                if counted {
                    let us = scheduled.elapsed().as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                    tally.acked += plan.batch as u64;
                }
            }
            Ok(status) => {
                if counted {
                    *tally.rejected.entry(status).or_default() += plan.batch as u64;
                }
            }
            Err(err) => {
                sender = None;
                if counted {
                    tally.errors += plan.batch as u64;
                    tally.first_error.get_or_insert_with(|| format!("{err:#}"));
                }
            }
        }
    }
    tally
}

/// Sends one envelope over the connection, (re)connecting first if needed; returns the status.
async fn send(
    sender: &mut Option<http1::SendRequest<Full<Bytes>>>,
    target: &Target,
    body: Bytes,
) -> anyhow::Result<u16> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        let stream = TcpStream::connect(&target.authority).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        *sender = Some(send);
    }
    let Some(send) = sender.as_mut() else {
        unreachable!("connected above")
    };
    send.ready().await?;
    let request = hyper::Request::post(&target.path)
        .header(hyper::header::HOST, &target.authority)
        .header("x-sentry-auth", &target.auth_header)
        .header(hyper::header::CONTENT_TYPE, "application/x-sentry-envelope")
        .body(Full::new(body))?;
    let response = send.send_request(request).await?;
    let status = response.status().as_u16();
    // Drain the body so the connection can carry the next request.
    response.into_body().collect().await?;
    Ok(status)
}

/// A sentry-python style envelope with one check-in item per `(monitor, run id)`:
/// `in_progress` when `duration` is `None`, else `ok` with that duration in seconds. Each
/// carries `monitor_config`, as sentry-python sends.
fn envelope(runs: &[(usize, Uuid)], duration: Option<f64>) -> Bytes {
    let mut envelope = String::with_capacity(16 + 360 * runs.len());
    envelope.push_str("{}\n");
    let mut item = String::with_capacity(320);
    for &(monitor, id) in runs {
        item.clear();
        let _ = write!(
            item,
            r#"{{"check_in_id":"{}","monitor_slug":"load-{monitor}","status":"{}","#,
            id.simple(),
            if duration.is_some() {
                "ok"
            } else {
                "in_progress"
            },
        );
        if let Some(seconds) = duration {
            let _ = write!(item, r#""duration":{seconds},"#);
        }
        item.push_str(
            r#""environment":"production","monitor_config":{"schedule":{"type":"crontab","value":"*/5 * * * *"},"checkin_margin":5,"max_runtime":30}}"#,
        );
        let _ = write!(
            envelope,
            "{{\"type\":\"check_in\",\"length\":{}}}\n{item}\n",
            item.len()
        );
    }
    Bytes::from(envelope)
}

fn report(args: &Args, mut tally: Tally, measured: Duration) -> String {
    tally.latencies_us.sort_unstable();
    let latencies = &tally.latencies_us;
    let acked = tally.acked;
    let rejected: u64 = tally.rejected.values().sum();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        f64::from(latencies[rank.clamp(1, latencies.len()) - 1]) / 1000.0
    };
    let offered = if args.rate == 0 {
        "max".to_owned()
    } else {
        format!("{}/s", args.rate)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "offered {offered} over {} connections, {} monitors, {} check-in(s) per envelope, measured {:.1}s (after {:.1}s warm-up)",
        args.connections,
        args.monitors,
        args.batch,
        measured.as_secs_f64(),
        args.warmup.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "acknowledged {acked} check-ins: {:.0}/s",
        acked as f64 / measured.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        pct(100.0)
    );
    if tally.unsent > 0 {
        let _ = writeln!(
            out,
            "behind schedule: {} check-ins scheduled in the window were not sent before it closed",
            tally.unsent
        );
    }
    if rejected > 0 {
        let _ = writeln!(
            out,
            "rejected {rejected}: {:?} (status: count)",
            tally.rejected
        );
    }
    if tally.errors > 0 {
        let _ = writeln!(
            out,
            "errors {}: first: {}",
            tally.errors,
            tally.first_error.as_deref().unwrap_or("?")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_declared_length_and_parses_as_a_check_in() {
        let id = Uuid::new_v4();
        for duration in [None, Some(0.25)] {
            let bytes = envelope(&[(7, id)], duration);
            let text = std::str::from_utf8(&bytes).unwrap();
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some("{}"));
            let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
            let item = lines.next().unwrap();
            assert_eq!(header["length"].as_u64().unwrap() as usize, item.len());
            let checkin: watchpost_protocol::CheckIn = serde_json::from_str(item).unwrap();
            assert_eq!(checkin.monitor_slug, "load-7");
            assert_eq!(checkin.check_in_id, Some(id));
            assert_eq!(checkin.duration, duration);
            assert!(checkin.monitor_config.is_some());
        }
    }

    #[test]
    fn a_batch_envelope_parses_with_one_check_in_per_run() {
        let runs: Vec<_> = (0..5).map(|m| (m * 3, Uuid::new_v4())).collect();
        let bytes = envelope(&runs, Some(1.0));
        let parsed = watchpost_protocol::Envelope::parse(&bytes).unwrap();
        assert_eq!(parsed.items.len(), runs.len());
        for (item, (monitor, id)) in parsed.items.iter().zip(&runs) {
            let checkin: watchpost_protocol::CheckIn =
                serde_json::from_slice(&item.payload).unwrap();
            assert_eq!(checkin.monitor_slug, format!("load-{monitor}"));
            assert_eq!(checkin.check_in_id, Some(*id));
        }
    }
}
