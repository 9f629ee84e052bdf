use watchpost_macros::monitored_job;

#[monitored_job(schedule = "0 3 * * *", timezone = "Europe/Berlim")]
fn misspelt() {}

#[monitored_job(schedule = "0 3 * * *", timezone = "europe/berlin")]
fn wrong_case() {}

fn main() {
    misspelt();
    wrong_case();
}
