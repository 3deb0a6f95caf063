//! The observation store on redb: runs, artifact records and findings, with the indexes of the readers.
//!
//! **Sharing between processes.** The file is opened in redb's `MultiWriter` concurrency mode: the daemon
//! holds it open for its lifetime, and a `homeboy` CLI process (a `homeboy lint` run, `homeboy runs list`)
//! opens the same file at the same time; redb serialises write transactions across processes with file
//! locks, and every read transaction sees the latest commit of any process. So a run is recorded by
//! whichever process executes it, through the same function (`homeboy-components`' analysis), and neither
//! side has to route through the other or wait for a lock held for a whole run. Every open of the file must
//! use this mode (redb refuses to mix modes), which is why it is only ever opened through
//! [`ObservationStore::open`].
//!
//! **Generation.** Every write transaction also counts up a generation number stored in the same file, in
//! the same transaction ([`ObservationStore::generation`]): a reader that kept an answer knows, with one
//! lookup, whether any process has written since (the daemon's read cache, `homeboy-service`).
//!
//! Writes are durable when they return (redb's immediate durability). A run is written twice: when it starts
//! (`running`, with its owner) and when it ends ([`Completion`]: the final record, its artifacts and its
//! findings in one transaction).

use std::path::Path;

use homeboy_config::private_file;

use redb::backends::FileBackend;
use redb::{
    ConcurrencyMode, Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition,
    WriteTransaction,
};

use crate::ObservationError;
use crate::file_stamp::FileStamp;
use crate::keys::{
    child_key, children, filter_prefix, finding_key, finding_sequence, index_keys, index_run_id,
    page_bounds,
};
use crate::model::{
    Completion, Finding, FindingFilter, FindingPage, NewFinding, Run, RunFilter, RunPage,
    StoredArtifact,
};
use crate::owner::annotate;

const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
const RUN_INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("run_index");
const ARTIFACTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("artifacts");
const FINDINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("findings");
/// `generation` → how many write transactions the store has committed (absent: none since it gained the key).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const GENERATION: &str = "generation";

/// Page cache per open handle: the readers touch a few pages per request.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What [`ObservationStore::list_runs_json`] wrote besides the runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRunPage {
    /// The cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
    /// The page holds a running run: its `status_note` follows its owner process, not the store.
    pub has_running: bool,
}

/// The store of runs, artifacts and findings.
pub struct ObservationStore {
    db: Database,
    /// The store's file, when it is on one: a second handle on the open file, so the generation's
    /// shortcut ([`ObservationStore::generation`]) stats it without a path lookup.
    file: Option<std::fs::File>,
    /// A settled stamp of the file and the generation read after it was taken.
    known: std::sync::Mutex<Option<(FileStamp, u64)>>,
    /// Generations read from the database rather than vouched for by the file's stamp (for tests).
    generation_reads: std::sync::atomic::AtomicU64,
}

fn storage(e: impl std::fmt::Display) -> ObservationError {
    ObservationError::storage(e)
}

impl ObservationStore {
    /// Opens (creating) the store at `path`, shared with other processes (see the module doc).
    pub fn open(path: &Path) -> Result<ObservationStore, ObservationError> {
        if let Some(parent) = path.parent() {
            private_file::create_dir_all(parent)
                .map_err(|e| ObservationError::io("create", parent, e))?;
        }
        // What redb's `Builder::create` does, with the file in our hands (see `open_on`); `0600`: runs carry
        // their findings and output.
        let file =
            private_file::open_store(path).map_err(|e| ObservationError::io("open", path, e))?;
        let stamped = file
            .try_clone()
            .map_err(|e| ObservationError::io("open", path, e))?;
        let mut store = Self::open_on(FileBackend::new(file).map_err(storage)?)?;
        store.file = Some(stamped);
        Ok(store)
    }

    /// Opens the store on `file`: the real file in production, a file that fails on cue in the crash tests.
    pub(crate) fn open_on(file: impl StorageBackend) -> Result<ObservationStore, ObservationError> {
        let mut builder = Database::builder();
        builder
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .set_cache_size(CACHE_BYTES);
        let db = builder.create_with_backend(file).map_err(storage)?;
        let store = ObservationStore {
            db,
            file: None,
            known: std::sync::Mutex::new(None),
            generation_reads: std::sync::atomic::AtomicU64::new(0),
        };
        store.ensure_tables()?;
        Ok(store)
    }

    /// Creates the tables on first use (a read transaction answers every later open).
    fn ensure_tables(&self) -> Result<(), ObservationError> {
        let read = self.db.begin_read().map_err(storage)?;
        let ready = read.open_table(RUNS).is_ok()
            && read.open_table(RUN_INDEX).is_ok()
            && read.open_table(ARTIFACTS).is_ok()
            && read.open_table(FINDINGS).is_ok()
            && read.open_table(META).is_ok();
        drop(read);
        if ready {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(RUNS).map_err(storage)?;
        tx.open_table(RUN_INDEX).map_err(storage)?;
        tx.open_table(ARTIFACTS).map_err(storage)?;
        tx.open_table(FINDINGS).map_err(storage)?;
        tx.open_table(META).map_err(storage)?;
        tx.commit().map_err(storage)
    }

    /// Begins a write transaction that counts up the generation: every write goes through here.
    fn begin_write(&self) -> Result<WriteTransaction, ObservationError> {
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut meta = tx.open_table(META).map_err(storage)?;
            let current = meta
                .get(GENERATION)
                .map_err(storage)?
                .map_or(0, |v| v.value());
            meta.insert(GENERATION, current.wrapping_add(1))
                .map_err(storage)?;
        }
        Ok(tx)
    }

    /// The store's generation: a number that changes with every committed write of any process sharing the
    /// file. An answer computed after reading generation `g` is current for as long as the generation stays
    /// `g`. Costs one `stat` while the file is unchanged since a settled stamp (`file_stamp.rs`); else one
    /// read transaction and one lookup. The stamp is taken *before* the generation is read, so a write in
    /// between changes the file after the stamp and is never hidden behind it.
    pub fn generation(&self) -> Result<u64, ObservationError> {
        let stamp = self.file.as_ref().and_then(FileStamp::of);
        if let Some((stamp, _)) = stamp
            && let Some((known, generation)) = *self.known.lock().unwrap_or_else(|p| p.into_inner())
            && known == stamp
        {
            return Ok(generation);
        }
        let generation = self.read_generation()?;
        if let Some((stamp, true)) = stamp {
            *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some((stamp, generation));
        }
        Ok(generation)
    }

    fn read_generation(&self) -> Result<u64, ObservationError> {
        self.generation_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let read = self.db.begin_read().map_err(storage)?;
        let meta = match read.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(storage(e)),
        };
        Ok(meta
            .get(GENERATION)
            .map_err(storage)?
            .map_or(0, |v| v.value()))
    }

    /// Records a new run (normally `running`). Refused if the id exists.
    pub fn create_run(&self, run: &Run) -> Result<(), ObservationError> {
        let tx = self.begin_write()?;
        if read_run(&tx.open_table(RUNS).map_err(storage)?, &run.id)?.is_some() {
            return Err(ObservationError::Invalid {
                field: "id",
                problem: format!("run {} already exists", run.id),
            });
        }
        put_run(&tx, None, run)?;
        tx.commit().map_err(storage)
    }

    /// Stores a run's end: its final record (replacing the running one, if any), artifacts and findings,
    /// in one transaction. Returns the stored run.
    pub fn complete_run(&self, completion: Completion) -> Result<Run, ObservationError> {
        let tx = self.begin_write()?;
        let run = complete(&tx, completion)?;
        tx.commit().map_err(storage)?;
        Ok(run)
    }

    /// Stores many finished runs in one transaction (imports, benchmarks, tests).
    pub fn import(
        &self,
        completions: impl IntoIterator<Item = Completion>,
    ) -> Result<usize, ObservationError> {
        let tx = self.begin_write()?;
        let mut count = 0;
        for completion in completions {
            complete(&tx, completion)?;
            count += 1;
        }
        tx.commit().map_err(storage)?;
        Ok(count)
    }

    /// Adds an artifact record to a recorded run, in place of the run's record of the same name (which keeps
    /// its id, so a rewritten file such as a restarted service's preview artifact keeps its URL). A run that
    /// does not exist is [`ObservationError::NotFound`]. Returns the stored record.
    pub fn attach_artifact(
        &self,
        mut artifact: StoredArtifact,
    ) -> Result<StoredArtifact, ObservationError> {
        let tx = self.begin_write()?;
        if read_run(&tx.open_table(RUNS).map_err(storage)?, &artifact.run_id)?.is_none() {
            return Err(ObservationError::NotFound {
                kind: "run",
                id: artifact.run_id,
            });
        }
        {
            let mut table = tx.open_table(ARTIFACTS).map_err(storage)?;
            let (lower, upper) = children(&artifact.run_id);
            let mut same_name = None;
            for entry in table
                .range(lower.as_slice()..upper.as_slice())
                .map_err(storage)?
            {
                let (key, value) = entry.map_err(storage)?;
                let old: StoredArtifact = serde_json::from_slice(value.value()).map_err(storage)?;
                if old.name == artifact.name {
                    same_name = Some((key.value().to_vec(), old.id));
                    break;
                }
            }
            if let Some((key, id)) = same_name {
                table.remove(key.as_slice()).map_err(storage)?;
                artifact.id = id;
            }
            let bytes = serde_json::to_vec(&artifact).map_err(storage)?;
            table
                .insert(
                    child_key(&artifact.run_id, artifact.id.as_bytes()).as_slice(),
                    bytes.as_slice(),
                )
                .map_err(storage)?;
        }
        tx.commit().map_err(storage)?;
        Ok(artifact)
    }

    /// Run `id` as recorded (no `status_note`; see [`crate::owner::annotate`]).
    pub fn run(&self, id: &str) -> Result<Option<Run>, ObservationError> {
        let read = self.db.begin_read().map_err(storage)?;
        let runs = read.open_table(RUNS).map_err(storage)?;
        read_run(&runs, id)
    }

    /// Whether run `id` exists.
    pub fn has_run(&self, id: &str) -> Result<bool, ObservationError> {
        let read = self.db.begin_read().map_err(storage)?;
        let runs = read.open_table(RUNS).map_err(storage)?;
        Ok(runs.get(id).map_err(storage)?.is_some())
    }

    /// One page of runs matching `filter`, newest first.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<RunPage, ObservationError> {
        let prefix = filter_prefix(filter)?;
        let (lower, upper) = page_bounds(&prefix, filter.cursor.as_deref());
        let read = self.db.begin_read().map_err(storage)?;
        let index = read.open_table(RUN_INDEX).map_err(storage)?;
        let runs = read.open_table(RUNS).map_err(storage)?;
        let mut page = Vec::with_capacity(filter.limit.min(1024));
        let mut more = false;
        for entry in index
            .range(lower.as_slice()..upper.as_slice())
            .map_err(storage)?
            .rev()
        {
            let (key, _) = entry.map_err(storage)?;
            if page.len() == filter.limit {
                more = true;
                break;
            }
            let id = index_run_id(key.value(), prefix.len());
            if let Some(run) = read_run(&runs, id)? {
                page.push(run);
            }
        }
        let next_cursor = if more {
            page.last().map(|r| r.id.clone())
        } else {
            None
        };
        Ok(RunPage {
            runs: page,
            next_cursor,
        })
    }

    /// Like [`ObservationStore::list_runs`], written as a JSON array into `out` (running runs annotated
    /// with their `status_note`); returns the next cursor and whether the page holds a running run (whose
    /// note can change without a write). Finished runs are copied as stored, unparsed.
    pub fn list_runs_json(
        &self,
        filter: &RunFilter,
        out: &mut Vec<u8>,
    ) -> Result<JsonRunPage, ObservationError> {
        let prefix = filter_prefix(filter)?;
        let (lower, upper) = page_bounds(&prefix, filter.cursor.as_deref());
        let read = self.db.begin_read().map_err(storage)?;
        let index = read.open_table(RUN_INDEX).map_err(storage)?;
        let runs = read.open_table(RUNS).map_err(storage)?;
        out.push(b'[');
        let mut count = 0;
        let mut last_id = String::new();
        let mut more = false;
        let mut has_running = false;
        for entry in index
            .range(lower.as_slice()..upper.as_slice())
            .map_err(storage)?
            .rev()
        {
            let (key, _) = entry.map_err(storage)?;
            if count == filter.limit {
                more = true;
                break;
            }
            let id = index_run_id(key.value(), prefix.len());
            if let Some(record) = runs.get(id).map_err(storage)? {
                if count > 0 {
                    out.push(b',');
                }
                has_running |= write_run_json(record.value(), out)?;
                count += 1;
                last_id.clear();
                last_id.push_str(id);
            }
        }
        out.push(b']');
        Ok(JsonRunPage {
            next_cursor: more.then_some(last_id),
            has_running,
        })
    }

    /// Like [`ObservationStore::findings`], written as a JSON array into `out`; returns the next cursor.
    /// A run that does not exist is [`ObservationError::NotFound`] (checked in the same read).
    pub fn findings_json(
        &self,
        run_id: &str,
        filter: &FindingFilter,
        out: &mut Vec<u8>,
    ) -> Result<Option<u32>, ObservationError> {
        let read = self.db.begin_read().map_err(storage)?;
        if read
            .open_table(RUNS)
            .map_err(storage)?
            .get(run_id)
            .map_err(storage)?
            .is_none()
        {
            return Err(ObservationError::NotFound {
                kind: "run",
                id: run_id.to_string(),
            });
        }
        let table = read.open_table(FINDINGS).map_err(storage)?;
        let lower = finding_key(run_id, filter.cursor.map_or(0, |c| c.saturating_add(1)));
        let (_, upper) = children(run_id);
        out.push(b'[');
        let mut count = 0;
        let mut last_sequence = 0;
        let mut next_cursor = None;
        for entry in table
            .range(lower.as_slice()..upper.as_slice())
            .map_err(storage)?
        {
            let (key, value) = entry.map_err(storage)?;
            if !keys_match(value.value(), filter)? {
                continue;
            }
            if count == filter.limit {
                next_cursor = Some(last_sequence);
                break;
            }
            if count > 0 {
                out.push(b',');
            }
            out.extend_from_slice(value.value());
            count += 1;
            last_sequence = finding_sequence(key.value());
        }
        out.push(b']');
        Ok(next_cursor)
    }

    /// The artifacts of run `run_id`, in the order they were recorded.
    pub fn artifacts(&self, run_id: &str) -> Result<Vec<StoredArtifact>, ObservationError> {
        let read = self.db.begin_read().map_err(storage)?;
        let table = read.open_table(ARTIFACTS).map_err(storage)?;
        let (lower, upper) = children(run_id);
        let mut out = Vec::new();
        for entry in table
            .range(lower.as_slice()..upper.as_slice())
            .map_err(storage)?
        {
            let (_, value) = entry.map_err(storage)?;
            out.push(serde_json::from_slice(value.value()).map_err(storage)?);
        }
        Ok(out)
    }

    /// Artifact `artifact_id` of run `run_id`.
    pub fn artifact(
        &self,
        run_id: &str,
        artifact_id: &str,
    ) -> Result<Option<StoredArtifact>, ObservationError> {
        let read = self.db.begin_read().map_err(storage)?;
        let table = read.open_table(ARTIFACTS).map_err(storage)?;
        let key = child_key(run_id, artifact_id.as_bytes());
        let value = table.get(key.as_slice()).map_err(storage)?;
        value
            .map(|v| serde_json::from_slice(v.value()).map_err(storage))
            .transpose()
    }

    /// One page of run `run_id`'s findings matching `filter`, in reporting order.
    pub fn findings(
        &self,
        run_id: &str,
        filter: &FindingFilter,
    ) -> Result<FindingPage, ObservationError> {
        let read = self.db.begin_read().map_err(storage)?;
        let table = read.open_table(FINDINGS).map_err(storage)?;
        let lower = finding_key(run_id, filter.cursor.map_or(0, |c| c.saturating_add(1)));
        let (_, upper) = children(run_id);
        let mut findings = Vec::with_capacity(filter.limit.min(1024));
        let mut next_cursor = None;
        let mut last_sequence = 0;
        for entry in table
            .range(lower.as_slice()..upper.as_slice())
            .map_err(storage)?
        {
            let (key, value) = entry.map_err(storage)?;
            let finding: Finding = serde_json::from_slice(value.value()).map_err(storage)?;
            if !matches(&finding, filter) {
                continue;
            }
            if findings.len() == filter.limit {
                next_cursor = Some(last_sequence);
                break;
            }
            last_sequence = finding_sequence(key.value());
            findings.push(finding);
        }
        Ok(FindingPage {
            findings,
            next_cursor,
        })
    }

    /// Every finding of run `run_id` (for comparisons).
    pub fn all_findings(&self, run_id: &str) -> Result<Vec<Finding>, ObservationError> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.findings(
                run_id,
                &FindingFilter {
                    limit: 10_000,
                    cursor,
                    ..FindingFilter::default()
                },
            )?;
            all.extend(page.findings);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }
}

fn matches(finding: &Finding, filter: &FindingFilter) -> bool {
    filter.tool.as_deref().is_none_or(|t| t == finding.tool)
        && filter
            .file
            .as_deref()
            .is_none_or(|f| finding.file.as_deref() == Some(f))
        && filter
            .fingerprint
            .as_deref()
            .is_none_or(|f| f == finding.fingerprint)
}

fn read_run(
    runs: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<Run>, ObservationError> {
    let value = runs.get(id).map_err(storage)?;
    value.map(|v| parse_run(v.value())).transpose()
}

/// A stored run record: one byte of status (1 = running), then the run's wire JSON (without
/// `status_note`), so readers can copy the JSON of finished runs without parsing it.
fn parse_run(record: &[u8]) -> Result<Run, ObservationError> {
    serde_json::from_slice(record.get(1..).unwrap_or_default()).map_err(storage)
}

fn run_record(run: &Run) -> Result<Vec<u8>, ObservationError> {
    let mut stored = run.clone();
    stored.status_note = None;
    let mut record = vec![u8::from(run.status == crate::RunStatus::Running)];
    serde_json::to_writer(&mut record, &stored).map_err(storage)?;
    Ok(record)
}

/// Appends a run record's JSON to `out`, with its `status_note` when it is running; returns whether it is.
fn write_run_json(record: &[u8], out: &mut Vec<u8>) -> Result<bool, ObservationError> {
    match record.first() {
        Some(1) => {
            let mut run = parse_run(record)?;
            annotate(&mut run);
            serde_json::to_writer(out, &run).map_err(storage)?;
            Ok(true)
        }
        _ => {
            out.extend_from_slice(record.get(1..).unwrap_or_default());
            Ok(false)
        }
    }
}

/// The fields of a finding its filters look at, read without building the whole finding.
#[derive(serde::Deserialize)]
struct FindingKeys<'a> {
    #[serde(borrow)]
    tool: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    file: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    fingerprint: std::borrow::Cow<'a, str>,
}

fn keys_match(bytes: &[u8], filter: &FindingFilter) -> Result<bool, ObservationError> {
    if filter.tool.is_none() && filter.file.is_none() && filter.fingerprint.is_none() {
        return Ok(true);
    }
    let keys: FindingKeys<'_> = serde_json::from_slice(bytes).map_err(storage)?;
    Ok(filter.tool.as_deref().is_none_or(|t| t == keys.tool)
        && filter
            .file
            .as_deref()
            .is_none_or(|f| keys.file.as_deref() == Some(f))
        && filter
            .fingerprint
            .as_deref()
            .is_none_or(|f| f == keys.fingerprint))
}

/// Writes `run` and moves its index entries from `old` (if any).
fn put_run(tx: &WriteTransaction, old: Option<&Run>, run: &Run) -> Result<(), ObservationError> {
    let bytes = run_record(run)?;
    let mut index = tx.open_table(RUN_INDEX).map_err(storage)?;
    if let Some(old) = old {
        for key in index_keys(old) {
            index.remove(key.as_slice()).map_err(storage)?;
        }
    }
    for key in index_keys(run) {
        index.insert(key.as_slice(), ()).map_err(storage)?;
    }
    let mut runs = tx.open_table(RUNS).map_err(storage)?;
    runs.insert(run.id.as_str(), bytes.as_slice())
        .map_err(storage)?;
    Ok(())
}

fn complete(tx: &WriteTransaction, completion: Completion) -> Result<Run, ObservationError> {
    let Completion {
        run,
        artifacts,
        findings,
    } = completion;
    let old = read_run(&tx.open_table(RUNS).map_err(storage)?, &run.id)?;
    put_run(tx, old.as_ref(), &run)?;
    let mut table = tx.open_table(ARTIFACTS).map_err(storage)?;
    for artifact in &artifacts {
        if artifact.run_id != run.id {
            return Err(ObservationError::Invalid {
                field: "artifacts.run_id",
                problem: format!("artifact {} belongs to another run", artifact.id),
            });
        }
        let bytes = serde_json::to_vec(artifact).map_err(storage)?;
        table
            .insert(
                child_key(&run.id, artifact.id.as_bytes()).as_slice(),
                bytes.as_slice(),
            )
            .map_err(storage)?;
    }
    let mut table = tx.open_table(FINDINGS).map_err(storage)?;
    let (lower, upper) = children(&run.id);
    let mut sequence = match table
        .range(lower.as_slice()..upper.as_slice())
        .map_err(storage)?
        .next_back()
    {
        Some(entry) => finding_sequence(entry.map_err(storage)?.0.value()),
        None => 0,
    };
    let created_at = run
        .finished_at
        .clone()
        .unwrap_or_else(|| run.started_at.clone());
    for new in findings {
        sequence += 1;
        let finding = stored_finding(&run.id, sequence, new, &created_at);
        let bytes = serde_json::to_vec(&finding).map_err(storage)?;
        table
            .insert(finding_key(&run.id, sequence).as_slice(), bytes.as_slice())
            .map_err(storage)?;
    }
    Ok(run)
}

fn stored_finding(run_id: &str, sequence: u32, new: NewFinding, created_at: &str) -> Finding {
    Finding {
        id: format!("{run_id}:{sequence}"),
        run_id: run_id.to_string(),
        tool: new.tool,
        rule: new.rule,
        file: new.file,
        line: new.line,
        severity: new.severity,
        fingerprint: new.fingerprint,
        message: new.message,
        fixable: new.fixable,
        created_at: created_at.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunStatus;
    use crate::new_id;

    fn run(component: &str, kind: &str, status: RunStatus, rig: Option<&str>) -> Run {
        Run {
            id: new_id(),
            kind: kind.into(),
            component_id: component.into(),
            rig_id: rig.map(str::to_string),
            status,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: None,
            command: "lint".into(),
            cwd: "/src".into(),
            homeboy_version: "0".into(),
            git_sha: None,
            metadata: Default::default(),
            status_note: None,
        }
    }

    fn finding(tool: &str, file: &str, fingerprint: &str) -> NewFinding {
        NewFinding {
            tool: tool.into(),
            rule: "r".into(),
            file: Some(file.into()),
            line: Some(1),
            severity: "warning".into(),
            fingerprint: fingerprint.into(),
            message: "m".into(),
            fixable: false,
        }
    }

    fn store() -> (tempfile::TempDir, ObservationStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ObservationStore::open(&dir.path().join("o/obs.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn an_attached_artifact_replaces_its_namesake_and_keeps_its_id() {
        let (dir, store) = store();
        let root = dir.path().join("artifacts");
        let source = crate::artifacts::ArtifactSource {
            run_id: "missing",
            kind: "file",
            name: "preview-url.json",
            source_path: None,
        };
        std::fs::create_dir_all(root.join("runs/missing")).unwrap();
        std::fs::write(root.join("runs/missing/preview-url.json"), b"{}").unwrap();
        let orphan = crate::artifacts::describe_kept(&root, &source).unwrap();
        assert!(matches!(
            store.attach_artifact(orphan),
            Err(ObservationError::NotFound { kind: "run", .. })
        ));

        let recorded = run("api", "test", RunStatus::Pass, None);
        store.create_run(&recorded).unwrap();
        let source = crate::artifacts::ArtifactSource {
            run_id: &recorded.id,
            ..source
        };
        let dir_of_run = root.join("runs").join(&recorded.id);
        std::fs::create_dir_all(&dir_of_run).unwrap();
        std::fs::write(dir_of_run.join("preview-url.json"), b"{\"a\": 1}").unwrap();
        let first = store
            .attach_artifact(crate::artifacts::describe_kept(&root, &source).unwrap())
            .unwrap();
        assert_eq!(first.size_bytes, 8);
        assert_eq!(first.mime, "application/json");
        std::fs::write(dir_of_run.join("preview-url.json"), b"{\"a\": 22}").unwrap();
        let second = store
            .attach_artifact(crate::artifacts::describe_kept(&root, &source).unwrap())
            .unwrap();
        assert_eq!(second.id, first.id, "a rewrite keeps the record's id");
        let kept = store.artifacts(&recorded.id).unwrap();
        assert_eq!(kept.len(), 1, "one record per name");
        assert_eq!(kept[0].size_bytes, 9);
        assert_ne!(kept[0].sha256, first.sha256);
    }

    #[test]
    fn runs_move_through_the_indexes() {
        let (_dir, store) = store();
        let first = run("api", "lint", RunStatus::Running, None);
        store.create_run(&first).unwrap();
        assert!(store.create_run(&first).is_err(), "ids are unique");
        let second = run("web", "bench", RunStatus::Pass, Some("dev"));
        store
            .complete_run(Completion {
                run: second.clone(),
                artifacts: vec![],
                findings: vec![],
            })
            .unwrap();
        let by = |filter: RunFilter| -> Vec<String> {
            store
                .list_runs(&RunFilter {
                    limit: 10,
                    ..filter
                })
                .unwrap()
                .runs
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(
            by(RunFilter::default()),
            [second.id.clone(), first.id.clone()]
        );
        let running = RunFilter {
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        };
        assert_eq!(by(running.clone()), vec![first.id.clone()]);
        assert_eq!(
            by(RunFilter {
                rig: Some("dev".into()),
                kind: Some("bench".into()),
                ..RunFilter::default()
            }),
            vec![second.id.clone()]
        );
        assert!(
            by(RunFilter {
                rig: Some("dev".into()),
                component: Some("api".into()),
                ..RunFilter::default()
            })
            .is_empty()
        );

        // Finishing moves the run out of `running` and into `fail`.
        let mut done = first.clone();
        done.status = RunStatus::Fail;
        done.finished_at = Some("2026-01-01T00:00:01.000Z".into());
        store
            .complete_run(Completion {
                run: done,
                artifacts: vec![],
                findings: vec![
                    finding("clippy", "src/a.rs", "f1"),
                    finding("clippy", "src/b.rs", "f2"),
                    finding("junit", "src/a.rs", "f3"),
                ],
            })
            .unwrap();
        assert!(by(running).is_empty());
        assert_eq!(
            by(RunFilter {
                status: Some(RunStatus::Fail),
                component: Some("api".into()),
                ..RunFilter::default()
            }),
            vec![first.id.clone()]
        );
        assert_eq!(
            store.run(&first.id).unwrap().unwrap().status,
            RunStatus::Fail
        );

        let all = store
            .findings(
                &first.id,
                &FindingFilter {
                    limit: 10,
                    ..FindingFilter::default()
                },
            )
            .unwrap();
        assert_eq!(all.findings.len(), 3);
        assert_eq!(all.findings[0].id, format!("{}:1", first.id));
        assert_eq!(all.findings[0].created_at, "2026-01-01T00:00:01.000Z");
        let page = store
            .findings(
                &first.id,
                &FindingFilter {
                    file: Some("src/a.rs".into()),
                    limit: 1,
                    ..FindingFilter::default()
                },
            )
            .unwrap();
        assert_eq!(page.findings[0].fingerprint, "f1");
        let next = store
            .findings(
                &first.id,
                &FindingFilter {
                    file: Some("src/a.rs".into()),
                    limit: 1,
                    cursor: page.next_cursor,
                    ..FindingFilter::default()
                },
            )
            .unwrap();
        assert_eq!(next.findings[0].fingerprint, "f3");
        assert_eq!(next.next_cursor, None);
        let by_print = store
            .findings(
                &first.id,
                &FindingFilter {
                    fingerprint: Some("f2".into()),
                    tool: Some("clippy".into()),
                    limit: 10,
                    ..FindingFilter::default()
                },
            )
            .unwrap();
        assert_eq!(by_print.findings.len(), 1);
        assert!(store.all_findings(&second.id).unwrap().is_empty());
    }

    #[test]
    fn every_write_of_any_handle_moves_the_generation_and_reads_do_not() {
        let (dir, store) = store();
        // A second handle on the same file: what another process sharing the store sees and does.
        let peer = ObservationStore::open(&dir.path().join("o/obs.redb")).unwrap();
        let mut seen = vec![store.generation().unwrap()];
        let wrote = |label: &str, seen: &mut Vec<u64>| {
            let now = peer.generation().unwrap();
            assert_eq!(
                store.generation().unwrap(),
                now,
                "{label}: both handles agree"
            );
            assert!(
                !seen.contains(&now),
                "{label}: generation {now} seen before"
            );
            seen.push(now);
        };
        let running = run("api", "lint", RunStatus::Running, None);
        peer.create_run(&running).unwrap();
        wrote("create_run by the peer", &mut seen);
        let mut done = running.clone();
        done.status = RunStatus::Pass;
        store
            .complete_run(Completion {
                run: done.clone(),
                artifacts: vec![],
                findings: vec![finding("clippy", "a.rs", "f1")],
            })
            .unwrap();
        wrote("complete_run", &mut seen);
        store
            .import([Completion {
                run: run("web", "test", RunStatus::Fail, None),
                artifacts: vec![],
                findings: vec![],
            }])
            .unwrap();
        wrote("import", &mut seen);
        let root = dir.path().join("artifacts");
        let kept = root.join("runs").join(&done.id);
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::write(kept.join("report.json"), b"{}").unwrap();
        let source = crate::artifacts::ArtifactSource {
            run_id: &done.id,
            kind: "file",
            name: "report.json",
            source_path: None,
        };
        peer.attach_artifact(crate::artifacts::describe_kept(&root, &source).unwrap())
            .unwrap();
        wrote("attach_artifact by the peer", &mut seen);
        // A refused write commits nothing, so the generation stays.
        assert!(store.create_run(&running).is_err());
        let before = store.generation().unwrap();
        let mut out = Vec::new();
        store
            .list_runs_json(&RunFilter::default(), &mut out)
            .unwrap();
        store
            .findings_json(&done.id, &FindingFilter::default(), &mut out)
            .unwrap();
        assert_eq!(store.generation().unwrap(), before, "reads write nothing");
        assert_eq!(*seen.last().unwrap(), before);
    }

    #[test]
    fn a_settled_file_vouches_for_the_generation_until_any_process_writes() {
        let (dir, store) = store();
        let path = dir.path().join("o/obs.redb");
        let peer = ObservationStore::open(&path).unwrap();
        peer.create_run(&run("api", "lint", RunStatus::Running, None))
            .unwrap();
        let reads = || {
            store
                .generation_reads
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        // As if the last write were a second ago: the stamp has settled.
        let age = |path: &std::path::Path| {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(1))
                .unwrap();
        };
        age(&path);
        let before = store.generation().unwrap();
        let read_once = reads();
        assert_eq!(store.generation().unwrap(), before);
        assert_eq!(store.generation().unwrap(), before);
        assert_eq!(reads(), read_once, "the settled stamp answered");
        peer.create_run(&run("web", "test", RunStatus::Running, None))
            .unwrap();
        let after = store.generation().unwrap();
        assert_ne!(after, before, "a write by another handle shows at once");
        assert_eq!(after, peer.generation().unwrap());
        assert_eq!(reads(), read_once + 1);
    }

    #[test]
    fn json_readers_match_the_typed_ones() {
        let (_dir, store) = store();
        let mut orphan = run("api", "test", RunStatus::Running, None);
        orphan.metadata.insert(
            "owner".into(),
            serde_json::json!({"pid": u32::MAX - 1, "process": "cli"}),
        );
        store.create_run(&orphan).unwrap();
        let done = run("api", "lint", RunStatus::Pass, Some("dev"));
        store
            .complete_run(Completion {
                run: done.clone(),
                artifacts: vec![],
                findings: vec![
                    finding("clippy", "a.rs", "f1"),
                    finding("eslint", "b.js", "f2"),
                ],
            })
            .unwrap();
        assert!(store.has_run(&done.id).unwrap() && !store.has_run("nope").unwrap());
        for filter in [
            RunFilter {
                limit: 10,
                ..RunFilter::default()
            },
            RunFilter {
                limit: 1,
                ..RunFilter::default()
            },
            RunFilter {
                limit: 5,
                status: Some(RunStatus::Running),
                ..RunFilter::default()
            },
        ] {
            let typed = store.list_runs(&filter).unwrap();
            let mut expected = typed.runs.clone();
            expected.iter_mut().for_each(annotate);
            let mut out = Vec::new();
            let page = store.list_runs_json(&filter, &mut out).unwrap();
            let parsed: Vec<Run> = serde_json::from_slice(&out).unwrap();
            assert_eq!(parsed, expected);
            assert_eq!(page.next_cursor, typed.next_cursor);
            assert_eq!(
                page.has_running,
                expected.iter().any(|r| r.status == RunStatus::Running)
            );
        }
        let mut out = Vec::new();
        store
            .list_runs_json(
                &RunFilter {
                    limit: 10,
                    ..RunFilter::default()
                },
                &mut out,
            )
            .unwrap();
        let listed: Vec<Run> = serde_json::from_slice(&out).unwrap();
        assert!(listed[1].status_note.is_some(), "the orphan is annotated");
        for filter in [
            FindingFilter {
                limit: 10,
                ..FindingFilter::default()
            },
            FindingFilter {
                limit: 1,
                ..FindingFilter::default()
            },
            FindingFilter {
                limit: 10,
                tool: Some("eslint".into()),
                ..FindingFilter::default()
            },
            FindingFilter {
                limit: 10,
                fingerprint: Some("f1".into()),
                file: Some("a.rs".into()),
                ..FindingFilter::default()
            },
            FindingFilter {
                limit: 10,
                cursor: Some(1),
                ..FindingFilter::default()
            },
        ] {
            let typed = store.findings(&done.id, &filter).unwrap();
            let mut out = Vec::new();
            let next = store.findings_json(&done.id, &filter, &mut out).unwrap();
            let parsed: Vec<crate::Finding> = serde_json::from_slice(&out).unwrap();
            assert_eq!((parsed, next), (typed.findings, typed.next_cursor));
        }
    }

    #[test]
    fn pages_continue_at_the_cursor() {
        let (_dir, store) = store();
        let runs: Vec<Run> = (0..25)
            .map(|i| {
                run(
                    if i % 2 == 0 { "a" } else { "b" },
                    "lint",
                    RunStatus::Pass,
                    None,
                )
            })
            .collect();
        store
            .import(runs.iter().map(|r| Completion {
                run: r.clone(),
                artifacts: vec![],
                findings: vec![],
            }))
            .unwrap();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_runs(&RunFilter {
                    component: Some("a".into()),
                    limit: 5,
                    cursor: cursor.clone(),
                    ..RunFilter::default()
                })
                .unwrap();
            seen.extend(page.runs.into_iter().map(|r| r.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let expected: Vec<String> = runs
            .iter()
            .rev()
            .filter(|r| r.component_id == "a")
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn two_handles_see_each_others_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obs.redb");
        let daemon = ObservationStore::open(&path).unwrap();
        let cli = ObservationStore::open(&path).unwrap();
        let r = run("api", "lint", RunStatus::Running, None);
        cli.create_run(&r).unwrap();
        assert_eq!(daemon.run(&r.id).unwrap().unwrap().id, r.id);
        drop(cli);
        assert_eq!(
            daemon
                .list_runs(&RunFilter {
                    limit: 5,
                    ..RunFilter::default()
                })
                .unwrap()
                .runs
                .len(),
            1
        );
    }
}
