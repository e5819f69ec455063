//! Whether and how to inject a pod (pure): [`inject`] reads the pod's metadata and spec
//! and answers with what to add ([`Injection`]) or why nothing is done ([`Skip`]).
//!
//! Where things go:
//!
//! ```text
//! native sidecars:  initContainers: [trellis-init, trellis-proxy (restartPolicy Always), <app's>]
//!                   containers:     [<app's>]
//! init container:   initContainers: [<app's>, trellis-init]
//!                   containers:     [trellis-proxy, <app's>]
//! both:             volumes += trellis-identity (+ trellis-xtables-lock)
//!                   annotations += trellis.dev/injected: <version>
//! ```
//!
//! With native sidecars the proxy runs while the app's init containers do, so their
//! traffic is meshed too. Without, `trellis-init` runs after the app's init containers:
//! they reach the network directly, as no proxy would be there to take their connections.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::annotations::{InvalidAnnotation, Overrides};
use super::config::Config;
use super::containers;
use super::names;
use super::skip::PortRange;

/// What injection adds to a pod. [`Injection::apply`] and [`Injection::patch`] (in
/// `edit.rs`) put it into a pod's JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Injection {
    /// Init containers put before the pod's own.
    pub init_containers_before: Vec<Container>,
    /// Init containers put after the pod's own.
    pub init_containers_after: Vec<Container>,
    /// Containers put before the pod's own.
    pub containers_before: Vec<Container>,
    /// Volumes appended to the pod's.
    pub volumes: Vec<Volume>,
    /// Annotations set on the pod.
    pub annotations: BTreeMap<String, String>,
    /// Whether the proxy is a native sidecar.
    pub native: bool,
    /// Where inbound traffic goes, and which app ports the proxy does not serve.
    pub notes: Vec<String>,
}

/// Why a pod is not injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// It has the `trellis.dev/injected` annotation or a `trellis-proxy` container.
    AlreadyInjected,
    /// Its label `trellis.dev/inject` is `disabled`.
    OptedOut,
    /// Neither its namespace nor the pod has the label `trellis.dev/inject=enabled`.
    NotEnabled,
    /// It uses the node's network: iptables rules would redirect the node's traffic.
    HostNetwork,
    /// An annotation cannot be used (an error the user must fix).
    Invalid(InvalidAnnotation),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::AlreadyInjected => write!(
                f,
                "already injected (annotation {} or container {})",
                names::INJECTED_ANNOTATION,
                names::PROXY_CONTAINER
            ),
            Skip::OptedOut => write!(
                f,
                "opted out (label {}={})",
                names::INJECT_LABEL,
                names::DISABLED
            ),
            Skip::NotEnabled => write!(
                f,
                "not enabled (no label {}={} on the pod or its namespace)",
                names::INJECT_LABEL,
                names::ENABLED
            ),
            Skip::HostNetwork => write!(
                f,
                "hostNetwork: true (the init container would redirect the node's traffic)"
            ),
            Skip::Invalid(e) => e.fmt(f),
        }
    }
}

impl Skip {
    /// Whether the pod is wrong (a bad annotation), rather than not meant to be injected.
    pub fn is_error(&self) -> bool {
        matches!(self, Skip::Invalid(_))
    }
}

/// What to add to the pod `metadata` + `spec`, or why nothing.
///
/// `namespace_labels`: the labels of the pod's namespace, when the caller must decide on
/// opt-in (namespace or pod label `trellis.dev/inject=enabled`). `None` when it is
/// already decided: the webhook's selectors chose the pod, or `trellis inject` was asked
/// to. The pod label `trellis.dev/inject=disabled` opts out in every case.
/// `native_sidecars`: the proxy as a native sidecar ([`super::SidecarMode::native`]).
pub fn inject(
    metadata: &ObjectMeta,
    spec: &PodSpec,
    namespace_labels: Option<&BTreeMap<String, String>>,
    config: &Config,
    native_sidecars: bool,
) -> Result<Injection, Skip> {
    let empty = BTreeMap::new();
    let labels = metadata.labels.as_ref().unwrap_or(&empty);
    let annotations = metadata.annotations.as_ref().unwrap_or(&empty);
    let has_proxy = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| c.name == names::PROXY_CONTAINER);
    if annotations.contains_key(names::INJECTED_ANNOTATION) || has_proxy {
        return Err(Skip::AlreadyInjected);
    }
    let label = |labels: &BTreeMap<String, String>| labels.get(names::INJECT_LABEL).cloned();
    if label(labels).as_deref() == Some(names::DISABLED) {
        return Err(Skip::OptedOut);
    }
    if let Some(ns) = namespace_labels {
        let enabled = |l: Option<String>| l.as_deref() == Some(names::ENABLED);
        if !enabled(label(ns)) && !enabled(label(labels)) {
            return Err(Skip::NotEnabled);
        }
    }
    if spec.host_network == Some(true) {
        return Err(Skip::HostNetwork);
    }
    let mut overrides = Overrides::read(annotations).map_err(Skip::Invalid)?;

    let (inbound_target, notes) = inbound_target(spec, &overrides, config);
    // The proxy forwards inbound traffic to one port: the app's other ports are reached
    // directly, or the proxy would hand their connections to the wrong port.
    overrides.skip_inbound_ports.extend(
        notes
            .other_ports
            .iter()
            .map(|&p| PortRange { first: p, last: p }),
    );
    let proxy = containers::proxy(config, &overrides, inbound_target, native_sidecars);
    let init = containers::init(config, &overrides);
    let (init_containers_before, init_containers_after, containers_before) = if native_sidecars {
        (vec![init, proxy], vec![], vec![])
    } else {
        (vec![], vec![init], vec![proxy])
    };
    Ok(Injection {
        init_containers_before,
        init_containers_after,
        containers_before,
        volumes: vec![containers::identity_volume(), containers::xtables_volume()],
        annotations: BTreeMap::from([(
            names::INJECTED_ANNOTATION.to_owned(),
            names::VERSION.to_owned(),
        )]),
        native: native_sidecars,
        notes: notes.lines,
    })
}

/// What the choice of the inbound target leaves to say.
struct TargetNotes {
    /// App ports (TCP `containerPort`s) other than the target, not already skipped.
    other_ports: Vec<u16>,
    lines: Vec<String>,
}

/// The app port the proxy forwards inbound traffic to: the first TCP `containerPort` of
/// the app's containers, in order, that is not skipped.
fn inbound_target(
    spec: &PodSpec,
    overrides: &Overrides,
    config: &Config,
) -> (Option<u16>, TargetNotes) {
    let skipped = |port: u16| {
        config
            .skip_inbound_ports
            .iter()
            .chain(&overrides.skip_inbound_ports)
            .any(|r| r.first <= port && port <= r.last)
    };
    let mut ports: Vec<u16> = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let tcp = p.protocol.as_deref().unwrap_or("TCP") == "TCP";
            if let Ok(port) = u16::try_from(p.container_port)
                && tcp
                && port != 0
                && !skipped(port)
                && !ports.contains(&port)
            {
                ports.push(port);
            }
        }
    }
    let mut lines = Vec::new();
    let Some((&target, others)) = ports.split_first() else {
        lines.push(format!(
            "no containerPort declared: inbound traffic goes to port {}",
            DEFAULT_INBOUND_TARGET
        ));
        return (
            None,
            TargetNotes {
                other_ports: vec![],
                lines,
            },
        );
    };
    lines.push(format!("inbound traffic goes to port {target}"));
    if !others.is_empty() {
        let list: Vec<String> = others.iter().map(u16::to_string).collect();
        let (ports, are) = if others.len() == 1 {
            ("port", "is")
        } else {
            ("ports", "are")
        };
        lines.push(format!(
            "{ports} {} {are} reached directly, without the proxy (it forwards to one port)",
            list.join(",")
        ));
    }
    (
        Some(target),
        TargetNotes {
            other_ports: others.to_vec(),
            lines,
        },
    )
}

/// The proxy's `--inbound-target` port when it is not given.
const DEFAULT_INBOUND_TARGET: u16 = 8080;

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
