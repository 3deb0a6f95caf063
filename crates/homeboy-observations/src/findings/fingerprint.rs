//! Stable finding fingerprints: the same finding in two runs gets the same fingerprint, so runs can be
//! compared by fingerprint (new, fixed, unchanged).
//!
//! The recipe (version 1). SHA-256 over, separated by NUL bytes:
//!
//! 1. `homeboy-finding-v1`, the tool name, the rule id, and the file path relative to the checkout;
//! 2. an anchor, the first that applies:
//!    - the tool's own fingerprints (SARIF `partialFingerprints`, `key=value` lines sorted by key);
//!    - for a test failure, the test's identity (`classname::name`);
//!    - otherwise the message — trimmed, whitespace collapsed, every run of digits replaced by `0` (so
//!      "3 unused imports at line 12" survives renumbering) — followed by the text of the reported source
//!      line, trimmed and whitespace-collapsed, when that line can be read from the checkout.
//!
//! The line *number* is never part of it: moving unrelated code up or down leaves fingerprints alone, and
//! editing the flagged line itself changes it. Findings whose inputs are identical within one report (the
//! same message on two identical lines of a file) are numbered in report order and the number is hashed in
//! from the second one on. The fingerprint is the first 32 hex digits of the digest.

use std::collections::HashMap;
use std::io::Read;

use sha2::{Digest, Sha256};

use super::{Anchor, RawFinding, SourceContext};
use crate::artifact_path::open_beneath;
use crate::model::NewFinding;

/// Source files larger than this are not read for line text.
const MAX_SOURCE_BYTES: u64 = 4 * 1024 * 1024;

/// Fingerprints every finding of one report.
pub fn assign(raw: Vec<RawFinding>, context: &SourceContext) -> Vec<NewFinding> {
    let mut sources = SourceLines::new(context);
    let mut seen: HashMap<[u8; 32], u32> = HashMap::new();
    raw.into_iter()
        .map(|finding| {
            let base = base_digest(&finding, &mut sources);
            let occurrence = seen.entry(base).or_insert(0);
            let digest = if *occurrence == 0 {
                base
            } else {
                let mut hasher = Sha256::new();
                hasher.update(base);
                hasher.update(format!("#{occurrence}"));
                hasher.finalize().into()
            };
            *occurrence += 1;
            NewFinding {
                fingerprint: hex::encode(&digest[..16]),
                tool: finding.tool,
                rule: finding.rule,
                file: finding.file,
                line: finding.line,
                severity: finding.severity,
                message: finding.message,
                fixable: finding.fixable,
            }
        })
        .collect()
}

fn base_digest(finding: &RawFinding, sources: &mut SourceLines<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [
        "homeboy-finding-v1",
        &finding.tool,
        &finding.rule,
        finding.file.as_deref().unwrap_or(""),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    match &finding.anchor {
        Anchor::Provided(fingerprints) => {
            hasher.update(b"provided\0");
            hasher.update(fingerprints.as_bytes());
        }
        Anchor::Test(id) => {
            hasher.update(b"test\0");
            hasher.update(id.as_bytes());
        }
        Anchor::Message => {
            hasher.update(b"message\0");
            hasher.update(normalise_message(&finding.message).as_bytes());
            hasher.update([0]);
            if let (Some(file), Some(line)) = (&finding.file, finding.line)
                && let Some(text) = sources.line(file, line)
            {
                hasher.update(text.as_bytes());
            }
        }
    }
    hasher.finalize().into()
}

/// Trimmed, whitespace collapsed, digit runs replaced by `0`.
pub fn normalise_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_digits = false;
    for word in message.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push('0');
                }
                in_digits = true;
            } else {
                out.push(c);
                in_digits = false;
            }
        }
        in_digits = false;
    }
    out
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lines of checkout files, read once per report, only from inside the checkout.
struct SourceLines<'a> {
    context: &'a SourceContext,
    files: HashMap<String, Option<Vec<String>>>,
}

impl<'a> SourceLines<'a> {
    fn new(context: &'a SourceContext) -> Self {
        SourceLines {
            context,
            files: HashMap::new(),
        }
    }

    fn line(&mut self, file: &str, line: u32) -> Option<String> {
        let checkout = self.context.checkout.as_deref()?;
        let lines = self
            .files
            .entry(file.to_string())
            .or_insert_with(|| read_lines(checkout, file));
        let text = lines.as_ref()?.get((line as usize).checked_sub(1)?)?;
        Some(collapse(text))
    }
}

fn read_lines(checkout: &std::path::Path, file: &str) -> Option<Vec<String>> {
    let opened = open_beneath(checkout, file).ok()?;
    if opened.metadata().ok()?.len() > MAX_SOURCE_BYTES {
        return None;
    }
    let mut bytes = Vec::new();
    opened.take(MAX_SOURCE_BYTES).read_to_end(&mut bytes).ok()?;
    Some(
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn raw(message: &str, line: u32) -> RawFinding {
        RawFinding {
            tool: "clippy".into(),
            rule: "unused".into(),
            file: Some("src/lib.rs".into()),
            line: Some(line),
            severity: "warning".into(),
            message: message.into(),
            fixable: false,
            anchor: Anchor::Message,
        }
    }

    #[test]
    fn messages_normalise() {
        assert_eq!(
            normalise_message("  3 unused\timports at line 12 "),
            "0 unused imports at line 0"
        );
        assert_eq!(normalise_message("v1.2"), "v0.0");
    }

    #[test]
    fn moving_unrelated_lines_keeps_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let context = SourceContext::checkout(dir.path());
        std::fs::write(
            dir.path().join("src/lib.rs"),
            "fn a() {}\nlet x = 1;\nlet y = 2;\n",
        )
        .unwrap();
        let before = assign(vec![raw("unused x", 2), raw("unused y", 3)], &context);
        std::fs::write(
            dir.path().join("src/lib.rs"),
            "// a new comment\n\nfn a() {}\nlet x = 1;\nlet y = 2;\n",
        )
        .unwrap();
        let after = assign(vec![raw("unused x", 4), raw("unused y", 5)], &context);
        assert_eq!(before[0].fingerprint, after[0].fingerprint);
        assert_eq!(before[1].fingerprint, after[1].fingerprint);
        assert_ne!(before[0].fingerprint, before[1].fingerprint);
        assert_eq!(before[0].fingerprint.len(), 32);

        // Editing the flagged line changes it.
        std::fs::write(dir.path().join("src/lib.rs"), "fn a() {}\nlet x = 10;\n").unwrap();
        let edited = assign(vec![raw("unused x", 2)], &context);
        assert_ne!(edited[0].fingerprint, before[0].fingerprint);
    }

    #[test]
    fn identical_findings_are_numbered_and_anchors_win() {
        let context = SourceContext::checkout(Path::new("/nonexistent"));
        let twins = assign(vec![raw("dup", 1), raw("dup", 9)], &context);
        assert_ne!(twins[0].fingerprint, twins[1].fingerprint);
        let again = assign(vec![raw("dup", 4), raw("dup", 5)], &context);
        assert_eq!(
            (&twins[0].fingerprint, &twins[1].fingerprint),
            (&again[0].fingerprint, &again[1].fingerprint)
        );
        let mut provided = raw("message A", 1);
        provided.anchor = Anchor::Provided("primaryLocationLineHash=abc".into());
        let mut renamed = raw("message B", 7);
        renamed.anchor = Anchor::Provided("primaryLocationLineHash=abc".into());
        assert_eq!(
            assign(vec![provided], &context)[0].fingerprint,
            assign(vec![renamed], &context)[0].fingerprint
        );
    }

    #[test]
    fn a_report_naming_a_fifo_does_not_hang_the_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("src/lib.rs"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let checkout = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let context = SourceContext::checkout(&checkout);
            let _ = tx.send(assign(vec![raw("unused x", 2)], &context));
        });
        let found = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a FIFO named by a report must not block fingerprinting");
        assert_eq!(found.len(), 1);
    }
}
