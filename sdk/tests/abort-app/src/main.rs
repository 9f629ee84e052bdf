//! Starts a monitored job that panics. Built with `panic = "abort"`: no unwinding, no `Drop`,
//! so only the panic hook can report the fatal event and the job's `error` check-in.

use watchpost::monitored_job;

#[monitored_job(slug = "abort-job", interval = "1h")]
fn abort_job() {
    std::thread::sleep(std::time::Duration::from_millis(20));
    let config = std::env::var("ABORT_APP_CONFIG").ok();
    config.expect("the job config is missing");
}

fn main() {
    let _guard = watchpost::init_from_env();
    abort_job();
    unreachable!("the job aborts the process");
}
