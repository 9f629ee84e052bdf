//! Ready-made checks for [`HealthLayer::with_check`](super::HealthLayer::with_check): a TCP
//! connect, an HTTP `GET`, and any async closure.
//!
//! They never block (tokio and reqwest I/O only) and never retry: the layer's timeout bounds
//! each run, and a failure is the answer.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use tokio::net::{TcpStream, ToSocketAddrs};

use super::check::{CheckError, CheckFuture, HealthCheck};

/// A named check built from a closure: what every function of this module returns.
pub struct Check {
    name: String,
    timeout: Option<Duration>,
    run: Box<dyn Fn() -> CheckFuture<'static> + Send + Sync>,
}

impl Check {
    /// Gives this check its own timeout instead of the layer's.
    pub fn with_timeout(mut self, timeout: Duration) -> Check {
        self.timeout = Some(timeout);
        self
    }
}

impl HealthCheck for Check {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> CheckFuture<'_> {
        (self.run)()
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A check that calls `check` and awaits the future it returns. The error is any
/// [`std::error::Error`] (reported by its type name) or a [`CheckError`].
///
/// ```
/// use watchpost::tower::{CheckError, checks};
///
/// let disk = checks::from_fn("disk", || async {
///     tokio::fs::metadata("/var/lib/app").await?; // `"detail":"std::io::error::Error"`
///     Ok::<_, CheckError>(())
/// });
/// ```
pub fn from_fn<F, Fut, E>(name: impl Into<String>, check: F) -> Check
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<CheckError>,
{
    Check {
        name: name.into(),
        timeout: None,
        run: Box::new(move || {
            let run = check();
            Box::pin(async move { run.await.map_err(Into::into) })
        }),
    }
}

/// A check that opens a TCP connection to `addr` (`"db.internal:5432"`, a `SocketAddr`, a
/// `(host, port)` pair) and closes it at once. It fails with the connect error
/// (`std::io::error::Error`), and a name that does not resolve is such an error too.
pub fn tcp<A>(name: impl Into<String>, addr: A) -> Check
where
    A: ToSocketAddrs + Clone + Send + Sync + 'static,
{
    from_fn(name, move || {
        let addr = addr.clone();
        async move { TcpStream::connect(addr).await.map(drop) }
    })
}

/// A check that sends `GET url` (`http://` or `https://`) and expects a `2xx`.
///
/// Any other status fails as [`UnexpectedStatus`]; redirects are not followed (point it at the
/// final URL); a URL that does not parse fails every run as `url::parser::ParseError`; a
/// connection or TLS error fails as `reqwest::error::Error`. Each run opens a new connection,
/// so a pooled connection cannot hide a server that stopped accepting new ones.
///
/// It uses reqwest, which the SDK already links for its transport, rather than a hand-written
/// HTTP/1.1 client: that way `https`, chunked bodies and proxies work, at no extra build cost.
/// The client is built on the first run, on the application's runtime.
pub fn http_get(name: impl Into<String>, url: impl AsRef<str>) -> Check {
    let url = reqwest::Url::parse(url.as_ref());
    let client = Arc::new(OnceLock::new());
    from_fn(name, move || {
        let (url, client) = (url.clone(), Arc::clone(&client));
        async move {
            let url = url?;
            let status = http_client(&client)?.get(url).send().await?.status();
            if !status.is_success() {
                return Err(UnexpectedStatus { status }.into());
            }
            Ok::<_, CheckError>(())
        }
    })
}

fn http_client(cell: &OnceLock<reqwest::Client>) -> Result<&reqwest::Client, reqwest::Error> {
    if let Some(client) = cell.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(crate::CLIENT_NAME)
        .build()?;
    Ok(cell.get_or_init(|| client))
}

/// The failure of [`http_get`] when the server answered something other than `2xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnexpectedStatus {
    status: StatusCode,
}

impl UnexpectedStatus {
    /// The status the server answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl fmt::Display for UnexpectedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected a 2xx status, got {}", self.status)
    }
}

impl std::error::Error for UnexpectedStatus {}
