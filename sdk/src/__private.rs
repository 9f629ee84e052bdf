//! What `#[monitored_job]` expands to. Not public API: only the macro may use it, and it may
//! change with the macro.
//!
//! The macro builds one `static` [`JobSite`] per annotated function, then
//!
//! ```text
//! let __run = SITE.start();                       // sync: registers the run on this thread
//! let ret = /* the body */;                       // async: __run.instrument(async move { .. }).await
//! let outcome = {
//!     use ::watchpost::__private::{ViaError as _, ViaAsRefError as _, ViaDebug as _, ViaAny as _};
//!     (&&&&Probe(&ret)).__watchpost_outcome()
//! };
//! __run.finish(outcome);
//! ret
//! ```
//!
//! Must stay as cheap as the SDK promises: with the SDK disabled, [`JobSite::start`] is one
//! relaxed atomic load and the rest are branches on `None`; enabled, a run costs two clock reads,
//! two `try_send`s and no allocation.

use std::error::Error;
use std::fmt::Debug;
use std::future::Future;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::capture::{MECHANISM_JOB, event_from_debug, event_from_error};
use crate::protocol::CheckInStatus;
use crate::record::Monitor;
use crate::run::ActiveRun;

pub use crate::job::{AsyncJob, BlockingJob, JobConfig, JobSchedule, JobSite, JobSpec};
pub use crate::protocol::IntervalUnit;

impl JobSite {
    /// Starts a run: sends `in_progress` and registers the run as executing on this thread.
    /// With the SDK disabled this is exactly one relaxed atomic load.
    #[inline]
    pub fn start(&'static self) -> JobRun {
        let generation = crate::client::generation();
        if generation == 0 {
            return JobRun {
                active: None,
                #[cfg(feature = "tracing")]
                span: None,
            };
        }
        let active = ActiveRun::begin(generation, Monitor::Site(self), true);
        JobRun {
            #[cfg(feature = "tracing")]
            span: Some(JobSpan::enter(self.slug, active.id)),
            active: Some(active),
        }
    }
}

/// The `watchpost.job` span of a run (feature `tracing`): entered on the calling thread from
/// `start` until the run is dropped for a sync job, and around each poll for an async one.
#[cfg(feature = "tracing")]
struct JobSpan {
    span: ::tracing::Span,
    /// Entered on the thread that called `start`, and not exited yet.
    entered: std::sync::atomic::AtomicBool,
}

#[cfg(feature = "tracing")]
impl JobSpan {
    fn enter(slug: &'static str, id: uuid::Uuid) -> JobSpan {
        let span = crate::tracing::job_span(slug, id);
        // A guard borrowing the span cannot live in the run beside it, hence the subscriber's
        // own enter, exited by `exit` on the same thread.
        span.with_subscriber(|(id, dispatch)| dispatch.enter(id));
        JobSpan {
            span,
            entered: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Exits the span entered by `enter`, once.
    fn exit(&self) {
        if self
            .entered
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.span
                .with_subscriber(|(id, dispatch)| dispatch.exit(id));
        }
    }
}

/// One run of a `#[monitored_job]` function.
///
/// Ends exactly once: [`finish`](Self::finish) with the function's outcome, else on drop as
/// `error`, unless the panic hook already reported it. Dropped unfinished means the job panicked
/// or, for an async job, its future was dropped before it completed (cancelled: a `select!`, a
/// timeout, a runtime shutting down); either way the run did not finish its work.
#[must_use]
pub struct JobRun {
    active: Option<ActiveRun>,
    #[cfg(feature = "tracing")]
    span: Option<JobSpan>,
}

impl std::fmt::Debug for JobRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRun")
            .field("id", &self.active.as_ref().map(|a| a.id))
            .finish()
    }
}

impl JobRun {
    /// Ends the run: `ok`, or `error` plus an event (the error's source chain, linked to the run
    /// by `contexts.monitor`).
    #[inline]
    pub fn finish(self, outcome: Outcome<'_>) {
        let Some(active) = &self.active else {
            return;
        };
        match outcome {
            Outcome::Ok => active.end(CheckInStatus::Ok, || None),
            Outcome::Error(err) => active.end(CheckInStatus::Error, || {
                Some(event_from_error(err, MECHANISM_JOB, true))
            }),
            Outcome::ErrorDebug(err) => active.end(CheckInStatus::Error, || {
                Some(event_from_debug(err, MECHANISM_JOB))
            }),
        }
    }

    /// Wraps an async job's body. On every poll the run is registered as executing on the
    /// polling thread (so the panic hook marks it, and only it, if that poll panics), and the
    /// poll runs under `catch_unwind`: a panic ends the run as `error` and is then resumed.
    pub fn instrument<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> + use<'_, F> {
        // From here on the run is registered per poll, not for the thread that started it: the
        // task may move, and between polls that thread runs other tasks.
        if let Some(active) = &self.active {
            active.leave_thread();
        }
        #[cfg(feature = "tracing")]
        if let Some(span) = &self.span {
            span.exit();
        }
        async move {
            let mut fut = std::pin::pin!(fut);
            let Some(active) = &self.active else {
                return fut.await;
            };
            std::future::poll_fn(|cx| {
                #[cfg(feature = "tracing")]
                let _entered = self.span.as_ref().map(|s| s.span.enter());
                active.enter_thread();
                let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
                if active.leave_thread() {
                    active.mark_done();
                }
                match polled {
                    Ok(poll) => poll,
                    Err(panic) => {
                        active.end(CheckInStatus::Error, || None);
                        resume_unwind(panic)
                    }
                }
            })
            .await
        }
    }
}

impl Drop for JobRun {
    // Inlined into the job so that the disabled and the finished cases are a branch, not a call.
    #[inline]
    fn drop(&mut self) {
        if let Some(active) = &self.active
            && !active.is_done()
        {
            end_unfinished(active);
        }
        #[cfg(feature = "tracing")]
        if let Some(span) = &self.span {
            span.exit();
        }
    }
}

/// A run dropped before [`JobRun::finish`]: a panic, or a cancelled async job. Both end as
/// `error`: the job did not do its work, and `ok` would hide a timeout or a shutdown that keeps
/// cutting it short. (Sending nothing and letting the server's `max_runtime` decide would report
/// it late, and not at all for monitors without one.)
#[cold]
#[inline(never)]
fn end_unfinished(active: &ActiveRun) {
    active.end(CheckInStatus::Error, || None);
}

/// How a job function ended, as the macro sees its return value.
#[derive(Clone, Copy)]
pub enum Outcome<'a> {
    /// Success (any non-`Result` value, or `Ok`).
    Ok,
    /// `Err` of a type implementing `Error`: captured with its source chain. The error may
    /// borrow (`BadToken<'a>`, a generic `T::Err`): only its `source()`s must be `'static`.
    Error(&'a (dyn Error + 'a)),
    /// `Err` of a type that is only `Debug`: captured as its `Debug` text.
    ErrorDebug(&'a dyn Debug),
}

impl std::fmt::Debug for Outcome<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("Ok"),
            Outcome::Error(e) => f.debug_tuple("Error").field(&e.to_string()).finish(),
            Outcome::ErrorDebug(e) => f.debug_tuple("ErrorDebug").field(e).finish(),
        }
    }
}

/// Wraps a job's return value for autoref specialization: `(&&&&Probe(&ret)).__watchpost_outcome()`
/// picks the most specific of [`ViaError`], [`ViaAsRefError`], [`ViaDebug`], [`ViaAny`].
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// Most specific: `Result<T, E>` with `E: Error`, `'static` or not (method resolution ignores
/// lifetimes, so a `'static` bound here would be picked for every `E: Error` and then fail).
pub trait ViaError {
    /// The outcome.
    fn __watchpost_outcome(&self) -> Outcome<'_>;
}

/// `Result<T, E>` where `E` derefs to a `dyn Error` (see [`DynError`]): `anyhow::Error`,
/// `eyre::Report`, `Box<dyn Error + Send + Sync>`, `Box<dyn Error>`, `Arc<dyn Error>`.
pub trait ViaAsRefError {
    /// The outcome.
    fn __watchpost_outcome(&self) -> Outcome<'_>;
}

/// `Result<T, E>` with `E: Debug` only, e.g. `String`.
pub trait ViaDebug {
    /// The outcome.
    fn __watchpost_outcome(&self) -> Outcome<'_>;
}

/// Anything else: the function cannot fail, so its outcome is `Ok`.
pub trait ViaAny {
    /// The outcome.
    fn __watchpost_outcome(&self) -> Outcome<'_>;
}

impl<T, E: Error> ViaError for &&&Probe<'_, Result<T, E>> {
    fn __watchpost_outcome(&self) -> Outcome<'_> {
        match self.0 {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(e),
        }
    }
}

impl<T, E> ViaAsRefError for &&Probe<'_, Result<T, E>>
where
    E: Deref,
    E::Target: DynError,
{
    fn __watchpost_outcome(&self) -> Outcome<'_> {
        match self.0 {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(e.deref().as_dyn_error()),
        }
    }
}

/// The trait objects a boxed error derefs to. The [`ViaAsRefError`] level goes through `Deref`
/// rather than `AsRef<dyn Error + Send + Sync>` so that one impl covers `anyhow::Error`,
/// `eyre::Report`, `Box<dyn Error + Send + Sync>` *and* `Box<dyn Error>` (two impls, one per
/// `AsRef` target, would overlap for coherence).
pub trait DynError {
    /// `self` as a plain `dyn Error`.
    fn as_dyn_error(&self) -> &(dyn Error + 'static);
}

impl DynError for dyn Error + 'static {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

impl DynError for dyn Error + Send + 'static {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

impl DynError for dyn Error + Send + Sync + 'static {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

impl<T, E: Debug> ViaDebug for &Probe<'_, Result<T, E>> {
    fn __watchpost_outcome(&self) -> Outcome<'_> {
        match self.0 {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::ErrorDebug(e),
        }
    }
}

impl<T: ?Sized> ViaAny for Probe<'_, T> {
    fn __watchpost_outcome(&self) -> Outcome<'_> {
        Outcome::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! outcome {
        ($ret:expr) => {{
            #[allow(unused_imports)]
            use crate::__private::{ViaAny as _, ViaAsRefError as _, ViaDebug as _, ViaError as _};
            let ret = $ret;
            let kind = match (&&&&Probe(&ret)).__watchpost_outcome() {
                Outcome::Ok => "ok".to_owned(),
                Outcome::Error(e) => format!("error: {e}"),
                Outcome::ErrorDebug(e) => format!("debug: {e:?}"),
            };
            kind
        }};
    }

    #[test]
    fn each_specialization_level_resolves_as_intended() {
        let io: Result<(), std::io::Error> = Err(std::io::Error::other("disk"));
        assert_eq!(outcome!(io), "error: disk");
        let ok: Result<u8, std::io::Error> = Ok(1);
        assert_eq!(outcome!(ok), "ok");

        let boxed: Result<(), Box<dyn Error + Send + Sync>> = Err("boxed".into());
        assert_eq!(outcome!(boxed), "error: boxed");
        let plain_box: Result<(), Box<dyn Error>> = Err("plain box".into());
        assert_eq!(outcome!(plain_box), "error: plain box");
        let anyhow: Result<(), anyhow::Error> = Err(anyhow::anyhow!("any"));
        assert_eq!(outcome!(anyhow), "error: any");

        let text: Result<(), String> = Err("just text".into());
        assert_eq!(outcome!(text), "debug: \"just text\"");

        assert_eq!(outcome!(42_u32), "ok");
        assert_eq!(outcome!(()), "ok");
        assert_eq!(outcome!(Some("x")), "ok");
    }
}
