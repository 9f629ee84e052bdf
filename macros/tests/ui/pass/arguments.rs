// Every argument, every interval form and every alias.
#![deny(warnings)]

use watchpost::monitored_job;

#[monitored_job(
    slug = "nightly-backup",
    schedule = "0 3 * * *",
    timezone = "Europe/Berlin",
    checkin_margin = "5m",
    max_runtime = "1h 30m",
    failure_issue_threshold = 3,
    recovery_threshold = 2,
    environment = "staging",
)]
fn everything() {}

#[monitored_job(schedule = "*/15 9-17 * JAN-MAR MON-FRI")]
fn named_months_and_days() {}

#[monitored_job(schedule = "@yearly")]
fn yearly() {}
#[monitored_job(schedule = "@annually")]
fn annually() {}
#[monitored_job(schedule = "@monthly")]
fn monthly() {}
#[monitored_job(schedule = "@weekly")]
fn weekly() {}
#[monitored_job(schedule = "@daily")]
fn daily() {}
#[monitored_job(schedule = "@hourly")]
fn hourly() {}

#[monitored_job(interval = "90s")]
fn seconds() {}
#[monitored_job(interval = "10m")]
fn minutes() {}
#[monitored_job(interval = "2h")]
fn hours() {}
#[monitored_job(interval = "1d")]
fn days() {}
#[monitored_job(interval = "2weeks")]
fn weeks() {}
#[monitored_job(interval = "1h 30m", checkin_margin = "30s", max_runtime = "1500ms")]
fn mixed_units() {}

// Only the environment: no monitor config is sent, check-ins still are.
#[monitored_job(environment = "staging", failure_issue_threshold = 720)]
fn no_schedule() {}

#[monitored_job]
fn r#type() {}

fn main() {
    everything();
    named_months_and_days();
    yearly();
    annually();
    monthly();
    weekly();
    daily();
    hourly();
    seconds();
    minutes();
    hours();
    days();
    weeks();
    mixed_units();
    no_schedule();
    r#type();
}
