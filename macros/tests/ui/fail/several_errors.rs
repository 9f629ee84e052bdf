// Every bad argument is reported at once, and the function is still emitted: `main` compiles
// against it without a "cannot find function" error.
use watchpost_macros::monitored_job;

#[monitored_job(schedule = "0 3 * *", timezone = "Mars/Olympus", failure_issue_threshold = 0)]
fn backup() -> u32 {
    1
}

fn main() {
    let _: u32 = backup();
}
