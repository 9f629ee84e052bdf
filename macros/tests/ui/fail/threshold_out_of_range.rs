use watchpost_macros::monitored_job;

#[monitored_job(schedule = "@hourly", failure_issue_threshold = 0)]
fn zero() {}

#[monitored_job(schedule = "@hourly", recovery_threshold = 721)]
fn too_many() {}

#[monitored_job(schedule = "@hourly", recovery_threshold = -1)]
fn negative() {}

fn main() {
    zero();
    too_many();
    negative();
}
