//! The end-to-end test harness: a throwaway homeboy home (config and data dirs in a temp dir), the real
//! binaries from this build, and a plain HTTP client for talking to them on loopback.
//!
//! Everything here runs real processes on real sockets; nothing is mocked. Nothing here passes vacuously:
//! a body that cannot be read is an error (never an empty body), every wait on a process is bounded
//! ([`banner`], [`wait_exit`], [`reap`]), and a leak scan reads its files through [`haystack`], which
//! first proves they exist and hold something.

pub mod cdp;
pub mod origin;
pub mod pty;
mod store;

pub use store::{Backend, PgStore};

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The path of a workspace binary built alongside this test (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests through `cargo test --workspace` so the binaries are built",
        path.display()
    );
    path
}

/// A private homeboy home: config and data dirs under one temp dir, cleaned up (daemon included) on drop.
pub struct Home {
    dir: tempfile::TempDir,
    /// Environment every command of this home gets (the job store of a PostgreSQL home).
    env: Vec<(String, String)>,
    /// The PostgreSQL job store of this home, if it has one.
    pg: Option<PgStore>,
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Home {
    pub fn new() -> Self {
        Home {
            dir: tempfile::Builder::new()
                .prefix("homeboy-e2e-")
                .tempdir()
                .expect("temp dir"),
            env: Vec::new(),
            pg: None,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn config_dir(&self) -> PathBuf {
        self.root().join("config")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }
    pub fn state_file(&self) -> PathBuf {
        self.config_dir().join("daemon/state.json")
    }

    /// A command for binary `name` with this home's environment and nothing inherited that could change
    /// its behaviour.
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(bin(name));
        cmd.env("HOMEBOY_CONFIG_DIR", self.config_dir())
            .env("HOMEBOY_DATA_DIR", self.data_dir())
            .env("HOME", self.root())
            .env_remove("HOMEBOY_BUILD_ID_OVERRIDE")
            .env_remove("HOMEBOY_ARTIFACT_ROOT")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HOMEBOY_JOB_STORE_URL")
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            // No desktop keychain of the machine: a test that wants one starts its own Secret Service.
            .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
            .env_remove("DISPLAY");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs `homeboy <args>` to completion (bounded).
    pub fn homeboy(&self, args: &[&str]) -> Output {
        self.command("homeboy")
            .args(args)
            .output_bounded()
            .expect("run homeboy")
    }

    /// Runs `homeboy <args>`, asserts success, returns stdout.
    pub fn homeboy_ok(&self, args: &[&str]) -> String {
        let out = self.homeboy(args);
        assert!(
            out.status.success(),
            "homeboy {args:?} failed:\n{}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `homeboy <args>` (which must include `--format json`), asserts success, parses stdout.
    pub fn homeboy_json(&self, args: &[&str]) -> Value {
        let stdout = self.homeboy_ok(args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("homeboy {args:?}: {e}\n{stdout}"))
    }

    /// The state file's content, if any.
    pub fn state(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.state_file()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Starts the background daemon and returns its base URL.
    pub fn start_daemon(&self) -> String {
        let v = self.homeboy_json(&["daemon", "start", "--format", "json"]);
        format!("http://{}", v["status"]["addr"].as_str().expect("addr"))
    }
}

impl Home {
    /// Pids of live `homeboy daemon serve` processes whose environment points at this home and whose
    /// command line contains `also` (`""` for every one).
    pub fn daemon_processes(&self, also: &str) -> Vec<u64> {
        let needle = format!("HOMEBOY_CONFIG_DIR={}", self.config_dir().display());
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u64>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let ours = environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes());
            if ours && cmdline.contains("daemon serve") && cmdline.contains(also) && pid_alive(pid)
            {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Home {
    /// The state file of the daemon kept apart for `addr` (`homeboy daemon start --addr 127.0.0.1:PORT`).
    pub fn state_file_at(&self, addr: &str) -> PathBuf {
        let addr: std::net::SocketAddr = addr.parse().expect("an address");
        self.config_dir()
            .join("daemon")
            .join(format!("{}-{}", addr.ip(), addr.port()))
            .join("state.json")
    }

    /// Every state file of this home: the default daemon's and each per-address daemon's.
    fn state_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.state_file()];
        if let Ok(entries) = std::fs::read_dir(self.config_dir().join("daemon")) {
            files.extend(
                entries
                    .flatten()
                    .map(|e| e.path().join("state.json"))
                    .filter(|p| p.is_file()),
            );
        }
        files
    }
}

impl Home {
    /// Whether process `pid` is one of this home's: its environment names this home's config dir (every
    /// command a home starts has it, and so has whatever those start), or it works inside the home. Pids
    /// wrap quickly here (`pid_max` 32768 while one end-to-end run forks some 28,000 processes), so a pid or
    /// process group recorded earlier is signalled only while this holds: otherwise it may be anyone's now.
    pub fn owns_process(&self, pid: u32) -> bool {
        let needle = format!("HOMEBOY_CONFIG_DIR={}", self.config_dir().display());
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())
            || std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| cwd.starts_with(self.root()))
    }

    /// SIGKILL to process group `pgid` when something in it is this home's ([`Home::owns_process`]).
    pub fn kill_own_group(&self, pgid: u32) {
        let members = homeboy_process::group_members(pgid).unwrap_or_default();
        if members.iter().any(|pid| self.owns_process(*pid)) {
            homeboy_process::signal_group(pgid, homeboy_process::ProcessSignal::KILL);
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // Never leave a daemon behind, whatever the test did (per-address daemons included).
        for file in self.state_files() {
            let pid = std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .and_then(|s| s["pid"].as_u64())
                .filter(|pid| self.owns_process(*pid as u32));
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

/// Stdout, stderr and status of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The first line `child` prints on stdout (its banner), read within `limit`; panics naming `what`
/// otherwise (after killing the child). The rest of its stdout is drained, so it never blocks on a full pipe.
pub fn banner(child: &mut Child, limit: Duration, what: &str) -> String {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line).map(|_| line);
        let _ = sender.send(read);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    match receiver.recv_timeout(limit) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => panic!("{what}: reading its banner failed: {e}"),
        Err(_) => {
            reap(child);
            panic!("{what} printed no banner within {limit:?}")
        }
    }
}

/// Waits for `child` to exit within `limit`; kills it and panics otherwise.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            reap(child);
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long a command run through [`Bounded::output_bounded`] may take.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// `Command::output` with a bound: the command is killed, and the test fails, if it has not exited and
/// closed its output within [`COMMAND_LIMIT`].
pub trait Bounded {
    fn output_bounded(&mut self) -> std::io::Result<Output> {
        self.output_within(COMMAND_LIMIT)
    }
    /// Like `output_bounded`, with another bound.
    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output>;
}

impl Bounded for Command {
    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output> {
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let collect = |pipe: Option<Box<dyn Read + Send>>| {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                let _ = sender.send(bytes);
            });
            receiver
        };
        let stdout = collect(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = collect(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + limit;
        let status = wait_exit(&mut child, limit);
        let read = |receiver: std::sync::mpsc::Receiver<Vec<u8>>, name: &str| {
            receiver
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("the command exited but its {name} stayed open"))
        };
        Ok(Output {
            status,
            stdout: read(stdout, "stdout"),
            stderr: read(stderr, "stderr"),
        })
    }
}

/// Kills `child` if it still runs and collects it, waiting at most 10 s (for drop paths: never panics).
pub fn reap(child: &mut Child) {
    let _ = child.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("process {} could not be reaped within 10 s", child.id());
}

/// The content of a file a leak scan searches, after proving the haystack is real: the file exists and
/// is not empty (a scan of a missing or empty file would pass whatever leaked).
pub fn haystack(path: &Path) -> String {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("leak scan: {} cannot be read: {e}", path.display()));
    assert!(
        !bytes.is_empty(),
        "leak scan: {} is empty, so scanning it proves nothing",
        path.display()
    );
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A response: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A blocking HTTP client (ureq) that reports every status instead of failing on 4xx/5xx.
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Sends a request with optional extra headers and body. A failure to connect, send, or read the whole
    /// body fails the test.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        self.try_request(method, url, headers, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Http::request`], with transport failures (including a body cut short) as an error.
    pub fn try_request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, String> {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let result = match body {
            Some(bytes) => self
                .agent
                .run(builder.body(bytes.to_vec()).expect("request")),
            None => self.agent.run(builder.body(()).expect("request")),
        };
        let mut resp = result.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| {
                format!("{method} {url}: reading the body of the {status} response: {e}")
            })?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    pub fn get(&self, url: &str) -> Response {
        self.request("GET", url, &[], None)
    }

    pub fn post_json(&self, url: &str, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).expect("json");
        self.request(
            "POST",
            url,
            &[("content-type", "application/json")],
            Some(&bytes),
        )
    }
}

/// A `homeboy-broker` process on a loopback port of this home, killed on drop.
pub struct Broker {
    pub url: String,
    pub addr: String,
    child: Option<std::process::Child>,
    pub log: PathBuf,
    extra_args: Vec<String>,
}

impl Broker {
    /// Starts a broker on a free port.
    pub fn start(home: &Home, extra_args: &[&str]) -> Broker {
        Self::start_at(home, "127.0.0.1:0", extra_args)
    }

    /// Starts a broker on `addr`.
    pub fn start_at(home: &Home, addr: &str, extra_args: &[&str]) -> Broker {
        Self::start_on(
            home,
            addr,
            extra_args.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn start_on(home: &Home, addr: &str, extra_args: Vec<String>) -> Broker {
        let log = home
            .root()
            .join(format!("broker-{}.log", std::process::id()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("broker log");
        let mut child = home
            .command("homeboy-broker")
            // Every request logged (the leak scans of the broker's log then cover the request lines).
            .env(
                "HOMEBOY_LOG",
                "info,homeboy_daemon=debug,homeboy_http=debug",
            )
            .arg("--addr")
            .arg(addr)
            .args(&extra_args)
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start homeboy-broker");
        let line = banner(&mut child, Duration::from_secs(60), "homeboy-broker");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| {
                panic!(
                    "broker did not start: {line:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        let addr = url.trim_start_matches("http://").to_string();
        Broker {
            url,
            addr,
            child: Some(child),
            log,
            extra_args,
        }
    }

    /// `kill -9` the broker (no shutdown work at all).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            reap(&mut child);
        }
    }

    /// Starts the broker again on the same address and store.
    pub fn restart(&mut self, home: &Home) {
        self.crash();
        let mut again = Self::start_on(home, &self.addr.clone(), self.extra_args.clone());
        self.child = again.child.take();
    }

    /// The broker's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.crash();
    }
}

/// A `homeboy runner work` process, stopped on drop. Its stderr goes to `log`.
pub struct Runner {
    child: std::process::Child,
    pub log: PathBuf,
}

impl Runner {
    /// Starts `homeboy runner work` against `broker_url` with `token` in `HOMEBOY_BROKER_TOKEN`.
    pub fn start(
        home: &Home,
        broker_url: &str,
        runner_id: &str,
        token: &str,
        extra_args: &[&str],
    ) -> Runner {
        let log = home
            .root()
            .join(format!("runner-{runner_id}-{}.log", fastrand_suffix()));
        let stderr = std::fs::File::create(&log).expect("runner log");
        let workspace = home.root().join("workspaces").join(runner_id);
        let child = home
            .command("homeboy")
            .args([
                "runner",
                "work",
                "--broker",
                broker_url,
                "--runner-id",
                runner_id,
            ])
            .arg("--workspace")
            .arg(&workspace)
            .args(extra_args)
            .env("HOMEBOY_BROKER_TOKEN", token)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start homeboy runner work");
        Runner { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the runner process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Once reaped (by `exited`), its pid may be anyone's.
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = wait_until(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten().is_some()
        });
        reap(&mut self.child);
    }
}

fn fastrand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Home {
    /// Pairs a broker credential through the CLI and returns the token.
    pub fn pair(&self, runner_id: &str, scopes: &str) -> String {
        let v = self.homeboy_json(&[
            "runner",
            "broker",
            "pair",
            "--runner-id",
            runner_id,
            "--scopes",
            scopes,
            "--format",
            "json",
        ]);
        v["token"].as_str().expect("token").to_string()
    }
}

impl Http {
    /// How many jobs the broker or daemon at `base` lists with `status`, counted through every page of
    /// `GET /jobs` (`None` while it does not answer 200, e.g. while it is down).
    pub fn count_jobs(&self, base: &str, status: &str) -> Option<usize> {
        let mut total = 0;
        let mut cursor = String::new();
        loop {
            let r = self.get(&format!("{base}/jobs?status={status}&limit=1000{cursor}"));
            if r.status != 200 {
                return None;
            }
            let data = &r.json()["data"];
            total += data["jobs"].as_array().map_or(0, Vec::len);
            match data["next_cursor"].as_u64() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return Some(total),
            }
        }
    }

    /// POST JSON with `Authorization: Bearer <token>`.
    pub fn post_auth(&self, url: &str, token: &str, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).expect("json");
        let auth = format!("Bearer {token}");
        self.request(
            "POST",
            url,
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            Some(&bytes),
        )
    }
}

/// A git repository in a temp dir, with git isolated from the machine's configuration
/// (`GIT_CONFIG_NOSYSTEM`, a private HOME, a local user name and email).
pub struct GitRepo {
    pub dir: PathBuf,
    home: PathBuf,
}

impl GitRepo {
    /// `git init -b main` in `dir` (created).
    pub fn init(dir: &Path) -> GitRepo {
        std::fs::create_dir_all(dir).expect("repo dir");
        let home = dir.with_extension("git-home");
        std::fs::create_dir_all(&home).expect("git home");
        let repo = GitRepo {
            dir: dir.to_path_buf(),
            home,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Homeboy E2E"]);
        repo.git(&["config", "user.email", "e2e@example.invalid"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    /// Runs git in the repository, asserting success; returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.home)
            .output_bounded()
            .expect("git is installed (apt-get install git)");
        assert!(out.status.success(), "git {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Writes `file` (parents created).
    pub fn write(&self, file: &str, text: &str) {
        let path = self.dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Writes and commits `file`; returns the new HEAD.
    pub fn commit(&self, file: &str, text: &str, message: &str) -> String {
        self.write(file, text);
        self.git(&["add", file]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

impl Home {
    /// Declares component `app`: a git checkout under `<home>/app` whose `lint` tool copies `sarif` to
    /// `out/lint.sarif` (its findings; `out` is its artifact directory), prints `linted` and exits with
    /// `exit_code`.
    pub fn lint_component(&self, sarif: &str, exit_code: i32) -> GitRepo {
        let repo = GitRepo::init(&self.root().join("app"));
        repo.commit("src/lib.rs", "fn a() {}\n// TODO\npanic!();\n", "code");
        repo.write("reports/lint.sarif", sarif);
        let lint = format!(
            "mkdir -p out && cp reports/lint.sarif out/lint.sarif && echo linted && exit {exit_code}"
        );
        let tools = serde_json::json!({"tools": {"lint": {"command": ["sh", "-c", lint],
            "artifacts": "out", "findings": {"format": "sarif", "path": "out/lint.sarif"}}}});
        let dir = repo.dir.to_str().expect("utf-8 path").to_string();
        self.homeboy_ok(&[
            "component",
            "add",
            "app",
            "--path",
            &dir,
            "--json",
            &tools.to_string(),
        ]);
        repo
    }
}

/// Asserts that `events` (job events as JSON) are numbered 1, 2, 3, … with no gap and no repeat.
pub fn assert_gap_free(events: &[Value], what: &str) {
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().expect("an event sequence"))
        .collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "{what}: events out of order or with gaps"
    );
}

/// The messages of the events of `kind` (stdout, stderr, ...), in order.
pub fn messages<'a>(events: &'a [Value], kind: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["message"].as_str().expect("an event message"))
        .collect()
}

/// Asserts that job `id` finished exactly once (one `result` event, whose stdout contains `marker`) and that
/// its result came under its last claim: nothing but status events follows it (a finish from an expired
/// claim would have been refused, or would be followed by another attempt's events).
pub fn assert_finished_once(id: &str, events: &[Value], marker: &str) {
    let results: Vec<&Value> = events.iter().filter(|e| e["kind"] == "result").collect();
    assert_eq!(
        results.len(),
        1,
        "job {id} finished {} times; its events: {:?}",
        results.len(),
        events
            .iter()
            .map(|e| format!("{} {} {}", e["sequence"], e["kind"], e["message"]))
            .collect::<Vec<_>>()
    );
    assert!(
        results[0]["data"]["stdout"]
            .as_str()
            .is_some_and(|out| out.contains(marker)),
        "{id}: {results:?}"
    );
    let after: Vec<&Value> = events
        .iter()
        .skip_while(|e| e["kind"] != "result")
        .skip(1)
        .collect();
    assert!(
        after.iter().all(|e| e["kind"] == "status"),
        "{id}: {after:?}"
    );
}
