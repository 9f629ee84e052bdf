//! The `email` channel: SMTP through lettre, one message with a plain-text and an HTML part.
//!
//! `smtp_url` forms: `smtps://host[:465]` is TLS from the first byte (implicit TLS);
//! `smtp://host[:587]` upgrades with STARTTLS when the server offers it (opportunistic),
//! `smtp://host?tls=required` refuses to go on without STARTTLS, and `smtp://host?tls=none`
//! never encrypts (for a relay on the same host). Credentials come from `username` /
//! `password`, else from the URL's user info. The password and the URL never appear in logs,
//! errors or `Debug`.

use std::fmt;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::format;
use super::send::{ChannelError, Delivery};
use super::template::{self, Template};
use crate::config::Secret;
use crate::engine::alerting::Payload;

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the start.
    Implicit,
    /// `smtp://?tls=required`: STARTTLS or fail.
    StartTlsRequired,
    /// `smtp://`: STARTTLS when offered.
    StartTlsOpportunistic,
    /// `smtp://?tls=none`: plain text.
    None,
}

/// An SMTP server and the addresses to write to.
pub struct Email {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    security: Security,
    from: Mailbox,
    to: Vec<Mailbox>,
    template: Option<Template>,
}

impl Email {
    /// Builds the channel; checks the URL and the addresses now, so a bad config fails at
    /// start rather than at the first alert.
    pub fn new(
        name: String,
        smtp_url: &Secret,
        username: Option<&Secret>,
        password: Option<&Secret>,
        from: &str,
        to: &[String],
        timeout: Duration,
    ) -> Result<Email, ChannelError> {
        let url_error = |reason: &str| ChannelError::SmtpUrl {
            channel: name.clone(),
            reason: reason.to_owned(),
        };
        let url = reqwest::Url::parse(smtp_url.expose())
            .map_err(|err| url_error(&format!("is not a URL: {err}")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| url_error("has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let security = match (url.scheme(), tls_param.as_deref()) {
            ("smtps", None) => Security::Implicit,
            ("smtp", None | Some("opportunistic")) => Security::StartTlsOpportunistic,
            ("smtp", Some("required")) => Security::StartTlsRequired,
            ("smtp", Some("none")) => Security::None,
            ("smtps", Some(_)) => {
                return Err(url_error(
                    "uses smtps:// (TLS from the start); the tls parameter applies to smtp:// only",
                ));
            }
            ("smtp", Some(other)) => {
                return Err(url_error(&format!(
                    "has tls={other}; use tls=required, tls=opportunistic or tls=none"
                )));
            }
            (other, _) => {
                return Err(url_error(&format!(
                    "has scheme `{other}`; use smtp:// or smtps://"
                )));
            }
        };
        let port = url.port().unwrap_or(match security {
            Security::Implicit => 465,
            _ => 587,
        });
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|err| ChannelError::Tls {
                channel: name.clone(),
                reason: err.to_string(),
            })
        };
        let tls = match security {
            Security::Implicit => Tls::Wrapper(tls(&host)?),
            Security::StartTlsRequired => Tls::Required(tls(&host)?),
            Security::StartTlsOpportunistic => Tls::Opportunistic(tls(&host)?),
            Security::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        let credentials = match (username, password) {
            (Some(user), password) => Some((
                user.expose().to_owned(),
                password.map(|p| p.expose().to_owned()).unwrap_or_default(),
            )),
            (None, _) if !url.username().is_empty() => Some((
                percent_decode(url.username()),
                url.password().map(percent_decode).unwrap_or_default(),
            )),
            (None, _) => None,
        };
        if let Some((user, pass)) = credentials {
            builder = builder.credentials(Credentials::new(user, pass));
        }
        let mailbox = |field: &'static str, address: &str| {
            address
                .parse::<Mailbox>()
                .map_err(|err| ChannelError::Address {
                    channel: name.clone(),
                    field,
                    address: address.to_owned(),
                    reason: err.to_string(),
                })
        };
        let from = mailbox("from", from)?;
        let to = to
            .iter()
            .map(|a| mailbox("to", a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Email {
            transport: builder.build(),
            server: format!("{host}:{port}"),
            security,
            from,
            to,
            name,
            template: None,
        })
    }

    /// Renders the HTML part with `template` (values HTML-escaped) instead of the built-in
    /// text; the plain-text part stays the built-in one.
    pub fn with_template(mut self, template: Option<Template>) -> Email {
        self.template = template;
        self
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one message to all recipients. SMTP 5xx answers are permanent; connection
    /// failures, timeouts and 4xx answers are retried.
    pub async fn send(&self, payload: &Payload) -> Delivery {
        let (subject, plain, html) = format::email(payload);
        let html = template::text(self.template.as_ref(), &self.name, payload, |_| html);
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = match builder.multipart(MultiPart::alternative_plain_html(plain, html)) {
            Ok(message) => message,
            Err(err) => {
                return Delivery::Permanent {
                    reason: format!("cannot build the email: {err}"),
                };
            }
        };
        match self.transport.send(message).await {
            Ok(_) => Delivery::Sent,
            Err(err) if err.is_permanent() => Delivery::Permanent {
                reason: format!("SMTP server {} refused: {err}", self.server),
            },
            Err(err) => Delivery::Retry {
                after: None,
                reason: format!("SMTP server {}: {}", self.server, error_chain(&err)),
            },
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Decodes `%XX` escapes of URL user info.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("security", &self.security)
            .field("from", &self.from.email.to_string())
            .field("to", &self.to.len())
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(url: &str) -> Result<Email, ChannelError> {
        Email::new(
            "mail".to_owned(),
            &Secret::new(url),
            None,
            None,
            "Watchpost <alerts@example.com>",
            &["oncall@example.com".to_owned()],
            Duration::from_secs(1),
        )
    }

    #[tokio::test]
    async fn reads_the_security_from_the_url() {
        let cases = [
            (
                "smtps://mail.example.com",
                Security::Implicit,
                "mail.example.com:465",
            ),
            (
                "smtp://mail.example.com",
                Security::StartTlsOpportunistic,
                "mail.example.com:587",
            ),
            (
                "smtp://u:p%40ss@mail.example.com:2525?tls=required",
                Security::StartTlsRequired,
                "mail.example.com:2525",
            ),
            (
                "smtp://127.0.0.1:25?tls=none",
                Security::None,
                "127.0.0.1:25",
            ),
        ];
        for (url, security, server) in cases {
            let email = email(url).unwrap();
            assert_eq!(
                (email.security, email.server.as_str()),
                (security, server),
                "{url}"
            );
            assert!(!format!("{email:?}").contains("p%40ss"));
        }
    }

    #[tokio::test]
    async fn rejects_unusable_urls_without_echoing_them() {
        for url in [
            "http://mail.example.com",
            "smtp://x?tls=maybe",
            "smtps://x?tls=none",
            "smtp://",
        ] {
            let err = email(url).expect_err(url).to_string();
            assert!(err.starts_with("channel `mail`: smtp_url"), "{err}");
        }
        assert_eq!(percent_decode("p%40ss%2"), "p@ss%2");
    }
}
