//! Tests of the lease boundary and of heartbeats against the sweep, on a real store file with a hand-driven
//! clock: a lease is live while `now < claim_expires_at_ms` and expired at `now == claim_expires_at_ms`,
//! for every claim-scoped call and for the sweep alike (see [`crate::JobStore`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use crate::{
    Actor, ClaimRequest, Claimed, EventKind, Executor, JobError, JobResult, JobStatus, JobStore,
    NewEvent, NewJob, RedbJobStore, StoreOptions,
};

const START: u64 = 5_000_000;

struct Clocked {
    _dir: tempfile::TempDir,
    now: Arc<AtomicU64>,
    store: RedbJobStore,
}

impl Clocked {
    fn new() -> Clocked {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicU64::new(START));
        let store = open(&dir.path().join("jobs.redb"), &now);
        Clocked {
            _dir: dir,
            now,
            store,
        }
    }

    fn at(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
    }

    fn claim(&self, runner: &str, lease_ms: u64) -> Option<Claimed> {
        self.store
            .claim(ClaimRequest {
                runner_id: runner.into(),
                project_id: None,
                lease_ms,
            })
            .unwrap()
    }
}

fn open(path: &Path, now: &Arc<AtomicU64>) -> RedbJobStore {
    let now = now.clone();
    RedbJobStore::open_with_clock(
        path,
        StoreOptions::default(),
        Arc::new(move || now.load(Ordering::SeqCst)),
    )
    .unwrap()
    .0
}

fn runner_job() -> NewJob {
    NewJob {
        operation: "runner.exec".into(),
        executor: Executor::Runner,
        request: json!({"command": ["true"]}),
        target_runner_id: None,
        project_id: None,
        submission_key: None,
        max_attempts: None,
    }
}

fn actor(claimed: &Claimed) -> Actor {
    Actor::Runner {
        runner_id: claimed.job.claimed_by_runner_id.clone().unwrap(),
        claim_id: claimed.job.claim_id.clone().unwrap(),
    }
}

fn line(text: &str) -> Vec<NewEvent> {
    vec![NewEvent {
        kind: EventKind::Stdout,
        message: Some(text.into()),
        data: None,
    }]
}

fn expired(result: Result<impl std::fmt::Debug, JobError>) -> bool {
    matches!(result, Err(JobError::ClaimExpired { .. }))
}

#[test]
fn a_lease_is_live_before_its_expiry_and_expired_at_it() {
    let c = Clocked::new();
    let job = c.store.enqueue(runner_job()).unwrap().job;
    let claimed = c.claim("lab", 1_000).unwrap();
    let expires = claimed.job.claim_expires_at_ms.unwrap();
    assert_eq!(expires, START + 1_000);
    let who = actor(&claimed);

    // One millisecond before: everything the claim allows still works, and the sweep leaves it alone.
    c.at(expires - 1);
    c.store.append_events(&job.id, &who, line("late")).unwrap();
    assert!(c.store.expire_leases().unwrap().is_empty());
    assert_eq!(
        c.store.get(&job.id).unwrap().unwrap().status,
        JobStatus::Running
    );

    // At the expiry itself the lease is over, for every claim-scoped call and for the sweep.
    c.at(expires);
    assert!(expired(c.store.append_events(&job.id, &who, line("x"))));
    assert!(expired(c.store.heartbeat(&job.id, &who, 1_000)));
    assert!(expired(c.store.finish(&job.id, &who, JobResult::default())));
    let swept = c.store.expire_leases().unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(
        (swept[0].id.as_str(), swept[0].status),
        (job.id.as_str(), JobStatus::Queued)
    );
    assert!(c.store.expire_leases().unwrap().is_empty(), "swept once");
}

#[test]
fn a_claim_at_the_expiry_millisecond_takes_the_expired_job() {
    let c = Clocked::new();
    let job = c.store.enqueue(runner_job()).unwrap().job;
    let first = c.claim("lab-1", 1_000).unwrap();
    c.at(START + 999);
    assert!(c.claim("lab-2", 1_000).is_none(), "the lease is still live");
    c.at(START + 1_000);
    let second = c.claim("lab-2", 1_000).unwrap();
    assert_eq!(second.job.id, job.id);
    assert_eq!(second.job.attempt, 2);
    assert!(expired(c.store.heartbeat(&job.id, &actor(&first), 1_000)));
}

#[test]
fn a_heartbeat_keeps_the_job_across_the_old_expiry() {
    let c = Clocked::new();
    let job = c.store.enqueue(runner_job()).unwrap().job;
    let claimed = c.claim("lab", 1_000).unwrap();
    let who = actor(&claimed);
    let old_expiry = claimed.job.claim_expires_at_ms.unwrap();

    c.at(START + 500);
    let extended = c.store.heartbeat(&job.id, &who, 1_000).unwrap();
    let new_expiry = extended.claim_expires_at_ms.unwrap();
    assert_eq!(new_expiry, START + 1_500);

    // At and after the old expiry the job stays with its runner: the sweep finds nothing, nobody else can
    // claim it, and the runner's calls work.
    for now in [old_expiry, old_expiry + 1, new_expiry - 1] {
        c.at(now);
        assert!(c.store.expire_leases().unwrap().is_empty(), "at {now}");
        assert!(c.claim("thief", 1_000).is_none(), "at {now}");
        c.store
            .append_events(&job.id, &who, line("still here"))
            .unwrap();
    }
    let kept = c.store.get(&job.id).unwrap().unwrap();
    assert_eq!(kept.status, JobStatus::Running);
    assert_eq!(kept.claim_id, claimed.job.claim_id);
    assert_eq!(kept.attempt, 1);

    // The new expiry is the only one left: the job is swept exactly once, when it passes.
    c.at(new_expiry);
    let swept = c.store.expire_leases().unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].status, JobStatus::Queued);
    let requeues = c
        .store
        .events(&job.id, 0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.data
                .as_ref()
                .is_some_and(|d| d["reason"] == "claim_expired")
        })
        .count();
    assert_eq!(requeues, 1);
}

#[test]
fn a_heartbeat_survives_a_restart_and_the_old_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.redb");
    let now = Arc::new(AtomicU64::new(START));
    let store = open(&path, &now);
    let job = store.enqueue(runner_job()).unwrap().job;
    let claimed = store
        .claim(ClaimRequest {
            runner_id: "lab".into(),
            project_id: None,
            lease_ms: 1_000,
        })
        .unwrap()
        .unwrap();
    now.store(START + 900, Ordering::SeqCst);
    store.heartbeat(&job.id, &actor(&claimed), 5_000).unwrap();
    drop(store);
    now.store(START + 2_000, Ordering::SeqCst);
    let store = open(&path, &now);
    assert!(store.expire_leases().unwrap().is_empty());
    assert_eq!(
        store.get(&job.id).unwrap().unwrap().claim_expires_at_ms,
        Some(START + 5_900)
    );
}
