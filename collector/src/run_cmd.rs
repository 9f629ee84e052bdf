//! `watchpost run <slug> [flags] -- <cmd> <args..>`: wraps one run of a command in check-ins,
//! like `sentry-cli monitors run`, with the same flags.
//!
//! Sends `in_progress` (with `monitor_config` when `--schedule` is given), runs the command with
//! the terminal's stdin, stdout and stderr, then sends `ok` or `error` with the duration and the
//! same `check_in_id`, flushes within a bound and exits with the command's exit code. Reporting
//! goes through the `watchpost` SDK; a collector that is down never changes the exit code.
//! Unix only: exit statuses by signal and signal forwarding are POSIX notions.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::signal::unix::{SignalKind, signal};
use watchpost::Uuid;
use watchpost::protocol::{CheckInStatus, Dsn};

use crate::engine;

/// Exit code for a usage error: no DSN or an invalid one (clap uses it for bad flags too).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the command exists but cannot be started, as shells use it.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit code when the command is not found, as shells use it.
pub const EXIT_NOT_FOUND: i32 = 127;
/// How long the check-ins may take to reach the collector after the command ended. Bounded so
/// a collector that is down delays a cron job's exit by seconds, not forever.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The arguments of `watchpost run`: the flags of `sentry-cli monitors run`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct RunArgs {
    /// The monitor slug (normalized by the collector as Sentry does: `My Job` is `my-job`).
    #[arg(value_name = "MONITOR_SLUG", value_parser = parse_slug)]
    pub slug: String,

    /// The environment of the monitor [default: $WATCHPOST_ENVIRONMENT, else production].
    #[arg(short, long, value_name = "ENV", value_parser = parse_environment)]
    pub environment: Option<String>,

    /// Create or update the monitor with this crontab schedule ("0 3 * * *" or an alias such as
    /// @daily), evaluated in --timezone.
    #[arg(short, long, value_name = "CRONTAB", value_parser = parse_schedule)]
    pub schedule: Option<String>,

    /// How late a check-in may be before the run counts as missed: minutes (fractional allowed)
    /// or a duration such as "90s". Requires --schedule.
    #[arg(long = "check-in-margin", value_name = "MINUTES", requires = "schedule", value_parser = parse_checkin_margin)]
    pub checkin_margin: Option<Duration>,

    /// How long a run may be in progress before it times out: minutes (fractional allowed) or a
    /// duration such as "45m". Requires --schedule.
    #[arg(long, value_name = "MINUTES", requires = "schedule", value_parser = parse_max_runtime)]
    pub max_runtime: Option<Duration>,

    /// IANA timezone the schedule is evaluated in (e.g. "Europe/Vienna"). Requires --schedule.
    #[arg(long, value_name = "TZ", requires = "schedule", value_parser = parse_tz)]
    pub timezone: Option<String>,

    /// Consecutive failed check-ins that open an incident (1-720). Requires --schedule.
    #[arg(long, value_name = "N", requires = "schedule", value_parser = parse_failure_threshold)]
    pub failure_issue_threshold: Option<u32>,

    /// Consecutive successful check-ins that resolve an incident (1-720). Requires --schedule.
    #[arg(long, value_name = "N", requires = "schedule", value_parser = parse_recovery_threshold)]
    pub recovery_threshold: Option<u32>,

    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

impl RunArgs {
    /// The `monitor_config` sent with `in_progress`: present only with `--schedule`, as in
    /// sentry-cli.
    pub fn monitor_config(&self) -> Option<watchpost::checkin::MonitorConfig> {
        let schedule = self.schedule.as_deref()?;
        let mut config = watchpost::checkin::MonitorConfig::crontab(schedule);
        if let Some(tz) = &self.timezone {
            config = config.timezone(tz.as_str());
        }
        if let Some(margin) = self.checkin_margin {
            config = config.checkin_margin(margin);
        }
        if let Some(max_runtime) = self.max_runtime {
            config = config.max_runtime(max_runtime);
        }
        if let Some(n) = self.failure_issue_threshold {
            config = config.failure_issue_threshold(n);
        }
        if let Some(n) = self.recovery_threshold {
            config = config.recovery_threshold(n);
        }
        Some(config)
    }
}

/// Runs `watchpost run` and returns the process exit code: the command's own, `128 + signal`
/// when a signal killed it, 127 when it was not found, 126 when it could not be started, 2
/// when no usable DSN is set.
///
/// The SDK is configured from the environment as [`watchpost::init_from_env`] does
/// (`WATCHPOST_DSN` or `SENTRY_DSN`, `WATCHPOST_ENVIRONMENT`, `WATCHPOST_RELEASE`,
/// `WATCHPOST_DEBUG`); `--environment` wins over `WATCHPOST_ENVIRONMENT`.
pub fn main(args: RunArgs) -> i32 {
    let config = args.monitor_config();
    let RunArgs {
        slug,
        environment,
        command,
        ..
    } = args;
    let options = watchpost::ClientOptions::from_env();
    let dsn = match options.dsn.as_deref().map(str::parse::<Dsn>) {
        Some(Ok(dsn)) => dsn,
        Some(Err(err)) => {
            eprintln!("watchpost run: WATCHPOST_DSN (or SENTRY_DSN): {err}");
            return EXIT_USAGE;
        }
        None => {
            eprintln!(
                "watchpost run: no DSN: set WATCHPOST_DSN (or SENTRY_DSN) to the DSN the \
                 collector printed, e.g. http://<key>@127.0.0.1:8470/1"
            );
            return EXIT_USAGE;
        }
    };
    let options = watchpost::ClientOptions {
        environment: environment.or(options.environment),
        shutdown_timeout: FLUSH_TIMEOUT,
        ..options
    };
    let guard = match watchpost::try_init(options) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("watchpost run: {err}");
            return EXIT_USAGE;
        }
    };

    let run = watchpost::checkin::start(&slug, config);
    let outcome = execute(&command, &slug, run.id());
    if let Some(message) = outcome.message(&command[0]) {
        eprintln!("watchpost run: {message}");
    }
    run.finish(if outcome.succeeded() {
        CheckInStatus::Ok
    } else {
        CheckInStatus::Error
    });
    let flushed = guard.flush(FLUSH_TIMEOUT);
    let stats = watchpost::stats();
    let lost = stats.dropped + stats.failed + stats.rate_limited;
    if !flushed || lost > 0 {
        // The job's own result stands; this only says the monitor may not have heard of it.
        let what = if flushed {
            format!("{lost} could not be delivered")
        } else {
            format!("not delivered within {}s", FLUSH_TIMEOUT.as_secs())
        };
        eprintln!(
            "watchpost run: the check-ins of `{slug}` did not all reach {} ({what}); a monitor \
             that does not exist yet needs --schedule, and WATCHPOST_DEBUG=1 shows each failure",
            dsn.envelope_url(),
        );
    }
    drop(guard);
    outcome.exit_code()
}

/// How the wrapped command ended.
#[derive(Debug)]
enum Outcome {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
    /// It could not be started.
    NotStarted(io::Error),
}

impl Outcome {
    fn from_status(status: ExitStatus) -> Outcome {
        match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(signal)) => Outcome::Signaled(signal),
            // Neither a code nor a signal only happens for stopped processes, which `wait`
            // does not report; count it as a failure rather than guess.
            (None, None) => Outcome::Exited(1),
        }
    }

    fn succeeded(&self) -> bool {
        matches!(self, Outcome::Exited(0))
    }

    fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(code) => *code,
            Outcome::Signaled(signal) => 128 + signal,
            Outcome::NotStarted(err) if err.kind() == io::ErrorKind::NotFound => EXIT_NOT_FOUND,
            Outcome::NotStarted(_) => EXIT_CANNOT_EXECUTE,
        }
    }

    /// What to tell the person, if the command's own output does not already say it.
    fn message(&self, program: &OsString) -> Option<String> {
        let program = program.to_string_lossy();
        match self {
            Outcome::Exited(_) => None,
            Outcome::Signaled(signal) => Some(format!("`{program}` was killed by signal {signal}")),
            Outcome::NotStarted(err) if err.kind() == io::ErrorKind::NotFound => {
                Some(format!("command not found: `{program}`"))
            }
            Outcome::NotStarted(err) => Some(format!("cannot run `{program}`: {err}")),
        }
    }
}

/// Runs the command to completion with inherited stdio.
///
/// While it runs, this process must outlive it to report the result: SIGINT and SIGQUIT are
/// not acted on (a terminal sends them to the whole foreground process group, so the command
/// gets them itself), and SIGTERM and SIGHUP are passed on to the command, so a supervisor that
/// stops the wrapper stops the job and still sees its exit status.
fn execute(command: &[OsString], slug: &str, check_in_id: Uuid) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return Outcome::NotStarted(err),
    };
    runtime.block_on(async {
        match supervise(command, slug, check_in_id).await {
            Ok(status) => Outcome::from_status(status),
            Err(err) => Outcome::NotStarted(err),
        }
    })
}

async fn supervise(command: &[OsString], slug: &str, check_in_id: Uuid) -> io::Result<ExitStatus> {
    // Handlers first: a signal between spawning and registering would kill the wrapper.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;

    let (program, args) = command.split_first().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "no command given after `--`")
    })?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        // sentry-cli sets this one; the id lets the job send its own heartbeats for the run.
        .env("SENTRY_MONITOR_SLUG", slug)
        .env("WATCHPOST_CHECK_IN_ID", check_in_id.simple().to_string())
        .spawn()?;
    // The child is not reaped before `wait` returns, so its pid cannot be reused meanwhile.
    let pid = child
        .id()
        .and_then(|id| Pid::from_raw(i32::try_from(id).ok()?));
    let forward = |signal: Signal| {
        if let Some(pid) = pid {
            // The child may have exited a moment ago; then there is nobody left to tell.
            let _ = rustix::process::kill_process(pid, signal);
        }
    };
    loop {
        tokio::select! {
            biased;
            status = child.wait() => return status,
            Some(()) = terminate.recv() => forward(Signal::TERM),
            Some(()) = hangup.recv() => forward(Signal::HUP),
            Some(()) = interrupt.recv() => {}
            Some(()) = quit.recv() => {}
        }
    }
}

fn parse_slug(raw: &str) -> Result<String, String> {
    engine::normalize_slug(raw).map_err(|err| err.to_string())?;
    Ok(raw.to_owned())
}

fn parse_environment(raw: &str) -> Result<String, String> {
    engine::normalize_environment(Some(raw)).map_err(|err| err.to_string())
}

fn parse_schedule(raw: &str) -> Result<String, String> {
    match engine::Schedule::crontab(raw).map_err(|err| err.to_string())? {
        engine::Schedule::Crontab(normalized) => Ok(normalized),
        engine::Schedule::Interval { .. } => unreachable!("Schedule::crontab builds a crontab"),
    }
}

fn parse_tz(raw: &str) -> Result<String, String> {
    engine::parse_timezone(raw).map_err(|err| err.to_string())?;
    Ok(raw.to_owned())
}

fn parse_duration(field: &'static str, raw: &str) -> Result<Duration, String> {
    let value = serde_json::Value::String(raw.to_owned());
    match engine::parse_minutes_or_humantime(field, &value) {
        Ok(Some(duration)) => Ok(duration),
        // On the wire a 0 margin means "the default" (a 0 runtime is refused above); on a
        // command line it is more likely a mistake.
        Ok(None) => Err(format!("{field} must be greater than 0")),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_checkin_margin(raw: &str) -> Result<Duration, String> {
    parse_duration("checkin_margin", raw)
}

fn parse_max_runtime(raw: &str) -> Result<Duration, String> {
    parse_duration("max_runtime", raw)
}

fn parse_threshold(field: &'static str, raw: &str) -> Result<u32, String> {
    let value = raw
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{field} must be a whole number between 1 and 720, got {raw}"))?;
    engine::parse_threshold(field, value).map_err(|err| err.to_string())
}

fn parse_failure_threshold(raw: &str) -> Result<u32, String> {
    parse_threshold("failure_issue_threshold", raw)
}

fn parse_recovery_threshold(raw: &str) -> Result<u32, String> {
    parse_threshold("recovery_threshold", raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied())).map(|cli| cli.run)
    }

    fn parse_err(args: &[&str]) -> String {
        match parse(args) {
            Ok(run) => panic!("{args:?} parsed as {run:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn minimal_invocation_takes_defaults_and_sends_no_config() {
        let run = parse(&["nightly", "--", "./backup.sh", "--full"]).unwrap();
        assert_eq!(run.slug, "nightly");
        assert_eq!(run.environment, None);
        assert_eq!(run.schedule, None);
        assert_eq!(run.command, os(&["./backup.sh", "--full"]));
        assert!(run.monitor_config().is_none());
    }

    #[test]
    fn accepts_every_sentry_cli_flag() {
        let run = parse(&[
            "db-vacuum",
            "-e",
            "staging",
            "-s",
            "*/5 * * * *",
            "--check-in-margin",
            "2",
            "--max-runtime",
            "10",
            "--timezone",
            "Europe/Vienna",
            "--failure-issue-threshold",
            "3",
            "--recovery-threshold",
            "2",
            "--",
            "vacuumdb",
            "-a",
        ])
        .unwrap();
        assert_eq!(run.environment.as_deref(), Some("staging"));
        assert_eq!(run.schedule.as_deref(), Some("*/5 * * * *"));
        assert_eq!(run.checkin_margin, Some(Duration::from_secs(120)));
        assert_eq!(run.max_runtime, Some(Duration::from_secs(600)));
        assert_eq!(run.timezone.as_deref(), Some("Europe/Vienna"));
        assert_eq!(run.failure_issue_threshold, Some(3));
        assert_eq!(run.recovery_threshold, Some(2));
        assert_eq!(run.command, os(&["vacuumdb", "-a"]));
        assert!(run.monitor_config().is_some());

        let long = parse(&[
            "db-vacuum",
            "--environment",
            "staging",
            "--schedule",
            "@hourly",
            "--",
            "x",
        ])
        .unwrap();
        assert_eq!(long.environment.as_deref(), Some("staging"));
        assert_eq!(
            long.schedule.as_deref(),
            Some("0 * * * *"),
            "aliases are expanded"
        );
    }

    #[test]
    fn margins_take_fractional_minutes_and_humantime() {
        let cases = [
            ("1.5", Duration::from_secs(90)),
            ("90s", Duration::from_secs(90)),
            ("1h 30m", Duration::from_secs(5400)),
            ("5", Duration::from_secs(300)),
        ];
        for (given, want) in cases {
            let run = parse(&[
                "j",
                "-s",
                "0 3 * * *",
                "--check-in-margin",
                given,
                "--max-runtime",
                given,
                "--",
                "x",
            ])
            .unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(run.checkin_margin, Some(want), "{given}");
            assert_eq!(run.max_runtime, Some(want), "{given}");
        }
    }

    #[test]
    fn rejects_bad_values_naming_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["j", "-s", "61 * * * *", "--", "x"], "--schedule"),
            (&["j", "-s", "0 0 * * * *", "--", "x"], "--schedule"),
            (&["j", "-s", "@reboot", "--", "x"], "--schedule"),
            (
                &[
                    "j",
                    "-s",
                    "0 3 * * *",
                    "--timezone",
                    "Mars/Olympus",
                    "--",
                    "x",
                ],
                "--timezone",
            ),
            (
                &["j", "-s", "0 3 * * *", "--check-in-margin", "0", "--", "x"],
                "--check-in-margin",
            ),
            (
                &[
                    "j",
                    "-s",
                    "0 3 * * *",
                    "--check-in-margin",
                    "soon",
                    "--",
                    "x",
                ],
                "--check-in-margin",
            ),
            (
                &["j", "-s", "0 3 * * *", "--max-runtime", "29d", "--", "x"],
                "--max-runtime",
            ),
            (
                &[
                    "j",
                    "-s",
                    "0 3 * * *",
                    "--failure-issue-threshold",
                    "0",
                    "--",
                    "x",
                ],
                "--failure-issue-threshold",
            ),
            (
                &[
                    "j",
                    "-s",
                    "0 3 * * *",
                    "--recovery-threshold",
                    "721",
                    "--",
                    "x",
                ],
                "--recovery-threshold",
            ),
            (
                &[
                    "j",
                    "-s",
                    "0 3 * * *",
                    "--recovery-threshold",
                    "two",
                    "--",
                    "x",
                ],
                "--recovery-threshold",
            ),
            (&["!!!", "--", "x"], "MONITOR_SLUG"),
            (&["j", "-e", "a/b", "--", "x"], "--environment"),
        ];
        for (args, flag) in cases {
            let err = parse_err(args);
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn config_flags_require_a_schedule() {
        for flag in [
            ["--check-in-margin", "5"],
            ["--max-runtime", "5"],
            ["--timezone", "UTC"],
            ["--failure-issue-threshold", "2"],
            ["--recovery-threshold", "2"],
        ] {
            let err = parse_err(&["j", flag[0], flag[1], "--", "x"]);
            assert!(err.contains("--schedule"), "{flag:?}: {err}");
        }
    }

    #[test]
    fn the_command_comes_after_a_double_dash_and_is_required() {
        assert!(parse_err(&["j"]).contains("COMMAND"));
        assert!(
            parse(&["j", "x"]).is_err(),
            "without `--` the command is not accepted"
        );
        // Flags after `--` belong to the command, not to us.
        let run = parse(&["j", "--", "sh", "-e", "-c", "exit 3"]).unwrap();
        assert_eq!(run.environment, None);
        assert_eq!(run.command, os(&["sh", "-e", "-c", "exit 3"]));
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        // Raw wait statuses: the code in the second byte, or the signal in the low bits.
        assert_eq!(
            Outcome::from_status(ExitStatus::from_raw(3 << 8)).exit_code(),
            3
        );
        assert_eq!(
            Outcome::from_status(ExitStatus::from_raw(9)).exit_code(),
            128 + 9
        );
        assert_eq!(Outcome::Exited(0).exit_code(), 0);
        assert!(Outcome::Exited(0).succeeded());
        assert_eq!(Outcome::Exited(3).exit_code(), 3);
        assert!(!Outcome::Exited(3).succeeded());
        assert_eq!(Outcome::Signaled(15).exit_code(), 143);
        assert!(!Outcome::Signaled(15).succeeded());
        let not_found = Outcome::NotStarted(io::ErrorKind::NotFound.into());
        assert_eq!(not_found.exit_code(), EXIT_NOT_FOUND);
        let denied = Outcome::NotStarted(io::ErrorKind::PermissionDenied.into());
        assert_eq!(denied.exit_code(), EXIT_CANNOT_EXECUTE);
        assert_eq!(
            not_found.message(&"nope".into()).unwrap(),
            "command not found: `nope`"
        );
    }
}
