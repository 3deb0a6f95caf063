//! The job queue and the reverse-runner broker end to end: a real `homeboy-broker`, real `homeboy runner
//! work` processes, real child processes, on loopback.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use homeboy_e2e::{Backend, Bounded, Broker, Home, Http, Runner, haystack, pid_alive, wait_until};
use serde_json::{Value, json};

struct Setup {
    home: Home,
    broker: Broker,
    http: Http,
    submit: String,
    work: String,
}

/// The tests below that hold for both job stores, each run once per backend (`broker::redb::<name>`,
/// `broker::postgres::<name>`, a fresh database each). The crash torture is redb's own (it reads the
/// embedded store's recovery log); the PostgreSQL torture is `multi_broker::torture_*`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod redb {
            $(#[test] fn $name() { super::$name(homeboy_e2e::Backend::Redb) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(homeboy_e2e::Backend::Postgres) })*
        }
    };
}

on_both_backends!(
    runners_run_jobs_and_stream_events_in_order,
    a_cancelled_job_loses_its_process_group,
    a_job_finishes_even_when_an_escaped_process_holds_its_output,
    stale_claims_are_refused_and_jobs_requeued,
    the_sweeper_requeues_expired_claims_and_heartbeats_keep_theirs,
    claims_long_poll_until_work_arrives,
    events_follow_streams_until_the_job_ends,
    broker_auth_refusals_and_no_token_leaks,
    unauthenticated_loopback_is_explicit_and_not_for_proxies,
    runner_secrets_resolve_at_execution_and_never_leak,
);

fn setup(extra: &[&str]) -> Setup {
    setup_on(Backend::Redb, extra)
}

fn setup_on(backend: Backend, extra: &[&str]) -> Setup {
    let home = Home::on(backend, "broker");
    let submit = home.pair("lab", "submit");
    let work = home.pair("lab", "work");
    let broker = Broker::start(&home, extra);
    Setup {
        home,
        broker,
        http: Http::new(),
        submit,
        work,
    }
}

impl Setup {
    fn submit(&self, command: &[&str]) -> String {
        let r = self.http.post_auth(
            &format!("{}/runner/jobs", self.broker.url),
            &self.submit,
            &json!({"runner_id": "lab", "command": command}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["data"]["job"]["id"].as_str().unwrap().to_string()
    }

    fn job(&self, id: &str) -> Value {
        let r = self.http.get(&format!("{}/jobs/{id}", self.broker.url));
        assert_eq!(
            r.status,
            200,
            "GET /jobs/{id}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["data"]["job"].clone()
    }

    fn events(&self, id: &str) -> Vec<Value> {
        let r = self
            .http
            .get(&format!("{}/jobs/{id}/events?limit=1000", self.broker.url));
        assert_eq!(
            r.status,
            200,
            "GET /jobs/{id}/events: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["data"]["events"]
            .as_array()
            .cloned()
            .expect("an events array")
    }

    /// Claim long polls parked in the broker right now.
    fn claim_waiters(&self) -> u64 {
        let r = self.http.get(&format!("{}/runtime/jobs", self.broker.url));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["data"]["claim_waiters"]
            .as_u64()
            .expect("claim_waiters")
    }

    fn wait_terminal(&self, id: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        let done = wait_until(timeout, || {
            last = self.job(id);
            matches!(
                last["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        });
        assert!(done, "job {id} did not finish: {last}");
        last
    }
}

fn runners_run_jobs_and_stream_events_in_order(backend: Backend) {
    let s = setup_on(backend, &[]);
    let _runner = Runner::start(
        &s.home,
        &s.broker.url,
        "lab",
        &s.work,
        &["--concurrency", "2"],
    );
    let ok = s.submit(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line-$i; done; echo warn >&2",
    ]);
    let bad = s.submit(&["sh", "-c", "echo failing; exit 3"]);
    let missing = s.submit(&["/definitely/not/a/program"]);

    let job = s.wait_terminal(&ok, Duration::from_secs(30));
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["claimed_by_runner_id"], "lab");
    let events = s.events(&ok);
    homeboy_e2e::assert_gap_free(&events, &ok);
    let stdout = homeboy_e2e::messages(&events, "stdout");
    assert_eq!(
        stdout,
        vec!["line-1", "line-2", "line-3", "line-4", "line-5"]
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "stderr" && e["message"] == "warn")
    );
    let result = events.iter().find(|e| e["kind"] == "result").unwrap();
    assert_eq!(result["data"]["exit_code"], 0);
    assert!(
        result["data"]["stdout"]
            .as_str()
            .unwrap()
            .contains("line-5")
    );
    assert_eq!(events.last().unwrap()["data"]["status"], "succeeded");

    let job = s.wait_terminal(&bad, Duration::from_secs(30));
    assert_eq!(
        (job["status"].as_str(), job["exit_code"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert!(s.events(&bad).iter().any(|e| e["kind"] == "error"));
    let job = s.wait_terminal(&missing, Duration::from_secs(30));
    assert_eq!(
        (job["status"].as_str(), job["exit_code"].as_i64()),
        (Some("failed"), Some(127))
    );

    // The CLI shows the same jobs.
    let table = s
        .home
        .homeboy_ok(&["jobs", "list", "--daemon", &s.broker.url]);
    assert!(
        table.contains(&ok) && table.contains("succeeded") && table.contains("failed"),
        "{table}"
    );
    let shown = s.home.homeboy_json(&[
        "jobs",
        "show",
        &ok,
        "--daemon",
        &s.broker.url,
        "--format",
        "json",
    ]);
    assert_eq!(shown["job"]["id"], ok.as_str());
}

fn a_cancelled_job_loses_its_process_group(backend: Backend) {
    let s = setup_on(backend, &[]);
    let _runner = Runner::start(
        &s.home,
        &s.broker.url,
        "lab",
        &s.work,
        &["--lease-ms", "2000"],
    );
    // The job leaves a grandchild too: cancellation must reach the whole group.
    let id = s.submit(&[
        "sh",
        "-c",
        "sleep 120 & echo $! > grandchild.pid; echo $$ > leader.pid; wait",
    ]);
    let workspace = s.home.root().join("workspaces/lab");
    let read_pid = |name: &str| -> Option<u64> {
        std::fs::read_to_string(workspace.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    assert!(wait_until(Duration::from_secs(20), || read_pid(
        "leader.pid"
    )
    .is_some()
        && read_pid("grandchild.pid").is_some()));
    let (leader, grandchild) = (
        read_pid("leader.pid").unwrap(),
        read_pid("grandchild.pid").unwrap(),
    );
    assert!(pid_alive(leader) && pid_alive(grandchild));
    let out = s
        .home
        .homeboy_ok(&["jobs", "cancel", &id, "--daemon", &s.broker.url]);
    assert!(out.contains("cancelled"), "{out}");
    assert!(
        wait_until(Duration::from_secs(15), || !pid_alive(leader)
            && !pid_alive(grandchild)),
        "the cancelled job's processes survived"
    );
    assert_eq!(s.job(&id)["status"], "cancelled");
}

fn a_job_finishes_even_when_an_escaped_process_holds_its_output(backend: Backend) {
    let s = setup_on(backend, &[]);
    let _runner = Runner::start(
        &s.home,
        &s.broker.url,
        "lab",
        &s.work,
        &["--lease-ms", "2000"],
    );
    // The daemon the job starts leaves the job's process group (setsid) but keeps its stdout.
    let id = s.submit(&[
        "sh",
        "-c",
        "setsid sh -c 'echo $$ > escaped.tmp && mv escaped.tmp escaped.pid; exec sleep 60' & \
         while [ ! -s escaped.pid ]; do sleep 0.05; done; echo started",
    ]);
    /// The escaped process is nobody's child: stop it whatever the assertions say (while it is still
    /// the home's: its pid may be anyone's once it has exited).
    struct KillEscaped<'h>(&'h Home, std::path::PathBuf);
    impl Drop for KillEscaped<'_> {
        fn drop(&mut self) {
            if let Some(pid) = std::fs::read_to_string(&self.1)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .filter(|pid| self.0.owns_process(*pid))
            {
                let _ = std::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
    let _escaped = KillEscaped(&s.home, s.home.root().join("workspaces/lab/escaped.pid"));
    let job = s.wait_terminal(&id, Duration::from_secs(20));
    assert_eq!(job["status"], "succeeded", "{job}");
    let stdout: Vec<String> = s
        .events(&id)
        .iter()
        .filter(|e| e["kind"] == "stdout")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    assert!(stdout.iter().any(|l| l == "started"), "{stdout:?}");
}

fn stale_claims_are_refused_and_jobs_requeued(backend: Backend) {
    let s = setup_on(backend, &[]);
    let id = s.submit(&["true"]);
    let claim = |runner_token: &str, runner: &str, lease: u64| {
        s.http.post_auth(
            &format!("{}/runner/jobs/claim", s.broker.url),
            runner_token,
            &json!({"runner_id": runner, "lease_ms": lease}),
        )
    };
    let first = claim(&s.work, "lab", 300).json();
    let claim_id = first["data"]["claim"]["job"]["claim_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The sweeper puts the job back once the lease has passed.
    let requeued = wait_until(Duration::from_secs(15), || s.job(&id)["status"] == "queued");
    assert!(requeued, "the expired claim was not swept: {}", s.job(&id));
    let finish = s.http.post_auth(
        &format!("{}/runner/jobs/{id}/finish", s.broker.url),
        &s.work,
        &json!({"runner_id": "lab", "claim_id": claim_id, "result": {"exit_code": 0}}),
    );
    assert_eq!(finish.status, 409);
    assert_eq!(finish.json()["error"]["code"], "broker.claim_expired");
    // A new claim is attempt 2.
    let second = claim(&s.work, "lab", 30_000).json();
    assert_eq!(second["data"]["claim"]["job"]["id"], id.as_str());
    assert_eq!(second["data"]["claim"]["job"]["attempt"], 2);
    let events = s.events(&id);
    assert!(
        events
            .iter()
            .any(|e| e["data"]["reason"] == "claim_expired"),
        "{events:?}"
    );
}

/// The background sweeper alone requeues an expired claim (no claim traffic at all, only reads), and a
/// heartbeat keeps its job across the expiry it replaced.
fn the_sweeper_requeues_expired_claims_and_heartbeats_keep_theirs(backend: Backend) {
    let s = setup_on(backend, &[]);
    let kept = s.submit(&["true"]);
    let dropped = s.submit(&["true"]);
    let claim = |lease: u64| {
        let r = s.http.post_auth(
            &format!("{}/runner/jobs/claim", s.broker.url),
            &s.work,
            &json!({"runner_id": "lab", "lease_ms": lease}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["data"]["claim"]["job"].clone()
    };
    // `kept` is claimed first and its lease extended at once; `dropped` is claimed after it, so its expiry
    // comes after `kept`'s old one. When a sweep has requeued `dropped`, that sweep ran after `kept`'s old
    // expiry too.
    let first = claim(2_000);
    assert_eq!(first["id"], kept.as_str());
    let beat = s.http.post_auth(
        &format!("{}/runner/jobs/{kept}/heartbeat", s.broker.url),
        &s.work,
        &json!({"runner_id": "lab", "claim_id": first["claim_id"], "lease_ms": 120_000}),
    );
    assert_eq!(beat.status, 200, "{}", String::from_utf8_lossy(&beat.body));
    let extended_to = beat.json()["data"]["job"]["claim_expires_at_ms"].clone();
    assert!(
        extended_to.as_u64().unwrap() > first["claim_expires_at_ms"].as_u64().unwrap() + 60_000,
        "{beat:?}"
    );
    let second = claim(2_000);
    assert_eq!(second["id"], dropped.as_str());
    assert!(second["claim_expires_at_ms"].as_u64() > first["claim_expires_at_ms"].as_u64());

    // From here on only reads: the sweeper has to do it alone.
    let mut job = Value::Null;
    let swept = wait_until(Duration::from_secs(20), || {
        job = s.job(&dropped);
        job["status"] == "queued"
    });
    assert!(swept, "the sweeper never requeued the expired claim: {job}");
    assert!(
        job["claim_id"].is_null() && job["claim_expires_at_ms"].is_null(),
        "{job}"
    );
    assert!(
        s.events(&dropped)
            .iter()
            .any(|e| e["data"]["reason"] == "claim_expired"),
        "{:?}",
        s.events(&dropped)
    );
    let kept_job = s.job(&kept);
    assert_eq!(kept_job["status"], "running", "{kept_job}");
    assert_eq!(kept_job["claim_id"], first["claim_id"]);
    assert_eq!(kept_job["claim_expires_at_ms"], extended_to);
    assert!(
        !s.events(&kept)
            .iter()
            .any(|e| e["data"]["reason"] == "claim_expired"),
        "{:?}",
        s.events(&kept)
    );
}

fn claims_long_poll_until_work_arrives(backend: Backend) {
    let s = setup_on(backend, &[]);
    let url = format!("{}/runner/jobs/claim", s.broker.url);
    let began = Instant::now();
    let empty = s
        .http
        .post_auth(&url, &s.work, &json!({"runner_id": "lab", "wait_ms": 400}))
        .json();
    assert!(empty["data"]["claim"].is_null());
    assert!(
        began.elapsed() >= Duration::from_millis(350),
        "returned before wait_ms"
    );

    let (work, poll_url) = (s.work.clone(), url.clone());
    assert_eq!(s.claim_waiters(), 0);
    let waiter = std::thread::spawn(move || {
        let began = Instant::now();
        let r = Http::new().post_auth(
            &poll_url,
            &work,
            &json!({"runner_id": "lab", "wait_ms": 10_000}),
        );
        (r.json(), began.elapsed())
    });
    // Enqueue only once the waiter is parked, so it is the wake-up that answers it.
    assert!(
        wait_until(Duration::from_secs(10), || s.claim_waiters() == 1),
        "the long poll never parked"
    );
    let id = s.submit(&["true"]);
    let (claimed, waited) = waiter.join().unwrap();
    assert_eq!(claimed["data"]["claim"]["job"]["id"], id.as_str());
    assert!(
        waited < Duration::from_secs(5),
        "the waiter was not woken: {waited:?}"
    );
    assert_eq!(s.claim_waiters(), 0, "the woken waiter still counts");
    let too_long = s.http.post_auth(
        &url,
        &s.work,
        &json!({"runner_id": "lab", "wait_ms": 60_000}),
    );
    assert_eq!(too_long.status, 400);
}

fn events_follow_streams_until_the_job_ends(backend: Backend) {
    let s = setup_on(backend, &[]);
    let _runner = Runner::start(&s.home, &s.broker.url, "lab", &s.work, &[]);
    let id = s.submit(&[
        "sh",
        "-c",
        "for i in 1 2 3; do echo tick-$i; sleep 0.3; done",
    ]);
    let out = s
        .home
        .command("homeboy")
        .args(["jobs", "events", &id, "--follow", "--daemon", &s.broker.url])
        .output_bounded()
        .unwrap();
    assert!(out.status.success(), "{}", homeboy_e2e::describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let ticks: Vec<&str> = text.lines().filter(|l| l.contains("| tick-")).collect();
    assert_eq!(ticks.len(), 3, "{text}");
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .contains("succeeded"),
        "{text}"
    );

    // Raw SSE for machines.
    let r = s.http.get(&format!(
        "{}/jobs/{id}/events?follow=true&after=0",
        s.broker.url
    ));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("event: stdout") && body.contains("id: 1\n") && body.contains("event: end"),
        "{body}"
    );
    let r = s
        .http
        .get(&format!("{}/jobs/nope/events?follow=true", s.broker.url));
    assert_eq!(r.status, 404);
}

fn broker_auth_refusals_and_no_token_leaks(backend: Backend) {
    let s = setup_on(backend, &[]);
    let other = s.home.pair("other-lab", "work");
    let revoked = s.home.pair("lab", "work");
    let listed = s
        .home
        .homeboy_json(&["runner", "broker", "list", "--format", "json"]);
    let revoked_id = listed["credentials"].as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.home
        .homeboy_ok(&["runner", "broker", "revoke", &revoked_id]);
    let url = format!("{}/runner/jobs/claim", s.broker.url);
    let body = json!({"runner_id": "lab"});
    let mut responses = Vec::new();
    let no_token = s.http.post_json(&url, &body);
    responses.push(no_token);
    for token in [
        "hbk_wrong",
        revoked.as_str(),
        s.submit.as_str(),
        other.as_str(),
    ] {
        responses.push(s.http.post_auth(&url, token, &body));
    }
    let reasons: Vec<String> = responses
        .iter()
        .map(|r| {
            assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.json()["error"]["code"], "broker.auth_denied");
            r.json()["error"]["details"]["reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "missing_token",
            "unknown_token",
            "unknown_token",
            "missing_scope",
            "runner_mismatch"
        ]
    );
    // A good token works, and no token appears anywhere we write.
    assert_eq!(s.http.post_auth(&url, &s.work, &body).status, 200);
    s.submit(&["true"]);
    let list = s.home.homeboy_ok(&["runner", "broker", "list"]);
    let mut haystacks = vec![list];
    for r in &responses {
        haystacks.push(String::from_utf8_lossy(&r.body).into_owned());
    }
    match s.home.pg() {
        None => {
            for file in [
                "config/broker_auth.json",
                "config/daemon/jobs.redb",
                "config/daemon/jobs.redb.wal",
            ] {
                haystacks.push(haystack(&s.home.root().join(file)));
            }
        }
        Some(store) => haystacks.push(store.dump(homeboy_pg_harness::Cluster::shared())),
    }
    let log = haystack(&s.broker.log);
    // The broker logs every request (the harness runs it at debug level): the scan covers those lines.
    assert!(
        log.contains("/runner/jobs/claim") && log.contains("status=401"),
        "no request lines in the broker's log:\n{log}"
    );
    haystacks.push(log);
    for token in [&s.work, &s.submit, &other, &revoked] {
        for hay in &haystacks {
            assert!(!hay.contains(token.as_str()), "a token leaked");
        }
    }
}

fn unauthenticated_loopback_is_explicit_and_not_for_proxies(backend: Backend) {
    let s = setup_on(backend, &["--allow-unauthenticated-loopback"]);
    let r = s.http.post_json(
        &format!("{}/runner/jobs/claim", s.broker.url),
        &json!({"runner_id": "lab"}),
    );
    assert_eq!(r.status, 200);
    let out = s
        .home
        .command("homeboy-broker")
        .args([
            "--addr",
            "127.0.0.1:0",
            "--allow-unauthenticated-loopback",
            "--allowed-host",
            "broker.example.com",
        ])
        .output_bounded()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        homeboy_e2e::describe(&out)
    );
}

/// How many jobs have `status` (`None` while the broker is down).
fn count_jobs(s: &Setup, status: &str) -> Option<usize> {
    s.http.count_jobs(&s.broker.url, status)
}

/// `(runner claims kept, log wraps so far)` of every job store recovery the broker logged.
fn recoveries(log: &std::path::Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(log).expect("the broker log");
    text.lines()
        .filter(|l| l.contains("job store recovered"))
        .map(|l| {
            let number_before = |marker: &str| -> u64 {
                let head = &l[..l
                    .find(marker)
                    .unwrap_or_else(|| panic!("{marker:?} in {l}"))];
                head.rsplit(|c: char| !c.is_ascii_digit())
                    .find(|w| !w.is_empty())
                    .and_then(|w| w.parse().ok())
                    .unwrap_or_else(|| panic!("no number before {marker:?} in {l}"))
            };
            (
                number_before(" runner claims kept"),
                number_before(" times)"),
            )
        })
        .collect()
}

/// 4 runners, 2,000 jobs, the broker killed with SIGKILL three times mid-run — each time while runners hold
/// claims — and restarted on the same store; the log wraps between the kills.
#[test]
fn crash_torture_loses_nothing() {
    let mut s = setup(&[]);
    let mut acknowledged = Vec::new();
    // Each job logs a few KiB (request, output, result), so the 1 MiB log wraps between the kills.
    let padding = "x".repeat(1500);
    for i in 0..2000 {
        acknowledged.push(s.submit(&["echo", &format!("job-{i}"), &padding]));
    }
    let runners: Vec<Runner> = (0..4)
        .map(|_| {
            Runner::start(
                &s.home,
                &s.broker.url,
                "lab",
                &s.work,
                &["--concurrency", "2"],
            )
        })
        .collect();
    for (kill, threshold) in [300usize, 900, 1500].into_iter().enumerate() {
        let mut queued = None;
        assert!(
            wait_until(Duration::from_secs(120), || {
                queued = count_jobs(&s, "queued");
                queued.is_some_and(|q| q <= 2000 - threshold)
            }),
            "progress stalled before {threshold} jobs ({queued:?} queued)"
        );
        assert!(
            queued.unwrap() > 0,
            "kill {kill} came after the queue ran dry"
        );
        // Kill while the runners hold claims: the restarted store reports them kept.
        assert!(
            wait_until(Duration::from_secs(30), || count_jobs(&s, "running")
                .is_some_and(|r| r > 0)),
            "no job was running before kill {kill}"
        );
        s.broker.crash();
        s.broker.restart(&s.home);
        let logged = recoveries(&s.broker.log);
        assert_eq!(logged.len(), kill + 1, "{logged:?}");
        assert!(
            logged[kill].0 > 0,
            "kill {kill} landed while no runner held a claim: {logged:?}"
        );
    }
    // The log filled and restarted between the kills, so each recovery replayed a log that had wrapped.
    let logged = recoveries(&s.broker.log);
    assert!(logged[0].1 > 0, "the log never wrapped: {logged:?}");
    assert!(
        logged.windows(2).all(|w| w[1].1 > w[0].1),
        "the log did not wrap between kills: {logged:?}"
    );
    assert!(
        wait_until(Duration::from_secs(180), || count_jobs(&s, "queued")
            == Some(0)
            && count_jobs(&s, "running") == Some(0)),
        "jobs were left unfinished"
    );
    drop(runners);
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for (i, id) in acknowledged.iter().enumerate() {
        let job = s.job(id);
        assert!(!job.is_null(), "acknowledged job {id} was lost");
        *statuses
            .entry(job["status"].as_str().unwrap().to_string())
            .or_default() += 1;
        let events = s.events(id);
        let sequences: Vec<u64> = events
            .iter()
            .map(|e| e["sequence"].as_u64().unwrap())
            .collect();
        let dropped = job["events_dropped"].as_u64().unwrap();
        assert_eq!(dropped, 0);
        assert_eq!(
            sequences,
            (1..=job["last_sequence"].as_u64().unwrap()).collect::<Vec<_>>(),
            "gap in {id}"
        );
        homeboy_e2e::assert_finished_once(id, &events, &format!("job-{i}"));
    }
    assert_eq!(statuses.get("succeeded"), Some(&2000), "{statuses:?}");
}

fn runner_secrets_resolve_at_execution_and_never_leak(backend: Backend) {
    let s = setup_on(backend, &[]);
    let secret = "sk-test-9f8e7d6c5b4a3e2d";
    let file_secret = "file-secret-0a1b2c3d4e5f";
    let secret_file = s.home.root().join("service-token");
    std::fs::write(&secret_file, format!("{file_secret}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let servers = s.home.config_dir().join("servers");
    std::fs::create_dir_all(&servers).unwrap();
    let server = json!({
        "id": "lab", "name": "Lab", "host": "lab.internal", "user": "ci",
        "runner": {
            "env": {"PUBLIC_URL": "https://artifacts.example.test"},
            "secret_env": {
                "API_TOKEN": {"env": "LAB_API_TOKEN_SOURCE"},
                "SERVICE_TOKEN": {"file": secret_file.to_str().unwrap()}
            }
        }
    });
    std::fs::write(servers.join("lab.json"), server.to_string()).unwrap();
    let runner = {
        let mut cmd = s.home.command("homeboy");
        cmd.env("LAB_API_TOKEN_SOURCE", secret);
        let log = s.home.root().join("secret-runner.log");
        let child = cmd
            .args([
                "runner",
                "work",
                "--broker",
                &s.broker.url,
                "--runner-id",
                "lab",
            ])
            .arg("--workspace")
            .arg(s.home.root().join("ws"))
            .env("HOMEBOY_BROKER_TOKEN", &s.work)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (child, log)
    };
    // The job proves it got the values without ever naming them, and prints them (to be masked).
    let check = "[ \"$(printf %s \"$API_TOKEN$SERVICE_TOKEN\" | sha256sum | cut -c1-16)\" = \"$EXPECTED\" ] && echo \"token=$API_TOKEN file=$SERVICE_TOKEN public=$PUBLIC_URL\"";
    let expected = {
        use std::io::Write;
        let mut child = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{secret}{file_secret}").as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()[..16].to_string()
    };
    let r = s.http.post_auth(
        &format!("{}/runner/jobs", s.broker.url),
        &s.submit,
        &json!({"runner_id": "lab", "command": ["sh", "-c", check], "env": {"EXPECTED": expected},
                "secret_env_names": ["API_TOKEN", "SERVICE_TOKEN"]}),
    );
    let ok = r.json()["data"]["job"]["id"].as_str().unwrap().to_string();
    let r = s.http.post_auth(
        &format!("{}/runner/jobs", s.broker.url),
        &s.submit,
        &json!({"runner_id": "lab", "command": ["true"], "secret_env_names": ["NOT_CONFIGURED"]}),
    );
    let missing = r.json()["data"]["job"]["id"].as_str().unwrap().to_string();

    let job = s.wait_terminal(&ok, Duration::from_secs(30));
    assert_eq!(
        job["status"],
        "succeeded",
        "the job did not see its secrets: {:?}",
        s.events(&ok)
    );
    let events = s.events(&ok);
    let line = events.iter().find(|e| e["kind"] == "stdout").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        line,
        "token=[redacted] file=[redacted] public=https://artifacts.example.test"
    );
    let job = s.wait_terminal(&missing, Duration::from_secs(30));
    assert_eq!(job["status"], "failed");
    let problem = s
        .events(&missing)
        .iter()
        .find(|e| e["kind"] == "error")
        .unwrap()["message"]
        .clone();
    assert!(
        problem.as_str().unwrap().contains("NOT_CONFIGURED"),
        "{problem}"
    );

    let (mut child, log) = runner;
    homeboy_e2e::reap(&mut child);
    let mut outputs = vec![
        haystack(&log),
        haystack(&s.broker.log),
        serde_json::to_string(&events).unwrap(),
        s.http
            .get(&format!("{}/jobs/{ok}", s.broker.url))
            .json()
            .to_string(),
        s.home.homeboy_ok(&["runner", "status", "lab"]),
        s.home
            .homeboy_ok(&["jobs", "events", &ok, "--daemon", &s.broker.url]),
    ];
    match s.home.pg() {
        None => {
            for file in ["config/daemon/jobs.redb", "config/daemon/jobs.redb.wal"] {
                outputs.push(haystack(&s.home.root().join(file)));
            }
        }
        Some(store) => outputs.push(store.dump(homeboy_pg_harness::Cluster::shared())),
    }
    for out in &outputs {
        assert!(
            !out.contains(secret) && !out.contains(file_secret),
            "a secret value leaked"
        );
    }
}
