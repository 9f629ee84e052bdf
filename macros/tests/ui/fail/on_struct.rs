use watchpost_macros::monitored_job;

#[monitored_job(schedule = "@daily")]
struct Backup;

fn main() {
    let _ = Backup;
}
