//! Per-channel message templates (`template = "..."` on a `[[channels]]` entry): minijinja over
//! the alert JSON, i.e. the [`Payload`] serialized (`alert` for one alert — the fields of
//! docs/alerts.md, "Webhook JSON" — or `digest` for a digest).
//!
//! Why here and not in `format.rs`: `format.rs` holds the default texts, which need no
//! template; a template replaces the text a channel would otherwise take from there.
//!
//! Values are escaped for the channel's markup ([`Markup`]) unless marked `|safe`, so an alert
//! title such as `<b>&` cannot break Telegram's HTML or inject Slack mentions. A template is
//! compiled, and rendered once over a sample alert and a sample digest, when the config loads
//! ([`Template::compile`]), so a syntax error or an unknown filter stops the start with the
//! line. A template that still fails at send time (a value it did not expect) falls back to
//! the default text, logged: an alert is never lost to its wording. A template that never
//! mentions `digest` was written for single alerts: digests keep the built-in text. Undefined
//! values are empty, also through attributes (`alert.title` where there is no alert), and a
//! template that renders only whitespace leaves the payload to the default text.

use std::fmt;

use chrono::{TimeZone, Utc};
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use super::format::{google_chat_escape, html_escape, slack_escape};
use crate::engine::alerting::{
    Alert, AlertKind, Digest, Payload, ProbeSubject, Severity, Source, Subject,
};

/// The one template of an environment.
const NAME: &str = "message";

/// The custom auto-escape name for Slack mrkdwn.
const SLACK: &str = "slack";

/// The custom auto-escape name for Google Chat's text.
const GOOGLE_CHAT: &str = "google_chat";

/// How rendered values are escaped: what the channel's text is parsed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Markup {
    /// Telegram's HTML parse mode and HTML email: `&`, `<`, `>`, `"`.
    Html,
    /// Slack mrkdwn: `&`, `<`, `>` (mentions and links are made of them).
    Slack,
    /// Google Chat's text: `<` defused (`<users/all>` would mention everyone).
    GoogleChat,
    /// Plain text (ntfy, Pushover, PagerDuty, Discord, Teams, the log): nothing escaped; the
    /// text travels as a JSON string or a form field, which the channel encodes, and none of
    /// these parses a mention out of it (Discord's are switched off per message).
    Plain,
}

/// A template failed to compile or to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// `syntax error: unexpected end of input (line 3)`.
    pub message: String,
    /// The line of the template, when minijinja knows it.
    pub line: Option<usize>,
}

impl TemplateError {
    fn from_minijinja(err: &minijinja::Error) -> TemplateError {
        let mut message = err.kind().to_string();
        if let Some(detail) = err.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        if let Some(line) = err.line() {
            message.push_str(&format!(" (line {line})"));
        }
        TemplateError {
            message,
            line: err.line(),
        }
    }
}

/// A compiled template.
pub struct Template {
    env: Environment<'static>,
    markup: Markup,
    /// Whether the template reads `digest`: if not, it was written for single alerts, and
    /// digests keep the built-in text.
    words_digests: bool,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("markup", &self.markup)
            .field("words_digests", &self.words_digests)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Compiles `source` for a channel whose text is `markup`, and renders it over a sample
    /// alert and digest so errors only rendering reveals (an unknown filter, a bad call) are
    /// found now rather than at 03:00.
    pub fn compile(source: &str, markup: Markup) -> Result<Template, TemplateError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(move |_| match markup {
            Markup::Html => AutoEscape::Html,
            Markup::Slack => AutoEscape::Custom(SLACK.into()),
            Markup::GoogleChat => AutoEscape::Custom(GOOGLE_CHAT.into()),
            Markup::Plain => AutoEscape::None,
        });
        env.set_formatter(format_value);
        // `{{ alert.title }}` in a digest (no `alert`) is empty rather than an error, so a
        // template written for alerts leaves digests to the built-in text (see `text`).
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| TemplateError::from_minijinja(&e))?;
        let words_digests = env
            .get_template(NAME)
            .map_err(|e| TemplateError::from_minijinja(&e))?
            .undeclared_variables(false)
            .contains("digest");
        let template = Template {
            env,
            markup,
            words_digests,
        };
        for sample in samples() {
            template.render(&sample)?;
        }
        Ok(template)
    }

    /// The markup its values are escaped for.
    pub fn markup(&self) -> Markup {
        self.markup
    }

    /// Renders the payload's text.
    pub fn render(&self, payload: &Payload) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| TemplateError::from_minijinja(&e))?;
        template
            .render(Value::from(Serde(payload)))
            .map_err(|e| TemplateError::from_minijinja(&e))
    }
}

/// The channel's text: the template's when there is one, it is meant for this payload (a
/// digest only goes through a template that reads `digest`) and it renders to something other
/// than whitespace; else `default`.
pub(super) fn text(
    template: Option<&Template>,
    channel: &str,
    payload: &Payload,
    default: impl FnOnce(&Payload) -> String,
) -> String {
    let Some(template) =
        template.filter(|t| t.words_digests || matches!(payload, Payload::Alert(_)))
    else {
        return default(payload);
    };
    match template.render(payload) {
        Ok(text) if !text.trim().is_empty() => text,
        Ok(_) => default(payload),
        Err(err) => {
            tracing::warn!(channel, error = %err, "the channel's template failed; sending the default text");
            default(payload)
        }
    }
}

/// Writes a value escaped for the block's auto-escape mode; `none` and undefined values are
/// empty (a missing `environment` of a probe alert reads as nothing, not `none`).
fn format_value(
    out: &mut minijinja::Output<'_>,
    state: &mut minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    let text = value.to_string();
    let escaped = if value.is_safe() {
        text
    } else {
        match state.auto_escape() {
            AutoEscape::Html => html_escape(&text),
            AutoEscape::Custom(name) if *name == SLACK => slack_escape(&text),
            AutoEscape::Custom(name) if *name == GOOGLE_CHAT => google_chat_escape(&text),
            _ => text,
        }
    };
    out.write_str(&escaped).map_err(minijinja::Error::from)
}

/// A probe alert and a digest of it: what [`Template::compile`] renders to check a template.
fn samples() -> [Payload; 2] {
    let at = Utc
        .with_ymd_and_hms(2026, 1, 1, 3, 0, 0)
        .single()
        .unwrap_or_default();
    let alert = Alert {
        kind: AlertKind::ProbeDown,
        severity: Severity::Critical,
        title: "Probe sample is down".to_owned(),
        message: "sample".to_owned(),
        source: Source::Probe,
        project: None,
        environment: None,
        timestamp: at,
        url: "http://watchpost.invalid/probes/sample".to_owned(),
        subject: Subject::Probe(ProbeSubject {
            name: "sample".to_owned(),
            url: "http://sample.invalid/".to_owned(),
            status_code: Some(503),
            error: None,
        }),
        incident: None,
        acknowledge_url: None,
        dependents: None,
    };
    let digest = Digest::collect([&Payload::Alert(alert.clone())]).unwrap_or(Digest {
        total: 0,
        since: at,
        until: at,
        entries: Vec::new(),
        omitted: 0,
    });
    [Payload::Alert(alert), Payload::Digest(digest)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert_titled(title: &str) -> Payload {
        let [Payload::Alert(mut alert), _] = samples() else {
            unreachable!("samples() starts with an alert")
        };
        alert.title = title.to_owned();
        Payload::Alert(alert)
    }

    #[test]
    fn escapes_for_the_channel_markup() {
        let source = "{{ alert.title }} <i>{{ alert.severity }}</i>";
        let payload = alert_titled("<b>&");
        let render = |markup| Template::compile(source, markup).unwrap().render(&payload);
        assert_eq!(
            render(Markup::Html).unwrap(),
            "&lt;b&gt;&amp; <i>critical</i>"
        );
        assert_eq!(
            render(Markup::Slack).unwrap(),
            "&lt;b&gt;&amp; <i>critical</i>"
        );
        assert_eq!(
            render(Markup::GoogleChat).unwrap(),
            "<\u{200B}b>& <i>critical</i>"
        );
        assert_eq!(render(Markup::Plain).unwrap(), "<b>& <i>critical</i>");
        let safe = Template::compile("{{ alert.title|safe }}", Markup::Html).unwrap();
        assert_eq!(safe.render(&payload).unwrap(), "<b>&");
    }

    #[test]
    fn none_renders_as_nothing_and_digests_have_their_own_fields() {
        let template = Template::compile(
            "{% if alert %}[{{ alert.environment }}]{% else %}{{ digest.total }} alerts{% endif %}",
            Markup::Plain,
        )
        .unwrap();
        let [alert, digest] = samples();
        assert_eq!(template.render(&alert).unwrap(), "[]");
        assert_eq!(template.render(&digest).unwrap(), "1 alerts");
    }

    #[test]
    fn a_template_for_alerts_leaves_digests_to_the_default_text() {
        let template = Template::compile("{{ alert.title }}!", Markup::Plain).unwrap();
        let [alert, digest] = samples();
        let default = |_: &Payload| "built in".to_owned();
        assert_eq!(
            text(Some(&template), "c", &alert, default),
            "Probe sample is down!"
        );
        let template = Template::compile("{{ alert.title }}", Markup::Plain).unwrap();
        assert_eq!(text(Some(&template), "c", &digest, default), "built in");
        let filtered = r#"{{ alert.title|upper }} {{ alert.message|replace("a", "b")|trim }} {{ alert.url|length }}"#;
        let template = Template::compile(filtered, Markup::Plain).unwrap();
        assert_eq!(text(Some(&template), "c", &digest, default), "built in");
        assert_eq!(text(None, "c", &alert, default), "built in");
        let both = "{% if digest %}{{ digest.total }} alerts{% else %}one{% endif %}";
        let template = Template::compile(both, Markup::Plain).unwrap();
        assert_eq!(text(Some(&template), "c", &digest, default), "1 alerts");
        assert_eq!(text(Some(&template), "c", &alert, default), "one");
    }

    #[test]
    fn errors_name_the_line() {
        let err = Template::compile("line one\n{{ alert.title }\n", Markup::Plain).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.message.starts_with("syntax error"), "{err}");
        assert!(err.message.ends_with("(line 2)"), "{err}");
        let err =
            Template::compile("a\nb\n{{ alert.title|nosuchfilter }}", Markup::Plain).unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert!(err.message.contains("nosuchfilter"), "{err}");
    }
}
