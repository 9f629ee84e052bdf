//! What the expansion does at run time, checked against a recording stand-in for
//! `watchpost::__private` (picked with `crate = "crate::mock"`): one `start` per call, one
//! `finish` with the outcome of whatever the body produced, including through `return` and
//! `?`, and no `finish` when the body panics. The SDK's own behaviour is tested in `sdk/`.

use std::error::Error;
use std::fmt;

use watchpost_macros::monitored_job;

/// The expansion's contract with the SDK, recording what happens instead of sending it.
#[allow(
    dead_code,
    reason = "mirrors the whole contract; the tests read only part of it"
)]
mod mock {
    pub(crate) mod __private {
        use std::cell::RefCell;
        use std::error::Error;
        use std::fmt::Debug;
        use std::future::Future;

        thread_local! {
            static EVENTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        }

        fn record(event: String) {
            EVENTS.with(|events| events.borrow_mut().push(event));
        }

        /// What happened on this thread since the last call.
        pub(crate) fn take_events() -> Vec<String> {
            EVENTS.with(|events| events.take())
        }

        pub(crate) struct JobSite {
            pub(crate) slug: &'static str,
            pub(crate) environment: Option<&'static str>,
            pub(crate) config: Option<JobConfig>,
        }

        pub(crate) struct JobConfig {
            pub(crate) schedule: JobSchedule,
            pub(crate) timezone: Option<&'static str>,
            pub(crate) checkin_margin: Option<core::time::Duration>,
            pub(crate) max_runtime: Option<core::time::Duration>,
            pub(crate) failure_issue_threshold: Option<u32>,
            pub(crate) recovery_threshold: Option<u32>,
        }

        #[derive(Debug)]
        pub(crate) enum JobSchedule {
            Crontab(&'static str),
            Interval(u64, IntervalUnit),
        }

        #[derive(Debug)]
        pub(crate) enum IntervalUnit {
            Second,
            Minute,
            Hour,
            Day,
            Week,
        }

        impl JobSite {
            pub(crate) fn start(&'static self) -> JobRun {
                let schedule = self.config.as_ref().map(|c| format!(" {:?}", c.schedule));
                record(format!(
                    "start {}{}",
                    self.slug,
                    schedule.unwrap_or_default()
                ));
                JobRun {
                    slug: self.slug,
                    finished: false,
                }
            }
        }

        pub(crate) struct JobRun {
            slug: &'static str,
            finished: bool,
        }

        impl JobRun {
            pub(crate) fn instrument<F: Future>(
                &self,
                future: F,
            ) -> impl Future<Output = F::Output> {
                record(format!("instrument {}", self.slug));
                future
            }

            pub(crate) fn finish(mut self, outcome: Outcome<'_>) {
                self.finished = true;
                record(format!("finish {} {}", self.slug, outcome.describe()));
            }
        }

        impl Drop for JobRun {
            fn drop(&mut self) {
                if !self.finished {
                    record(format!("dropped {}", self.slug));
                }
            }
        }

        #[derive(Clone, Copy)]
        pub(crate) enum Outcome<'a> {
            Ok,
            Error(&'a (dyn Error + 'static)),
            ErrorDebug(&'a dyn Debug),
        }

        impl Outcome<'_> {
            fn describe(&self) -> String {
                match self {
                    Outcome::Ok => "ok".to_owned(),
                    Outcome::Error(error) => format!("error: {error}"),
                    Outcome::ErrorDebug(value) => format!("error: {value:?}"),
                }
            }
        }

        // The probe as the SDK declares it: the outcome borrows from the probe temporaries,
        // which is what the expansion must keep alive until `finish` returns.
        pub(crate) struct Probe<'a, T: ?Sized>(pub(crate) &'a T);

        pub(crate) trait ViaError {
            fn __watchpost_outcome(&self) -> Outcome<'_>;
        }
        impl<T, E: Error + 'static> ViaError for &&&Probe<'_, Result<T, E>> {
            fn __watchpost_outcome(&self) -> Outcome<'_> {
                self.0
                    .as_ref()
                    .err()
                    .map_or(Outcome::Ok, |e| Outcome::Error(e))
            }
        }

        pub(crate) trait ViaAsRefError {
            fn __watchpost_outcome(&self) -> Outcome<'_>;
        }
        impl<T> ViaAsRefError for &&Probe<'_, Result<T, Box<dyn Error>>> {
            fn __watchpost_outcome(&self) -> Outcome<'_> {
                self.0
                    .as_ref()
                    .err()
                    .map_or(Outcome::Ok, |e| Outcome::Error(e.as_ref()))
            }
        }

        pub(crate) trait ViaDebug {
            fn __watchpost_outcome(&self) -> Outcome<'_>;
        }
        impl<T, E: Debug> ViaDebug for &Probe<'_, Result<T, E>> {
            fn __watchpost_outcome(&self) -> Outcome<'_> {
                self.0
                    .as_ref()
                    .err()
                    .map_or(Outcome::Ok, |e| Outcome::ErrorDebug(e))
            }
        }

        pub(crate) trait ViaAny {
            fn __watchpost_outcome(&self) -> Outcome<'_>;
        }
        impl<T: ?Sized> ViaAny for Probe<'_, T> {
            fn __watchpost_outcome(&self) -> Outcome<'_> {
                Outcome::Ok
            }
        }
    }
}

use mock::__private::take_events;

#[derive(Debug)]
struct Failed;

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failed")
    }
}

impl Error for Failed {}

#[monitored_job(crate = "crate::mock", schedule = "@daily")]
fn plain() -> u8 {
    7
}

#[monitored_job(crate = "crate::mock", slug = "early-return")]
fn early_return(fail: bool) -> Result<u8, Failed> {
    if fail {
        return Err(Failed);
    }
    Ok(1)
}

#[monitored_job(crate = "crate::mock", interval = "90m")]
fn question_mark(input: &str) -> Result<u8, String> {
    let n: u8 = input
        .parse()
        .map_err(|_| format!("not a number: {input}"))?;
    Ok(n)
}

#[monitored_job(crate = "crate::mock")]
fn boxed(fail: bool) -> Result<(), Box<dyn Error>> {
    if fail {
        Err(Failed)?;
    }
    Ok(())
}

#[monitored_job(crate = "crate::mock")]
fn panics() {
    panic!("boom");
}

#[monitored_job(crate = "crate::mock")]
async fn fetch(fail: bool) -> Result<&'static str, Failed> {
    tokio::task::yield_now().await;
    if fail { Err(Failed) } else { Ok("fetched") }
}

struct Counter(u32);

impl Counter {
    #[monitored_job(crate = "crate::mock")]
    fn bump(&mut self) -> &mut u32 {
        self.0 += 1;
        &mut self.0
    }

    #[monitored_job(crate = "crate::mock")]
    fn into_inner(self) -> u32 {
        self.0
    }
}

#[test]
fn a_value_is_ok_and_passed_through() {
    assert_eq!(plain(), 7);
    assert_eq!(
        take_events(),
        ["start plain Crontab(\"@daily\")", "finish plain ok"]
    );
}

#[test]
fn an_early_return_is_observed() {
    assert!(early_return(true).is_err());
    assert_eq!(early_return(false).unwrap(), 1);
    assert_eq!(
        take_events(),
        [
            "start early-return",
            "finish early-return error: failed",
            "start early-return",
            "finish early-return ok",
        ]
    );
}

#[test]
fn question_mark_is_observed_and_a_debug_error_is_an_error() {
    assert!(question_mark("x").is_err());
    assert_eq!(
        take_events(),
        [
            "start question_mark Interval(90, Minute)",
            "finish question_mark error: \"not a number: x\"",
        ]
    );
}

#[test]
fn a_boxed_error_is_captured_as_an_error() {
    assert!(boxed(true).is_err());
    assert_eq!(take_events(), ["start boxed", "finish boxed error: failed"]);
}

#[test]
fn a_panic_drops_the_run_unfinished() {
    assert!(std::panic::catch_unwind(panics).is_err());
    assert_eq!(take_events(), ["start panics", "dropped panics"]);
}

#[test]
fn methods_can_lend_from_self() {
    let mut counter = Counter(0);
    *counter.bump() += 10;
    assert_eq!(counter.into_inner(), 11);
    assert_eq!(
        take_events(),
        [
            "start bump",
            "finish bump ok",
            "start into_inner",
            "finish into_inner ok"
        ]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn async_fns_are_instrumented() {
    assert_eq!(fetch(false).await.unwrap(), "fetched");
    assert!(fetch(true).await.is_err());
    assert_eq!(
        take_events(),
        [
            "start fetch",
            "instrument fetch",
            "finish fetch ok",
            "start fetch",
            "instrument fetch",
            "finish fetch error: failed",
        ]
    );
}
