//! Runs, artifacts and findings: `GET /runs` (+ `kind`, `component`, `rig`, `status`, `limit`, `cursor`),
//! `GET /audit/runs`, `GET /bench/runs`, `GET /runs/:id`, `GET /runs/:id/artifacts`,
//! `GET /runs/:id/artifacts/sync`, `GET /runs/:id/artifacts/:artifact_id`,
//! `GET /runs/:id/artifacts/:artifact_id/content`, `GET /runs/:id/findings` (+ `tool`, `file`,
//! `fingerprint`, `limit`, `cursor`).
//!
//! Every run a reader returns goes through `owner::annotate`, so a running run whose owner is gone carries
//! the same `status_note` here as in the CLI. The content route answers with the bytes inline
//! (`retrieval.mode: inline_base64`, `content_base64`); the daemon's HTTP layer streams the same file instead,
//! opened by the same function ([`Api::open_artifact`]).

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use homeboy_api::runs::{
    ArtifactAnswer, ArtifactList, ArtifactSync, InlineContent, Retrieval, RetrievalMode, RunAnswer,
    SyncSummary,
};
use homeboy_config::components::ToolKind;
use homeboy_observations::artifact_path::{OpenedArtifact, open_artifact};
use homeboy_observations::artifacts::sha256_of;
use homeboy_observations::owner::annotate;
use homeboy_observations::{
    FindingFilter, ObservationError, Run, RunFilter, RunStatus, StoredArtifact,
};
use serde_json::Value;

use super::domain_errors::{artifact_error, observation_error};
use super::paging::page_limit;
use crate::router::{Call, Cost, Data, Router, data};
use crate::{Api, ApiError, ErrorKind, Method};

/// Largest artifact the transport-free handler inlines as base64.
pub const MAX_INLINE_BYTES: u64 = 16 * 1024 * 1024;

pub(crate) fn register(router: &mut Router<Api>) {
    router.add_raw(Method::Get, "/runs", Cost::Read, list);
    router.add_raw(Method::Get, "/audit/runs", Cost::Read, list_audit);
    router.add_raw(Method::Get, "/bench/runs", Cost::Read, list_bench);
    router.add(Method::Get, "/runs/:id", Cost::Read, show);
    router.add(
        Method::Get,
        "/runs/:id/artifacts",
        Cost::Blocking,
        artifacts,
    );
    router.add(
        Method::Get,
        "/runs/:id/artifacts/sync",
        Cost::Blocking,
        sync,
    );
    router.add(
        Method::Get,
        "/runs/:id/artifacts/:artifact_id",
        Cost::Read,
        artifact,
    );
    router.add(
        Method::Get,
        "/runs/:id/artifacts/:artifact_id/content",
        Cost::Blocking,
        content,
    );
    router.add_raw(Method::Get, "/runs/:id/findings", Cost::Read, findings);
}

/// `(run id, artifact id)` of a `GET /runs/:id/artifacts/:artifact_id/content` path (still
/// percent-encoded), for transports that stream the bytes themselves.
pub fn artifact_content_route(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/runs/")?;
    let rest = rest.strip_suffix("/content")?;
    let (run, artifact) = rest.split_once("/artifacts/")?;
    if run.is_empty() || artifact.is_empty() || run.contains('/') || artifact.contains('/') {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((decode(run)?, decode(artifact)?))
}

impl Api {
    /// Opens the bytes of artifact `artifact_id` of run `run_id` — the one lookup and safety check that both
    /// the inline content route and the daemon's streaming route use.
    pub fn open_artifact(
        &self,
        run_id: &str,
        artifact_id: &str,
    ) -> Result<(StoredArtifact, OpenedArtifact), ApiError> {
        let record = self.artifact_record(run_id, artifact_id)?;
        let opened = open_artifact(self.paths.artifact_root(), &record).map_err(artifact_error)?;
        Ok((record, opened))
    }

    fn artifact_record(&self, run_id: &str, artifact_id: &str) -> Result<StoredArtifact, ApiError> {
        let store = self.observation_store()?;
        require_run(self, run_id)?;
        store
            .artifact(run_id, artifact_id)
            .map_err(observation_error)?
            .ok_or_else(|| {
                observation_error(ObservationError::NotFound {
                    kind: "artifact",
                    id: artifact_id.to_string(),
                })
            })
    }
}

fn run_filter(call: &Call<'_>, kind: Option<ToolKind>) -> Result<RunFilter, ApiError> {
    let req = call.req;
    let kind = match (kind, req.query("kind")) {
        (Some(fixed), Some(asked)) if asked != fixed.as_str() => {
            return Err(ApiError::invalid_argument(
                "kind",
                format!("this route lists {fixed} runs only"),
            ));
        }
        (Some(fixed), _) => Some(fixed.as_str().to_string()),
        (None, Some(asked)) => {
            let known = ToolKind::parse(asked).ok_or_else(|| {
                ApiError::invalid_argument(
                    "kind",
                    format!("{asked:?} is not one of lint, test, audit, bench, build, review"),
                )
            })?;
            Some(known.as_str().to_string())
        }
        (None, None) => None,
    };
    let status = req
        .query("status")
        .map(|s| {
            RunStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_argument(
                    "status",
                    format!("{s:?} is not one of running, pass, fail, error, skipped, stale"),
                )
            })
        })
        .transpose()?;
    Ok(RunFilter {
        kind,
        component: req.query("component").map(str::to_string),
        rig: req.query("rig").map(str::to_string),
        status,
        limit: page_limit(req.query_u64("limit")?, 50)?,
        cursor: req
            .query("cursor")
            .map(|cursor| {
                if homeboy_observations::is_id(cursor) {
                    Ok(cursor.to_string())
                } else {
                    Err(ApiError::invalid_argument(
                        "cursor",
                        "is not a cursor from a previous page (a run id)",
                    ))
                }
            })
            .transpose()?,
    })
}

/// `{"runs": [...], "next_cursor": ...}`, serialised by the store (finished runs are copied as stored);
/// kept while the store does not change, unless the page holds a running run.
fn list_runs(api: &Api, call: &Call<'_>, kind: Option<ToolKind>) -> Result<Data, ApiError> {
    let filter = run_filter(call, kind)?;
    api.kept_read(call.req, |store| {
        let mut out = Vec::with_capacity(1024 * filter.limit.min(64) + 64);
        out.extend_from_slice(br#"{"runs":"#);
        let page = store
            .list_runs_json(&filter, &mut out)
            .map_err(observation_error)?;
        out.extend_from_slice(br#","next_cursor":"#);
        write_json(&mut out, &page.next_cursor)?;
        out.push(b'}');
        Ok((out, !page.has_running))
    })
}

fn write_json(out: &mut Vec<u8>, value: &impl serde::Serialize) -> Result<(), ApiError> {
    serde_json::to_writer(out, value).map_err(|e| {
        ApiError::internal("serialising the answer failed").with_internal_detail(e.to_string())
    })
}

fn list(api: &Api, call: &Call<'_>) -> Result<Data, ApiError> {
    list_runs(api, call, None)
}

fn list_audit(api: &Api, call: &Call<'_>) -> Result<Data, ApiError> {
    list_runs(api, call, Some(ToolKind::Audit))
}

fn list_bench(api: &Api, call: &Call<'_>) -> Result<Data, ApiError> {
    list_runs(api, call, Some(ToolKind::Bench))
}

fn require_run(api: &Api, id: &str) -> Result<Run, ApiError> {
    let mut run = api
        .observation_store()?
        .run(id)
        .map_err(observation_error)?
        .ok_or_else(|| {
            observation_error(ObservationError::NotFound {
                kind: "run",
                id: id.to_string(),
            })
        })?;
    annotate(&mut run);
    Ok(run)
}

fn show(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    data(RunAnswer {
        run: require_run(api, call.param("id"))?,
    })
}

fn artifacts(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let run_id = call.param("id");
    require_run(api, run_id)?;
    let records = api
        .observation_store()?
        .artifacts(run_id)
        .map_err(observation_error)?;
    data(ArtifactList {
        run_id: run_id.to_string(),
        artifacts: records.iter().map(StoredArtifact::view).collect(),
    })
}

/// Checks every recorded artifact against the artifact root as of now (the file opens within the root and
/// has its recorded size; with `verify=sha256` its digest is recomputed too) and reports the retrieval
/// contract that holds now: a record whose bytes are gone or changed is reported `metadata_only`. Changes
/// nothing.
fn sync(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let run_id = call.param("id");
    let verify_digest = match call.req.query("verify") {
        None | Some("size") => false,
        Some("sha256") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(
                "verify",
                format!("{other:?} is not one of size, sha256"),
            ));
        }
    };
    require_run(api, run_id)?;
    let records = api
        .observation_store()?
        .artifacts(run_id)
        .map_err(observation_error)?;
    let (mut available, mut unavailable, mut metadata_only) = (0, 0, 0);
    let mut views = Vec::with_capacity(records.len());
    for record in &records {
        let mut view = record.view();
        if record.stored_path.is_none() {
            metadata_only += 1;
        } else {
            match check_bytes(api, record, verify_digest) {
                Ok(()) => available += 1,
                Err(problem) => {
                    unavailable += 1;
                    let mut demoted = record.clone();
                    demoted.stored_path = None;
                    view = demoted.view();
                    view.path = record.stored_path.clone().unwrap_or_default();
                    view.note = Some(problem);
                }
            }
        }
        views.push(view);
    }
    data(ArtifactSync {
        run_id: run_id.to_string(),
        artifacts: views,
        summary: SyncSummary {
            total: records.len(),
            available,
            unavailable,
            metadata_only,
            verified: if verify_digest { "sha256" } else { "size" }.to_string(),
        },
    })
}

fn check_bytes(api: &Api, record: &StoredArtifact, verify_digest: bool) -> Result<(), String> {
    let opened = open_artifact(api.paths.artifact_root(), record).map_err(|e| e.to_string())?;
    if opened.size_bytes != record.size_bytes {
        return Err(format!(
            "the file is {} bytes, {} were recorded",
            opened.size_bytes, record.size_bytes
        ));
    }
    if verify_digest {
        let mut file = opened.file;
        if sha256_of(&mut file).map_err(|e| e.to_string())? != record.sha256 {
            return Err("the file's SHA-256 differs from the recorded one".into());
        }
    }
    Ok(())
}

fn artifact(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let record = api.artifact_record(call.param("id"), call.param("artifact_id"))?;
    data(ArtifactAnswer {
        artifact: record.view(),
    })
}

fn content(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let (record, opened) = api.open_artifact(call.param("id"), call.param("artifact_id"))?;
    if opened.size_bytes > MAX_INLINE_BYTES {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            "artifacts.too_large_for_inline",
            format!(
                "artifact {} is {} bytes; inline content is limited to {MAX_INLINE_BYTES} bytes",
                record.id, opened.size_bytes
            ),
        )
        .with_hint("fetch it from the daemon's byte route or with its fetch_command"));
    }
    let mut bytes = Vec::with_capacity(opened.size_bytes as usize);
    opened
        .file
        .take(MAX_INLINE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            ApiError::internal("reading the artifact failed").with_internal_detail(e.to_string())
        })?;
    let retrieval = Retrieval {
        mode: RetrievalMode::InlineBase64,
        content_field: Some("content_base64".into()),
    };
    let mut artifact = record.view();
    artifact.retrieval = retrieval.clone();
    data(InlineContent {
        artifact,
        retrieval,
        size_bytes: bytes.len(),
        content_base64: STANDARD.encode(&bytes),
    })
}

/// `{"run_id": ..., "findings": [...], "next_cursor": ...}`, serialised by the store.
fn findings(api: &Api, call: &Call<'_>) -> Result<Data, ApiError> {
    let run_id = call.param("id");
    let req = call.req;
    let cursor = req
        .query_u64("cursor")?
        .map(|c| {
            u32::try_from(c).map_err(|_| ApiError::invalid_argument("cursor", "is out of range"))
        })
        .transpose()?;
    let filter = FindingFilter {
        tool: req.query("tool").map(str::to_string),
        file: req.query("file").map(str::to_string),
        fingerprint: req.query("fingerprint").map(str::to_string),
        limit: page_limit(req.query_u64("limit")?, 100)?,
        cursor,
    };
    // A run's findings change only with a write (its completion), so the answer is always kept.
    api.kept_read(req, |store| {
        let mut out = Vec::with_capacity(512 * filter.limit.min(64) + 64);
        out.extend_from_slice(br#"{"run_id":"#);
        write_json(&mut out, &run_id)?;
        out.extend_from_slice(br#","findings":"#);
        let next = store
            .findings_json(run_id, &filter, &mut out)
            .map_err(observation_error)?;
        out.extend_from_slice(br#","next_cursor":"#);
        write_json(&mut out, &next)?;
        out.push(b'}');
        Ok((out, true))
    })
}
