//! `cargo xtask bench jobs`: the job store against the disk's own ceiling, in one run.
//!
//! (a) the ceiling: a loop of 4 KiB write + fdatasync (appending, and overwriting pre-written blocks);
//! (b) store-level enqueue → claim → finish cycles per second, every step durable, with 1 and 8 threads;
//! (c) HTTP end to end: a broker and 8 runner loops draining 10,000 jobs — jobs/s and claim latency.
//! Each is printed as a ratio to (a). Targets: (b) 8 threads ≥ 1.0×, (b) 1 thread ≥ 0.3×.
//! (d) the backlog: enqueue and claim rates with 100,000 jobs queued, as a ratio to an empty queue — at the
//! store, and over HTTP on a release broker (whose analysis executor wakes on every enqueue). Target ≥ 0.8×.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use homeboy_jobs::{JobStore, RedbJobStore, StoreOptions};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::release_bin;
use super::report::{median, ratio, table, verdict};
use super::store_load::{self, BACKLOG, Backlog, MEASURED, ROUNDS, Side};

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
    let at_store = store_backlog(dir.path())?;
    let over_http = http_backlog()?;
    let mut rows = at_store.rows("redb store");
    rows.extend(over_http.rows("redb broker over HTTP (8 clients)"));
    table(
        &format!(
            "(d) backlog: {ROUNDS} alternating rounds of {MEASURED} jobs enqueued, then {MEASURED} claimed, on an empty queue and behind {BACKLOG} queued jobs (filled in {:.0} s / {:.0} s)",
            at_store.fill_secs, over_http.fill_secs
        ),
        &store_load::backlog_header(),
        &rows,
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
    store_load::cycles(Arc::new(store), threads, STORE_SECS)
}

/// The backlog rows at the store: two fresh redb files, one filled with [`BACKLOG`] queued jobs first.
fn store_backlog(dir: &Path) -> anyhow::Result<Backlog> {
    let open = |name: &str| -> anyhow::Result<Arc<dyn JobStore>> {
        let (store, _) = RedbJobStore::open(&dir.join(name), StoreOptions::default())?;
        Ok(Arc::new(store))
    };
    // The fill ends with a durable checkpoint of the file; nothing else to settle.
    let settle = || Ok(());
    store_load::backlog(
        open("backlog-empty.redb")?,
        open("backlog-full.redb")?,
        settle,
    )
}

struct HttpResult {
    jobs_per_sec: f64,
    enqueue_per_sec: f64,
    claim_p50_ms: f64,
    claim_p99_ms: f64,
}

/// A release `homeboy-broker` in a temp home, with a submit token and a work token for runner `bench`.
pub(super) struct Broker {
    child: std::process::Child,
    pub(super) addr: std::net::SocketAddr,
    pub(super) submit: String,
    pub(super) work: String,
    _home: tempfile::TempDir,
}

impl Broker {
    /// Pairs the tokens, fills the broker's job store with `backlog` queued jobs for runner `bench` (at the
    /// store, before the broker opens it), and starts the broker.
    fn start(backlog: usize) -> anyhow::Result<Broker> {
        Self::start_with(backlog, &[])
    }

    /// Like [`Broker::start`] with extra environment for the broker and the pairing command (a PostgreSQL
    /// store: `HOMEBOY_JOB_STORE_URL`, `PGPASSWORD`; its database then holds the tokens).
    pub(super) fn start_with(backlog: usize, extra: &[(&str, String)]) -> anyhow::Result<Broker> {
        let home = tempfile::tempdir()?;
        let config = home.path().join("config");
        let data = home.path().join("data");
        let env = |cmd: &mut std::process::Command| {
            cmd.env("HOMEBOY_CONFIG_DIR", &config)
                .env("HOMEBOY_DATA_DIR", &data)
                .env_remove("HOMEBOY_JOB_STORE_URL");
            for (name, value) in extra {
                cmd.env(name, value);
            }
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
        if backlog > 0 {
            let paths = homeboy_config::Paths::resolve(|name| match name {
                "HOMEBOY_CONFIG_DIR" => Some(config.clone().into_os_string()),
                "HOMEBOY_DATA_DIR" => Some(data.clone().into_os_string()),
                _ => None,
            })?;
            let (store, _) = RedbJobStore::open(&paths.daemon_jobs(), StoreOptions::default())?;
            store_load::enqueue_rate(Arc::new(store), backlog)?;
        }
        let mut cmd = std::process::Command::new(release_bin("homeboy-broker"));
        env(&mut cmd);
        let mut child = cmd
            .args(["--addr", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(
                child
                    .stdout
                    .take()
                    .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
            ),
            &mut line,
        )?;
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .ok_or_else(|| anyhow::anyhow!("broker did not start: {line}"))?
            .parse()?;
        Ok(Broker {
            child,
            addr,
            submit,
            work,
            _home: home,
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Enqueues `jobs` jobs for runner `bench` over HTTP with 8 keep-alive submitters; returns jobs/s.
async fn http_enqueue(
    addr: std::net::SocketAddr,
    submit: &str,
    jobs: usize,
) -> anyhow::Result<f64> {
    let began = Instant::now();
    let mut submitters = Vec::new();
    for s in 0..8 {
        let submit = submit.to_string();
        let mine = jobs / 8 + usize::from(s < jobs % 8);
        submitters.push(tokio::spawn(async move {
            let mut conn = JsonConn::connect(addr).await?;
            for _ in 0..mine {
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
    Ok(jobs as f64 / began.elapsed().as_secs_f64())
}

/// Claims `jobs` jobs over HTTP with 8 keep-alive runner loops (claims only); returns claims/s.
async fn http_claims(addr: std::net::SocketAddr, work: &str, jobs: usize) -> anyhow::Result<f64> {
    let began = Instant::now();
    let mut loops = Vec::new();
    for r in 0..8 {
        let work = work.to_string();
        let mine = jobs / 8 + usize::from(r < jobs % 8);
        loops.push(tokio::spawn(async move {
            let mut conn = JsonConn::connect(addr).await?;
            for _ in 0..mine {
                let body = json!({"runner_id": "bench", "lease_ms": 600_000});
                let (status, claim) = conn.post("/runner/jobs/claim", &work, &body).await?;
                anyhow::ensure!(status == 200, "claim answered {status}");
                anyhow::ensure!(
                    !claim["data"]["claim"]["job"].is_null(),
                    "the queue ran dry"
                );
            }
            anyhow::Ok(())
        }));
    }
    for l in loops {
        l.await??;
    }
    Ok(jobs as f64 / began.elapsed().as_secs_f64())
}

/// The backlog rows over HTTP: a broker on an empty store and one on a store with [`BACKLOG`] queued jobs,
/// both running, measured in alternating rounds.
fn http_backlog() -> anyhow::Result<Backlog> {
    let rt = client_runtime()?;
    let empty = Broker::start(0)?;
    let began = Instant::now();
    let full = Broker::start(BACKLOG)?;
    let fill_secs = began.elapsed().as_secs_f64();
    let pick = |side: Side| match side {
        Side::Empty => &empty,
        Side::Full => &full,
    };
    store_load::rounds(
        fill_secs,
        |side, jobs| {
            let broker = pick(side);
            rt.block_on(http_enqueue(broker.addr, &broker.submit, jobs))
        },
        |side, jobs| {
            let broker = pick(side);
            rt.block_on(http_claims(broker.addr, &broker.work, jobs))
        },
    )
}

/// Starts a release broker with paired tokens, enqueues the jobs over HTTP, then lets runner loops claim and
/// finish them all, timing every claim.
fn http_drain() -> anyhow::Result<HttpResult> {
    let broker = Broker::start(0)?;
    let (addr, submit, work) = (broker.addr, broker.submit.clone(), broker.work.clone());
    let rt = client_runtime()?;
    rt.block_on(async move {
        let enqueue_per_sec = http_enqueue(addr, &submit, HTTP_JOBS).await?;
        let drained = drain(&[addr], &work, HTTP_RUNNERS, HTTP_JOBS).await?;
        anyhow::Ok(HttpResult {
            jobs_per_sec: drained.jobs_per_sec,
            enqueue_per_sec,
            claim_p50_ms: drained.claim_p50_ms,
            claim_p99_ms: drained.claim_p99_ms,
        })
    })
}

/// What a drain measured.
pub(super) struct Drained {
    pub(super) jobs_per_sec: f64,
    pub(super) claim_p50_ms: f64,
    pub(super) claim_p99_ms: f64,
}

/// Enqueues `jobs` over HTTP at the first broker (8 keep-alive submitters); returns jobs/s.
pub(super) async fn enqueue_at(
    addr: std::net::SocketAddr,
    submit: &str,
    jobs: usize,
) -> anyhow::Result<f64> {
    http_enqueue(addr, submit, jobs).await
}

/// `loops` runner loops, spread round-robin over `brokers`, claim and finish until the queue is empty
/// (`jobs` queued before); every claim is timed.
pub(super) async fn drain(
    brokers: &[std::net::SocketAddr],
    work: &str,
    loops: usize,
    jobs: usize,
) -> anyhow::Result<Drained> {
    let began = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..loops {
        let work = work.to_string();
        let addr = brokers[i % brokers.len()];
        tasks.push(tokio::spawn(async move {
            let mut conn = JsonConn::connect(addr).await?;
            let mut claim_ms = Vec::new();
            loop {
                let asked = Instant::now();
                let (status, claim) = conn
                    .post(
                        "/runner/jobs/claim",
                        &work,
                        &json!({"runner_id": "bench"}),
                    )
                    .await?;
                anyhow::ensure!(status == 200, "claim answered {status}");
                claim_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
                let job = &claim["data"]["claim"]["job"];
                if job.is_null() {
                    return anyhow::Ok(claim_ms);
                }
                let id = job["id"].as_str().unwrap_or_default().to_string();
                let body = json!({"runner_id": "bench", "claim_id": job["claim_id"], "result": {"exit_code": 0}});
                let (status, _) = conn
                    .post(&format!("/runner/jobs/{id}/finish"), &work, &body)
                    .await?;
                anyhow::ensure!(status == 200, "finish answered {status}");
            }
        }));
    }
    let mut claims = Vec::new();
    for t in tasks {
        claims.extend(t.await??);
    }
    let elapsed = began.elapsed().as_secs_f64();
    claims.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| claims[((claims.len() as f64 * p) as usize).min(claims.len() - 1)];
    Ok(Drained {
        jobs_per_sec: jobs as f64 / elapsed,
        claim_p50_ms: pct(0.50),
        claim_p99_ms: pct(0.99),
    })
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
