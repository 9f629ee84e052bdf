//! A monitored job that panics. The SDK's panic hook sends the panic as a `fatal` event and the
//! job's `error` check-in, and flushes them before the process exits.
//!
//! ```sh
//! WATCHPOST_DSN=http://<public_key>@localhost:8080/1 cargo run -p watchpost-examples --bin panicking
//! ```
//!
//! `SENTRY_DSN` works too; without either, it only panics.

use watchpost::monitored_job;

#[monitored_job(schedule = "@hourly")]
fn import_orders(batch: &[u32]) -> u32 {
    // Out of bounds on an empty batch: the bug this example reports.
    batch[0]
}

fn main() {
    let _watchpost = watchpost::init_from_env();
    let first = import_orders(&[]);
    println!("first order: {first}");
}
