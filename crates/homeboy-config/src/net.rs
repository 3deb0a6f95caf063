//! Address policy: what counts as loopback. Every place that refuses a non-loopback bind, origin or host
//! asks this one function.

use std::net::IpAddr;

/// Whether `host` (no port; IPv6 may be bracketed) is `localhost` or a loopback IP (127.0.0.0/8, ::1, or
/// IPv4-mapped loopback).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for ok in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "0.0.0.0",
            "10.0.0.1",
            "::",
            "example.com",
            "localhost.evil.com",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}

/// Parses a listen address given on a command line: `localhost:PORT` or any socket address
/// (`127.0.0.1:7421`, `[::1]:0`). Every binary's `--addr`/`--bind`/`--listen-addr` uses this.
pub fn parse_listen_addr(value: &str) -> Result<std::net::SocketAddr, String> {
    if let Some(port) = value.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in {value:?}"))?;
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    value
        .parse()
        .map_err(|_| format!("{value:?} is not an address like 127.0.0.1:7421"))
}

#[cfg(test)]
mod listen_tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr("localhost:80").unwrap().to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(parse_listen_addr("[::1]:0").unwrap().to_string(), "[::1]:0");
        assert!(parse_listen_addr("localhost:x").is_err());
        assert!(parse_listen_addr("example.com:80").is_err());
    }
}
