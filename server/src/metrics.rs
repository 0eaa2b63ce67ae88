//! Prometheus metrics, served on a listener of their own (`--metrics-addr`) so that the
//! public port never exposes them. Request counts come from the audit rows themselves
//! (the writer's observer): the metrics count exactly what the trail records, on every
//! channel, allowed or refused. Audit-writer and policy figures are read at scrape time.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use portcullis_domain::audit_writer::{AuditMonitor, Observer, RequestEvent};
use portcullis_domain::store::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    channel: &'static str,
    decision: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: &'static str,
}

type Latency = Family<ChannelLabel, Histogram, fn() -> Histogram>;

/// The counters requests feed, shared by the observer and the scrape.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    /// The audit writer's monitor and the store, known once the writer has started (it
    /// is created with this observer). A monitor, not a sink: a sink held here would keep
    /// the writer waiting for it at shutdown.
    live: Arc<OnceLock<(AuditMonitor, Store)>>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "portcullis_requests",
            "Requests on /gw, /mcp and /oauth, as their audit rows record them",
            requests.clone(),
        );
        let latency: Latency = Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 15)));
        registry.register(
            "portcullis_request_duration_seconds",
            "Time from a request's arrival to its row, per channel",
            latency.clone(),
        );
        let live = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(Live(live.clone())));
        Arc::new(Self { registry, requests, latency, live })
    }

    /// The audit observer that counts every finished row.
    pub fn observer(self: &Arc<Self>) -> Observer {
        let me = self.clone();
        Arc::new(move |e: &RequestEvent| me.count(e))
    }

    fn count(&self, e: &RequestEvent) {
        let channel = e.channel.as_str();
        let labels = RequestLabels { channel, decision: e.decision.as_str(), status_class: status_class(e.status) };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&ChannelLabel { channel }).observe(e.latency_us as f64 / 1e6);
    }

    pub fn attach(&self, audit: AuditMonitor, store: Store) {
        let _ = self.live.set((audit, store));
    }

    fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        text
    }

    /// Serves `/metrics` on `listener` until the task is aborted.
    pub fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let router = axum::Router::new().route(
            "/metrics",
            get(move || async move {
                ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], self.render())
                    .into_response()
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        })
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Figures read when scraped: the audit queue and writer, the policy snapshot.
#[derive(Debug)]
struct Live(Arc<OnceLock<(AuditMonitor, Store)>>);

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((audit, store)) = self.0.get() else { return Ok(()) };
        let (Some(health), Some(counts)) = (audit.health(store.now()), audit.counts()) else { return Ok(()) };
        let snapshot = store.snapshot().current();
        let gauges: [(&str, &str, i64); 4] = [
            ("portcullis_audit_queue_rows", "Audit rows reserved or waiting to be written.", health.in_use as i64),
            ("portcullis_audit_queue_capacity", "Audit rows that may be reserved at once.", health.capacity as i64),
            (
                "portcullis_audit_writer_failing",
                "1 while the audit writer cannot write (it retries).",
                i64::from(health.failing_for_ms.is_some()),
            ),
            ("portcullis_policy_version", "Policy version of the snapshot this server enforces.", snapshot.version),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let counters: [(&str, &str, u64); 3] = [
            ("portcullis_audit_rows_written", "Audit rows in batches the writer completed.", counts.rows_written),
            ("portcullis_audit_write_failures", "Audit batches that failed and were retried.", counts.write_failures),
            ("portcullis_audit_rows_spilled", "Audit rows written to the local spill file.", counts.rows_spilled),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        Ok(())
    }
}
