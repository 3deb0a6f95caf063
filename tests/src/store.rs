//! Which job store the brokers of a test use: the embedded redb store (each broker's own data dir) or a
//! real PostgreSQL database (`homeboy-pg-harness`) that several brokers share. A PostgreSQL home passes
//! the store to every command it builds through `HOMEBOY_JOB_STORE_URL` (no password in it) and
//! `PGPASSWORD`, so `homeboy-broker` and `homeboy runner broker pair` reach the same database.

use homeboy_pg_harness::Cluster;

use crate::Home;

/// A job store backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redb,
    Postgres,
}

/// A fresh database on a PostgreSQL cluster.
#[derive(Clone)]
pub struct PgStore {
    /// `postgres://homeboy@127.0.0.1:<port>/<db>` (no password).
    pub url: String,
    pub database: String,
    /// The cluster's superuser password (what `PGPASSWORD` carries).
    pub password: String,
}

impl PgStore {
    /// A fresh database on the test binary's shared cluster.
    pub fn new(hint: &str) -> PgStore {
        Self::on(Cluster::shared(), hint)
    }

    /// A fresh database on `cluster`.
    pub fn on(cluster: &Cluster, hint: &str) -> PgStore {
        let database = cluster
            .create_database(hint)
            .unwrap_or_else(|e| panic!("create a test database: {e}"));
        PgStore {
            url: cluster.url(&database),
            database,
            password: cluster.password().to_string(),
        }
    }
}

impl PgStore {
    /// Every row homeboy keeps in this database (credentials, sessions, jobs, events) as text: the
    /// haystack of a leak scan. Asserts it holds something.
    pub fn dump(&self, cluster: &Cluster) -> String {
        let text = cluster
            .sql(
                &self.database,
                "SELECT string_agg(t, E'\\n') FROM (
                     SELECT c::text AS t FROM homeboy_broker_credentials c
                     UNION ALL SELECT s::text FROM homeboy_runner_sessions s
                     UNION ALL SELECT j::text FROM homeboy_jobs j
                     UNION ALL SELECT e::text FROM homeboy_job_events e) rows",
            )
            .unwrap_or_else(|e| panic!("dump {}: {e}", self.database));
        assert!(
            text.contains("token_sha256"),
            "the dump of {} holds no credential: {text:?}",
            self.database
        );
        text
    }
}

impl Home {
    /// A home whose commands use `backend` (a fresh database on the shared cluster for PostgreSQL).
    pub fn on(backend: Backend, hint: &str) -> Home {
        match backend {
            Backend::Redb => Home::new(),
            Backend::Postgres => Home::with_store(&PgStore::new(hint)),
        }
    }

    /// A home whose brokers and credential commands use `store`.
    pub fn with_store(store: &PgStore) -> Home {
        let mut home = Home::new();
        home.env
            .push(("HOMEBOY_JOB_STORE_URL".into(), store.url.clone()));
        home.env.push(("PGPASSWORD".into(), store.password.clone()));
        home.pg = Some(store.clone());
        home
    }

    /// The PostgreSQL job store of this home (`None` for redb).
    pub fn pg(&self) -> Option<&PgStore> {
        self.pg.as_ref()
    }
}
