//! What a subscription names: an authority (`web.shop:8080`) or the original destination
//! of an intercepted connection (`10.96.0.10:80`), resolved to a Service port, a
//! workload, a plain address, or nothing usable (and why).
//!
//! ```text
//! Authority "host[:port]" --service_of_host--> Service + port (default 80)
//!                         --an IP literal----> as Address
//! Address ip:port --at_ip--> Service (cluster IP)  -> Service + port
//!                         -> Workload              -> that workload's endpoint
//!                         -> Nothing               -> passthrough
//! ```

use std::net::{IpAddr, SocketAddr};

use super::backend::port_problem;
use crate::compile::{Client, Target};
use crate::index::{AtIp, ObjKey, Reader, Service, ServicePort, Workload, service_of_host};

/// The cluster domain of canonical Service names (`web.shop.svc.cluster.local`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The port an authority without one names (plain HTTP).
pub const DEFAULT_PORT: u16 = 80;

/// Where a subscription's requests go.
#[derive(Debug)]
pub(super) enum Destination<'a> {
    /// A Service at one of its (TCP) ports.
    Service(&'a Service, &'a ServicePort),
    /// One workload, called at its own address.
    Workload(&'a Workload, SocketAddr),
    /// An address that is nothing in the mesh.
    Passthrough(SocketAddr),
    /// No Service, or not at that port: every request gets 503 with `reason`.
    Unavailable { authority: String, reason: String },
}

/// The canonical name of a Service: `web.shop.svc.cluster.local` (no port).
pub fn canonical_authority(key: &ObjKey) -> String {
    format!("{}.{}.svc.{CLUSTER_DOMAIN}", key.name, key.namespace)
}

/// Rule 1: resolves the target.
///
/// - `Target::Authority("host[:port]")`: the Service `host` names from the client's
///   namespace (rule 9: compared case-insensitively, trailing dot removed; see
///   [`service_of_host`]), port 80 by default. An IP literal (`10.0.0.7:8080`) is
///   resolved as the address it is.
/// - `Target::Address(ip:port)`: a Service's cluster IP is a call to that Service at
///   that port; a workload's address is a call to that workload; any other address is
///   passed through.
///
/// Rules 2-3: an unknown Service, or a Service without that (TCP) port, is
/// [`Destination::Unavailable`] with a reason naming what is missing and what exists.
pub(super) fn resolve<'a>(
    reader: &Reader<'a>,
    client: &Client,
    target: &Target,
) -> Destination<'a> {
    match target {
        Target::Address(address) => at_address(reader, *address),
        Target::Authority(authority) => match parse_authority(authority) {
            Authority::Address(address) => at_address(reader, address),
            Authority::Invalid { host, reason } => Destination::Unavailable {
                authority: host,
                reason,
            },
            Authority::Name { host, port } => {
                let Some(key) = service_of_host(&client.namespace, host) else {
                    return Destination::Unavailable {
                        authority: normalize(host),
                        reason: format!(
                            "{host:?} does not name a Service \
                             (<name>, <name>.<namespace> or <name>.<namespace>.svc.<cluster domain>)"
                        ),
                    };
                };
                match reader.service(&key) {
                    None => Destination::Unavailable {
                        reason: format!("no Service {key} (authority {host}:{port})"),
                        authority: canonical_authority(&key),
                    },
                    Some(service) => at_port(service, port),
                }
            }
        },
    }
}

fn at_address<'a>(reader: &Reader<'a>, address: SocketAddr) -> Destination<'a> {
    match reader.at_ip(address.ip()) {
        AtIp::Service(service) => at_port(service, address.port()),
        AtIp::Workload(workload) => Destination::Workload(workload, address),
        AtIp::Nothing => Destination::Passthrough(address),
    }
}

fn at_port(service: &Service, port: u16) -> Destination<'_> {
    match port_problem(service, port) {
        Some(reason) => Destination::Unavailable {
            authority: canonical_authority(&service.key),
            reason,
        },
        None => Destination::Service(service, service.port(port).expect("checked")),
    }
}

#[derive(Debug, PartialEq)]
enum Authority<'s> {
    Name { host: &'s str, port: u16 },
    Address(SocketAddr),
    Invalid { host: String, reason: String },
}

/// `host`, `host:port`, `10.0.0.7`, `10.0.0.7:80`, `[fd00::7]:80`, `fd00::7`.
fn parse_authority(authority: &str) -> Authority<'_> {
    if let Ok(address) = authority.parse::<SocketAddr>() {
        return Authority::Address(address);
    }
    let bare = authority.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Authority::Address(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Authority::Name {
            host: authority,
            port: DEFAULT_PORT,
        };
    };
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Authority::Name { host, port },
        _ => Authority::Invalid {
            host: normalize(host),
            reason: format!("authority {authority:?}: {port:?} is not a port (1-65535)"),
        },
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_into_host_and_port() {
        let name = |host, port| Authority::Name { host, port };
        let addr = |a: &str| Authority::Address(a.parse().unwrap());
        for (authority, want) in [
            ("web", name("web", 80)),
            ("web.shop:8080", name("web.shop", 8080)),
            ("Web.Shop.:9090", name("Web.Shop.", 9090)),
            ("10.0.0.7", addr("10.0.0.7:80")),
            ("10.0.0.7:8080", addr("10.0.0.7:8080")),
            ("[fd00::7]:8080", addr("[fd00::7]:8080")),
            ("fd00::7", addr("[fd00::7]:80")),
            ("[fd00::7]", addr("[fd00::7]:80")),
            (
                "web:http",
                Authority::Invalid {
                    host: "web".into(),
                    reason: "authority \"web:http\": \"http\" is not a port (1-65535)".into(),
                },
            ),
            (
                "web:0",
                Authority::Invalid {
                    host: "web".into(),
                    reason: "authority \"web:0\": \"0\" is not a port (1-65535)".into(),
                },
            ),
        ] {
            assert_eq!(parse_authority(authority), want, "{authority}");
        }
    }
}
