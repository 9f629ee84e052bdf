//! HTTP for the client commands: the management API with the admin token, and one envelope to
//! the ingest API for `checkin`. Turns every answer into JSON or a [`Failure`] carrying the
//! exit code; the token is sent, never printed.

use std::time::Duration;

use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use watchpost_protocol::{Auth, CheckIn, Dsn, Envelope};

use crate::config::{ADMIN_TOKEN_FILE, DEFAULT_DATA_DIR};
use crate::engine::text::percent_encode;

/// Why a client command failed, as a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1.
    Server = 1,
    /// 2.
    Usage = 2,
    /// 3.
    NotFound = 3,
    /// 4.
    Auth = 4,
}

/// Where the management API is and how to talk to it.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The collector's base URL.
    #[arg(
        long,
        env = "WATCHPOST_URL",
        default_value = "http://127.0.0.1:8470",
        global = true
    )]
    pub(super) url: String,
    /// The admin token [default: $WATCHPOST_ADMIN_TOKEN, else ./watchpost-data/admin_token].
    #[arg(
        long,
        env = "WATCHPOST_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub(super) token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub(super) json: bool,
}

const TIMEOUT: Duration = Duration::from_secs(30);
const CLIENT: &str = concat!("watchpost-cli/", env!("CARGO_PKG_VERSION"));

/// A failed command: what to tell the person, and the exit code.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) exit: Exit,
    pub(super) message: String,
}

impl Failure {
    pub(super) fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }
}

/// The management API.
pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// From `--url` and `--token`, falling back to `./watchpost-data/admin_token`.
    pub(super) fn new(args: &ApiArgs) -> Result<Client, Failure> {
        let token = match &args.token {
            Some(token) => token.trim().to_owned(),
            None => {
                let path = std::path::Path::new(DEFAULT_DATA_DIR).join(ADMIN_TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_owned())
                    .map_err(|_| {
                        Failure::new(
                            Exit::Auth,
                            format!(
                                "no admin token: pass --token, set WATCHPOST_ADMIN_TOKEN, or run \
                                 where {} exists",
                                path.display()
                            ),
                        )
                    })?
            }
        };
        let base = args.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::new(
                Exit::Usage,
                format!("--url `{base}` must start with http:// or https://"),
            ));
        }
        Ok(Client {
            http: http_client()?,
            base,
            token,
        })
    }

    pub(super) async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::GET, path, None).await
    }

    /// Every page of a list (`path` without `cursor`): follows the `X-Next-Cursor` header the
    /// API sends while more pages follow, and joins the arrays.
    pub(super) async fn get_all(&self, path: &str) -> Result<Value, Failure> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let paged = match &cursor {
                None => path.to_owned(),
                Some(c) if path.contains('?') => format!("{path}&cursor={}", percent_encode(c)),
                Some(c) => format!("{path}?cursor={}", percent_encode(c)),
            };
            let response = self
                .http
                .get(format!("{}{paged}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| unreachable(&self.base, &e))?;
            cursor = response
                .headers()
                .get("x-next-cursor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match answer(response, &format!("GET {path}")).await? {
                Value::Array(items) => all.extend(items),
                other => return Ok(other),
            }
            if cursor.is_none() {
                return Ok(Value::Array(all));
            }
        }
    }

    pub(super) async fn patch(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub(super) async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub(super) async fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        answer(response, &format!("{method} {path}")).await
    }
}

/// The envelope of one check-in, with the headers Sentry's SDKs send: `sent_at` (Relay
/// corrects the client's clock drift with it) and `sdk`.
pub(super) fn checkin_envelope(checkin: &CheckIn) -> Envelope {
    let mut envelope = Envelope::new();
    let sent_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    envelope
        .headers
        .insert("sent_at".into(), Value::String(sent_at));
    envelope.headers.insert(
        "sdk".into(),
        serde_json::json!({ "name": "watchpost-cli", "version": env!("CARGO_PKG_VERSION") }),
    );
    envelope.add_json_item("check_in", checkin);
    envelope
}

/// Sends one check-in envelope to the ingest API named by `dsn`.
pub(super) async fn send_checkin(dsn: &Dsn, checkin: &CheckIn) -> Result<(), Failure> {
    let envelope = checkin_envelope(checkin);
    let url = dsn.envelope_url();
    let response = http_client()?
        .post(&url)
        .header(
            "X-Sentry-Auth",
            Auth::new(dsn.public_key(), CLIENT).to_string(),
        )
        .header("Content-Type", "application/x-sentry-envelope")
        .body(envelope.to_vec())
        .send()
        .await
        .map_err(|e| unreachable(&url, &e))?;
    answer(response, "check-in").await.map(drop)
}

fn http_client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(CLIENT)
        .build()
        .map_err(|e| Failure::new(Exit::Server, format!("cannot set up HTTP: {e}")))
}

fn unreachable(base: &str, error: &reqwest::Error) -> Failure {
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    Failure::new(
        Exit::Server,
        format!("cannot reach the collector at {base}: {cause}"),
    )
}

/// The JSON of a 2xx answer; any other status as the failure its exit code stands for, with
/// the server's own sentence.
async fn answer(response: reqwest::Response, what: &str) -> Result<Value, Failure> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let said = body["error"]
        .as_str()
        .map_or_else(|| format!("{status}"), str::to_owned);
    let exit = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Exit::Auth,
        StatusCode::NOT_FOUND => Exit::NotFound,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => Exit::Usage,
        _ => Exit::Server,
    };
    Err(Failure::new(exit, format!("{what}: {said}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(percent_encode("nightly-backup"), "nightly-backup");
        assert_eq!(percent_encode("a b/c?"), "a%20b%2Fc%3F");
    }
}
