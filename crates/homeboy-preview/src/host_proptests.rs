//! Property tests of preview host names and patterns (issue 16): the names a preview client claims and the
//! `Host` of every public request. `normalize_host` refuses or returns a fixed point; a valid pattern
//! matches exactly what a reference regular expression says (`*` = one or more characters of one label),
//! in time proportional to the lengths even for patterns full of `*`; a concrete host stands for its
//! pattern; `Origin::parse` refuses or round-trips through its URL.

use proptest::prelude::*;

use crate::host::{Origin, glob_matches, normalize_host, normalize_pattern};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9\\-]{0,8}[a-z0-9])?"
}

/// A label pattern: letters, digits, hyphens and stars.
fn label_pattern() -> impl Strategy<Value = String> {
    "[a-z0-9*][a-z0-9*\\-]{0,6}[a-z0-9*]|[a-z0-9*]"
}

fn reference(pattern: &str) -> regex::Regex {
    let body: Vec<String> = pattern.split('*').map(regex::escape).collect();
    regex::Regex::new(&format!("^{}$", body.join("[^.]+"))).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hosts_refuse_or_are_fixed_points(value in prop_oneof![
        "[a-zA-Z0-9.\\-*?: /_]{0,40}",
        any::<String>(),
    ]) {
        if let Ok(host) = normalize_host(&value) {
            prop_assert_eq!(normalize_host(&host), Ok(host.clone()));
            prop_assert!(host.len() <= 253 && !host.contains(['*', '?', ':', '/']));
            prop_assert!(host.split('.').all(|l| !l.is_empty() && l.len() <= 63));
        }
        if let Ok(pattern) = normalize_pattern(&value) {
            prop_assert_eq!(normalize_pattern(&pattern), Ok(pattern.clone()));
        }
    }

    #[test]
    fn patterns_match_what_the_reference_matches(
        pattern in proptest::collection::vec(label_pattern(), 1..4).prop_map(|l| l.join(".")),
        host in prop_oneof![
            proptest::collection::vec(label(), 1..5).prop_map(|l| l.join(".")),
            "[a-z0-9.\\-]{0,30}",
        ],
        fill in label(),
    ) {
        prop_assert_eq!(glob_matches(&pattern, &host), reference(&pattern).is_match(&host), "{} vs {}", pattern, host);
        let concrete = pattern.replace('*', &fill);
        prop_assert!(glob_matches(&pattern, &concrete), "{} vs {}", pattern, concrete);
        prop_assert!(!glob_matches(&pattern, &format!("x.{concrete}")), "one label too many");
    }

    /// Star-heavy patterns against long labels answer at once (the old matcher backtracked exponentially).
    #[test]
    fn star_heavy_patterns_are_cheap(stars in 10usize..63, host_len in 30usize..63) {
        let pattern = format!("{}b.preview.test", "*a".repeat(stars / 2));
        let host = format!("{}.preview.test", "a".repeat(host_len));
        prop_assert!(!glob_matches(&pattern, &host));
    }

    #[test]
    fn origins_refuse_or_round_trip(value in prop_oneof![
        "(http|https|ftp)://[a-z0-9.:\\[\\]@]{0,25}(/[a-z]{0,4})?",
        any::<String>(),
    ]) {
        if let Ok(origin) = Origin::parse(&value) {
            let again = Origin::parse(&origin.url());
            prop_assert_eq!(again, Ok(origin));
        }
    }
}
