//! Prometheus metrics, base units, `trellis_` prefix. One [`Metrics`] per process, shared by
//! every layer that counts something.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub retries: IntCounterVec,
    pub retries_skipped: IntCounterVec,
    pub ejections: IntCounterVec,
    pub mirrored: IntCounterVec,
    pub tcp_connections: IntCounterVec,
    pub tls_handshake_failures: IntCounterVec,
    pub tcp_open: IntGaugeVec,
    pub tcp_read_bytes: IntCounterVec,
    pub tcp_write_bytes: IntCounterVec,
    pub config_updates: IntCounterVec,
    pub inbound_denied: IntCounterVec,
    pub identity_certify: IntCounterVec,
    pub identity_expiry: prometheus::Gauge,
}

/// Buckets of `trellis_request_duration_seconds`.
const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let requests = counter(
            "trellis_requests_total",
            "HTTP and gRPC requests, by outcome",
            &[
                "direction",
                "authority",
                "route",
                "backend",
                "status_code",
                "grpc_status",
                "classification",
                "tls",
                "peer_identity",
            ],
        );
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "trellis_request_duration_seconds",
                "Time from a request's arrival to the end of its response",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &[
                "direction",
                "authority",
                "route",
                "backend",
                "classification",
            ],
        )
        .expect("valid metric");
        registry
            .register(Box::new(request_duration.clone()))
            .expect("unique metric");
        let retries = counter(
            "trellis_retries_total",
            "Retry attempts sent",
            &["authority", "route"],
        );
        let retries_skipped = counter(
            "trellis_retries_skipped_total",
            "Retries not sent, by reason (budget, body_too_large)",
            &["authority", "route", "reason"],
        );
        let ejections = counter(
            "trellis_endpoint_ejections_total",
            "Endpoints ejected by outlier detection",
            &["authority", "backend", "endpoint"],
        );
        let mirrored = counter(
            "trellis_mirrored_requests_total",
            "Requests copied to a mirror backend",
            &["authority", "route", "backend"],
        );
        let tcp_connections = counter(
            "trellis_tcp_connections_total",
            "Accepted connections, by detected protocol; tls and peer_identity describe the meshed hop (inbound: the client's mTLS; outbound opaque: the mTLS to the endpoint)",
            &["direction", "protocol", "tls", "peer_identity"],
        );
        let tls_handshake_failures = counter(
            "trellis_tls_handshake_failures_total",
            "mTLS handshakes that failed (inbound: a client the proxy refused; outbound: an endpoint that did not prove its identity)",
            &["direction"],
        );
        let tcp_open = IntGaugeVec::new(
            Opts::new("trellis_tcp_open_connections", "Connections open now"),
            &["direction"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(tcp_open.clone()))
            .expect("unique metric");
        let tcp_read_bytes = counter(
            "trellis_tcp_read_bytes_total",
            "Bytes read from accepted connections",
            &["direction"],
        );
        let tcp_write_bytes = counter(
            "trellis_tcp_write_bytes_total",
            "Bytes written to accepted connections",
            &["direction"],
        );
        let config_updates = counter(
            "trellis_config_updates_total",
            "Configs received, applied or rejected",
            &["source", "result"],
        );
        let inbound_denied = counter(
            "trellis_inbound_denied_total",
            "Inbound requests and connections the inbound policy denied, by reason",
            &["port", "reason"],
        );
        let identity_certify = counter(
            "trellis_identity_certify_total",
            "Certificates requested from the Identity API, by result (issued, failed)",
            &["result"],
        );
        let identity_expiry = prometheus::Gauge::new(
            "trellis_identity_certificate_expiry_timestamp_seconds",
            "When the certificate in force expires (Unix time)",
        )
        .expect("valid metric");
        registry
            .register(Box::new(identity_expiry.clone()))
            .expect("unique metric");
        Self {
            registry,
            identity_certify,
            identity_expiry,
            requests,
            request_duration,
            retries,
            retries_skipped,
            ejections,
            mirrored,
            tcp_connections,
            tls_handshake_failures,
            tcp_open,
            tcp_read_bytes,
            tcp_write_bytes,
            config_updates,
            inbound_denied,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("text encoding is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
