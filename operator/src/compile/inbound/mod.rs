//! Inbound: the policy one workload's proxy enforces on what it receives
//! (SMI-SEMANTICS "Access"), compiled into `trellis.proxy.v1.InboundConfig`.
//!
//! ```text
//! workload --------------------------> ports: its own + target ports of the Services
//!   |                                   selecting it (protocol hints; UDP left out)
//!   +-- TrafficTargets to its SA -----> authorizations, per port (access.rs)
//!   +-- MeshConfig, namespace ---------> default policy: deny | allow-authenticated
//!   |                                   allow_unmeshed per port
//!   +-- TrafficPolicies of Services ---> rate_limit per port
//! ```
//!
//! How the proxy reads the result (`proxy/src/inbound/authorize.rs`): on a listed port the
//! authorizations are tried in order (a meshed client must be listed and match a route;
//! a plaintext client is refused unless the port sets `allow_unmeshed`, and then only the
//! routes of the port's authorizations bind it); whatever they do not allow, and every
//! port not listed, follows the default policy.

mod access;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use smi_crds::trellis::mesh_config::{MeshConfigSpec, UnmeshedPolicy};
use trellis_proxy_api::v1::{self as api, DefaultPolicy, ProtocolHint};

use super::Compiled;
use crate::index::model::annotations;
use crate::index::{
    Namespace, ObjKey, Reader, Service, ServicePort, Snapshot, TargetPort, Workload,
};

/// The name of the authorization that lets plaintext clients make any request on a port
/// in permissive mode (the proxy names its own `unmeshed` decisions the same way).
pub const UNMESHED: &str = "unmeshed";

/// The inbound policy of a workload and the keys it read.
pub fn inbound(snapshot: &Snapshot, workload: &ObjKey) -> Compiled<api::InboundConfig> {
    let reader = snapshot.reader();
    let config = match reader.workload(workload) {
        Some(w) => compile(&reader, w),
        None => unknown_workload(),
    };
    Compiled {
        config,
        deps: reader.into_deps(),
    }
}

/// Rule 1: a workload the index does not know (not registered yet, or gone) gets no ports
/// and the default policy DENY: nothing is authorized until the workload is known. The
/// config depends on the workload's key only, so its registration triggers a push.
fn unknown_workload() -> api::InboundConfig {
    api::InboundConfig {
        version: String::new(),
        ports: Vec::new(),
        default_policy: DefaultPolicy::Deny as i32,
    }
}

fn compile(reader: &Reader<'_>, workload: &Workload) -> api::InboundConfig {
    let namespace = &workload.key.namespace;
    let mesh = reader.mesh_config();
    let ns = reader.namespace(namespace);
    let services: Vec<&Service> = reader
        .services_in(namespace)
        .into_iter()
        .filter(|s| {
            s.selector
                .as_ref()
                .is_some_and(|sel| workload.selected_by(sel))
        })
        .collect();
    let mut ports = ports(workload, &services);
    for port in &mesh.unmeshed_clients.allowed_ports {
        if let Ok(port @ 1..) = u16::try_from(*port) {
            ports.entry(port).or_default();
        }
    }
    let rate_limits = rate_limits(reader, workload, &services);
    let permissive = permissive(&mesh, ns);
    let unmeshed_namespace = unmeshed_namespace(&mesh, namespace, ns);
    let targets = access::targets(reader, &mesh.trust_domain, workload);
    let ports = ports
        .into_iter()
        .map(|(port, protocol)| {
            let allow_unmeshed = unmeshed_namespace || allowed_port(&mesh, port);
            let mut authorizations = access::authorizations(&targets, port, protocol);
            if permissive && allow_unmeshed && !authorizations.is_empty() {
                authorizations.push(any_plaintext_request());
            }
            api::InboundPort {
                port: port.into(),
                protocol: protocol as i32,
                authorizations,
                allow_unmeshed,
                rate_limit: rate_limits.get(&port).cloned(),
            }
        })
        .collect();
    api::InboundConfig {
        version: String::new(),
        ports,
        default_policy: if permissive {
            DefaultPolicy::AllowAuthenticated
        } else {
            DefaultPolicy::Deny
        } as i32,
    }
}

/// Rule 2: the ports of the workload, sorted, each once: the workload's own ports and the
/// target ports of every Service of its namespace whose selector selects it (a named
/// targetPort is resolved against the workload's named ports; a name the workload does not
/// have adds nothing). Each has the protocol hint of the first Service port (by Service
/// name) that gives one, else the workload port's, else none (detect). UDP Service ports
/// are left out: the proxy does not carry UDP.
///
/// Ports listed in MeshConfig `unmeshedClients.allowedPorts` are added by the caller
/// (rule 5), so that a port the workload does not declare can still take plaintext
/// clients.
fn ports(workload: &Workload, services: &[&Service]) -> BTreeMap<u16, ProtocolHint> {
    let mut from_services: BTreeMap<u16, ProtocolHint> = BTreeMap::new();
    for sp in services.iter().flat_map(|s| &s.ports).filter(|p| !p.udp) {
        if let Some(port) = target_port(workload, sp) {
            let hint = from_services.entry(port).or_default();
            if *hint == ProtocolHint::Unspecified {
                *hint = sp.protocol;
            }
        }
    }
    let mut ports: BTreeMap<u16, ProtocolHint> = workload
        .ports
        .iter()
        .map(|p| (p.port, p.protocol))
        .collect();
    for (port, hint) in from_services {
        let protocol = ports.entry(port).or_default();
        if hint != ProtocolHint::Unspecified {
            *protocol = hint;
        }
    }
    ports
}

/// The workload port a Service port sends to.
fn target_port(workload: &Workload, sp: &ServicePort) -> Option<u16> {
    match &sp.target_port {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(name) => workload.named_port(name).map(|p| p.port),
    }
}

/// Rule 6: the rate limit of a port: `spec.rateLimit` of a TrafficPolicy of a Service
/// selecting the workload, on the target port of each of that Service's ports. When
/// several apply to one port, the first wins (Services by name, then policies by name).
fn rate_limits(
    reader: &Reader<'_>,
    workload: &Workload,
    services: &[&Service],
) -> BTreeMap<u16, api::RateLimit> {
    let mut limits = BTreeMap::new();
    for service in services {
        let policies = reader.policies_of(&service.key);
        let Some(limit) = policies
            .iter()
            .find_map(|(_, p)| super::policy::inbound_rate_limit(&p.spec))
        else {
            continue;
        };
        for sp in service.ports.iter().filter(|p| !p.udp) {
            if let Some(port) = target_port(workload, sp) {
                limits.entry(port).or_insert(limit);
            }
        }
    }
    limits
}

/// Rule 4 (Access 4): SMI denies whatever no TrafficTarget allows, also when no
/// TrafficTarget exists. MeshConfig `permissive: true`, or the annotation
/// `trellis.dev/permissive: "true"` on the workload's namespace, makes the default
/// ALLOW_AUTHENTICATED instead: every meshed (mTLS) client may make any request on any
/// port, and TrafficTargets are not enforced (their authorizations stay in the config so
/// that metrics and logs name what they would allow). Plaintext clients are not let in by
/// permissive mode: see rule 5.
fn permissive(mesh: &MeshConfigSpec, ns: Option<&Namespace>) -> bool {
    mesh.permissive || annotated(ns, annotations::PERMISSIVE)
}

/// Rule 5 (Access 5), mesh-wide or per namespace: plaintext clients outside the mesh are
/// accepted on every port of the workload when MeshConfig `unmeshedClients.policy` is
/// `Allow`, or the workload's namespace is in `unmeshedClients.allowedNamespaces`, or the
/// namespace has the annotation `trellis.dev/allow-unmeshed: "true"`.
///
/// On such a port (`allow_unmeshed`) the proxy treats a plaintext client as listed by every
/// authorization of the port: when TrafficTargets limit the port to some HTTP routes,
/// plaintext clients are limited to those routes too (they cannot prove an identity, but
/// route restrictions still hold). In permissive mode TrafficTargets are not enforced, so
/// a last authorization [`UNMESHED`] (no identity, no route) lets plaintext clients make
/// any request there.
fn unmeshed_namespace(mesh: &MeshConfigSpec, namespace: &str, ns: Option<&Namespace>) -> bool {
    let um = &mesh.unmeshed_clients;
    um.policy == UnmeshedPolicy::Allow
        || um.allowed_namespaces.iter().any(|n| n == namespace)
        || annotated(ns, annotations::ALLOW_UNMESHED)
}

/// Rule 5, per port: a port in MeshConfig `unmeshedClients.allowedPorts` accepts
/// plaintext clients on every workload (the port is listed even when the workload does
/// not declare it).
fn allowed_port(mesh: &MeshConfigSpec, port: u16) -> bool {
    mesh.unmeshed_clients
        .allowed_ports
        .contains(&i64::from(port))
}

/// Whether the namespace has the annotation set to `"true"` (any case).
fn annotated(ns: Option<&Namespace>, annotation: &str) -> bool {
    ns.and_then(|n| n.annotations.get(annotation))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// See [`unmeshed_namespace`]: in permissive mode, plaintext clients on an
/// `allow_unmeshed` port are not bound by the routes of TrafficTargets.
fn any_plaintext_request() -> api::Authorization {
    api::Authorization {
        name: UNMESHED.to_owned(),
        identities: Vec::new(),
        routes: Vec::new(),
    }
}
