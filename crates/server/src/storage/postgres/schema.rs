//! The tables, as embedded, versioned migrations applied at connect.
//!
//! `errand_schema` records the version. Migrations run in one transaction under a
//! transaction-scoped advisory lock keyed by the schema, so replicas starting at once apply
//! them once: the others wait, then find the version current. A database at a newer version
//! than this code knows is refused, as SQLite refuses a newer file.
//!
//! The tables follow SQLite's (`sqlite/schema.rs`), with PostgreSQL's types and a few
//! differences:
//!
//! - `seq` identity columns on `threads` and `runs` give the insertion order that SQLite's
//!   rowid gives (ties of `created_at` in one microsecond, thread searches sorted by creation).
//! - `threads.metadata`, `threads.state_values` and `store_items.value` are `jsonb`, searched
//!   by containment (`@>`, with a GIN index on thread metadata); the exact rule
//!   (`rules::contains`) runs on what that finds. JSON handed back as it is stays `text`.
//! - Text that is compared by ranges or ordered byte-wise (store namespaces and keys,
//!   checkpoint ids) is `COLLATE "C"`, so a database's locale cannot change what a prefix
//!   matches.
//! - `threads` has room for in-place (HOT) updates: the columns a run's life rewrites
//!   (status, counts, values) are in no index.

use super::codec::{Pg, get};
use super::quote_ident;
use crate::storage::{StorageError, StorageResult};

/// The schema version this code writes.
pub(super) const SCHEMA_VERSION: i32 = 1;

/// The migrations, the one at index `i` taking the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE threads (
    thread_id uuid PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    status text NOT NULL,
    active_runs integer NOT NULL DEFAULT 0,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    state_updated_at bigint,
    metadata jsonb NOT NULL,
    config text,
    state_values jsonb,
    interrupts text,
    error text,
    extra text NOT NULL
) WITH (fillfactor = 80);
CREATE UNIQUE INDEX threads_seq ON threads (seq);
CREATE INDEX threads_metadata ON threads USING gin (metadata jsonb_path_ops);

CREATE TABLE runs (
    run_id uuid PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    thread_id uuid NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    status text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    doc text NOT NULL,
    lease_owner uuid,
    cancel_action text
);
CREATE INDEX runs_thread ON runs (thread_id, created_at, seq);
CREATE INDEX runs_pending ON runs (created_at, seq) WHERE status = 'pending';
CREATE INDEX runs_waiting ON runs (thread_id, created_at, seq) WHERE status = 'pending';
CREATE INDEX runs_cancelling ON runs (lease_owner)
    WHERE cancel_action IS NOT NULL AND status = 'running';

CREATE TABLE run_events (
    run_id uuid NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    event text NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE checkpoints (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thread_id uuid NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    checkpoint_id text COLLATE "C" NOT NULL,
    parent_checkpoint_id text,
    run_id uuid,
    state_values text NOT NULL,
    metadata text NOT NULL,
    next text NOT NULL,
    interrupts text NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX checkpoints_thread ON checkpoints (thread_id, seq);

CREATE TABLE replicas (
    replica_id uuid PRIMARY KEY,
    lease_until bigint NOT NULL
);

CREATE TABLE store_items (
    namespace text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value jsonb NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (namespace, key)
);
"#];

/// Creates the schema if it is missing and brings its tables to [`SCHEMA_VERSION`].
pub(super) async fn migrate(
    client: &tokio_postgres::Client,
    schema: Option<&str>,
) -> StorageResult<()> {
    client.batch_execute("BEGIN").await.pg()?;
    let result = async {
        // Keyed by the schema: tests give each its own, and migrate side by side.
        let key = format!("errand-migrate:{}", schema.unwrap_or(""));
        client
            .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key])
            .await
            .pg()?;
        if let Some(schema) = schema {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    quote_ident(schema)
                ))
                .await
                .pg()?;
        }
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS errand_schema (\
                 one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)",
            )
            .await
            .pg()?;
        let row = client
            .query_opt("SELECT version FROM errand_schema", &[])
            .await
            .pg()?;
        let version: i32 = match &row {
            Some(row) => get(row, 0)?,
            None => 0,
        };
        if version > SCHEMA_VERSION {
            return Err(StorageError::backend(format!(
                "the database has errand schema version {version}, newer than the \
                 {SCHEMA_VERSION} this errand understands; use a newer errand"
            )));
        }
        let from = usize::try_from(version).unwrap_or(0);
        for migration in MIGRATIONS.iter().skip(from) {
            client.batch_execute(migration).await.pg()?;
        }
        if version < SCHEMA_VERSION {
            client
                .execute(
                    "INSERT INTO errand_schema (one, version) VALUES (true, $1) \
                     ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                    &[&SCHEMA_VERSION],
                )
                .await
                .pg()?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => client.batch_execute("COMMIT").await.pg(),
        Err(error) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(error)
        }
    }
}
