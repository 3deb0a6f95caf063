//! The OpenAPI 3.1 document of the contract, generated from the wire types (feature `schema`).
//!
//! Every route of the daemon and broker (`homeboy daemon serve`, `homeboy-broker`: the same routes) and of
//! the preview ingress's control API is one entry of the table in [`build`]: its method and path, which
//! server answers it, its parameters with their bounds, its request body type, its answer type inside the
//! envelope (or the bytes, HTML or event stream it answers instead), the error statuses it can answer and
//! the auth it needs. The JSON Schemas of the types come from schemars (JSON Schema 2020-12, which is
//! OpenAPI 3.1's dialect): request bodies as they are deserialised, answers as they are serialised, so a
//! field a server always writes is `required` and one a client may leave out is not. Each error status has
//! one response whose `code` enumerates the codes of that status from [`crate::codes`].
//!
//! `docs/openapi.json` is [`document`] (every server; `cargo xtask codegen --check` fails when the committed
//! file differs); each server answers `GET /openapi.json` with [`document_for`] itself.

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::codes;
use crate::components::{
    ComponentAnswer, ComponentChangesAnswer, ComponentList, ComponentStatusAnswer, NoOptions,
    RigAnswer, RigCheckAnswer, RigList, StackAnswer, StackList, StackStatusAnswer,
};
use crate::identity::{ConfigPaths, Health, Version};
use crate::jobs::{
    ClaimAnswer, ClaimBody, EventAnswer, EventsAnswer, EventsBody, FinishBody, HeartbeatAnswer,
    HeartbeatBody, Job, JobAnswer, JobDetail, JobEvent, JobEvents, JobList, MAX_CLAIM_WAIT_MS,
    RuntimeJobs, SessionAnswer, SessionRequest, SubmitAnswer, SubmitRequest,
};
use crate::paging::MAX_PAGE;
use crate::preview::{
    self as wire, Accepted, CloseRequest, Closed, HostStatus, IngressStatus, NextRequest,
    NextResponse, RegisterRequest, RegisterResponse, RequestBodyRequest, RequestBodyResponse,
    RespondChunkRequest, RespondRequest, RouteStatusReport,
};
use crate::runs::{ArtifactAnswer, ArtifactList, ArtifactSync, FindingList, RunAnswer, RunList};
use crate::tools::{AnalysisJobAnswer, ToolRunRequest, ToolSpec};
use crate::tunnel::ManagedServices;
use crate::{ErrorKind, auth};

/// Which server answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `homeboy daemon serve` and `homeboy-broker` (the same routes).
    Daemon,
    /// `homeboy-ingress serve` (the control API on its own hosts).
    Ingress,
}

impl Server {
    fn tag(self) -> &'static str {
        match self {
            Server::Daemon => "daemon",
            Server::Ingress => "ingress",
        }
    }
}

/// The whole contract: every server's routes (what `docs/openapi.json` holds).
pub fn document() -> Value {
    build(None)
}

/// The routes `server` answers: what it serves at `GET /openapi.json`.
pub fn document_for(server: Server) -> Value {
    build(Some(server))
}

/// `document` as the text committed in `docs/openapi.json` (pretty, with a final newline).
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// Where request-body schemas are collected before they are merged with the answer schemas.
const INPUT_DEFS: &str = "/components/schemas/__input__";
const SCHEMAS: &str = "#/components/schemas/";

struct Doc {
    filter: Option<Server>,
    /// Answers: how types are serialised.
    output: SchemaGenerator,
    /// Request bodies: how types are deserialised.
    input: SchemaGenerator,
    paths: Map<String, Value>,
}

impl Doc {
    fn new(filter: Option<Server>) -> Doc {
        let settings = |path: &str| {
            let path = path.to_string();
            SchemaSettings::draft2020_12()
                .with(move |s| {
                    s.definitions_path = path.into();
                    s.meta_schema = None;
                })
                .with_transform(crate::schema_rules::IntegerBounds)
        };
        Doc {
            filter,
            output: settings("/components/schemas")
                .for_serialize()
                .into_generator(),
            input: settings(INPUT_DEFS).for_deserialize().into_generator(),
            paths: Map::new(),
        }
    }

    fn op(
        &mut self,
        server: Server,
        method: &'static str,
        path: &'static str,
        tag: &'static str,
        summary: &str,
    ) -> Op<'_> {
        let id: String = format!("{method}{path}")
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, part)| {
                let mut chars = part.chars();
                match (i, chars.next()) {
                    (0, Some(first)) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    (_, Some(first)) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                    _ => String::new(),
                }
            })
            .collect();
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(id));
        operation.insert("tags".into(), json!([server.tag(), tag]));
        operation.insert("summary".into(), json!(summary));
        Op {
            doc: self,
            server,
            method,
            path,
            operation,
            parameters: Vec::new(),
            responses: Map::new(),
        }
    }

    fn answer<T: JsonSchema>(&mut self) -> Value {
        self.output.subschema_for::<T>().to_value()
    }

    fn request<T: JsonSchema>(&mut self) -> Value {
        self.input.subschema_for::<T>().to_value()
    }
}

struct Op<'a> {
    doc: &'a mut Doc,
    server: Server,
    method: &'static str,
    path: &'static str,
    operation: Map<String, Value>,
    parameters: Vec<Value>,
    responses: Map<String, Value>,
}

impl Op<'_> {
    fn describe(mut self, text: &str) -> Self {
        self.operation.insert("description".into(), json!(text));
        self
    }

    fn path_param(mut self, name: &str, description: &str, schema: Value) -> Self {
        self.parameters.push(json!({
            "name": name, "in": "path", "required": true, "description": description, "schema": schema,
        }));
        self
    }

    fn id_param(self, name: &str, what: &str) -> Self {
        self.path_param(
            name,
            &format!("The {what}'s id."),
            json!({"type": "string"}),
        )
    }

    fn declaration_param(self, what: &str) -> Self {
        self.path_param(
            "id",
            &format!("The {what}'s id (its declaration file's name)."),
            id_schema(),
        )
    }

    fn query(mut self, name: &str, description: &str, schema: Value) -> Self {
        self.parameters.push(json!({
            "name": name, "in": "query", "required": false, "description": description, "schema": schema,
        }));
        self
    }

    fn required_query(mut self, name: &str, description: &str, schema: Value) -> Self {
        self.parameters.push(json!({
            "name": name, "in": "query", "required": true, "description": description, "schema": schema,
        }));
        self
    }

    fn header(mut self, name: &str, description: &str, schema: Value) -> Self {
        self.parameters.push(json!({
            "name": name, "in": "header", "required": false, "description": description, "schema": schema,
        }));
        self
    }

    fn limit(self, default: u64) -> Self {
        self.query(
            "limit",
            &format!("Page size (default {default}, at most {MAX_PAGE})."),
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": default}),
        )
    }

    /// A JSON request body of type `T`.
    fn body<T: JsonSchema>(mut self, required: bool, description: &str) -> Self {
        let schema = self.doc.request::<T>();
        self.operation.insert(
            "requestBody".into(),
            json!({
                "required": required,
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }),
        );
        self
    }

    /// `200` with the success envelope around a `T`.
    fn ok<T: JsonSchema>(self, description: &str) -> Self {
        let data = self.doc.answer::<T>();
        self.ok_data(description, data)
    }

    fn ok_data(mut self, description: &str, data: Value) -> Self {
        self.responses.insert(
            "200".into(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": envelope(data)}},
            }),
        );
        self
    }

    fn response(mut self, status: u16, response: Value) -> Self {
        self.responses.insert(status.to_string(), response);
        self
    }

    /// Error statuses this route answers (besides those every route of its server may answer).
    fn errors(mut self, statuses: &[u16]) -> Self {
        for status in statuses {
            self.responses.insert(
                status.to_string(),
                json!({"$ref": format!("#/components/responses/Error{status}")}),
            );
        }
        self
    }

    fn security(mut self, schemes: &[&str]) -> Self {
        let alternatives: Vec<Value> = schemes.iter().map(|s| json!({ *s: [] })).collect();
        self.operation
            .insert("security".into(), Value::Array(alternatives));
        self
    }

    fn link(mut self, status: u16, name: &str, operation: &str, parameters: Value) -> Self {
        if let Some(Value::Object(response)) = self.responses.get_mut(&status.to_string()) {
            let links = response
                .entry("links")
                .or_insert_with(|| Value::Object(Map::new()));
            links[name] = json!({"operationId": operation, "parameters": parameters});
        }
        self
    }

    fn done(mut self) {
        if self.doc.filter.is_some_and(|f| f != self.server) {
            return;
        }
        // Every route of the daemon passes its Host and Origin guard (400 for a Host that is not one, 403
        // for a foreign one) and can fail inside (500).
        let common: &[u16] = match self.server {
            Server::Daemon => &[400, 403, 500],
            Server::Ingress => &[500],
        };
        self = self.errors(common);
        let mut responses: Vec<(String, Value)> =
            std::mem::take(&mut self.responses).into_iter().collect();
        responses.sort_by(|a, b| a.0.cmp(&b.0));
        if !self.parameters.is_empty() {
            self.operation
                .insert("parameters".into(), Value::Array(self.parameters));
        }
        self.operation.insert(
            "responses".into(),
            Value::Object(responses.into_iter().collect()),
        );
        let item = self
            .doc
            .paths
            .entry(self.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if item.get(self.method).is_some() {
            // A route both servers answer (`GET /openapi.json`): the whole document keeps the daemon's entry
            // (registered first); the ingress's own document has its own.
            return;
        }
        if self.server == Server::Ingress && self.doc.filter.is_none() {
            item["servers"] = json!([{
                "url": "http://127.0.0.1:{port}",
                "description": "homeboy-ingress (the control API answers on the ingress's own hosts: loopback names, --domain, --control-host)",
                "variables": {"port": {"default": "7350"}},
            }]);
        }
        item[self.method] = Value::Object(self.operation);
    }
}

/// `{"success": true, "data": <data>}`.
fn envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": true}, "data": data},
    })
}

fn id_schema() -> Value {
    json!({"type": "string", "pattern": crate::patterns::ID})
}

fn u64_schema() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
}

/// A query text that may not contain NUL (the run index refuses it).
fn text_filter() -> Value {
    json!({"type": "string", "pattern": "^[^\\u0000]*$"})
}

/// `text/event-stream` whose events are described one by one: `(event name, data schema)`.
fn event_stream(description: &str, events: &[(&str, Value)]) -> Value {
    let variants: Vec<Value> = events
        .iter()
        .map(|(name, data)| {
            json!({
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": name},
                    "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
                    "id": {"type": "string"},
                    "retry": {"type": "integer"},
                },
            })
        })
        .collect();
    json!({
        "description": description,
        "content": {"text/event-stream": {"schema": {"oneOf": variants}}},
    })
}

/// Error statuses in the order the document lists them.
const ERROR_KINDS: [ErrorKind; 10] = ErrorKind::ALL;

fn error_components() -> (Map<String, Value>, Map<String, Value>) {
    let mut schemas = Map::new();
    let mut responses = Map::new();
    schemas.insert(
        "Hint".into(),
        json!({
            "type": "object",
            "required": ["message"],
            "properties": {"message": {"type": "string"}},
        }),
    );
    for kind in ERROR_KINDS {
        let status = kind.status();
        let listed: Vec<&codes::Code> = codes::of_kind(kind).collect();
        let names: Vec<&str> = listed.iter().map(|c| c.code).collect();
        schemas.insert(
            format!("Error{status}"),
            json!({
                "type": "object",
                "description": format!("The error envelope of a {status} answer."),
                "required": ["success", "error"],
                "properties": {
                    "success": {"const": false},
                    "error": {
                        "type": "object",
                        "required": ["code", "message", "details", "hints"],
                        "properties": {
                            "code": {"type": "string", "enum": names},
                            "message": {"type": "string", "description": "For people; never a secret, a server path or an internal error text."},
                            "details": {"type": "object", "description": "Machine-readable: `field` and `problem` for validation errors, `error_id` for internal ones, ..."},
                            "hints": {"type": "array", "items": {"$ref": format!("{SCHEMAS}Hint")}},
                        },
                    },
                },
            }),
        );
        let mut description = format!("Error envelope ({status}). Codes:\n");
        for code in listed {
            description.push_str(&format!("- `{}`: {}\n", code.code, code.when));
        }
        let mut response = json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": format!("{SCHEMAS}Error{status}")}}},
        });
        if status == 405 {
            response["headers"] = json!({"Allow": {"description": "The methods the path has.", "schema": {"type": "string"}}});
        }
        responses.insert(format!("Error{status}"), response);
    }
    (schemas, responses)
}

/// Replaces every `$ref` into the request-body definitions with its final name.
fn rename_input_refs(value: &mut Value, renamed: &Map<String, Value>) {
    let prefix = format!("#{INPUT_DEFS}/");
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(name) = target.strip_prefix(&prefix)
            {
                let final_name = renamed
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or(name)
                    .to_string();
                *target = format!("{SCHEMAS}{final_name}");
            }
            for child in map.values_mut() {
                rename_input_refs(child, renamed);
            }
        }
        Value::Array(items) => {
            for child in items {
                rename_input_refs(child, renamed);
            }
        }
        _ => {}
    }
}

fn build(filter: Option<Server>) -> Value {
    let mut doc = Doc::new(filter);
    daemon_routes(&mut doc);
    ingress_routes(&mut doc);

    // Answer and request schemas share a name when they are the same schema; a type that reads differently
    // than it is written gets an `Input` twin for request bodies.
    let mut schemas = doc.output.take_definitions(true);
    let inputs = doc.input.take_definitions(true);
    let mut renamed = Map::new();
    for (name, schema) in &inputs {
        let final_name = match schemas.get(name) {
            None => name.clone(),
            Some(existing) if *existing == *schema => name.clone(),
            Some(_) => format!("{name}Input"),
        };
        renamed.insert(name.clone(), json!(final_name));
    }
    for (name, mut schema) in inputs {
        rename_input_refs(&mut schema, &renamed);
        let final_name = renamed[&name].as_str().unwrap_or(&name).to_string();
        schemas.insert(final_name, schema);
    }
    let mut paths = Value::Object(std::mem::take(&mut doc.paths));
    rename_input_refs(&mut paths, &renamed);
    let (error_schemas, responses) = error_components();
    schemas.extend(error_schemas);
    let schemas: Map<String, Value> = {
        let mut sorted: Vec<(String, Value)> = schemas.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.into_iter().collect()
    };

    let servers = match filter {
        Some(Server::Ingress) => json!([{
            "url": "http://127.0.0.1:{port}", "description": "homeboy-ingress",
            "variables": {"port": {"default": "7350"}},
        }]),
        _ => json!([
            {"url": "http://127.0.0.1:{port}", "description": "homeboy daemon (`homeboy daemon status` names its port) or homeboy-broker (7421)",
             "variables": {"port": {"default": "7421"}}},
        ]),
    };
    let title = match filter {
        Some(Server::Daemon) => "homeboy daemon and broker",
        Some(Server::Ingress) => "homeboy preview ingress",
        None => "homeboy",
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP contract of homeboy's servers: the daemon and broker (loopback; the broker's \
                `/runner/*` may be published through a reverse proxy) and the preview ingress's control API. \
                Every answer is a JSON envelope — `{\"success\": true, \"data\": ...}` or `{\"success\": false, \
                \"error\": {code, message, details, hints}}` — except the artifact bytes, the event streams, the \
                dashboard's files and this document. The error kind decides the status; each status lists its \
                codes. Fields are only ever added. The guide is docs/http-contract.md; this document is \
                generated from the `homeboy-api` crate's types.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": servers,
        "tags": [
            {"name": "daemon", "description": "Answered by `homeboy daemon serve` and `homeboy-broker`."},
            {"name": "ingress", "description": "Answered by the preview ingress on its own hosts."},
            {"name": "identity", "description": "Who is answering and where its files are."},
            {"name": "dashboard", "description": "The page at `/` and its files (loopback Hosts only)."},
            {"name": "jobs", "description": "The durable job queue, for people and dashboards."},
            {"name": "runner", "description": "The reverse-runner broker: paired tokens per runner id and scope."},
            {"name": "components", "description": "Components, rigs and stacks at work."},
            {"name": "runs", "description": "Recorded analysis runs, their artifacts and findings."},
            {"name": "tools", "description": "The tool allowlist and daemon-executed analysis jobs."},
            {"name": "tunnel", "description": "Managed services and preview sessions of this machine."},
            {"name": "preview", "description": "The preview channel preview clients speak (bearer token per session)."},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "runnerToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "A broker token paired with `homeboy runner broker pair --runner-id <id> --scopes work|submit`: \
                        valid for its runner id and scope only (401 `broker.auth_denied` otherwise). A daemon started with \
                        `--allow-unauthenticated-loopback` also accepts requests without a token.",
                },
                "runnerTokenHeader": {
                    "type": "apiKey", "in": "header", "name": auth::BROKER_TOKEN_HEADER,
                    "description": "The same broker token in a header of its own.",
                },
                "previewClientToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "A preview client token allowed by a tunnel service's `policy.native_preview_auth`; \
                        every call after `register` presents the token the session was granted with.",
                },
            },
        },
    })
}

fn daemon_routes(doc: &mut Doc) {
    use Server::Daemon as D;

    // Identity.
    doc.op(D, "get", "/health", "identity", "Health and identity")
        .ok::<Health>("`status: ok` and who is answering.")
        .done();
    doc.op(D, "get", "/version", "identity", "Version and build id")
        .ok::<Version>("The version and build id.")
        .done();
    doc.op(
        D,
        "get",
        "/config/paths",
        "identity",
        "Where the daemon keeps its files",
    )
    .ok::<ConfigPaths>("The daemon's directories and files.")
    .done();
    doc.op(D, "get", "/runtime/jobs", "identity", "The job runtime right now")
        .describe("The claim long polls parked right now: a readiness signal for whoever needs to know a wake-up will reach one.")
        .ok::<RuntimeJobs>("The runtime's counters.")
        .done();
    doc.op(D, "get", "/openapi.json", "identity", "This document")
        .describe("The OpenAPI document of the routes this server answers (not wrapped in the envelope).")
        .response(200, json!({
            "description": "An OpenAPI 3.1 document.",
            "content": {"application/json": {"schema": {"type": "object", "required": ["openapi", "paths"]}}},
        }))
        .done();

    // Dashboard.
    doc.op(D, "get", "/", "dashboard", "The dashboard")
        .describe("The dashboard page (jobs live, runs and findings, components, rigs, stacks, managed services, preview \
            sessions, the daemon's status). Served only to requests whose Host names this server on loopback (404 \
            `not_found.route` through an allowed public name), with a strict Content-Security-Policy; it reads the \
            routes of this document and only ever mutates through `POST /jobs/{id}/cancel`.")
        .response(200, json!({
            "description": "The page.",
            "headers": {"Content-Security-Policy": {"description": "No inline script or style; same-origin only.", "schema": {"type": "string"}}},
            "content": {"text/html": {"schema": {"type": "string"}}},
        }))
        .errors(&[404])
        .done();
    doc.op(
        D,
        "get",
        "/ui/{file}",
        "dashboard",
        "A file of the dashboard",
    )
    .path_param("file", "`app.js` or `app.css`.", json!({"type": "string"}))
    .response(
        200,
        json!({
            "description": "The file (embedded in the binary).",
            "content": {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
            },
        }),
    )
    .errors(&[404])
    .done();

    // Jobs.
    doc.op(D, "get", "/jobs", "jobs", "List jobs, newest first")
        .query("status", "Only jobs in this state.", json!({"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]}))
        .query("operation", "Only jobs of this operation.", json!({"type": "string"}))
        .query("runner", "Only jobs for this runner id.", json!({"type": "string"}))
        .limit(50)
        .query("cursor", "`next_cursor` of the previous page.", u64_schema())
        .ok::<JobList>("One page of jobs.")
        .errors(&[400])
        .done();
    let job_event = doc.answer::<JobEvent>();
    let job = doc.answer::<Job>();
    let stream_error = json!({"$ref": format!("{SCHEMAS}Error404")});
    doc.op(D, "get", "/jobs/events", "jobs", "Follow every job's changes (Server-Sent Events)")
        .describe("A stream of job changes for dashboards: first `event: ready` (from then on no change is missed: \
            list `GET /jobs` after it), then `event: job` with the job as it is now, each time a job is enqueued, \
            claimed, updated, finished or cancelled. A `: keep-alive` comment every 15 s; the stream ends when the \
            daemon stops.")
        .required_query("follow", "Must be `true`: this route is a stream.", json!({"type": "string", "enum": ["true", "1"]}))
        .response(200, event_stream("Server-Sent Events.", &[("ready", json!({"type": "object"})), ("job", job)]))
        .errors(&[400])
        .done();
    doc.op(D, "get", "/jobs/{id}", "jobs", "A job and its request")
        .id_param("id", "job")
        .ok::<JobDetail>("The job and the request it was submitted with.")
        .errors(&[404])
        .link(
            200,
            "events",
            "getJobsIdEvents",
            json!({"id": "$request.path.id"}),
        )
        .done();
    let job_events_schema = doc.answer::<JobEvents>();
    doc.op(D, "get", "/jobs/{id}/events", "jobs", "A job's events (a page, or followed as Server-Sent Events)")
        .describe("Without `follow`: one page of events after `after`. With `follow=true`: a Server-Sent Events stream \
            of the events after `after` (or `Last-Event-ID`), then new ones as they happen: `id: <sequence>`, \
            `event: <kind>`, `data: <JobEvent>`; it ends with `event: end` after the job's terminal status event, \
            or `event: stream_error` carrying an error envelope.")
        .id_param("id", "job")
        .query("after", "Only events with a greater sequence.", u64_schema())
        .limit(100)
        .query("follow", "`true` (or `1`) for the event stream.", json!({"type": "string", "enum": ["true", "1", "false", "0"]}))
        .header("Last-Event-ID", "Where a followed stream resumes: the id of an event (wins over `after`).", json!({"type": "string", "pattern": "^[0-9]*$"}))
        .response(200, {
            let mut stream = event_stream("One page of events (JSON), or with `follow=true` the event stream.", &[
                ("status", job_event.clone()), ("stdout", job_event.clone()), ("stderr", job_event.clone()),
                ("progress", job_event.clone()), ("result", job_event.clone()), ("error", job_event),
                ("end", json!({"type": "object"})), ("stream_error", stream_error),
            ]);
            stream["content"]["application/json"] = json!({"schema": envelope(job_events_schema)});
            stream
        })
        .errors(&[400, 404])
        .done();
    doc.op(D, "post", "/jobs/{id}/cancel", "jobs", "Cancel a job")
        .describe("Cancelling a cancelled job is a no-op; a finished one is `jobs.illegal_transition` (409). A running \
            runner job learns of it at its next heartbeat; a daemon-executed tool is stopped.")
        .id_param("id", "job")
        .ok::<JobAnswer>("The job, cancelled.")
        .errors(&[404, 409, 413])
        .done();

    // Reverse-runner broker.
    let runner_security = ["runnerToken", "runnerTokenHeader"];
    doc.op(
        D,
        "post",
        "/runner/sessions",
        "runner",
        "Open a runner session (scope `work`)",
    )
    .body::<SessionRequest>(true, "Who is working.")
    .ok::<SessionAnswer>("The session as the broker recorded it.")
    .errors(&[401, 413])
    .security(&runner_security)
    .done();
    doc.op(D, "post", "/runner/jobs", "runner", "Submit a job for a runner (scope `submit`)")
        .describe("A command for a runner: argv, no shell. Secret values never travel in it: name them in \
            `secret_env_names`; sensitive `env` names and inline secret fields are refused \
            (`validation.inline_secret`). A repeated `metadata.submission_key` answers the existing job \
            (`created: false`), or 409 `validation.conflict` with a different request.")
        .body::<SubmitRequest>(true, "The job.")
        .ok::<SubmitAnswer>("The queued job and where to poll it.")
        .errors(&[401, 409, 413])
        .security(&runner_security)
        .link(200, "job", "getJobsId", json!({"id": "$response.body#/data/job/id"}))
        .link(200, "cancel", "postJobsIdCancel", json!({"id": "$response.body#/data/job/id"}))
        .done();
    doc.op(D, "post", "/runner/jobs/claim", "runner", "Claim the next job (scope `work`), optionally as a long poll")
        .describe(&format!("`wait_ms` (at most {MAX_CLAIM_WAIT_MS}) parks the request until a job becomes claimable or \
            the time is up; `claim: null` when there was no work."))
        .body::<ClaimBody>(true, "Who claims, and for how long.")
        .ok::<ClaimAnswer>("The claim, or `null`.")
        .errors(&[401, 413])
        .security(&runner_security)
        .done();
    doc.op(
        D,
        "post",
        "/runner/jobs/{id}/heartbeat",
        "runner",
        "Extend a claim's lease (scope `work`)",
    )
    .id_param("id", "job")
    .body::<HeartbeatBody>(true, "The claim and the new lease.")
    .ok::<HeartbeatAnswer>("The job, and whether it was cancelled (the runner should stop).")
    .errors(&[401, 404, 409, 413])
    .security(&runner_security)
    .done();
    let events_answer =
        json!({"anyOf": [doc.answer::<EventAnswer>(), doc.answer::<EventsAnswer>()]});
    doc.op(D, "post", "/runner/jobs/{id}/events", "runner", "Append output events to a claimed job (scope `work`)")
        .describe("One event (its fields inline) answers `{event}`; a batch in `events` answers `{events}`. `status` \
            events are written by the broker only.")
        .id_param("id", "job")
        .body::<EventsBody>(true, "The claim and one event or a batch.")
        .ok_data("The appended event(s).", events_answer)
        .errors(&[401, 404, 409, 413])
        .security(&runner_security)
        .done();
    doc.op(
        D,
        "post",
        "/runner/jobs/{id}/finish",
        "runner",
        "Finish a claimed job (scope `work`)",
    )
    .id_param("id", "job")
    .body::<FinishBody>(true, "The claim and the outcome.")
    .ok::<JobAnswer>("The finished job.")
    .errors(&[401, 404, 409, 413])
    .security(&runner_security)
    .done();

    // Components, rigs, stacks.
    doc.op(D, "get", "/components", "components", "List components with their git status")
        .describe("A component whose path is missing or not a git checkout is listed with a `status_error`; a \
            declaration that does not parse is listed with its `error`: the listing itself does not fail.")
        .ok::<ComponentList>("Every declared component.")
        .done();
    doc.op(
        D,
        "get",
        "/components/{id}",
        "components",
        "A component's declaration",
    )
    .declaration_param("component")
    .ok::<ComponentAnswer>("The declaration and its tools.")
    .errors(&[404, 409])
    .done();
    doc.op(
        D,
        "get",
        "/components/{id}/status",
        "components",
        "A component's git status",
    )
    .declaration_param("component")
    .ok::<ComponentStatusAnswer>("Branch, HEAD, upstream distance, dirty and untracked counts.")
    .errors(&[404, 409, 503])
    .done();
    doc.op(
        D,
        "get",
        "/components/{id}/changes",
        "components",
        "A component's uncommitted files and recent commits",
    )
    .declaration_param("component")
    .ok::<ComponentChangesAnswer>(
        "Changed files and the commits since the upstream, the last tag or the root.",
    )
    .errors(&[404, 409, 503])
    .done();
    doc.op(D, "get", "/rigs", "components", "List rigs")
        .ok::<RigList>("Every declared rig.")
        .done();
    doc.op(D, "get", "/rigs/{id}", "components", "A rig's declaration")
        .declaration_param("rig")
        .ok::<RigAnswer>("The rig, and whether each of its components is declared.")
        .errors(&[404, 409])
        .done();
    doc.op(
        D,
        "post",
        "/rigs/{id}/check",
        "components",
        "Run a rig's check steps",
    )
    .declaration_param("rig")
    .body::<NoOptions>(false, "No fields (an empty body is fine).")
    .ok::<RigCheckAnswer>("Each step's outcome with its evidence.")
    .errors(&[404, 409, 413])
    .done();
    doc.op(D, "get", "/stacks", "components", "List stacks")
        .ok::<StackList>("Every declared stack.")
        .done();
    doc.op(
        D,
        "get",
        "/stacks/{id}",
        "components",
        "A stack's declaration",
    )
    .declaration_param("stack")
    .ok::<StackAnswer>("The stack.")
    .errors(&[404, 409])
    .done();
    doc.op(D, "post", "/stacks/{id}/status", "components", "A stack's entries against its target")
        .describe("Per entry: applied, pending, conflict (with the conflicting paths) or missing. Nothing in the checkout changes.")
        .declaration_param("stack")
        .body::<NoOptions>(false, "No fields (an empty body is fine).")
        .ok::<StackStatusAnswer>("The stack's status.")
        .errors(&[404, 409, 413, 503])
        .done();

    // Runs, artifacts, findings.
    for (path, summary, kind) in [
        ("/runs", "List runs, newest first", None),
        (
            "/audit/runs",
            "List audit runs, newest first",
            Some("audit"),
        ),
        (
            "/bench/runs",
            "List benchmark runs, newest first",
            Some("bench"),
        ),
    ] {
        let kind_schema = match kind {
            None => {
                json!({"type": "string", "enum": ["lint", "test", "audit", "bench", "build", "review"]})
            }
            Some(kind) => json!({"type": "string", "enum": [kind]}),
        };
        doc.op(D, "get", path, "runs", summary)
            .query("kind", "Only runs of this tool.", kind_schema)
            .query("component", "Only runs of this component.", text_filter())
            .query("rig", "Only runs recorded with this rig.", text_filter())
            .query("status", "Only runs with this outcome.", json!({"type": "string", "enum": ["running", "pass", "fail", "error", "skipped", "stale"]}))
            .limit(50)
            .query("cursor", "`next_cursor` of the previous page (a run id).", json!({"type": "string", "format": "uuid", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}))
            .ok::<RunList>("One page of runs.")
            .errors(&[400])
            .done();
    }
    doc.op(D, "get", "/runs/{id}", "runs", "A run")
        .id_param("id", "run")
        .ok::<RunAnswer>("The run (a running run whose owner is gone carries a `status_note`).")
        .errors(&[404])
        .done();
    doc.op(
        D,
        "get",
        "/runs/{id}/artifacts",
        "runs",
        "A run's artifacts",
    )
    .id_param("id", "run")
    .ok::<ArtifactList>("Each artifact with its retrieval contract.")
    .errors(&[404])
    .done();
    doc.op(D, "get", "/runs/{id}/artifacts/sync", "runs", "Check a run's artifacts against the artifact root now")
        .describe("Each record checked now: one whose bytes are gone or changed is reported `metadata_only` with a `note`. Changes nothing.")
        .id_param("id", "run")
        .query("verify", "`size` (default) or `sha256` (recompute each digest).", json!({"type": "string", "enum": ["size", "sha256"]}))
        .ok::<ArtifactSync>("The artifacts and counts.")
        .errors(&[400, 404])
        .done();
    doc.op(
        D,
        "get",
        "/runs/{id}/artifacts/{artifact_id}",
        "runs",
        "An artifact's record",
    )
    .id_param("id", "run")
    .id_param("artifact_id", "artifact")
    .ok::<ArtifactAnswer>("The artifact.")
    .errors(&[404])
    .done();
    doc.op(D, "get", "/runs/{id}/artifacts/{artifact_id}/content", "runs", "An artifact's bytes")
        .describe("The file itself, not wrapped: its own `Content-Type`, `Content-Length`, a strong `ETag` (its \
            SHA-256), `Last-Modified`, `Content-Disposition`, `Accept-Ranges: bytes`; conditional requests \
            (304, 412) and single, suffix and multiple ranges (206, `multipart/byteranges`; 416 when nothing is \
            satisfiable) per RFC 9110. HEAD too.")
        .id_param("id", "run")
        .id_param("artifact_id", "artifact")
        .header("Range", "Byte ranges (RFC 9110).", json!({"type": "string"}))
        .response(200, json!({
            "description": "The bytes, in the artifact's own media type (any: no schema).",
            "headers": {"ETag": {"description": "The artifact's SHA-256, quoted.", "schema": {"type": "string"}}},
        }))
        .response(206, json!({
            // No `content`: the bytes are the artifact's, in its recorded media type, and a range of a JSON
            // artifact is not JSON (RFC 9110 keeps the type); there is no schema to hold them to.
            "description": "The requested range (in the artifact's media type), or several as `multipart/byteranges`.",
        }))
        .response(304, json!({"description": "Not modified (`If-None-Match`, `If-Modified-Since`)."}))
        .response(412, json!({"description": "A precondition failed (`If-Match`, `If-Unmodified-Since`)."}))
        .response(416, json!({"description": "No requested range is satisfiable (`Content-Range: bytes */<size>`)."}))
        .errors(&[404])
        .done();
    doc.op(D, "get", "/runs/{id}/findings", "runs", "A run's findings")
        .id_param("id", "run")
        .query(
            "tool",
            "Only findings of this tool.",
            json!({"type": "string"}),
        )
        .query(
            "file",
            "Only findings in this file.",
            json!({"type": "string"}),
        )
        .query(
            "fingerprint",
            "Only findings with this fingerprint.",
            json!({"type": "string"}),
        )
        .limit(100)
        .query(
            "cursor",
            "`next_cursor` of the previous page.",
            json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
        )
        .ok::<FindingList>("One page of findings, in the order they were reported.")
        .errors(&[400, 404])
        .done();

    // Tools and analysis jobs.
    doc.op(D, "get", "/tools", "tools", "The tool allowlist")
        .ok::<Vec<ToolSpec>>("Every allowed tool.")
        .done();
    doc.op(D, "get", "/tools/{id}", "tools", "One allowed tool")
        .path_param(
            "id",
            "The tool id (`homeboy.lint`, ...).",
            json!({"type": "string"}),
        )
        .ok::<ToolSpec>("The tool.")
        .errors(&[404])
        .done();
    let run_description = "Enqueues a daemon-executed job (`operation` = the tool id) that runs the tool in the \
        component's checkout, streams its output as `stdout`/`stderr` events, records a run, and ends with a \
        `result` event. Refusals come before any job exists.";
    doc.op(
        D,
        "post",
        "/tools/{id}/run",
        "tools",
        "Run an allowed tool as a job",
    )
    .describe(run_description)
    .path_param(
        "id",
        "The tool id; one off the allowlist is `tools.not_allowed` (403).",
        json!({"type": "string"}),
    )
    .body::<ToolRunRequest>(true, "What to analyse.")
    .ok::<AnalysisJobAnswer>("The queued job and where to poll it.")
    .errors(&[404, 409, 413])
    .link(
        200,
        "job",
        "getJobsId",
        json!({"id": "$response.body#/data/job/id"}),
    )
    .done();
    for (path, tool) in [
        ("/audit", "audit"),
        ("/lint", "lint"),
        ("/test", "test"),
        ("/bench", "bench"),
    ] {
        doc.op(
            D,
            "post",
            path,
            "tools",
            &format!("Run the {tool} tool as a job"),
        )
        .describe(run_description)
        .body::<ToolRunRequest>(true, "What to analyse.")
        .ok::<AnalysisJobAnswer>("The queued job and where to poll it.")
        .errors(&[404, 409, 413])
        .link(
            200,
            "job",
            "getJobsId",
            json!({"id": "$response.body#/data/job/id"}),
        )
        .done();
    }

    // Managed services and preview sessions of this machine.
    doc.op(D, "get", "/tunnel/services", "tunnel", "Managed services and where they stand")
        .describe("Every declared tunnel service with its state, URLs and readiness (the daemon run by `homeboy`; \
            `homeboy-broker` does not read managed services and answers 404 `not_found.route`).")
        .ok::<ManagedServices>("The services.")
        .errors(&[404])
        .done();
    doc.op(D, "get", "/tunnel/previews", "tunnel", "Preview sessions in this machine's route table")
        .describe("The preview ingress route table under this config directory, each session with its lifecycle \
            state now (404 `not_found.route` on `homeboy-broker`).")
        .ok::<RouteStatusReport>("The route table.")
        .errors(&[404])
        .done();
}

fn ingress_routes(doc: &mut Doc) {
    use Server::Ingress as I;
    let token = ["previewClientToken"];
    doc.op(I, "get", "/openapi.json", "identity", "This document")
        .describe("The OpenAPI document of the ingress's control API (not wrapped in the envelope).")
        .response(200, json!({
            "description": "An OpenAPI 3.1 document.",
            "content": {"application/json": {"schema": {"type": "object", "required": ["openapi", "paths"]}}},
        }))
        .done();
    let ingress_status =
        json!({"anyOf": [doc.answer::<IngressStatus>(), doc.answer::<HostStatus>()]});
    doc.op(I, "get", "/_homeboy/preview-ingress/status", "preview", "The running ingress's routes and counters")
        .describe("On the ingress's own hosts the whole table (server paths only to loopback Hosts); on a public \
            preview host only that host's route. The route table comes in pages by session id.")
        .query("limit", "Routes per page (own hosts only).", json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}))
        .query("cursor", "The `next_cursor` of the previous page.", json!({"type": "string"}))
        .ok_data("The status.", ingress_status)
        .errors(&[400])
        .done();
    doc.op(I, "post", wire::REGISTER, "preview", "Register a preview session")
        .describe("Claims `public_host` for this client's `local_origin` (a loopback origin) under the auth policy; \
            answers the channel id, the lease and the transports.")
        .body::<RegisterRequest>(true, "The claim.")
        .ok::<RegisterResponse>("The granted session.")
        .errors(&[400, 401, 403, 409, 413, 503])
        .security(&token)
        .done();
    doc.op(
        I,
        "post",
        wire::NEXT,
        "preview",
        "Long-poll for the next public request",
    )
    .body::<NextRequest>(true, "The session and how long to wait (1–60 s).")
    .ok::<NextResponse>("A request, or `null` when the time is up.")
    .errors(&[400, 401, 404, 410, 413])
    .security(&token)
    .done();
    doc.op(
        I,
        "post",
        wire::RESPOND,
        "preview",
        "Answer a public request",
    )
    .body::<RespondRequest>(true, "The answer (`more: true` announces chunks).")
    .ok::<Accepted>("Accepted.")
    .errors(&[400, 401, 404, 409, 410, 413])
    .security(&token)
    .done();
    doc.op(
        I,
        "post",
        wire::RESPOND_CHUNK,
        "preview",
        "One more chunk of a streamed answer",
    )
    .body::<RespondChunkRequest>(true, "The chunk (`done` ends it, `abort` breaks it off).")
    .ok::<Accepted>("Accepted.")
    .errors(&[400, 401, 404, 409, 410, 413])
    .security(&token)
    .done();
    doc.op(
        I,
        "post",
        wire::REQUEST_BODY,
        "preview",
        "The next chunk of a public request's body",
    )
    .body::<RequestBodyRequest>(true, "Which request.")
    .ok::<RequestBodyResponse>("A chunk, and whether it was the last.")
    .errors(&[400, 401, 404, 409, 410, 413])
    .security(&token)
    .done();
    doc.op(I, "post", wire::CLOSE, "preview", "Close a preview session")
        .body::<CloseRequest>(true, "Which session.")
        .ok::<Closed>("Closed.")
        .errors(&[400, 401, 404, 413])
        .security(&token)
        .done();
    doc.op(
        I,
        "get",
        wire::CONNECT,
        "preview",
        "Open the multiplexed channel of a session",
    )
    .describe(&format!(
        "With `Upgrade: {}` and the session's `{}` and `{}` headers: after `101 Switching \
            Protocols` the ingress speaks HTTP/2 to the client over this connection, one stream per \
            public request.",
        wire::MUX_PROTOCOL,
        wire::HEADER_PUBLIC_HOST,
        wire::HEADER_CHANNEL_ID
    ))
    .header(
        "Upgrade",
        "The multiplexed channel's protocol token.",
        json!({"type": "string", "enum": [wire::MUX_PROTOCOL]}),
    )
    .header(
        wire::HEADER_PUBLIC_HOST,
        "The session's public host.",
        json!({"type": "string"}),
    )
    .header(
        wire::HEADER_CHANNEL_ID,
        "The session's channel id.",
        json!({"type": "string"}),
    )
    .response(
        101,
        json!({"description": "Switching Protocols: the connection now carries the channel."}),
    )
    .errors(&[400, 401, 404, 410])
    .security(&token)
    .done();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves_and_servers_split_the_routes() {
        let all = document();
        let text = serde_json::to_string(&all).unwrap();
        let mut missing = Vec::new();
        for part in text.split("\"$ref\":\"").skip(1) {
            let target = part.split('"').next().unwrap();
            let pointer = target.trim_start_matches('#');
            if all.pointer(pointer).is_none() {
                missing.push(target.to_string());
            }
        }
        assert!(missing.is_empty(), "dangling references: {missing:?}");
        assert!(
            !text.contains("__input__"),
            "request schemas were not merged"
        );
        let daemon = document_for(Server::Daemon);
        let ingress = document_for(Server::Ingress);
        assert!(daemon["paths"]["/jobs"]["get"].is_object());
        assert!(daemon["paths"].get(wire::REGISTER).is_none());
        assert!(ingress["paths"][wire::REGISTER]["post"].is_object());
        assert!(ingress["paths"].get("/jobs").is_none());
        // The whole document holds each server's operations as that server describes them (a route both
        // answer, `GET /openapi.json`, as the daemon does).
        for (server, part) in [("daemon", &daemon), ("ingress", &ingress)] {
            for (path, item) in part["paths"].as_object().unwrap() {
                for (method, operation) in item.as_object().unwrap() {
                    if method == "servers" || (server == "ingress" && path == "/openapi.json") {
                        continue;
                    }
                    assert_eq!(
                        &all["paths"][path][method], operation,
                        "{server}: {method} {path} differs in the whole document"
                    );
                }
            }
        }
        assert_eq!(all["openapi"], "3.1.0");
        // Each error status enumerates its codes from the catalogue.
        let codes_404 = &all["components"]["schemas"]["Error404"]["properties"]["error"]["properties"]
            ["code"]["enum"];
        assert!(
            codes_404
                .as_array()
                .unwrap()
                .contains(&json!("not_found.job"))
        );
    }

    #[test]
    fn answers_are_required_as_written_and_requests_as_read() {
        let all = document();
        let job = &all["components"]["schemas"]["Job"];
        let required = job["required"].as_array().unwrap();
        assert!(required.contains(&json!("artifacts")), "{job}");
        assert!(!required.contains(&json!("stale_reason")), "{job}");
        let claim = &all["components"]["schemas"]["ClaimBody"];
        assert_eq!(claim["required"], json!(["runner_id"]), "{claim}");
    }
}
