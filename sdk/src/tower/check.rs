//! What a health check is: the [`HealthCheck`] trait, the future it returns and the
//! [`CheckError`] it fails with. Shared by `HealthLayer` (`health.rs`), which runs checks, and
//! the ready-made ones (`checks.rs`), so neither imports the other for them.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What a [`HealthCheck`] returns: a boxed future, so that checks are object-safe without an
/// `async-trait` dependency.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CheckError>> + Send + 'a>>;

/// A dependency the health route reports on.
///
/// Closures are registered with [`HealthLayer::check`](super::HealthLayer::check); implement this trait for a check with
/// state of its own (a connection pool, a client):
///
/// ```
/// use watchpost::tower::{CheckError, CheckFuture, HealthCheck, HealthLayer};
///
/// struct Queue {
///     depth: std::sync::atomic::AtomicUsize,
/// }
///
/// #[derive(Debug)]
/// struct Backlog(usize);
///
/// impl std::fmt::Display for Backlog {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "{} jobs waiting", self.0)
///     }
/// }
///
/// impl std::error::Error for Backlog {}
///
/// impl HealthCheck for Queue {
///     fn name(&self) -> &str {
///         "queue"
///     }
///
///     fn check(&self) -> CheckFuture<'_> {
///         Box::pin(async move {
///             let depth = self.depth.load(std::sync::atomic::Ordering::Relaxed);
///             if depth > 10_000 {
///                 return Err(Backlog(depth).into()); // reported as `"detail":"rust_out::Backlog"`
///             }
///             Ok(())
///         })
///     }
/// }
///
/// let health = HealthLayer::new().with_check(Queue { depth: Default::default() });
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// The check's key in the response's `checks` object. Unique within a layer.
    fn name(&self) -> &str;

    /// Runs the check once. It must not block the thread: a blocking call cannot be cut short
    /// by the timeout and stalls the runtime.
    fn check(&self) -> CheckFuture<'_>;

    /// This check's own timeout; `None` (the default) uses the layer's
    /// ([`HealthLayer::timeout`](super::HealthLayer::timeout)).
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

/// Why a check failed: the error's type name, which the health response shows as `detail`, and
/// its message, shown as `message` only with [`HealthLayer::expose_errors`](super::HealthLayer::expose_errors).
///
/// Every [`std::error::Error`] converts into it with `?` or `.into()`, which records its type
/// name (`std::io::error::Error`, `reqwest::error::Error`). Errors that are only `Display`
/// (`anyhow::Error`) go through [`CheckError::from_display`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    type_name: Cow<'static, str>,
    message: String,
}

impl CheckError {
    /// An error with this `detail` and `message`, for a failure that is not a Rust error value
    /// (`CheckError::new("replication_lag", "replica is 42 s behind")`).
    pub fn new(type_name: impl Into<Cow<'static, str>>, message: impl Into<String>) -> CheckError {
        CheckError {
            type_name: type_name.into(),
            message: message.into(),
        }
    }

    /// From any displayable error, named by its type ([`std::any::type_name`]).
    pub fn from_display<E: fmt::Display>(err: E) -> CheckError {
        CheckError::new(std::any::type_name::<E>(), err.to_string())
    }

    /// The error's type name: the response's `detail`.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for CheckError {
    fn from(err: E) -> CheckError {
        CheckError::from_display(err)
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.type_name, self.message)
    }
}
