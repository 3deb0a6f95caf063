//! The daemon's (and broker's) metrics, answered as `GET /metrics` to requests whose `Host` names the
//! loopback daemon itself and that carry no proxy header (never through an `--allowed-host` name nor the
//! public proxy):
//!
//! - `homeboy_jobs{status}`: jobs in each status, counted from the store's index when scraped;
//! - `homeboy_job_claims_total`: runner claims granted; `homeboy_job_lease_expiries_total`: runner leases
//!   the sweeper found expired (the job was requeued or failed);
//! - `homeboy_http_request_duration_seconds`: every request's time to its response head, as a histogram;
//! - `homeboy_http_requests_in_flight`.
//!
//! Counters are atomics bumped where the thing happens (the claim long poll, the lease sweeper, the
//! request path); the job gauge is refreshed from the store at scrape time, on the blocking pool.

use std::sync::Arc;

use homeboy_http::metrics::prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry};
use homeboy_http::metrics::{self, prometheus::Histogram};
use homeboy_jobs::JobStore;

/// The daemon's metric families.
pub struct DaemonMetrics {
    registry: Registry,
    /// Time from a request's arrival to its response head.
    pub request_seconds: Histogram,
    pub in_flight: IntGauge,
    pub claims: IntCounter,
    pub lease_expiries: IntCounter,
    jobs: IntGaugeVec,
}

impl Default for DaemonMetrics {
    fn default() -> Self {
        let registry = Registry::new();
        let request_seconds = metrics::latency_histogram(
            &registry,
            "homeboy_http_request_duration_seconds",
            "Time from a request's arrival to its response head",
        );
        let in_flight = IntGauge::new(
            "homeboy_http_requests_in_flight",
            "Requests being answered right now",
        )
        .expect("valid gauge");
        metrics::register(&registry, in_flight.clone());
        let claims = IntCounter::new(
            "homeboy_job_claims_total",
            "Runner claims granted (a job handed to a runner under a lease)",
        )
        .expect("valid counter");
        metrics::register(&registry, claims.clone());
        let lease_expiries = IntCounter::new(
            "homeboy_job_lease_expiries_total",
            "Runner leases the sweeper found expired (the job was requeued, or failed after its last attempt)",
        )
        .expect("valid counter");
        metrics::register(&registry, lease_expiries.clone());
        let jobs = IntGaugeVec::new(
            Opts::new("homeboy_jobs", "Jobs in the store, by status"),
            &["status"],
        )
        .expect("valid gauge");
        metrics::register(&registry, jobs.clone());
        DaemonMetrics {
            registry,
            request_seconds,
            in_flight,
            claims,
            lease_expiries,
            jobs,
        }
    }
}

impl DaemonMetrics {
    /// Refreshes the job gauge from `store` (when the daemon has one) and renders everything.
    pub async fn scrape(
        self: &Arc<Self>,
        store: Option<Arc<dyn JobStore>>,
    ) -> axum::response::Response {
        if let Some(store) = store {
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Ok(counts) = store.count_by_status() {
                    for (status, count) in counts {
                        this.jobs
                            .with_label_values(&[status.as_str()])
                            .set(i64::try_from(count).unwrap_or(i64::MAX));
                    }
                }
            })
            .await;
        }
        metrics::response(&self.registry).map(axum::body::Body::new)
    }
}
