//! Property tests of the edge's network-facing parsers (issue 16): `Host` and authorities, `Origin`, the
//! request target as the Host rule sees it, the loopback policy, and `Range`. Each runs a few thousand
//! generated inputs — arbitrary bytes as well as inputs built from the grammar's own pieces, which reach
//! deeper than noise — with the properties "never panics", "refuses or round-trips" and, for ranges,
//! "answers exactly the bytes asked for, never a byte outside the file".

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::Uri;
use proptest::prelude::*;

use crate::files::{MAX_RANGES, Ranges, parse_ranges};
use crate::host::{LoopbackPolicy, RequestHost, parse_origin, request_host, request_origin};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text made of the characters that matter to an authority, plus anything.
fn authority_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9.:\\[\\]@%_~\\-]{0,40}",
        "(\\[[0-9a-fA-F:.]{0,20}\\]|[a-z0-9.\\-]{1,20}|[0-9]{1,3}(\\.[0-9]{1,3}){3})(:[0-9]{0,7})?\\.?",
        any::<String>(),
    ]
}

/// A host name as RFC 3986 writes one: labels of letters, digits and hyphens, optionally a port.
fn host_name() -> impl Strategy<Value = (String, Option<u16>)> {
    (
        "[a-z0-9]([a-z0-9\\-]{0,10}[a-z0-9])?(\\.[a-z0-9]([a-z0-9\\-]{0,10}[a-z0-9])?){0,3}",
        proptest::option::of(any::<u16>()),
    )
}

/// How a parsed host is written back as a `Host` value.
fn written(host: &RequestHost) -> String {
    let name = if host.host.contains(':') {
        format!("[{}]", host.host)
    } else {
        host.host.clone()
    };
    match host.port {
        Some(port) => format!("{name}:{port}"),
        None => name,
    }
}

proptest! {
    #![proptest_config(config())]

    /// A `Host` value either is refused or parses to a normal form that parses to itself again.
    #[test]
    fn host_values_refuse_or_round_trip(value in authority_like()) {
        if let Some(host) = RequestHost::parse(&value) {
            prop_assert!(!host.host.is_empty());
            prop_assert_eq!(&host.host, &host.host.to_ascii_lowercase());
            prop_assert!(!host.host.ends_with('.') && !host.host.starts_with('['));
            prop_assert!(!host.host.contains('@'), "user info never passes: {value:?}");
            let again = RequestHost::parse(&written(&host));
            prop_assert_eq!(again.as_ref(), Some(&host), "{:?} → {:?}", value, written(&host));
        }
    }

    /// Every real host name with any port parses to itself.
    #[test]
    fn host_names_parse((name, port) in host_name()) {
        let value = match port {
            Some(port) => format!("{name}:{port}"),
            None => name.clone(),
        };
        let host = RequestHost::parse(&value);
        prop_assert_eq!(host, Some(RequestHost { host: name, port }));
    }

    /// Whatever the request carries — any `Host` bytes, any number of `Host` and `Origin` headers, any
    /// target — the edge answers with a host or a `validation.invalid_argument` naming `host` / `origin`,
    /// and never takes an absolute-form target or a second `Host`.
    #[test]
    fn requests_name_one_host_or_are_refused(
        hosts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..3),
        origins in proptest::collection::vec("[ -~]{0,30}", 0..3),
        target in prop_oneof![
            "/[ -~]{0,30}",
            "(http|https)://[a-z0-9.:@\\[\\]]{1,20}(/[a-z]{0,5})?",
            "[a-z0-9.]{1,10}:[0-9]{1,5}",
            Just("*".to_string()),
        ],
    ) {
        let mut headers = HeaderMap::new();
        for value in &hosts {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(header::HOST, value);
            }
        }
        for value in &origins {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.append(header::ORIGIN, value);
            }
        }
        let Ok(uri) = target.parse::<Uri>() else { return Ok(()) };
        match request_host(&headers, &uri) {
            Ok(host) => {
                prop_assert!(uri.authority().is_none());
                prop_assert_eq!(headers.get_all(header::HOST).iter().count(), 1);
                let value = headers[header::HOST].to_str().unwrap_or("");
                prop_assert_eq!(RequestHost::parse(value), Some(host));
            }
            Err(error) => {
                prop_assert_eq!(&*error.code, "validation.invalid_argument");
                prop_assert_eq!(error.details["field"].as_str(), Some("host"));
            }
        }
        match request_origin(&headers) {
            Ok(origin) => {
                prop_assert!(headers.get_all(header::ORIGIN).iter().count() <= 1);
                prop_assert_eq!(origin.is_some(), headers.contains_key(header::ORIGIN));
            }
            Err(error) => prop_assert_eq!(error.details["field"].as_str(), Some("origin")),
        }
    }

    /// An origin is refused or has a scheme's port; it never carries a path or user info.
    #[test]
    fn origins_refuse_or_carry_a_port(value in prop_oneof![
        "(http|https|ftp|file|null)(://)?[a-zA-Z0-9.:@\\[\\]/?#]{0,30}",
        any::<String>(),
    ]) {
        if let Some(origin) = parse_origin(&value) {
            prop_assert!(origin.port.is_some());
            prop_assert!(!origin.host.contains(['@', '/']));
        }
    }

    /// The loopback policy opens only the daemon's own loopback port and the names the operator allowed.
    #[test]
    fn the_loopback_policy_admits_nothing_else(value in authority_like(), port in 1u16..) {
        let policy = LoopbackPolicy::new(port, &["broker.example.com".to_string()]);
        if policy.allows_host(&value) {
            let host = RequestHost::parse(&value).expect("an allowed host parses");
            prop_assert!(
                host.host == "broker.example.com" || (host.is_loopback() && host.port == Some(port)),
                "{value:?} let through"
            );
        }
    }

    /// Any `Range` value for any size: never a byte outside the file, parts sorted, disjoint and apart.
    #[test]
    fn ranges_never_leave_the_file(
        value in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..60),
            "(bytes|BYTES|items| bytes)=[0-9,\\- \t]{0,40}".prop_map(String::into_bytes),
        ],
        size in prop_oneof![Just(0u64), 1u64..64, any::<u64>()],
    ) {
        if let Ranges::Parts(parts) = parse_ranges(&value, size) {
            prop_assert!(!parts.is_empty() && parts.len() <= MAX_RANGES);
            for (start, end) in &parts {
                prop_assert!(start <= end && *end < size, "{parts:?} of {size}");
            }
            for pair in parts.windows(2) {
                prop_assert!(pair[1].0 > pair[0].1.saturating_add(1), "{parts:?}");
            }
        }
    }

    /// Well-formed byte ranges come back as exactly the bytes they cover (compared byte for byte with the
    /// union of the requested intervals); none inside the file is 416, an empty set is the whole file.
    #[test]
    fn byte_ranges_cover_exactly_what_was_asked(
        specs in proptest::collection::vec(
            prop_oneof![
                (0u64..80, proptest::option::of(0u64..80)).prop_map(|(a, b)| match b {
                    Some(b) => (Some(a.min(b)), Some(a.max(b))),
                    None => (Some(a), None),
                }),
                (1u64..80).prop_map(|n| (None, Some(n))),
            ],
            1..8,
        ),
        size in 0u64..60,
        upper in any::<bool>(),
    ) {
        let set: Vec<String> = specs
            .iter()
            .map(|spec| match spec {
                (Some(a), Some(b)) => format!("{a}-{b}"),
                (Some(a), None) => format!("{a}-"),
                (None, Some(n)) => format!("-{n}"),
                (None, None) => unreachable!(),
            })
            .collect();
        let value = format!("{}={}", if upper { "BYTES" } else { "bytes" }, set.join(", "));
        let mut wanted = vec![false; size as usize];
        for spec in &specs {
            let (from, to) = match *spec {
                (Some(a), Some(b)) => (a, b),
                (Some(a), None) => (a, u64::MAX),
                (None, Some(n)) => (size.saturating_sub(n), u64::MAX),
                (None, None) => unreachable!(),
            };
            for i in from..size.min(to.saturating_add(1)) {
                wanted[i as usize] = true;
            }
        }
        let suffix_of_empty = size == 0 && specs.iter().any(|s| s.0.is_none());
        match parse_ranges(value.as_bytes(), size) {
            Ranges::Parts(parts) => {
                let mut got = vec![false; size as usize];
                for (start, end) in parts {
                    for i in start..=end {
                        got[i as usize] = true;
                    }
                }
                prop_assert_eq!(got, wanted, "{}", value);
            }
            Ranges::Unsatisfiable => {
                prop_assert!(wanted.iter().all(|w| !w) && !suffix_of_empty, "{}", value);
            }
            Ranges::Whole => prop_assert!(suffix_of_empty, "{} of {}", value, size),
        }
    }
}
