//! Host names and origins: the one place that decides what a public preview host is (a concrete DNS name,
//! lower-case, no port), how a `Host` header maps to it, how host globs (`*.preview.example.net`,
//! `*-tunnel.example.com`) match, and what an HTTP(S) origin URL is.

use homeboy_config::net::is_loopback_host;

/// Normalises a public host: lower-case, trailing dot removed, every label `[a-z0-9-]` (1–63 characters,
/// no leading or trailing hyphen), at most 253 characters. Wildcards are not hosts.
pub fn normalize_host(host: &str) -> Result<String, String> {
    let lower = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if lower.is_empty() {
        return Err("is empty".into());
    }
    if lower.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    if is_wildcard(&lower) {
        return Err(format!("{host:?} is a wildcard, not one host"));
    }
    for label in lower.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "{host:?} is not a host name (labels of letters, digits and '-', no port or path)"
            ));
        }
    }
    Ok(lower)
}

/// Whether `host` contains glob characters.
pub fn is_wildcard(host: &str) -> bool {
    host.contains(['*', '?'])
}

/// Validates a host glob: a host name in which `*` stands for part of one label.
pub fn normalize_pattern(pattern: &str) -> Result<String, String> {
    let lower = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    if lower.contains('?') {
        return Err(format!(
            "{pattern:?}: only '*' is supported in host patterns"
        ));
    }
    // A pattern is valid when replacing each '*' with a letter gives a valid host that is already in normal
    // form (so `a .` — a space before the root's dot — is refused, not stored as `a `).
    let candidate = lower.replace('*', "x");
    match normalize_host(&candidate) {
        Ok(host) if host == candidate => Ok(lower),
        _ => Err(format!(
            "{pattern:?} is not a host pattern such as *.preview.example.net"
        )),
    }
}

/// Whether `host` matches `pattern` (case-insensitive). `*` matches one or more characters inside one label,
/// so `*.preview.example.net` matches `run-1.preview.example.net` but not `a.b.preview.example.net`, as
/// wildcard DNS records and certificates do. A pattern without `*` matches only itself. Label by label, in
/// time proportional to the product of the label lengths whatever the number of `*` (a backtracking
/// matcher took exponential time on `*a*a*a…`).
pub fn glob_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let mut patterns = pattern.split('.');
    let mut hosts = host.split('.');
    loop {
        match (patterns.next(), hosts.next()) {
            (None, None) => return true,
            (Some(p), Some(h)) if label_matches(p.as_bytes(), h.as_bytes()) => {}
            _ => return false,
        }
    }
}

/// One label against one label pattern: `matched[j]` says whether the pattern read so far matches the first
/// `j` bytes of the label.
fn label_matches(pattern: &[u8], label: &[u8]) -> bool {
    let mut matched = vec![false; label.len() + 1];
    matched[0] = true;
    for &c in pattern {
        let mut next = vec![false; label.len() + 1];
        if c == b'*' {
            // One or more bytes: reachable from any shorter matched prefix.
            let mut earlier = false;
            for j in 1..=label.len() {
                earlier |= matched[j - 1];
                next[j] = earlier;
            }
        } else {
            for j in 1..=label.len() {
                next[j] = matched[j - 1] && label[j - 1] == c;
            }
        }
        matched = next;
    }
    matched[label.len()]
}

/// The host of a `Host` header value, port stripped, lower-cased (`Run.Example.net:443` → `run.example.net`,
/// `[::1]:7350` → `::1`).
pub fn host_of_header(value: &str) -> String {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => value,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// An HTTP(S) origin: scheme, host and port, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub https: bool,
    /// Host without brackets, lower-case.
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses `http://host[:port]` or `https://host[:port]`, with an optional trailing `/`. Paths, queries,
    /// fragments and user info are refused: an origin is where requests go, not what they ask for.
    pub fn parse(url: &str) -> Result<Origin, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// origin"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "{url:?} must be an origin such as http://127.0.0.1:7331 (no path, query or user info)"
            ));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, tail) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '[' in the host"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => parse_port(url, p)?,
                None if tail.is_empty() => default_port,
                None => return Err(format!("{url:?}: unexpected text after the host")),
            };
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{url:?}: {addr:?} is not an IPv6 address"));
            }
            (addr.to_string(), port)
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), parse_port(url, port)?),
                None => (authority.to_string(), default_port),
            };
            // A name or an IPv4 address: nothing an authority would read differently.
            if !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~'))
            {
                return Err(format!("{url:?}: {host:?} is not a host name or address"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        Ok(Origin {
            https,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether the host is loopback (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// `host:port`, with IPv6 hosts bracketed: the value of a `Host` header and of a connect call.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The canonical URL form, `http://127.0.0.1:7331`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.authority()
        )
    }
}

fn parse_port(url: &str, port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{url:?} has an invalid port {port:?}")),
    }
}

/// The default session id for a public host: its first label (`run-123.preview.example.net` → `run-123`).
pub fn default_session_id(public_host: &str) -> String {
    public_host
        .split('.')
        .next()
        .unwrap_or(public_host)
        .to_string()
}

/// A concrete host standing in for a pattern in examples and smoke checks (`*` → `label`).
pub fn example_host(pattern: &str, label: &str) -> String {
    pattern.replace('*', label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_normalise_and_refuse_non_hosts() {
        assert_eq!(
            normalize_host("Run-1.Preview.Example.NET.").unwrap(),
            "run-1.preview.example.net"
        );
        for bad in [
            "",
            "*.example.net",
            "run?.example.net",
            "a..b",
            "-a.b",
            "a-.b",
            "host:80",
            "a/b",
            "a b",
            "ünï.example",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_host(&"a".repeat(64)).is_err());
    }

    #[test]
    fn globs_match_inside_one_label() {
        assert!(glob_matches(
            "*.preview.example.net",
            "run-1.preview.example.net"
        ));
        assert!(glob_matches(
            "*.Preview.example.net",
            "RUN.preview.example.net"
        ));
        assert!(!glob_matches(
            "*.preview.example.net",
            "a.b.preview.example.net"
        ));
        assert!(!glob_matches(
            "*.preview.example.net",
            "preview.example.net"
        ));
        assert!(!glob_matches(
            "*.preview.example.net",
            "run.preview.example.net.evil.com"
        ));
        assert!(glob_matches(
            "*-tunnel.example.com",
            "run42-tunnel.example.com"
        ));
        assert!(!glob_matches("*-tunnel.example.com", "-tunnel.example.com"));
        assert!(!glob_matches("*-tunnel.example.com", "run42.example.com"));
        assert!(glob_matches("exact.example.com", "exact.example.com"));
        assert!(!glob_matches("exact.example.com", "xexact.example.com"));
        assert!(normalize_pattern("*-tunnel.Example.com").is_ok());
        assert!(normalize_pattern("*.*.example.com").is_ok());
        assert!(normalize_pattern("run?.example.com").is_err());
        assert!(normalize_pattern("*.exa mple.com").is_err());
        // Found by the property test: a space before the root's dot was stored as part of the pattern.
        for bad in ["a .", "* .", "*.example.com ."] {
            assert!(normalize_pattern(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            normalize_pattern(" *.Example.com. ").as_deref(),
            Ok("*.example.com")
        );
    }

    #[test]
    fn host_headers_lose_their_port() {
        assert_eq!(host_of_header("Run.Example.net:443"), "run.example.net");
        assert_eq!(host_of_header("run.example.net"), "run.example.net");
        assert_eq!(host_of_header("[::1]:7350"), "::1");
        assert_eq!(host_of_header("127.0.0.1:7350"), "127.0.0.1");
        assert_eq!(host_of_header("run.example.net."), "run.example.net");
    }

    #[test]
    fn origins_parse_strictly() {
        let o = Origin::parse("http://127.0.0.1:7331/").unwrap();
        assert_eq!(
            (o.https, o.host.as_str(), o.port),
            (false, "127.0.0.1", 7331)
        );
        assert!(o.is_loopback());
        assert_eq!(o.url(), "http://127.0.0.1:7331");
        let o = Origin::parse("https://[::1]:8443").unwrap();
        assert_eq!(o.authority(), "[::1]:8443");
        assert!(o.is_loopback());
        assert_eq!(Origin::parse("http://localhost").unwrap().port, 80);
        assert!(!Origin::parse("http://10.0.0.5:80").unwrap().is_loopback());
        for bad in [
            "ftp://127.0.0.1",
            "127.0.0.1:80",
            "http://127.0.0.1:80/app",
            "http://user@127.0.0.1",
            "http://]::1",
            "http://[::1",
            "http://[nope]:80",
            "http://a:b:80",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_from_hosts() {
        assert_eq!(default_session_id("run-123.preview.example.net"), "run-123");
        assert_eq!(
            example_host("*-tunnel.example.com", "smoke"),
            "smoke-tunnel.example.com"
        );
    }
}
