use watchpost_macros::monitored_job;

#[monitored_job]
const fn answer() -> u32 {
    42
}

fn main() {
    let _ = answer();
}
