//! Parses the arguments of `#[monitored_job(...)]` into [`JobArgs`]. This module knows the
//! syntax (`name = literal`, commas) and where each error goes: on the argument's name when the
//! name is wrong, on its value when the value is. What a value means is `values`' job. Every
//! error in the list is reported, not just the first.

use std::time::Duration;

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, MetaNameValue, Path, Token};

use crate::values::{self, IntervalUnit};

/// The validated arguments of one `#[monitored_job(...)]`.
#[derive(Debug, Default)]
pub(crate) struct JobArgs {
    pub(crate) slug: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) timezone: Option<String>,
    pub(crate) checkin_margin: Option<Duration>,
    pub(crate) max_runtime: Option<Duration>,
    pub(crate) failure_issue_threshold: Option<u64>,
    pub(crate) recovery_threshold: Option<u64>,
    /// `crate = "..."`: where the SDK is, for crates that rename or re-export `watchpost`.
    pub(crate) krate: Option<Path>,
}

/// When the job is expected to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// A normalized 5-field crontab or `@`-alias.
    Crontab(String),
    /// Every `n` units.
    Interval(u64, IntervalUnit),
}

/// The argument names, with an example of each for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Slug,
    Schedule,
    Interval,
    Timezone,
    CheckinMargin,
    MaxRuntime,
    FailureIssueThreshold,
    RecoveryThreshold,
    Environment,
    Crate,
}

impl Key {
    const ALL: [Key; 10] = [
        Key::Slug,
        Key::Schedule,
        Key::Interval,
        Key::Timezone,
        Key::CheckinMargin,
        Key::MaxRuntime,
        Key::FailureIssueThreshold,
        Key::RecoveryThreshold,
        Key::Environment,
        Key::Crate,
    ];

    fn name(self) -> &'static str {
        match self {
            Key::Slug => "slug",
            Key::Schedule => "schedule",
            Key::Interval => "interval",
            Key::Timezone => "timezone",
            Key::CheckinMargin => "checkin_margin",
            Key::MaxRuntime => "max_runtime",
            Key::FailureIssueThreshold => "failure_issue_threshold",
            Key::RecoveryThreshold => "recovery_threshold",
            Key::Environment => "environment",
            Key::Crate => "crate",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Key::Slug => r#"slug = "nightly-backup""#,
            Key::Schedule => r#"schedule = "0 3 * * *""#,
            Key::Interval => r#"interval = "10m""#,
            Key::Timezone => r#"timezone = "Europe/Berlin""#,
            Key::CheckinMargin => r#"checkin_margin = "5m""#,
            Key::MaxRuntime => r#"max_runtime = "30m""#,
            Key::FailureIssueThreshold => "failure_issue_threshold = 3",
            Key::RecoveryThreshold => "recovery_threshold = 2",
            Key::Environment => r#"environment = "staging""#,
            Key::Crate => r#"crate = "watchpost""#,
        }
    }

    fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }

    /// What a person may have meant by an unknown name: a synonym from another tool, or a typo.
    fn suggest(name: &str) -> Option<Key> {
        let synonym = match name {
            "cron" | "crontab" => Some(Key::Schedule),
            "tz" | "time_zone" => Some(Key::Timezone),
            "margin" => Some(Key::CheckinMargin),
            "timeout" | "max_duration" => Some(Key::MaxRuntime),
            "name" | "monitor_slug" => Some(Key::Slug),
            "env" => Some(Key::Environment),
            _ => None,
        };
        synonym.or_else(|| {
            Key::ALL
                .into_iter()
                .find(|key| edit_distance(name, key.name()) <= 2)
        })
    }
}

impl Parse for JobArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated(input)?;
        let mut args = JobArgs::default();
        let mut seen: Vec<Key> = Vec::new();
        let mut errors: Option<syn::Error> = None;
        for meta in &metas {
            if let Err(error) = args.apply(meta, &mut seen) {
                match &mut errors {
                    Some(errors) => errors.combine(error),
                    None => errors = Some(error),
                }
            }
        }
        errors.map_or(Ok(args), Err)
    }
}

impl JobArgs {
    /// Checks one `name = value` and records it.
    fn apply(&mut self, meta: &Meta, seen: &mut Vec<Key>) -> syn::Result<()> {
        let key = key_of(meta.path())?;
        let Meta::NameValue(MetaNameValue { value, .. }) = meta else {
            let message = format!("`{}` needs a value: `{}`", key.name(), key.example());
            return Err(syn::Error::new_spanned(meta, message));
        };
        check_repeats(key, meta, seen)?;
        seen.push(key);
        self.set(key, value)
    }

    fn set(&mut self, key: Key, value: &Expr) -> syn::Result<()> {
        match key {
            Key::Slug => self.slug = Some(string(key, value, values::slug)?),
            Key::Schedule => self.schedule = Some(string(key, value, crontab)?),
            Key::Interval => self.schedule = Some(string(key, value, interval)?),
            Key::Timezone => self.timezone = Some(string(key, value, values::timezone)?),
            Key::CheckinMargin => self.checkin_margin = Some(duration(key, value)?),
            Key::MaxRuntime => self.max_runtime = Some(duration(key, value)?),
            Key::FailureIssueThreshold => {
                self.failure_issue_threshold = Some(threshold(key, value)?)
            }
            Key::RecoveryThreshold => self.recovery_threshold = Some(threshold(key, value)?),
            Key::Environment => self.environment = Some(string(key, value, values::environment)?),
            Key::Crate => self.krate = Some(crate_path(value)?),
        }
        Ok(())
    }
}

fn crontab(text: &str) -> Result<Schedule, String> {
    values::crontab(text).map(Schedule::Crontab)
}

fn interval(text: &str) -> Result<Schedule, String> {
    values::interval(text).map(|(n, unit)| Schedule::Interval(n, unit))
}

fn key_of(path: &Path) -> syn::Result<Key> {
    let name = path_to_string(path);
    Key::from_name(&name).ok_or_else(|| {
        let expected = Key::ALL.map(Key::name).join(", ");
        let message = match Key::suggest(&name) {
            Some(key) => format!("unknown argument `{name}`; did you mean `{}`?", key.name()),
            None => format!("unknown argument `{name}`; expected one of: {expected}"),
        };
        syn::Error::new_spanned(path, message)
    })
}

fn path_to_string(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}

/// Rejects an argument given twice, or `schedule` next to `interval`.
fn check_repeats(key: Key, meta: &Meta, seen: &[Key]) -> syn::Result<()> {
    let message = if seen.contains(&key) {
        format!("duplicate argument `{}`: give it once", key.name())
    } else if matches!(key, Key::Schedule | Key::Interval)
        && seen
            .iter()
            .any(|k| matches!(k, Key::Schedule | Key::Interval))
    {
        "`schedule` and `interval` cannot both be given: a monitor has one schedule, either a \
         crontab or an interval"
            .to_owned()
    } else {
        return Ok(());
    };
    Err(syn::Error::new_spanned(meta, message))
}

/// A string literal, checked by `check`; its message is spanned on the literal.
fn string<T>(
    key: Key,
    value: &Expr,
    check: impl FnOnce(&str) -> Result<T, String>,
) -> syn::Result<T> {
    let lit = string_literal(key, value)?;
    check(&lit.value()).map_err(|message| syn::Error::new(lit.span(), message))
}

fn string_literal(key: Key, value: &Expr) -> syn::Result<&LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit),
        _ => Err(wrong_type(key, value, "a string")),
    }
}

fn duration(key: Key, value: &Expr) -> syn::Result<Duration> {
    string(key, value, |text| {
        values::positive_duration(key.name(), text)
    })
}

fn threshold(key: Key, value: &Expr) -> syn::Result<u64> {
    let Expr::Lit(ExprLit {
        lit: Lit::Int(lit), ..
    }) = value
    else {
        let (min, max) = values::THRESHOLDS.into_inner();
        let expected = format!("an integer from {min} to {max}");
        return Err(wrong_type(key, value, &expected));
    };
    values::threshold(key.name(), lit.base10_digits())
        .map_err(|message| syn::Error::new(lit.span(), message))
}

fn crate_path(value: &Expr) -> syn::Result<Path> {
    string_literal(Key::Crate, value)?.parse::<Path>()
}

fn wrong_type(key: Key, value: &Expr, expected: &str) -> syn::Error {
    let message = format!(
        "`{}` takes {expected}, e.g. `{}`",
        key.name(),
        key.example()
    );
    syn::Error::new_spanned(value, message)
}

/// Levenshtein distance, for "did you mean" on misspelt argument names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    /// Parses `input` as attribute arguments; renders the result as `Debug`, or the messages.
    fn parse(input: proc_macro2::TokenStream) -> Result<JobArgs, Vec<String>> {
        syn::parse2::<JobArgs>(input).map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    fn check_err(input: proc_macro2::TokenStream, expected: &[&str]) {
        let shown = input.to_string();
        let errors = parse(input).expect_err(&shown);
        assert_eq!(errors, expected, "input: {shown}");
    }

    #[test]
    fn no_arguments() {
        let args = parse(quote!()).unwrap();
        assert!(args.slug.is_none() && args.schedule.is_none() && args.krate.is_none());
    }

    #[test]
    fn every_argument() {
        let args = parse(quote!(
            slug = "nightly-backup",
            schedule = "0 3 * * *",
            timezone = "Europe/Berlin",
            checkin_margin = "5m",
            max_runtime = "1h",
            failure_issue_threshold = 3,
            recovery_threshold = 2,
            environment = "staging",
            crate = "::my_sdk::watchpost",
        ))
        .unwrap();
        assert_eq!(args.slug.as_deref(), Some("nightly-backup"));
        assert_eq!(args.schedule, Some(Schedule::Crontab("0 3 * * *".into())));
        assert_eq!(args.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(args.checkin_margin, Some(Duration::from_secs(300)));
        assert_eq!(args.max_runtime, Some(Duration::from_secs(3600)));
        assert_eq!(args.failure_issue_threshold, Some(3));
        assert_eq!(args.recovery_threshold, Some(2));
        assert_eq!(args.environment.as_deref(), Some("staging"));
        let krate = args.krate.unwrap();
        assert_eq!(quote!(#krate).to_string(), ":: my_sdk :: watchpost");
    }

    #[test]
    fn interval_is_converted() {
        let args = parse(quote!(interval = "90m")).unwrap();
        assert_eq!(
            args.schedule,
            Some(Schedule::Interval(90, IntervalUnit::Minute))
        );
    }

    #[test]
    fn errors() {
        check_err(
            quote!(schedul = "0 3 * * *"),
            &["unknown argument `schedul`; did you mean `schedule`?"],
        );
        check_err(
            quote!(tz = "UTC"),
            &["unknown argument `tz`; did you mean `timezone`?"],
        );
        check_err(
            quote!(owner = "me"),
            &[
                "unknown argument `owner`; expected one of: slug, schedule, interval, timezone, \
               checkin_margin, max_runtime, failure_issue_threshold, recovery_threshold, \
               environment, crate",
            ],
        );
        check_err(
            quote!(slug = "a", slug = "b"),
            &["duplicate argument `slug`: give it once"],
        );
        check_err(
            quote!(schedule = "@daily", interval = "1d"),
            &[
                "`schedule` and `interval` cannot both be given: a monitor has one schedule, \
               either a crontab or an interval",
            ],
        );
        check_err(
            quote!(schedule = 5),
            &[r#"`schedule` takes a string, e.g. `schedule = "0 3 * * *"`"#],
        );
        check_err(
            quote!(failure_issue_threshold = "3"),
            &[
                "`failure_issue_threshold` takes an integer from 1 to 720, e.g. \
               `failure_issue_threshold = 3`",
            ],
        );
        check_err(
            quote!(slug),
            &[r#"`slug` needs a value: `slug = "nightly-backup"`"#],
        );
        check_err(
            quote!(recovery_threshold = 99999999999999999999999),
            &["`recovery_threshold` must be between 1 and 720, got 99999999999999999999999"],
        );
    }

    #[test]
    fn every_error_is_reported() {
        check_err(
            quote!(
                timezone = "Mars/Base",
                failure_issue_threshold = 0,
                bogus = 1
            ),
            &[
                "unknown timezone `Mars/Base`: expected an IANA timezone name such as \
                 `Europe/Berlin`, `America/New_York` or `UTC`",
                "`failure_issue_threshold` must be between 1 and 720, got 0",
                "unknown argument `bogus`; expected one of: slug, schedule, interval, timezone, \
                 checkin_margin, max_runtime, failure_issue_threshold, recovery_threshold, \
                 environment, crate",
            ],
        );
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("schedul", "schedule"), 1);
        assert_eq!(edit_distance("recovery_treshold", "recovery_threshold"), 1);
        assert_eq!(edit_distance("abc", "xyz"), 3);
    }
}
