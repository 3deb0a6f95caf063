//! The HTTP client side (feature `client`): one reqwest builder with homeboy's defaults for every client
//! (the CLI, the runner worker, the preview client), and error text that never shows a URL (a URL may carry
//! a query or user info).

use std::sync::Once;
use std::time::Duration;

/// Installs the process-wide TLS crypto provider once (reqwest is built without a default one).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with homeboy's defaults: a connect timeout and a user agent; no proxies when
/// `base_url` is a loopback address.
pub fn http_client_builder(base_url: &str) -> reqwest::ClientBuilder {
    install_crypto_provider();
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("homeboy/", env!("CARGO_PKG_VERSION")));
    if is_loopback_url(base_url) {
        builder.no_proxy()
    } else {
        builder
    }
}

/// What went wrong with a request, in words, without the URL (reqwest's `Display` includes it).
pub fn describe_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut deepest = None;
    while let Some(s) = source {
        deepest = Some(s.to_string());
        source = s.source();
    }
    match deepest {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_string(),
    }
}

/// Whether `url`'s host is loopback.
pub fn is_loopback_url(url: &str) -> bool {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(homeboy_config::net::is_loopback_host))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_urls() {
        assert!(super::is_loopback_url("http://127.0.0.1:7421"));
        assert!(super::is_loopback_url("http://[::1]:7421/x?y"));
        assert!(super::is_loopback_url("http://localhost"));
        assert!(!super::is_loopback_url("https://broker.example.com"));
        assert!(!super::is_loopback_url("not a url"));
    }
}
