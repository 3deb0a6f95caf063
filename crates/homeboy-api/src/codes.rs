//! The catalogue of error codes: every stable dotted code a homeboy server answers, with its error kind (and
//! so its HTTP status) and when it happens. The OpenAPI document lists each status's codes from here, and the
//! contract fuzzer checks every error answer against that list, so a code missing here fails CI.

use crate::ErrorKind;

/// One error code of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub code: &'static str,
    pub kind: ErrorKind,
    /// When a server answers it.
    pub when: &'static str,
}

const fn code(code: &'static str, kind: ErrorKind, when: &'static str) -> Code {
    Code { code, kind, when }
}

use ErrorKind::*;

/// Every code, grouped by kind.
pub const CODES: &[Code] = &[
    code(
        "validation.invalid_argument",
        Validation,
        "a field, parameter or header is wrong (`details: {field, problem}`; `field: host` for a missing, doubled or unreadable Host)",
    ),
    code(
        "validation.unknown_field",
        Validation,
        "the body carries a field the route does not accept",
    ),
    code(
        "validation.invalid_json",
        Validation,
        "the body is not JSON",
    ),
    code(
        "validation.body_unreadable",
        Validation,
        "the request body could not be read to its end",
    ),
    code(
        "validation.mutating_field",
        Validation,
        "a tool request carries `fix`, `write`, `baseline` or `ratchet`",
    ),
    code(
        "validation.inline_secret",
        Validation,
        "a runner job would carry a secret value (a sensitive `env` name or a secret field): name it in `secret_env_names`",
    ),
    code(
        "artifacts.invalid_path",
        Validation,
        "the artifact's recorded path is absolute or contains `..`",
    ),
    code(
        "broker.auth_denied",
        Unauthorized,
        "a runner route without a valid paired token for its scope and runner id",
    ),
    code(
        "preview.auth_denied",
        Unauthorized,
        "a preview client call without the token its session was granted with",
    ),
    code(
        "forbidden.host",
        Forbidden,
        "the `Host` header does not name this loopback server (DNS-rebinding guard)",
    ),
    code(
        "forbidden.origin",
        Forbidden,
        "a browser `Origin` other than the server's own",
    ),
    code(
        "tools.not_allowed",
        Forbidden,
        "`POST /tools/:id/run` names a tool that is not on the allowlist",
    ),
    code(
        "artifacts.path_escape",
        Forbidden,
        "the artifact's recorded path leads (through a symlink) out of the artifact root",
    ),
    code(
        "preview.claim_rejected",
        Forbidden,
        "a preview registration whose claim (client, service, scope, origin) the auth policy refuses",
    ),
    code(
        "preview.host_claim_rejected",
        Forbidden,
        "a preview registration for a host outside the ingress's public host patterns",
    ),
    code("not_found.route", NotFound, "no route has this path"),
    code("not_found.job", NotFound, "the job does not exist"),
    code("not_found.run", NotFound, "the run does not exist"),
    code(
        "not_found.artifact",
        NotFound,
        "the run has no such artifact",
    ),
    code(
        "not_found.component",
        NotFound,
        "no such component is declared",
    ),
    code("not_found.rig", NotFound, "no such rig is declared"),
    code("not_found.stack", NotFound, "no such stack is declared"),
    code(
        "not_found.declaration",
        NotFound,
        "no such declaration file",
    ),
    code("not_found.tool", NotFound, "no such tool on the allowlist"),
    code(
        "artifacts.content_unavailable",
        NotFound,
        "the artifact is a `metadata_only` record: no bytes are served",
    ),
    code(
        "artifacts.content_missing",
        NotFound,
        "the artifact's bytes are no longer under the artifact root",
    ),
    code(
        "preview.channel_not_found",
        NotFound,
        "no open preview channel for this host (or another channel id)",
    ),
    code(
        "preview.request_not_found",
        NotFound,
        "no public request with this id is waiting for an answer",
    ),
    code(
        "method_not_allowed",
        MethodNotAllowed,
        "the path exists with other methods (`details.allowed`, `Allow` header)",
    ),
    code(
        "validation.conflict",
        Conflict,
        "a repeated `metadata.submission_key` with a different request",
    ),
    code(
        "broker.claim_expired",
        Conflict,
        "a claim-scoped call after the claim's lease expired",
    ),
    code(
        "broker.claim_mismatch",
        Conflict,
        "a claim-scoped call by another runner or with another claim id",
    ),
    code(
        "broker.job_not_running",
        Conflict,
        "a claim-scoped call on a job that is no longer running",
    ),
    code(
        "jobs.illegal_transition",
        Conflict,
        "cancelling a job that already finished",
    ),
    code(
        "components.path_missing",
        Conflict,
        "a component's `path` does not exist",
    ),
    code(
        "components.not_a_git_checkout",
        Conflict,
        "a component's `path` is not in a git checkout",
    ),
    code(
        "stacks.unknown_revision",
        Conflict,
        "a stack's `base` or `target` does not exist in the checkout",
    ),
    code(
        "config.invalid_declaration",
        Conflict,
        "a declaration file does not parse or validate",
    ),
    code(
        "preview.route_owner_mismatch",
        Conflict,
        "the public host is held by another preview client",
    ),
    code(
        "preview.request_already_answered",
        Conflict,
        "a preview client answers a request twice",
    ),
    code(
        "preview.response_not_streaming",
        Conflict,
        "a response chunk for a response that was not announced with `more: true`",
    ),
    code(
        "preview.session_closed",
        Gone,
        "new work on a preview session that was closed",
    ),
    code(
        "preview.lease_expired",
        Gone,
        "new work on a preview session whose lease has expired",
    ),
    code(
        "preview.request_gone",
        Gone,
        "the browser that sent this public request is gone",
    ),
    code(
        "payload.too_large",
        PayloadTooLarge,
        "the body exceeds the limit (the daemon's default is 1 MiB, `--max-body-bytes`)",
    ),
    code(
        "artifacts.too_large_for_inline",
        PayloadTooLarge,
        "the transport-free handler does not inline artifacts over 16 MiB",
    ),
    code(
        "internal",
        Internal,
        "a failure on our side: the message is generic and `details.error_id` names the server log line that holds the detail",
    ),
    code(
        "components.git_failed",
        Internal,
        "git failed unexpectedly on a component's checkout (`details.error_id`)",
    ),
    code(
        "components.spawn_failed",
        Internal,
        "a tool or check could not be started (`details.error_id`)",
    ),
    code(
        "components.git_unavailable",
        Unavailable,
        "the `git` program is not installed",
    ),
    code(
        "jobs.unavailable",
        Unavailable,
        "this handler serves no job store",
    ),
    code(
        "observations.unavailable",
        Unavailable,
        "this handler serves no observation store",
    ),
    code(
        "preview.ingress_draining",
        Unavailable,
        "the preview ingress is shutting down",
    ),
];

/// The codes of `kind`, in catalogue order.
pub fn of_kind(kind: ErrorKind) -> impl Iterator<Item = &'static Code> {
    CODES.iter().filter(move |c| c.kind == kind)
}

/// The catalogue entry of `code`.
pub fn find(code: &str) -> Option<&'static Code> {
    CODES.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_dotted_by_area() {
        let mut seen = std::collections::BTreeSet::new();
        for c in CODES {
            assert!(seen.insert(c.code), "{} twice", c.code);
            assert!(
                c.code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{}",
                c.code
            );
        }
        assert_eq!(find("not_found.job").unwrap().kind.status(), 404);
        assert_eq!(of_kind(ErrorKind::MethodNotAllowed).count(), 1);
    }
}
