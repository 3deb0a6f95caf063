//! The job store test suite: every transition, refusal, idempotency, retention, pruning, restart semantics,
//! notifications and races — written once against [`JobStore`] and run by every backend on its real
//! storage (a redb file in a temp dir, a database on a real PostgreSQL). A backend implements [`Backend`]
//! and instantiates the suite with [`store_suite!`](crate::store_suite), which makes one `#[test]` per
//! function here.
//!
//! Tests that race several stores ask the storage for more store instances: a database serves several at
//! once (the races run across instances, as several brokers would); a redb file serves one, so the same
//! race runs on that one.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    Actor, ClaimRequest, Claimed, Clock, EventKind, Executor, JobError, JobFilter, JobResult,
    JobStatus, JobStore, NewEvent, NewJob, PrunePolicy, Recovery, StoreOptions,
};

/// A kind of storage the suite runs on.
pub trait Backend: Sync {
    /// Fresh, empty storage for the test named `test`.
    fn storage(&self, test: &str) -> Box<dyn Storage>;
}

/// One test's storage.
pub trait Storage: Send + Sync {
    /// Opens a store on this storage. Opening after the previous store was dropped is a restart.
    fn open(
        &self,
        options: StoreOptions,
        clock: Clock,
    ) -> Result<(Arc<dyn JobStore>, Recovery), JobError>;
    /// Whether several stores may be open on this storage at once.
    fn shared(&self) -> bool;
}

/// A store with a hand-driven clock.
pub struct Fixture {
    storage: Box<dyn Storage>,
    now: Arc<AtomicU64>,
    options: StoreOptions,
    pub store: Arc<dyn JobStore>,
}

impl Fixture {
    pub fn new(backend: &dyn Backend, test: &str, options: StoreOptions) -> Fixture {
        let storage = backend.storage(test);
        let now = Arc::new(AtomicU64::new(1_000_000));
        let store = open(storage.as_ref(), options, &now).0;
        Fixture {
            storage,
            now,
            options,
            store,
        }
    }

    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Closes and reopens the store on the same storage (a clean restart).
    pub fn reopen(self, options: StoreOptions) -> (Fixture, Recovery) {
        let Fixture {
            storage,
            now,
            store,
            ..
        } = self;
        drop(store);
        let (store, recovery) = open(storage.as_ref(), options, &now);
        (
            Fixture {
                storage,
                now,
                options,
                store,
            },
            recovery,
        )
    }

    /// Another store on the same storage (the same clock): a second instance where the storage serves
    /// several, else this store again.
    pub fn another(&self) -> Arc<dyn JobStore> {
        if self.storage.shared() {
            open(self.storage.as_ref(), self.options, &self.now).0
        } else {
            self.store.clone()
        }
    }
}

fn open(
    storage: &dyn Storage,
    options: StoreOptions,
    now: &Arc<AtomicU64>,
) -> (Arc<dyn JobStore>, Recovery) {
    let now = now.clone();
    storage
        .open(options, Arc::new(move || now.load(Ordering::SeqCst)))
        .unwrap()
}

/// Instantiates the suite for a backend: `store_suite!(MyBackend)` makes one `#[test]` per suite test,
/// each calling it with the expression given.
#[macro_export]
macro_rules! store_suite {
    ($backend:expr) => {
        $crate::store_suite!(@each $backend;
            a_job_runs_from_queued_to_succeeded,
            failure_adds_an_error_event,
            counts_by_status_follow_the_lifecycle,
            claims_respect_order_targets_and_projects,
            claim_scoped_calls_check_runner_and_claim,
            cancel_semantics,
            submission_keys_are_idempotent,
            event_retention_is_bounded_and_counted,
            listing_filters_and_pages,
            pruning_keeps_live_jobs,
            reopen_fails_daemon_jobs_and_keeps_runner_leases,
            expired_leases_requeue_then_fail,
            sixteen_claimers_on_eight_stores_never_claim_a_job_twice,
            two_stores_sweeping_one_expired_lease_requeue_it_once,
            concurrent_appenders_keep_sequences_gap_free,
            racing_submissions_with_one_key_make_one_job,
            observers_hear_of_changes_made_by_every_store,
        );
    };
    (@each $backend:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::suite::$test(&$backend);
            }
        )*
    };
}

/// A job for any runner running `command`.
pub fn runner_job(command: &str) -> NewJob {
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

/// `runner` claims the oldest job it may take, with a 30 s lease.
pub fn claim_as(store: &dyn JobStore, runner: &str) -> Option<Claimed> {
    store
        .claim(ClaimRequest {
            runner_id: runner.into(),
            project_id: None,
            lease_ms: 30_000,
        })
        .unwrap()
}

/// The runner holding `claimed`.
pub fn actor(claimed: &Claimed) -> Actor {
    Actor::Runner {
        runner_id: claimed.job.claimed_by_runner_id.clone().unwrap(),
        claim_id: claimed.job.claim_id.clone().unwrap(),
    }
}

/// An output event.
pub fn out(kind: EventKind, text: &str) -> NewEvent {
    NewEvent {
        kind,
        message: Some(text.into()),
        data: None,
    }
}

pub fn a_job_runs_from_queued_to_succeeded(backend: &dyn Backend) {
    let f = Fixture::new(backend, "queued_to_succeeded", StoreOptions::default());
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
    assert_eq!(f.store.get(&job.id).unwrap().as_ref(), Some(job));
    assert_eq!(
        f.store.request(&job.id).unwrap(),
        Some(json!({"command": ["echo"]}))
    );

    let claimed = claim_as(f.store.as_ref(), "lab-1").unwrap();
    assert_eq!(claimed.request, json!({"command": ["echo"]}));
    let running = &claimed.job;
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.claimed_by_runner_id.as_deref(), Some("lab-1"));
    assert_eq!(running.claim_expires_at_ms, Some(1_000_000 + 30_000));
    assert_eq!(running.attempt, 1);
    assert!(
        claim_as(f.store.as_ref(), "lab-2").is_none(),
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
    assert_eq!(f.store.get(&job.id).unwrap(), Some(done.clone()));
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
    assert!(f.store.get("no-such-job").unwrap().is_none());
    assert!(f.store.request("no-such-job").unwrap().is_none());
}

/// The trait's default `count_by_status` (paging through `list`) over a backend's store, to compare with
/// the backend's own count.
struct Paged<'a>(&'a dyn JobStore);

impl JobStore for Paged<'_> {
    fn enqueue(&self, job: NewJob) -> Result<crate::Enqueued, JobError> {
        self.0.enqueue(job)
    }
    fn claim(&self, req: ClaimRequest) -> Result<Option<Claimed>, JobError> {
        self.0.claim(req)
    }
    fn start_next_daemon_job(&self) -> Result<Option<Claimed>, JobError> {
        self.0.start_next_daemon_job()
    }
    fn heartbeat(
        &self,
        job_id: &str,
        actor: &Actor,
        lease_ms: u64,
    ) -> Result<crate::Job, JobError> {
        self.0.heartbeat(job_id, actor, lease_ms)
    }
    fn append_events(
        &self,
        job_id: &str,
        actor: &Actor,
        events: Vec<NewEvent>,
    ) -> Result<Vec<crate::JobEvent>, JobError> {
        self.0.append_events(job_id, actor, events)
    }
    fn finish(
        &self,
        job_id: &str,
        actor: &Actor,
        result: JobResult,
    ) -> Result<crate::Job, JobError> {
        self.0.finish(job_id, actor, result)
    }
    fn cancel(&self, job_id: &str) -> Result<crate::Job, JobError> {
        self.0.cancel(job_id)
    }
    fn get(&self, job_id: &str) -> Result<Option<crate::Job>, JobError> {
        self.0.get(job_id)
    }
    fn request(&self, job_id: &str) -> Result<Option<serde_json::Value>, JobError> {
        self.0.request(job_id)
    }
    fn list(&self, filter: &JobFilter) -> Result<crate::JobPage, JobError> {
        self.0.list(filter)
    }
    fn events(
        &self,
        job_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::JobEvent>, JobError> {
        self.0.events(job_id, after, limit)
    }
    fn expire_leases(&self) -> Result<Vec<crate::Job>, JobError> {
        self.0.expire_leases()
    }
    fn prune(&self, policy: &PrunePolicy) -> Result<usize, JobError> {
        self.0.prune(policy)
    }
    fn set_observer(&self, observer: crate::Observer) {
        self.0.set_observer(observer)
    }
}

/// The count of jobs in each status (metrics, the daemon's idle check) follows every transition, and the
/// backend's count agrees with the trait's default one.
pub fn counts_by_status_follow_the_lifecycle(backend: &dyn Backend) {
    let f = Fixture::new(backend, "counts", StoreOptions::default());
    let store = f.store.as_ref();
    let zero = JobStatus::ALL.map(|s| (s, 0));
    assert_eq!(store.count_by_status().unwrap(), zero);
    let ids: Vec<String> = (0..4)
        .map(|i| store.enqueue(runner_job(&format!("c{i}"))).unwrap().job.id)
        .collect();
    let claimed = claim_as(store, "lab").unwrap();
    store.cancel(&ids[3]).unwrap();
    store
        .finish(
            &claimed.job.id,
            &actor(&claimed),
            JobResult {
                exit_code: 0,
                ..Default::default()
            },
        )
        .unwrap();
    claim_as(store, "lab").unwrap();
    let expected = [
        (JobStatus::Queued, 1),
        (JobStatus::Running, 1),
        (JobStatus::Succeeded, 1),
        (JobStatus::Failed, 0),
        (JobStatus::Cancelled, 1),
    ];
    assert_eq!(store.count_by_status().unwrap(), expected);
    assert_eq!(Paged(store).count_by_status().unwrap(), expected);
}

pub fn failure_adds_an_error_event(backend: &dyn Backend) {
    let f = Fixture::new(backend, "failure", StoreOptions::default());
    let job = f.store.enqueue(runner_job("false")).unwrap().job;
    let claimed = claim_as(f.store.as_ref(), "r").unwrap();
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

pub fn claims_respect_order_targets_and_projects(backend: &dyn Backend) {
    let f = Fixture::new(backend, "claim_order", StoreOptions::default());
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
    assert_eq!(claim_as(f.store.as_ref(), "lab-1").unwrap().job.id, p.id);
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
    assert_eq!(claim_as(f.store.as_ref(), "lab-2").unwrap().job.id, t.id);
    assert_eq!(
        claim_as(f.store.as_ref(), "lab-1").unwrap().job.id,
        plain.id
    );
    assert!(
        claim_as(f.store.as_ref(), "lab-1").is_none(),
        "daemon jobs are never given to runners"
    );
    let started = f.store.start_next_daemon_job().unwrap().unwrap();
    assert_eq!(started.job.id, d.id);
    assert_eq!(started.request, json!({"command": ["d"]}));
    assert!(f.store.start_next_daemon_job().unwrap().is_none());
    assert!(matches!(
        f.store.claim(ClaimRequest {
            runner_id: String::new(),
            project_id: None,
            lease_ms: 1000
        }),
        Err(JobError::Invalid { .. })
    ));
}

pub fn claim_scoped_calls_check_runner_and_claim(backend: &dyn Backend) {
    let f = Fixture::new(backend, "claim_scoped", StoreOptions::default());
    let job = f.store.enqueue(runner_job("x")).unwrap().job;
    let claimed = claim_as(f.store.as_ref(), "lab-1").unwrap();
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
    assert!(matches!(
        f.store.events("missing", 0, 10),
        Err(JobError::NotFound(_))
    ));
    assert_eq!(
        f.store.get(&job.id).unwrap().unwrap().last_sequence,
        2,
        "refusals write nothing"
    );
}

pub fn cancel_semantics(backend: &dyn Backend) {
    let f = Fixture::new(backend, "cancel", StoreOptions::default());
    let queued = f.store.enqueue(runner_job("q")).unwrap().job;
    let cancelled = f.store.cancel(&queued.id).unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let again = f.store.cancel(&queued.id).unwrap();
    assert_eq!(
        again.event_count, cancelled.event_count,
        "cancel of a cancelled job is a no-op"
    );
    assert!(
        claim_as(f.store.as_ref(), "r").is_none(),
        "a cancelled job leaves the queue"
    );

    let running = f.store.enqueue(runner_job("r")).unwrap().job;
    let claimed = claim_as(f.store.as_ref(), "r").unwrap();
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
    f.advance(60_000);
    assert!(
        f.store.expire_leases().unwrap().is_empty(),
        "the lease went with the cancel"
    );
    assert!(matches!(
        f.store.cancel("missing"),
        Err(JobError::NotFound(_))
    ));
}

pub fn submission_keys_are_idempotent(backend: &dyn Backend) {
    let f = Fixture::new(backend, "submission_keys", StoreOptions::default());
    let mut job = runner_job("x");
    job.request = json!({"a": 1, "b": [1, 2], "c": {"x": true, "y": null}});
    job.submission_key = Some("deploy-42".into());
    let first = f.store.enqueue(job.clone()).unwrap();
    // Same payload with another key order.
    job.request = json!({"c": {"y": null, "x": true}, "b": [1, 2], "a": 1});
    let second = f.store.enqueue(job.clone()).unwrap();
    assert!(!second.created);
    assert_eq!(second.job.id, first.job.id);
    assert_eq!(second.request, first.request);
    job.request = json!({"a": 2});
    match f.store.enqueue(job.clone()) {
        Err(JobError::SubmissionConflict { key, job_id }) => {
            assert_eq!((key.as_str(), job_id), ("deploy-42", first.job.id.clone()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut invalid = runner_job("x");
    invalid.operation = " ".into();
    assert!(matches!(
        f.store.enqueue(invalid),
        Err(JobError::Invalid { .. })
    ));
    let mut zero = runner_job("x");
    zero.max_attempts = Some(0);
    assert!(matches!(
        f.store.enqueue(zero),
        Err(JobError::Invalid { .. })
    ));
}

pub fn event_retention_is_bounded_and_counted(backend: &dyn Backend) {
    let f = Fixture::new(
        backend,
        "retention",
        StoreOptions {
            event_retention: 5,
            ..StoreOptions::default()
        },
    );
    let job = f.store.enqueue(runner_job("chatty")).unwrap().job;
    let claimed = claim_as(f.store.as_ref(), "r").unwrap();
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
    // A batch bigger than the retention keeps its newest events.
    let batch: Vec<NewEvent> = (0..8)
        .map(|i| out(EventKind::Stdout, &format!("b{i}")))
        .collect();
    let appended = f.store.append_events(&job.id, &who, batch).unwrap();
    assert_eq!(appended.len(), 8);
    let kept = f.store.events(&job.id, 0, 100).unwrap();
    assert_eq!(
        kept.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![26, 27, 28, 29, 30]
    );
    assert_eq!(kept[4].message.as_deref(), Some("b7"));
    assert_eq!(f.store.get(&job.id).unwrap().unwrap().events_dropped, 25);
}

pub fn listing_filters_and_pages(backend: &dyn Backend) {
    let f = Fixture::new(backend, "listing", StoreOptions::default());
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
    claim_as(f.store.as_ref(), "lab-9").unwrap();
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

pub fn pruning_keeps_live_jobs(backend: &dyn Backend) {
    let f = Fixture::new(backend, "pruning", StoreOptions::default());
    let mut finished = Vec::new();
    for _ in 0..5 {
        let mut job = runner_job("x");
        job.submission_key = Some(format!("key-{}", finished.len()));
        let job = f.store.enqueue(job).unwrap().job;
        f.store.cancel(&job.id).unwrap();
        finished.push(job.id);
        f.advance(1000);
    }
    let queued = f.store.enqueue(runner_job("q")).unwrap().job;
    let running = f.store.enqueue(runner_job("r")).unwrap().job;
    claim_as(f.store.as_ref(), "lab").unwrap();
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
    // A pruned job's submission key is free again.
    let mut reused = runner_job("other");
    reused.submission_key = Some("key-0".into());
    let reused = f.store.enqueue(reused).unwrap();
    assert!(reused.created);
    f.store.cancel(&reused.job.id).unwrap();
    f.advance(10_000);
    let pruned = f
        .store
        .prune(&PrunePolicy {
            max_terminal_jobs: 100,
            max_terminal_age_ms: 5_000,
        })
        .unwrap();
    assert_eq!(pruned, 3);
    assert!(f.store.get(&queued.id).unwrap().is_some());
    assert!(f.store.get(&running.id).unwrap().is_some());
}

pub fn reopen_fails_daemon_jobs_and_keeps_runner_leases(backend: &dyn Backend) {
    let f = Fixture::new(backend, "reopen", StoreOptions::default());
    let mut daemon = runner_job("d");
    daemon.executor = Executor::Daemon;
    let d = f.store.enqueue(daemon).unwrap().job;
    f.store.start_next_daemon_job().unwrap().unwrap();
    let mut waiting = runner_job("d2");
    waiting.executor = Executor::Daemon;
    let d2 = f.store.enqueue(waiting).unwrap().job;
    let r = f.store.enqueue(runner_job("r")).unwrap().job;
    let claimed = claim_as(f.store.as_ref(), "lab").unwrap();
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
    // A queued daemon job is still there to start.
    let started = f.store.start_next_daemon_job().unwrap().unwrap();
    assert_eq!(started.job.id, d2.id);
}

pub fn expired_leases_requeue_then_fail(backend: &dyn Backend) {
    let f = Fixture::new(
        backend,
        "expiry",
        StoreOptions {
            max_attempts: 2,
            ..StoreOptions::default()
        },
    );
    let job = f.store.enqueue(runner_job("slow")).unwrap().job;
    let first = claim_as(f.store.as_ref(), "lab-1").unwrap();
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
    let second = claim_as(f.store.as_ref(), "lab-2").unwrap();
    assert_eq!(second.job.id, job.id);
    assert_eq!(second.job.attempt, 2);
    assert_ne!(second.job.claim_id, first.job.claim_id);
    // The first runner's late calls are told "expired"; the second runner's claim works.
    assert!(matches!(
        f.store.heartbeat(&job.id, &actor(&first), 1000),
        Err(JobError::ClaimExpired { .. })
    ));
    assert!(matches!(
        f.store.append_events(
            &job.id,
            &actor(&first),
            vec![out(EventKind::Stdout, "late")]
        ),
        Err(JobError::ClaimExpired { .. })
    ));
    f.advance(30_001);
    // A claim attempt sweeps expired leases too: attempts are used up, so the job fails.
    assert!(claim_as(f.store.as_ref(), "lab-3").is_none());
    let failed = f.store.get(&job.id).unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.stale_reason.as_deref(), Some("claim_expired"));
    assert!(matches!(
        f.store
            .finish(&job.id, &actor(&second), JobResult::default()),
        Err(JobError::ClaimExpired { .. })
    ));
    let statuses: Vec<String> = f
        .store
        .events(&job.id, 0, 100)
        .unwrap()
        .iter()
        .filter_map(|e| Some(e.data.as_ref()?["status"].as_str()?.to_string()))
        .collect();
    assert_eq!(
        statuses,
        ["queued", "running", "queued", "running", "failed"]
    );
}

pub fn sixteen_claimers_on_eight_stores_never_claim_a_job_twice(backend: &dyn Backend) {
    const JOBS: usize = 2000;
    let f = Fixture::new(backend, "sixteen_claimers", StoreOptions::default());
    for _ in 0..JOBS {
        f.store.enqueue(runner_job("x")).unwrap();
    }
    let stores: Vec<Arc<dyn JobStore>> = (0..8).map(|_| f.another()).collect();
    let claims: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let start = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = stores[t % stores.len()].clone();
            let (claims, start) = (claims.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                while let Some(c) = claim_as(store.as_ref(), &format!("runner-{t}")) {
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
    assert_eq!(claims.len(), JOBS);
    assert!(
        claims.values().all(|attempts| attempts == &vec![1]),
        "a job was claimed twice"
    );
    let succeeded = f
        .store
        .list(&JobFilter {
            status: Some(JobStatus::Succeeded),
            limit: JOBS + 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(succeeded.jobs.len(), JOBS);
}

pub fn two_stores_sweeping_one_expired_lease_requeue_it_once(backend: &dyn Backend) {
    let f = Fixture::new(backend, "two_sweepers", StoreOptions::default());
    let stores = [f.another(), f.another()];
    for round in 0..10 {
        let job = f.store.enqueue(runner_job("x")).unwrap().job;
        let claimed = claim_as(f.store.as_ref(), "lab").unwrap();
        assert_eq!(claimed.job.id, job.id);
        f.advance(30_001);
        let start = Arc::new(Barrier::new(2));
        let sweeps: Vec<_> = stores
            .iter()
            .map(|store| {
                let (store, start) = (store.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    store.expire_leases().unwrap()
                })
            })
            .collect();
        let requeued: usize = sweeps.into_iter().map(|s| s.join().unwrap().len()).sum();
        assert_eq!(
            requeued, 1,
            "round {round}: one requeue between two sweepers"
        );
        let now = f.store.get(&job.id).unwrap().unwrap();
        assert_eq!((now.status, now.attempt), (JobStatus::Queued, 1));
        let expiries = f
            .store
            .events(&job.id, 0, 100)
            .unwrap()
            .into_iter()
            .filter(|e| e.message.as_deref() == Some("claim expired; job requeued"))
            .count();
        assert_eq!(expiries, 1);
        // Leave the queue empty for the next round.
        let again = claim_as(f.store.as_ref(), "lab").unwrap();
        f.store
            .finish(&again.job.id, &actor(&again), JobResult::default())
            .unwrap();
    }
}

pub fn concurrent_appenders_keep_sequences_gap_free(backend: &dyn Backend) {
    const WRITERS: usize = 8;
    const BATCHES: usize = 25;
    let f = Fixture::new(backend, "gap_free", StoreOptions::default());
    let job = f.store.enqueue(runner_job("x")).unwrap().job;
    let claimed = claim_as(f.store.as_ref(), "lab").unwrap();
    let who = actor(&claimed);
    let start = Arc::new(Barrier::new(WRITERS + 1));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = f.another();
            let (who, id, start) = (who.clone(), job.id.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut sequences = Vec::new();
                for b in 0..BATCHES {
                    let events = vec![
                        out(EventKind::Stdout, &format!("{w}-{b}-a")),
                        out(EventKind::Stdout, &format!("{w}-{b}-b")),
                    ];
                    let appended = store.append_events(&id, &who, events).unwrap();
                    assert_eq!(appended[1].sequence, appended[0].sequence + 1);
                    sequences.extend(appended.iter().map(|e| e.sequence));
                }
                sequences
            })
        })
        .collect();
    start.wait();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    let expected: Vec<u64> = (3..3 + (WRITERS * BATCHES * 2) as u64).collect();
    assert_eq!(
        all, expected,
        "every sequence handed out once, none skipped"
    );
    let stored = f.store.events(&job.id, 0, 10_000).unwrap();
    let seqs: Vec<u64> = stored.iter().map(|e| e.sequence).collect();
    assert_eq!(
        seqs,
        (1..3 + (WRITERS * BATCHES * 2) as u64).collect::<Vec<_>>()
    );
    let texts: HashSet<&str> = stored.iter().filter_map(|e| e.message.as_deref()).collect();
    assert_eq!(texts.len(), stored.len(), "no event overwrote another");
}

pub fn racing_submissions_with_one_key_make_one_job(backend: &dyn Backend) {
    let f = Fixture::new(backend, "racing_keys", StoreOptions::default());
    for round in 0..5 {
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = f.another();
                let start = start.clone();
                std::thread::spawn(move || {
                    let mut job = runner_job("deploy");
                    job.submission_key = Some(format!("release-{round}"));
                    start.wait();
                    store.enqueue(job).unwrap()
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|r| r.created).count(), 1);
        let ids: HashSet<&str> = results.iter().map(|r| r.job.id.as_str()).collect();
        assert_eq!(ids.len(), 1, "round {round}: one job for one key");
    }
    let all = f
        .store
        .list(&JobFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.jobs.len(), 5);
}

pub fn observers_hear_of_changes_made_by_every_store(backend: &dyn Backend) {
    let f = Fixture::new(backend, "observers", StoreOptions::default());
    let watcher = f.another();
    let heard: Arc<Mutex<Vec<crate::Changes>>> = Arc::default();
    let sink = heard.clone();
    watcher.set_observer(Arc::new(move |changes| {
        sink.lock().unwrap().push(changes.clone())
    }));
    let wait_for = |what: &str, pred: &dyn Fn(&crate::Changes) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if heard.lock().unwrap().iter().any(pred) {
                return;
            }
            assert!(Instant::now() < deadline, "the observer never heard {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // The listener may still be connecting: enqueue until the first one is heard, then expect each.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let job = f.store.enqueue(runner_job("wake")).unwrap().job;
        let seen = Instant::now() + Duration::from_millis(200);
        while Instant::now() < seen {
            if heard
                .lock()
                .unwrap()
                .iter()
                .any(|c| c.queue_grew && c.jobs.contains(&job.id))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if heard
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.jobs.contains(&job.id))
        {
            break job;
        }
        assert!(Instant::now() < deadline, "no enqueue was ever heard");
    };
    let claimed = loop {
        let c = claim_as(f.store.as_ref(), "lab").unwrap();
        if c.job.id == first.id {
            break c;
        }
    };
    wait_for("the claim", &|c| {
        c.jobs.contains(&first.id) && !c.queue_grew
    });
    heard.lock().unwrap().clear();
    f.store
        .append_events(
            &first.id,
            &actor(&claimed),
            vec![out(EventKind::Stdout, "x")],
        )
        .unwrap();
    wait_for("an appended event", &|c| c.jobs.contains(&first.id));
    heard.lock().unwrap().clear();
    let next = f.store.enqueue(runner_job("next")).unwrap().job;
    wait_for("a second enqueue", &|c| {
        c.queue_grew && c.jobs.contains(&next.id)
    });
}
