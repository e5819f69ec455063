//! The gRPC Discovery client: what the proxy watches at the control plane.
//!
//! ```text
//! start ------------------------------> inbound: one WatchInbound {workload} for the process
//! route layer: destination never seen -> outbound: one WatchOutbound per destination
//!                                          {workload, authority | original_destination}
//! each config: Store::apply(_inbound) -> ack {applied(version)} | NACK {version, reason}
//! stream broken / control plane away:  keep the last good config, reconnect with jittered
//!                                      exponential backoff
//! ```
//!
//! Both watches share this module's pieces: [`acknowledge`] (count, log, ack or NACK) and
//! [`Backoff`].

mod inbound;
mod outbound;

pub use inbound::InboundWatch;
pub use outbound::Discovery;

use std::time::Duration;

use trellis_proxy_api::v1 as api;

use crate::config::ConfigError;
use crate::telemetry::Metrics;

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Reconnection delays: exponential from [`BACKOFF_BASE`] up to [`BACKOFF_MAX`], each
/// drawn between half and all of its ceiling so proxies do not reconnect in step.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// A config arrived: the stream works, the next failure starts from the base again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Whether no failure happened since the last config (the one failure worth a log line).
    pub fn is_first_failure(&self) -> bool {
        self.failures == 0
    }

    /// Counts one more failure and waits before the next attempt.
    pub async fn wait(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let ceiling = backoff_ceiling(self.failures);
        tokio::time::sleep(ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
    }
}

/// A Discovery client on a fresh connection to the control plane.
async fn connect(
    endpoint: &tonic::transport::Endpoint,
) -> Result<api::discovery_client::DiscoveryClient<tonic::transport::Channel>, tonic::Status> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("cannot connect: {e}")))?;
    Ok(api::discovery_client::DiscoveryClient::new(channel))
}

/// The longest wait after `failures` failures in a row.
fn backoff_ceiling(failures: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1 << failures.min(10))
        .min(BACKOFF_MAX)
}

/// What the proxy answers for a config it received: counted in
/// `trellis_config_updates_total{source="grpc"}`, a refusal logged with `what` (`config 7
/// for web.shop`, `inbound policy 3`), and the ack or NACK to send back.
pub(crate) fn acknowledge(
    metrics: &Metrics,
    what: &str,
    version: String,
    applied: Result<(), ConfigError>,
) -> api::Ack {
    let (label, result) = ack_result(version, applied);
    metrics
        .config_updates
        .with_label_values(&["grpc", label])
        .inc();
    if let api::ack::Result::Rejected(nack) = &result {
        eprintln!(
            "trellis-proxy: refused {what}: {}; the last good config stays in force",
            nack.reason
        );
    }
    api::Ack {
        result: Some(result),
    }
}

/// The ack (`applied`) or NACK (`rejected`, with the reason naming the field) for a
/// version, and its metric label.
fn ack_result(
    version: String,
    applied: Result<(), ConfigError>,
) -> (&'static str, api::ack::Result) {
    match applied {
        Ok(()) => ("applied", api::ack::Result::Applied(version)),
        Err(e) => (
            "rejected",
            api::ack::Result::Rejected(api::Nack {
                version,
                reason: e.to_string(),
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_applied_config_is_acked_with_its_version() {
        assert_eq!(
            ack_result("7".into(), Ok(())),
            ("applied", api::ack::Result::Applied("7".into()))
        );
    }

    #[test]
    fn a_refused_config_is_nacked_with_its_version_and_the_field_at_fault() {
        let e = ConfigError {
            field: "ports[0].port".into(),
            message: "must be 1-65535".into(),
        };
        assert_eq!(
            ack_result("8".into(), Err(e)),
            (
                "rejected",
                api::ack::Result::Rejected(api::Nack {
                    version: "8".into(),
                    reason: "ports[0].port: must be 1-65535".into(),
                })
            )
        );
    }

    #[test]
    fn reconnection_waits_double_from_100ms_up_to_5s() {
        let ceilings: Vec<_> = (1..=7).map(backoff_ceiling).collect();
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(
            ceilings,
            [
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(5000),
                ms(5000)
            ]
        );
        assert_eq!(backoff_ceiling(u32::MAX), ms(5000));
    }

    #[test]
    fn a_config_resets_the_backoff() {
        let mut backoff = Backoff::default();
        assert!(backoff.is_first_failure());
        backoff.failures = 3;
        assert!(!backoff.is_first_failure());
        backoff.reset();
        assert!(backoff.is_first_failure());
    }
}
