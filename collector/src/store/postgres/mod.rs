//! The PostgreSQL store, for running several collectors on one database (issue 18), being
//! built beside the sled store one part at a time. Like sled, only `store/` knows it.
//!
//! What is here today, each tested against a real server (`scripts/postgres-test.sh` starts
//! one under `target/postgres`):
//!
//! - [`connect`]: a pool of connections from a `postgres://` URL, with a statement timeout, and
//!   the schema brought up to date at start under a lock, refused when the database is newer
//!   than this binary ([`migrate`]);
//! - [`lease`]: the rows through which exactly one node at a time does a piece of work (a
//!   channel's deliveries, a probe, the upstream queue), taken over when a node dies;
//! - [`nodes`]: each node's liveness mark, so the cluster counts as watching while any node is.
//!
//! Not yet: the tables of monitors, check-ins, incidents, issues and deliveries, and `Store`
//! choosing between sled and PostgreSQL (`[store] backend`); the order of the remaining steps is
//! in docs/store-backends.md, "How the second backend goes in". Until then nothing outside the
//! tests calls this module.
#![cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the PostgreSQL store is not yet selectable; its parts are tested on their own"
    )
)]

pub(crate) mod lease;
pub(crate) mod migrate;
pub(crate) mod nodes;
#[cfg(test)]
mod tests;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// Why the PostgreSQL store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    /// The URL does not parse as a PostgreSQL connection string.
    #[error(
        "the PostgreSQL URL does not parse ({0}); write it as \
         postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    )]
    BadUrl(tokio_postgres::Error),
    /// No connection could be had from the pool (the server is down, refuses us, or the pool
    /// waited too long).
    #[error("cannot connect to PostgreSQL at {target}: {detail}")]
    Connect {
        /// Host, port and database, without the password.
        target: String,
        /// What the driver or the pool said.
        detail: String,
    },
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The database was migrated by a newer watchpost than this one.
    #[error(
        "the database's schema is version {found}, newer than this watchpost knows (up to \
         {known}); run the newer release on this node too (every node of a cluster must know \
         the database's schema), or point it at another database"
    )]
    Newer {
        /// The newest schema version recorded in the database.
        found: i32,
        /// The newest this binary has.
        known: i32,
    },
}

/// How to reach the database.
#[derive(Clone, Debug)]
pub(crate) struct PgOptions {
    /// `postgres://user:password@host:port/database`.
    pub(crate) url: String,
    /// Connections kept open at most.
    pub(crate) pool_size: usize,
    /// A statement running longer than this is cancelled by the server.
    pub(crate) statement_timeout: Duration,
}

/// Opens a pool on the database and brings its schema up to date.
pub(crate) async fn connect(options: &PgOptions) -> Result<Pool, PgError> {
    let mut config: tokio_postgres::Config = options.url.parse().map_err(PgError::BadUrl)?;
    config.options(format!(
        "-c statement_timeout={}",
        options.statement_timeout.as_millis()
    ));
    config.application_name("watchpost");
    let target = describe(&config);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .build()
        .map_err(|err| PgError::Connect {
            target: target.clone(),
            detail: err.to_string(),
        })?;
    migrate::apply(&pool, &target).await?;
    Ok(pool)
}

/// Takes a connection from the pool, naming the database in the error.
pub(crate) async fn client(
    pool: &Pool,
    target: &str,
) -> Result<deadpool_postgres::Object, PgError> {
    pool.get().await.map_err(|err| PgError::Connect {
        target: target.to_owned(),
        detail: err.to_string(),
    })
}

/// `host:port/database` of a connection config, never its password.
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map_or_else(String::new, |host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        });
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().unwrap_or("");
    format!("{host}:{port}/{database}")
}
