//! Findings from tool reports: SARIF 2.1.0 ([`sarif`]), JUnit XML failures and errors ([`junit`]) and
//! checkstyle XML ([`checkstyle`]), each parsed into [`RawFinding`]s and given a stable fingerprint
//! ([`fingerprint`]).
//!
//! File paths are normalised to the checkout: `file://` URIs and absolute paths inside the checkout become
//! relative (`src/lib.rs`), `./` is dropped; paths outside it are kept as written.

pub mod checkstyle;
pub mod fingerprint;
pub mod junit;
#[cfg(test)]
mod proptests;
pub mod sarif;
mod xml;

use std::path::{Path, PathBuf};

use crate::model::NewFinding;

/// A findings report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sarif,
    Junit,
    Checkstyle,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Sarif => "sarif",
            Format::Junit => "junit",
            Format::Checkstyle => "checkstyle",
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        [Format::Sarif, Format::Junit, Format::Checkstyle]
            .into_iter()
            .find(|f| f.as_str() == name)
    }
}

/// What makes a finding the same finding in another run, besides tool, rule and file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// The tool's own stable fingerprints (SARIF `partialFingerprints`), `key=value` lines, sorted.
    Provided(String),
    /// A test's identity (`classname::name`).
    Test(String),
    /// The finding's message, with the text of its source line when it can be read.
    Message,
}

/// A finding as a parser saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFinding {
    pub tool: String,
    pub rule: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub severity: String,
    pub message: String,
    pub fixable: bool,
    pub anchor: Anchor,
}

/// Where the reported files live, for path normalisation and source-line fingerprints.
#[derive(Debug, Clone, Default)]
pub struct SourceContext {
    pub checkout: Option<PathBuf>,
}

impl SourceContext {
    /// A context for reports about files under `checkout`.
    pub fn checkout(path: &Path) -> Self {
        SourceContext {
            checkout: Some(path.to_path_buf()),
        }
    }

    /// `raw` relative to the checkout when it points inside it.
    pub fn normalise_path(&self, raw: &str) -> String {
        let mut path = raw.strip_prefix("file://").unwrap_or(raw).to_string();
        if path.contains('%') {
            path = percent_decode(&path);
        }
        if let Some(checkout) = self.checkout.as_deref().and_then(Path::to_str) {
            let checkout = checkout.trim_end_matches('/');
            if let Some(rest) = path.strip_prefix(checkout)
                && let Some(rest) = rest.strip_prefix('/')
            {
                path = rest.to_string();
            }
        }
        while let Some(rest) = path.strip_prefix("./") {
            path = rest.to_string();
        }
        path
    }
}

/// Parses a report and fingerprints its findings.
pub fn parse(
    format: Format,
    bytes: &[u8],
    context: &SourceContext,
) -> Result<Vec<NewFinding>, String> {
    let raw = match format {
        Format::Sarif => sarif::parse(bytes, context)?,
        Format::Junit => junit::parse(bytes, context)?,
        Format::Checkstyle => checkstyle::parse(bytes, context)?,
    };
    Ok(fingerprint::assign(raw, context))
}

/// `%XX` sequences decoded (invalid ones kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The severity names findings use: `error`, `warning`, `note`, `info`.
pub(crate) fn severity(raw: &str) -> String {
    match raw.to_ascii_lowercase().as_str() {
        "error" | "fatal" | "critical" | "high" => "error",
        "warning" | "warn" | "medium" => "warning",
        "note" | "low" => "note",
        _ => "info",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_relative_to_the_checkout() {
        let context = SourceContext::checkout(Path::new("/src/app"));
        assert_eq!(
            context.normalise_path("file:///src/app/src/a.rs"),
            "src/a.rs"
        );
        assert_eq!(
            context.normalise_path("/src/app/lib/b%20c.rs"),
            "lib/b c.rs"
        );
        assert_eq!(context.normalise_path("./src/a.rs"), "src/a.rs");
        assert_eq!(context.normalise_path("/elsewhere/x.rs"), "/elsewhere/x.rs");
        assert_eq!(
            context.normalise_path("/src/application/x"),
            "/src/application/x"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
