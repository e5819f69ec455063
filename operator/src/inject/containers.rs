//! What injection adds to a pod: the proxy container, the `trellis-init` container and
//! their volumes, built from the config and the pod's annotations (pure).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, Probe, ProjectedVolumeSource, ResourceRequirements,
    SeccompProfile, SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use trellis_proxy_api::ports;

use super::annotations::Overrides;
use super::config::{Config, Quantity};
use super::names;
use super::skip::join;

/// The proxy container. `inbound_target`: the app port inbound traffic goes to (`None`:
/// the proxy's default, 8080). `native`: a native sidecar (an init container with
/// `restartPolicy: Always` and a startup probe, so the app starts once the proxy listens).
pub fn proxy(
    config: &Config,
    overrides: &Overrides,
    inbound_target: Option<u16>,
    native: bool,
) -> Container {
    let mut args: Vec<String> = [
        "--control-plane",
        &config.control_plane,
        "--workload",
        "$(POD_NAMESPACE)/$(POD_NAME)",
        "--identity",
        &format!(
            "spiffe://{}/ns/$(POD_NAMESPACE)/sa/$(POD_SERVICE_ACCOUNT)",
            config.trust_domain
        ),
        "--identity-token-file",
        names::IDENTITY_TOKEN_FILE,
        "--admin",
        &format!("0.0.0.0:{}", ports::ADMIN),
        "--outbound",
        &format!("127.0.0.1:{}", ports::OUTBOUND),
        "--inbound",
        &format!("0.0.0.0:{}", ports::INBOUND),
    ]
    .map(String::from)
    .into();
    if let Some(port) = inbound_target {
        args.extend(["--inbound-target".into(), format!("127.0.0.1:{port}")]);
    }
    Container {
        name: names::PROXY_CONTAINER.into(),
        image: Some(config.image.clone()),
        image_pull_policy: config.image_pull_policy.map(|p| p.as_str().into()),
        command: Some(vec![names::PROXY_BINARY.into()]),
        args: Some(args),
        env: Some(vec![
            field_env(names::ENV_POD_NAME, "metadata.name"),
            field_env(names::ENV_POD_NAMESPACE, "metadata.namespace"),
            field_env(names::ENV_POD_SERVICE_ACCOUNT, "spec.serviceAccountName"),
        ]),
        ports: Some(vec![
            port(names::INBOUND_PORT_NAME, ports::INBOUND),
            port(names::ADMIN_PORT_NAME, ports::ADMIN),
        ]),
        resources: Some(resources(config, overrides)),
        readiness_probe: Some(probe("/ready", 2, 3)),
        liveness_probe: Some(probe("/live", 10, 3)),
        // Kubelet starts the next init container, then the app, once this succeeds.
        startup_probe: native.then(|| probe("/live", 1, 120)),
        restart_policy: native.then(|| "Always".into()),
        security_context: Some(SecurityContext {
            run_as_user: Some(i64::from(config.proxy_uid)),
            run_as_group: Some(i64::from(config.proxy_uid)),
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".into()]),
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: names::IDENTITY_VOLUME.into(),
            mount_path: names::IDENTITY_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

/// `trellis-init`: `trellis-proxy init` with the skip lists of the config and the
/// annotations (the config's first). Root with NET_ADMIN and NET_RAW, nothing else.
pub fn init(config: &Config, overrides: &Overrides) -> Container {
    let mut args = vec![
        "init".to_owned(),
        "--proxy-uid".into(),
        config.proxy_uid.to_string(),
    ];
    let ports = |ours: &[_], theirs: &[_]| join(&[ours, theirs].concat());
    let lists = [
        (
            "--skip-outbound-ports",
            ports(&config.skip_outbound_ports, &overrides.skip_outbound_ports),
        ),
        (
            "--skip-inbound-ports",
            ports(&config.skip_inbound_ports, &overrides.skip_inbound_ports),
        ),
        (
            "--skip-outbound-cidrs",
            join(
                &[
                    &config.skip_outbound_cidrs[..],
                    &overrides.skip_outbound_cidrs,
                ]
                .concat(),
            ),
        ),
    ];
    for (flag, list) in lists {
        if !list.is_empty() {
            args.extend([flag.to_owned(), list]);
        }
    }
    Container {
        name: names::INIT_CONTAINER.into(),
        image: Some(config.image.clone()),
        image_pull_policy: config.image_pull_policy.map(|p| p.as_str().into()),
        command: Some(vec![names::PROXY_BINARY.into()]),
        args: Some(args),
        resources: Some(resources(config, overrides)),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: names::XTABLES_VOLUME.into(),
            mount_path: "/run".into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

/// The projected ServiceAccount token the proxy presents to the Identity API.
pub fn identity_volume() -> Volume {
    Volume {
        name: names::IDENTITY_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(names::IDENTITY_AUDIENCE.into()),
                    expiration_seconds: Some(names::IDENTITY_TOKEN_SECONDS),
                    path: "token".into(),
                }),
                ..VolumeProjection::default()
            }]),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// A small in-memory `/run` for iptables' lock file in `trellis-init`.
pub fn xtables_volume() -> Volume {
    Volume {
        name: names::XTABLES_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(K8sQuantity("1Mi".into())),
        }),
        ..Volume::default()
    }
}

/// The config's resources, each value replaced by its annotation when there is one.
fn resources(config: &Config, o: &Overrides) -> ResourceRequirements {
    let list = |cpu: Option<&Quantity>, memory: Option<&Quantity>| {
        let map: BTreeMap<String, K8sQuantity> = [("cpu", cpu), ("memory", memory)]
            .into_iter()
            .filter_map(|(k, q)| Some((k.to_owned(), K8sQuantity(q?.0.clone()))))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    let r = &config.resources;
    ResourceRequirements {
        requests: list(
            o.cpu_request.as_ref().or(r.requests.cpu.as_ref()),
            o.memory_request.as_ref().or(r.requests.memory.as_ref()),
        ),
        limits: list(
            o.cpu_limit.as_ref().or(r.limits.cpu.as_ref()),
            o.memory_limit.as_ref().or(r.limits.memory.as_ref()),
        ),
        ..ResourceRequirements::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn port(name: &str, number: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(number),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// `GET :4191<path>`.
fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(i32::from(ports::ADMIN)),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}
