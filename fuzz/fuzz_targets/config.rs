//! The config loader on arbitrary TOML text, with an environment that holds nothing (so
//! `env:NAME` lookups have no side effects and are deterministic). It never panics; an invalid
//! config is one message that names what is wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_collector::config::{Config, Overrides};

fuzz_target!(|text: &str| {
    if let Err(error) = Config::parse(text, &Overrides::default(), &|_| None) {
        assert!(!error.to_string().is_empty(), "an error with no message");
    }
});
