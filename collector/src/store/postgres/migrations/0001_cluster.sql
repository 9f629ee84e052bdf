-- Schema 1 of the PostgreSQL store: what several collectors sharing one database coordinate
-- through. Portable SQL only (no advisory locks, no LISTEN/NOTIFY): primary keys, upserts with
-- a condition, and the database's clock, so a Postgres-compatible distributed database can
-- run it (docs/store-backends.md).

-- One row per piece of work exactly one node may do at a time (a channel's deliveries, a
-- probe, the upstream queue). A node holds it while `expires_at` is in the future and renews
-- it well before; a node that dies stops renewing and another takes the row over once it has
-- expired. Times are the database's, so the nodes' clocks need not agree.
CREATE TABLE watchpost_leases (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- One row per collector process: when it started and when it last said it was alive. The
-- cluster is watching while any node is; the gap before the newest mark is the cluster's
-- outage, which is what the restart guard must forgive (a node's own downtime is not, while
-- another node watched).
CREATE TABLE watchpost_nodes (
    node       text        PRIMARY KEY,
    started_at timestamptz NOT NULL,
    alive_at   timestamptz NOT NULL
);
CREATE INDEX watchpost_nodes_alive ON watchpost_nodes (alive_at);
