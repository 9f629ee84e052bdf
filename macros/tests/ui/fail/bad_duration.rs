use watchpost_macros::monitored_job;

#[monitored_job(schedule = "0 3 * * *", checkin_margin = "5 parsecs")]
fn unknown_unit() {}

#[monitored_job(schedule = "0 3 * * *", max_runtime = "30")]
fn no_unit() {}

fn main() {
    unknown_unit();
    no_unit();
}
