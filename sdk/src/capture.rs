//! Events from errors and messages, built on the caller's thread (they borrow what they
//! describe) and handed to the transport as values: formatting happens here, JSON never does.

use std::error::Error;
use std::fmt::Debug;

use serde_json::{Map, Value};

use crate::protocol::{Event, Exception, ExceptionList, Level, Mechanism, Message};

/// Mechanism of errors passed to `capture_error`.
pub(crate) const MECHANISM_GENERIC: &str = "generic";
/// Mechanism of errors a `#[monitored_job]` returned.
pub(crate) const MECHANISM_JOB: &str = "watchpost.job";

/// How many `source()` levels are followed, against cycles and absurd chains.
const MAX_CHAIN: usize = 32;

/// A new event with an id from the fast generator (not the OS's).
pub(crate) fn new_event(level: Level) -> Event {
    Event {
        event_id: crate::rng::uuid_v4(),
        level: Some(level),
        ..Event::new()
    }
}

/// An `error` event whose exceptions are `err`'s source chain, oldest cause first.
///
/// `err` need not be `'static` (an error may borrow its input); its `source()`s always are.
pub(crate) fn event_from_error(err: &(dyn Error + '_), mechanism: &str, handled: bool) -> Event {
    let mut values = vec![exception_from_error(err, is_io_error_debug)];
    let mut next = err.source();
    while let Some(e) = next {
        if values.len() == MAX_CHAIN {
            break;
        }
        values.push(exception_from_error(e, |_| e.is::<std::io::Error>()));
        next = e.source();
    }
    values.reverse();
    finish_exceptions(values, mechanism, handled)
}

/// An `error` event for an error that is only `Debug` (a job returning `Result<_, String>`).
pub(crate) fn event_from_debug(err: &dyn Debug, mechanism: &str) -> Event {
    let text = format!("{err:?}");
    let exception = Exception {
        ty: Some(type_from_debug(&text).unwrap_or("Error").to_owned()),
        value: Some(text),
        ..Exception::default()
    };
    finish_exceptions(vec![exception], mechanism, true)
}

fn finish_exceptions(mut values: Vec<Exception>, mechanism: &str, handled: bool) -> Event {
    if let Some(last) = values.last_mut() {
        last.mechanism = Some(Mechanism {
            ty: mechanism.to_owned(),
            handled: Some(handled),
            other: Map::new(),
        });
    }
    Event {
        exception: Some(ExceptionList { values }),
        ..new_event(Level::Error)
    }
}

/// An event carrying `msg` at `level`.
pub(crate) fn event_from_message(msg: &str, level: Level) -> Event {
    Event {
        message: Some(Message::Text(msg.to_owned())),
        ..new_event(level)
    }
}

/// `is_io` tells from the error's `Debug` text (or otherwise) whether it is a `std::io::Error`.
fn exception_from_error(e: &(dyn Error + '_), is_io: impl FnOnce(&str) -> bool) -> Exception {
    // A `dyn Error` does not know its type's name. Like sentry-rust, take it from the `Debug`
    // output (`NotFound`, `ParseIntError { .. }` -> `ParseIntError`), with a better name for the
    // errors whose `Debug` shows a private variant instead.
    let debug = format!("{e:?}");
    let (ty, module) = if is_io(&debug) {
        ("Error".to_owned(), Some("std::io".to_owned()))
    } else {
        (type_from_debug(&debug).unwrap_or("Error").to_owned(), None)
    };
    Exception {
        ty: Some(ty),
        value: Some(e.to_string()),
        module,
        ..Exception::default()
    }
}

/// Whether `debug` is how a `std::io::Error` prints itself, for an error that may not be
/// `'static` and so cannot be downcast (the outermost one; its `source()`s can). The shapes are
/// those of std's private representations: `Os { code: .. }`, `Kind(..)`, `Custom { kind: .. }`
/// and `Error { kind: .., message: .. }`; a lookalike is at worst named `std::io::Error`.
fn is_io_error_debug(debug: &str) -> bool {
    ["Os { code: ", "Kind(", "Custom { kind: ", "Error { kind: "]
        .iter()
        .any(|shape| debug.starts_with(shape))
}

/// The leading identifier of a `Debug` rendering, if it looks like a type or variant name.
fn type_from_debug(debug: &str) -> Option<&str> {
    let head = debug
        .split([' ', '(', '{', '\n', '\r'])
        .next()
        .unwrap_or_default()
        .trim();
    let plausible = head.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    plausible.then_some(head)
}

/// Adds `key: value` to `event.other` (fields the protocol type does not model).
pub(crate) fn set_other(event: &mut Event, key: &str, value: Value) {
    event.other.insert(key.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("backup failed")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn source_chain_is_listed_oldest_cause_first() {
        let err = Outer(std::io::Error::new(std::io::ErrorKind::NotFound, "no disk"));
        let event = event_from_error(&err, MECHANISM_JOB, true);
        let ex = event.exceptions();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].ty.as_deref(), Some("Error"));
        assert_eq!(ex[0].module.as_deref(), Some("std::io"));
        assert_eq!(ex[0].value.as_deref(), Some("no disk"));
        assert!(ex[0].mechanism.is_none());
        assert_eq!(ex[1].ty.as_deref(), Some("Outer"));
        assert_eq!(ex[1].value.as_deref(), Some("backup failed"));
        assert_eq!(ex[1].mechanism.as_ref().unwrap().ty, "watchpost.job");
        assert_eq!(event.level, Some(Level::Error));
    }

    #[test]
    fn an_outermost_io_error_is_named_as_such_without_a_downcast() {
        let errors = [
            std::io::Error::from(std::io::ErrorKind::NotFound),
            std::io::Error::from_raw_os_error(2),
            std::io::Error::other("disk"),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                Outer(std::io::Error::other("x")),
            ),
        ];
        for err in &errors {
            let event = event_from_error(err, MECHANISM_JOB, true);
            let top = event.exceptions().last().unwrap();
            assert_eq!(
                (top.ty.as_deref(), top.module.as_deref()),
                (Some("Error"), Some("std::io")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_borrowing_error_is_captured_with_its_chain() {
        #[derive(Debug)]
        struct BadToken<'a>(&'a str, std::num::ParseIntError);
        impl std::fmt::Display for BadToken<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "bad token `{}`", self.0)
            }
        }
        impl Error for BadToken<'_> {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.1)
            }
        }
        let input = String::from("x1");
        let err = BadToken(&input, "x1".parse::<u8>().unwrap_err());
        let event = event_from_error(&err, MECHANISM_JOB, true);
        let ex = event.exceptions();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].ty.as_deref(), Some("ParseIntError"));
        assert_eq!(ex[1].ty.as_deref(), Some("BadToken"));
        assert_eq!(ex[1].value.as_deref(), Some("bad token `x1`"));
    }

    #[test]
    fn type_names_come_from_debug_when_plausible() {
        assert_eq!(
            type_from_debug("ParseIntError { kind: Empty }"),
            Some("ParseIntError")
        );
        assert_eq!(type_from_debug("Timeout"), Some("Timeout"));
        assert_eq!(type_from_debug("\"a string\""), None);
        let e = event_from_debug(&"disk full", MECHANISM_JOB);
        assert_eq!(e.exceptions()[0].ty.as_deref(), Some("Error"));
        assert_eq!(e.exceptions()[0].value.as_deref(), Some("\"disk full\""));
    }
}
