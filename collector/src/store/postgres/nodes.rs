//! Each collector's liveness mark in the shared database. The restart guard (no false alarms
//! for what happened while nobody watched) must ask whether the *cluster* was watching: a
//! node that was down while another one ingested and swept has nothing to forgive. The
//! cluster was blind only between the newest mark of any other node and the moment a node
//! came back.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::{PgError, client};

/// One node's liveness mark.
#[derive(Clone)]
pub(crate) struct Nodes {
    pool: Pool,
    target: String,
    node: String,
}

impl Nodes {
    /// The marks of node `node`.
    pub(crate) fn new(pool: Pool, target: &str, node: &str) -> Nodes {
        Nodes {
            pool,
            target: target.to_owned(),
            node: node.to_owned(),
        }
    }

    /// Says this node is alive now; returns the database's time of the mark.
    pub(crate) async fn mark_alive(&self) -> Result<DateTime<Utc>, PgError> {
        let db = client(&self.pool, &self.target).await?;
        let row = db
            .query_one(
                "INSERT INTO watchpost_nodes AS n (node, started_at, alive_at)
                 VALUES ($1, clock_timestamp(), clock_timestamp())
                 ON CONFLICT (node) DO UPDATE SET alive_at = excluded.alive_at
                 RETURNING alive_at",
                &[&self.node],
            )
            .await?;
        Ok(row.get(0))
    }

    /// The newest mark of any *other* node: while it is recent, the cluster was watching.
    pub(crate) async fn others_last_alive(&self) -> Result<Option<DateTime<Utc>>, PgError> {
        let db = client(&self.pool, &self.target).await?;
        let row = db
            .query_one(
                "SELECT max(alive_at) FROM watchpost_nodes WHERE node <> $1",
                &[&self.node],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Forgets nodes silent for longer than `days`, so the table stays the size of the cluster.
    pub(crate) async fn forget_silent(&self, days: i32) -> Result<u64, PgError> {
        let db = client(&self.pool, &self.target).await?;
        Ok(db
            .execute(
                "DELETE FROM watchpost_nodes
                  WHERE alive_at < clock_timestamp() - $1::int * interval '1 day'",
                &[&days],
            )
            .await?)
    }
}
