//! Watchpost SDK: job check-ins, error and panic reports, and health routes for Rust services.
#![warn(missing_docs)]

pub mod protocol;
