//! Secret masking in runner job output, end to end: a real `homeboy-broker`, a real `homeboy runner work`
//! whose server declaration injects the secrets, and jobs that print them in the ways that cut around a
//! line-by-line mask — across the 4 KiB result tail cut and the 16 KiB line cut, one byte per write, as a
//! multi-line PEM key, on stderr, under a sensitive `runner.env` name, and base64/hex encoded.
//!
//! Each test then scans everything the job's output can reach — its events, its result, the runner's and
//! the broker's logs, the broker's store files (`jobs.redb` and its log) — for any fragment of 8 or more
//! characters of the secret (and of the encodings the job printed), after proving each haystack is real.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use homeboy_e2e::{Broker, Home, Http, Runner, haystack, wait_until};
use serde_json::{Value, json};

/// Fragments of this many characters must not leak.
const FRAGMENT: usize = 8;

struct Lab {
    home: Home,
    broker: Broker,
    http: Http,
    submit: String,
    runner: Runner,
}

/// A broker and a runner `lab` whose `servers/lab.json` has the `runner` section `runner` writes (it may
/// write secret files into the home first).
fn lab(runner: impl FnOnce(&Home) -> Value) -> Lab {
    let home = Home::new();
    let runner = runner(&home);
    let servers = home.config_dir().join("servers");
    std::fs::create_dir_all(&servers).unwrap();
    let server =
        json!({"id": "lab", "name": "Lab", "host": "lab.internal", "user": "ci", "runner": runner});
    std::fs::write(servers.join("lab.json"), server.to_string()).unwrap();
    let submit = home.pair("lab", "submit");
    let work = home.pair("lab", "work");
    let broker = Broker::start(&home, &[]);
    let runner = Runner::start(&home, &broker.url, "lab", &work, &[]);
    Lab {
        home,
        broker,
        http: Http::new(),
        submit,
        runner,
    }
}

/// A secret-looking value of `len` characters, different in every run (letters and digits only, so no
/// 8-character window of it turns up by chance in a log or store file).
fn secret(label: &str, len: usize) -> String {
    use sha2::Digest;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::new();
    let mut round = 0u32;
    while out.len() < len {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let digest =
            sha2::Sha256::digest(format!("{label}/{}/{nanos}/{round}", std::process::id()));
        out.extend(
            digest
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char),
        );
        round += 1;
    }
    out.truncate(len);
    out
}

/// Writes a `secret_env` file (mode 0600) holding `value`.
fn secret_file(home: &Home, name: &str, value: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = home.root().join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

impl Lab {
    /// Submits `script` (run by `sh -c`) with these `secret_env_names`, waits for it to end, and returns
    /// the finished job and its events.
    fn run(&self, script: &str, secret_env_names: &[&str]) -> (Value, Vec<Value>) {
        let r = self.http.post_auth(
            &format!("{}/runner/jobs", self.broker.url),
            &self.submit,
            &json!({"runner_id": "lab", "command": ["sh", "-c", script],
                    "secret_env_names": secret_env_names}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["data"]["job"]["id"].as_str().unwrap().to_string();
        let mut job = Value::Null;
        let done = wait_until(Duration::from_secs(60), || {
            job = self.get(&format!("/jobs/{id}"))["job"].clone();
            matches!(job["status"].as_str(), Some("succeeded" | "failed"))
        });
        assert!(done, "job {id} did not finish: {job}");
        let events = self.get(&format!("/jobs/{id}/events?limit=1000"))["events"]
            .as_array()
            .cloned()
            .expect("an events array");
        assert_eq!(job["status"], "succeeded", "{job} {events:?}");
        (job, events)
    }

    fn get(&self, path: &str) -> Value {
        let r = self.http.get(&format!("{}{path}", self.broker.url));
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["data"].clone()
    }

    /// Asserts that no fragment of [`FRAGMENT`] characters of any of `secrets` appears in the job's
    /// events and result, the runner's and broker's logs, or the broker's store files.
    fn assert_no_fragments(&self, job: &Value, events: &[Value], secrets: &[&str]) {
        let mut haystacks = vec![
            ("events".to_string(), serde_json::to_string(events).unwrap()),
            ("job".to_string(), job.to_string()),
            ("runner log".to_string(), haystack(&self.runner.log)),
            ("broker log".to_string(), haystack(&self.broker.log)),
        ];
        for file in ["config/daemon/jobs.redb", "config/daemon/jobs.redb.wal"] {
            haystacks.push((file.to_string(), haystack(&self.home.root().join(file))));
        }
        assert_no_fragments(&haystacks, secrets);
    }
}

/// No window of [`FRAGMENT`] bytes of any secret occurs in any haystack (one pass over each haystack).
fn assert_no_fragments(haystacks: &[(String, String)], secrets: &[&str]) {
    let key = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap());
    let fragments: HashSet<u64> = secrets
        .iter()
        .flat_map(|s| s.as_bytes().windows(FRAGMENT).map(key))
        .collect();
    assert!(
        !fragments.is_empty(),
        "the secrets are too short to scan for"
    );
    for (name, hay) in haystacks {
        if let Some(at) = hay
            .as_bytes()
            .windows(FRAGMENT)
            .position(|w| fragments.contains(&key(w)))
        {
            panic!(
                "a secret fragment leaked into the {name} at byte {at}: {:?}",
                String::from_utf8_lossy(&hay.as_bytes()[at..at + FRAGMENT])
            );
        }
    }
}

fn stream_lines<'a>(events: &'a [Value], kind: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["message"].as_str().unwrap())
        .collect()
}

fn result<'a>(events: &'a [Value], stream: &str) -> &'a str {
    events
        .iter()
        .find(|e| e["kind"] == "result")
        .expect("a result event")["data"][stream]
        .as_str()
        .expect("a result tail")
}

/// The base64 characters of `value` that do not depend on its neighbours when it starts `alignment`
/// bytes into the encoded input.
fn base64_core(value: &str, alignment: usize) -> String {
    let mut input = vec![0u8; alignment];
    input.extend_from_slice(value.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&input);
    let first = (8 * alignment).div_ceil(6);
    encoded[first..(8 * (alignment + value.len())) / 6].to_string()
}

/// The first reproduction: the secret, then 4,080 bytes, so the 4 KiB result tail is cut inside the
/// secret — on stdout and on stderr.
#[test]
fn a_secret_straddling_the_result_tail_cut_never_leaks() {
    let token = secret("tail", 36);
    let lab =
        lab(|home| json!({"secret_env": {"TOK": {"file": secret_file(home, "tok", &token)}}}));
    let (job, events) = lab.run(
        "printf %s \"$TOK\"; head -c 4080 /dev/zero | tr '\\0' x; \
         printf %s \"$TOK\" >&2; head -c 4080 /dev/zero | tr '\\0' x >&2",
        &["TOK"],
    );
    for stream in ["stdout", "stderr"] {
        let tail = result(&events, stream);
        assert!(tail.ends_with(&"x".repeat(4080)), "{stream}: {tail}");
        assert!(tail.len() <= 4096, "{stream}: {}", tail.len());
        assert_eq!(stream_lines(&events, stream).len(), 1, "{stream}");
        assert!(stream_lines(&events, stream)[0].starts_with("[redacted]xxx"));
    }
    lab.assert_no_fragments(&job, &events, &[&token]);
}

/// The second reproduction: 16,370 bytes, then the secret on the same line, so the 16 KiB line cut
/// falls inside the secret — on stdout and on stderr. (More follows on the line, so the masked line is cut
/// too.)
#[test]
fn a_secret_beyond_the_line_cut_never_leaks() {
    let token = secret("line", 36);
    let lab =
        lab(|home| json!({"secret_env": {"TOK": {"file": secret_file(home, "tok", &token)}}}));
    let (job, events) = lab.run(
        "for out in 1 2; do { head -c 16370 /dev/zero | tr '\\0' x; printf %s \"$TOK\"; \
         head -c 100 /dev/zero | tr '\\0' y; echo; } >&$out; done",
        &["TOK"],
    );
    let cut = format!("{}[redacted]yyyy", "x".repeat(16370));
    for stream in ["stdout", "stderr"] {
        assert_eq!(stream_lines(&events, stream), [cut.as_str()], "{stream}");
        assert!(
            result(&events, stream).ends_with(&format!("x[redacted]{}\n", "y".repeat(100))),
            "{stream}"
        );
    }
    lab.assert_no_fragments(&job, &events, &[&token]);
}

/// The secret written one byte per write (paced, so the runner's reads see the pieces apart), on stdout
/// and stderr, amid other output.
#[test]
fn a_secret_written_one_byte_at_a_time_never_leaks() {
    let token = secret("bytes", 36);
    let lab =
        lab(|home| json!({"secret_env": {"TOK": {"file": secret_file(home, "tok", &token)}}}));
    let (job, events) = lab.run(
        "printf 'before '; printf 'before ' >&2; s=\"$TOK\"; \
         while [ -n \"$s\" ]; do r=\"${s#?}\"; c=\"${s%\"$r\"}\"; printf %s \"$c\"; printf %s \"$c\" >&2; \
         s=\"$r\"; sleep 0.01; done; echo ' after'; echo ' after' >&2",
        &["TOK"],
    );
    for stream in ["stdout", "stderr"] {
        assert_eq!(
            stream_lines(&events, stream),
            ["before [redacted] after"],
            "{stream}"
        );
    }
    lab.assert_no_fragments(&job, &events, &[&token]);
}

/// A PEM key from a `secret_env` file: printed whole, with its lines reordered, one line alone on stderr,
/// and base64-encoded (wrapped at 76 columns).
#[test]
fn a_multi_line_secret_never_leaks() {
    let body: Vec<String> = (0..12)
        .map(|i| secret(&format!("pem{i}"), 64))
        .chain([secret("pem-last", 28)])
        .collect();
    let key = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        body.join("\n")
    );
    let lab = lab(
        |home| json!({"secret_env": {"SIGNING_KEY": {"file": secret_file(home, "key.pem", &key)}}}),
    );
    let (job, events) = lab.run(
        "echo begin; printf '%s\\n' \"$SIGNING_KEY\"; echo sorted; printf '%s\\n' \"$SIGNING_KEY\" | sort; \
         printf '%s\\n' \"$SIGNING_KEY\" | sed -n 5p >&2; echo encoded; printf '%s\\n' \"$SIGNING_KEY\" | base64",
        &["SIGNING_KEY"],
    );
    let stdout = stream_lines(&events, "stdout");
    assert_eq!(stdout[..3], ["begin", "[redacted]", "sorted"], "{stdout:?}");
    // The key's 15 lines, sorted: each is masked on its own.
    assert!(
        stdout[3..18].iter().all(|l| *l == "[redacted]"),
        "{stdout:?}"
    );
    assert_eq!(stdout[18], "encoded", "{stdout:?}");
    // Its base64, wrapped at 76 columns: every line is masked (the last keeps what follows the key).
    assert!(stdout.len() > 25, "{stdout:?}");
    for line in &stdout[19..] {
        assert!(
            line.starts_with("[redacted]") || line.len() < 8,
            "{stdout:?}"
        );
    }
    assert_eq!(stream_lines(&events, "stderr"), ["[redacted]"]);
    let encoded = base64_core(&key, 0);
    lab.assert_no_fragments(&job, &events, &[&key, &encoded]);
}

/// A value under a sensitive `runner.env` name is masked as a secret is; a plain one is not. Sensitive means
/// the names credential scanners know (`GITHUB_PAT`) and any value that is a URL with user info.
#[test]
fn a_sensitive_runner_env_value_never_leaks() {
    let token = secret("env", 40);
    let pat = secret("pat", 40);
    let password = secret("dbpw", 24);
    let database_url = format!("postgres://app:{password}@db.internal/app");
    let lab = lab(|_| {
        json!({"env": {"API_TOKEN": token, "GITHUB_PAT": pat, "DATABASE_URL": database_url,
            "PUBLIC_URL": "https://artifacts.example.test"}})
    });
    let (job, events) = lab.run(
        "echo \"token=$API_TOKEN public=$PUBLIC_URL\"; echo \"pat=$GITHUB_PAT db=$DATABASE_URL\"; \
         echo \"$API_TOKEN\" >&2",
        &[],
    );
    assert_eq!(
        stream_lines(&events, "stdout"),
        [
            "token=[redacted] public=https://artifacts.example.test",
            "pat=[redacted] db=[redacted]"
        ]
    );
    assert_eq!(stream_lines(&events, "stderr"), ["[redacted]"]);
    lab.assert_no_fragments(&job, &events, &[&token, &pat, &password]);
}

/// The encodings a shell prints of a sensitive value: base64 at each byte alignment (and URL-safe), hex.
#[test]
fn encodings_of_a_sensitive_value_never_leak() {
    let token = secret("encoded", 40);
    let lab = lab(|_| json!({"env": {"DEPLOY_TOKEN": token}}));
    let (job, events) = lab.run(
        "printf %s \"$DEPLOY_TOKEN\" | base64; echo \"$DEPLOY_TOKEN\" | base64; \
         printf 't=%s\\n' \"$DEPLOY_TOKEN\" | base64; printf 'tok=%s' \"$DEPLOY_TOKEN\" | base64 >&2; \
         printf %s \"$DEPLOY_TOKEN\" | base64 | tr '+/' '-_'; \
         printf %s \"$DEPLOY_TOKEN\" | od -An -v -tx1 | tr -d ' \\n'; echo",
        &[],
    );
    let stdout = stream_lines(&events, "stdout");
    assert_eq!(stdout.len(), 5, "{stdout:?}");
    for line in stdout.iter().chain(&stream_lines(&events, "stderr")) {
        assert!(line.contains("[redacted]"), "{line}");
        assert!(line.len() <= "[redacted]".len() + 8, "{line}");
    }
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    let cores: Vec<String> = (0..3).map(|a| base64_core(&token, a)).collect();
    let url_safe = cores[0].replace('+', "-").replace('/', "_");
    let mut secrets = vec![token.as_str(), hex.as_str(), url_safe.as_str()];
    secrets.extend(cores.iter().map(String::as_str));
    lab.assert_no_fragments(&job, &events, &secrets);
}
