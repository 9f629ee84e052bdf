use watchpost_macros::monitored_job;

#[monitored_job(schedule = "0 3 * *")]
fn four_fields() {}

#[monitored_job(schedule = "0 0 3 * * *")]
fn six_fields() {}

#[monitored_job(schedule = "0 0 3 * * * 2030")]
fn seven_fields() {}

fn main() {
    four_fields();
    six_fields();
    seven_fields();
}
