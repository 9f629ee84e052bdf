//! The panic hook: reports a panic as a `fatal` event, marks the jobs running on the panicking
//! thread as `error`, and flushes with a bound so the report survives `panic = "abort"`.
//!
//! Runs on the panicking thread, which may hold any lock and may be in any state, so it must
//! never: recurse (a thread-local flag), wait on a lock (`try_lock`/`try_borrow` only), panic
//! (no `unwrap`, no indexing), or spawn work on an async runtime. It chains the previously
//! installed hook: ours first, then the previous one (which prints the usual message).

use std::backtrace::Backtrace;
use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::sync::Once;

use serde_json::{Map, Value, json};

use crate::capture::{new_event, set_other};
use crate::protocol::{Event, Exception, ExceptionList, Frame, Level, Mechanism, Stacktrace};

static INSTALL: Once = Once::new();

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Installs the hook, once per process. Called by `init` (never from a panicking thread:
/// `take_hook` aborts there).
pub(crate) fn install_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            previous(info);
        }));
    });
}

/// Clears the re-entrancy flag when our part of the hook is done, however it ends.
struct InHook;

impl Drop for InHook {
    fn drop(&mut self) {
        IN_HOOK.set(false);
    }
}

fn report(info: &PanicHookInfo<'_>) {
    if IN_HOOK.replace(true) {
        return; // A panic inside our own reporting: let the previous hook deal with it.
    }
    let _in_hook = InHook;
    if crate::transport::is_transport_thread() {
        // The transport itself panicked: nothing would deliver the report, and flushing would
        // wait on ourselves.
        return;
    }
    let Some(client) = crate::client::current_nonblocking() else {
        return;
    };
    let mut event = event_from_panic(info);
    if let Some((slug, id)) = crate::run::innermost_on_thread() {
        crate::run::link_event(&mut event, &slug, id);
    }
    crate::scope::apply_nonblocking(&mut event);
    // A `CaptureLayer` polling on this thread catches this panic: it reports the event with the
    // request, and the process lives on, so there is nothing to flush or mark failed here.
    #[cfg(feature = "tower")]
    let Some(event) = crate::tower::defer_panic(event) else {
        return;
    };
    client.enqueue(crate::record::Task::Event(Box::new(event)));
    crate::run::fail_runs_on_thread(&client);
    client.flush(client.shutdown_timeout);
}

fn event_from_panic(info: &PanicHookInfo<'_>) -> Event {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    let mut mechanism = Mechanism {
        ty: "panic".to_owned(),
        handled: Some(false),
        other: Map::new(),
    };
    if let Some(location) = info.location() {
        let location = format!(
            "{}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
        mechanism
            .other
            .insert("data".to_owned(), json!({ "location": location }));
    }
    let frames = frames_from_backtrace(&Backtrace::force_capture().to_string());
    let mut event = Event {
        exception: Some(ExceptionList {
            values: vec![Exception {
                ty: Some("panic".to_owned()),
                value: Some(message.to_owned()),
                mechanism: Some(mechanism),
                stacktrace: (!frames.is_empty()).then_some(Stacktrace { frames }),
                ..Exception::default()
            }],
        }),
        ..new_event(Level::Fatal)
    };
    // `thread::current()` must not be asked once the thread's locals are gone (it may panic).
    let name = if crate::run::thread_locals_alive() {
        std::thread::current()
            .name()
            .map_or(Value::Null, |n| Value::String(n.to_owned()))
    } else {
        Value::Null
    };
    set_other(
        &mut event,
        "threads",
        json!({ "values": [{ "name": name, "crashed": true, "current": true }] }),
    );
    event
}

/// Parses `std::backtrace::Backtrace`'s `Display` output into frames, oldest first, without the
/// frames of the panic machinery itself (everything from `rust_begin_unwind` inwards).
///
/// ```text
///    0: std::backtrace::Backtrace::force_capture
///              at /rustc/.../library/std/src/backtrace.rs:312:13
///    1: my_app::job
///              at ./src/main.rs:10:5
/// ```
pub(crate) fn frames_from_backtrace(text: &str) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(at) = line.strip_prefix("at ") {
            if let Some(frame) = frames.last_mut() {
                set_location(frame, at);
            }
            continue;
        }
        let Some((index, function)) = line.split_once(": ") else {
            continue;
        };
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let function = strip_hash(function.trim());
        let in_app = is_in_app(function);
        frames.push(Frame {
            module: module_of(function),
            function: Some(function.to_owned()),
            in_app: Some(in_app),
            ..Frame::default()
        });
    }
    // Newest first as printed: drop the capture, this hook and the panic machinery, i.e.
    // everything up to the end of the first run of machinery frames. (`catch_unwind` frames near
    // the thread's start are kept: they are not part of raising the panic.)
    let is_machinery = |f: &Frame| f.function.as_deref().is_some_and(is_panic_machinery);
    if let Some(start) = frames.iter().position(is_machinery) {
        let run = frames[start..]
            .iter()
            .take_while(|f| is_machinery(f))
            .count();
        frames.drain(..start + run);
    }
    frames.reverse();
    frames
}

fn set_location(frame: &mut Frame, at: &str) {
    // `path:line:col`; the path itself may contain colons.
    let mut parts = at.rsplitn(3, ':');
    let (col, line, path) = (parts.next(), parts.next(), parts.next());
    let (path, line, col) = match (
        path,
        line.and_then(|l| l.parse().ok()),
        col.and_then(|c| c.parse().ok()),
    ) {
        (Some(path), Some(line), Some(col)) => (path, Some(line), Some(col)),
        _ => (at, None, None),
    };
    let relative = path.strip_prefix("./").unwrap_or(path);
    frame.filename = Some(relative.to_owned());
    if path.starts_with('/') {
        frame.abs_path = Some(path.to_owned());
    }
    frame.lineno = line;
    frame.colno = col;
}

/// `foo::bar::h0123456789abcdef` -> `foo::bar`.
fn strip_hash(function: &str) -> &str {
    match function.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => function,
    }
}

/// The crate a symbol belongs to: `<alloc::boxed::Box<F> as ...>::call` -> `alloc`.
fn crate_of(function: &str) -> Option<&str> {
    let path = function
        .trim_start_matches('<')
        .trim_start_matches('&')
        .trim_start_matches("mut ");
    path.split_once("::").map(|(krate, _)| krate)
}

fn module_of(function: &str) -> Option<String> {
    if function.starts_with('<') {
        return None;
    }
    function
        .rsplit_once("::")
        .map(|(module, _)| module.trim_end_matches("::{{closure}}").to_owned())
}

fn is_in_app(function: &str) -> bool {
    const NOT_APP: &[&str] = &[
        "std",
        "core",
        "alloc",
        "tokio",
        "watchpost",
        "futures",
        "futures_util",
        "backtrace",
        "test",
        "__rustc",
    ];
    // C symbols (`_start`, `__libc_start_main`, `clone3`) have no path.
    crate_of(function).is_some_and(|krate| !NOT_APP.contains(&krate))
}

fn is_panic_machinery(function: &str) -> bool {
    let raising = function.starts_with("std::panicking::")
        && !function.starts_with("std::panicking::catch_unwind")
        && !function.starts_with("std::panicking::try");
    raising
        || function.contains("rust_begin_unwind")
        || function.starts_with("core::panicking::")
        || function.starts_with("std::sys::backtrace::__rust_end_short_backtrace")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "   0: std::backtrace_rs::backtrace::libunwind::trace
             at /rustc/abc/library/std/src/../../backtrace/src/backtrace/libunwind.rs:117:9
   1: std::backtrace::Backtrace::force_capture
             at /rustc/abc/library/std/src/backtrace.rs:312:13
   2: watchpost::panic::event_from_panic
             at ./sdk/src/panic.rs:80:17
   3: std::panicking::panic_with_hook
             at /rustc/abc/library/std/src/panicking.rs:842:13
   4: __rustc::rust_begin_unwind
             at /rustc/abc/library/std/src/panicking.rs:697:5
   5: core::panicking::panic_fmt
             at /rustc/abc/library/core/src/panicking.rs:75:14
   6: my_app::jobs::backup::h0123456789abcdef
             at ./src/jobs.rs:42:9
   7: <my_app::Runner as core::ops::Fn<()>>::call
             at ./src/main.rs:7:5
   8: core::ops::function::FnOnce::call_once
             at /rustc/abc/library/core/src/ops/function.rs:250:5
   9: std::panicking::catch_unwind::do_call
             at /rustc/abc/library/std/src/panicking.rs:581:40
  10: main
  11: __libc_start_main
";

    #[test]
    fn backtrace_frames_are_oldest_first_without_panic_machinery() {
        let frames = frames_from_backtrace(TRACE);
        let names: Vec<_> = frames
            .iter()
            .map(|f| f.function.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "__libc_start_main",
                "main",
                "std::panicking::catch_unwind::do_call",
                "core::ops::function::FnOnce::call_once",
                "<my_app::Runner as core::ops::Fn<()>>::call",
                "my_app::jobs::backup",
            ]
        );
        let crashing = frames.last().unwrap();
        assert_eq!(crashing.in_app, Some(true));
        assert_eq!(crashing.module.as_deref(), Some("my_app::jobs"));
        assert_eq!(crashing.filename.as_deref(), Some("src/jobs.rs"));
        assert_eq!((crashing.lineno, crashing.colno), (Some(42), Some(9)));
        let in_app: Vec<_> = frames.iter().map(|f| f.in_app.unwrap()).collect();
        assert_eq!(in_app, [false, false, false, false, true, true]);
        assert_eq!(
            frames[3].abs_path.as_deref(),
            Some("/rustc/abc/library/core/src/ops/function.rs")
        );
    }
}
