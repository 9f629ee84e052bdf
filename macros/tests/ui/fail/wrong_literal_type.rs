use watchpost_macros::monitored_job;

#[monitored_job(schedule = 5)]
fn number_for_string() {}

#[monitored_job(failure_issue_threshold = "3")]
fn string_for_number() {}

#[monitored_job(timezone = Europe::Berlin)]
fn path_for_string() {}

#[monitored_job(slug)]
fn missing_value() {}

fn main() {
    number_for_string();
    string_for_number();
    path_for_string();
    missing_value();
}
