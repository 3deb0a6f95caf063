//! Token material and redaction: how homeboy mints credentials, stores only their SHA-256 digests, compares
//! presented tokens in constant time, and decides which names are too sensitive to print.
//!
//! Used by broker pairing (runner tokens), native preview auth (client tokens) and every status output that
//! shows environment variables.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What redacted values print as (the contract's).
pub use homeboy_api::servers::REDACTED;

/// A new high-entropy token: `prefix` followed by 32 random bytes as hex (256 bits from the OS RNG).
pub fn generate_token(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

/// A fresh error id (`e` and 12 hex digits) under which a server logs an internal error's detail; the
/// client sees only the id.
pub fn error_id() -> String {
    format!(
        "e{}",
        random_hex(6).unwrap_or_else(|_| format!("{:012x}", crate::clock::now_ms()))
    )
}

/// A random identifier of `bytes` random bytes as hex (ids, claim ids; not secrets).
pub fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(hex::encode(buf))
}

/// The lowercase hex SHA-256 digest of `token`, as stored in credential files.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` hashes to `digest_hex`. The comparison of the digests takes the same time wherever they
/// differ, so response timing tells an attacker nothing about how close a guess was.
pub fn token_matches_digest(token: &str, digest_hex: &str) -> bool {
    let presented = Sha256::digest(token.as_bytes());
    let Ok(stored) = hex::decode(digest_hex.trim()) else {
        return false;
    };
    if stored.len() != presented.len() {
        return false;
    }
    presented.as_slice().ct_eq(&stored).into()
}

/// Whether an environment variable name looks sensitive (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*KEY*`,
/// case-insensitive), so its value must never be printed.
pub fn is_sensitive_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL"]
        .iter()
        .any(|needle| upper.contains(needle))
}

/// `value`, or [`REDACTED`] when `name` is sensitive.
pub fn redact_for_name<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive_name(name) {
        REDACTED
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_digests_match() {
        let a = generate_token("hbr_").unwrap();
        let b = generate_token("hbr_").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("hbr_") && a.len() == 4 + 64);
        let digest = sha256_hex(&a);
        assert_eq!(digest.len(), 64);
        assert!(token_matches_digest(&a, &digest));
        assert!(token_matches_digest(&a, &digest.to_uppercase()));
        assert!(!token_matches_digest(&b, &digest));
        assert!(!token_matches_digest(&a, "not-hex"));
        assert!(!token_matches_digest(&a, "abcd"));
    }

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sensitive_names() {
        for name in [
            "OPENAI_API_KEY",
            "service_token",
            "DB_PASSWORD",
            "MY_SECRET_X",
            "SSH_KEYFILE",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        for name in ["HOMEBOY_PUBLIC_ARTIFACT_BASE_URL", "PATH", "RUST_LOG"] {
            assert!(!is_sensitive_name(name), "{name}");
        }
        assert_eq!(redact_for_name("API_TOKEN", "x"), REDACTED);
        assert_eq!(redact_for_name("PATH", "/bin"), "/bin");
    }
}
