//! `GET /metrics` of every server that has one (the daemon and broker, the preview ingress): the Prometheus
//! text exposition format (version 0.0.4), written by the `prometheus` crate from a registry the server
//! fills. The server decides which hosts may ask (loopback, or its control hosts); this module only turns a
//! registry into the response and holds what the servers share: the request-latency buckets.

use bytes::Bytes;
use http::{Response, header};
use http_body_util::Full;
pub use prometheus;
use prometheus::{Encoder, Histogram, HistogramOpts, Registry, TextEncoder};

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The path every server answers metrics on.
pub const PATH: &str = "/metrics";

/// Request latency buckets in seconds: sub-millisecond local answers up to the claim long poll's 30 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// A request-duration histogram with [`LATENCY_BUCKETS`], registered in `registry`.
pub fn latency_histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let histogram =
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
            .expect("valid histogram options");
    register(registry, histogram.clone());
    histogram
}

/// Registers `collector`; a name registered twice is a programming error caught by every test.
pub fn register<C: prometheus::core::Collector + 'static>(registry: &Registry, collector: C) {
    registry
        .register(Box::new(collector))
        .expect("metric names are unique");
}

/// Everything in `registry`, in the text format.
pub fn encode(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    // Encoding gathered families into a Vec cannot fail.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    out
}

/// `registry` as the answer of `GET /metrics`.
pub fn response(registry: &Registry) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(encode(registry))));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_renders_as_the_text_format() {
        let registry = Registry::new();
        let histogram = latency_histogram(&registry, "test_seconds", "A test histogram");
        histogram.observe(0.003);
        let response = response(&registry);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let text = String::from_utf8(encode(&registry)).unwrap();
        assert!(text.contains("# TYPE test_seconds histogram"), "{text}");
        assert!(
            text.contains("test_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(text.contains("test_seconds_count 1"), "{text}");
    }
}
