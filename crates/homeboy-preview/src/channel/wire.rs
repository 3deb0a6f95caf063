//! The preview channel's JSON (the wire types live in the contract crate, `homeboy_api::preview`) and the
//! base64 both sides use for bodies on the long-poll transport.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub use homeboy_api::preview::*;

/// Base64 (standard alphabet, padded) of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(text)
        .map_err(|e| format!("is not valid base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_garbage() {
        assert_eq!(decode(&encode(b"hi")).unwrap(), b"hi");
        assert!(decode("***").is_err());
    }
}
