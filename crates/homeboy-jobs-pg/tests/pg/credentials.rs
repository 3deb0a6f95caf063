//! Runner credentials and sessions shared by every store on one database: a token minted through one store
//! is accepted (with its scope and runner id) by another, a revoke through one is refused by all from the
//! next call, the database holds digests only, and sessions are bounded.

use homeboy_api::jobs::RunnerSession;
use homeboy_config::broker_auth::{CredentialStore, Denial, Scope};
use homeboy_jobs_pg::{MAX_SESSIONS, PgJobStore};
use homeboy_pg_harness::Cluster;

use crate::Database;

#[test]
fn credentials_minted_at_one_store_hold_at_another_until_revoked() {
    let cluster = Cluster::shared();
    let db = Database::new(cluster, "credentials");
    let a = db.open();
    let b = PgJobStore::open_credentials(db.options.clone()).unwrap();
    let (work, token) = CredentialStore::pair(&a, "lab", &[Scope::Work]).unwrap();
    let (_, submit_token) =
        CredentialStore::pair(&b, "lab", &[Scope::Submit, Scope::Submit]).unwrap();

    for store in [&a, &b] {
        let ok = store
            .verify(Some(&token), Scope::Work, Some("lab"))
            .unwrap();
        assert_eq!(ok.unwrap().id, work.id);
        assert_eq!(
            store.verify(Some(&token), Scope::Submit, None).unwrap(),
            Err(Denial::MissingScope)
        );
        assert_eq!(
            store
                .verify(Some(&token), Scope::Work, Some("lab-2"))
                .unwrap(),
            Err(Denial::RunnerMismatch)
        );
        assert_eq!(
            store.verify(Some("hbk_wrong"), Scope::Work, None).unwrap(),
            Err(Denial::UnknownToken)
        );
        assert_eq!(
            store.verify(None, Scope::Work, None).unwrap(),
            Err(Denial::MissingToken)
        );
    }
    let listed = CredentialStore::load(&a).unwrap().credentials;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].scopes, vec![Scope::Submit]);

    let revoked = CredentialStore::revoke(&b, &work.id).unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        CredentialStore::revoke(&a, &work.id).unwrap().revoked_at,
        revoked.revoked_at,
        "revoking twice keeps the first time"
    );
    for store in [&a, &b] {
        assert_eq!(
            store.verify(Some(&token), Scope::Work, None).unwrap(),
            Err(Denial::UnknownToken)
        );
        assert!(
            store
                .verify(Some(&submit_token), Scope::Submit, Some("lab"))
                .unwrap()
                .is_ok()
        );
    }
    assert!(CredentialStore::revoke(&a, "cred_nope").is_err());
    assert!(CredentialStore::pair(&a, "../evil", &[Scope::Work]).is_err());

    let stored = cluster
        .sql(
            &db.name,
            "SELECT record::text FROM homeboy_broker_credentials",
        )
        .unwrap();
    assert!(stored.contains(&work.token_sha256), "the haystack is real");
    assert!(!stored.contains(&token) && !stored.contains(&submit_token));

    for i in 0..(MAX_SESSIONS as u64 + 10) {
        let session = RunnerSession {
            id: format!("sess_{i}"),
            runner_id: "lab".into(),
            controller_id: None,
            homeboy_version: None,
            build_id: None,
            worker_pid: None,
            created_at_ms: 1_000 + i,
        };
        assert!(b.record_session(&session).unwrap(), "kept in the database");
    }
    let kept = cluster
        .sql(
            &db.name,
            "SELECT count(*), min(created_at_ms) FROM homeboy_runner_sessions",
        )
        .unwrap();
    assert_eq!(kept.trim(), format!("{MAX_SESSIONS}|{}", 1_000 + 10));
}
