//! What every HTTP handler shares: [`AppState`], a cheap handle to [`Shared`] (the store, the
//! processor, keys, counters, budgets, the dashboard's sessions), and [`client_ip`].
//!
//! Its own module so the handler modules (`ingest`, `api`, `dashboard`) and the wiring that
//! builds the router from them (`server.rs`) do not import each other: handlers import this,
//! `server.rs` imports the handlers and fills this in.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;

use crate::config::Secret;
use crate::dashboard::state::Dashboard;
use crate::deadlines::Deadlines;
use crate::health::HealthSources;
use crate::ingest::auth::ProjectKeys;
use crate::ingest::inflight::DecodeBudget;
use crate::ingest::ratelimit::RateLimiter;
use crate::metrics::Metrics;
use crate::probe::Probes;
use crate::processor::Processor;
use crate::store::Store;
use crate::throttle::AuthThrottle;
use crate::upstream::Upstream;

/// What handlers share.
#[derive(Debug)]
pub struct Shared {
    /// The store, for reads.
    pub store: Store,
    /// The only writer of monitor state.
    pub processor: Arc<Processor>,
    /// The sweeper's index, for health and metrics.
    pub deadlines: Arc<Deadlines>,
    /// Ingest keys by project.
    pub keys: ProjectKeys,
    /// The management API's bearer token.
    pub admin_token: Secret,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Sessions and badge keys of the HTML dashboard.
    pub dashboard: Dashboard,
    /// The relay to `[upstream]` (off when not configured).
    pub upstream: Upstream,
    /// The configured uptime probes and what their tasks last saw.
    pub probes: Probes,
    /// What `/healthz` and the watchdog judge the collector's health from.
    pub health: HealthSources,
    /// Ingest token buckets per key, monitor environment and project (`[limits]`).
    pub rate_limits: RateLimiter,
    /// Decoded request bytes all requests may hold at once (`limits.decoded_bytes_in_flight`).
    pub decode_budget: DecodeBudget,
    /// Wrong admin tokens per client address, for the login form and the API alike.
    pub auth_throttle: AuthThrottle,
}

/// The TCP peer's address of a request (`listener::serve` attaches it); the unspecified
/// address for a request that came another way (a router driven in a test).
pub fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}

/// Axum state: a cheap handle to [`Shared`].
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
