//! git, through the `git` program and its porcelain output: a checkout's status (branch, head, upstream
//! ahead/behind, dirty and untracked counts), its changes (uncommitted files, and the commits since the
//! upstream, else since the last tag, else all of them), and the plumbing stacks need (`rev-parse`,
//! `merge-base --is-ancestor`, `cherry`, `rev-list --count`, `merge-tree --write-tree`).
//!
//! Every call runs `git -C <checkout>` with `LC_ALL=C`, `GIT_OPTIONAL_LOCKS=0` (a status never takes the
//! index lock from under an editor), no terminal prompts, and without inherited `GIT_DIR`-style variables.
//! Each call is bounded by [`GIT_TIMEOUT`]: a git that hangs (a hook, an fsmonitor, a dead network mount)
//! is stopped with its process group and reported as a failed git call on that component.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::ComponentError;

/// How long one git command may run.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this many commits are listed as changes.
pub const MAX_COMMITS: usize = 100;

/// Variables that would point git somewhere else than the checkout we name.
const GIT_LOCATION_VARS: [&str; 6] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
];

/// A git checkout at a known path.
#[derive(Debug, Clone)]
pub struct Checkout {
    path: PathBuf,
    timeout: Duration,
}

/// A checkout's state and changes: the contract's types.
pub use homeboy_api::components::{ChangedFile, Changes, Commit, GitStatus, Since};

impl Checkout {
    /// The checkout of `component` at `path`: a clear error when the path is missing or not in a git
    /// checkout.
    pub fn open(component: &str, path: &Path) -> Result<Checkout, ComponentError> {
        if !path.exists() {
            return Err(ComponentError::PathMissing {
                component: component.to_string(),
                path: path.to_path_buf(),
            });
        }
        let checkout = Checkout {
            path: path.to_path_buf(),
            timeout: GIT_TIMEOUT,
        };
        let out = checkout.output(&["rev-parse", "--is-inside-work-tree"])?;
        if !out.status.success() || String::from_utf8_lossy(&out.stdout).trim() != "true" {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let detail = stderr
                .lines()
                .map(|l| l.trim_start_matches("fatal: ").trim())
                .find(|l| !l.is_empty())
                .unwrap_or("not inside a work tree")
                .to_string();
            return Err(ComponentError::NotACheckout {
                component: component.to_string(),
                path: path.to_path_buf(),
                detail,
            });
        }
        Ok(checkout)
    }

    /// The checkout's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&self.path)
            .args(args)
            .env("LC_ALL", "C")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null());
        for var in GIT_LOCATION_VARS {
            cmd.env_remove(var);
        }
        cmd
    }

    /// The same checkout with another bound on each git call (tests, slow mounts).
    pub fn with_timeout(mut self, timeout: Duration) -> Checkout {
        self.timeout = timeout;
        self
    }

    /// Runs git and returns its output whatever the exit status; a git still running after the timeout is
    /// stopped with its process group and reported as failed.
    pub fn output(&self, args: &[&str]) -> Result<Output, ComponentError> {
        let failed = |message: String| ComponentError::Git {
            command: args.join(" "),
            message,
        };
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        homeboy_process::new_process_group(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ComponentError::GitMissing
            } else {
                failed(e.to_string())
            }
        })?;
        let stdout = child.stdout.take().map(read_all);
        let stderr = child.stderr.take().map(read_all);
        let pgid = child.id();
        let (exited, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exited.send(child.wait());
        });
        let status = match exit.recv_timeout(self.timeout) {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => {
                homeboy_process::terminate_group(pgid, Duration::from_secs(1));
                return Err(failed(format!(
                    "timed out after {} s",
                    self.timeout.as_secs_f64()
                )));
            }
        };
        let collect = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
            reader.and_then(|r| r.join().ok()).unwrap_or_default()
        };
        Ok(Output {
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        })
    }

    /// Runs git, requiring success; returns stdout.
    pub fn run(&self, args: &[&str]) -> Result<String, ComponentError> {
        let out = self.output(args)?;
        if !out.status.success() {
            return Err(git_failure(args, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The checkout's status.
    pub fn status(&self) -> Result<GitStatus, ComponentError> {
        let text = self.run(&["status", "--porcelain=v2", "--branch", "-z"])?;
        Ok(parse_status(&text).0)
    }

    /// Uncommitted files and the commits since the upstream, the last tag, or the first commit.
    pub fn changes(&self) -> Result<Changes, ComponentError> {
        let text = self.run(&["status", "--porcelain=v2", "--branch", "-z"])?;
        let (status, files) = parse_status(&text);
        if status.head.is_none() {
            return Ok(Changes {
                files,
                since: Since {
                    kind: "root".into(),
                    reference: None,
                },
                commits: Vec::new(),
                commits_truncated: false,
            });
        }
        let (since, range) = match &status.upstream {
            Some(upstream) => (
                Since {
                    kind: "upstream".into(),
                    reference: Some(upstream.clone()),
                },
                "@{upstream}..HEAD".to_string(),
            ),
            None => match self.last_tag()? {
                Some(tag) => (
                    Since {
                        kind: "tag".into(),
                        reference: Some(tag.clone()),
                    },
                    format!("refs/tags/{tag}..HEAD"),
                ),
                None => (
                    Since {
                        kind: "root".into(),
                        reference: None,
                    },
                    "HEAD".to_string(),
                ),
            },
        };
        let max = format!("--max-count={}", MAX_COMMITS + 1);
        let log = self.run(&[
            "log",
            &max,
            "--format=%H%x1f%s%x1f%an%x1f%aI%x1e",
            &range,
            "--",
        ])?;
        let mut commits: Vec<Commit> = log
            .split('\u{1e}')
            .filter_map(|record| {
                let record = record.trim_start_matches('\n');
                let mut fields = record.split('\u{1f}');
                let sha = fields.next()?.to_string();
                if sha.is_empty() {
                    return None;
                }
                Some(Commit {
                    sha,
                    subject: fields.next().unwrap_or_default().to_string(),
                    author: fields.next().unwrap_or_default().to_string(),
                    date: fields.next().unwrap_or_default().trim().to_string(),
                })
            })
            .collect();
        let commits_truncated = commits.len() > MAX_COMMITS;
        commits.truncate(MAX_COMMITS);
        Ok(Changes {
            files,
            since,
            commits,
            commits_truncated,
        })
    }

    /// The most recent tag reachable from HEAD.
    fn last_tag(&self) -> Result<Option<String>, ComponentError> {
        let out = self.output(&["describe", "--tags", "--abbrev=0", "HEAD"])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|t| !t.is_empty()))
    }

    /// The commit `rev` names, or `None` if it names none.
    pub fn resolve(&self, rev: &str) -> Result<Option<String>, ComponentError> {
        let spec = format!("{rev}^{{commit}}");
        let out = self.output(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    /// Whether commit `ancestor` is reachable from `descendant`.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, ComponentError> {
        let args = ["merge-base", "--is-ancestor", ancestor, descendant];
        let out = self.output(&args)?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(git_failure(&args, &out)),
        }
    }

    /// `(behind, ahead)`: commits of `upstream` not in `head`, and of `head` not in `upstream`.
    pub fn behind_ahead(&self, upstream: &str, head: &str) -> Result<(u64, u64), ComponentError> {
        let range = format!("{upstream}...{head}");
        let text = self.run(&["rev-list", "--left-right", "--count", &range, "--"])?;
        let mut counts = text.split_whitespace().map(|n| n.parse().unwrap_or(0));
        Ok((counts.next().unwrap_or(0), counts.next().unwrap_or(0)))
    }

    /// Whether every commit of `head` since `base` has an equivalent patch in `upstream` (`git cherry`);
    /// false when there are no such commits.
    pub fn patches_applied(
        &self,
        upstream: &str,
        head: &str,
        base: &str,
    ) -> Result<bool, ComponentError> {
        let text = self.run(&["cherry", upstream, head, base])?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        Ok(!lines.is_empty() && lines.iter().all(|l| l.starts_with('-')))
    }

    /// Merges `theirs` into `ours` in memory (`git merge-tree --write-tree`): `Ok(vec![])` when it merges
    /// cleanly, else the conflicting paths. Nothing in the checkout changes.
    pub fn merge_conflicts(&self, ours: &str, theirs: &str) -> Result<Vec<String>, ComponentError> {
        let args = [
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "-z",
            ours,
            theirs,
        ];
        let out = self.output(&args)?;
        match out.status.code() {
            Some(0) => Ok(Vec::new()),
            Some(1) => {
                let text = String::from_utf8_lossy(&out.stdout);
                // The tree id, then the conflicted paths, NUL-terminated.
                let mut paths: Vec<String> = text
                    .split('\0')
                    .skip(1)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                paths.dedup();
                Ok(paths)
            }
            _ => Err(git_failure(&args, &out)),
        }
    }
}

/// Reads a pipe to its end on its own thread.
fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn git_failure(args: &[&str], out: &Output) -> ComponentError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    ComponentError::Git {
        command: args.join(" "),
        message: stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_string(),
    }
}

/// Parses `git status --porcelain=v2 --branch -z`.
fn parse_status(text: &str) -> (GitStatus, Vec<ChangedFile>) {
    let mut status = GitStatus {
        branch: None,
        detached: false,
        head: None,
        upstream: None,
        ahead: None,
        behind: None,
        dirty: 0,
        untracked: 0,
        conflicted: 0,
        clean: true,
    };
    let mut files = Vec::new();
    let mut records = text.split('\0');
    while let Some(record) = records.next() {
        if let Some(header) = record.strip_prefix("# ") {
            let (key, value) = header.split_once(' ').unwrap_or((header, ""));
            match key {
                "branch.oid" if value != "(initial)" => status.head = Some(value.to_string()),
                "branch.head" if value == "(detached)" => status.detached = true,
                "branch.head" => status.branch = Some(value.to_string()),
                "branch.upstream" => status.upstream = Some(value.to_string()),
                "branch.ab" => {
                    for part in value.split_whitespace() {
                        if let Some(n) = part.strip_prefix('+') {
                            status.ahead = n.parse().ok();
                        } else if let Some(n) = part.strip_prefix('-') {
                            status.behind = n.parse().ok();
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        let kind = record.chars().next();
        match kind {
            Some('1') | Some('2') => {
                let fields: Vec<&str> = record
                    .splitn(if kind == Some('1') { 9 } else { 10 }, ' ')
                    .collect();
                let xy = fields.get(1).copied().unwrap_or("..");
                let path = fields.last().copied().unwrap_or_default().to_string();
                let renamed_from = if kind == Some('2') {
                    records.next().map(str::to_string)
                } else {
                    None
                };
                status.dirty += 1;
                files.push(changed(path, xy, renamed_from));
            }
            Some('u') => {
                let fields: Vec<&str> = record.splitn(11, ' ').collect();
                let xy = fields.get(1).copied().unwrap_or("UU");
                status.conflicted += 1;
                status.dirty += 1;
                files.push(changed(
                    fields.last().copied().unwrap_or_default().to_string(),
                    xy,
                    None,
                ));
            }
            Some('?') => {
                status.untracked += 1;
                files.push(ChangedFile {
                    path: record[2..].to_string(),
                    status: "??".into(),
                    staged: false,
                    unstaged: false,
                    untracked: true,
                    renamed_from: None,
                });
            }
            _ => {}
        }
    }
    status.clean = status.dirty == 0 && status.untracked == 0;
    (status, files)
}

fn changed(path: String, xy: &str, renamed_from: Option<String>) -> ChangedFile {
    let mut chars = xy.chars();
    let x = chars.next().unwrap_or('.');
    let y = chars.next().unwrap_or('.');
    ChangedFile {
        path,
        status: xy.to_string(),
        staged: x != '.',
        unstaged: y != '.',
        untracked: false,
        renamed_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_git_is_stopped_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::tests::Repo::init(dir.path());
        repo.commit("a.txt", "a\n", "init");
        // An fsmonitor hook that never answers makes `git status` wait on it.
        let hook = dir.path().join("hang.sh");
        std::fs::write(&hook, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        repo.git(&["config", "core.fsmonitor", hook.to_str().unwrap()]);
        let checkout = Checkout::open("app", dir.path())
            .unwrap()
            .with_timeout(Duration::from_millis(1500));
        let began = std::time::Instant::now();
        let error = checkout.status().unwrap_err();
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );
        assert!(
            error.to_string().contains("timed out after 1.5 s"),
            "{error}"
        );
        assert_eq!(error.code(), "components.git_failed");
    }

    #[test]
    fn porcelain_v2_parses() {
        let text = "# branch.oid 1234abcd\0# branch.head main\0# branch.upstream origin/main\0\
                    # branch.ab +2 -1\0\
                    1 .M N... 100644 100644 100644 aaa bbb src/lib.rs\0\
                    1 A. N... 000000 100644 100644 000 ccc new file.txt\0\
                    2 R. N... 100644 100644 100644 aaa aaa R100 renamed.rs\0old.rs\0\
                    u UU N... 100644 100644 100644 100644 a b c conflict.rs\0\
                    ? notes.md\0";
        let (status, files) = parse_status(text);
        assert_eq!(status.branch.as_deref(), Some("main"));
        assert_eq!(status.head.as_deref(), Some("1234abcd"));
        assert_eq!(status.upstream.as_deref(), Some("origin/main"));
        assert_eq!((status.ahead, status.behind), (Some(2), Some(1)));
        assert_eq!(
            (status.dirty, status.untracked, status.conflicted),
            (4, 1, 1)
        );
        assert!(!status.clean);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "src/lib.rs",
                "new file.txt",
                "renamed.rs",
                "conflict.rs",
                "notes.md"
            ]
        );
        assert!(files[0].unstaged && !files[0].staged);
        assert!(files[1].staged);
        assert_eq!(files[2].renamed_from.as_deref(), Some("old.rs"));
        assert!(files[4].untracked);

        let (initial, _) = parse_status("# branch.oid (initial)\0# branch.head (detached)\0");
        assert_eq!(initial.head, None);
        assert!(initial.detached && initial.branch.is_none() && initial.clean);
    }
}
