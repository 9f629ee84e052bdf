// `crate = "..."` for an SDK reached through a re-export.
#![deny(warnings)]

mod sdk {
    pub use watchpost;
}

#[watchpost::monitored_job(crate = "crate::sdk::watchpost", schedule = "@hourly")]
fn job() -> Result<(), std::io::Error> {
    Ok(())
}

fn main() {
    let _ = job();
}
