//! Crash and disk-fault tests of the observation store's writes, on the simulated disk of
//! `homeboy-faultfs`: a failed `fdatasync` stops the store (every later call fails) and a reopen finds
//! every acknowledged write; a commit torn part-way leaves the store as before it; a crash just after a
//! commit loses nothing; and a randomized loop of crashes checks that every acknowledged write survives and
//! that the one write in flight is there whole or not at all.
//!
//! The oracle is a second store on a healthy disk that takes the same writes in lockstep (run ids are
//! chosen by the test, so both hold the same bytes); after the crash the recovered store, opened by the
//! production `ObservationStore::open` on the real file, must equal it as it was before the write in flight
//! or after it — every run, artifact and finding, and every filtered listing (the run index).

use std::path::PathBuf;

use homeboy_faultfs::{Action, Disk, Fault, Io, Loss, once, seeds};
use serde_json::{Value, json};

use crate::model::{Completion, NewFinding, Run, RunFilter, RunStatus, StoredArtifact};
use crate::{ObservationError, ObservationStore};

struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        Place {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("observations.redb")
    }
    fn open_on(&self, disk: &Disk) -> ObservationStore {
        ObservationStore::open_on(disk.open(&self.path()).unwrap()).unwrap()
    }
    fn open_real(&self) -> ObservationStore {
        ObservationStore::open(&self.path()).unwrap()
    }
}

/// A store on a disk under test and one on a healthy disk, for writes in lockstep.
struct Pair {
    faulted: ObservationStore,
    healthy: ObservationStore,
    disk: Disk,
    place: Place,
    _healthy_place: Place,
}

impl Pair {
    fn new() -> Pair {
        let (place, healthy_place, disk) = (Place::new(), Place::new(), Disk::new());
        Pair {
            faulted: place.open_on(&disk),
            healthy: healthy_place.open_on(&Disk::new()),
            disk,
            place,
            _healthy_place: healthy_place,
        }
    }

    /// Writes `count` generated writes to both stores, all acknowledged.
    fn settle(&self, seed: u64, count: usize) -> fastrand::Rng {
        let mut rng = fastrand::Rng::with_seed(seed);
        assert!(matches!(
            lockstep(&self.faulted, &self.healthy, &mut rng, count),
            Ended::Clean(_)
        ));
        rng
    }

    /// Drops the faulted store (after whatever the disk went through) and opens its file for real.
    fn recover(self) -> ObservationStore {
        drop(self.faulted);
        self.place.open_real()
    }
}

const COMPONENTS: [&str; 2] = ["api", "web"];
const KINDS: [&str; 2] = ["lint", "test"];

fn run_id(n: u32) -> String {
    format!("0190a000-0000-7000-8000-{n:012}")
}

fn run(n: u32, status: RunStatus) -> Run {
    Run {
        id: run_id(n),
        kind: KINDS[(n % 2) as usize].into(),
        component_id: COMPONENTS[(n / 2 % 2) as usize].into(),
        rig_id: n.is_multiple_of(3).then(|| "rig-1".to_string()),
        status,
        started_at: "2026-01-01T00:00:00.000Z".into(),
        finished_at: (status != RunStatus::Running).then(|| "2026-01-01T00:01:00.000Z".into()),
        command: format!("tool --run {n} {}", "a".repeat((n as usize * 53) % 700)),
        cwd: "/src".into(),
        homeboy_version: "0".into(),
        git_sha: None,
        metadata: serde_json::Map::new(),
        status_note: None,
    }
}

fn artifact(n: u32, index: u32, name: &str) -> StoredArtifact {
    StoredArtifact {
        id: format!("{}-{index:04}", run_id(n)),
        run_id: run_id(n),
        kind: "file".into(),
        name: name.into(),
        stored_path: Some(format!("runs/{}/{name}", run_id(n))),
        source_path: Some(format!("out/{name}")),
        size_bytes: u64::from(index) * 100,
        sha256: format!("{index:064}"),
        mime: "text/plain".into(),
        created_at: "2026-01-01T00:01:00.000Z".into(),
        note: None,
    }
}

fn finding(n: u32, index: u32) -> NewFinding {
    NewFinding {
        tool: KINDS[(n % 2) as usize].into(),
        rule: format!("rule-{}", index % 5),
        file: Some(format!("src/file{}.rs", index % 7)),
        line: Some(index),
        severity: "warning".into(),
        fingerprint: format!("fp-{n}-{index}"),
        message: format!(
            "finding {index} of run {n} {}",
            "m".repeat((index as usize * 31) % 200)
        ),
        fixable: index.is_multiple_of(2),
    }
}

fn completion(n: u32, status: RunStatus, artifacts: u32, findings: u32) -> Completion {
    Completion {
        run: run(n, status),
        artifacts: (0..artifacts)
            .map(|i| artifact(n, i, &format!("report-{i}.txt")))
            .collect(),
        findings: (0..findings).map(|i| finding(n, i)).collect(),
    }
}

fn is_storage<T: std::fmt::Debug>(result: &Result<T, ObservationError>) -> bool {
    matches!(result, Err(ObservationError::Storage(_)))
}

// ---- the compared view ------------------------------------------------------------------------------

fn all_runs(store: &ObservationStore, filter: RunFilter) -> Result<Vec<Run>, ObservationError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_runs(&RunFilter {
            limit: 7,
            cursor,
            ..filter.clone()
        })?;
        out.extend(page.runs);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Every run with its artifacts and findings; and every filtered listing agrees with the full one.
fn dump(store: &ObservationStore) -> Result<Value, ObservationError> {
    let runs = all_runs(store, RunFilter::default())?;
    let mut view = Vec::new();
    for run in &runs {
        view.push(json!({
            "run": run,
            "artifacts": store.artifacts(&run.id)?,
            "findings": store.all_findings(&run.id)?,
        }));
    }
    let mut filters = Vec::new();
    for component in COMPONENTS {
        filters.push(RunFilter {
            component: Some(component.into()),
            ..RunFilter::default()
        });
        for status in RunStatus::ALL {
            filters.push(RunFilter {
                component: Some(component.into()),
                status: Some(status),
                ..RunFilter::default()
            });
        }
    }
    for kind in KINDS {
        filters.push(RunFilter {
            kind: Some(kind.into()),
            rig: Some("rig-1".into()),
            ..RunFilter::default()
        });
    }
    for filter in filters {
        let listed: Vec<String> = all_runs(store, filter.clone())?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let expected: Vec<String> = runs
            .iter()
            .filter(|r| {
                filter
                    .component
                    .as_deref()
                    .is_none_or(|c| c == r.component_id)
                    && filter.kind.as_deref().is_none_or(|k| k == r.kind)
                    && filter
                        .rig
                        .as_deref()
                        .is_none_or(|g| Some(g) == r.rig_id.as_deref())
                    && filter.status.is_none_or(|s| s == r.status)
            })
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(listed, expected, "the run index disagrees for {filter:?}");
    }
    Ok(Value::from(view))
}

// ---- writes, in lockstep ----------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Write {
    Start(u32),
    Complete {
        n: u32,
        status: RunStatus,
        artifacts: u32,
        findings: u32,
    },
    Attach {
        n: u32,
        index: u32,
        name: String,
    },
    Import {
        first: u32,
        count: u32,
    },
}

fn apply(store: &ObservationStore, write: &Write) -> Result<(), ObservationError> {
    match write {
        Write::Start(n) => store.create_run(&run(*n, RunStatus::Running)),
        Write::Complete {
            n,
            status,
            artifacts,
            findings,
        } => store
            .complete_run(completion(*n, *status, *artifacts, *findings))
            .map(drop),
        Write::Attach { n, index, name } => {
            store.attach_artifact(artifact(*n, *index, name)).map(drop)
        }
        Write::Import { first, count } => store
            .import((*first..first + count).map(|n| completion(n, RunStatus::Pass, 1, 3)))
            .map(drop),
    }
}

struct Generator {
    next: u32,
    started: Vec<u32>,
}

impl Generator {
    fn next(&mut self, rng: &mut fastrand::Rng) -> Write {
        match rng.u32(0..10) {
            0..=2 => {
                self.next += 1;
                self.started.push(self.next);
                Write::Start(self.next)
            }
            3..=5 if !self.started.is_empty() => {
                let n = self.started.swap_remove(rng.usize(..self.started.len()));
                Write::Complete {
                    n,
                    status: [RunStatus::Pass, RunStatus::Fail, RunStatus::Error][rng.usize(..3)],
                    artifacts: rng.u32(0..3),
                    findings: rng.u32(0..40),
                }
            }
            6 => {
                self.next += 1;
                Write::Complete {
                    n: self.next,
                    status: RunStatus::Fail,
                    artifacts: 1,
                    findings: rng.u32(0..80),
                }
            }
            7 if self.next > 0 => Write::Attach {
                n: rng.u32(1..self.next + 1),
                index: rng.u32(100..104),
                name: ["preview-url.json", "log.txt"][rng.usize(..2)].into(),
            },
            _ => {
                let first = self.next + 1;
                let count = rng.u32(1..6);
                self.next += count;
                Write::Import { first, count }
            }
        }
    }
}

/// How a run of writes ended: every write acknowledged, or one failed with the healthy store's state
/// before and after it.
enum Ended {
    Clean(Value),
    InFlight {
        write: Write,
        error: String,
        before: Value,
        after: Value,
    },
}

fn lockstep(
    faulted: &ObservationStore,
    healthy: &ObservationStore,
    rng: &mut fastrand::Rng,
    count: usize,
) -> Ended {
    let mut generator = Generator {
        next: 0,
        started: Vec::new(),
    };
    for _ in 0..count {
        let write = generator.next(rng);
        match apply(faulted, &write) {
            Ok(()) => apply(healthy, &write).unwrap(),
            Err(e) if matches!(e, ObservationError::Storage(_)) => {
                let before = dump(healthy).unwrap();
                let _ = apply(healthy, &write);
                let after = dump(healthy).unwrap();
                return Ended::InFlight {
                    write,
                    error: e.to_string(),
                    before,
                    after,
                };
            }
            // A refusal (an attachment to a run that is not there) changes nothing, on both sides.
            Err(e) => assert_eq!(
                apply(healthy, &write).unwrap_err().to_string(),
                e.to_string()
            ),
        }
    }
    Ended::Clean(dump(healthy).unwrap())
}

fn assert_recovered(recovered: &ObservationStore, ended: &Ended, context: &str) {
    let state = dump(recovered).unwrap();
    match ended {
        Ended::Clean(expected) => assert!(
            &state == expected,
            "{context}: acknowledged writes differ after recovery\nrecovered: {state}\nexpected: {expected}"
        ),
        Ended::InFlight {
            write,
            error,
            before,
            after,
        } => assert!(
            &state == before || &state == after,
            "{context}: after {write:?} failed ({error}) the store is neither as before nor as after \
             it\nrecovered: {state}\nbefore: {before}\nafter: {after}"
        ),
    }
}

/// Every later call fails: the store stopped.
fn assert_stopped(store: &ObservationStore) {
    assert!(is_storage(
        &store.create_run(&run(9_999, RunStatus::Running))
    ));
    assert!(is_storage(&store.complete_run(completion(
        9_998,
        RunStatus::Pass,
        1,
        1
    ))));
    assert!(is_storage(&store.run(&run_id(1))));
    assert!(is_storage(&store.list_runs(&RunFilter {
        limit: 5,
        ..RunFilter::default()
    })));
    assert!(is_storage(&store.artifacts(&run_id(1))));
    assert!(is_storage(&store.all_findings(&run_id(1))));
}

// ---- the scenarios ----------------------------------------------------------------------------------

#[test]
fn a_failed_sync_stops_the_store_and_a_reopen_finds_every_acknowledged_write() {
    for (nth_sync, power_loss) in [(1, false), (1, true), (2, false), (2, true)] {
        let pair = Pair::new();
        let mut rng = pair.settle(21, 30);
        // A sync of the next commit fails (its first or its second); the disk works again afterwards.
        let mut syncs = 0;
        pair.disk.set_hook(once(
            move |e| {
                syncs += u32::from(e.io == Io::Sync);
                syncs == nth_sync && e.io == Io::Sync
            },
            Action::Fail,
        ));
        let ended = lockstep(&pair.faulted, &pair.healthy, &mut rng, 5);
        assert!(matches!(ended, Ended::InFlight { .. }), "no write failed");
        assert_stopped(&pair.faulted);
        if power_loss {
            pair.disk.power_loss();
        }
        let recovered = pair.recover();
        assert_recovered(
            &recovered,
            &ended,
            &format!("sync {nth_sync}, power loss {power_loss}"),
        );
        recovered
            .create_run(&run(5_000, RunStatus::Running))
            .unwrap();
    }
}

#[test]
fn a_commit_torn_part_way_leaves_the_store_as_before_it() {
    for (nth_write, tear_at, power_loss) in [(1, 0, false), (2, 100, false), (3, 4000, true)] {
        let pair = Pair::new();
        pair.settle(23, 20);
        let before = dump(&pair.healthy).unwrap();
        let mut writes = 0;
        pair.disk.set_hook(once(
            move |e| {
                let write = matches!(e.io, Io::Write { .. });
                writes += u32::from(write);
                write && writes == nth_write
            },
            Action::Tear(tear_at),
        ));
        let failed = pair
            .faulted
            .complete_run(completion(7_000, RunStatus::Fail, 2, 60));
        assert!(is_storage(&failed), "{failed:?}");
        assert_stopped(&pair.faulted);
        if power_loss {
            pair.disk.power_loss();
        }
        let recovered = pair.recover();
        assert_eq!(
            dump(&recovered).unwrap(),
            before,
            "write {nth_write} torn at {tear_at}"
        );
    }
}

#[test]
fn a_crash_just_after_a_commit_loses_nothing() {
    for (commits, loss) in [
        (3, Loss::DropUnsynced),
        (8, Loss::Scramble(4)),
        (12, Loss::KeepUnsynced),
    ] {
        let pair = Pair::new();
        pair.settle(29, commits);
        let expected = Ended::Clean(dump(&pair.healthy).unwrap());
        pair.disk.set_loss(loss);
        pair.disk.power_loss();
        assert_recovered(&pair.recover(), &expected, &format!("{loss:?}"));
    }
}

#[test]
fn randomized_crashes_keep_every_acknowledged_write_and_nothing_half_done() {
    for seed in 0..seeds(200) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let fault = Fault::random(seed, 200, 5000);
        let pair = Pair::new();
        fault.arm(&pair.disk);
        let ended = lockstep(&pair.faulted, &pair.healthy, &mut rng, 40);
        let context = format!("seed {seed}: {fault:?}");
        if matches!(ended, Ended::InFlight { .. }) && pair.disk.powered() {
            assert_stopped(&pair.faulted);
        }
        fault.end(&pair.disk);
        assert_recovered(&pair.recover(), &ended, &context);
    }
}
