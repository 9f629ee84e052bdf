//! Leases: exactly one node at a time does a piece of work that must not run twice at once (a
//! channel's deliveries, so its order, pacing and dedup hold; a probe; the upstream queue).
//!
//! A lease is a row with its holder and an expiry, both set by one conditional upsert: a node
//! gets the row when nobody holds it, when the row has expired, or when it already holds it
//! (which renews it). The condition is evaluated on the row as it is at the moment of writing,
//! so two nodes racing for an expired lease cannot both win: the second one's upsert waits for
//! the first one's row lock and then finds the row held. Times are the database's
//! (`clock_timestamp()`), so nodes whose clocks disagree still agree on who holds what.
//!
//! A holder renews well before expiry (a third of the TTL is the usual rhythm) and stops the
//! work as soon as a renewal fails: after the expiry another node may have started it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::{PgError, client};

/// A lease this node holds, until `expires_at` (the database's time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// The work the lease is for, e.g. `channel:oncall`.
    pub(crate) name: String,
    /// When it lapses unless renewed.
    pub(crate) expires_at: DateTime<Utc>,
    /// When this node took it over (a renewal keeps it).
    pub(crate) acquired_at: DateTime<Utc>,
}

/// One node's side of the leases table.
#[derive(Clone)]
pub(crate) struct Leases {
    pool: Pool,
    target: String,
    node: String,
}

impl Leases {
    /// The leases of node `node` (unique per process: its host name and a random suffix).
    pub(crate) fn new(pool: Pool, target: &str, node: &str) -> Leases {
        Leases {
            pool,
            target: target.to_owned(),
            node: node.to_owned(),
        }
    }

    /// Takes or renews lease `name` for `ttl`; `None` while another node holds it.
    pub(crate) async fn acquire(&self, name: &str, ttl: Duration) -> Result<Option<Held>, PgError> {
        let db = client(&self.pool, &self.target).await?;
        let ttl_ms = ttl.as_secs_f64() * 1000.0;
        let row = db
            .query_opt(
                "INSERT INTO watchpost_leases AS l (name, holder, acquired_at, expires_at)
                 VALUES ($1, $2, clock_timestamp(),
                         clock_timestamp() + $3::float8 * interval '1 millisecond')
                 ON CONFLICT (name) DO UPDATE
                    SET holder = excluded.holder,
                        acquired_at = CASE WHEN l.holder = excluded.holder
                                           THEN l.acquired_at ELSE excluded.acquired_at END,
                        expires_at = excluded.expires_at
                  WHERE l.holder = excluded.holder OR l.expires_at <= clock_timestamp()
                 RETURNING expires_at, acquired_at",
                &[&name, &self.node, &ttl_ms],
            )
            .await?;
        Ok(row.map(|row| Held {
            name: name.to_owned(),
            expires_at: row.get(0),
            acquired_at: row.get(1),
        }))
    }

    /// Gives lease `name` up at once (a node stopping cleanly), if this node holds it, so
    /// another need not wait for the expiry. Returns whether it was held.
    pub(crate) async fn release(&self, name: &str) -> Result<bool, PgError> {
        let db = client(&self.pool, &self.target).await?;
        let gone = db
            .execute(
                "DELETE FROM watchpost_leases WHERE name = $1 AND holder = $2",
                &[&name, &self.node],
            )
            .await?;
        Ok(gone > 0)
    }

    /// Who holds lease `name` now, if anyone (an expired row counts as nobody).
    pub(crate) async fn holder(&self, name: &str) -> Result<Option<String>, PgError> {
        let db = client(&self.pool, &self.target).await?;
        let row = db
            .query_opt(
                "SELECT holder FROM watchpost_leases
                  WHERE name = $1 AND expires_at > clock_timestamp()",
                &[&name],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }
}
