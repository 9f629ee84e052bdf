//! `watchpost store stats`: where the store's bytes go. Asks a running collector
//! (`GET /api/v1/store/stats`), or with `--data-dir` opens a stopped collector's store itself —
//! the one client command that opens the store, since a collector that will not start (a full
//! disk) is exactly when an operator needs the numbers.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::Value;

use super::client::{Client, Exit, Failure};
use super::{ApiArgs, pretty};
use crate::engine::text;
use crate::store::{Store, StoreError};

/// `watchpost store ...`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Records and bytes per tree, the database's files, the space amplification and the
    /// disk's free space.
    Stats {
        /// Read this data dir of a stopped collector instead of asking a running one.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Copies the store into a fresh database and swaps it in, giving back the space sled's
    /// log holds beyond the live data. A running collector pauses ingest only for the swap.
    Compact {
        /// Compact this data dir of a stopped collector instead of asking a running one.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// Runs `watchpost store ...`.
pub(super) async fn run(api: &ApiArgs, action: StoreCommand) -> Result<String, Failure> {
    match action {
        StoreCommand::Stats { data_dir } => {
            let stats = match data_dir {
                Some(dir) => tokio::task::spawn_blocking(move || offline(&dir))
                    .await
                    .map_err(|e| {
                        Failure::new(Exit::Server, format!("counting the store failed: {e}"))
                    })??,
                None => Client::new(api)?.get("/api/v1/store/stats").await?,
            };
            Ok(if api.json {
                pretty(&stats)
            } else {
                table(&stats)
            })
        }
        StoreCommand::Compact { data_dir } => {
            let report = match data_dir {
                Some(dir) => tokio::task::spawn_blocking(move || compact_offline(&dir))
                    .await
                    .map_err(|e| {
                        Failure::new(Exit::Server, format!("compacting the store failed: {e}"))
                    })??,
                None => {
                    Client::new(api)?
                        .post("/api/v1/store/compact", &Value::Null)
                        .await?
                }
            };
            Ok(if api.json {
                pretty(&report)
            } else {
                compacted(&report)
            })
        }
    }
}

/// Opens the stopped collector's store in `dir` (see [`offline`] for the refusals).
fn open_offline(dir: &Path, command: &str) -> Result<Store, Failure> {
    if !Store::exists(dir) {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "--data-dir {}: no store there (no db/db file); pass the data dir the collector \
                 runs with",
                dir.display()
            ),
        ));
    }
    Store::open(dir).map_err(|error| match error {
        StoreError::Locked { .. } => Failure::new(
            Exit::Server,
            format!(
                "--data-dir {}: a running collector holds this store; run `watchpost store \
                 {command}` without --data-dir to ask it (with --url and --token)",
                dir.display()
            ),
        ),
        other => Failure::new(Exit::Server, other.to_string()),
    })
}

/// Compacts the store in `dir` of a stopped collector.
fn compact_offline(dir: &Path) -> Result<Value, Failure> {
    let store = open_offline(dir, "compact")?;
    let report = store
        .compact()
        .map_err(|e| Failure::new(Exit::Server, e.to_string()))?;
    serde_json::to_value(&report)
        .map_err(|e| Failure::new(Exit::Server, format!("cannot print the report: {e}")))
}

/// One line: the sizes before and after, and how long ingest paused.
fn compacted(report: &Value) -> String {
    let n = |key: &str| report[key].as_u64().unwrap_or(0);
    let seconds = |key: &str| report[key].as_f64().unwrap_or(0.0);
    format!(
        "compacted {} into {}: {} -> {} on disk, {} records; copy {:.2} s, ingest paused {:.3} s",
        report["from"].as_str().unwrap_or("-"),
        report["to"].as_str().unwrap_or("-"),
        text::bytes(n("bytes_before")),
        text::bytes(n("bytes_after")),
        n("records"),
        seconds("copy_seconds"),
        seconds("pause_seconds"),
    )
}

/// The stats of the store in `dir`, counted by opening it (as `serve` would: a group a crash cut
/// short is completed first). A directory without a store is refused before anything is
/// created in it; a store in use is refused by its lock.
fn offline(dir: &Path) -> Result<Value, Failure> {
    let store = open_offline(dir, "stats")?;
    let usage = store
        .usage()
        .map_err(|e| Failure::new(Exit::Server, e.to_string()))?;
    let mut value = serde_json::to_value(&usage)
        .map_err(|e| Failure::new(Exit::Server, format!("cannot print the stats: {e}")))?;
    value["disk"] = serde_json::to_value(store.disk_space()).unwrap_or(Value::Null);
    Ok(value)
}

/// Trees with data, largest first, then the files, the amplification and the disk.
fn table(stats: &Value) -> String {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut trees: Vec<&Value> = stats["trees"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| n(&t["records"]) > 0)
        .collect();
    let live = |t: &Value| n(&t["key_bytes"]) + n(&t["value_bytes"]);
    trees.sort_by_key(|t| std::cmp::Reverse(live(t)));
    let mut rows: Vec<Vec<String>> = trees
        .iter()
        .map(|t| {
            vec![
                t["tree"].as_str().unwrap_or("-").to_owned(),
                n(&t["records"]).to_string(),
                text::bytes(n(&t["key_bytes"])),
                text::bytes(n(&t["value_bytes"])),
                text::bytes(live(t)),
            ]
        })
        .collect();
    rows.push(vec![
        "all trees".to_owned(),
        trees
            .iter()
            .map(|t| n(&t["records"]))
            .sum::<u64>()
            .to_string(),
        String::new(),
        String::new(),
        text::bytes(n(&stats["live_bytes"])),
    ]);
    let mut out = super::table::render(&["TREE", "RECORDS", "KEYS", "VALUES", "LIVE"], &rows);
    out.push_str("\n\n");
    let files: Vec<String> = stats["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| n(&f["bytes"]) > 0)
        .map(|f| {
            format!(
                "{} {}",
                f["file"].as_str().unwrap_or("-"),
                text::bytes(n(&f["bytes"]))
            )
        })
        .collect();
    out.push_str(&format!(
        "on disk: {} ({}); {:.1} bytes on disk per live byte\n",
        text::bytes(n(&stats["files_bytes"])),
        files.join(", "),
        stats["amplification"].as_f64().unwrap_or(0.0)
    ));
    match (
        stats["disk"]["available"].as_u64(),
        stats["disk"]["total"].as_u64(),
    ) {
        (Some(available), Some(total)) => out.push_str(&format!(
            "disk: {} free of {}",
            text::bytes(available),
            text::bytes(total)
        )),
        _ => out.push_str("disk: free space unknown"),
    }
    out
}
