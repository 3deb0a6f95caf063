//! Components, rigs and stacks on the wire: the declarations as `GET /components/:id`, `/rigs/:id` and
//! `/stacks/:id` show them (the same JSON as the declaration files), a checkout's git state and changes, a
//! rig check and a stack's status, and the answers of every `/components*`, `/rigs*` and `/stacks*` route.
//! Validation of a declaration file is `homeboy_config`'s; running git and checks is
//! `homeboy_components`'. Fields are only ever added.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tools::ToolKind;

/// The longest timeout a tool may declare (a day).
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;
/// The timeout of a tool that declares none.
pub const DEFAULT_TIMEOUT_SECS: u64 = 1800;
/// The timeout of a rig check step that declares none.
pub const DEFAULT_STEP_TIMEOUT_SECS: u64 = 10;
/// The longest timeout a rig check step may declare.
pub const MAX_STEP_TIMEOUT_SECS: u64 = 3600;

/// One component: a local git checkout and its tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Unique identifier; also the file name.
    pub id: String,
    /// Absolute path of the local git checkout.
    pub path: String,
    /// What each analysis tool runs.
    #[serde(default)]
    pub tools: ComponentTools,
}

/// The per-tool commands of a component; a tool without an entry is not available for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ComponentTools {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lint: Option<ToolCommand>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<ToolCommand>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<ToolCommand>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bench: Option<ToolCommand>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ToolCommand>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ToolCommand>,
}

impl ComponentTools {
    /// The command of `kind`, if declared.
    pub fn get(&self, kind: ToolKind) -> Option<&ToolCommand> {
        match kind {
            ToolKind::Lint => self.lint.as_ref(),
            ToolKind::Test => self.test.as_ref(),
            ToolKind::Audit => self.audit.as_ref(),
            ToolKind::Bench => self.bench.as_ref(),
            ToolKind::Build => self.build.as_ref(),
            ToolKind::Review => self.review.as_ref(),
        }
    }

    /// The declared tools, in listing order.
    pub fn declared(&self) -> Vec<ToolKind> {
        ToolKind::ALL
            .into_iter()
            .filter(|k| self.get(*k).is_some())
            .collect()
    }
}

/// How one tool runs in the checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ToolCommand {
    /// argv, run without a shell in the checkout (use `["sh", "-c", "..."]` for shell syntax).
    pub command: Vec<String>,
    /// A directory (relative to the checkout) whose files are collected as the run's artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<String>,
    /// Where the tool writes machine-readable findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingsSource>,
    /// A JSON file (relative to the checkout) of benchmark metrics: `{"name": number}` or
    /// `{"metrics": {"name": number}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// Seconds before the tool's process group is stopped (default 1800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl ToolCommand {
    /// The effective timeout in seconds.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)
    }
}

/// A findings file and its format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FindingsSource {
    pub format: FindingsFormat,
    /// Relative to the checkout.
    pub path: String,
}

/// Formats homeboy reads findings from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FindingsFormat {
    /// SARIF 2.1.0 (JSON).
    Sarif,
    /// JUnit XML: failed and erroring test cases.
    Junit,
    /// Checkstyle XML.
    Checkstyle,
}

impl FindingsFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingsFormat::Sarif => "sarif",
            FindingsFormat::Junit => "junit",
            FindingsFormat::Checkstyle => "checkstyle",
        }
    }
}

/// One rig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Rig {
    pub id: String,
    /// Component ids of this rig.
    #[serde(default)]
    pub components: Vec<String>,
    /// Steps run in order by `rig check`.
    #[serde(default)]
    pub check: Vec<CheckStep>,
}

/// One check step: exactly one of `command`, `http_ok`, `tcp_open`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckStep {
    /// A label for reports (default: derived from the step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// argv that must exit 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// For `command`: run in this component's checkout (default: the rig's first component, else the
    /// config directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// A plain `http://` URL that must answer 2xx to a GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_ok: Option<String>,
    /// A `host:port` that must accept a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_open: Option<String>,
    /// Seconds before the step fails (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// What a step checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind<'a> {
    Command(&'a [String]),
    HttpOk(&'a str),
    TcpOpen(&'a str),
}

impl StepKind<'_> {
    /// The wire name (`command`, `http_ok`, `tcp_open`).
    pub fn as_str(&self) -> &'static str {
        match self {
            StepKind::Command(_) => "command",
            StepKind::HttpOk(_) => "http_ok",
            StepKind::TcpOpen(_) => "tcp_open",
        }
    }
}

impl CheckStep {
    /// What the step checks (validation guarantees exactly one kind).
    pub fn kind(&self) -> Option<StepKind<'_>> {
        match (&self.command, &self.http_ok, &self.tcp_open) {
            (Some(argv), None, None) => Some(StepKind::Command(argv)),
            (None, Some(url), None) => Some(StepKind::HttpOk(url)),
            (None, None, Some(addr)) => Some(StepKind::TcpOpen(addr)),
            _ => None,
        }
    }

    /// The step's label: its `name`, else a description of what it checks.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match self.kind() {
            Some(StepKind::Command(argv)) => argv.join(" "),
            Some(StepKind::HttpOk(url)) => format!("GET {url}"),
            Some(StepKind::TcpOpen(addr)) => format!("tcp {addr}"),
            None => "invalid step".into(),
        }
    }

    /// The effective timeout in seconds.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs.unwrap_or(DEFAULT_STEP_TIMEOUT_SECS)
    }
}

/// One stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Stack {
    pub id: String,
    /// The component whose checkout holds the branches.
    pub component: String,
    /// Where the stack starts (a branch, tag or commit).
    pub base: String,
    /// Where the entries are meant to land.
    pub target: String,
    /// The changes, in order.
    #[serde(default)]
    pub entries: Vec<StackEntry>,
}

/// One change of a stack: exactly one of `branch` or `commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StackEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub title: String,
}

impl StackEntry {
    /// The git revision this entry names.
    pub fn rev(&self) -> &str {
        self.branch
            .as_deref()
            .or(self.commit.as_deref())
            .unwrap_or_default()
    }
}

/// A checkout's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GitStatus {
    /// The current branch; `None` when HEAD is detached.
    pub branch: Option<String>,
    pub detached: bool,
    /// The HEAD commit; `None` in a repository without commits.
    pub head: Option<String>,
    pub upstream: Option<String>,
    pub ahead: Option<u64>,
    pub behind: Option<u64>,
    /// Tracked files with staged or unstaged changes.
    pub dirty: u64,
    pub untracked: u64,
    /// Files with unresolved merge conflicts.
    pub conflicted: u64,
    pub clean: bool,
}

/// One uncommitted file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChangedFile {
    pub path: String,
    /// Two-letter porcelain code: staged then unstaged (`M.`, `.M`, `A.`, `??`, `UU`).
    pub status: String,
    pub staged: bool,
    pub unstaged: bool,
    pub untracked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
}

/// One commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Commit {
    pub sha: String,
    pub subject: String,
    pub author: String,
    pub date: String,
}

/// Where the listed commits start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Since {
    /// `upstream`, `tag`, or `root` (no upstream and no tag: every commit).
    pub kind: String,
    pub reference: Option<String>,
}

/// What changed in a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Changes {
    pub files: Vec<ChangedFile>,
    pub since: Since,
    pub commits: Vec<Commit>,
    pub commits_truncated: bool,
}

/// One rig check step's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StepReport {
    pub index: usize,
    pub name: String,
    /// `command`, `http_ok`, `tcp_open` (`invalid` for a step without a single kind).
    pub kind: Cow<'static, str>,
    pub passed: bool,
    pub duration_ms: u64,
    /// What the step saw: a command's `exit_code` and output `tail`, an HTTP `status`, a TCP `connected`,
    /// or an `error`.
    pub evidence: Value,
}

/// A whole rig check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RigCheck {
    pub rig_id: String,
    pub passed: bool,
    pub steps: Vec<StepReport>,
    pub duration_ms: u64,
}

/// A stack entry's state against the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Applied,
    Pending,
    Conflict,
    Missing,
}

/// One stack entry's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EntryStatus {
    pub index: usize,
    pub title: String,
    /// The branch or commit the entry names.
    pub rev: String,
    pub sha: Option<String>,
    pub state: EntryState,
    /// Commits of the entry not in the target.
    pub ahead: Option<u64>,
    /// Commits of the target not in the entry.
    pub behind: Option<u64>,
    /// For `conflict`: the paths that would conflict.
    pub conflicts: Vec<String>,
}

/// A whole stack's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StackStatus {
    pub stack_id: String,
    pub component_id: String,
    pub base: String,
    pub base_sha: String,
    pub target: String,
    pub target_sha: String,
    pub entries: Vec<EntryStatus>,
    /// Counts per state.
    pub applied: usize,
    pub pending: usize,
    pub conflict: usize,
    pub missing: usize,
}

/// Why one item of a listing could not be shown (a declaration that does not parse, a checkout that is
/// missing): the error code and message, never a failed listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ItemError {
    pub code: String,
    pub message: String,
}

/// A declaration file that does not parse or validate, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BrokenDeclaration {
    pub id: String,
    pub error: ItemError,
}

/// One component of `GET /components`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ComponentSummary {
    pub id: String,
    pub path: String,
    pub tools: Vec<ToolKind>,
    /// `null` when the checkout could not be read (see `status_error`).
    pub status: Option<GitStatus>,
    pub status_error: Option<ItemError>,
}

/// An item of `GET /components`: a component, or a declaration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum ComponentListItem {
    Component(ComponentSummary),
    Broken(BrokenDeclaration),
}

/// `GET /components`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ComponentList {
    pub components: Vec<ComponentListItem>,
}

/// `GET /components/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ComponentAnswer {
    pub component: Component,
    pub tools: Vec<ToolKind>,
}

/// `GET /components/:id/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ComponentStatusAnswer {
    pub component_id: String,
    pub path: String,
    pub status: GitStatus,
}

/// `GET /components/:id/changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ComponentChangesAnswer {
    pub component_id: String,
    pub path: String,
    pub changes: Changes,
}

/// One rig of `GET /rigs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RigSummary {
    pub id: String,
    pub components: Vec<String>,
    /// How many check steps the rig declares.
    pub check_steps: usize,
}

/// An item of `GET /rigs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum RigListItem {
    Rig(RigSummary),
    Broken(BrokenDeclaration),
}

/// `GET /rigs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RigList {
    pub rigs: Vec<RigListItem>,
}

/// A member of a rig, and whether that component is declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RigMember {
    pub id: String,
    pub declared: bool,
}

/// `GET /rigs/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RigAnswer {
    pub rig: Rig,
    pub components: Vec<RigMember>,
}

/// `POST /rigs/:id/check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RigCheckAnswer {
    pub check: RigCheck,
}

/// One stack of `GET /stacks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StackSummary {
    pub id: String,
    pub component: String,
    pub base: String,
    pub target: String,
    /// How many entries the stack has.
    pub entries: usize,
}

/// An item of `GET /stacks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum StackListItem {
    Stack(StackSummary),
    Broken(BrokenDeclaration),
}

/// `GET /stacks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StackList {
    pub stacks: Vec<StackListItem>,
}

/// `GET /stacks/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StackAnswer {
    pub stack: Stack,
}

/// `POST /stacks/:id/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StackStatusAnswer {
    pub status: StackStatus,
}

/// The body of `POST /rigs/:id/check` and `POST /stacks/:id/status`: no fields today (an empty body is
/// fine); unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listing_items_keep_their_json() {
        let broken =
            json!({"id": "x", "error": {"code": "config.invalid_declaration", "message": "m"}});
        let item: ComponentListItem = serde_json::from_value(broken.clone()).unwrap();
        assert!(matches!(item, ComponentListItem::Broken(_)));
        assert_eq!(serde_json::to_value(&item).unwrap(), broken);
        let listed = json!({"id": "a", "path": "/p", "tools": ["lint"], "status": null,
                            "status_error": {"code": "components.path_missing", "message": "m"}});
        let item: ComponentListItem = serde_json::from_value(listed.clone()).unwrap();
        assert!(matches!(item, ComponentListItem::Component(_)));
        assert_eq!(serde_json::to_value(&item).unwrap(), listed);
        assert_eq!(
            serde_json::to_value(EntryState::Conflict).unwrap(),
            json!("conflict")
        );
    }
}
