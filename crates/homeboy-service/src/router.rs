//! Path routing for the handler: `/jobs/:id/events`-style patterns, 404 vs 405, and captured parameters.
//!
//! Most handlers return their `data` as a JSON [`Value`]. Hot read routes may instead return it already
//! serialised ([`RawHandlerFn`], registered with [`Router::add_raw`]), so a transport that writes bytes never
//! builds a `Value` tree for a large answer; callers that want a `Value` get the bytes parsed.

use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::{ApiError, ApiRequest, Method};

/// Whether a route can block its caller on disk or child processes. Transports run blocking routes off
/// their event loop; inline routes are answered from memory. `Read` routes block briefly (one bounded store
/// read transaction, tens of microseconds): a hand-off to another thread costs more than the read, so
/// transports answer them on the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cost {
    Inline,
    Read,
    Blocking,
}

/// A wire answer (a `homeboy_api` type) as a handler's data.
pub fn data(answer: impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(answer).map_err(|e| {
        ApiError::internal("serialising the answer failed").with_internal_detail(e.to_string())
    })
}

/// A route handler: the shared context, the matched call, and JSON data or an error back.
pub type HandlerFn<C> = fn(&C, &Call<'_>) -> Result<Value, ApiError>;

/// A route handler that serialises its own data: [`Data::Raw`], or a whole envelope it kept
/// ([`Data::Envelope`]).
pub type RawHandlerFn<C> = fn(&C, &Call<'_>) -> Result<Data, ApiError>;

enum Handler<C> {
    Value(HandlerFn<C>),
    Raw(RawHandlerFn<C>),
}

/// A handler's data: a JSON value, the JSON bytes of one, or the serialised success envelope around it
/// (shared, for answers kept between requests).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Value(Value),
    Raw(Vec<u8>),
    Envelope(std::sync::Arc<[u8]>),
}

impl Data {
    /// The data as a JSON value (raw bytes are parsed).
    pub fn into_value(self) -> Result<Value, ApiError> {
        match self {
            Data::Value(value) => Ok(value),
            Data::Raw(bytes) => serde_json::from_slice(&bytes).map_err(invalid_json),
            Data::Envelope(bytes) => serde_json::from_slice::<Value>(&bytes)
                .map_err(invalid_json)
                .map(|mut envelope| envelope["data"].take()),
        }
    }
}

fn invalid_json(e: serde_json::Error) -> ApiError {
    ApiError::internal("a route produced invalid JSON").with_internal_detail(e.to_string())
}

enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

struct Route<C> {
    method: Method,
    pattern: &'static str,
    segments: Vec<Segment>,
    cost: Cost,
    handler: Handler<C>,
}

/// The matched request with its path parameters.
pub struct Call<'a> {
    pub req: &'a ApiRequest,
    params: Vec<(&'static str, String)>,
}

impl Call<'_> {
    /// A path parameter captured by `:name` (percent-decoded). Panics only on a typo in a route table.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("route has no parameter `{name}`"))
    }
}

/// An ordered table of routes.
pub struct Router<C> {
    routes: Vec<Route<C>>,
}

impl<C> Router<C> {
    pub fn new() -> Self {
        Router { routes: Vec::new() }
    }

    /// Adds `method pattern` (`/jobs/:id`) answered by `handler`.
    pub fn add(
        &mut self,
        method: Method,
        pattern: &'static str,
        cost: Cost,
        handler: HandlerFn<C>,
    ) {
        self.push(method, pattern, cost, Handler::Value(handler));
    }

    /// Adds `method pattern` answered by a handler that serialises its own data.
    pub fn add_raw(
        &mut self,
        method: Method,
        pattern: &'static str,
        cost: Cost,
        handler: RawHandlerFn<C>,
    ) {
        self.push(method, pattern, cost, Handler::Raw(handler));
    }

    fn push(&mut self, method: Method, pattern: &'static str, cost: Cost, handler: Handler<C>) {
        let segments = split(pattern)
            .map(|s| match s.strip_prefix(':') {
                Some(name) => Segment::Param(name),
                None => Segment::Literal(s),
            })
            .collect::<Vec<_>>();
        assert!(
            segments.len() <= MAX_SEGMENTS,
            "route {pattern} is deeper than {MAX_SEGMENTS} segments"
        );
        self.routes.push(Route {
            method,
            pattern,
            segments,
            cost,
            handler,
        });
    }

    /// Every route as `(method, pattern)`, in the order they were added.
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &'static str)> {
        self.routes.iter().map(|r| (&r.method, r.pattern))
    }

    /// Routes the request: the handler's result, `not_found.route` or `method_not_allowed`.
    pub fn dispatch(&self, ctx: &C, req: &ApiRequest) -> Result<Value, ApiError> {
        self.dispatch_up_to(ctx, req, Cost::Blocking)
            .unwrap_or_else(|| Err(ApiError::internal("route refused to run")))
    }

    /// Like [`Router::dispatch`], but returns `None` without running anything when the matched route costs
    /// more than `max_cost` (so an event loop can answer inline routes itself and hand the rest to a blocking
    /// pool). Errors (404, 405) are always answered.
    pub fn dispatch_up_to(
        &self,
        ctx: &C,
        req: &ApiRequest,
        max_cost: Cost,
    ) -> Option<Result<Value, ApiError>> {
        self.dispatch_data(ctx, req, max_cost)
            .map(|result| result.and_then(Data::into_value))
    }

    /// Like [`Router::dispatch_up_to`], keeping the data of raw handlers serialised.
    ///
    /// One pass over the table: the path is split once, routes are compared by shape without allocating,
    /// and only the chosen route's parameters are percent-decoded.
    pub fn dispatch_data(
        &self,
        ctx: &C,
        req: &ApiRequest,
        max_cost: Cost,
    ) -> Option<Result<Data, ApiError>> {
        let method = effective_method(&req.method);
        let actual = Segments::of(&req.path);
        let mut allowed: Vec<&str> = Vec::new();
        for route in &self.routes {
            if !shape_matches(route, &actual) {
                continue;
            }
            if route.method == method {
                if route.cost > max_cost {
                    return None;
                }
                return Some(decode_params(route, &actual).and_then(|params| {
                    let call = Call { req, params };
                    match route.handler {
                        Handler::Value(handler) => handler(ctx, &call).map(Data::Value),
                        Handler::Raw(handler) => handler(ctx, &call),
                    }
                }));
            }
            if !allowed.contains(&route.method.as_str()) {
                allowed.push(route.method.as_str());
            }
        }
        Some(if allowed.is_empty() {
            Err(ApiError::route_not_found(req.method.as_str(), &req.path))
        } else {
            Err(ApiError::method_not_allowed(
                req.method.as_str(),
                &req.path,
                &allowed,
            ))
        })
    }
}

impl<C> Default for Router<C> {
    fn default() -> Self {
        Self::new()
    }
}

/// HEAD is answered like GET (transports drop the body).
fn effective_method(method: &Method) -> Method {
    match method {
        Method::Head => Method::Get,
        other => other.clone(),
    }
}

/// Splits a path into segments, ignoring one trailing slash. `//` yields an empty segment, which matches
/// nothing.
fn split(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter(move |_| !trimmed.is_empty())
}

/// Routes deeper than this many segments do not exist; a longer path matches nothing.
const MAX_SEGMENTS: usize = 8;

/// A request path split once into its segments (see [`split`]); `None` beyond [`MAX_SEGMENTS`].
struct Segments<'a> {
    parts: [&'a str; MAX_SEGMENTS],
    len: Option<usize>,
}

impl<'a> Segments<'a> {
    fn of(path: &'a str) -> Segments<'a> {
        let mut parts = [""; MAX_SEGMENTS];
        let mut len = 0;
        for segment in split(path) {
            if len == MAX_SEGMENTS {
                return Segments { parts, len: None };
            }
            parts[len] = segment;
            len += 1;
        }
        Segments {
            parts,
            len: Some(len),
        }
    }

    fn as_slice(&self) -> &[&'a str] {
        self.len.map_or(&[], |len| &self.parts[..len])
    }
}

/// Whether `route`'s pattern fits the path: as many segments, equal literals, no empty parameter.
fn shape_matches<C>(route: &Route<C>, actual: &Segments<'_>) -> bool {
    let Some(len) = actual.len else {
        return false;
    };
    len == route.segments.len()
        && route
            .segments
            .iter()
            .zip(actual.as_slice())
            .all(|(pattern, segment)| match pattern {
                Segment::Literal(lit) => lit == segment,
                Segment::Param(_) => !segment.is_empty(),
            })
}

/// The percent-decoded parameters of a route whose shape matched; an error names a parameter that is not
/// valid UTF-8 after decoding.
fn decode_params<C>(
    route: &Route<C>,
    actual: &Segments<'_>,
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let mut params = Vec::new();
    for (pattern, segment) in route.segments.iter().zip(actual.as_slice()) {
        if let Segment::Param(name) = pattern {
            let value = percent_decode_str(segment).decode_utf8().map_err(|_| {
                ApiError::invalid_argument(*name, "is not valid UTF-8 after percent-decoding")
            })?;
            params.push((*name, value.into_owned()));
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn echo(_: &(), call: &Call<'_>) -> Result<Value, ApiError> {
        Ok(json!({"id": call.param("id")}))
    }
    fn root(_: &(), _: &Call<'_>) -> Result<Value, ApiError> {
        Ok(json!("root"))
    }

    fn router() -> Router<()> {
        let mut r = Router::new();
        r.add(Method::Get, "/jobs", Cost::Inline, root);
        r.add(Method::Get, "/jobs/:id", Cost::Blocking, echo);
        r.add(Method::Post, "/jobs/:id/cancel", Cost::Blocking, echo);
        r
    }

    #[test]
    fn matches_params_and_trailing_slash() {
        let r = router();
        assert_eq!(
            r.dispatch(&(), &ApiRequest::get("/jobs/")).unwrap(),
            json!("root")
        );
        assert_eq!(
            r.dispatch(&(), &ApiRequest::get("/jobs/a%20b")).unwrap(),
            json!({"id": "a b"})
        );
        assert!(
            r.dispatch_up_to(&(), &ApiRequest::get("/jobs/x"), Cost::Inline)
                .is_none()
        );
        assert!(
            r.dispatch_up_to(&(), &ApiRequest::get("/jobs"), Cost::Inline)
                .is_some()
        );
        // Errors are answered inline.
        assert!(
            r.dispatch_up_to(&(), &ApiRequest::get("/nope"), Cost::Inline)
                .is_some()
        );
    }

    #[test]
    fn not_found_and_method_not_allowed() {
        let r = router();
        let e = r
            .dispatch(&(), &ApiRequest::get("/jobs/x/cancel"))
            .unwrap_err();
        assert_eq!((e.status(), e.code.as_ref()), (405, "method_not_allowed"));
        assert_eq!(e.details["allowed"], json!(["POST"]));
        let e = r
            .dispatch(&(), &ApiRequest::get("/jobs//cancel"))
            .unwrap_err();
        assert_eq!(e.code, "not_found.route");
        let e = r.dispatch(&(), &ApiRequest::get("/")).unwrap_err();
        assert_eq!(e.code, "not_found.route");
        let e = r.dispatch(&(), &ApiRequest::get("/jobs/%FF")).unwrap_err();
        assert_eq!(e.code, "validation.invalid_argument");
    }
}
