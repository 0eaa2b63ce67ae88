//! Prometheus metrics, served on a listener of their own (`--metrics-addr`) so that the
//! public port never exposes them. Request counts come from the audit rows themselves
//! (the writer's observer): the metrics count exactly what the trail records, on every
//! channel, allowed or refused. Audit-writer and policy figures are read at scrape time.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use portcullis_domain::audit_event::RequestEvent;
use portcullis_domain::audit_writer::{AuditMonitor, Observer};
use portcullis_domain::model::{Decision, RequestChannel};
use portcullis_domain::store::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};

use crate::shared_limits::SharedLimits;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    channel: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

type Latency = Family<ChannelLabel, Histogram, fn() -> Histogram>;

/// The counters requests feed, shared by the observer and the scrape.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    /// Arrival until forwarded, and the upstream's time to answer, per channel.
    gateway_latency: Latency,
    upstream_latency: Latency,
    refusals: Family<RefusalLabels, Counter>,
    tokens: Family<OutcomeLabel, Counter>,
    mcp_sessions: Family<OutcomeLabel, Counter>,
    /// The audit writer's monitor, the store and the shared limits, known once the
    /// writer has started (it is created with this observer). A monitor, not a sink: a
    /// sink held here would keep the writer waiting for it at shutdown.
    live: Arc<OnceLock<LiveParts>>,
}

struct LiveParts {
    audit: AuditMonitor,
    store: Store,
    shared_limits: Option<SharedLimits>,
}

impl std::fmt::Debug for LiveParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveParts").finish_non_exhaustive()
    }
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
        let buckets = || Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let gateway_latency: Latency = Family::new_with_constructor(buckets);
        registry.register(
            "portcullis_gateway_added_seconds",
            "Time from a request's arrival until it left for its upstream: authentication, authorization, limits, audit reservation",
            gateway_latency.clone(),
        );
        let upstream_latency: Latency = Family::new_with_constructor(buckets);
        registry.register(
            "portcullis_upstream_response_seconds",
            "Time an upstream took to answer with headers",
            upstream_latency.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register("portcullis_refusals", "Refused requests by channel and audit reason", refusals.clone());
        let tokens = Family::<OutcomeLabel, Counter>::default();
        registry.register("portcullis_tokens", "Token requests at /oauth/token: issued or refused", tokens.clone());
        let mcp_sessions = Family::<OutcomeLabel, Counter>::default();
        registry.register("portcullis_mcp_sessions", "MCP sessions started and ended", mcp_sessions.clone());
        let live = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(Live(live.clone())));
        Arc::new(Self {
            registry,
            requests,
            latency,
            gateway_latency,
            upstream_latency,
            refusals,
            tokens,
            mcp_sessions,
            live,
        })
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
        if let Some(us) = e.forwarded_after_us {
            self.gateway_latency.get_or_create(&ChannelLabel { channel }).observe(us as f64 / 1e6);
        }
        if let Some(us) = e.upstream_us {
            self.upstream_latency.get_or_create(&ChannelLabel { channel }).observe(us as f64 / 1e6);
        }
        let allowed = e.decision == Decision::Allowed;
        if !allowed {
            self.refusals.get_or_create(&RefusalLabels { channel, reason: label_safe(e.reason.as_str()) }).inc();
        }
        match e.channel {
            RequestChannel::Oauth if e.path.as_str() == "/oauth/token" => {
                let outcome = if allowed { "issued" } else { "refused" };
                self.tokens.get_or_create(&OutcomeLabel { outcome }).inc();
            }
            RequestChannel::Mcp if allowed && e.tool.as_ref().is_some_and(|t| t.as_str() == "initialize") => {
                self.mcp_sessions.get_or_create(&OutcomeLabel { outcome: "started" }).inc();
            }
            RequestChannel::Mcp if allowed && e.method.as_str() == "DELETE" => {
                self.mcp_sessions.get_or_create(&OutcomeLabel { outcome: "ended" }).inc();
            }
            _ => {}
        }
    }

    pub fn attach(&self, audit: AuditMonitor, store: Store, shared_limits: Option<SharedLimits>) {
        let _ = self.live.set(LiveParts { audit, store, shared_limits });
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

/// An audit reason as a label value: reasons are our own codes, but a label must never
/// carry anything else, so whatever is not a short code counts as `other`.
fn label_safe(reason: &str) -> String {
    let code = !reason.is_empty()
        && reason.len() <= 48
        && reason.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if code {
        reason.to_owned()
    } else {
        "other".to_owned()
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
struct Live(Arc<OnceLock<LiveParts>>);

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(LiveParts { audit, store, shared_limits }) = self.0.get() else { return Ok(()) };
        let (Some(health), Some(counts)) = (audit.health(store.now()), audit.counts()) else { return Ok(()) };
        let snapshot = store.enforcement().snapshot().current();
        let confirmed = store.enforcement().snapshot().confirmed_at();
        let age_ms = if confirmed == 0 { 0 } else { store.now().saturating_sub(confirmed).max(0) };
        let gauges: [(&str, &str, i64); 5] = [
            ("portcullis_audit_queue_rows", "Audit rows reserved or waiting to be written.", health.in_use as i64),
            ("portcullis_audit_queue_capacity", "Audit rows that may be reserved at once.", health.capacity as i64),
            (
                "portcullis_audit_writer_failing",
                "1 while the audit writer cannot write (it retries).",
                i64::from(health.failing_for_ms.is_some()),
            ),
            ("portcullis_policy_version", "Policy version of the snapshot this server enforces.", snapshot.version),
            (
                "portcullis_policy_snapshot_age_seconds",
                "Seconds since the store last confirmed this server's policy snapshot is the newest (grows while the store is unreachable).",
                age_ms / 1000,
            ),
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
        if let Some(shared) = shared_limits {
            let (answered, fell_back) = shared.counts();
            let checks: [(&str, &str, u64); 2] = [
                ("portcullis_shared_limit_checks", "Rate-limit checks Redis decided (--redis-url).", answered),
                (
                    "portcullis_shared_limit_fallbacks",
                    "Rate-limit checks decided by this replica alone because Redis could not answer.",
                    fell_back,
                ),
            ];
            for (name, help, value) in checks {
                let counter = ConstCounter::new(value);
                counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
            }
        }
        Ok(())
    }
}
