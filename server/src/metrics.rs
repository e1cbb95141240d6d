//! Prometheus metrics: HTTP requests by operation and status with latency histograms,
//! deliveries by outcome, and the due-delivery backlog (counted in the background, so a
//! scrape never queries the database).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;
use webhooks::server::Operation;

use crate::store::{DeliveryStore, Store};

pub const HTTP_REQUESTS: &str = "http_requests_total";
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
pub const DELIVERIES: &str = "webhook_deliveries_total";
pub const BACKLOG: &str = "webhook_deliveries_due";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (installed on first use) and its renderer.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0];
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &buckets)
        {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        handle
    })
}

/// The contract operation a matched route serves, for labels.
fn operation_label(method: &axum::http::Method, path: Option<&MatchedPath>) -> &'static str {
    let Some(path) = path else { return "none" };
    Operation::ALL
        .iter()
        .find(|op| op.path() == path.as_str() && op.method() == method.as_str())
        .map_or("other", |op| op.operation_id())
}

/// Middleware: counts and times every request.
pub async fn track(request: Request, next: Next) -> Response {
    let operation = operation_label(request.method(), request.extensions().get::<MatchedPath>());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "operation" => operation, "status" => status).increment(1);
    metrics::histogram!(HTTP_DURATION, "operation" => operation).record(started.elapsed().as_secs_f64());
    response
}

/// One finished delivery attempt: `success`, `retry` (failed, will be retried) or `failure` (given up).
pub fn delivery(outcome: &'static str) {
    metrics::counter!(DELIVERIES, "outcome" => outcome).increment(1);
}

/// Sets the backlog gauge to the number of due deliveries now, and every `interval` after,
/// until `stop` turns true. A count still running when asked to stop is abandoned.
pub async fn refresh_backlog(store: Store, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let refreshed = async {
            ticks.tick().await;
            // A count slower than the interval is late anyway; the next tick tries again.
            match tokio::time::timeout(interval, store.due_count()).await {
                Ok(Ok(due)) => metrics::gauge!(BACKLOG).set(due as f64),
                Ok(Err(e)) => tracing::warn!(error = %e, "could not count due deliveries"),
                Err(_) => {
                    tracing::warn!(?interval, "counting due deliveries took longer than the refresh interval")
                }
            }
        };
        tokio::select! {
            () = refreshed => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
