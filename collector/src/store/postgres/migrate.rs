//! The PostgreSQL store's schema: numbered SQL files applied in order at start, under a lock,
//! by whichever node comes first; a database newer than this binary is refused.
//!
//! Each migration runs in the same transaction as the row that records it, so a node that dies
//! half-way leaves the schema as it was (PostgreSQL's DDL is transactional). The lock is a
//! table lock on `watchpost_schema`, held to the end of that transaction: a second node starting
//! at the same moment waits, then finds the work done.

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

use super::{PgError, client};

/// The migrations, in order: (version, SQL).
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("migrations/0001_cluster.sql"))];

/// The newest schema this binary knows.
pub(crate) const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the schema up to date; returns the versions this call applied.
pub(crate) async fn apply(pool: &Pool, target: &str) -> Result<Vec<i32>, PgError> {
    let mut db = client(pool, target).await?;
    create_schema_table(&db).await?;
    let tx = db.transaction().await?;
    tx.batch_execute("LOCK TABLE watchpost_schema IN EXCLUSIVE MODE")
        .await?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM watchpost_schema",
            &[],
        )
        .await?
        .get(0);
    if found > LATEST {
        return Err(PgError::Newer {
            found,
            known: LATEST,
        });
    }
    let mut applied = Vec::new();
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO watchpost_schema (version, applied_at) VALUES ($1, clock_timestamp())",
            &[&version],
        )
        .await?;
        applied.push(version);
    }
    tx.commit().await?;
    if !applied.is_empty() {
        tracing::info!(database = %target, ?applied, "PostgreSQL schema migrated");
    }
    Ok(applied)
}

/// The schema's own table. Two nodes creating it at the same moment can both pass `IF NOT
/// EXISTS` and one then fails on the catalog's unique index: that one finds the table made.
async fn create_schema_table(db: &tokio_postgres::Client) -> Result<(), PgError> {
    let made = db
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS watchpost_schema (
                 version    integer     PRIMARY KEY,
                 applied_at timestamptz NOT NULL
             )",
        )
        .await;
    match made {
        Err(err)
            if err.code() == Some(&SqlState::UNIQUE_VIOLATION)
                || err.code() == Some(&SqlState::DUPLICATE_TABLE) =>
        {
            Ok(())
        }
        other => other.map_err(PgError::from),
    }
}

/// The schema version the database has (0 for an empty database).
pub(crate) async fn version(pool: &Pool, target: &str) -> Result<i32, PgError> {
    let db = client(pool, target).await?;
    let exists: bool = db
        .query_one("SELECT to_regclass('watchpost_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(db
        .query_one(
            "SELECT coalesce(max(version), 0) FROM watchpost_schema",
            &[],
        )
        .await?
        .get(0))
}
