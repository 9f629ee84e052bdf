use watchpost_macros::monitored_job;

#[monitored_job(schedule = "61 * * * *")]
fn minute_out_of_range() {}

#[monitored_job(schedule = "0 3 * * MON-FRY")]
fn misspelt_weekday() {}

fn main() {
    minute_out_of_range();
    misspelt_weekday();
}
