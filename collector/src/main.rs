//! The `watchpost` binary: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use watchpost_collector::config::{Config, Overrides};
use watchpost_collector::server;

/// mimalloc instead of glibc's malloc: the request path allocates and frees many small
/// buffers on several threads, where glibc's arenas spent measurable time consolidating
/// (`benches/README.md`, "Collector ingest"). Built with `no_thp`: with transparent huge
/// pages, mimalloc's eagerly committed first arena made 45 MB resident at idle (60 MB instead
/// of 15 MB); without, the same throughput.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Watchpost: cron-job check-ins, error reports, uptime probes and alerts in one binary.
#[derive(Debug, Parser)]
#[command(name = "watchpost", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector.
    Serve(ServeArgs),
    /// Run a command and report it as a monitored job (like `sentry-cli monitors run`).
    Run(watchpost_collector::run_cmd::RunArgs),
    /// Client commands: monitors, issues, incidents, checkin (against a running collector), and
    /// store stats (a running collector, or a stopped one's data dir).
    #[command(flatten)]
    Client(watchpost_collector::cli::Command),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8470 (overrides server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for the store and the admin token (overrides server.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Start even if the data dir is readable by other users (sets
    /// server.allow_shared_data_dir); otherwise such a dir is refused.
    #[arg(long)]
    allow_shared_data_dir: bool,
}

/// Exit code for an unusable configuration (as for a command-line usage error).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Run(args) => ExitCode::from(watchpost_collector::run_cmd::main(args) as u8),
        Command::Client(command) => watchpost_collector::cli::main(command),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        allow_shared_data_dir: args.allow_shared_data_dir,
    };
    let config = match Config::load(args.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("config error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sled=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("watchpost: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        // Exit code 1 (docs/cli.md): a start that failed (a damaged or locked store, a port in
        // use) or a server that stopped on an error. The message names what to fix.
        Err(error) => {
            eprintln!("watchpost: {error}");
            ExitCode::FAILURE
        }
    }
}
