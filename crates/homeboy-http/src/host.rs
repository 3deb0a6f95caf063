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
        let host = host.strip_prefix('[').unwrap_or(host);
        let host = host.strip_suffix(']').unwrap_or(host);
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() {
            return None;
        }
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

/// The request's host: its single `Host` header, else the authority of an absolute-form target, else none.
/// Two `Host` headers are refused (RFC 9112 §3.2: which one would count?), as is one that is not a host.
pub fn request_host(headers: &HeaderMap, uri: &Uri) -> Result<Option<RequestHost>, ApiError> {
    let mut values = headers.get_all(header::HOST).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid_argument(
            "host",
            "the request has more than one Host header",
        ));
    }
    match first {
        Some(value) => {
            let text = value.to_str().unwrap_or("");
            RequestHost::parse(text)
                .map(Some)
                .ok_or_else(|| ApiError::invalid_argument("host", "is not a host name or address"))
        }
        None => Ok(uri.authority().and_then(|a| RequestHost::parse(a.as_str()))),
    }
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
}

impl LoopbackPolicy {
    /// The policy of a server listening on `port` that also answers `allowed_names` (a broker behind an
    /// operator's reverse proxy).
    pub fn new(port: u16, allowed_names: &[String]) -> Self {
        LoopbackPolicy {
            port,
            allowed_names: allowed_names
                .iter()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
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
        ] {
            assert!(RequestHost::parse(bad).is_none(), "{bad}");
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
    fn one_host_header_only() {
        let uri: Uri = "/x".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(request_host(&headers, &uri).unwrap(), None);
        headers.append(header::HOST, "a.example".parse().unwrap());
        assert_eq!(
            request_host(&headers, &uri).unwrap().unwrap().host,
            "a.example"
        );
        headers.append(header::HOST, "b.example".parse().unwrap());
        assert_eq!(
            request_host(&headers, &uri).unwrap_err().details["field"],
            "host"
        );
        let absolute: Uri = "http://c.example/x".parse().unwrap();
        assert_eq!(
            request_host(&HeaderMap::new(), &absolute)
                .unwrap()
                .unwrap()
                .host,
            "c.example"
        );
    }
}
