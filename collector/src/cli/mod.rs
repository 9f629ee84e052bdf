//! The client commands of the `watchpost` binary: `monitors`, `issues`, `incidents` (the
//! management API, with the admin token) and `checkin` (the ingest API, with a DSN), for people
//! at a terminal and for shell scripts.
//!
//! Human tables by default, the API's own JSON with `--json`, and exit codes a script can rely
//! on ([`Exit`]). It is a client only — except `store stats --data-dir` (`store.rs`), which reads
//! a stopped collector's store — and it never prints the token.

mod client;
mod store;
mod table;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::engine::text::percent_encode;
pub use client::{ApiArgs, Exit};
use client::{Client, Failure};
pub use store::StoreCommand;

/// The exit codes, as documented in every command's help and in `docs/cli.md`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the collector failed or is unreachable (5xx, connection refused, unexpected answer)
  2  usage: bad arguments, or input the collector refused (400)
  3  not found: no such monitor, issue or route (404)
  4  authentication: no admin token, or a wrong token or DSN key (401/403)";

/// `watchpost monitors|issues|incidents|checkin`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, inspect, mute, disable or delete monitors.
    #[command(after_help = EXIT_CODES)]
    Monitors {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        action: MonitorsCommand,
    },
    /// List, inspect and resolve issues (grouped error events).
    #[command(after_help = EXIT_CODES)]
    Issues {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        action: IssuesCommand,
    },
    /// List incidents.
    #[command(after_help = EXIT_CODES)]
    Incidents {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        action: IncidentsCommand,
    },
    /// Snooze uptime probes.
    #[command(after_help = EXIT_CODES)]
    Probes {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        action: ProbesCommand,
    },
    /// Send one check-in (for shell scripts). Prints the check-in id, so an `in_progress` can
    /// be closed with `--check-in-id`.
    #[command(after_help = EXIT_CODES)]
    Checkin(CheckinArgs),
    /// Where the store's bytes go: records and bytes per tree, files on disk, free space.
    #[command(after_help = EXIT_CODES)]
    Store {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        action: StoreCommand,
    },
}

/// A monitor: project and slug.
#[derive(Debug, Clone, Args)]
pub struct MonitorRef {
    /// Project id.
    project: u64,
    /// Monitor slug.
    slug: String,
    /// Only this environment [default: all of them].
    #[arg(short, long, value_name = "ENV")]
    environment: Option<String>,
}

/// `watchpost monitors ...`.
#[derive(Debug, Subcommand)]
pub enum MonitorsCommand {
    /// Every monitor environment with its status and schedule.
    List {
        /// Only this project.
        #[arg(long)]
        project: Option<u64>,
        /// Only this environment.
        #[arg(short, long, value_name = "ENV")]
        environment: Option<String>,
        /// Only this status.
        #[arg(long, value_parser = ["active", "ok", "error", "disabled"])]
        status: Option<String>,
    },
    /// A monitor's environments and its newest check-ins.
    Show {
        #[command(flatten)]
        monitor: MonitorRef,
        /// How many check-ins to show.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
    },
    /// Keep tracking, stop alerting.
    Mute(MonitorRef),
    /// Alert again.
    Unmute(MonitorRef),
    /// Drop check-ins and stop detecting missed runs.
    Disable(MonitorRef),
    /// Accept check-ins again.
    Enable(MonitorRef),
    /// Hold alerts for a while: incidents still open when it ends are alerted then.
    Snooze {
        #[command(flatten)]
        monitor: MonitorRef,
        /// How long, e.g. `2h` (at most 30 days).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
    },
    /// End a snooze.
    Unsnooze(MonitorRef),
    /// Delete the monitor with its history.
    Delete(MonitorRef),
}

/// `watchpost issues ...`.
#[derive(Debug, Subcommand)]
pub enum IssuesCommand {
    /// Every issue.
    List {
        /// Only this project.
        #[arg(long)]
        project: Option<u64>,
    },
    /// One issue and its recent events.
    Show {
        /// The issue id.
        id: String,
    },
    /// Mark an issue resolved (its next event reopens it as a regression).
    Resolve {
        /// The issue id.
        id: String,
    },
    /// Keep counting an issue's events but never alert on it.
    Ignore {
        /// The issue id.
        id: String,
    },
}

/// `watchpost incidents ...`.
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Incidents, newest first.
    List {
        /// Only open incidents.
        #[arg(long)]
        open: bool,
        /// Only this project.
        #[arg(long)]
        project: Option<u64>,
    },
    /// Acknowledge an open incident: its alert stops repeating and everyone sees who is on it.
    Ack {
        /// The incident id (as `incidents list` shows it).
        id: String,
        /// The name shown as who acknowledged [default: $USER].
        #[arg(long, env = "USER", hide_env_values = true)]
        by: Option<String>,
    },
}

/// `watchpost probes ...`.
#[derive(Debug, Subcommand)]
pub enum ProbesCommand {
    /// Hold a probe's alerts for a while; checks go on, and a probe still down when it ends
    /// is alerted then.
    Snooze {
        /// The probe's name (`[[probes]] name`).
        name: String,
        /// How long, e.g. `2h` (at most 30 days).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
    },
    /// End a probe's snooze.
    Unsnooze {
        /// The probe's name.
        name: String,
    },
}

/// `watchpost checkin <slug> --status ...`.
#[derive(Debug, Clone, Args)]
pub struct CheckinArgs {
    /// Monitor slug.
    slug: String,
    /// What happened.
    #[arg(long, value_parser = ["ok", "error", "in_progress"])]
    status: String,
    /// The DSN the collector printed.
    #[arg(long, env = "WATCHPOST_DSN", hide_env_values = true)]
    dsn: String,
    /// Environment [default: production].
    #[arg(short, long, value_name = "ENV")]
    environment: Option<String>,
    /// Pair with an earlier `in_progress` (the id it printed).
    #[arg(long, value_name = "ID")]
    check_in_id: Option<watchpost::Uuid>,
    /// Run duration in seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Print `{"id": ...}` instead of the bare id.
    #[arg(long)]
    json: bool,
}

/// Runs a client command; returns the process exit code.
pub fn main(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("watchpost: cannot start the async runtime: {error}");
            return ExitCode::from(Exit::Server as u8);
        }
    };
    match runtime.block_on(run(command)) {
        Ok(output) => {
            if !output.is_empty() {
                println!("{}", output.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("watchpost: {}", failure.message);
            ExitCode::from(failure.exit as u8)
        }
    }
}

/// The command's standard output, or why it failed.
async fn run(command: Command) -> Result<String, Failure> {
    match command {
        Command::Monitors { api, action } => monitors(&Client::new(&api)?, api.json, action).await,
        Command::Issues { api, action } => issues(&Client::new(&api)?, api.json, action).await,
        Command::Incidents { api, action } => {
            incidents(&Client::new(&api)?, api.json, action).await
        }
        Command::Probes { api, action } => probes(&Client::new(&api)?, api.json, action).await,
        Command::Checkin(args) => checkin(args).await,
        Command::Store { api, action } => store::run(&api, action).await,
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// `?name=value&...` from the pairs that are set.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| {
            value
                .as_ref()
                .map(|v| format!("{name}={}", percent_encode(v)))
        })
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

fn monitor_path(monitor: &MonitorRef) -> String {
    format!(
        "/api/v1/monitors/{}/{}",
        monitor.project,
        percent_encode(&monitor.slug)
    )
}

async fn monitors(client: &Client, json: bool, action: MonitorsCommand) -> Result<String, Failure> {
    let (monitor, patch, verb) = match action {
        MonitorsCommand::List {
            project,
            environment,
            status,
        } => {
            let path = format!(
                "/api/v1/monitors{}",
                query(&[
                    ("project", project.map(|p| p.to_string())),
                    ("environment", environment),
                    ("status", status),
                ])
            );
            let list = client.get_all(&path).await?;
            return Ok(if json {
                pretty(&list)
            } else {
                table::monitors(&list)
            });
        }
        MonitorsCommand::Show { monitor, limit } => {
            let path = monitor_path(&monitor);
            let mut envs = client.get(&path).await?;
            if let (Some(env), Value::Array(list)) = (&monitor.environment, &mut envs) {
                list.retain(|m| m["environment"].as_str() == Some(env));
            }
            let checkins = client
                .get(&format!(
                    "{path}/checkins{}",
                    query(&[
                        ("environment", monitor.environment.clone()),
                        ("limit", Some(limit.to_string())),
                    ])
                ))
                .await?;
            return Ok(if json {
                pretty(&json!({ "environments": envs, "checkins": checkins }))
            } else {
                table::monitor(&envs, &checkins)
            });
        }
        MonitorsCommand::Delete(monitor) => {
            let path = format!(
                "{}{}",
                monitor_path(&monitor),
                query(&[("environment", monitor.environment.clone())])
            );
            let deleted = client.delete(&path).await?;
            return Ok(if json {
                pretty(&deleted)
            } else {
                let envs: Vec<&str> = deleted["deleted"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["environment"].as_str())
                    .collect();
                format!("deleted monitor `{}` ({})", monitor.slug, envs.join(", "))
            });
        }
        MonitorsCommand::Mute(m) => (m, json!({ "muted": true }), "muted"),
        MonitorsCommand::Unmute(m) => (m, json!({ "muted": false }), "unmuted"),
        MonitorsCommand::Disable(m) => (m, json!({ "disabled": true }), "disabled"),
        MonitorsCommand::Enable(m) => (m, json!({ "disabled": false }), "enabled"),
        MonitorsCommand::Snooze { monitor, duration } => {
            (monitor, json!({ "snooze": duration }), "snoozed")
        }
        MonitorsCommand::Unsnooze(m) => (m, json!({ "snooze": false }), "unsnoozed"),
    };
    let mut body = patch;
    if let Some(env) = &monitor.environment {
        body["environment"] = Value::String(env.clone());
    }
    let envs = client.patch(&monitor_path(&monitor), &body).await?;
    Ok(if json {
        pretty(&envs)
    } else {
        let names: Vec<&str> = envs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["environment"].as_str())
            .collect();
        format!("{verb} monitor `{}` ({})", monitor.slug, names.join(", "))
    })
}

async fn probes(client: &Client, json: bool, action: ProbesCommand) -> Result<String, Failure> {
    let (name, body) = match action {
        ProbesCommand::Snooze { name, duration } => (name, json!({ "snooze": duration })),
        ProbesCommand::Unsnooze { name } => (name, json!({ "snooze": false })),
    };
    let path = format!("/api/v1/probes/{}/snooze", percent_encode(&name));
    let probe = client.post(&path, &body).await?;
    Ok(if json {
        pretty(&probe)
    } else {
        match probe["snoozed_until"].as_str() {
            Some(until) => format!("probe `{name}` snoozed until {until}"),
            None => format!("probe `{name}` is not snoozed"),
        }
    })
}

async fn issues(client: &Client, json: bool, action: IssuesCommand) -> Result<String, Failure> {
    let (id, status) = match action {
        IssuesCommand::List { project } => {
            let path = format!(
                "/api/v1/issues{}",
                query(&[("project", project.map(|p| p.to_string()))])
            );
            let list = client.get(&path).await?;
            return Ok(if json {
                pretty(&list)
            } else {
                table::issues(&list)
            });
        }
        IssuesCommand::Show { id } => {
            let issue = client
                .get(&format!("/api/v1/issues/{}", percent_encode(&id)))
                .await?;
            let events = client
                .get(&format!("/api/v1/issues/{}/events", percent_encode(&id)))
                .await?;
            return Ok(if json {
                pretty(&json!({ "issue": issue, "events": events }))
            } else {
                table::issue(&issue, &events)
            });
        }
        IssuesCommand::Resolve { id } => (id, "resolved"),
        IssuesCommand::Ignore { id } => (id, "ignored"),
    };
    let path = format!("/api/v1/issues/{}", percent_encode(&id));
    let issue = client.patch(&path, &json!({ "status": status })).await?;
    Ok(if json {
        pretty(&issue)
    } else {
        format!("issue {id} is {status}")
    })
}

async fn incidents(
    client: &Client,
    json: bool,
    action: IncidentsCommand,
) -> Result<String, Failure> {
    let (open, project) = match action {
        IncidentsCommand::List { open, project } => (open, project),
        IncidentsCommand::Ack { id, by } => {
            let path = format!("/api/v1/incidents/{}/ack", percent_encode(&id));
            let body = by.map_or_else(|| json!({}), |by| json!({ "by": by }));
            let incident = client.post(&path, &body).await?;
            return Ok(if json {
                pretty(&incident)
            } else {
                format!(
                    "incident {id} acknowledged by {}",
                    incident["acknowledged"]["by"].as_str().unwrap_or("?")
                )
            });
        }
    };
    let path = format!(
        "/api/v1/incidents{}",
        query(&[
            ("open", open.then(|| "true".to_owned())),
            ("project", project.map(|p| p.to_string())),
        ])
    );
    let list = client.get(&path).await?;
    Ok(if json {
        pretty(&list)
    } else {
        table::incidents(&list)
    })
}

async fn checkin(args: CheckinArgs) -> Result<String, Failure> {
    use watchpost_protocol::{CheckIn, CheckInStatus, Dsn};

    let dsn: Dsn = args
        .dsn
        .parse()
        .map_err(|e| Failure::new(Exit::Usage, format!("--dsn / WATCHPOST_DSN: {e}")))?;
    let status = match args.status.as_str() {
        "ok" => CheckInStatus::Ok,
        "error" => CheckInStatus::Error,
        _ => CheckInStatus::InProgress,
    };
    // An id is always sent, so the one printed is the one recorded and can close the run.
    let id = args.check_in_id.unwrap_or_else(watchpost::Uuid::new_v4);
    let mut wire = CheckIn::new(&args.slug, status);
    wire.check_in_id = Some(id);
    wire.environment = args.environment;
    wire.duration = args.duration;
    client::send_checkin(&dsn, &wire).await?;
    let id = id.simple().to_string();
    Ok(if args.json {
        json!({ "id": id }).to_string()
    } else {
        id
    })
}
