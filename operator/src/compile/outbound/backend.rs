//! Backends: a Service at the root's port number, as the proxy balances over it.
//!
//! ```text
//! Service (exists? has the port? TCP?) --endpoints (ready, with a target port)--> Backend
//!    `<ns>/<service>:<port>`  endpoints sorted by address, identity if meshed
//!    balancer + circuit breaker: the Service's own TrafficPolicy, else the root's
//! ```
//!
//! Each Service is resolved once per compile; every route that names it shares the one
//! backend.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use trellis_proxy_api::v1 as api;

use super::super::policy::backend_settings;
use super::super::spiffe_id;
use crate::index::{ObjKey, Reader, Service, ServicePort, Workload};

/// Why a backend gets no traffic; the text goes into the route's `unavailable_reason`,
/// after the backend's name (`web-v3: no Service shop/web-v3`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Ineligible {
    /// SMI Routing 2: weight 0 means no traffic.
    Weight0,
    /// A weight validation would have refused (not a whole number in range).
    BadWeight(String),
    /// SMI Routing 2: the Service does not exist (yet).
    NoService(ObjKey),
    /// SMI Routing 1: the Service lacks the root's port (or it is UDP).
    Port(String),
    /// SMI Routing 2: no endpoint is ready.
    NoReadyEndpoints,
    /// Endpoints are ready but none has a target port for the Service port.
    NoTargetPort(String),
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::Weight0 => f.write_str("weight 0"),
            Ineligible::BadWeight(w) => write!(f, "weight {w} is not a whole number"),
            Ineligible::NoService(key) => write!(f, "no Service {key}"),
            Ineligible::Port(why) => f.write_str(why),
            Ineligible::NoReadyEndpoints => f.write_str("no ready endpoints"),
            Ineligible::NoTargetPort(port) => {
                write!(f, "no ready endpoint has a target port for port {port}")
            }
        }
    }
}

/// Why `service` cannot be called at `port`, or `None` when it can.
///
/// Rules 2-3: a missing port names the ports that exist
/// (`Service shop/web has no port 8080; its ports: 80 (http), 9090`); UDP ports are not
/// proxied, so a UDP port counts as missing.
pub(super) fn port_problem(service: &Service, port: u16) -> Option<String> {
    let key = &service.key;
    let ports = || {
        if service.ports.is_empty() {
            return "it has no ports".to_owned();
        }
        let list: Vec<String> = service.ports.iter().map(describe_port).collect();
        format!("its ports: {}", list.join(", "))
    };
    match service.port(port) {
        None => Some(format!("Service {key} has no port {port}; {}", ports())),
        Some(p) if p.udp => Some(format!(
            "Service {key} has no TCP port {port} (UDP is not proxied); {}",
            ports()
        )),
        Some(_) => None,
    }
}

/// `80 (http)`, `9090`, `53 (dns, UDP)`.
fn describe_port(p: &ServicePort) -> String {
    match (p.name.is_empty(), p.udp) {
        (true, false) => p.port.to_string(),
        (false, false) => format!("{} ({})", p.port, p.name),
        (true, true) => format!("{} (UDP)", p.port),
        (false, true) => format!("{} ({}, UDP)", p.port, p.name),
    }
}

/// The backend name of a Service at a port: `shop/web-v2:80`.
pub(super) fn backend_name(key: &ObjKey, port: u16) -> String {
    format!("{key}:{port}")
}

/// The backends of one config, built as routes name them.
pub(super) struct Backends<'r, 'a> {
    reader: &'r Reader<'a>,
    /// The root Service's port number: every backend is called at it (SMI Routing 1).
    port: u16,
    /// Balancer and circuit breaker of the root's TrafficPolicy.
    root_settings: (Option<api::Balancer>, Option<api::CircuitBreaker>),
    trust_domain: OnceCell<String>,
    resolved: BTreeMap<ObjKey, Result<String, Ineligible>>,
    built: BTreeMap<String, api::Backend>,
}

impl<'r, 'a> Backends<'r, 'a> {
    pub fn new(
        reader: &'r Reader<'a>,
        port: u16,
        root_settings: (Option<api::Balancer>, Option<api::CircuitBreaker>),
    ) -> Self {
        Self {
            reader,
            port,
            root_settings,
            trust_domain: OnceCell::new(),
            resolved: BTreeMap::new(),
            built: BTreeMap::new(),
        }
    }

    /// The backend of Service `key` at the root's port, or why it gets no traffic.
    ///
    /// Rule 4 (SMI Routing 1): a backend is one Service at the root's port number, named
    /// `<ns>/<service>:<port>`; a Service without that port gets no traffic on it. Its
    /// endpoints are the Service's READY endpoints that have a target port for that
    /// Service port (`Endpoint.ports[service_port.name]`), each `ip:targetPort` with the
    /// SPIFFE identity of its ServiceAccount when meshed (plaintext otherwise) and its
    /// labels, sorted by address so that equal inputs give byte-equal output.
    ///
    /// Rule 6 (SMI Routing 2): eligible only when the Service exists, has the port and
    /// has at least one such endpoint.
    ///
    /// Rule 8: balancer and circuit breaker come from the Service's own TrafficPolicy
    /// (first by name), field by field, else from the root's.
    pub fn service(&mut self, key: &ObjKey) -> Result<String, Ineligible> {
        if let Some(done) = self.resolved.get(key) {
            return done.clone();
        }
        let result = self.build_service(key);
        self.resolved.insert(key.clone(), result.clone());
        result
    }

    fn build_service(&mut self, key: &ObjKey) -> Result<String, Ineligible> {
        let service = self
            .reader
            .service(key)
            .ok_or_else(|| Ineligible::NoService(key.clone()))?;
        if let Some(why) = port_problem(service, self.port) {
            return Err(Ineligible::Port(why));
        }
        let port = service.port(self.port).expect("checked by port_problem");
        let ready: Vec<_> = self
            .reader
            .endpoints(key)
            .map(|set| set.ready().collect())
            .unwrap_or_default();
        if ready.is_empty() {
            return Err(Ineligible::NoReadyEndpoints);
        }
        let mut endpoints: Vec<(SocketAddr, api::Endpoint)> = ready
            .into_iter()
            .filter_map(|e| {
                let target = *e.ports.get(&port.name)?;
                let address = SocketAddr::new(e.ip, target);
                let identity = e
                    .service_account
                    .as_deref()
                    .map(|sa| self.identity(&key.namespace, sa))
                    .unwrap_or_default();
                Some((address, endpoint(address, identity, &e.labels)))
            })
            .collect();
        if endpoints.is_empty() {
            return Err(Ineligible::NoTargetPort(describe_port(port)));
        }
        endpoints.sort_by_key(|(address, _)| *address);
        let (balancer, circuit_breaker) = self.settings_of(key);
        let name = backend_name(key, self.port);
        self.built.insert(
            name.clone(),
            api::Backend {
                name: name.clone(),
                endpoints: endpoints.into_iter().map(|(_, e)| e).collect(),
                balancer,
                circuit_breaker,
            },
        );
        Ok(name)
    }

    /// Rule 8: the Service's own policy field by field, else the root's.
    fn settings_of(&self, key: &ObjKey) -> (Option<api::Balancer>, Option<api::CircuitBreaker>) {
        let (own_balancer, own_breaker) = self
            .reader
            .policies_of(key)
            .first()
            .map(|(_, p)| backend_settings(&p.spec))
            .unwrap_or_default();
        (
            own_balancer.or_else(|| self.root_settings.0.clone()),
            own_breaker.or(self.root_settings.1),
        )
    }

    /// Rule 1: one workload called at its address, named `workload:<ns>/<name>`: one
    /// endpoint at `ip:port`, with the workload's identity when it is meshed. A workload
    /// reached through its proxy's inbound port (local mode without interception) is
    /// called at that port, as its Services' endpoints are.
    pub fn workload(&mut self, workload: &Workload, address: SocketAddr) -> String {
        let address = SocketAddr::new(
            address.ip(),
            workload.inbound_port.unwrap_or(address.port()),
        );
        let identity = if workload.meshed {
            self.identity(&workload.key.namespace, &workload.service_account)
        } else {
            String::new()
        };
        let name = format!("workload:{}", workload.key);
        self.built.insert(
            name.clone(),
            api::Backend {
                name: name.clone(),
                endpoints: vec![endpoint(address, identity, &workload.labels)],
                ..Default::default()
            },
        );
        name
    }

    /// Rule 1: an address that is nothing in the mesh, named `passthrough:<ip:port>`: one
    /// plaintext endpoint at exactly that address.
    pub fn passthrough(&mut self, address: SocketAddr) -> String {
        let name = format!("passthrough:{address}");
        self.built.insert(
            name.clone(),
            api::Backend {
                name: name.clone(),
                endpoints: vec![endpoint(address, String::new(), &BTreeMap::new())],
                ..Default::default()
            },
        );
        name
    }

    /// The backends built, sorted by name.
    pub fn into_vec(self) -> Vec<api::Backend> {
        self.built.into_values().collect()
    }

    fn identity(&self, namespace: &str, service_account: &str) -> String {
        let trust_domain = self
            .trust_domain
            .get_or_init(|| self.reader.mesh_config().trust_domain);
        spiffe_id(trust_domain, namespace, service_account)
    }
}

fn endpoint(
    address: SocketAddr,
    identity: String,
    labels: &BTreeMap<String, String>,
) -> api::Endpoint {
    api::Endpoint {
        address: Some(api::SocketAddress {
            ip: address.ip().to_string(),
            port: u32::from(address.port()),
        }),
        identity,
        labels: labels.clone(),
    }
}
