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

use bytes::Bytes;
use homeboy_jobs::{
    Actor, ClaimRequest, Executor, JobResult, JobStore, NewJob, RedbJobStore, StoreOptions,
};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::release_bin;
use super::report::{median, ratio, table, verdict};

const CEILING_OPS: usize = 3000;
const STORE_SECS: f64 = 4.0;
const HTTP_JOBS: usize = 10_000;
const HTTP_RUNNERS: usize = 8;

pub fn run() -> anyhow::Result<()> {
    println!("# bench jobs");
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    // The disk's speed drifts on a shared machine: measure the ceiling between the store runs and take the
    // median, so both see the same disk.
    let mut ceilings = vec![fsync_ceiling(dir.path())?];
    let one = store_cycles(dir.path(), 1)?;
    ceilings.push(fsync_ceiling(dir.path())?);
    let eight = store_cycles(dir.path(), 8)?;
    ceilings.push(fsync_ceiling(dir.path())?);
    let mut appends: Vec<f64> = ceilings.iter().map(|c| c.0).collect();
    let mut overwrites: Vec<f64> = ceilings.iter().map(|c| c.1).collect();
    let (append, overwrite) = (median(&mut appends), median(&mut overwrites));
    println!(
        "ceiling rounds (append ops/s): {}",
        ceilings
            .iter()
            .map(|c| format!("{:.0}", c.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
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
                "(a) 4 KiB write + fdatasync, appending (median of 3)".into(),
                format!("{append:.0}"),
                "1.00x".into(),
                ratio(append, overwrite),
                "-".into(),
                "-".into(),
            ],
            vec![
                "(a) 4 KiB write + fdatasync, overwriting (median of 3)".into(),
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
    let http = http_drain()?;
    table(
        &format!(
            "(c) HTTP end to end: {HTTP_RUNNERS} runner loops draining {HTTP_JOBS} jobs (claim → finish) on a release homeboy-broker"
        ),
        &[
            "measurement",
            "value",
            "ratio to ceiling (append)",
            "ratio to ceiling (overwrite)",
        ],
        &[
            vec![
                "jobs/s".into(),
                format!("{:.0}", http.jobs_per_sec),
                ratio(http.jobs_per_sec, append),
                ratio(http.jobs_per_sec, overwrite),
            ],
            vec![
                "claim p50 ms".into(),
                format!("{:.2}", http.claim_p50_ms),
                "-".into(),
                "-".into(),
            ],
            vec![
                "claim p99 ms".into(),
                format!("{:.2}", http.claim_p99_ms),
                "-".into(),
                "-".into(),
            ],
            vec![
                format!("enqueue of {HTTP_JOBS} jobs (8 submitters), jobs/s"),
                format!("{:.0}", http.enqueue_per_sec),
                ratio(http.enqueue_per_sec, append),
                ratio(http.enqueue_per_sec, overwrite),
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

struct HttpResult {
    jobs_per_sec: f64,
    enqueue_per_sec: f64,
    claim_p50_ms: f64,
    claim_p99_ms: f64,
}

/// Starts a release broker with paired tokens, enqueues the jobs over HTTP, then lets runner loops claim and
/// finish them all, timing every claim.
fn http_drain() -> anyhow::Result<HttpResult> {
    let home = tempfile::tempdir()?;
    let env = |cmd: &mut std::process::Command| {
        cmd.env("HOMEBOY_CONFIG_DIR", home.path().join("config"))
            .env("HOMEBOY_DATA_DIR", home.path().join("data"));
    };
    let pair = |scopes: &str| -> anyhow::Result<String> {
        let mut cmd = std::process::Command::new(release_bin("homeboy"));
        env(&mut cmd);
        let out = cmd
            .args([
                "runner",
                "broker",
                "pair",
                "--runner-id",
                "bench",
                "--scopes",
                scopes,
                "--format",
                "json",
            ])
            .output()?;
        let v: Value = serde_json::from_slice(&out.stdout)?;
        Ok(v["token"].as_str().unwrap_or_default().to_string())
    };
    let (submit, work) = (pair("submit")?, pair("work")?);
    let mut cmd = std::process::Command::new(release_bin("homeboy-broker"));
    env(&mut cmd);
    let mut broker = cmd
        .args(["--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(
            broker
                .stdout
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
        ),
        &mut line,
    )?;
    let addr: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .ok_or_else(|| anyhow::anyhow!("broker did not start: {line}"))?
        .parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async move {
        // Enqueue with 8 concurrent submitters.
        let began = Instant::now();
        let per = HTTP_JOBS / 8;
        let mut submitters = Vec::new();
        for _ in 0..8 {
            let submit = submit.clone();
            submitters.push(tokio::spawn(async move {
                let mut conn = JsonConn::connect(addr).await?;
                for _ in 0..per {
                    let body = json!({"runner_id": "bench", "command": ["true"]});
                    let (status, _) = conn.post("/runner/jobs", &submit, &body).await?;
                    anyhow::ensure!(status == 200, "enqueue answered {status}");
                }
                anyhow::Ok(())
            }));
        }
        for s in submitters {
            s.await??;
        }
        let enqueue_per_sec = (per * 8) as f64 / began.elapsed().as_secs_f64();
        // Drain with 8 runner loops.
        let began = Instant::now();
        let mut loops = Vec::new();
        for _ in 0..HTTP_RUNNERS {
            let work = work.clone();
            loops.push(tokio::spawn(async move {
                let mut conn = JsonConn::connect(addr).await?;
                let mut claim_ms = Vec::new();
                loop {
                    let asked = Instant::now();
                    let (status, claim) = conn.post("/runner/jobs/claim", &work, &json!({"runner_id": "bench"})).await?;
                    anyhow::ensure!(status == 200, "claim answered {status}");
                    claim_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
                    let job = &claim["data"]["claim"]["job"];
                    if job.is_null() {
                        return anyhow::Ok(claim_ms);
                    }
                    let id = job["id"].as_str().unwrap_or_default().to_string();
                    let body = json!({"runner_id": "bench", "claim_id": job["claim_id"], "result": {"exit_code": 0}});
                    let (status, _) = conn.post(&format!("/runner/jobs/{id}/finish"), &work, &body).await?;
                    anyhow::ensure!(status == 200, "finish answered {status}");
                }
            }));
        }
        let mut claims = Vec::new();
        for l in loops {
            claims.extend(l.await??);
        }
        let elapsed = began.elapsed().as_secs_f64();
        claims.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| claims[((claims.len() as f64 * p) as usize).min(claims.len() - 1)];
        anyhow::Ok(HttpResult {
            jobs_per_sec: (per * 8) as f64 / elapsed,
            enqueue_per_sec,
            claim_p50_ms: pct(0.50),
            claim_p99_ms: pct(0.99),
        })
    });
    let _ = broker.kill();
    let _ = broker.wait();
    result
}

/// One keep-alive HTTP/1.1 connection that POSTs JSON with a bearer token.
struct JsonConn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl JsonConn {
    async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<JsonConn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(JsonConn {
            sender,
            host: addr.to_string(),
        })
    }

    async fn post(
        &mut self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let req = hyper::Request::post(path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes)?))
    }
}
