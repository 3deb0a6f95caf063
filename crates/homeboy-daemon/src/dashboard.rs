//! The dashboard: a page at `/` and its files under `/ui/`, static files from `crates/homeboy-daemon/dashboard/`
//! embedded in the binary (no build step, no Node toolchain). The page reads the contract's routes — jobs
//! live through `GET /jobs/events?follow=true`, a job's events, runs with findings and artifact links,
//! components, rigs and stacks, managed services and preview sessions, the daemon's own status — and its
//! only mutation is `POST /jobs/:id/cancel`.
//!
//! It is served only to requests whose `Host` names this daemon on loopback (never through a broker's
//! allowed public name), after the daemon's Host and Origin guard like every route, with a strict
//! Content-Security-Policy: scripts, styles, images and connections from this origin only, no inline
//! script or style, no framing, no forms.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use homeboy_api::ApiError;

/// The page's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct File {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const FILES: [File; 4] = [
    File {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../dashboard/index.html"),
    },
    File {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/app.js"),
    },
    File {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../dashboard/app.css"),
    },
    File {
        path: "/ui/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../dashboard/icon.svg"),
    },
];

/// Whether `path` is the page or one of its files (`/`, `/ui/...`).
pub fn is_page_path(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

/// Answers `GET|HEAD` of a page path: the file, or `not_found.route` for an unknown file or a request whose
/// Host is not this daemon's loopback address.
pub fn respond(path: &str, on_loopback: bool) -> Response {
    let file = FILES.iter().find(|f| f.path == path);
    let Some(file) = file.filter(|_| on_loopback) else {
        return homeboy_http::error_response(&ApiError::route_not_found("GET", path))
            .map(Body::new);
    };
    let mut response = Response::new(Body::from(file.body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_refusals() {
        let page = respond("/", true);
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(respond("/ui/app.js", true).status(), 200);
        assert_eq!(respond("/ui/nope.js", true).status(), 404);
        assert_eq!(
            respond("/", false).status(),
            404,
            "not through a public name"
        );
        assert!(is_page_path("/ui/x") && !is_page_path("/jobs"));
        // The page itself has no inline script or style, which the CSP would block.
        let html = std::str::from_utf8(FILES[0].body).unwrap();
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("<style"));
    }
}
