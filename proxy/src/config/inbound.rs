//! Validated inbound policy: which clients may call which ports and routes of the workload
//! (SMI TrafficTarget, compiled by the control plane into `trellis.proxy.v1.InboundConfig`).
//! What a policy decides for one request is in `crate::inbound::authorize`.

use std::collections::HashSet;
use std::sync::Arc;

use trellis_proxy_api::v1 as api;

use super::from_proto::{Result, err, http_match, protocol, rate_limit};
use super::model::{HttpMatch, Protocol, RateLimit};

/// The identity an authorization lists to allow any meshed (mTLS) client.
pub const ANY_IDENTITY: &str = "*";

/// The inbound policy of one workload.
#[derive(Debug)]
pub struct Inbound {
    pub version: String,
    /// At most one per port number.
    pub ports: Vec<InboundPort>,
    /// What applies to ports not listed, and to requests no authorization allows.
    pub default_policy: DefaultPolicy,
}

impl Inbound {
    /// The policy in force when none is configured: everything allowed (a static config
    /// file without an `inbound:` section).
    pub fn permissive(version: &str) -> Inbound {
        Inbound {
            version: version.to_owned(),
            ports: Vec::new(),
            default_policy: DefaultPolicy::Allow,
        }
    }

    /// The listed port `port`, if any.
    pub fn port(&self, port: u16) -> Option<&InboundPort> {
        self.ports.iter().find(|p| p.port == port)
    }
}

/// One port of the workload.
#[derive(Debug)]
pub struct InboundPort {
    pub port: u16,
    pub protocol: Protocol,
    /// Any one allows (OR), tried in order; the first that allows names the decision.
    pub authorizations: Vec<Authorization>,
    /// Plaintext clients (outside the mesh) may call this port.
    pub allow_unmeshed: bool,
    pub rate_limit: Option<RateLimit>,
}

/// Who may send which requests (one SMI TrafficTarget rule, as compiled).
#[derive(Debug)]
pub struct Authorization {
    /// For metrics and logs (`shop/web-to-api`).
    pub name: Arc<str>,
    /// SPIFFE ids allowed, or [`ANY_IDENTITY`]; empty: no meshed client.
    pub identities: Vec<String>,
    /// Requests allowed (OR); empty: every request on the port.
    pub routes: Vec<HttpMatch>,
}

impl Authorization {
    /// Whether a meshed client with this SPIFFE id is listed.
    pub fn lists(&self, identity: &str) -> bool {
        self.identities
            .iter()
            .any(|i| i == identity || i == ANY_IDENTITY)
    }
}

/// What applies where no authorization allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultPolicy {
    /// Deny (SMI's default).
    Deny,
    /// Allow everything (permissive mode).
    Allow,
    /// Allow any meshed (mTLS) client, on any port.
    AllowAuthenticated,
}

impl DefaultPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultPolicy::Deny => "deny",
            DefaultPolicy::Allow => "allow",
            DefaultPolicy::AllowAuthenticated => "allow_authenticated",
        }
    }
}

impl TryFrom<api::InboundConfig> for Inbound {
    type Error = super::ConfigError;

    fn try_from(config: api::InboundConfig) -> Result<Self> {
        let default_policy = match api::DefaultPolicy::try_from(config.default_policy) {
            Ok(api::DefaultPolicy::Deny) => DefaultPolicy::Deny,
            Ok(api::DefaultPolicy::Allow) => DefaultPolicy::Allow,
            Ok(api::DefaultPolicy::AllowAuthenticated) => DefaultPolicy::AllowAuthenticated,
            Err(_) => {
                return err(
                    "default_policy",
                    format!("unknown default policy {}", config.default_policy),
                );
            }
        };
        let mut seen = HashSet::new();
        let mut ports = Vec::with_capacity(config.ports.len());
        for (i, p) in config.ports.into_iter().enumerate() {
            let port = inbound_port(p, &format!("ports[{i}]"))?;
            if !seen.insert(port.port) {
                return err(
                    format!("ports[{i}].port"),
                    format!("port {} appears twice", port.port),
                );
            }
            ports.push(port);
        }
        Ok(Inbound {
            version: config.version,
            ports,
            default_policy,
        })
    }
}

fn inbound_port(p: api::InboundPort, field: &str) -> Result<InboundPort> {
    let Some(port) = u16::try_from(p.port).ok().filter(|p| *p != 0) else {
        return err(
            format!("{field}.port"),
            format!("{} is not a port (1-65535)", p.port),
        );
    };
    let authorizations = p
        .authorizations
        .into_iter()
        .enumerate()
        .map(|(i, a)| authorization(a, &format!("{field}.authorizations[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(InboundPort {
        port,
        protocol: protocol(p.protocol, &format!("{field}.protocol"))?,
        authorizations,
        allow_unmeshed: p.allow_unmeshed,
        rate_limit: p
            .rate_limit
            .map(|r| rate_limit(r, &format!("{field}.rate_limit")))
            .transpose()?,
    })
}

fn authorization(a: api::Authorization, field: &str) -> Result<Authorization> {
    if a.name.is_empty() {
        return err(
            format!("{field}.name"),
            "required (it names allowed requests in logs)",
        );
    }
    for (i, identity) in a.identities.iter().enumerate() {
        if identity != ANY_IDENTITY && !identity.starts_with("spiffe://") {
            return err(
                format!("{field}.identities[{i}]"),
                format!(
                    "{identity:?} is not a SPIFFE id (spiffe://trust-domain/path) or \"*\" (any meshed client)"
                ),
            );
        }
    }
    let routes = a
        .routes
        .into_iter()
        .enumerate()
        .map(|(i, m)| http_match(m, &format!("{field}.routes[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Authorization {
        name: a.name.into(),
        identities: a.identities,
        routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";

    fn mk_authorization(name: &str, identities: &[&str], paths: &[&str]) -> api::Authorization {
        api::Authorization {
            name: name.into(),
            identities: identities.iter().map(|i| (*i).into()).collect(),
            routes: paths
                .iter()
                .map(|p| api::HttpMatch {
                    path_regex: (*p).into(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn mk_port(port: u32, authorizations: Vec<api::Authorization>) -> api::InboundPort {
        api::InboundPort {
            port,
            authorizations,
            ..Default::default()
        }
    }

    fn mk_config(ports: Vec<api::InboundPort>) -> api::InboundConfig {
        api::InboundConfig {
            version: "3".into(),
            ports,
            default_policy: api::DefaultPolicy::Deny as i32,
        }
    }

    fn nack(config: api::InboundConfig) -> String {
        Inbound::try_from(config).unwrap_err().to_string()
    }

    #[test]
    fn a_policy_keeps_its_ports_authorizations_and_default() {
        let mut port = mk_port(
            8080,
            vec![mk_authorization("web-to-api", &[WEB, "*"], &["/api"])],
        );
        port.allow_unmeshed = true;
        port.protocol = api::ProtocolHint::Grpc as i32;
        port.rate_limit = Some(api::RateLimit {
            requests_per_second: 5,
            burst: 0,
        });
        let mut config = mk_config(vec![port]);
        config.default_policy = api::DefaultPolicy::AllowAuthenticated as i32;

        let inbound = Inbound::try_from(config).unwrap();

        assert_eq!(inbound.version, "3");
        assert_eq!(inbound.default_policy, DefaultPolicy::AllowAuthenticated);
        let port = inbound.port(8080).unwrap();
        assert!(port.allow_unmeshed);
        assert_eq!(port.protocol, Protocol::Grpc);
        assert_eq!(
            port.rate_limit,
            Some(RateLimit {
                per_second: 5,
                burst: 1
            })
        );
        let authz = &port.authorizations[0];
        assert_eq!(&*authz.name, "web-to-api");
        assert!(authz.lists(WEB));
        assert!(authz.lists("spiffe://cluster.local/ns/other/sa/x"), "\"*\"");
        assert!(authz.routes[0].path.as_ref().unwrap().is_match("/api/v1"));
        assert!(inbound.port(9090).is_none());
    }

    #[test]
    fn an_empty_policy_denies_by_default() {
        let inbound = Inbound::try_from(api::InboundConfig::default()).unwrap();
        assert_eq!(inbound.default_policy, DefaultPolicy::Deny);
        assert!(inbound.ports.is_empty());
    }

    #[test]
    fn a_port_out_of_range_is_named() {
        assert_eq!(
            nack(mk_config(vec![mk_port(0, vec![])])),
            "ports[0].port: 0 is not a port (1-65535)"
        );
        assert_eq!(
            nack(mk_config(vec![
                mk_port(8080, vec![]),
                mk_port(70000, vec![])
            ])),
            "ports[1].port: 70000 is not a port (1-65535)"
        );
    }

    #[test]
    fn a_port_listed_twice_is_refused() {
        assert_eq!(
            nack(mk_config(vec![
                mk_port(8080, vec![]),
                mk_port(8080, vec![])
            ])),
            "ports[1].port: port 8080 appears twice"
        );
    }

    #[test]
    fn an_authorization_needs_a_name() {
        assert_eq!(
            nack(mk_config(vec![mk_port(
                8080,
                vec![mk_authorization("", &[WEB], &[])]
            )])),
            "ports[0].authorizations[0].name: required (it names allowed requests in logs)"
        );
    }

    #[test]
    fn an_identity_must_be_a_spiffe_id_or_any() {
        assert_eq!(
            nack(mk_config(vec![mk_port(
                8080,
                vec![
                    mk_authorization("a", &["*"], &[]),
                    mk_authorization("b", &[WEB, "web.shop"], &[]),
                ]
            )])),
            "ports[0].authorizations[1].identities[1]: \"web.shop\" is not a SPIFFE id \
             (spiffe://trust-domain/path) or \"*\" (any meshed client)"
        );
    }

    #[test]
    fn an_invalid_route_regex_names_the_route() {
        let err = nack(mk_config(vec![mk_port(
            8080,
            vec![mk_authorization("a", &[WEB], &["/ok", "("])],
        )]));
        assert!(
            err.starts_with("ports[0].authorizations[0].routes[1].path_regex: invalid regex \"(\""),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_protocol_or_default_policy_is_named() {
        let mut port = mk_port(8080, vec![]);
        port.protocol = 42;
        assert_eq!(
            nack(mk_config(vec![port])),
            "ports[0].protocol: unknown protocol 42"
        );
        let mut config = mk_config(vec![]);
        config.default_policy = 9;
        assert_eq!(nack(config), "default_policy: unknown default policy 9");
    }

    #[test]
    fn a_rate_limit_of_zero_is_named() {
        let mut port = mk_port(8080, vec![]);
        port.rate_limit = Some(api::RateLimit::default());
        assert_eq!(
            nack(mk_config(vec![port])),
            "ports[0].rate_limit.requests_per_second: must be at least 1"
        );
    }
}
