//! Several `homeboy-broker` processes serving one queue from one real PostgreSQL database: a runner paired
//! through one broker authenticates at the other, an enqueue at one wakes a claim long poll at the other,
//! a follower at one sees the events posted at the other in order, lease expiry is swept once; the
//! database going away answers 503 `store.unavailable` and nothing acknowledged is lost; its password is
//! never shown; and a torture run (two brokers, four runners, brokers killed with SIGKILL, the database
//! crashed and restarted) loses and repeats nothing.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use homeboy_e2e::{
    Bounded, Broker, Home, Http, PgStore, Runner, assert_gap_free, describe, haystack, messages,
    wait_exit, wait_until,
};
use homeboy_pg_harness::{Cluster, TEST_SETTINGS};
use serde_json::{Value, json};

/// Two brokers on one database, each with its own home (config dir), and a client.
struct Pair {
    a: Broker,
    b: Broker,
    home_a: Home,
    home_b: Home,
    http: Http,
}

impl Pair {
    fn start(store: &PgStore) -> Pair {
        let home_a = Home::with_store(store);
        let home_b = Home::with_store(store);
        let a = Broker::start(&home_a, &[]);
        let b = Broker::start(&home_b, &[]);
        Pair {
            a,
            b,
            home_a,
            home_b,
            http: Http::new(),
        }
    }

    fn submit(&self, broker: &Broker, token: &str, command: &[&str]) -> String {
        let r = self.http.post_auth(
            &format!("{}/runner/jobs", broker.url),
            token,
            &json!({"runner_id": "lab", "command": command}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["data"]["job"]["id"].as_str().unwrap().to_string()
    }
}

fn get(http: &Http, url: &str) -> Value {
    let r = http.get(url);
    assert_eq!(
        r.status,
        200,
        "GET {url}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["data"].clone()
}

fn claim_waiters(http: &Http, broker: &Broker) -> u64 {
    get(http, &format!("{}/runtime/jobs", broker.url))["claim_waiters"]
        .as_u64()
        .expect("claim_waiters")
}

/// The job's events as stored, checked gap-free from 1 to its `last_sequence`.
fn gap_free_events(http: &Http, broker: &Broker, id: &str) -> (Value, Vec<Value>) {
    let job = get(http, &format!("{}/jobs/{id}", broker.url))["job"].clone();
    let events = get(http, &format!("{}/jobs/{id}/events?limit=1000", broker.url))["events"]
        .as_array()
        .cloned()
        .expect("events");
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(job["events_dropped"], 0, "{job}");
    assert_eq!(
        sequences,
        (1..=job["last_sequence"].as_u64().unwrap()).collect::<Vec<_>>(),
        "gap in {id}"
    );
    (job, events)
}

#[test]
fn two_brokers_share_credentials_queue_wakeups_events_and_sweeps() {
    let store = PgStore::new("two_brokers");
    let p = Pair::start(&store);
    // Paired through A's host, used at B; listed and revoked through B's.
    let work = p.home_a.pair("lab", "work");
    let submit = p.home_a.pair("lab", "submit");
    let doomed = p.home_a.pair("lab", "work");
    let session = p.http.post_auth(
        &format!("{}/runner/sessions", p.b.url),
        &work,
        &json!({"runner_id": "lab", "controller_id": "ci"}),
    );
    assert_eq!(
        session.status,
        200,
        "{}",
        String::from_utf8_lossy(&session.body)
    );
    let sessions = Cluster::shared()
        .sql(
            &store.database,
            "SELECT count(*) FROM homeboy_runner_sessions",
        )
        .unwrap();
    assert_eq!(sessions.trim(), "1", "the session is in the database");
    let listed = p
        .home_b
        .homeboy_json(&["runner", "broker", "list", "--format", "json"]);
    let credentials = listed["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 3, "{listed}");
    let doomed_id = credentials[2]["id"].as_str().unwrap();
    let claim_at = |broker: &Broker, token: &str| {
        p.http.post_auth(
            &format!("{}/runner/jobs/claim", broker.url),
            token,
            &json!({"runner_id": "lab"}),
        )
    };
    assert_eq!(claim_at(&p.a, &doomed).status, 200);
    p.home_b
        .homeboy_ok(&["runner", "broker", "revoke", doomed_id]);
    for broker in [&p.a, &p.b] {
        let refused = claim_at(broker, &doomed);
        assert_eq!(refused.status, 401, "a revoke at B holds at every broker");
        assert_eq!(
            refused.json()["error"]["details"]["reason"],
            "unknown_token"
        );
    }

    // A claim long-polling at B is woken by an enqueue at A.
    let poll_url = format!("{}/runner/jobs/claim", p.b.url);
    let poll_token = work.clone();
    let poller = std::thread::spawn(move || {
        let http = Http::new();
        let r = http.post_auth(
            &poll_url,
            &poll_token,
            &json!({"runner_id": "lab", "wait_ms": 25_000, "lease_ms": 60_000}),
        );
        (r.status, r.json(), Instant::now())
    });
    assert!(
        wait_until(Duration::from_secs(10), || claim_waiters(&p.http, &p.b)
            == 1),
        "the long poll never parked at B"
    );
    let enqueued_at = Instant::now();
    let id = p.submit(&p.a, &submit, &["true"]);
    let (status, claimed, answered_at) = poller.join().unwrap();
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(
        claimed["data"]["claim"]["job"]["id"],
        id.as_str(),
        "{claimed}"
    );
    let woken = answered_at.duration_since(enqueued_at);
    assert!(
        woken < Duration::from_secs(5),
        "B's long poll was not woken by A's enqueue (answered after {woken:?}, waits 25 s)"
    );
    let claim_id = claimed["data"]["claim"]["job"]["claim_id"]
        .as_str()
        .unwrap()
        .to_string();

    // A follower at A sees the events B takes, in order, until the job ends.
    let mut follower = p
        .home_a
        .command("homeboy")
        .args([
            "jobs", "events", &id, "--follow", "--format", "json", "--daemon", &p.a.url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut posted = Vec::new();
    for batch in 0..10 {
        let items: Vec<Value> = (0..20)
            .map(|i| {
                let line = format!("line-{batch}-{i}");
                posted.push(line.clone());
                json!({"kind": "stdout", "message": line})
            })
            .collect();
        let r = p.http.post_auth(
            &format!("{}/runner/jobs/{id}/events", p.b.url),
            &work,
            &json!({"runner_id": "lab", "claim_id": claim_id, "events": items}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let finish = p.http.post_auth(
        &format!("{}/runner/jobs/{id}/finish", p.b.url),
        &work,
        &json!({"runner_id": "lab", "claim_id": claim_id, "result": {"exit_code": 0}}),
    );
    assert_eq!(
        finish.status,
        200,
        "{}",
        String::from_utf8_lossy(&finish.body)
    );
    let exit = wait_exit(&mut follower, Duration::from_secs(30));
    let out = std::process::Output {
        status: exit,
        stdout: read_all(follower.stdout.take()),
        stderr: read_all(follower.stderr.take()),
    };
    assert!(out.status.success(), "{}", describe(&out));
    let followed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event per line"))
        .collect();
    assert_gap_free(&followed, "the follower at A");
    assert_eq!(messages(&followed, "stdout"), posted);
    assert_eq!(followed.last().unwrap()["data"]["status"], "succeeded");
    let (_, stored) = gap_free_events(&p.http, &p.a, &id);
    assert_eq!(stored.len(), followed.len());

    // `homeboy jobs` answers the same at either broker.
    for broker in [&p.a, &p.b] {
        let shown = p.home_a.homeboy_json(&[
            "jobs",
            "show",
            &id,
            "--daemon",
            &broker.url,
            "--format",
            "json",
        ]);
        assert_eq!(shown["job"]["status"], "succeeded", "{shown}");
    }

    // An expired lease is requeued once, though both brokers sweep every second.
    let id = p.submit(&p.b, &submit, &["true"]);
    let short = p.http.post_auth(
        &format!("{}/runner/jobs/claim", p.a.url),
        &work,
        &json!({"runner_id": "lab", "lease_ms": 200}),
    );
    assert_eq!(short.json()["data"]["claim"]["job"]["id"], id.as_str());
    assert!(
        wait_until(Duration::from_secs(15), || {
            get(&p.http, &format!("{}/jobs/{id}", p.b.url))["job"]["status"] == "queued"
        }),
        "the expired claim was not swept"
    );
    // Give both sweepers several more rounds before counting.
    let sweeps_after = Instant::now() + Duration::from_millis(2500);
    wait_until(Duration::from_secs(5), || Instant::now() >= sweeps_after);
    let (job, events) = gap_free_events(&p.http, &p.a, &id);
    let requeues = events
        .iter()
        .filter(|e| e["data"]["reason"] == "claim_expired")
        .count();
    assert_eq!(requeues, 1, "{events:?}");
    assert_eq!(job["status"], "queued");
}

fn read_all(pipe: Option<impl std::io::Read>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    bytes
}

/// `homeboy-broker` with a password inside `--store`: it works, and the password shows up nowhere — not
/// in the banner, the log, a refusal, or `migrate`'s output. A schema newer than the binary is refused
/// at start with exit code 3 and one line.
#[test]
fn the_store_password_is_never_shown_and_a_newer_schema_is_refused() {
    let cluster = Cluster::shared();
    let store = PgStore::new("password_in_url");
    let password = cluster.password().to_string();
    let with_password = store
        .url
        .replacen("://homeboy@", &format!("://homeboy:{password}@"), 1);
    assert_ne!(with_password, store.url);
    let home = Home::new();
    let migrated = home
        .command("homeboy-broker")
        .args(["migrate", "--store", &with_password])
        .output_bounded()
        .unwrap();
    assert!(migrated.status.success(), "{}", describe(&migrated));
    let migrate_text = describe(&migrated);
    assert!(
        migrate_text.contains("schema version 0 -> "),
        "{migrate_text}"
    );
    let broker = Broker::start(&home, &["--store", &with_password]);
    let token = home.homeboy_ok(&[
        "runner",
        "broker",
        "pair",
        "--runner-id",
        "lab",
        "--scopes",
        "work",
        "--store",
        &with_password,
        "--format",
        "json",
    ]);
    let token: Value = serde_json::from_str(&token).unwrap();
    let http = Http::new();
    let claim = http.post_auth(
        &format!("{}/runner/jobs/claim", broker.url),
        token["token"].as_str().unwrap(),
        &json!({"runner_id": "lab"}),
    );
    assert_eq!(
        claim.status, 200,
        "the broker authenticates against the database"
    );
    // Refusals: a malformed string, an unreachable database, a wrong password.
    let mut refusals = Vec::new();
    for (url, code) in [
        (
            format!("postgres://homeboy:{password}@127.0.0.1:notaport/x"),
            2,
        ),
        (format!("postgres://homeboy:{password}@127.0.0.1:1/x"), 1),
        (
            store
                .url
                .replacen("://homeboy@", "://homeboy:wrong-password@", 1),
            1,
        ),
    ] {
        let out = home
            .command("homeboy-broker")
            .args(["--addr", "127.0.0.1:0", "--store", &url])
            .output_bounded()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
        let text = describe(&out);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim().lines().count(),
            1,
            "one line: {text}"
        );
        refusals.push(text);
    }
    let listed = home.homeboy_ok(&["runner", "broker", "list", "--store", &with_password]);
    let mut haystacks = vec![migrate_text, haystack(&broker.log), listed];
    haystacks.extend(refusals);
    haystacks.push(
        String::from_utf8_lossy(&http.get(&format!("{}/health", broker.url)).body).into_owned(),
    );
    for hay in &haystacks {
        assert!(!hay.contains(&password), "the password leaked: {hay}");
    }
    drop(broker);

    cluster
        .sql(
            &store.database,
            "INSERT INTO homeboy_schema_migrations (version, name) VALUES (999, 'from the future')",
        )
        .unwrap();
    let started = Instant::now();
    let out = home
        .command("homeboy-broker")
        .args(["--addr", "127.0.0.1:0", "--store", &with_password])
        .output_bounded()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("schema version 999") && stderr.contains("newer"),
        "{stderr}"
    );
    assert!(!stderr.contains(&password), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The database goes away under a running broker: requests answer 503 `store.unavailable` at once (an
/// envelope, not a hang, not a 500); when it is back the broker reconnects on its own and every
/// acknowledged job is there.
#[test]
fn a_lost_database_answers_503_and_nothing_acknowledged_is_lost() {
    let cluster = Cluster::start(TEST_SETTINGS).expect("a private cluster");
    let store = PgStore::on(&cluster, "lost_database");
    let p = Pair::start(&store);
    let submit = p.home_a.pair("lab", "submit");
    let acknowledged: Vec<String> = (0..20)
        .map(|i| p.submit(&p.a, &submit, &["echo", &format!("job-{i}")]))
        .collect();
    cluster.stop().unwrap();
    for (method, url, body) in [
        ("GET", format!("{}/jobs?limit=5", p.a.url), None),
        ("GET", format!("{}/jobs/{}", p.b.url, acknowledged[0]), None),
        (
            "POST",
            format!("{}/runner/jobs", p.a.url),
            Some(json!({"runner_id": "lab", "command": ["true"]})),
        ),
    ] {
        let started = Instant::now();
        let r = match body {
            Some(body) => p.http.post_auth(&url, &submit, &body),
            None => p.http.request(method, &url, &[], None),
        };
        assert_eq!(
            r.status,
            503,
            "{method} {url}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.json()["error"]["code"],
            "store.unavailable",
            "{method} {url}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "{method} {url} took {:?}",
            started.elapsed()
        );
    }
    cluster.start_again().unwrap();
    for broker in [&p.a, &p.b] {
        assert!(
            wait_until(Duration::from_secs(30), || {
                p.http.get(&format!("{}/jobs?limit=1", broker.url)).status == 200
            }),
            "{} did not reconnect",
            broker.url
        );
    }
    for id in &acknowledged {
        let job = get(&p.http, &format!("{}/jobs/{id}", p.b.url));
        assert_eq!(job["job"]["status"], "queued", "{id}");
    }
}

/// Two brokers, four `homeboy runner work` processes (two per broker), 2,000 jobs submitted through
/// both brokers; broker A is killed with SIGKILL three times mid-run (each time while runners hold claims)
/// and restarted, and the database is crashed and restarted once (`pg_ctl restart -m immediate`). Every
/// acknowledged job succeeds exactly once, its events are gap-free, and its one result came under its last
/// claim (no finish from an expired claim was accepted).
#[test]
fn torture_two_brokers_kills_and_a_database_restart_lose_nothing() {
    const JOBS: usize = 2000;
    let cluster = Cluster::start(TEST_SETTINGS).expect("a private cluster");
    let store = PgStore::on(&cluster, "torture");
    let mut p = Pair::start(&store);
    let work = p.home_a.pair("lab", "work");
    let submit = p.home_a.pair("lab", "submit");
    let mut acknowledged = Vec::new();
    for i in 0..JOBS {
        let broker = if i % 2 == 0 { &p.a } else { &p.b };
        acknowledged.push(p.submit(broker, &submit, &["echo", &format!("job-{i}")]));
    }
    let runners: Vec<Runner> = (0..4)
        .map(|i| {
            let (home, broker) = if i % 2 == 0 {
                (&p.home_a, &p.a)
            } else {
                (&p.home_b, &p.b)
            };
            Runner::start(home, &broker.url, "lab", &work, &["--concurrency", "2"])
        })
        .collect();
    let counts = |p: &Pair| -> Option<(usize, usize)> {
        let count = |status: &str| p.http.count_jobs(&p.b.url, status);
        Some((count("queued")?, count("running")?))
    };
    // Kill A at these numbers of jobs taken, restart the database at the second.
    for (step, threshold) in [JOBS * 15 / 100, JOBS * 45 / 100, JOBS * 75 / 100]
        .into_iter()
        .enumerate()
    {
        let mut seen = None;
        assert!(
            wait_until(Duration::from_secs(120), || {
                seen = counts(&p);
                seen.is_some_and(|(queued, _)| queued <= JOBS - threshold)
            }),
            "progress stalled before {threshold} jobs ({seen:?})"
        );
        assert!(
            wait_until(Duration::from_secs(30), || counts(&p)
                .is_some_and(|(queued, running)| queued > 0 && running > 0)),
            "nothing was running before step {step}"
        );
        p.a.crash();
        if step == 1 {
            cluster.restart().expect("pg_ctl restart -m immediate");
        }
        p.a.restart(&p.home_a);
    }
    assert!(
        wait_until(Duration::from_secs(180), || counts(&p) == Some((0, 0))),
        "jobs were left unfinished: {:?}",
        counts(&p)
    );
    drop(runners);
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for (i, id) in acknowledged.iter().enumerate() {
        let broker = if i % 2 == 0 { &p.b } else { &p.a };
        let (job, events) = gap_free_events(&p.http, broker, id);
        *statuses
            .entry(job["status"].as_str().unwrap().to_string())
            .or_default() += 1;
        homeboy_e2e::assert_finished_once(id, &events, &format!("job-{i}"));
        // The result was recorded under the claim the job finished with: the last claim taken.
        let last_claim = events
            .iter()
            .filter(|e| e["kind"] == "status" && e["data"]["status"] == "running")
            .count();
        assert_eq!(
            job["attempt"].as_u64().unwrap() as usize,
            last_claim,
            "{id}: {events:?}"
        );
    }
    assert_eq!(statuses.get("succeeded"), Some(&JOBS), "{statuses:?}");
    for log in [&p.a.log, &p.b.log] {
        assert!(
            !haystack(log).contains(cluster.password()),
            "the password leaked"
        );
    }
}
