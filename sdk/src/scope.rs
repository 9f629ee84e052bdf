//! The scope: data added to every event — tags, user, extra, contexts and a bounded ring of
//! breadcrumbs — either for the whole process ([`configure_scope`]) or for one tokio task and
//! everything it awaits ([`with_scope`]).
//!
//! A scope is applied to an event on the thread that captures it (events only: check-ins never
//! read it, so the check-in hot path is untouched). The process-wide scope is a mutex taken for
//! a few copies; a task's scope is a tokio task-local, so concurrent tasks never see each
//! other's data and a task's scope follows it across `.await`s and threads.
//!
//! `release`, `environment` and `server_name` come from [`ClientOptions`](crate::ClientOptions)
//! and the `os`, `runtime` and `device` contexts are added by the transport thread (see
//! `transport/mod.rs`), so they need no scope.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::protocol::{Event, Level};

/// How many breadcrumbs a scope keeps; the oldest are dropped first.
pub const MAX_BREADCRUMBS: usize = 100;

/// The process-wide scope.
static GLOBAL: Mutex<Scope> = Mutex::new(Scope::new());

tokio::task_local! {
    /// The scope of the task inside [`with_scope`].
    static TASK: RefCell<Scope>;
}

/// Data added to every event captured while it is current. Built through [`configure_scope`]
/// and [`with_scope`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    tags: BTreeMap<String, String>,
    user: Option<User>,
    extra: BTreeMap<String, Value>,
    contexts: BTreeMap<String, Value>,
    breadcrumbs: VecDeque<Breadcrumb>,
}

/// The user an event happened for (Sentry's `user` interface).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct User {
    /// A stable id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The user's name or login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's email address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The client's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

/// Something that happened before an event, sent with it as a trail (Sentry's `breadcrumbs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breadcrumb {
    /// When it happened, seconds since the Unix epoch.
    pub timestamp: f64,
    /// `default`, `http`, `query`, ... (Sentry's breadcrumb types).
    #[serde(rename = "type")]
    pub ty: String,
    /// A dotted category such as `sqs.receive`, or the `tracing` target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// What happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Its level.
    pub level: Level,
    /// Structured details.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

impl Breadcrumb {
    /// A `default` breadcrumb with `message` at `level`, timestamped now.
    pub fn new(message: impl Into<String>, level: Level) -> Breadcrumb {
        Breadcrumb {
            timestamp: now_seconds(),
            ty: "default".to_owned(),
            category: None,
            message: Some(message.into()),
            level,
            data: Map::new(),
        }
    }

    /// With this category.
    pub fn category(mut self, category: impl Into<String>) -> Breadcrumb {
        self.category = Some(category.into());
        self
    }
}

impl Scope {
    const fn new() -> Scope {
        Scope {
            tags: BTreeMap::new(),
            user: None,
            extra: BTreeMap::new(),
            contexts: BTreeMap::new(),
            breadcrumbs: VecDeque::new(),
        }
    }

    /// Sets a tag (indexed and searchable on the server).
    pub fn set_tag(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.tags.insert(key.into(), value.into());
    }

    /// Removes a tag.
    pub fn remove_tag(&mut self, key: &str) {
        self.tags.remove(key);
    }

    /// Sets the user, or clears it with `None`.
    pub fn set_user(&mut self, user: Option<User>) {
        self.user = user;
    }

    /// Sets an extra value (shown with the event, not indexed).
    pub fn set_extra(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.extra.insert(key.into(), value.into());
    }

    /// Sets a context (an object shown as its own section, e.g. `"queue"`).
    pub fn set_context(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.contexts.insert(key.into(), value.into());
    }

    /// Adds a breadcrumb, dropping the oldest beyond [`MAX_BREADCRUMBS`].
    pub fn add_breadcrumb(&mut self, breadcrumb: Breadcrumb) {
        if self.breadcrumbs.len() == MAX_BREADCRUMBS {
            self.breadcrumbs.pop_front();
        }
        self.breadcrumbs.push_back(breadcrumb);
    }

    /// Forgets everything: tags, user, extra, contexts and breadcrumbs.
    pub fn clear(&mut self) {
        *self = Scope::new();
    }

    /// Forgets the breadcrumbs.
    pub fn clear_breadcrumbs(&mut self) {
        self.breadcrumbs.clear();
    }

    /// The tags.
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    /// The breadcrumbs, oldest first.
    pub fn breadcrumbs(&self) -> impl Iterator<Item = &Breadcrumb> {
        self.breadcrumbs.iter()
    }

    /// Adds this scope to `event`. What the event says itself (a tag, a context such as
    /// `monitor`) wins over the scope.
    fn apply(&self, event: &mut Event) {
        if !self.tags.is_empty() {
            let tags = event.tags.get_or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(tags) = tags {
                for (key, value) in &self.tags {
                    tags.entry(key.clone())
                        .or_insert_with(|| value.clone().into());
                }
            }
        }
        if let Some(user) = &self.user {
            let user = serde_json::to_value(user).unwrap_or(Value::Null);
            event.other.entry("user").or_insert(user);
        }
        merge_object(&mut event.other, "extra", &self.extra);
        if !self.contexts.is_empty() {
            let contexts = event.contexts.get_or_insert_with(Map::new);
            for (key, value) in &self.contexts {
                contexts.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        if !self.breadcrumbs.is_empty() {
            let values = serde_json::to_value(&self.breadcrumbs).unwrap_or(Value::Null);
            event.other.insert(
                "breadcrumbs".to_owned(),
                serde_json::json!({ "values": values }),
            );
        }
    }
}

/// Adds `from`'s members to the object `into[key]`, keeping those already there.
fn merge_object(into: &mut Map<String, Value>, key: &str, from: &BTreeMap<String, Value>) {
    if from.is_empty() {
        return;
    }
    let slot = into
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(slot) = slot {
        for (k, v) in from {
            slot.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Changes the current scope: the task's inside [`with_scope`], else the process-wide one.
///
/// ```
/// watchpost::configure_scope(|scope| {
///     scope.set_tag("region", "eu-central-1");
///     scope.set_user(Some(watchpost::User { id: Some("42".into()), ..Default::default() }));
/// });
/// ```
pub fn configure_scope<R>(f: impl FnOnce(&mut Scope) -> R) -> R {
    let mut f = Some(f);
    let in_task = TASK.try_with(|cell| {
        let mut scope = cell.try_borrow_mut().ok()?;
        f.take().map(|f| f(&mut scope))
    });
    if let Ok(Some(done)) = in_task {
        return done;
    }
    let f = f
        .take()
        .expect("called at most once above, and only when it returned");
    f(&mut global())
}

/// Runs `fut` with a scope of its own: a copy of the current one (the task's, else the
/// process-wide one) changed by `configure`. Everything `fut` captures, across every `.await`
/// and on whichever thread it is polled, carries this scope; other tasks never see it, and
/// [`configure_scope`] inside `fut` changes only it.
///
/// `tokio::spawn` starts a task without its parent's scope: wrap the spawned future in
/// `with_scope` to give it one.
///
/// ```
/// # async fn handle(_: u32) {}
/// # async fn demo() {
/// let order = 42;
/// watchpost::with_scope(|scope| scope.set_tag("order", order.to_string()), handle(order)).await;
/// # }
/// ```
pub fn with_scope<F: Future>(
    configure: impl FnOnce(&mut Scope),
    fut: F,
) -> impl Future<Output = F::Output> {
    // Disabled, the scope would never be read: skip the copy (and the process-wide lock).
    let mut scope = if crate::generation::is_enabled() {
        current()
    } else {
        Scope::new()
    };
    configure(&mut scope);
    TASK.scope(RefCell::new(scope), fut)
}

/// Adds a breadcrumb to the current scope. A no-op while the SDK is disabled.
pub fn add_breadcrumb(breadcrumb: Breadcrumb) {
    if crate::generation::is_enabled() {
        configure_scope(|scope| scope.add_breadcrumb(breadcrumb));
    }
}

/// A copy of the current scope.
fn current() -> Scope {
    match TASK.try_with(|cell| cell.try_borrow().map(|s| s.clone())) {
        Ok(Ok(scope)) => scope,
        _ => global().clone(),
    }
}

fn global() -> MutexGuard<'static, Scope> {
    GLOBAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds the current scope to `event`, on the capturing thread.
pub(crate) fn apply(event: &mut Event) {
    let in_task = TASK.try_with(|cell| cell.try_borrow().map(|scope| scope.apply(event)).is_ok());
    if in_task != Ok(true) {
        global().apply(event);
    }
}

/// [`apply`] for the panic hook: never waits for a lock (the panicking thread may hold it), so
/// a scope that is busy is left out.
pub(crate) fn apply_nonblocking(event: &mut Event) {
    let in_task = TASK.try_with(|cell| cell.try_borrow().map(|scope| scope.apply(event)).is_ok());
    if in_task == Ok(true) {
        return;
    }
    match GLOBAL.try_lock() {
        Ok(scope) => scope.apply(event),
        Err(TryLockError::Poisoned(scope)) => scope.into_inner().apply(event),
        Err(TryLockError::WouldBlock) => {}
    }
}

/// Seconds since the Unix epoch, as Sentry's timestamps are.
fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breadcrumb_ring_keeps_the_newest() {
        let mut scope = Scope::default();
        for i in 0..MAX_BREADCRUMBS + 5 {
            scope.add_breadcrumb(Breadcrumb::new(i.to_string(), Level::Info));
        }
        let kept: Vec<_> = scope
            .breadcrumbs()
            .filter_map(|b| b.message.clone())
            .collect();
        assert_eq!(kept.len(), MAX_BREADCRUMBS);
        assert_eq!(kept[0], "5");
        assert_eq!(kept[MAX_BREADCRUMBS - 1], (MAX_BREADCRUMBS + 4).to_string());
    }

    #[test]
    fn what_the_event_says_wins_over_the_scope() {
        let mut scope = Scope::default();
        scope.set_tag("route", "scope");
        scope.set_tag("region", "eu");
        scope.set_context("monitor", serde_json::json!({"slug": "scope"}));
        let mut event = Event::new();
        event.tags = Some(serde_json::json!({"route": "event"}));
        event.contexts = Some(Map::from_iter([(
            "monitor".to_owned(),
            serde_json::json!({"slug": "job"}),
        )]));
        scope.apply(&mut event);
        assert_eq!(
            event.tags,
            Some(serde_json::json!({"route": "event", "region": "eu"}))
        );
        assert_eq!(event.contexts.unwrap()["monitor"]["slug"], "job");
    }
}
