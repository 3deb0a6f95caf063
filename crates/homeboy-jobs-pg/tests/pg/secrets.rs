//! The store's password never shows: not in `Debug` or `Display` of the options, not in an error from a
//! refused password, not in an error from a database that is not there. A password file others may read
//! is refused by name.

use std::os::unix::fs::PermissionsExt;

use homeboy_jobs::{JobError, JobStore};
use homeboy_jobs_pg::{Dsn, PgJobStore, PgOptions};
use homeboy_pg_harness::{Cluster, SUPERUSER};

fn open_error(options: PgOptions) -> JobError {
    match PgJobStore::open(options) {
        Ok(_) => panic!("the store opened"),
        Err(e) => e,
    }
}

fn url(password: &str, port: u16, db: &str) -> String {
    format!("postgres://{SUPERUSER}:{password}@127.0.0.1:{port}/{db}")
}

#[test]
fn the_password_never_shows_in_errors_or_debug_output() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("secrets").unwrap();
    let password = cluster.password().to_string();

    // The haystacks are real: the options do hold the password and the store does connect with it.
    let options = PgOptions::new(Dsn::parse(&url(&password, cluster.port(), &db)).unwrap());
    assert!(options.dsn.has_password());
    let shown = format!("{options:?} {}", options.dsn);
    assert!(shown.contains(&db) && shown.contains(SUPERUSER), "{shown}");
    assert!(!shown.contains(&password), "{shown}");
    let store = PgJobStore::open(options).unwrap().0;
    assert!(store.list(&Default::default()).unwrap().jobs.is_empty());

    let wrong = "Wr0ng-pa55word-for-the-test";
    let refused = open_error(PgOptions::new(
        Dsn::parse(&url(wrong, cluster.port(), &db)).unwrap(),
    ));
    let text = format!("{refused} {refused:?}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(
        text.contains("127.0.0.1"),
        "the error names the database: {text}"
    );
    assert!(!text.contains(wrong) && !text.contains(&password), "{text}");

    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nobody.local_addr().unwrap().port();
    drop(nobody);
    let missing = open_error(PgOptions::new(
        Dsn::parse(&url(&password, port, &db)).unwrap(),
    ));
    assert!(matches!(missing, JobError::Unavailable(_)), "{missing:?}");
    let text = format!("{missing} {missing:?}");
    assert!(!text.contains(&password), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    cluster.write_password_file(&file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut readable = PgOptions::new(Dsn::parse(&cluster.url(&db)).unwrap());
    readable.password_file = Some(file);
    let refused = open_error(readable);
    assert!(
        matches!(&refused, JobError::Invalid { field, .. } if field == "store_password_file"),
        "{refused:?}"
    );
    assert!(!format!("{refused} {refused:?}").contains(&password));
}
