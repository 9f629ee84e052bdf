use watchpost_macros::monitored_job;

#[monitored_job(schedule = "@daily", interval = "1d")]
fn both() {}

fn main() {
    both();
}
