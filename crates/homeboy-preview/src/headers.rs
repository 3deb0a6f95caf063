//! Header rules of a proxy hop, shared by the ingress and the preview client: hop-by-hop headers are
//! dropped in both directions (the fixed RFC 9110 list plus every name listed in `Connection`),
//! `X-Forwarded-For/-Proto/-Host` are added on the way in, and header maps travel as JSON objects on the
//! long-poll channel (a value is a string, or an array of strings for repeated headers such as
//! `set-cookie`).

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

/// Headers that describe one connection, never the message: they must not cross a proxy. (`Expect` is
/// here too: the hop that received it has already answered it.)
static HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::EXPECT,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including those named by `Connection`. `Expect` goes too: the hop that
/// received it has already answered it.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none or only `Connection`: look before touching anything.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Adds `X-Forwarded-For` (appending `peer` to any chain), `X-Forwarded-Proto` and `X-Forwarded-Host`.
/// A trusted peer (the operator's TLS proxy on loopback) may have set Proto and Host already; those are
/// kept. From anyone else they are replaced.
pub fn add_forwarded(headers: &mut HeaderMap, peer: IpAddr, trusted_peer: bool, host: &str) {
    let chain = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let xff = if chain.is_empty() {
        peer.to_string()
    } else {
        format!("{chain}, {peer}")
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if !(trusted_peer && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !(trusted_peer && headers.contains_key(&X_FORWARDED_HOST))
        && let Ok(v) = HeaderValue::from_str(host)
    {
        headers.insert(X_FORWARDED_HOST.clone(), v);
    }
}

/// A header map as a JSON object (repeated headers become arrays).
pub fn to_json(headers: &HeaderMap) -> Map<String, Value> {
    let mut map = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = if values.len() == 1 {
            values.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        map.insert(name.as_str().to_string(), value);
    }
    map
}

/// A JSON object of headers as a header map; names or values that are not valid HTTP are refused.
pub fn from_json(map: &Map<String, Value>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::with_capacity(map.len());
    for (name, value) in map {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let mut push = |v: &Value| -> Result<(), String> {
            let text = v.as_str().ok_or_else(|| {
                format!("header {name:?} must be a string or an array of strings")
            })?;
            let hv = HeaderValue::from_str(text)
                .map_err(|_| format!("header {name:?} has a value that is not valid HTTP"))?;
            headers.append(header_name.clone(), hv);
            Ok(())
        };
        match value {
            Value::Array(items) => items.iter().try_for_each(&mut push)?,
            other => push(other)?,
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_including_connection_listed_ones() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic x"),
            ("expect", "100-continue"),
            ("content-type", "text/html"),
            ("cache-control", "max-age=60"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["cache-control", "content-type"]);
    }

    #[test]
    fn forwarded_headers() {
        let peer: IpAddr = "203.0.113.7".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        add_forwarded(&mut h, peer, false, "run.preview.test");
        assert_eq!(h["x-forwarded-for"], "203.0.113.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "run.preview.test");

        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("run.preview.test"),
        );
        add_forwarded(&mut h, proxy, true, "ignored");
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "run.preview.test");
    }

    #[test]
    fn json_round_trip_keeps_repeated_headers() {
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        h.insert("content-type", HeaderValue::from_static("text/css"));
        let json = to_json(&h);
        assert_eq!(json["content-type"], "text/css");
        assert_eq!(json["set-cookie"], serde_json::json!(["a=1", "b=2"]));
        assert_eq!(from_json(&json).unwrap(), h);
        let bad: Map<String, Value> = serde_json::from_str(r#"{"bad name": "x"}"#).unwrap();
        assert!(from_json(&bad).is_err());
        let bad: Map<String, Value> = serde_json::from_str(r#"{"x": 1}"#).unwrap();
        assert!(from_json(&bad).is_err());
    }
}
