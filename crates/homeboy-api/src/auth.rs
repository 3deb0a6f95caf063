//! The contract's auth schemes: runner tokens (scope `work`/`submit`) and preview client tokens are both
//! presented as `Authorization: Bearer <token>` (runner routes also accept `x-homeboy-broker-token`). This is
//! the one parser of that header value.

/// The header runner routes accept besides `Authorization`.
pub const BROKER_TOKEN_HEADER: &str = "x-homeboy-broker-token";

/// The token of an `Authorization` value of the `Bearer` scheme (case-insensitive), trimmed; `None` for
/// another scheme or an empty token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("  bearer   abc  "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
