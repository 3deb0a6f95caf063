//! Crash and disk-fault tests of the job store, on the simulated disk of `homeboy-faultfs`: a failed
//! `fdatasync` poisons the store and a reopen recovers exactly what was acknowledged; a torn log write
//! aborts its batch and nothing builds on it; a crash just after a checkpoint, and after the log wrapped,
//! loses nothing; and a randomized loop of crashes (seeds, faults at any call of either file, every kind
//! of power loss) checks that every acknowledged operation survives and that nothing else appears but the
//! one operation in flight, whole.
//!
//! The oracle of the randomized loop is a second store on a healthy disk that runs the same operations in
//! lockstep: after the crash, the recovered store must equal it as it was before the operation in flight,
//! or after it — compared job by job with ids and claim ids replaced by the job's marker. Recovery always
//! goes through the production open (`RedbJobStore::open_with_clock` on the real paths). Every store is
//! also checked table by table (`invariants`), which catches half-applied batches the public view might
//! hide.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use homeboy_faultfs::{Action, Disk, Fault, Io, Loss, once, seeds};
use serde_json::{Value, json};

use crate::engine::{Engine, StoreFiles};
use crate::model::StatusCode;
use crate::tables::{Table, created_value, event_key, lease_key, read_u64};
use crate::{
    Actor, ClaimRequest, EventKind, Executor, JobError, JobFilter, JobResult, JobStatus, JobStore,
    NewEvent, NewJob, PrunePolicy, Recovery, RedbJobStore, StoreOptions,
};

const START: u64 = 1_700_000_000_000;
const LEASE_MS: u64 = 10_000;

fn options() -> StoreOptions {
    StoreOptions {
        event_retention: 6,
        max_attempts: 2,
        ..StoreOptions::default()
    }
}

fn clock(now: &Arc<AtomicU64>) -> crate::Clock {
    let now = now.clone();
    Arc::new(move || now.load(Ordering::SeqCst))
}

/// A store directory and the paths of its two files.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        Place {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("jobs.redb")
    }
    fn wal(&self) -> PathBuf {
        self.dir.path().join("jobs.redb.wal")
    }

    /// Opens the store through `disk`, with a log of `wal_capacity` bytes.
    fn open_on(
        &self,
        disk: &Disk,
        wal_capacity: u64,
        now: &Arc<AtomicU64>,
    ) -> Result<(RedbJobStore, Recovery), JobError> {
        let files = StoreFiles {
            db: Box::new(disk.open(&self.db()).unwrap()),
            wal: Arc::new(disk.open(&self.wal()).unwrap()),
            wal_capacity,
        };
        RedbJobStore::start(Engine::open_files(files, clock(now))?, options())
    }

    /// Opens the store the way the daemon does, on the real files.
    fn open_real(&self, now: &Arc<AtomicU64>) -> (RedbJobStore, Recovery) {
        RedbJobStore::open_with_clock(&self.db(), options(), clock(now)).unwrap()
    }
}

fn job(marker: u32, key: Option<String>) -> NewJob {
    NewJob {
        operation: "runner.exec".into(),
        executor: Executor::Runner,
        request: json!({"marker": marker, "command": ["echo", "x".repeat(40 + (marker as usize * 37) % 300)]}),
        target_runner_id: None,
        project_id: None,
        submission_key: key,
        max_attempts: None,
    }
}

fn is_storage(result: &Result<impl std::fmt::Debug, JobError>) -> bool {
    matches!(result, Err(JobError::Storage(_)))
}

// ---- the view a test compares: every job, by marker -------------------------------------------------

/// Every job of `store` (creation order) with its events, ids and claim ids replaced by the job's marker.
fn dump(store: &RedbJobStore) -> Result<Vec<Value>, JobError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(&JobFilter {
            limit: 100,
            cursor,
            ..JobFilter::default()
        })?;
        for job in page.jobs {
            let marker = store.request(&job.id)?.unwrap_or_default()["marker"].clone();
            let mut events = Vec::new();
            for event in store.events(&job.id, 0, 100_000)? {
                let mut event = serde_json::to_value(event).unwrap();
                event["job_id"] = marker.clone();
                events.push(event);
            }
            let mut view = serde_json::to_value(&job).unwrap();
            view["id"] = marker.clone();
            if view.get("claim_id").is_some() {
                view["claim_id"] = json!("held");
            }
            out.push(json!({"job": view, "events": events}));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.reverse();
    Ok(out)
}

/// The store's tables agree with each other: every job has its request and its index entry with the
/// right status, exactly the queued jobs are in the queue, exactly the running runner jobs hold a lease
/// at their expiry, a job's retained events are exactly `first_retained..=last_sequence`, submission keys
/// point at their job. A batch applied in part breaks one of these.
fn invariants(store: &RedbJobStore) {
    let snap = store.engine().snapshot().unwrap();
    let scan = |table: Table| {
        let mut rows = Vec::new();
        snap.each(table, &[], None, false, |k, v| {
            rows.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })
        .unwrap();
        rows
    };
    let jobs = scan(Table::Jobs);
    let created: HashMap<Vec<u8>, Vec<u8>> = scan(Table::Created).into_iter().collect();
    let queue: HashMap<Vec<u8>, Vec<u8>> = scan(Table::Queue).into_iter().collect();
    let leases: Vec<Vec<u8>> = scan(Table::Leases).into_iter().map(|(k, _)| k).collect();
    let requests: HashMap<Vec<u8>, Vec<u8>> = scan(Table::Requests).into_iter().collect();
    let submissions: HashMap<Vec<u8>, Vec<u8>> = scan(Table::Submissions).into_iter().collect();
    let events: Vec<Vec<u8>> = scan(Table::Events).into_iter().map(|(k, _)| k).collect();
    assert_eq!(created.len(), jobs.len(), "index entries ≠ jobs");
    assert_eq!(requests.len(), jobs.len(), "requests ≠ jobs");
    let (mut queued, mut leased, mut retained) = (0, 0, 0);
    for (key, value) in &jobs {
        let record: Value = serde_json::from_slice(value).unwrap();
        let job: crate::Job = serde_json::from_value(record["job"].clone()).unwrap();
        let id = String::from_utf8(key.clone()).unwrap();
        assert_eq!(job.id, id);
        assert!(requests.contains_key(key), "{id} has no request");
        let seq = record["seq"].as_u64().unwrap();
        assert_eq!(
            created.get(seq.to_be_bytes().as_slice()),
            Some(&created_value(job.status.code(), &id)),
            "{id}: index entry"
        );
        let queue_key = record["queue_seq"].as_u64().unwrap().to_be_bytes().to_vec();
        assert_eq!(
            queue.contains_key(&queue_key),
            job.status == JobStatus::Queued,
            "{id} ({:?}) and the queue",
            job.status
        );
        queued += usize::from(job.status == JobStatus::Queued);
        if job.status == JobStatus::Running && job.executor == Executor::Runner {
            let expiry = job
                .claim_expires_at_ms
                .expect("a running claim has an expiry");
            assert!(
                leases.contains(&lease_key(expiry, &id)),
                "{id} runs without its lease"
            );
            leased += 1;
        }
        let first = record["first_retained"].as_u64().unwrap();
        for sequence in first..=job.last_sequence {
            assert!(
                events.contains(&event_key(&id, sequence)),
                "{id} lost event {sequence}"
            );
        }
        retained += (job.last_sequence + 1).saturating_sub(first);
        assert_eq!(job.events_dropped, first - 1, "{id}: dropped events");
        if let Some(key) = &job.submission_key {
            let submission: Value = serde_json::from_slice(&submissions[key.as_bytes()]).unwrap();
            assert_eq!(submission["job_id"], id.as_str());
        }
    }
    assert_eq!(queue.len(), queued, "queue entries without a queued job");
    assert_eq!(leases.len(), leased, "leases without a running claim");
    assert_eq!(events.len() as u64, retained, "events without a job");
    for (key, value) in &submissions {
        let submission: Value = serde_json::from_slice(value).unwrap();
        let id = submission["job_id"].as_str().unwrap();
        assert!(
            jobs.iter().any(|(k, _)| k == id.as_bytes()),
            "submission {} points nowhere",
            String::from_utf8_lossy(key)
        );
    }
    let checkpoint = snap
        .get(Table::Meta, crate::tables::META_CHECKPOINT_LSN)
        .unwrap()
        .map(|v| read_u64(&v));
    assert!(checkpoint.is_some(), "no checkpoint lsn");
}

// ---- operations, applied to two stores in lockstep --------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Enqueue { marker: u32, key: Option<String> },
    Claim { runner: u8 },
    Append { marker: u32, lines: Vec<String> },
    Heartbeat { marker: u32 },
    Finish { marker: u32, exit: i32 },
    Cancel { marker: u32 },
    Expire,
    Prune,
}

/// One store and what its callers learnt from it (job ids and claims, by marker).
struct Side {
    store: RedbJobStore,
    ids: HashMap<u32, String>,
    claims: HashMap<u32, Actor>,
}

fn marker_of(request: &Value) -> u32 {
    request["marker"].as_u64().unwrap() as u32
}

impl Side {
    fn new(store: RedbJobStore) -> Side {
        Side {
            store,
            ids: HashMap::new(),
            claims: HashMap::new(),
        }
    }

    fn id(&self, marker: u32) -> String {
        self.ids
            .get(&marker)
            .cloned()
            .unwrap_or_else(|| "unknown".into())
    }

    fn actor(&self, marker: u32) -> Actor {
        self.claims.get(&marker).cloned().unwrap_or(Actor::Runner {
            runner_id: "nobody".into(),
            claim_id: "none".into(),
        })
    }

    /// Runs `op`; returns the markers whose status changed and their new status.
    fn run(&mut self, op: &Op) -> Result<Vec<(u32, JobStatus)>, JobError> {
        let marker_status = |store: &RedbJobStore, job: &crate::Job| -> (u32, JobStatus) {
            let request = store.request(&job.id).unwrap().unwrap();
            (marker_of(&request), job.status)
        };
        Ok(match op {
            Op::Enqueue { marker, key } => {
                let done = self.store.enqueue(job(*marker, key.clone()))?;
                let marker = marker_of(&done.request);
                self.ids.insert(marker, done.job.id.clone());
                vec![(marker, done.job.status)]
            }
            Op::Claim { runner } => match self.store.claim(ClaimRequest {
                runner_id: format!("runner-{runner}"),
                project_id: None,
                lease_ms: LEASE_MS,
            })? {
                Some(claimed) => {
                    let marker = marker_of(&claimed.request);
                    self.claims.insert(
                        marker,
                        Actor::Runner {
                            runner_id: claimed.job.claimed_by_runner_id.clone().unwrap(),
                            claim_id: claimed.job.claim_id.clone().unwrap(),
                        },
                    );
                    vec![(marker, JobStatus::Running)]
                }
                None => Vec::new(),
            },
            Op::Append { marker, lines } => {
                let events = lines
                    .iter()
                    .map(|l| NewEvent {
                        kind: EventKind::Stdout,
                        message: Some(l.clone()),
                        data: None,
                    })
                    .collect();
                self.store
                    .append_events(&self.id(*marker), &self.actor(*marker), events)?;
                Vec::new()
            }
            Op::Heartbeat { marker } => {
                let job =
                    self.store
                        .heartbeat(&self.id(*marker), &self.actor(*marker), LEASE_MS)?;
                vec![(*marker, job.status)]
            }
            Op::Finish { marker, exit } => {
                let result = JobResult {
                    exit_code: *exit,
                    stdout: Some(format!("done {marker}")),
                    ..JobResult::default()
                };
                let job = self
                    .store
                    .finish(&self.id(*marker), &self.actor(*marker), result)?;
                vec![(*marker, job.status)]
            }
            Op::Cancel { marker } => {
                let job = self.store.cancel(&self.id(*marker))?;
                vec![(*marker, job.status)]
            }
            Op::Expire => {
                let jobs = self.store.expire_leases()?;
                jobs.iter().map(|j| marker_status(&self.store, j)).collect()
            }
            Op::Prune => {
                self.store.prune(&PrunePolicy {
                    max_terminal_jobs: 6,
                    max_terminal_age_ms: 60_000,
                })?;
                Vec::new()
            }
        })
    }
}

/// What the operation generator knows: each marker's status, as the healthy store reported it.
#[derive(Default)]
struct Model {
    status: BTreeMap<u32, JobStatus>,
    keys: Vec<(u32, String)>,
    next_marker: u32,
}

impl Model {
    fn with(&self, status: JobStatus) -> Vec<u32> {
        self.status
            .iter()
            .filter(|(_, s)| **s == status)
            .map(|(m, _)| *m)
            .collect()
    }

    fn next(&mut self, rng: &mut fastrand::Rng) -> Option<Op> {
        let running = self.with(JobStatus::Running);
        let pick = |rng: &mut fastrand::Rng, from: &[u32]| from[rng.usize(..from.len())];
        Some(match rng.u32(0..20) {
            0..=4 => {
                if rng.u32(0..5) == 0 && !self.keys.is_empty() {
                    // The same submission again: answered with the existing job.
                    let (marker, key) = self.keys[rng.usize(..self.keys.len())].clone();
                    return Some(Op::Enqueue {
                        marker,
                        key: Some(key),
                    });
                }
                let marker = self.next_marker;
                self.next_marker += 1;
                let key = rng.bool().then(|| format!("key-{marker}"));
                if let Some(key) = &key {
                    self.keys.push((marker, key.clone()));
                }
                Op::Enqueue { marker, key }
            }
            5..=7 => Op::Claim {
                runner: rng.u8(0..3),
            },
            8..=11 if !running.is_empty() => {
                let lines = (0..rng.usize(1..4))
                    .map(|i| format!("line {i} {}", "y".repeat(rng.usize(0..400))))
                    .collect();
                Op::Append {
                    marker: pick(rng, &running),
                    lines,
                }
            }
            12 if !running.is_empty() => Op::Heartbeat {
                marker: pick(rng, &running),
            },
            13..=15 if !running.is_empty() => Op::Finish {
                marker: pick(rng, &running),
                exit: rng.i32(0..2),
            },
            16 if !self.status.is_empty() => {
                let all: Vec<u32> = self.status.keys().copied().collect();
                Op::Cancel {
                    marker: pick(rng, &all),
                }
            }
            17 => Op::Expire,
            18 => Op::Prune,
            _ => return None, // time passes
        })
    }
}

/// The two stores of a run: `faulted` on the disk under test, `healthy` on a disk that never fails.
struct Lockstep {
    faulted: Side,
    healthy: Side,
    model: Model,
    now: Arc<AtomicU64>,
}

/// How a run of operations ended.
enum Ended {
    /// Every operation was acknowledged: the healthy store's state.
    Clean(Vec<Value>),
    /// `op` failed on the faulted store: the healthy store's state before and after it.
    InFlight {
        op: Op,
        error: JobError,
        before: Vec<Value>,
        after: Vec<Value>,
    },
}

impl Lockstep {
    /// Runs `count` generated operations (or until the faulted store fails one).
    fn run(&mut self, rng: &mut fastrand::Rng, count: usize) -> Ended {
        for _ in 0..count {
            let Some(op) = self.model.next(rng) else {
                self.now.fetch_add(rng.u64(0..LEASE_MS), Ordering::SeqCst);
                continue;
            };
            if let Some(ended) = self.step(op) {
                return ended;
            }
        }
        Ended::Clean(dump(&self.healthy.store).unwrap())
    }

    /// Applies `op` to both stores; `Some` when the faulted store failed it.
    fn step(&mut self, op: Op) -> Option<Ended> {
        let faulted = self.faulted.run(&op);
        if let Err(error) = &faulted
            && matches!(error, JobError::Storage(_))
        {
            let before = dump(&self.healthy.store).unwrap();
            let _ = self.healthy.run(&op);
            let after = dump(&self.healthy.store).unwrap();
            return Some(Ended::InFlight {
                op,
                error: error.clone(),
                before,
                after,
            });
        }
        let healthy = self.healthy.run(&op);
        match (&faulted, &healthy) {
            (Ok(_), Ok(changed)) => {
                for (marker, status) in changed {
                    self.model.status.insert(*marker, *status);
                }
            }
            (Err(a), Err(b)) => assert_eq!(
                std::mem::discriminant(a),
                std::mem::discriminant(b),
                "{op:?}: {a} vs {b}"
            ),
            _ => panic!("{op:?}: the stores disagree: {faulted:?} vs {healthy:?}"),
        }
        if matches!(op, Op::Prune) {
            self.model.status = dump(&self.healthy.store)
                .unwrap()
                .iter()
                .map(|v| {
                    let status = serde_json::from_value(v["job"]["status"].clone()).unwrap();
                    (v["job"]["id"].as_u64().unwrap() as u32, status)
                })
                .collect();
        }
        None
    }
}

/// After the crash: the recovered state is the healthy store's before the operation in flight or after
/// it, and the tables agree.
fn assert_recovered(recovered: &RedbJobStore, ended: &Ended, context: &str) {
    invariants(recovered);
    let state = dump(recovered).unwrap();
    match ended {
        Ended::Clean(expected) => {
            assert!(
                &state == expected,
                "{context}: acknowledged work differs after recovery\nrecovered: {}\nexpected: {}",
                Value::from(state.clone()),
                Value::from(expected.clone())
            );
        }
        Ended::InFlight {
            op,
            error,
            before,
            after,
        } => {
            assert!(
                &state == before || &state == after,
                "{context}: after {op:?} failed ({error}) the store is neither as before nor as after \
                 it\nrecovered: {}\nbefore: {}\nafter: {}",
                Value::from(state.clone()),
                Value::from(before.clone()),
                Value::from(after.clone())
            );
        }
    }
}

/// Every call fails on a poisoned store, reads included.
fn assert_poisoned(store: &RedbJobStore) {
    assert!(is_storage(&store.get("x")), "reads still work");
    let actor = Actor::Runner {
        runner_id: "r".into(),
        claim_id: "c".into(),
    };
    assert!(is_storage(&store.enqueue(job(999_999, None))));
    assert!(is_storage(&store.claim(ClaimRequest {
        runner_id: "r".into(),
        project_id: None,
        lease_ms: 1000,
    })));
    assert!(is_storage(&store.heartbeat("x", &actor, 1000)));
    assert!(is_storage(&store.append_events("x", &actor, Vec::new())));
    assert!(is_storage(&store.finish("x", &actor, JobResult::default())));
    assert!(is_storage(&store.cancel("x")));
    assert!(is_storage(&store.expire_leases()));
    assert!(is_storage(&store.prune(&PrunePolicy::default())));
    assert!(is_storage(&store.get("x")));
    assert!(is_storage(&store.request("x")));
    assert!(is_storage(&store.events("x", 0, 10)));
    assert!(is_storage(&store.list(&JobFilter::default())));
}

/// A pair of stores on fresh disks, the faulted one's disk returned for arming.
fn lockstep(wal_capacity: u64) -> (Lockstep, Disk, Place, Place) {
    let now = Arc::new(AtomicU64::new(START));
    let (faulted_place, healthy_place) = (Place::new(), Place::new());
    let disk = Disk::new();
    let faulted = faulted_place.open_on(&disk, wal_capacity, &now).unwrap().0;
    let healthy = healthy_place
        .open_on(&Disk::new(), wal_capacity, &now)
        .unwrap()
        .0;
    (
        Lockstep {
            faulted: Side::new(faulted),
            healthy: Side::new(healthy),
            model: Model::default(),
            now,
        },
        disk,
        faulted_place,
        healthy_place,
    )
}

/// Drops the faulted store (after `disk` lost the power, if it did) and opens its files for real.
fn crash_and_recover(pair: Lockstep, place: &Place) -> (RedbJobStore, Recovery) {
    let Lockstep { faulted, now, .. } = pair;
    drop(faulted);
    place.open_real(&now)
}

/// After an operation failed: the store refuses everything; then (with or without a power loss) a reopen
/// finds exactly the `acknowledged` state, and works.
fn assert_exactly_acknowledged(
    pair: Lockstep,
    disk: &Disk,
    place: &Place,
    power_loss: bool,
    acknowledged: &[Value],
    context: &str,
) {
    assert_poisoned(&pair.faulted.store);
    if power_loss {
        disk.power_loss();
    }
    let (recovered, _) = crash_and_recover(pair, place);
    invariants(&recovered);
    assert_eq!(
        dump(&recovered).unwrap(),
        acknowledged,
        "{context}, power loss {power_loss}: not exactly the acknowledged work"
    );
    recovered.enqueue(job(778, None)).unwrap();
}

// ---- the named scenarios ----------------------------------------------------------------------------

#[test]
fn a_failed_sync_poisons_the_store_and_a_reopen_recovers_exactly_what_was_acknowledged() {
    for power_loss in [false, true] {
        let (mut pair, disk, place, _healthy) = lockstep(64 * 1024);
        let mut rng = fastrand::Rng::with_seed(3);
        assert!(matches!(pair.run(&mut rng, 40), Ended::Clean(_)));
        let acknowledged = dump(&pair.healthy.store).unwrap();
        // The next flush of the log fails; the disk is healthy again afterwards.
        disk.set_hook(once(
            |e| (e.file, e.io) == ("jobs.redb.wal", Io::Sync),
            Action::Fail,
        ));
        let failed = pair.faulted.run(&Op::Enqueue {
            marker: 777,
            key: Some("poisoned".into()),
        });
        assert!(is_storage(&failed), "{failed:?}");
        assert_exactly_acknowledged(
            pair,
            &disk,
            &place,
            power_loss,
            &acknowledged,
            "failed sync",
        );
    }
}

#[test]
fn a_torn_log_write_aborts_its_batch_and_nothing_builds_on_it() {
    for (tear_at, power_loss) in [(0, false), (7, false), (23, true), (60, false), (200, true)] {
        let (mut pair, disk, place, _healthy) = lockstep(64 * 1024);
        let mut rng = fastrand::Rng::with_seed(5);
        assert!(matches!(pair.run(&mut rng, 30), Ended::Clean(_)));
        let acknowledged = dump(&pair.healthy.store).unwrap();
        disk.set_hook(once(
            |e| e.file == "jobs.redb.wal" && matches!(e.io, Io::Write { .. }),
            Action::Tear(tear_at),
        ));
        let failed = pair.faulted.run(&Op::Enqueue {
            marker: 555,
            key: None,
        });
        assert!(is_storage(&failed), "{failed:?}");
        // The aborted job must not be claimable, listed, or built on.
        assert_exactly_acknowledged(
            pair,
            &disk,
            &place,
            power_loss,
            &acknowledged,
            &format!("torn at {tear_at}"),
        );
    }
}

#[test]
fn a_crash_just_after_a_checkpoint_loses_nothing() {
    // The power fails at the first log write after a checkpoint (the next batch, on a fresh log cycle),
    // for each of several checkpoints in turn.
    for nth in 1..=3u32 {
        let (mut pair, disk, place, _healthy) = lockstep(8 * 1024);
        let mut checkpoints = 0;
        let mut last_was_db_sync = false;
        disk.set_hook(move |e| {
            let action = match (e.file, e.io) {
                ("jobs.redb.wal", Io::Write { .. }) if last_was_db_sync => {
                    checkpoints += 1;
                    if checkpoints == nth {
                        Action::PowerLoss
                    } else {
                        Action::Proceed
                    }
                }
                _ => Action::Proceed,
            };
            last_was_db_sync = matches!((e.file, e.io), ("jobs.redb", Io::Sync))
                || (last_was_db_sync && e.file == "jobs.redb");
            action
        });
        let mut rng = fastrand::Rng::with_seed(11);
        let ended = pair.run(&mut rng, 2000);
        assert!(!disk.powered(), "checkpoint {nth} never happened");
        assert!(matches!(ended, Ended::InFlight { .. }));
        let (recovered, recovery) = crash_and_recover(pair, &place);
        assert_recovered(&recovered, &ended, &format!("checkpoint {nth}"));
        assert_eq!(recovery.log_wraps, u64::from(nth), "{recovery:?}");
        assert_eq!(recovery.replayed_records, 0, "nothing was logged after it");
    }
}

#[test]
fn a_crash_during_a_checkpoint_loses_nothing() {
    // The power fails at each call of the first checkpoint's durable commit in turn.
    for nth in 1..=6u32 {
        let (mut pair, disk, place, _healthy) = lockstep(8 * 1024);
        let mut wal_writes_seen = false;
        let mut db_calls = 0;
        disk.set_hook(move |e| {
            if e.file == "jobs.redb.wal" {
                wal_writes_seen = true;
                return Action::Proceed;
            }
            // A durable commit syncs the database file; count its calls from the first write of one.
            if wal_writes_seen {
                db_calls += 1;
                if db_calls == nth {
                    return Action::PowerLossAfter;
                }
            }
            Action::Proceed
        });
        let mut rng = fastrand::Rng::with_seed(13);
        let ended = pair.run(&mut rng, 2000);
        assert!(!disk.powered(), "call {nth} never happened");
        let (recovered, _) = crash_and_recover(pair, &place);
        assert_recovered(&recovered, &ended, &format!("checkpoint call {nth}"));
    }
}

#[test]
fn a_log_that_wrapped_before_the_crash_replays_only_its_new_cycle() {
    for loss in [Loss::DropUnsynced, Loss::KeepUnsynced, Loss::Scramble(9)] {
        let (mut pair, disk, place, _healthy) = lockstep(8 * 1024);
        disk.set_loss(loss);
        let mut rng = fastrand::Rng::with_seed(17);
        // Run until the log has wrapped twice and the new cycle holds records, shorter than the old ones
        // beyond them, so stale records follow fresh ones in the file.
        let mut steps = 0;
        while pair.faulted.store.engine().log_wraps() < 2 || steps < 10 {
            if pair.faulted.store.engine().log_wraps() >= 2 {
                steps += 1;
            }
            assert!(matches!(pair.run(&mut rng, 1), Ended::Clean(_)));
        }
        let wraps = pair.faulted.store.engine().log_wraps();
        let expected = Ended::Clean(dump(&pair.healthy.store).unwrap());
        disk.power_loss();
        let (recovered, recovery) = crash_and_recover(pair, &place);
        assert_eq!(recovery.log_wraps, wraps, "the wraps were checkpoints");
        if loss == Loss::KeepUnsynced {
            assert!(recovery.replayed_records > 0, "{recovery:?}");
        }
        assert_recovered(&recovered, &expected, &format!("{loss:?}"));
    }
}

// ---- the randomized loop ----------------------------------------------------------------------------

#[test]
fn randomized_crashes_keep_every_acknowledged_operation_and_nothing_half_done() {
    for seed in 0..seeds(300) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let capacity = [4 * 1024, 8 * 1024, 32 * 1024][rng.usize(..3)];
        let fault = Fault::random(seed, 160, 600);
        let (mut pair, disk, place, _healthy) = lockstep(capacity);
        fault.arm(&disk);
        let ended = pair.run(&mut rng, 80);
        let context = format!("seed {seed}: {fault:?}, log {capacity} bytes");
        if let Ended::InFlight { .. } = ended
            && disk.powered()
        {
            // With the power on, only a failed write or sync can fail an operation, and that poisons.
            if !is_storage(&pair.faulted.store.get("x")) {
                panic!(
                    "{context}: not poisoned after {:?}",
                    match &ended {
                        Ended::InFlight { op, error, .. } => format!("{op:?} {error}"),
                        _ => String::new(),
                    }
                );
            }
            assert_poisoned(&pair.faulted.store);
        }
        fault.end(&disk);
        let (recovered, _) = crash_and_recover(pair, &place);
        assert_recovered(&recovered, &ended, &context);
    }
}

#[test]
fn concurrent_batches_survive_a_crash_at_any_call() {
    // Group commit: several callers share batches and flushes. Whatever call fails, each acknowledged
    // enqueue survives; with a failed flush and no power loss, exactly the acknowledged ones do.
    for seed in 0..12u64 {
        let mut rng = fastrand::Rng::with_seed(1000 + seed);
        let now = Arc::new(AtomicU64::new(START));
        let place = Place::new();
        let disk = Disk::new();
        let store = Arc::new(place.open_on(&disk, 8 * 1024, &now).unwrap().0);
        let armed_at = disk.calls();
        let at = rng.u64(0..120);
        let action = if seed % 2 == 0 {
            Action::Fail
        } else {
            Action::PowerLossAfter
        };
        // The first call at `at` (a failed flush: the first sync from there on) goes wrong.
        let mut fired = false;
        disk.set_hook(move |e| {
            // (A failed flush of the log; a failed sync of redb's own commit may leave that commit
            // visible after a restart, which is redb's business and allowed: whole, never in part.)
            let due = e.seq >= armed_at + at
                && (action != Action::Fail || (e.io == Io::Sync && e.file == "jobs.redb.wal"));
            if due && !fired {
                fired = true;
                action
            } else {
                Action::Proceed
            }
        });
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..40u32 {
                        match store.enqueue(job(t * 1000 + i, Some(format!("k{t}-{i}")))) {
                            Ok(done) => acked.push((t * 1000 + i, done.job.id)),
                            Err(JobError::Storage(_)) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    acked
                })
            })
            .collect();
        let acked: Vec<(u32, String)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let poisoned = is_storage(&store.get("x"));
        if seed % 2 == 1 {
            disk.power_loss();
        } else {
            disk.clear_hook();
        }
        drop(store);
        let (recovered, _) = place.open_real(&now);
        invariants(&recovered);
        let state = dump(&recovered).unwrap();
        let markers: Vec<u32> = state
            .iter()
            .map(|v| v["job"]["id"].as_u64().unwrap() as u32)
            .collect();
        for (marker, id) in &acked {
            let job = recovered.get(id).unwrap();
            assert!(job.is_some(), "seed {seed}: acknowledged job {marker} lost");
        }
        if seed % 2 == 0 && poisoned {
            let mut expected: Vec<u32> = acked.iter().map(|(m, _)| *m).collect();
            let mut got = markers.clone();
            expected.sort_unstable();
            got.sort_unstable();
            assert_eq!(
                got, expected,
                "seed {seed}: not exactly the acknowledged jobs"
            );
        }
        // Markers are unique: nothing was applied twice.
        let mut unique = markers.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), markers.len(), "seed {seed}");
    }
}
