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

/// Parts of a name that mark it sensitive wherever they appear (case-insensitive): the words credential
/// scanners look for. `AUTH` counts except as the start of `AUTHOR` or `AUTHORITY` (`GIT_AUTHOR_NAME` is a
/// name, `HTTP_AUTHORIZATION` a credential).
const SENSITIVE_PARTS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "PRIVATE",
    "COOKIE",
    "SESSION",
    "KEY",
    "AUTH",
    "JWT",
    "BEARER",
    "CONNECTION_STRING",
    "CONN_STR",
];

/// Words that mark a name sensitive only as a whole `_`-separated word (as parts they are too common:
/// `PATH`, `PASSTHROUGH`, `DSNAME`): `GITHUB_PAT`, `DB_PASS`, `DB_PWD`, `SENTRY_DSN`.
const SENSITIVE_WORDS: &[&str] = &["PAT", "PASS", "PWD", "DSN", "OTP", "PIN"];

/// Well-known names that match the rules above but hold no secret (a path, a socket, a desktop session).
const NOT_SENSITIVE: &[&str] = &[
    "PWD",
    "OLDPWD",
    "SSH_AUTH_SOCK",
    "DBUS_SESSION_BUS_ADDRESS",
    "DESKTOP_SESSION",
    "SESSION_MANAGER",
    "XDG_SESSION_CLASS",
    "XDG_SESSION_DESKTOP",
    "XDG_SESSION_ID",
    "XDG_SESSION_TYPE",
];

/// Whether an environment variable name looks sensitive, so its value must never be printed: it contains a
/// credential word (`TOKEN`, `SECRET`, `PASSWORD`, `PASSWD`, `PASSPHRASE`, `CREDENTIAL`, `PRIVATE`,
/// `COOKIE`, `SESSION`, `KEY`, `AUTH`, `JWT`, `BEARER`, connection strings) or has one of the short words
/// `PAT`, `PASS`, `PWD`, `DSN`, `OTP`, `PIN` as a whole `_`-separated word. Case-insensitive.
pub fn is_sensitive_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if NOT_SENSITIVE.contains(&upper.as_str()) {
        return false;
    }
    let has_part = SENSITIVE_PARTS.iter().any(|part| {
        upper.match_indices(part).any(|(at, _)| {
            *part != "AUTH" || {
                let rest = &upper[at..];
                !(rest.starts_with("AUTHOR")
                    && !rest.starts_with("AUTHORIZ")
                    && !rest.starts_with("AUTHORIS"))
            }
        })
    });
    has_part
        || upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| SENSITIVE_WORDS.contains(&word))
}

/// Whether a value carries a credential whatever its name: a URL with user info
/// (`postgres://user:pass@host/db`) or with a query parameter of a sensitive name
/// (`https://host/x?access_token=…`).
pub fn is_sensitive_value(value: &str) -> bool {
    let Some((scheme, rest)) = value.trim().split_once("://") else {
        return false;
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return false;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[..authority_end].contains('@') {
        return true;
    }
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or("");
    query
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .any(|name| !name.is_empty() && is_sensitive_name(name))
}

/// Whether an environment entry must not be shown: a sensitive name or a sensitive value.
pub fn is_sensitive_env(name: &str, value: &str) -> bool {
    is_sensitive_name(name) || is_sensitive_value(value)
}

/// `value`, or [`REDACTED`] when the entry `name=value` is sensitive ([`is_sensitive_env`]).
pub fn redact_env<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive_env(name, value) {
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
            // Issue 16: names credential scanners know.
            "GITHUB_PAT",
            "HTTP_AUTHORIZATION",
            "AUTH_HEADER",
            "OAUTH_CLIENT",
            "DB_PASS",
            "DB_PWD",
            "SMTP_PASSWD",
            "GPG_PASSPHRASE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "PRIVATE_PEM",
            "SESSION_COOKIE",
            "RAILS_SESSION",
            "SENTRY_DSN",
            "JWT",
            "BEARER",
            "AZURE_CONNECTION_STRING",
            "pat",
            "totp_otp",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        for name in [
            "HOMEBOY_PUBLIC_ARTIFACT_BASE_URL",
            "PATH",
            "RUST_LOG",
            "DATABASE_URL",
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "CERT_AUTHORITY",
            "PWD",
            "OLDPWD",
            "SSH_AUTH_SOCK",
            "XDG_SESSION_TYPE",
            "PATCH_LEVEL",
            "PASSTHROUGH",
            "PINNED",
            "SPINE",
        ] {
            assert!(!is_sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn sensitive_values() {
        for value in [
            "postgres://u:pass@h/db",
            "postgres://u@h/db",
            "https://user:tok@github.com/o/r.git",
            " redis://:pw@cache:6379 ",
            "https://h/x?access_token=abc",
            "https://h/x?a=1&api_key=abc#frag",
        ] {
            assert!(is_sensitive_value(value), "{value}");
        }
        for value in [
            "https://artifacts.example.test",
            "https://h/a@b",
            "https://h/x?page=2",
            "mailto:me@example.com",
            "me@example.com",
            "://@",
            "plain",
            "",
        ] {
            assert!(!is_sensitive_value(value), "{value}");
        }
        assert_eq!(redact_env("API_TOKEN", "x"), REDACTED);
        assert_eq!(redact_env("DATABASE_URL", "postgres://u:p@h/db"), REDACTED);
        assert_eq!(redact_env("PATH", "/bin"), "/bin");
    }
}
