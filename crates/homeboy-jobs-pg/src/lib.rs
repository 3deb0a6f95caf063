//! The PostgreSQL backend of the job store: several daemons (brokers) serving one queue from one
//! database. [`PgJobStore`] implements [`homeboy_jobs::JobStore`] with the semantics of the embedded redb
//! store — both apply the one state machine in `homeboy_jobs::machine` and pass the one store test suite —
//! and adds what sharing a database needs: `FOR UPDATE SKIP LOCKED` claims, saves fenced by a row
//! revision, change notifications across processes (`LISTEN/NOTIFY`, with a poll fallback), versioned
//! migrations under an advisory lock, and an `Unavailable` error instead of a hang when the database is
//! gone. See `docs/decisions/0002-postgres-job-store.md`.
//!
//! - [`options`]: the connection string, where the password comes from, and how it is shown (never).
//! - [`schema`]: migrations ([`migrate`] is what `homeboy-broker migrate` runs).
//! - `credentials`: runner credentials and sessions shared by the brokers ([`CredentialStore`] on
//!   [`PgJobStore`]).
//! - `store`: the operations; `notify`: notifications; `db`: connections, timeouts, error mapping;
//!   `sql`: every statement.

mod credentials;
mod db;
mod notify;
pub mod options;
pub mod schema;
mod sql;
mod store;

pub use credentials::MAX_SESSIONS;
pub use homeboy_config::broker_auth::CredentialStore;
pub use options::{Dsn, PgOptions};
pub use schema::{MIGRATIONS, Migrated, SCHEMA_VERSION};
pub use store::{PgJobStore, migrate};
