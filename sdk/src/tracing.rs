//! `tracing` integration (feature `tracing`): [`layer`] returns a
//! [`tracing_subscriber::Layer`] that turns events at or above a level (default `ERROR`) into
//! Watchpost events and records lower ones (down to `INFO` by default) as breadcrumbs.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! tracing_subscriber::registry()
//!     .with(watchpost::tracing::layer())
//!     .init();
//! ```
//!
//! An event becomes:
//!
//! - its message (the `message` field) at the matching level, `logger` = the event's target;
//! - an `error` field recorded as an error (`error = &e as &dyn Error`, or `error = %e` for
//!   its text only): with the error value, its `source()` chain as the exception list, oldest
//!   cause first, as [`capture_error`](crate::capture_error) does;
//! - fields named `tags.*` as tags (`tags.order = 42` is the tag `order`), every other field as
//!   `extra`;
//! - the span stack (root first, each span's name, target and fields) as the `tracing` context;
//! - inside a `#[monitored_job]` run, linked to the run (`contexts.monitor`): the run's
//!   `watchpost.job` span carries `monitor.slug` and `monitor.check_in_id`.
//!
//! Events below the breadcrumb level cost one comparison and return; with the SDK disabled,
//! one relaxed atomic load more.

use std::error::Error;
use std::fmt;

use ::tracing::field::{Field, Visit};
use ::tracing::span::{Attributes, Id, Record};
use ::tracing::{Event, Level, Subscriber};
use serde_json::{Map, Value, json};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::capture::{event_from_error, event_from_message};
use crate::protocol::{self, Message};
use crate::scope::Breadcrumb;

/// Mechanism of errors reported through the `tracing` layer.
const MECHANISM_TRACING: &str = "tracing";

/// The name of the span every `#[monitored_job]` run enters while the `tracing` feature is on.
pub const JOB_SPAN: &str = "watchpost.job";

/// The layer: see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct WatchpostLayer {
    event_level: Level,
    breadcrumb_level: Level,
}

/// A layer sending `ERROR` events as events and `WARN` and `INFO` ones as breadcrumbs.
pub fn layer() -> WatchpostLayer {
    WatchpostLayer {
        event_level: Level::ERROR,
        breadcrumb_level: Level::INFO,
    }
}

impl WatchpostLayer {
    /// Events at `level` or more severe become events (default `ERROR`).
    pub fn event_level(mut self, level: Level) -> WatchpostLayer {
        self.event_level = level;
        self
    }

    /// Events at `level` or more severe, but below the event level, become breadcrumbs
    /// (default `INFO`).
    pub fn breadcrumb_level(mut self, level: Level) -> WatchpostLayer {
        self.breadcrumb_level = level;
        self
    }
}

/// What a span's fields said, kept in its registry extensions.
#[derive(Default)]
struct SpanFields {
    fields: Map<String, Value>,
}

impl<S> Layer<S> for WatchpostLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !crate::client::is_enabled() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = SpanFields::default();
        attrs.record(&mut FieldMap(&mut fields.fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut FieldMap(&mut fields.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // tracing orders levels by verbosity: `ERROR` is the smallest.
        let level = *event.metadata().level();
        if level > self.breadcrumb_level || !crate::client::is_enabled() {
            return;
        }
        if level <= self.event_level {
            crate::client::capture_event(Report::new(event, level, &ctx).event);
        } else {
            let mut fields = EventFields::default();
            event.record(&mut fields);
            crate::scope::add_breadcrumb(fields.into_breadcrumb(event, level));
        }
    }
}

/// An event's fields as the layer sorts them.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    /// Built from the `error` field when it was recorded as an error value.
    error: Option<protocol::Event>,
    /// The `error` field when it was recorded as text (`error = %e`).
    error_text: Option<String>,
    tags: Map<String, Value>,
    extra: Map<String, Value>,
}

impl EventFields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            self.message = Some(match value {
                Value::String(text) => text,
                other => other.to_string(),
            });
        } else if name == "error" {
            self.error_text = Some(match value {
                Value::String(text) => text,
                other => other.to_string(),
            });
        } else if let Some(tag) = name.strip_prefix("tags.") {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            self.tags.insert(tag.to_owned(), text.into());
        } else {
            self.extra.insert(name.to_owned(), value);
        }
    }

    fn into_breadcrumb(mut self, event: &Event<'_>, level: Level) -> Breadcrumb {
        if let Some(error) = self.error_text.take() {
            self.extra.insert("error".to_owned(), error.into());
        }
        self.extra.extend(self.tags);
        let mut breadcrumb = Breadcrumb::new(self.message.unwrap_or_default(), to_level(level))
            .category(event.metadata().target());
        breadcrumb.data = self.extra;
        breadcrumb
    }
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        if field.name() == "error" {
            self.error = Some(event_from_error(value, MECHANISM_TRACING, true));
            self.error_text = Some(value.to_string());
        } else {
            self.put(field, value.to_string().into());
        }
    }
}

/// Records fields into a JSON map (span fields).
struct FieldMap<'a>(&'a mut Map<String, Value>);

impl Visit for FieldMap<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }
}

/// An event-level `tracing` event on its way to the transport.
struct Report {
    event: protocol::Event,
}

impl Report {
    fn new<S>(event: &Event<'_>, level: Level, ctx: &Context<'_, S>) -> Report
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let message = fields.message.take();
        let mut out = match fields.error.take() {
            Some(mut from_error) => {
                from_error.message = message.map(Message::Text);
                from_error
            }
            None => {
                let text = match (&message, &fields.error_text) {
                    (Some(m), Some(e)) => format!("{m}: {e}"),
                    (Some(m), None) => m.clone(),
                    (None, Some(e)) => e.clone(),
                    (None, None) => event.metadata().name().to_owned(),
                };
                event_from_message(&text, to_level(level))
            }
        };
        out.level = Some(to_level(level));
        out.logger = Some(event.metadata().target().to_owned());
        if let Some(text) = fields.error_text.take() {
            fields.extra.entry("error").or_insert(text.into());
        }
        if !fields.tags.is_empty() {
            out.tags = Some(Value::Object(fields.tags));
        }
        if !fields.extra.is_empty() {
            out.other
                .insert("extra".to_owned(), Value::Object(fields.extra));
        }
        let mut report = Report { event: out };
        report.add_spans(event, ctx);
        report
    }

    /// Adds the span stack (root first) as the `tracing` context, and links the event to the
    /// innermost `#[monitored_job]` run among them.
    fn add_spans<S>(&mut self, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let mut spans = Vec::new();
        let mut run: Option<(String, String)> = None;
        for span in scope.from_root() {
            let extensions = span.extensions();
            let fields = extensions
                .get::<SpanFields>()
                .map(|f| f.fields.clone())
                .unwrap_or_default();
            if span.name() == JOB_SPAN
                && let (Some(Value::String(slug)), Some(Value::String(id))) = (
                    fields.get("monitor.slug"),
                    fields.get("monitor.check_in_id"),
                )
            {
                run = Some((slug.clone(), id.clone()));
            }
            spans.push(json!({
                "name": span.name(),
                "target": span.metadata().target(),
                "fields": fields,
            }));
        }
        let contexts = self.event.contexts.get_or_insert_with(Map::new);
        contexts.insert("tracing".to_owned(), json!({ "spans": spans }));
        if let Some((slug, id)) = run {
            contexts.insert(
                "monitor".to_owned(),
                json!({ "slug": slug, "check_in_id": id }),
            );
        }
    }
}

fn to_level(level: Level) -> protocol::Level {
    match level {
        Level::ERROR => protocol::Level::Error,
        Level::WARN => protocol::Level::Warning,
        Level::INFO => protocol::Level::Info,
        _ => protocol::Level::Debug,
    }
}

/// The span a `#[monitored_job]` run enters: [`JOB_SPAN`] with its monitor slug and check-in
/// id, so logs inside the run name it and error events link to it.
pub(crate) fn job_span(slug: &'static str, id: uuid::Uuid) -> ::tracing::Span {
    ::tracing::info_span!(
        target: "watchpost",
        JOB_SPAN,
        monitor.slug = slug,
        monitor.check_in_id = %id.simple()
    )
}
