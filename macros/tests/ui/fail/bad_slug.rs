use watchpost_macros::monitored_job;

#[monitored_job(slug = "Nightly Backup")]
fn backup() {}

#[monitored_job(environment = "eu/west")]
fn bad_environment() {}

fn main() {
    backup();
    bad_environment();
}
