use watchpost_macros::monitored_job;

#[monitored_job(schedul = "0 3 * * *")]
fn typo() {}

#[monitored_job(cron = "0 3 * * *")]
fn synonym() {}

#[monitored_job(owner = "team:ops")]
fn unsupported() {}

fn main() {
    typo();
    synonym();
    unsupported();
}
