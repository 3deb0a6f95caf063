//! `cargo xtask bench reads`: the observation readers over a store of 10,000 runs and 200,000 findings.
//!
//! `GET /runs?limit=50` and `GET /runs/:id/findings` (a run of 20 findings) through the daemon at 32
//! keep-alive connections (req/s, p50, p99), against the ceiling of the same response: a bare hyper server
//! (`xtask bench-hello --body`) answering the very bytes the daemon answers, at the same concurrency, in
//! interleaved rounds. For orientation it also shows the reads through the transport-free handler
//! in-process (one thread per core calling `Api::handle_json`). Targets: p99 under 5 ms; HTTP ≥ 0.8× the
//! bare server. (A 10 µs handler cannot keep half its in-process rate behind any HTTP server on two cores,
//! whose own floor is about 10 µs a request; the bare server measures that floor in the same run.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use homeboy_config::Paths;
use homeboy_observations::{
    Completion, NewFinding, ObservationStore, Run, RunStatus, StoredArtifact, format_ms, new_id,
};
use homeboy_service::{Api, ApiRequest, DaemonIdentity};
use serde_json::json;

use super::daemon::{start_daemon, start_hello_with, stop_daemon};
use super::report::{median, ratio, table, verdict};
use super::{load, release_bin};

const RUNS: usize = 10_000;
const FINDINGS_PER_RUN: usize = 20;
const CONNECTIONS: usize = 32;
const LOAD_SECS: u64 = 4;
const ROUNDS: usize = 3;

pub fn run() -> anyhow::Result<()> {
    println!("# bench reads (load generator: {})", load::generator_name());
    load::ensure_program("wrk", "wrk");
    let dir = tempfile::tempdir()?;
    let home = dir.path();
    let paths = Paths::at(home.join("config"), home.join("data"));
    let began = Instant::now();
    let probe = fill(&paths)?;
    println!(
        "store: {RUNS} runs, {} findings, written in {:.1} s ({} MiB)",
        RUNS * FINDINGS_PER_RUN,
        began.elapsed().as_secs_f64(),
        std::fs::metadata(paths.observations_store())?.len() / (1024 * 1024)
    );

    let homeboy = release_bin("homeboy");
    let addr = start_daemon(&homeboy, home)?;
    // The in-process handler opens the same file: the store is shared between processes.
    let store = Arc::new(ObservationStore::open(&paths.observations_store())?);
    let api = Arc::new(
        Api::new(
            DaemonIdentity {
                pid: std::process::id(),
                version: "bench".into(),
                build_id: "bench".into(),
                started_at: "bench".into(),
            },
            paths.clone(),
        )
        .with_observations(store),
    );
    let routes = [
        ("GET /runs?limit=50", "/runs?limit=50".to_string()),
        ("GET /runs/:id/findings", format!("/runs/{probe}/findings")),
    ];
    for (_, path) in &routes {
        let answer = api.handle(&ApiRequest::get(path));
        anyhow::ensure!(answer.status == 200, "{path}: {}", answer.body);
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for (name, path) in &routes {
        // The ceiling answers the same bytes the daemon answers for this route.
        let (status, body) = super::daemon::http_get(addr, path)?;
        anyhow::ensure!(status == 200, "{path}: HTTP {status}");
        let body_file = dir.path().join("ceiling-body.json");
        std::fs::write(&body_file, &body)?;
        let (mut bare, bare_addr) = start_hello_with(&["--body", &body_file.to_string_lossy()])?;
        let mut http_runs = Vec::new();
        let mut bare_runs = Vec::new();
        let mut local_runs = Vec::new();
        for _ in 0..ROUNDS {
            http_runs.push(load::run(
                addr,
                path,
                CONNECTIONS,
                Duration::from_secs(LOAD_SECS),
            )?);
            bare_runs.push(load::run(
                bare_addr,
                path,
                CONNECTIONS,
                Duration::from_secs(LOAD_SECS),
            )?);
            local_runs.push(in_process(
                &api,
                path,
                threads,
                Duration::from_secs(LOAD_SECS),
            ));
        }
        let _ = bare.kill();
        let _ = bare.wait();
        let http = load::median_run(&mut http_runs);
        let ceiling = load::median_run(&mut bare_runs);
        let mut local_rps: Vec<f64> = local_runs.iter().map(|r| r.0).collect();
        let mut local_p99: Vec<f64> = local_runs.iter().map(|r| r.1).collect();
        let local_rps = median(&mut local_rps);
        let local_p99 = median(&mut local_p99);
        let p99_ok = http.p99_ms < 5.0;
        let ratio_ok = http.rps >= 0.8 * ceiling.rps;
        verdicts.push((name, p99_ok, ratio_ok));
        rows.push(vec![
            name.to_string(),
            format!("{:.0}", http.rps),
            format!("{:.3}", http.p50_ms),
            format!("{:.3}", http.p99_ms),
            http.errors.to_string(),
            format!("{:.0}", ceiling.rps),
            format!("{:.3}", ceiling.p99_ms),
            ratio(http.rps, ceiling.rps),
            format!("{local_rps:.0}"),
            format!("{local_p99:.3}"),
        ]);
    }
    stop_daemon(&homeboy, home)?;
    table(
        &format!(
            "reads over {RUNS} runs / {} findings: the daemon vs a bare hyper server answering the same bytes, both at {CONNECTIONS} connections (in-process handler on {threads} threads for orientation), median of {ROUNDS} interleaved {LOAD_SECS} s rounds",
            RUNS * FINDINGS_PER_RUN
        ),
        &[
            "route",
            "HTTP req/s",
            "HTTP p50 ms",
            "HTTP p99 ms",
            "errors",
            "bare hyper req/s",
            "bare p99 ms",
            "HTTP / bare",
            "in-process req/s",
            "in-process p99 ms",
        ],
        &rows,
    );
    for (name, p99_ok, ratio_ok) in verdicts {
        println!(
            "{name}: p99 < 5 ms: {}; HTTP >= 0.8x the bare server: {}",
            verdict(p99_ok),
            verdict(ratio_ok)
        );
    }
    Ok(())
}

/// Writes the runs, returns the id of a run in the middle (whose findings are read).
fn fill(paths: &Paths) -> anyhow::Result<String> {
    let store = ObservationStore::open(&paths.observations_store())?;
    let components = ["api", "web", "worker", "docs", "infra"];
    let kinds = ["lint", "test", "audit", "bench"];
    let statuses = [RunStatus::Pass, RunStatus::Fail, RunStatus::Error];
    let start_ms = 1_767_225_600_000u64;
    let mut probe = String::new();
    for batch in 0..(RUNS / 500) {
        let completions: Vec<Completion> = (0..500)
            .map(|i| {
                let n = batch * 500 + i;
                let id = new_id();
                if n == RUNS / 2 {
                    probe = id.clone();
                }
                completion(
                    id,
                    n,
                    components[n % components.len()],
                    kinds[n % kinds.len()],
                    statuses[n % statuses.len()],
                    start_ms + n as u64 * 60_000,
                )
            })
            .collect();
        store.import(completions)?;
    }
    Ok(probe)
}

fn completion(
    id: String,
    n: usize,
    component: &str,
    kind: &str,
    status: RunStatus,
    started_ms: u64,
) -> Completion {
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "owner".into(),
        json!({"pid": 1, "start_time": 1, "process": "daemon"}),
    );
    metadata.insert("tool".into(), json!(format!("homeboy.{kind}")));
    metadata.insert("argv".into(), json!(["cargo", kind, "--all-targets"]));
    metadata.insert(
        "exit_code".into(),
        json!(if status == RunStatus::Pass { 0 } else { 1 }),
    );
    metadata.insert("duration_ms".into(), json!(1000 + n % 5000));
    metadata.insert(
        "findings".into(),
        json!({"format": "sarif", "path": "target/lint.sarif", "total": FINDINGS_PER_RUN,
               "by_severity": {"warning": FINDINGS_PER_RUN - 5, "error": 5}}),
    );
    let run = Run {
        id: id.clone(),
        kind: kind.into(),
        component_id: component.into(),
        rig_id: n.is_multiple_of(3).then(|| "dev".to_string()),
        status,
        started_at: format_ms(started_ms),
        finished_at: Some(format_ms(started_ms + 30_000)),
        command: format!("cargo {kind} --all-targets"),
        cwd: format!("/home/dev/src/{component}"),
        homeboy_version: "0.1.0".into(),
        git_sha: Some(format!("{:040x}", n * 7919)),
        metadata,
        status_note: None,
    };
    let findings = (0..FINDINGS_PER_RUN)
        .map(|f| NewFinding {
            tool: "clippy".into(),
            rule: format!("clippy::rule_{}", f % 7),
            file: Some(format!("src/module_{}.rs", f % 5)),
            line: Some(10 + f as u32 * 3),
            severity: if f < 5 { "error" } else { "warning" }.into(),
            fingerprint: format!("{:032x}", (n * 31 + f) * 2654435761),
            message: format!("finding {f} of run {n}: something worth a look in this function"),
            fixable: f % 2 == 0,
        })
        .collect();
    let artifacts = vec![StoredArtifact {
        id: new_id(),
        run_id: id.clone(),
        kind: "log".into(),
        name: "output.log".into(),
        stored_path: Some(format!("runs/{id}/output.log")),
        source_path: None,
        size_bytes: 1024,
        sha256: format!("{:064x}", n),
        mime: "text/plain".into(),
        created_at: format_ms(started_ms + 30_000),
        note: None,
    }];
    Completion {
        run,
        artifacts,
        findings,
    }
}

/// `threads` threads calling the handler for the serialised answer for `duration`: req/s and p99 ms.
fn in_process(api: &Arc<Api>, path: &str, threads: usize, duration: Duration) -> (f64, f64) {
    let deadline = Instant::now() + duration;
    let began = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let api = api.clone();
            let path = path.to_string();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let answer = api.handle_json(&ApiRequest::get(&path));
                    std::hint::black_box(answer.json);
                    latencies.push(start.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_default())
        .collect();
    let rps = all.len() as f64 / began.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let p99 = all
        .get((all.len() as f64 * 0.99) as usize)
        .copied()
        .unwrap_or(0.0);
    (rps, p99)
}
