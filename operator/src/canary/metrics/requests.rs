//! The metric requests a Canary means (pure): its provider (the Canary's
//! `analysis.provider`, else MeshConfig's `metrics`, else builtin), the variables of its
//! queries and each metric's window (its `interval`, else the analysis interval).

use std::time::Duration;

use smi_crds::trellis::canary::{Canary, ProviderType};
use smi_crds::trellis::mesh_config::{MeshConfigSpec, MetricsProvider};
use smi_crds::validate::parse_duration;

use super::MetricRequest;

/// Where the Canary's metrics come from, and the Prometheus address if any.
pub fn provider(canary: &Canary, mesh: &MeshConfigSpec) -> (ProviderType, Option<String>) {
    let mesh_address = mesh.metrics.prometheus_url.clone();
    match &canary.spec.analysis.provider {
        Some(p) => (p.type_, p.address.clone().or(mesh_address)),
        None => match mesh.metrics.provider {
            MetricsProvider::Builtin => (ProviderType::Builtin, mesh_address),
            MetricsProvider::Prometheus => (ProviderType::Prometheus, mesh_address),
        },
    }
}

/// One request per metric of the Canary, `target` being the version under analysis.
pub fn requests(canary: &Canary, mesh: &MeshConfigSpec, target: &str) -> Vec<MetricRequest> {
    let (provider, prometheus_address) = provider(canary, mesh);
    let analysis = &canary.spec.analysis;
    let interval = parse_duration(&analysis.interval).unwrap_or(Duration::from_secs(60));
    analysis
        .metrics
        .iter()
        .map(|metric| MetricRequest {
            provider,
            prometheus_address: prometheus_address.clone(),
            namespace: namespace(canary).to_owned(),
            service: canary.spec.service.clone(),
            backend: canary.spec.canary.clone(),
            stable: canary.spec.stable.clone(),
            target: target.to_owned(),
            metric: metric.clone(),
            window: metric
                .interval
                .as_deref()
                .and_then(|i| parse_duration(i).ok())
                .unwrap_or(interval),
        })
        .collect()
}

/// The canary backend as the builtin provider keys it (`namespace/name`), when the Canary
/// has metrics measured by the builtin provider.
pub fn builtin_backend(canary: &Canary, mesh: &MeshConfigSpec) -> Option<String> {
    let builtin = provider(canary, mesh).0 == ProviderType::Builtin;
    (builtin && !canary.spec.analysis.metrics.is_empty())
        .then(|| format!("{}/{}", namespace(canary), canary.spec.canary))
}

fn namespace(canary: &Canary) -> &str {
    canary.metadata.namespace.as_deref().unwrap_or("default")
}

#[cfg(test)]
mod tests {
    use smi_crds::trellis::canary::{
        Analysis, CanarySpec, Metric, Provider, REQUEST_DURATION, REQUEST_SUCCESS_RATE,
    };
    use smi_crds::trellis::mesh_config::Metrics;

    use super::*;

    fn canary(provider: Option<Provider>) -> Canary {
        let mut canary = Canary::new(
            "api",
            CanarySpec {
                service: "api".into(),
                stable: "api-v2".into(),
                canary: "api-v3".into(),
                analysis: Analysis {
                    interval: "1m".into(),
                    provider,
                    metrics: vec![
                        Metric {
                            name: REQUEST_SUCCESS_RATE.into(),
                            ..Metric::default()
                        },
                        Metric {
                            name: REQUEST_DURATION.into(),
                            interval: Some("30s".into()),
                            ..Metric::default()
                        },
                    ],
                    ..Analysis::default()
                },
                ..CanarySpec::default()
            },
        );
        canary.metadata.namespace = Some("shop".into());
        canary
    }

    fn mesh(provider: MetricsProvider, url: Option<&str>) -> MeshConfigSpec {
        MeshConfigSpec {
            metrics: Metrics {
                provider,
                prometheus_url: url.map(Into::into),
            },
            ..MeshConfigSpec::default()
        }
    }

    #[test]
    fn each_metric_is_a_request_with_the_canary_s_variables_and_its_window() {
        let requests = requests(&canary(None), &mesh(MetricsProvider::Builtin, None), "v3");
        assert_eq!(
            requests[0],
            MetricRequest {
                provider: ProviderType::Builtin,
                prometheus_address: None,
                namespace: "shop".into(),
                service: "api".into(),
                backend: "api-v3".into(),
                stable: "api-v2".into(),
                target: "v3".into(),
                metric: canary(None).spec.analysis.metrics[0].clone(),
                window: Duration::from_secs(60),
            }
        );
        assert_eq!(
            requests[1].window,
            Duration::from_secs(30),
            "its own interval"
        );
    }

    #[test]
    fn the_canary_s_provider_wins_over_the_mesh_s_which_wins_over_builtin() {
        let prometheus = |address: Option<&str>| {
            Some(Provider {
                type_: ProviderType::Prometheus,
                address: address.map(Into::into),
            })
        };
        let mesh_prometheus = mesh(MetricsProvider::Prometheus, Some("http://mesh:9090"));
        assert_eq!(
            provider(&canary(None), &MeshConfigSpec::default()),
            (ProviderType::Builtin, None)
        );
        assert_eq!(
            provider(&canary(None), &mesh_prometheus),
            (ProviderType::Prometheus, Some("http://mesh:9090".into()))
        );
        assert_eq!(
            provider(
                &canary(prometheus(Some("http://own:9090"))),
                &mesh_prometheus
            ),
            (ProviderType::Prometheus, Some("http://own:9090".into()))
        );
        let builtin = Some(Provider::default());
        assert_eq!(
            provider(&canary(builtin), &mesh_prometheus).0,
            ProviderType::Builtin
        );
        assert_eq!(
            builtin_backend(&canary(None), &MeshConfigSpec::default()),
            Some("shop/api-v3".into())
        );
        assert_eq!(builtin_backend(&canary(None), &mesh_prometheus), None);
    }
}
