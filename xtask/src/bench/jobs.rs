//! `cargo xtask bench jobs`: the job store against the disk's own ceiling, in one run.
//!
//! (a) the ceiling: a loop of 4 KiB write + fdatasync (appending, and overwriting pre-written blocks);
//! (b) store-level enqueue → claim → finish cycles per second, every step durable, with 1 and 8 threads;
//! (c) HTTP end to end: a broker and 8 runner loops draining 10,000 jobs — jobs/s and claim latency.
//! Each is printed as a ratio to (a). Targets: (b) 8 threads ≥ 1.0×, (b) 1 thread ≥ 0.3×.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use homeboy_jobs::{
    Actor, ClaimRequest, Executor, JobResult, JobStore, NewJob, RedbJobStore, StoreOptions,
};

use super::report::{ratio, table, verdict};

const CEILING_OPS: usize = 3000;
const STORE_SECS: f64 = 4.0;

pub fn run() -> anyhow::Result<()> {
    println!("# bench jobs");
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let (append, overwrite) = fsync_ceiling(dir.path())?;
    let one = store_cycles(dir.path(), 1)?;
    let eight = store_cycles(dir.path(), 8)?;
    table(
        "(a) disk ceiling and (b) durable store cycles (enqueue → claim → finish)",
        &[
            "measurement",
            "ops/s",
            "ratio to ceiling (append)",
            "ratio to ceiling (overwrite)",
            "target",
            "verdict",
        ],
        &[
            vec![
                "(a) 4 KiB write + fdatasync, appending".into(),
                format!("{append:.0}"),
                "1.00x".into(),
                ratio(append, overwrite),
                "-".into(),
                "-".into(),
            ],
            vec![
                "(a) 4 KiB write + fdatasync, overwriting".into(),
                format!("{overwrite:.0}"),
                ratio(overwrite, append),
                "1.00x".into(),
                "-".into(),
                "-".into(),
            ],
            vec![
                "(b) store cycles/s, 1 thread".into(),
                format!("{one:.0}"),
                ratio(one, append),
                ratio(one, overwrite),
                ">= 0.3x".into(),
                verdict(one >= 0.3 * append),
            ],
            vec![
                "(b) store cycles/s, 8 threads".into(),
                format!("{eight:.0}"),
                ratio(eight, append),
                ratio(eight, overwrite),
                ">= 1.0x".into(),
                verdict(eight >= append),
            ],
        ],
    );
    Ok(())
}

/// 4 KiB write + fdatasync per operation: appending to a new file, and overwriting blocks already written.
fn fsync_ceiling(dir: &Path) -> anyhow::Result<(f64, f64)> {
    let block = vec![0x5au8; 4096];
    let path = dir.join("ceiling");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let began = Instant::now();
    for _ in 0..CEILING_OPS {
        file.write_all(&block)?;
        file.sync_data()?;
    }
    let append = CEILING_OPS as f64 / began.elapsed().as_secs_f64();
    let began = Instant::now();
    for i in 0..CEILING_OPS {
        file.write_all_at(&block, (i * 4096) as u64)?;
        file.sync_data()?;
    }
    let overwrite = CEILING_OPS as f64 / began.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok((append, overwrite))
}

/// Cycles per second with `threads` threads, each enqueueing, claiming and finishing its own jobs.
fn store_cycles(dir: &Path, threads: usize) -> anyhow::Result<f64> {
    let path = dir.join(format!("store-{threads}.redb"));
    let (store, _) = RedbJobStore::open(&path, StoreOptions::default())?;
    let store = Arc::new(store);
    let deadline = Instant::now() + Duration::from_secs_f64(STORE_SECS);
    let began = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let runner = format!("bench-{t}");
                let mut cycles = 0;
                while Instant::now() < deadline {
                    store.enqueue(NewJob {
                        operation: "bench".into(),
                        executor: Executor::Runner,
                        request: serde_json::json!({"command": ["true"]}),
                        target_runner_id: Some(runner.clone()),
                        project_id: None,
                        submission_key: None,
                        max_attempts: None,
                    })?;
                    let claimed = store
                        .claim(ClaimRequest {
                            runner_id: runner.clone(),
                            project_id: None,
                            lease_ms: 30_000,
                        })?
                        .ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
                    let actor = Actor::Runner {
                        runner_id: runner.clone(),
                        claim_id: claimed.job.claim_id.clone().unwrap_or_default(),
                    };
                    store.finish(&claimed.job.id, &actor, JobResult::default())?;
                    cycles += 1;
                }
                Ok(cycles)
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w
            .join()
            .map_err(|_| anyhow::anyhow!("bench thread panicked"))??;
    }
    Ok(total as f64 / began.elapsed().as_secs_f64())
}
