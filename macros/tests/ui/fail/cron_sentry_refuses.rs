use watchpost_macros::monitored_job;

// Extensions of other cron dialects that Sentry, and so the collector, refuse.

#[monitored_job(schedule = "0 0 15W * *")]
fn nearest_weekday() {}

#[monitored_job(schedule = "0 0 ? * MON")]
fn question_mark() {}

#[monitored_job(schedule = "@Daily")]
fn capitalised_alias() {}

fn main() {
    nearest_weekday();
    question_mark();
    capitalised_alias();
}
