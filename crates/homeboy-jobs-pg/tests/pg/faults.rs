//! What a shared database adds to go wrong: connections killed under the store, the server restarting
//! mid-run, the notification connection lost, and several daemons each owning their daemon jobs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homeboy_jobs::{
    Actor, Changes, ClaimRequest, Executor, JobError, JobResult, JobStatus, JobStore, NewJob,
};
use homeboy_jobs_pg::{Dsn, PgOptions};
use homeboy_pg_harness::{Cluster, TEST_SETTINGS};

use crate::Database;

fn job(command: &str) -> NewJob {
    NewJob {
        operation: "runner.exec".into(),
        executor: Executor::Runner,
        request: serde_json::json!({"command": [command]}),
        target_runner_id: None,
        project_id: None,
        submission_key: None,
        max_attempts: None,
    }
}

/// Polls `done` every few milliseconds until it holds, failing after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn killed_connections_answer_unavailable_and_the_store_comes_back() {
    let cluster = Cluster::shared();
    let db = Database::new(cluster, "killed_connections");
    let store = db.open();
    let mut acked: Vec<String> = (0..20)
        .map(|_| store.enqueue(job("x")).unwrap().job.id)
        .collect();
    let killed = cluster
        .sql(
            &db.name,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .unwrap();
    assert!(killed.trim().parse::<u32>().unwrap() >= 1, "{killed}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answered = 0;
    while answered < 20 {
        assert!(Instant::now() < deadline, "the store did not come back");
        match store.enqueue(job("after")) {
            Ok(enqueued) => {
                answered += 1;
                acked.push(enqueued.job.id);
            }
            Err(JobError::Unavailable(_)) => std::thread::sleep(Duration::from_millis(20)),
            Err(other) => panic!("a lost connection must read as unavailable, not {other:?}"),
        }
    }
    for id in &acked {
        assert!(
            store.get(id).unwrap().is_some(),
            "acknowledged job {id} lost"
        );
    }
}

#[test]
fn a_database_crash_and_restart_loses_no_acknowledged_work() {
    let cluster = Cluster::start(TEST_SETTINGS).unwrap();
    let db = Database::new(&cluster, "restart");
    let store: Arc<dyn JobStore> = Arc::new(db.open());
    let enqueued: Arc<Mutex<Vec<String>>> = Arc::default();
    let finished: Arc<Mutex<Vec<String>>> = Arc::default();
    let refusals = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (store, enqueued, finished) = (store.clone(), enqueued.clone(), finished.clone());
            let (refusals, stop) = (refusals.clone(), stop.clone());
            std::thread::spawn(move || {
                let runner = format!("lab-{w}");
                let unavailable = |e: JobError| match e {
                    JobError::Unavailable(_) => {
                        refusals.fetch_add(1, Ordering::SeqCst);
                        // Pace retries while the database is down.
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    other => panic!("expected unavailable, got {other:?}"),
                };
                while !stop.load(Ordering::SeqCst) {
                    let mut submitted = job("x");
                    submitted.target_runner_id = Some(runner.clone());
                    match store.enqueue(submitted) {
                        Ok(e) => enqueued.lock().unwrap().push(e.job.id),
                        Err(e) => unavailable(e),
                    }
                    let claim = ClaimRequest {
                        runner_id: runner.clone(),
                        project_id: None,
                        lease_ms: 60_000,
                    };
                    let claimed = match store.claim(claim) {
                        Ok(Some(c)) => c,
                        Ok(None) => continue,
                        Err(e) => {
                            unavailable(e);
                            continue;
                        }
                    };
                    let actor = Actor::Runner {
                        runner_id: runner.clone(),
                        claim_id: claimed.job.claim_id.clone().unwrap(),
                    };
                    match store.finish(&claimed.job.id, &actor, JobResult::default()) {
                        Ok(_) => finished.lock().unwrap().push(claimed.job.id),
                        Err(e) => unavailable(e),
                    }
                }
            })
        })
        .collect();
    let count = |list: &Arc<Mutex<Vec<String>>>| list.lock().unwrap().len();
    wait_until("work before the crash", Duration::from_secs(30), || {
        count(&finished) >= 100
    });
    cluster.restart().unwrap();
    let after = count(&finished);
    wait_until("work after the restart", Duration::from_secs(60), || {
        count(&finished) >= after + 100
    });
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        refusals.load(Ordering::SeqCst) > 0,
        "the restart was seen as unavailability"
    );
    for id in enqueued.lock().unwrap().iter() {
        assert!(
            store.get(id).unwrap().is_some(),
            "acknowledged job {id} lost"
        );
    }
    for id in finished.lock().unwrap().iter() {
        let job = store.get(id).unwrap().unwrap();
        assert_eq!(
            job.status,
            JobStatus::Succeeded,
            "acknowledged finish of {id} lost"
        );
    }
}

#[test]
fn the_observer_keeps_hearing_other_stores_while_the_listener_is_cut_off() {
    let cluster = Cluster::shared();
    let name = cluster.create_database("fallback").unwrap();
    let role = format!("r_{name}");
    let password = "fallback-role-password";
    cluster
        .sql(
            &name,
            &format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{password}'; ALTER DATABASE {name} OWNER TO {role};"
            ),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, password).unwrap();
    std::fs::set_permissions(
        &password_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let url = format!("postgres://{role}@127.0.0.1:{}/{name}", cluster.port());
    let mut options = PgOptions::new(Dsn::parse(&url).unwrap());
    options.password_file = Some(password_file);
    options.pool_size = 2;
    let db = Database {
        name: name.clone(),
        options,
        _dir: dir,
    };
    let (a, b) = (db.open(), db.open());
    a.enqueue(job("warm")).unwrap();
    b.list(&Default::default()).unwrap();
    let heard: Arc<Mutex<Vec<Changes>>> = Arc::default();
    let sink = heard.clone();
    b.set_observer(Arc::new(move |c| sink.lock().unwrap().push(c.clone())));
    let heard_enqueue = |id: &str| {
        heard
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.queue_grew && c.jobs.iter().any(|j| j == id))
    };
    let sessions = |filter: &str| -> u32 {
        let sql =
            format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}' {filter}");
        cluster.sql(&name, &sql).unwrap().trim().parse().unwrap()
    };
    let listening = "AND application_name LIKE 'homeboy-jobs-listen/%'";
    wait_until("the listener", Duration::from_secs(10), || {
        sessions(listening) == 1
    });
    let first = a.enqueue(job("first")).unwrap().job;
    wait_until("a notification", Duration::from_secs(10), || {
        heard_enqueue(&first.id)
    });

    // Cut the listener off: no connection more than the role has now minus the listener's, then kill it.
    let limit = sessions("") - 1;
    cluster
        .sql(
            &name,
            &format!("ALTER ROLE {role} CONNECTION LIMIT {limit}"),
        )
        .unwrap();
    cluster
        .sql(
            &name,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}' {listening}"
            ),
        )
        .unwrap();
    wait_until("the listener to go", Duration::from_secs(10), || {
        sessions(listening) == 0
    });
    let unheard = a.enqueue(job("while cut off")).unwrap().job;
    wait_until("the fallback poll", Duration::from_secs(10), || {
        heard_enqueue(&unheard.id)
    });
    assert_eq!(sessions(listening), 0, "heard by polling, not by listening");

    cluster
        .sql(&name, &format!("ALTER ROLE {role} CONNECTION LIMIT -1"))
        .unwrap();
    wait_until("the listener to reconnect", Duration::from_secs(20), || {
        sessions(listening) == 1
    });
    let last = a.enqueue(job("listening again")).unwrap().job;
    wait_until("a notification again", Duration::from_secs(10), || {
        heard_enqueue(&last.id)
    });
}

#[test]
fn each_daemon_fails_only_its_own_stale_daemon_jobs() {
    let cluster = Cluster::shared();
    let db = Database::new(cluster, "nodes");
    let node = |name: &str| {
        let mut options = db.options.clone();
        options.node = name.into();
        options
    };
    let a = homeboy_jobs_pg::PgJobStore::open(node("node-a")).unwrap().0;
    let mut daemon_job = job("lint");
    daemon_job.executor = Executor::Daemon;
    let id = a.enqueue(daemon_job).unwrap().job.id;
    assert_eq!(a.start_next_daemon_job().unwrap().unwrap().job.id, id);
    let (b, recovery) = homeboy_jobs_pg::PgJobStore::open(node("node-b")).unwrap();
    assert!(
        recovery.failed_stale.is_empty(),
        "node-a's job is not node-b's to fail"
    );
    assert_eq!(b.get(&id).unwrap().unwrap().status, JobStatus::Running);
    drop(a);
    let (a, recovery) = homeboy_jobs_pg::PgJobStore::open(node("node-a")).unwrap();
    assert_eq!(recovery.failed_stale, vec![id.clone()]);
    let failed = a.get(&id).unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.stale_reason.as_deref()),
        (JobStatus::Failed, Some("daemon_restarted"))
    );
}
