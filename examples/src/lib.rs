//! What the example programs share: turning a `#[monitored_job]` crontab into the six-field
//! form (seconds first) that tokio-cron-scheduler and apalis-cron parse, so a job's schedule is
//! written once, in its attribute, and the scheduler that runs it reads it from there.

/// `crontab` (five fields, or a nickname such as `@hourly`) with a leading `0` seconds field:
/// `"*/5 * * * *"` becomes `"0 */5 * * * *"`, `"@daily"` becomes `"0 0 0 * * *"`.
///
/// Only the form changes. Two rules differ between those parsers and the collector's crontab
/// (which is cron's and Sentry's), so keep the schedules of jobs run by them clear of both:
/// when day-of-month *and* day-of-week are both restricted, cron runs on either, while
/// tokio-cron-scheduler runs only on days matching both; and apalis-cron's `cron` crate
/// numbers weekdays 1–7 from Sunday, where cron numbers them 0–6, so write weekday names
/// (`MON-FRI`), which all of them read alike.
pub fn with_seconds(crontab: &str) -> String {
    let five = match crontab.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * SUN",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    format!("0 {five}")
}

#[cfg(test)]
mod tests {
    use super::with_seconds;

    #[test]
    fn five_fields_and_nicknames_get_a_seconds_field() {
        assert_eq!(with_seconds("*/5 * * * *"), "0 */5 * * * *");
        assert_eq!(with_seconds("0 3 * * MON-FRI"), "0 0 3 * * MON-FRI");
        assert_eq!(with_seconds("@hourly"), "0 0 * * * *");
        assert_eq!(with_seconds("@daily"), "0 0 0 * * *");
        assert_eq!(with_seconds("@weekly"), "0 0 0 * * SUN");
    }
}
