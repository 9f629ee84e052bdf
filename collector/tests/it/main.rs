//! The collector's integration tests, one module per capability, linked into one binary so the
//! server stack (axum, sled, reqwest, lettre) is linked once instead of once per file. Each test
//! starts its own collector binary (`support::Collector`) on its own port and data dir, so tests
//! share nothing but this process. Tests that install the SDK's process-global client cannot
//! share it and live beside this directory (`outage_app.rs`, `sdk_heartbeat.rs`); the engine's
//! property tests are in `engine/tests/`.

// Shared harnesses: the real collector on loopback, and fake alert destinations.
#[path = "../alert_support/mod.rs"]
mod alert_support;
#[path = "../support/mod.rs"]
mod support;
// The SDK's recording server and its check of what Sentry accepts, used by `cli`.
#[path = "../../../sdk/tests/support/mod.rs"]
mod sdk_support;
#[path = "../../../sdk/tests/support/sentry_rules.rs"]
mod sentry_rules;

mod acknowledge;
mod alert_delivery;
mod alert_grouping;
mod alert_storm;
mod alerts_end_to_end;
mod api;
mod bad_input;
mod browser;
mod caps;
mod channels_chat;
mod channels_end_to_end;
mod channels_push;
mod channels_templates;
mod cli;
mod collector_restart;
mod compaction;
mod crontab_reference;
mod dashboard;
mod dashboard_oncall;
mod dependencies;
mod destination_outage;
mod disk_full;
mod disk_space;
mod docs_curl;
mod durability;
mod fuzz_regressions;
mod holes;
mod ingest;
mod interop;
mod issues;
mod maintenance;
mod pages;
mod probe_ack;
mod probes;
mod quotas;
mod redirects;
mod security;
mod server;
mod startup;
mod store_stats;
mod upstream;
mod wedge;
