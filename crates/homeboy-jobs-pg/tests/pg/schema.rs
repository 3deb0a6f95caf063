//! Migrations: applied once however many daemons start together, required before a store opens without
//! migrating, and a database newer than the binary is refused, never touched.

use homeboy_jobs::JobError;
use homeboy_jobs_pg::{PgJobStore, SCHEMA_VERSION, migrate};
use homeboy_pg_harness::Cluster;

use crate::Database;

fn open_error(options: homeboy_jobs_pg::PgOptions) -> JobError {
    match PgJobStore::open(options) {
        Ok(_) => panic!("the store opened"),
        Err(e) => e,
    }
}

#[test]
fn migrations_run_once_under_concurrency_and_a_newer_schema_is_refused() {
    let cluster = Cluster::shared();
    let db = Database::new(cluster, "migrations");
    let mut no_migrate = db.options.clone();
    no_migrate.migrate = false;
    let refused = open_error(no_migrate.clone()).to_string();
    assert!(
        refused.contains("schema version 0") && refused.contains("homeboy-broker migrate"),
        "{refused}"
    );

    let racers: Vec<_> = (0..4)
        .map(|_| {
            let options = db.options.clone();
            std::thread::spawn(move || migrate(&options).unwrap())
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let applied: Vec<i32> = results.iter().flat_map(|m| m.applied.clone()).collect();
    assert_eq!(applied, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    assert!(results.iter().all(|m| m.to == SCHEMA_VERSION));
    assert_eq!(
        cluster
            .sql(&db.name, "SELECT count(*) FROM homeboy_schema_migrations")
            .unwrap()
            .trim(),
        SCHEMA_VERSION.to_string()
    );
    // Current now: a store opens without migrating, and migrating again changes nothing.
    drop(PgJobStore::open(no_migrate.clone()).unwrap());
    assert!(migrate(&db.options).unwrap().applied.is_empty());

    cluster
        .sql(
            &db.name,
            "INSERT INTO homeboy_schema_migrations (version, name) VALUES (999, 'from the future')",
        )
        .unwrap();
    for refused in [
        open_error(db.options.clone()),
        open_error(no_migrate),
        migrate(&db.options).unwrap_err(),
    ] {
        let text = refused.to_string();
        assert!(
            homeboy_jobs_pg::schema::is_schema_refusal(&refused),
            "{text}"
        );
        assert!(
            text.contains("schema version 999") && text.contains("newer"),
            "{text}"
        );
        assert!(
            text.contains(&db.name),
            "the error names the database: {text}"
        );
    }
    assert_eq!(
        cluster
            .sql(&db.name, "SELECT count(*) FROM homeboy_schema_migrations")
            .unwrap()
            .trim(),
        (SCHEMA_VERSION + 1).to_string(),
        "a newer schema is left alone"
    );
}
