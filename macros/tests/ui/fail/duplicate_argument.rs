use watchpost_macros::monitored_job;

#[monitored_job(slug = "backup", schedule = "@daily", slug = "nightly-backup")]
fn backup() {}

fn main() {
    backup();
}
