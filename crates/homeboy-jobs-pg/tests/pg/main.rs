//! The PostgreSQL job store on a real PostgreSQL: one cluster for this test binary (`homeboy-pg-harness`),
//! one database per test. `suite` runs the store test suite every backend passes; the other modules test
//! what only a shared database has — migrations, secrets, lost connections and restarts, notifications.

mod credentials;
mod faults;
mod schema;
mod secrets;
mod suite;

use std::path::PathBuf;
use std::sync::Arc;

use homeboy_jobs::{Clock, JobStore, Recovery, StoreOptions, system_clock};
use homeboy_jobs_pg::{Dsn, PgJobStore, PgOptions};
use homeboy_pg_harness::Cluster;

/// A fresh database on `cluster` and the options to reach it (password from a 0600 file).
pub struct Database {
    pub name: String,
    pub options: PgOptions,
    _dir: tempfile::TempDir,
}

impl Database {
    pub fn new(cluster: &Cluster, test: &str) -> Database {
        let name = cluster.create_database(test).unwrap();
        Database::on(cluster, name)
    }

    /// Options for the existing database `name`.
    pub fn on(cluster: &Cluster, name: String) -> Database {
        let dir = tempfile::tempdir().unwrap();
        let password_file: PathBuf = dir.path().join("store-password");
        cluster.write_password_file(&password_file).unwrap();
        let mut options = PgOptions::new(Dsn::parse(&cluster.url(&name)).unwrap());
        options.password_file = Some(password_file);
        options.pool_size = 4;
        options.node = "test-node".into();
        Database {
            name,
            options,
            _dir: dir,
        }
    }

    pub fn open(&self) -> PgJobStore {
        self.open_with(system_clock()).0
    }

    pub fn open_with(&self, clock: Clock) -> (PgJobStore, Recovery) {
        PgJobStore::open_with_clock(self.options.clone(), clock).unwrap()
    }

    pub fn open_dyn(&self, store: StoreOptions, clock: Clock) -> (Arc<dyn JobStore>, Recovery) {
        let mut options = self.options.clone();
        options.store = store;
        let (s, r) = PgJobStore::open_with_clock(options, clock).unwrap();
        (Arc::new(s), r)
    }
}
