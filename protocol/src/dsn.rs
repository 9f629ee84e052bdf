//! Sentry DSNs: `{scheme}://{public_key}[:{secret}]@{host}[:{port}]{path}/{project_id}`.

use std::fmt;
use std::str::FromStr;

/// A parsed DSN: where to send envelopes and with which key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Dsn {
    scheme: String,
    public_key: String,
    secret_key: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
    project_id: String,
}

/// Why a DSN string could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    /// The scheme is not `http` or `https`.
    #[error("invalid DSN: scheme must be http or https, got `{0}`")]
    Scheme(String),
    /// Missing `://`, `@` or a project id.
    #[error("invalid DSN: expected `http(s)://<public_key>@<host>[:port][/path]/<project_id>`")]
    Shape,
    /// The public key part is empty.
    #[error("invalid DSN: the public key (before `@`) is empty")]
    NoKey,
    /// The port is not a number.
    #[error("invalid DSN: port `{0}` is not a number")]
    Port(String),
    /// The project id is not a positive integer.
    #[error("invalid DSN: project id `{0}` must be a positive integer")]
    Project(String),
}

impl Dsn {
    /// The public key, sent as `sentry_key`.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The legacy secret key, if the DSN has one.
    pub fn secret_key(&self) -> Option<&str> {
        self.secret_key.as_deref()
    }

    /// The project id, the last path segment.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    fn base(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{}{}", self.scheme, self.host, port, self.path),
            None => format!("{}://{}{}", self.scheme, self.host, self.path),
        }
    }

    /// The URL envelopes are posted to: `{scheme}://{host}[:{port}]{path}/api/{project}/envelope/`.
    pub fn envelope_url(&self) -> String {
        format!("{}/api/{}/envelope/", self.base(), self.project_id)
    }
}

impl FromStr for Dsn {
    type Err = DsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").ok_or(DsnError::Shape)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(DsnError::Scheme(scheme));
        }
        let (userinfo, rest) = rest.rsplit_once('@').ok_or(DsnError::Shape)?;
        let (public_key, secret_key) = match userinfo.split_once(':') {
            Some((key, secret)) => (key, Some(secret.to_owned())),
            None => (userinfo, None),
        };
        if public_key.is_empty() {
            return Err(DsnError::NoKey);
        }
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let rest = rest.trim_end_matches('/');
        let (authority, path_and_project) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => return Err(DsnError::Shape),
        };
        let (path, project_id) = path_and_project.rsplit_once('/').ok_or(DsnError::Shape)?;
        if project_id.is_empty() || !project_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DsnError::Project(project_id.to_owned()));
        }
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() {
            return Err(DsnError::Shape);
        }
        Ok(Dsn {
            scheme,
            public_key: public_key.to_owned(),
            secret_key,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            project_id: project_id.to_owned(),
        })
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), DsnError> {
    // IPv6 literals keep their brackets: `[::1]:8470`.
    let colon = if authority.starts_with('[') {
        authority.find("]:").map(|at| at + 1)
    } else {
        authority.rfind(':')
    };
    match colon {
        Some(at) => {
            let port = &authority[at + 1..];
            let port = port.parse().map_err(|_| DsnError::Port(port.to_owned()))?;
            Ok((&authority[..at], Some(port)))
        }
        None => Ok((authority, None)),
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.public_key)?;
        if let Some(secret) = &self.secret_key {
            write!(f, ":{secret}")?;
        }
        write!(f, "@{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}/{}", self.path, self.project_id)
    }
}

/// Debug never prints the keys: DSNs end up in logs.
impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dsn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let cases = [
            (
                "http://abc@127.0.0.1:8470/1",
                "http://127.0.0.1:8470/api/1/envelope/",
            ),
            (
                "https://abc@o1.ingest.sentry.io/42",
                "https://o1.ingest.sentry.io/api/42/envelope/",
            ),
            (
                "https://abc:secret@host/prefix/sub/7",
                "https://host/prefix/sub/api/7/envelope/",
            ),
            (
                "http://abc@[::1]:9000/3/",
                "http://[::1]:9000/api/3/envelope/",
            ),
        ];
        for (dsn, url) in cases {
            let parsed: Dsn = dsn.parse().unwrap_or_else(|e| panic!("{dsn}: {e}"));
            assert_eq!(parsed.envelope_url(), url, "{dsn}");
            assert_eq!(parsed.public_key(), "abc");
        }
        let dsn: Dsn = "https://abc:secret@host/prefix/7".parse().unwrap();
        assert_eq!(dsn.to_string(), "https://abc:secret@host/prefix/7");
        assert_eq!(dsn.secret_key(), Some("secret"));
    }

    #[test]
    fn rejects_with_a_reason() {
        let cases = [
            ("ftp://abc@host/1", DsnError::Scheme("ftp".into())),
            ("http://host/1", DsnError::Shape),
            ("http://@host/1", DsnError::NoKey),
            ("http://abc@host:port/1", DsnError::Port("port".into())),
            ("http://abc@host/x1", DsnError::Project("x1".into())),
            ("http://abc@host", DsnError::Shape),
        ];
        for (dsn, err) in cases {
            assert_eq!(dsn.parse::<Dsn>().unwrap_err(), err, "{dsn}");
        }
    }

    #[test]
    fn debug_hides_keys() {
        let dsn: Dsn = "https://publickey:secret@host/1".parse().unwrap();
        let shown = format!("{dsn:?}");
        assert!(
            !shown.contains("publickey") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
