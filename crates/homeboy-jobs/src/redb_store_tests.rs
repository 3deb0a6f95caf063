//! The store test suite (`store_tests.rs`) on a real redb file in a temp dir, plus what only redb has: the
//! write-ahead log's crash recovery and the move of daemon jobs out of the runners' queue in old files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::suite::{Backend, Storage, actor, claim_as, out, runner_job};

/// Each test's store lives in a redb file in its own temp dir.
struct Redb;

struct RedbFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Backend for Redb {
    fn storage(&self, _test: &str) -> Box<dyn Storage> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.redb");
        Box::new(RedbFile { _dir: dir, path })
    }
}

impl Storage for RedbFile {
    fn open(
        &self,
        options: StoreOptions,
        clock: Clock,
    ) -> Result<(Arc<dyn JobStore>, Recovery), JobError> {
        let (store, recovery) = RedbJobStore::open_with_clock(&self.path, options, clock)?;
        Ok((Arc::new(store), recovery))
    }

    fn shared(&self) -> bool {
        false // One process holds a redb file.
    }
}

crate::store_suite!(Redb);

/// The child half of `acknowledged_work_survives_a_crash`: enqueue and claim, print what was acknowledged,
/// then die without any shutdown.
fn crash_child(path: &Path) {
    let (store, _) = RedbJobStore::open(path, StoreOptions::default()).unwrap();
    for i in 0..300 {
        let job = store.enqueue(runner_job(&i.to_string())).unwrap().job;
        if i % 3 == 0 {
            let c = claim_as(&store, "lab").unwrap();
            let line = out(EventKind::Stdout, "x");
            store
                .append_events(&c.job.id, &actor(&c), vec![line])
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

#[test]
fn daemon_jobs_queued_in_an_older_file_move_to_their_own_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.redb");
    let (store, _) = RedbJobStore::open(&path, StoreOptions::default()).unwrap();
    let mut daemon = runner_job("d");
    daemon.executor = Executor::Daemon;
    let d = store.enqueue(daemon).unwrap().job;
    let r = store.enqueue(runner_job("r")).unwrap().job;
    // Put the daemon job back where files written before the split kept it: the runners' queue.
    store
        .engine
        .write(|tx| {
            let moved = tx.collect(Table::DaemonQueue, &[], None)?;
            for (key, value) in moved {
                tx.delete(Table::DaemonQueue, key.clone())?;
                tx.put(Table::Queue, key, value)?;
            }
            Ok(())
        })
        .unwrap();
    drop(store);
    let (store, _) = RedbJobStore::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(claim_as(&store, "lab").unwrap().job.id, r.id);
    assert!(claim_as(&store, "lab").is_none());
    assert_eq!(store.start_next_daemon_job().unwrap().unwrap().job.id, d.id);
}
