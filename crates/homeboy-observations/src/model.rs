//! The observation store's records and queries: an artifact as stored (and its contract view), findings
//! before they are stored, the filters and pages of the readers, and a run's completion. The run, artifact
//! and finding themselves are the contract's wire types (`homeboy_api::runs`), re-exported here.

use serde::{Deserialize, Serialize};

pub use homeboy_api::runs::{Artifact, Finding, Retrieval, RetrievalMode, Run, RunStatus};

/// An artifact as stored: where its bytes are and what they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredArtifact {
    /// A UUIDv7.
    pub id: String,
    pub run_id: String,
    /// `file`, `findings`, `log`, `metrics`.
    pub kind: String,
    /// The name under the run (a relative path such as `reports/lint.sarif`).
    pub name: String,
    /// Relative to the artifact root when homeboy holds the bytes; `None` for a metadata-only record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_path: Option<String>,
    /// Where the file came from (relative to the component's checkout), for metadata-only records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    pub size_bytes: u64,
    pub sha256: String,
    pub mime: String,
    pub created_at: String,
    /// Why the bytes were not kept, for metadata-only records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl StoredArtifact {
    /// The contract view: `direct_download` when homeboy holds the bytes, `metadata_only` otherwise.
    pub fn view(&self) -> Artifact {
        let held = self.stored_path.is_some();
        let (content_url, fetch_command) = if held {
            let file_name = self.name.rsplit('/').next().unwrap_or(&self.name);
            (
                Some(format!(
                    "/runs/{}/artifacts/{}/content",
                    self.run_id, self.id
                )),
                Some(format!(
                    "homeboy runs artifacts {} --fetch {} --output {}",
                    self.run_id,
                    self.id,
                    shell_word(file_name)
                )),
            )
        } else {
            (None, None)
        };
        Artifact {
            id: self.id.clone(),
            run_id: self.run_id.clone(),
            kind: self.kind.clone(),
            artifact_type: "file".into(),
            path: self
                .stored_path
                .clone()
                .or_else(|| self.source_path.clone())
                .unwrap_or_else(|| self.name.clone()),
            size_bytes: self.size_bytes,
            sha256: self.sha256.clone(),
            mime: self.mime.clone(),
            created_at: self.created_at.clone(),
            content_available: held,
            content_url,
            fetch_command,
            retrieval: Retrieval {
                mode: if held {
                    RetrievalMode::DirectDownload
                } else {
                    RetrievalMode::MetadataOnly
                },
                content_field: None,
            },
            name: self.name.clone(),
            note: self.note.clone(),
        }
    }
}

/// `word` quoted for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./+=,".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A finding before it is stored (the store assigns `id`, `run_id` and `created_at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFinding {
    pub tool: String,
    pub rule: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub severity: String,
    pub fingerprint: String,
    pub message: String,
    pub fixable: bool,
}

/// Filters of the run listing. `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub kind: Option<String>,
    pub component: Option<String>,
    pub rig: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: usize,
    /// Only runs older than this run id (a previous page's `next_cursor`).
    pub cursor: Option<String>,
}

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    pub runs: Vec<Run>,
    pub next_cursor: Option<String>,
}

/// Filters of a run's findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingFilter {
    pub tool: Option<String>,
    pub file: Option<String>,
    pub fingerprint: Option<String>,
    pub limit: usize,
    /// Only findings after this sequence number (a previous page's `next_cursor`).
    pub cursor: Option<u32>,
}

/// One page of findings, in the order they were reported.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingPage {
    pub findings: Vec<Finding>,
    pub next_cursor: Option<u32>,
}

/// The end of a run: its final record and the evidence collected for it, stored in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub run: Run,
    pub artifacts: Vec<StoredArtifact>,
    pub findings: Vec<NewFinding>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_views_carry_the_retrieval_contract() {
        let mut stored = StoredArtifact {
            id: "a1".into(),
            run_id: "r1".into(),
            kind: "file".into(),
            name: "reports/my report.html".into(),
            stored_path: Some("runs/r1/reports/my report.html".into()),
            source_path: Some("out/reports/my report.html".into()),
            size_bytes: 3,
            sha256: "x".into(),
            mime: "text/html".into(),
            created_at: "t".into(),
            note: None,
        };
        let view = serde_json::to_value(stored.view()).unwrap();
        assert_eq!(view["type"], "file");
        assert_eq!(view["content_available"], true);
        assert_eq!(view["retrieval"]["mode"], "direct_download");
        assert_eq!(view["content_url"], "/runs/r1/artifacts/a1/content");
        assert_eq!(
            view["fetch_command"],
            "homeboy runs artifacts r1 --fetch a1 --output 'my report.html'"
        );
        assert_eq!(view["path"], "runs/r1/reports/my report.html");
        stored.stored_path = None;
        let view = serde_json::to_value(stored.view()).unwrap();
        assert_eq!(view["content_available"], false);
        assert_eq!(view["retrieval"]["mode"], "metadata_only");
        assert!(view["content_url"].is_null() && view["fetch_command"].is_null());
        assert_eq!(view["path"], "out/reports/my report.html");
    }
}
