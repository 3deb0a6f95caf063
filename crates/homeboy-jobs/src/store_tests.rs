//! Tests of the redb job store: every transition, refusals, idempotency, retention, pruning, reopen and
//! crash semantics, and claim races — on a real store file in a temp dir.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;

/// A store with a hand-driven clock.
struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    now: Arc<AtomicU64>,
    store: RedbJobStore,
}

impl std::ops::Deref for Fixture {
    type Target = RedbJobStore;
    fn deref(&self) -> &RedbJobStore {
        &self.store
    }
}

impl Fixture {
    fn new(options: StoreOptions) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.redb");
        let now = Arc::new(AtomicU64::new(1_000_000));
        let store = open(&path, options, &now).0;
        Fixture {
            _dir: dir,
            path,
            now,
            store,
        }
    }

    fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Closes and reopens the store on the same file (a clean restart).
    fn reopen(self, options: StoreOptions) -> (Fixture, Recovery) {
        let Fixture {
            _dir,
            path,
            now,
            store,
        } = self;
        drop(store);
        let (store, recovery) = open(&path, options, &now);
        (
            Fixture {
                _dir,
                path,
                now,
                store,
            },
            recovery,
        )
    }
}

fn open(path: &Path, options: StoreOptions, now: &Arc<AtomicU64>) -> (RedbJobStore, Recovery) {
    let now = now.clone();
    RedbJobStore::open_with_clock(path, options, Arc::new(move || now.load(Ordering::SeqCst)))
        .unwrap()
}

fn runner_job(command: &str) -> NewJob {
    NewJob {
        operation: "runner.exec".into(),
        executor: Executor::Runner,
        request: json!({"command": [command]}),
        target_runner_id: None,
        project_id: None,
        submission_key: None,
        max_attempts: None,
    }
}

fn claim_as(store: &RedbJobStore, runner: &str) -> Option<Claimed> {
    store
        .claim(ClaimRequest {
            runner_id: runner.into(),
            project_id: None,
            lease_ms: 30_000,
        })
        .unwrap()
}

fn actor(claimed: &Claimed) -> Actor {
    Actor::Runner {
        runner_id: claimed.job.claimed_by_runner_id.clone().unwrap(),
        claim_id: claimed.job.claim_id.clone().unwrap(),
    }
}

fn out(kind: EventKind, text: &str) -> NewEvent {
    NewEvent {
        kind,
        message: Some(text.into()),
        data: None,
    }
}

#[test]
fn a_job_runs_from_queued_to_succeeded() {
    let f = Fixture::new(StoreOptions::default());
    let queued = f.store.enqueue(runner_job("echo")).unwrap();
    assert!(queued.created);
    let job = &queued.job;
    assert_eq!(
        (job.status, job.event_count, job.attempt),
        (JobStatus::Queued, 1, 0)
    );
    let first = f.store.events(&job.id, 0, 10).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].sequence, 1);
    assert_eq!(first[0].message.as_deref(), Some("job queued"));
    assert_eq!(first[0].data, Some(json!({"status": "queued"})));

    let claimed = claim_as(&f.store, "lab-1").unwrap();
    assert_eq!(claimed.request, json!({"command": ["echo"]}));
    let running = &claimed.job;
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.claimed_by_runner_id.as_deref(), Some("lab-1"));
    assert_eq!(running.claim_expires_at_ms, Some(1_000_000 + 30_000));
    assert_eq!(running.attempt, 1);
    assert!(
        claim_as(&f.store, "lab-2").is_none(),
        "nothing else is queued"
    );

    let who = actor(&claimed);
    let appended = f
        .store
        .append_events(
            &job.id,
            &who,
            vec![out(EventKind::Stdout, "a"), out(EventKind::Stderr, "b")],
        )
        .unwrap();
    assert_eq!(
        appended.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![3, 4]
    );
    f.advance(10_000);
    let beat = f.store.heartbeat(&job.id, &who, 30_000).unwrap();
    assert_eq!(beat.claim_expires_at_ms, Some(1_010_000 + 30_000));

    let done = f
        .store
        .finish(
            &job.id,
            &who,
            JobResult {
                exit_code: 0,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.exit_code, Some(0));
    assert!(done.finished_at_ms.is_some());
    let events = f.store.events(&job.id, 0, 100).unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    use EventKind::*;
    assert_eq!(kinds, vec![Status, Status, Stdout, Stderr, Result, Status]);
    assert_eq!(
        events.last().unwrap().data.as_ref().unwrap()["status"],
        "succeeded"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());

    // Nothing leaves a terminal state, and a finished job takes no more events.
    assert!(matches!(
        f.store.cancel(&job.id),
        Err(JobError::IllegalTransition { .. })
    ));
    assert!(matches!(
        f.store
            .append_events(&job.id, &who, vec![out(Stdout, "late")]),
        Err(JobError::NotRunning { .. })
    ));
    assert!(matches!(
        f.store.finish(&job.id, &who, JobResult::default()),
        Err(JobError::NotRunning { .. })
    ));
}

#[test]
fn failure_adds_an_error_event() {
    let f = Fixture::new(StoreOptions::default());
    let job = f.store.enqueue(runner_job("false")).unwrap().job;
    let claimed = claim_as(&f.store, "r").unwrap();
    let done = f
        .store
        .finish(
            &job.id,
            &actor(&claimed),
            JobResult {
                exit_code: 3,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    let events = f.store.events(&job.id, 0, 100).unwrap();
    let error = events.iter().find(|e| e.kind == EventKind::Error).unwrap();
    assert_eq!(error.data.as_ref().unwrap()["exit_code"], 3);
}

#[test]
fn claims_respect_order_targets_and_projects() {
    let f = Fixture::new(StoreOptions::default());
    let mut targeted = runner_job("t");
    targeted.target_runner_id = Some("lab-2".into());
    let t = f.store.enqueue(targeted).unwrap().job;
    let mut in_project = runner_job("p");
    in_project.project_id = Some("site".into());
    let p = f.store.enqueue(in_project).unwrap().job;
    let plain = f.store.enqueue(runner_job("plain")).unwrap().job;
    let mut daemon = runner_job("d");
    daemon.executor = Executor::Daemon;
    let d = f.store.enqueue(daemon).unwrap().job;

    // lab-1 skips the job targeted at lab-2 and takes the oldest of the rest.
    assert_eq!(claim_as(&f.store, "lab-1").unwrap().job.id, p.id);
    let only_site = f
        .store
        .claim(ClaimRequest {
            runner_id: "lab-3".into(),
            project_id: Some("site".into()),
            lease_ms: 1000,
        })
        .unwrap();
    assert!(
        only_site.is_none(),
        "the site job is taken; plain is not in the project"
    );
    assert_eq!(claim_as(&f.store, "lab-2").unwrap().job.id, t.id);
    assert_eq!(claim_as(&f.store, "lab-1").unwrap().job.id, plain.id);
    assert!(
        claim_as(&f.store, "lab-1").is_none(),
        "daemon jobs are never given to runners"
    );
    let started = f.store.start_next_daemon_job().unwrap().unwrap();
    assert_eq!(started.job.id, d.id);
    assert!(f.store.start_next_daemon_job().unwrap().is_none());
}

#[test]
fn claim_scoped_calls_check_runner_and_claim() {
    let f = Fixture::new(StoreOptions::default());
    let job = f.store.enqueue(runner_job("x")).unwrap().job;
    let claimed = claim_as(&f.store, "lab-1").unwrap();
    let wrong_claim = Actor::Runner {
        runner_id: "lab-1".into(),
        claim_id: "nope".into(),
    };
    let wrong_runner = Actor::Runner {
        runner_id: "lab-2".into(),
        claim_id: claimed.job.claim_id.clone().unwrap(),
    };
    for a in [&wrong_claim, &wrong_runner, &Actor::Daemon] {
        assert!(matches!(
            f.store.heartbeat(&job.id, a, 1000),
            Err(JobError::ClaimMismatch { .. })
        ));
        assert!(matches!(
            f.store.finish(&job.id, a, JobResult::default()),
            Err(JobError::ClaimMismatch { .. })
        ));
    }
    assert!(matches!(
        f.store
            .append_events(&job.id, &actor(&claimed), vec![out(EventKind::Status, "x")]),
        Err(JobError::Invalid { .. })
    ));
    assert!(matches!(
        f.store.heartbeat("missing", &actor(&claimed), 1),
        Err(JobError::NotFound(_))
    ));
}

#[test]
fn cancel_semantics() {
    let f = Fixture::new(StoreOptions::default());
    let queued = f.store.enqueue(runner_job("q")).unwrap().job;
    let cancelled = f.store.cancel(&queued.id).unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let again = f.store.cancel(&queued.id).unwrap();
    assert_eq!(
        again.event_count, cancelled.event_count,
        "cancel of a cancelled job is a no-op"
    );
    assert!(
        claim_as(&f.store, "r").is_none(),
        "a cancelled job leaves the queue"
    );

    let running = f.store.enqueue(runner_job("r")).unwrap().job;
    let claimed = claim_as(&f.store, "r").unwrap();
    f.store.cancel(&running.id).unwrap();
    // The runner learns at its next heartbeat; its result is refused.
    let beat = f
        .store
        .heartbeat(&running.id, &actor(&claimed), 1000)
        .unwrap();
    assert_eq!(beat.status, JobStatus::Cancelled);
    assert!(matches!(
        f.store
            .finish(&running.id, &actor(&claimed), JobResult::default()),
        Err(JobError::NotRunning { .. })
    ));
    assert!(
        f.store.expire_leases().unwrap().is_empty(),
        "the lease went with the cancel"
    );
}

#[test]
fn submission_keys_are_idempotent() {
    let f = Fixture::new(StoreOptions::default());
    let mut job = runner_job("x");
    job.request = json!({"a": 1, "b": [1, 2], "c": {"x": true, "y": null}});
    job.submission_key = Some("deploy-42".into());
    let first = f.store.enqueue(job.clone()).unwrap();
    // Same payload with another key order.
    job.request = json!({"c": {"y": null, "x": true}, "b": [1, 2], "a": 1});
    let second = f.store.enqueue(job.clone()).unwrap();
    assert!(!second.created);
    assert_eq!(second.job.id, first.job.id);
    job.request = json!({"a": 2});
    assert!(matches!(
        f.store.enqueue(job),
        Err(JobError::SubmissionConflict { .. })
    ));
}

#[test]
fn event_retention_is_bounded_and_counted() {
    let f = Fixture::new(StoreOptions {
        event_retention: 5,
        ..StoreOptions::default()
    });
    let job = f.store.enqueue(runner_job("chatty")).unwrap().job;
    let claimed = claim_as(&f.store, "r").unwrap();
    let who = actor(&claimed);
    for i in 0..20 {
        f.store
            .append_events(&job.id, &who, vec![out(EventKind::Stdout, &i.to_string())])
            .unwrap();
    }
    let job = f.store.get(&job.id).unwrap().unwrap();
    assert_eq!(job.event_count, 22);
    assert_eq!(job.last_sequence, 22);
    assert_eq!(job.events_dropped, 17);
    let kept = f.store.events(&job.id, 0, 100).unwrap();
    assert_eq!(
        kept.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![18, 19, 20, 21, 22]
    );
    assert_eq!(f.store.events(&job.id, 20, 100).unwrap().len(), 2);
    assert_eq!(f.store.events(&job.id, 0, 2).unwrap().len(), 2);
}

#[test]
fn listing_filters_and_pages() {
    let f = Fixture::new(StoreOptions::default());
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut job = runner_job("x");
        job.operation = if i % 2 == 0 {
            "even".into()
        } else {
            "odd".into()
        };
        ids.push(f.store.enqueue(job).unwrap().job.id);
    }
    claim_as(&f.store, "lab-9").unwrap();
    let page = f
        .store
        .list(&JobFilter {
            limit: 3,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        vec![ids[6].clone(), ids[5].clone(), ids[4].clone()]
    );
    let next = f
        .store
        .list(&JobFilter {
            limit: 3,
            cursor: page.next_cursor,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(next.jobs[0].id, ids[3]);
    let last = f
        .store
        .list(&JobFilter {
            limit: 3,
            cursor: next.next_cursor,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(last.jobs.len(), 1);
    assert!(last.next_cursor.is_none());
    let odd = f
        .store
        .list(&JobFilter {
            operation: Some("odd".into()),
            limit: 50,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(odd.jobs.len(), 3);
    let running = f
        .store
        .list(&JobFilter {
            status: Some(JobStatus::Running),
            limit: 50,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(running.jobs.len(), 1);
    assert_eq!(running.jobs[0].id, ids[0]);
    let by_runner = f
        .store
        .list(&JobFilter {
            runner_id: Some("lab-9".into()),
            limit: 50,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_runner.jobs.len(), 1);
}

#[test]
fn pruning_keeps_live_jobs() {
    let f = Fixture::new(StoreOptions::default());
    let mut finished = Vec::new();
    for _ in 0..5 {
        let job = f.store.enqueue(runner_job("x")).unwrap().job;
        f.store.cancel(&job.id).unwrap();
        finished.push(job.id);
        f.advance(1000);
    }
    let queued = f.store.enqueue(runner_job("q")).unwrap().job;
    let running = f.store.enqueue(runner_job("r")).unwrap().job;
    claim_as(&f.store, "lab").unwrap();
    let pruned = f
        .store
        .prune(&PrunePolicy {
            max_terminal_jobs: 2,
            max_terminal_age_ms: u64::MAX,
        })
        .unwrap();
    assert_eq!(pruned, 3);
    for id in &finished[..3] {
        assert!(f.store.get(id).unwrap().is_none());
        assert!(matches!(
            f.store.events(id, 0, 10),
            Err(JobError::NotFound(_))
        ));
    }
    for id in &finished[3..] {
        assert!(f.store.get(id).unwrap().is_some());
    }
    f.advance(10_000);
    let pruned = f
        .store
        .prune(&PrunePolicy {
            max_terminal_jobs: 100,
            max_terminal_age_ms: 5_000,
        })
        .unwrap();
    assert_eq!(pruned, 2);
    assert!(f.store.get(&queued.id).unwrap().is_some());
    assert!(f.store.get(&running.id).unwrap().is_some());
}

#[test]
fn reopen_fails_daemon_jobs_and_keeps_runner_leases() {
    let f = Fixture::new(StoreOptions::default());
    let mut daemon = runner_job("d");
    daemon.executor = Executor::Daemon;
    let d = f.store.enqueue(daemon).unwrap().job;
    f.store.start_next_daemon_job().unwrap().unwrap();
    let r = f.store.enqueue(runner_job("r")).unwrap().job;
    let claimed = claim_as(&f.store, "lab").unwrap();
    let q = f.store.enqueue(runner_job("q")).unwrap().job;

    let (f, recovery) = f.reopen(StoreOptions::default());
    assert_eq!(recovery.failed_stale, vec![d.id.clone()]);
    let d = f.store.get(&d.id).unwrap().unwrap();
    assert_eq!(d.status, JobStatus::Failed);
    assert_eq!(d.stale_reason.as_deref(), Some("daemon_restarted"));
    assert_eq!(
        f.store.get(&q.id).unwrap().unwrap().status,
        JobStatus::Queued
    );
    // The runner's claim survives the restart and keeps working until its lease passes.
    let r_now = f.store.get(&r.id).unwrap().unwrap();
    assert_eq!(r_now.status, JobStatus::Running);
    f.store.heartbeat(&r.id, &actor(&claimed), 30_000).unwrap();
}

#[test]
fn expired_leases_requeue_then_fail() {
    let f = Fixture::new(StoreOptions {
        max_attempts: 2,
        ..StoreOptions::default()
    });
    let job = f.store.enqueue(runner_job("slow")).unwrap().job;
    let first = claim_as(&f.store, "lab-1").unwrap();
    f.advance(30_001);
    // The stale claim is refused as expired even before the sweeper ran.
    assert!(matches!(
        f.store
            .finish(&job.id, &actor(&first), JobResult::default()),
        Err(JobError::ClaimExpired { .. })
    ));
    let expired = f.store.expire_leases().unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].status, JobStatus::Queued);
    let second = claim_as(&f.store, "lab-2").unwrap();
    assert_eq!(second.job.id, job.id);
    assert_eq!(second.job.attempt, 2);
    assert_ne!(second.job.claim_id, first.job.claim_id);
    // The first runner's late calls are told "expired"; the second runner's claim works.
    assert!(matches!(
        f.store.heartbeat(&job.id, &actor(&first), 1000),
        Err(JobError::ClaimExpired { .. })
    ));
    f.advance(30_001);
    // A claim attempt sweeps expired leases too: attempts are used up, so the job fails.
    assert!(claim_as(&f.store, "lab-3").is_none());
    let failed = f.store.get(&job.id).unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.stale_reason.as_deref(), Some("claim_expired"));
    assert!(matches!(
        f.store
            .finish(&job.id, &actor(&second), JobResult::default()),
        Err(JobError::ClaimExpired { .. })
    ));
}

#[test]
fn sixteen_threads_race_for_two_thousand_jobs() {
    let f = Fixture::new(StoreOptions::default());
    let store = Arc::new(f.store);
    for _ in 0..2000 {
        store.enqueue(runner_job("x")).unwrap();
    }
    let claims: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            let claims = claims.clone();
            std::thread::spawn(move || {
                while let Some(c) = claim_as(&store, &format!("runner-{t}")) {
                    claims
                        .lock()
                        .unwrap()
                        .entry(c.job.id.clone())
                        .or_default()
                        .push(c.job.attempt);
                    store
                        .finish(&c.job.id, &actor(&c), JobResult::default())
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let claims = claims.lock().unwrap();
    assert_eq!(claims.len(), 2000);
    assert!(
        claims.values().all(|attempts| attempts == &vec![1]),
        "a job was claimed twice"
    );
    let succeeded = store
        .list(&JobFilter {
            status: Some(JobStatus::Succeeded),
            limit: 5000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(succeeded.jobs.len(), 2000);
}

/// The child half of `acknowledged_work_survives_a_crash`: enqueue and claim, print what was acknowledged,
/// then die without any shutdown.
fn crash_child(path: &Path) {
    let (store, _) = RedbJobStore::open(path, StoreOptions::default()).unwrap();
    for i in 0..300 {
        let job = store.enqueue(runner_job(&i.to_string())).unwrap().job;
        if i % 3 == 0 {
            let c = claim_as(&store, "lab").unwrap();
            store
                .append_events(&c.job.id, &actor(&c), vec![out(EventKind::Stdout, "x")])
                .unwrap();
            println!("claimed {} {}", c.job.id, c.job.claim_id.unwrap());
        }
        println!("ack {}", job.id);
    }
    std::process::abort();
}

#[test]
fn acknowledged_work_survives_a_crash() {
    if let Ok(path) = std::env::var("HOMEBOY_JOBS_CRASH_CHILD") {
        crash_child(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.redb");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::acknowledged_work_survives_a_crash",
            "--nocapture",
        ])
        .env("HOMEBOY_JOBS_CRASH_CHILD", &path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child must die by abort");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let acked: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ack "))
        .collect();
    assert_eq!(acked.len(), 300, "{stdout}");
    let (store, recovery) = RedbJobStore::open(&path, StoreOptions::default()).unwrap();
    assert!(
        recovery.replayed_records > 0,
        "the crash left work only in the log"
    );
    for id in acked {
        assert!(
            store.get(id).unwrap().is_some(),
            "acknowledged job {id} was lost"
        );
    }
    for line in stdout.lines().filter_map(|l| l.strip_prefix("claimed ")) {
        let (id, claim) = line.split_once(' ').unwrap();
        let job = store.get(id).unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.claim_id.as_deref(), Some(claim));
        assert_eq!(job.last_sequence, 3, "queued, claimed, one stdout line");
    }
    // Sequences keep counting after the restart.
    let queued = store
        .list(&JobFilter {
            status: Some(JobStatus::Queued),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(queued.jobs[0].last_sequence, 1);
}
