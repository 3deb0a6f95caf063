//! Host and Origin rules: which `Host` a request names (exactly one, parsed as an RFC 3986 authority with
//! `http::uri::Authority`), and the loopback policy of servers that answer only their own loopback address
//! plus operator-allowed names. Each server states its policy in one place and asks this module; nothing else
//! parses `Host`.

use std::str::FromStr;

use homeboy_api::ApiError;
use homeboy_config::net::is_loopback_host;
use http::header::{self, HeaderMap};
use http::uri::{Authority, Uri};

/// The host a request names: lower-case, without brackets or a trailing dot, and its port if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHost {
    pub host: String,
    pub port: Option<u16>,
}

impl RequestHost {
    /// Parses a `Host` header value (or any authority without user info).
    pub fn parse(value: &str) -> Option<RequestHost> {
        let value = value.trim();
        if value.is_empty() || value.contains('@') {
            return None;
        }
        let authority = Authority::from_str(value).ok()?;
        let host = authority.host();
        // `Authority` accepts a port it cannot read (`host:port`, `host:99999`); a Host header may not.
        let port = match authority.as_str().strip_prefix(host)? {
            "" | ":" => None,
            rest => Some(rest.strip_prefix(':')?.parse::<u16>().ok()?),
        };
        let host = match host.strip_prefix('[') {
            // An IP literal is an IPv6 address (`http` lets through anything between the brackets).
            Some(literal) => {
                let address = literal.strip_suffix(']')?;
                address.parse::<std::net::Ipv6Addr>().ok()?;
                address
            }
            // A name or an IPv4 address, without the root's trailing dot, and with no empty label.
            None => {
                let name = host.strip_suffix('.').unwrap_or(host);
                if name.is_empty() || name.split('.').any(str::is_empty) {
                    return None;
                }
                name
            }
        };
        Some(RequestHost {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether the host is `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

/// The host a request names: its one `Host` header. Refused with `400 validation.invalid_argument`
/// (`field: host`): no `Host` (HTTP/1.1 requires one, RFC 9112 §3.2), two (which one would count?), one that
/// is not a host, and a target in absolute or authority form (`GET http://other.example/x`): every homeboy
/// server is an origin server, never a proxy, and a second authority next to `Host` is one more place where
/// two hops could disagree about where a request goes.
pub fn request_host(headers: &HeaderMap, uri: &Uri) -> Result<RequestHost, ApiError> {
    if uri.authority().is_some() {
        return Err(ApiError::invalid_argument(
            "host",
            "the request target names a host (absolute form); send the path alone and the host in Host",
        ));
    }
    let mut values = headers.get_all(header::HOST).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid_argument(
            "host",
            "the request has more than one Host header",
        ));
    }
    let value = first.ok_or_else(|| {
        ApiError::invalid_argument(
            "host",
            "the request has no Host header (HTTP/1.1 requires one)",
        )
    })?;
    RequestHost::parse(value.to_str().unwrap_or(""))
        .ok_or_else(|| ApiError::invalid_argument("host", "is not a host name or address"))
}

/// The request's `Origin` header, if it has one. Two are refused (`400`, `field: origin`): a check of the
/// first would let the second through.
pub fn request_origin(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(header::ORIGIN).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid_argument(
            "origin",
            "the request has more than one Origin header",
        ));
    }
    Ok(first.map(|value| value.to_str().unwrap_or("")))
}

/// The origin a browser says a request comes from: `http(s)://host[:port]`; `null` and opaque origins are
/// none.
pub fn parse_origin(value: &str) -> Option<RequestHost> {
    let uri = Uri::from_str(value.trim()).ok()?;
    let default_port = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return None;
    }
    let mut origin = RequestHost::parse(uri.authority()?.as_str())?;
    origin.port = Some(origin.port.unwrap_or(default_port));
    Some(origin)
}

/// The Host policy of a loopback server (the daemon and the broker): a loopback name or address *with the
/// server's own port*, or one of the names the operator allowed (any port). A portless loopback Host names
/// port 80 — another server — and is refused; so is a browser Origin other than the server's own.
#[derive(Debug, Clone)]
pub struct LoopbackPolicy {
    port: u16,
    allowed_names: Vec<String>,
    /// The `Host` values this server's local clients send, spelled as they send them: compared byte for
    /// byte before anything is parsed (the common case costs one comparison).
    usual_hosts: [String; 3],
}

impl LoopbackPolicy {
    /// The policy of a server listening on `port` that also answers `allowed_names` (a broker behind an
    /// operator's reverse proxy).
    pub fn new(port: u16, allowed_names: &[String]) -> Self {
        LoopbackPolicy {
            port,
            usual_hosts: [
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ],
            allowed_names: allowed_names
                .iter()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether the request names this server on loopback the way local clients spell it: origin-form
    /// target and one `Host` that is exactly `127.0.0.1:<port>`, `localhost:<port>` or `[::1]:<port>`. A
    /// shortcut only: `false` means "parse and decide" ([`request_host`], [`LoopbackPolicy::is_own_loopback`]).
    pub fn is_usual_own_request(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        if uri.authority().is_some() {
            return false;
        }
        let mut values = headers.get_all(header::HOST).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => self
                .usual_hosts
                .iter()
                .any(|usual| usual.as_bytes() == value.as_bytes()),
            _ => false,
        }
    }

    /// Whether `host` names this server on loopback.
    pub fn is_own_loopback(&self, host: &RequestHost) -> bool {
        host.port == Some(self.port) && host.is_loopback()
    }

    /// Whether `host` is one of the operator-allowed names.
    pub fn is_allowed_name(&self, host: &RequestHost) -> bool {
        self.allowed_names.contains(&host.host)
    }

    /// Whether a `Host` header value is acceptable.
    pub fn allows_host(&self, value: &str) -> bool {
        RequestHost::parse(value)
            .is_some_and(|host| self.is_own_loopback(&host) || self.is_allowed_name(&host))
    }

    /// Whether an `Origin` header value is acceptable: this server's exact loopback origin (with its port),
    /// or an operator-allowed name.
    pub fn allows_origin(&self, value: &str) -> bool {
        parse_origin(value)
            .is_some_and(|origin| self.is_own_loopback(&origin) || self.is_allowed_name(&origin))
    }
}

/// Headers a reverse proxy adds: a request carrying any of them came through one.
const PROXY_HEADERS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Whether a request naming `host` is local: a loopback name, and no proxy header. Behind the operator's
/// proxy every connection comes from loopback and `Host` is whatever the proxy sent (nginx passes
/// `Host: 127.0.0.1` through to the site it made its default server; the broker recipe sets the broker's
/// own loopback address), so a request that carries `Forwarded`, `X-Forwarded-*` or `X-Real-IP` is never
/// local, whatever its `Host`. The rendered proxy sites always set them. What the operator-only routes
/// (`GET /metrics`, the ingress's control API on loopback names) ask.
pub fn is_local(headers: &HeaderMap, host: &str) -> bool {
    is_loopback_host(host) && !came_through_proxy(headers)
}

/// Whether the request carries a header only a reverse proxy adds.
pub fn came_through_proxy(headers: &HeaderMap) -> bool {
    PROXY_HEADERS.iter().any(|h| headers.contains_key(*h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_hosts() {
        let h = RequestHost::parse("Run.Example.NET.:443").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("run.example.net", Some(443)));
        let h = RequestHost::parse("[::1]:7350").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("::1", Some(7350)));
        assert!(h.is_loopback());
        for bad in [
            "",
            "user@evil.example",
            "a b",
            "host:port",
            "host:99999",
            "[::1",
            "..",
            "a..b",
            ".a",
            "[:..]",
            "[v1.x]",
            "[1.2.3.4]",
        ] {
            assert!(RequestHost::parse(bad).is_none(), "{bad}");
        }
    }

    /// The byte-for-byte shortcut accepts only what the parsing path accepts as this server's loopback.
    #[test]
    fn the_usual_host_shortcut_agrees_with_the_parser() {
        let g = LoopbackPolicy::new(7421, &["broker.example.com".to_string()]);
        let request = |target: &str, hosts: &[&str]| {
            let mut builder = http::Request::get(target);
            for host in hosts {
                builder = builder.header(header::HOST, *host);
            }
            builder.body(()).unwrap()
        };
        for usual in ["127.0.0.1:7421", "localhost:7421", "[::1]:7421"] {
            let req = request("/runs", &[usual]);
            assert!(g.is_usual_own_request(req.headers(), req.uri()), "{usual}");
            let parsed = request_host(req.headers(), req.uri()).unwrap();
            assert!(g.is_own_loopback(&parsed), "{usual}");
        }
        for (target, hosts) in [
            ("/runs", &["127.0.0.1:7422"][..]),
            ("/runs", &["127.0.0.1"][..]),
            ("/runs", &["127.0.0.1:7421", "127.0.0.1:7421"][..]),
            ("/runs", &[][..]),
            ("/runs", &["evil.example:7421"][..]),
            ("/runs", &["broker.example.com"][..]),
            ("http://127.0.0.1:7421/runs", &["127.0.0.1:7421"][..]),
        ] {
            let req = request(target, hosts);
            assert!(
                !g.is_usual_own_request(req.headers(), req.uri()),
                "{target} {hosts:?}"
            );
        }
    }

    #[test]
    fn loopback_policy() {
        let g = LoopbackPolicy::new(7421, &["broker.example.com".to_string()]);
        for ok in [
            "127.0.0.1:7421",
            "localhost:7421",
            "LOCALHOST:7421",
            "[::1]:7421",
            "127.9.9.9:7421",
            "broker.example.com",
            "Broker.Example.com:443",
        ] {
            assert!(g.allows_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7421",
            "127.0.0.1:80",
            "127.0.0.1",
            "10.0.0.1:7421",
            "localhost.evil.com:7421",
            "[::1]:80",
            "[::1]",
            "",
            "0.0.0.0:7421",
        ] {
            assert!(!g.allows_host(bad), "{bad}");
        }
        assert!(g.allows_origin("http://127.0.0.1:7421"));
        assert!(g.allows_origin("http://[::1]:7421/"));
        for bad in [
            "https://evil.example",
            "null",
            "http://127.0.0.1",
            "http://localhost",
            "http://[::1]",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:7421/path",
            "file:///etc",
        ] {
            assert!(!g.allows_origin(bad), "{bad}");
        }
    }

    #[test]
    fn exactly_one_host_header_and_an_origin_form_target() {
        let uri: Uri = "/x".parse().unwrap();
        let mut headers = HeaderMap::new();
        let refused = |headers: &HeaderMap, uri: &Uri| {
            let error = request_host(headers, uri).unwrap_err();
            assert_eq!(error.code, "validation.invalid_argument");
            assert_eq!(error.details["field"], "host");
            error.message
        };
        assert!(refused(&headers, &uri).contains("no Host"));
        headers.append(header::HOST, "a.example".parse().unwrap());
        assert_eq!(request_host(&headers, &uri).unwrap().host, "a.example");
        for target in ["http://c.example/x", "http://a.example/x", "a.example:80"] {
            let absolute: Uri = target.parse().unwrap();
            assert!(
                refused(&headers, &absolute).contains("absolute"),
                "{target}"
            );
            assert!(refused(&HeaderMap::new(), &absolute).contains("absolute"));
        }
        headers.append(header::HOST, "b.example".parse().unwrap());
        assert!(refused(&headers, &uri).contains("more than one"));
        let mut bad = HeaderMap::new();
        bad.append(header::HOST, "a b".parse().unwrap());
        assert!(refused(&bad, &uri).contains("not a host"));
    }

    #[test]
    fn one_origin_header_at_most() {
        let mut headers = HeaderMap::new();
        assert_eq!(request_origin(&headers).unwrap(), None);
        headers.append(header::ORIGIN, "http://127.0.0.1:1".parse().unwrap());
        assert_eq!(
            request_origin(&headers).unwrap(),
            Some("http://127.0.0.1:1")
        );
        headers.append(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(
            request_origin(&headers).unwrap_err().details["field"],
            "origin"
        );
    }
}
