use watchpost_macros::monitored_job;

#[monitored_job(interval = "1month")]
fn calendar_month() {}

#[monitored_job(interval = "1500ms")]
fn sub_second() {}

#[monitored_job(interval = "every 10 minutes")]
fn prose() {}

fn main() {
    calendar_month();
    sub_second();
    prose();
}
