//! Versioned schema migrations: numbered SQL files under `migrations/`, compiled into the binary and
//! applied in order, each recorded in `homeboy_schema_migrations`. [`migrate`] holds a transaction-scoped
//! advisory lock for the whole run, so several daemons starting at once apply each migration exactly once;
//! a database whose schema is newer than this binary knows is refused, never touched.

use homeboy_jobs::JobError;
use tokio_postgres::Client;

use crate::db::classify;

/// One migration: its version (the file's number), name and SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this binary knows, in order. Append only; never edit a released one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs",
        sql: include_str!("../migrations/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        name: "broker_auth",
        sql: include_str!("../migrations/0002_broker_auth.sql"),
    },
];

/// The schema version this binary needs.
pub const SCHEMA_VERSION: i32 = 2;

/// The advisory lock key of migrations (`homeboy` in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x686f_6d65_626f_7901;

/// What [`migrate`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The schema version before.
    pub from: i32,
    /// The schema version now.
    pub to: i32,
    /// The versions applied by this call (empty when the schema was current).
    pub applied: Vec<i32>,
}

/// Applies pending migrations under the advisory lock, in one transaction. Refuses a newer schema.
pub(crate) async fn migrate(client: &mut Client) -> Result<Migrated, JobError> {
    let tx = client.transaction().await.map_err(classify)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(classify)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS homeboy_schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(classify)?;
    let from: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM homeboy_schema_migrations",
            &[],
        )
        .await
        .map_err(classify)?
        .get(0);
    refuse_newer(from)?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
        tx.batch_execute(migration.sql).await.map_err(|e| {
            JobError::Storage(format!(
                "schema migration {} ({}) failed: {}",
                migration.version,
                migration.name,
                classify(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO homeboy_schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(classify)?;
        applied.push(migration.version);
    }
    tx.commit().await.map_err(classify)?;
    Ok(Migrated {
        from,
        to: from.max(SCHEMA_VERSION),
        applied,
    })
}

/// The schema version of the database (0 for an empty one).
pub(crate) async fn version(client: &Client) -> Result<i32, JobError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('homeboy_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(classify)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM homeboy_schema_migrations",
            &[],
        )
        .await
        .map_err(classify)?;
    Ok(row.get(0))
}

/// Without migrating: the schema must be exactly the one this binary needs.
pub(crate) async fn check(client: &Client) -> Result<(), JobError> {
    let found = version(client).await?;
    refuse_newer(found)?;
    if found < SCHEMA_VERSION {
        return Err(schema_refusal(format!(
            "the job store's database has schema version {found}, this homeboy needs {SCHEMA_VERSION}; run `homeboy-broker migrate` (or start without --no-migrate)"
        )));
    }
    Ok(())
}

fn refuse_newer(found: i32) -> Result<(), JobError> {
    if found > SCHEMA_VERSION {
        return Err(schema_refusal(format!(
            "the job store's database has schema version {found}, newer than this homeboy knows ({SCHEMA_VERSION}); upgrade homeboy before starting it against this database"
        )));
    }
    Ok(())
}

/// The field a schema refusal names (`JobError::Invalid`): a binary refuses to start with it, and
/// [`is_schema_refusal`] tells it apart from other failures (the broker exits with its own code).
pub const SCHEMA_FIELD: &str = "schema_version";

fn schema_refusal(problem: String) -> JobError {
    JobError::Invalid {
        field: SCHEMA_FIELD.to_string(),
        problem,
    }
}

/// Whether `e` is a refusal of the database's schema version (newer than this binary, or older with
/// migrations off).
pub fn is_schema_refusal(e: &JobError) -> bool {
    matches!(e, JobError::Invalid { field, .. } if field == SCHEMA_FIELD)
}
