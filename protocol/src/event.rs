//! The `event` item: an error, a panic or a message.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

/// An error event. Fields Watchpost does not interpret are kept in `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 32 hex digits.
    #[serde(with = "super::uuid_hex")]
    pub event_id: Uuid,
    /// When it happened.
    pub timestamp: Timestamp,
    /// `native`, `python`, ... Ours is `native`, as sentry-rust's: Sentry knows no `rust`
    /// platform and its normalizer rewrites unknown ones to `other`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Logger name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// Environment, `production` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Release identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Where it happened, as the SDK names it (a function or route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culprit: Option<String>,
    /// Transaction (route) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// Custom grouping; `{{ default }}` stands for the default grouping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Vec<String>>,
    /// A plain message (string or `{formatted, message}` object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// The structured message Sentry SDKs send for `capture_message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logentry: Option<LogEntry>,
    /// Exceptions, oldest cause first, the one raised last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<ExceptionList>,
    /// Tags (object or list of pairs), kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Value>,
    /// Contexts (`trace`, `os`, `runtime`, `monitor`, ...), kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts: Option<Map<String, Value>>,
    /// Everything else the sender included.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn default_platform() -> String {
    "other".to_owned()
}

/// Event severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Debug.
    Debug,
    /// Info (also `log`).
    #[serde(alias = "log")]
    Info,
    /// Warning (also `warn`).
    #[serde(alias = "warn")]
    Warning,
    /// Error.
    Error,
    /// Fatal: the process or thread died (panics).
    #[serde(alias = "critical")]
    Fatal,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
        })
    }
}

/// `message`: Sentry accepts a string or a log entry object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Message {
    /// A plain string.
    Text(String),
    /// A `{formatted, message, params}` object.
    Entry(LogEntry),
}

/// A structured log message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LogEntry {
    /// The message with parameters substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// The message template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Template parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// `exception`: `{"values":[...]}`, or the bare list older SDKs send.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ExceptionList {
    /// The exceptions.
    pub values: Vec<Exception>,
}

impl<'de> Deserialize<'de> for ExceptionList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Object {
                #[serde(default)]
                values: Option<Vec<Exception>>,
            },
            List(Vec<Exception>),
        }
        Ok(match Form::deserialize(d)? {
            Form::Object { values } => ExceptionList {
                values: values.unwrap_or_default(),
            },
            Form::List(values) => ExceptionList { values },
        })
    }
}

/// One exception (or one error of a `source()` chain).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Exception {
    /// The type name, e.g. `KeyError`, `std::io::Error`, `panic`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The module the type lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// How it was caught.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<Mechanism>,
    /// Where it was raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<Stacktrace>,
    /// Everything else the sender included.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// How an exception was caught.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Mechanism {
    /// `panic`, `generic`, `watchpost.job`, ...
    #[serde(rename = "type", default)]
    pub ty: String,
    /// Whether the application handled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled: Option<bool>,
    /// Everything else the sender included.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A stack trace, oldest frame first, the crashing frame last.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stacktrace {
    /// The frames.
    #[serde(default)]
    pub frames: Vec<Frame>,
}

/// One stack frame.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Frame {
    /// Function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Module or crate path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Relative file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Absolute file path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    /// Line number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u64>,
    /// Column number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colno: Option<u64>,
    /// Whether the frame is the application's own code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app: Option<bool>,
    /// Everything else the sender included (context lines, vars, ...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A timestamp: RFC 3339 or seconds since the epoch on input, RFC 3339 on output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Number(n) => {
                let secs = n
                    .as_f64()
                    .ok_or_else(|| D::Error::custom("timestamp out of range"))?;
                let nanos = (secs.fract() * 1e9).round() as u32;
                Utc.timestamp_opt(secs.trunc() as i64, nanos.min(999_999_999))
                    .single()
                    .map(Timestamp)
                    .ok_or_else(|| D::Error::custom(format!("timestamp {secs} out of range")))
            }
            Value::String(s) => DateTime::parse_from_rfc3339(&s)
                .map(|t| Timestamp(t.with_timezone(&Utc)))
                .or_else(|_| {
                    // Sentry also accepts a naive ISO 8601 time, meaning UTC.
                    chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
                        .map(|t| Timestamp(t.and_utc()))
                })
                .map_err(|_| {
                    D::Error::custom(format!("invalid timestamp `{s}`: expected RFC 3339"))
                }),
            other => Err(D::Error::custom(format!(
                "invalid timestamp {other}: expected RFC 3339 or seconds since the epoch"
            ))),
        }
    }
}

impl Event {
    /// A new event with a fresh id, the current time and platform `native` (Sentry's
    /// platform for Rust, as sentry-rust sends).
    pub fn new() -> Self {
        Event {
            event_id: Uuid::new_v4(),
            timestamp: Timestamp(Utc::now()),
            platform: "native".to_owned(),
            level: None,
            logger: None,
            environment: None,
            release: None,
            server_name: None,
            culprit: None,
            transaction: None,
            fingerprint: None,
            message: None,
            logentry: None,
            exception: None,
            tags: None,
            contexts: None,
            other: Map::new(),
        }
    }

    /// The message text, from `logentry` or `message`, whichever the sender used.
    pub fn message_text(&self) -> Option<&str> {
        fn entry_text(e: &LogEntry) -> Option<&str> {
            e.formatted.as_deref().or(e.message.as_deref())
        }
        self.logentry
            .as_ref()
            .and_then(entry_text)
            .or(match &self.message {
                Some(Message::Text(t)) => Some(t.as_str()),
                Some(Message::Entry(e)) => entry_text(e),
                None => None,
            })
    }

    /// The exceptions, oldest cause first; empty when there are none.
    pub fn exceptions(&self) -> &[Exception] {
        self.exception.as_ref().map_or(&[], |e| &e.values)
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_timestamp_forms_and_old_exception_lists() {
        let json = r#"{"event_id":"1d0a7e563c5341258ae7f604c6b0a255","timestamp":1795287378.5,
            "platform":"python","level":"warn","exception":[{"type":"E","value":"v"}],
            "message":{"formatted":"hello"}}"#;
        let e: Event = serde_json::from_str(json).unwrap();
        assert_eq!(e.timestamp.0.timestamp(), 1_795_287_378);
        assert_eq!(e.timestamp.0.timestamp_subsec_millis(), 500);
        assert_eq!(e.level, Some(Level::Warning));
        assert_eq!(e.exceptions()[0].ty.as_deref(), Some("E"));
        assert_eq!(e.message_text(), Some("hello"));
    }

    #[test]
    fn rejects_bad_timestamps_with_a_reason() {
        let json = r#"{"event_id":"1d0a7e563c5341258ae7f604c6b0a255","timestamp":"yesterday"}"#;
        let err = serde_json::from_str::<Event>(json).unwrap_err().to_string();
        assert!(err.contains("invalid timestamp `yesterday`"), "{err}");
    }
}
