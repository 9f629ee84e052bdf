//! `#[monitored_job]`, the attribute behind `watchpost::monitored_job`.
//!
//! This crate only rewrites code; the runtime it calls lives in `watchpost::__private`. Use it
//! through the `watchpost` crate, which re-exports it. It validates every argument at compile
//! time and never emits code that does I/O or allocates per call beyond what the SDK does.
#![warn(missing_docs)]

mod args;
mod expand;
mod item;
mod values;

use proc_macro::TokenStream;

/// Reports each run of a function to Watchpost (or any Sentry-compatible server) as a cron
/// monitor check-in.
///
/// At entry an `in_progress` check-in is sent; at exit `ok` or `error`, with the run's
/// duration and the same `check_in_id`. The run is an `error` when the function returns an
/// `Err` (the error is also captured as an event, with its `source()` chain) or panics (the
/// panic is reported by the SDK's panic hook and then continues unwinding). Anything else is
/// `ok`. Without a DSN, all of this costs one atomic load per call.
///
/// ```no_run
/// use watchpost::monitored_job;
///
/// #[monitored_job(schedule = "0 3 * * *", timezone = "Europe/Berlin", max_runtime = "30m")]
/// fn nightly_backup() -> std::io::Result<()> {
///     // ...
///     Ok(())
/// }
///
/// #[monitored_job(interval = "10m", failure_issue_threshold = 3)]
/// async fn refresh_prices() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     // ...
///     Ok(())
/// }
/// ```
///
/// # Arguments
///
/// All are optional. A wrong one is a compile error pointing at it.
///
/// | argument | example | meaning |
/// |---|---|---|
/// | `slug` | `"nightly-backup"` | The monitor's name: 1 to 50 of `a-z`, `0-9`, `-`, `_`. Defaults to the function's name, lowercased. |
/// | `schedule` | `"0 3 * * *"`, `"@daily"` | A 5-field crontab (minute hour day-of-month month day-of-week) as Sentry accepts it (names, ranges, steps, lists, `L` and `LW` in the day of month, `5L` and `1#2` in the day of week; no `?` or `W`), or one of `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@hourly` (lowercase). Day of month and day of week must both match when either starts with `*`, and either suffices when both are restricted, as in Sentry. |
/// | `interval` | `"10m"`, `"1h 30m"` | Instead of `schedule`: the time between runs, counted from the last check-in; sent in the largest exact unit (second, minute, hour, day or week). |
/// | `timezone` | `"Europe/Berlin"` | The IANA timezone the crontab is evaluated in; the server defaults to UTC. |
/// | `checkin_margin` | `"5m"` | How late a run may start before it counts as missed. |
/// | `max_runtime` | `"30m"` | How long a run may take before it counts as timed out. |
/// | `failure_issue_threshold` | `3` | Consecutive failures before an incident opens (1 to 720). |
/// | `recovery_threshold` | `2` | Consecutive successes before it resolves (1 to 720). |
/// | `environment` | `"staging"` | The environment of these check-ins, instead of the one the SDK was initialised with. |
/// | `crate` | `"my_sdk::watchpost"` | Where to find `watchpost`, if it is renamed or re-exported. |
///
/// The monitor's configuration (schedule, timezone, margin, runtime and thresholds) is sent
/// with every check-in, so the server creates or updates the monitor; it is only sent when
/// `schedule` or `interval` is given. Durations are humantime strings. Second-based intervals
/// and durations that are not whole minutes are a Watchpost extension: the SDK sends them to
/// any server rounded up to whole minutes, which Sentry accepts, with the exact values beside
/// them for the Watchpost collector (see `watchpost::protocol::MonitorConfig::for_sentry`).
///
/// # What it works on
///
/// Free functions, methods (`self`, `&self`, `&mut self`), trait methods with a default body,
/// `async fn`, `unsafe fn`, generic functions with where-clauses, and `impl Trait` in argument
/// and return position. Not on `const fn`, or on functions returning `!`.
///
/// A function that is not `async fn` but returns a future (`fn f() -> impl Future`) is
/// monitored as a sync function: the run covers creating the future, not awaiting it. Write it
/// as an `async fn` to monitor the work itself.
///
/// # Expansion
///
/// The signature is kept as written; the body of
/// `#[monitored_job(schedule = "0 3 * * *")] fn backup() -> io::Result<()> { body }` becomes,
/// in outline:
///
/// ```text
/// static __WATCHPOST_JOB: JobSite = JobSite { slug: "backup", config: Some(..), .. };
/// let __watchpost_run = __WATCHPOST_JOB.start();
/// // Sync: the body runs once in a closure, so `return` and `?` are observed.
/// let __watchpost_ret: io::Result<()> = call_once(move || { body });
/// // Async: let __watchpost_ret = __watchpost_run.instrument(async move { body }).await;
/// __watchpost_run.finish(/* Err -> error with the error captured, else ok */);
/// __watchpost_ret
/// ```
#[proc_macro_attribute]
pub fn monitored_job(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::monitored_job(args.into(), item.into()).into()
}

/// Names a `#[monitored_job]` function for the SDK's scheduler: `watchpost::job!(nightly_backup)`
/// or `watchpost::job!(jobs::nightly_backup)` is the function together with the schedule its
/// attribute declares (a hidden constant the attribute emits beside every function that has a
/// schedule, takes no arguments and is not generic). Use it through `watchpost::job!`.
#[proc_macro]
pub fn job(input: TokenStream) -> TokenStream {
    expand::job(input.into()).into()
}
