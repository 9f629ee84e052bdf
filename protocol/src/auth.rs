//! The `X-Sentry-Auth` / `Authorization: Sentry ...` header value.

use std::fmt;

/// The fields of a Sentry auth header: `Sentry sentry_key=<key>, sentry_version=7, ...`.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    /// The project's public key.
    pub key: String,
    /// The legacy secret, if sent.
    pub secret: Option<String>,
    /// Protocol version; 7 today.
    pub version: Option<String>,
    /// `name/version` of the sending SDK.
    pub client: Option<String>,
}

/// Why an auth header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The value does not start with `Sentry `.
    #[error("auth header must start with `Sentry `")]
    Scheme,
    /// No `sentry_key` field.
    #[error("auth header has no `sentry_key`")]
    NoKey,
}

impl Auth {
    /// An auth for `key`, as our SDK sends it.
    pub fn new(key: impl Into<String>, client: impl Into<String>) -> Self {
        Auth {
            key: key.into(),
            secret: None,
            version: Some("7".into()),
            client: Some(client.into()),
        }
    }

    /// Parses a header value. Unknown fields (`sentry_timestamp`, ...) are ignored.
    pub fn parse(value: &str) -> Result<Auth, AuthError> {
        let value = value.trim();
        let rest = match value.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("sentry ") => &value[7..],
            _ => return Err(AuthError::Scheme),
        };
        let mut auth = Auth {
            key: String::new(),
            secret: None,
            version: None,
            client: None,
        };
        for pair in rest.split(',') {
            let Some((name, val)) = pair.split_once('=') else {
                continue;
            };
            let val = val.trim().to_owned();
            match name.trim() {
                "sentry_key" => auth.key = val,
                "sentry_secret" => auth.secret = Some(val),
                "sentry_version" => auth.version = Some(val),
                "sentry_client" => auth.client = Some(val),
                _ => {}
            }
        }
        if auth.key.is_empty() {
            return Err(AuthError::NoKey);
        }
        Ok(auth)
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sentry sentry_key={}", self.key)?;
        if let Some(version) = &self.version {
            write!(f, ", sentry_version={version}")?;
        }
        if let Some(client) = &self.client {
            write!(f, ", sentry_client={client}")?;
        }
        if let Some(secret) = &self.secret {
            write!(f, ", sentry_secret={secret}")?;
        }
        Ok(())
    }
}

/// Debug never prints the key.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("version", &self.version)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_clients_send() {
        let cli = "Sentry sentry_key=0123456789abcdef0123456789abcdef, sentry_version=7, sentry_timestamp=1795287378.108161, sentry_client=sentry-cli/x86_64";
        let auth = Auth::parse(cli).unwrap();
        assert_eq!(auth.key, "0123456789abcdef0123456789abcdef");
        assert_eq!(auth.version.as_deref(), Some("7"));
        assert_eq!(auth.client.as_deref(), Some("sentry-cli/x86_64"));
        let round = Auth::parse(&Auth::new("k", "watchpost/0.1").to_string()).unwrap();
        assert_eq!(round, Auth::new("k", "watchpost/0.1"));
    }

    #[test]
    fn rejects_without_key_or_scheme() {
        assert_eq!(Auth::parse("Bearer abc"), Err(AuthError::Scheme));
        assert_eq!(
            Auth::parse("Sentry sentry_version=7"),
            Err(AuthError::NoKey)
        );
        assert_eq!(Auth::parse("Sentry sentry_key="), Err(AuthError::NoKey));
    }
}
