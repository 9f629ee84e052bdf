use watchpost_macros::monitored_job;

#[monitored_job(schedule = "@reboot")]
fn at_boot() {}

#[monitored_job(schedule = "@fortnightly")]
fn unknown_alias() {}

fn main() {
    at_boot();
    unknown_alias();
}
