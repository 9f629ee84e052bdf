use watchpost_macros::monitored_job;

#[monitored_job(schedule = "0 3 * * *", max_runtime = "0s")]
fn zero() {}

#[monitored_job(schedule = "0 3 * * *", checkin_margin = "-5m")]
fn negative() {}

#[monitored_job(interval = "0m")]
fn zero_interval() {}

fn main() {
    zero();
    negative();
    zero_interval();
}
