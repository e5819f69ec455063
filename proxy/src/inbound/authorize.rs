//! The inbound authorization decision, as a pure function of the policy, the port, the
//! client and the request. The rules (docs/decisions.md, "Inbound authorization"):
//!
//! 1. On a port the policy lists, the port's authorizations are tried in order; the first
//!    that allows names the decision.
//!    - A meshed client (mTLS, with a SPIFFE id) is allowed by an authorization that lists
//!      its id, or `*`, and whose routes match the request (no routes: every request).
//!    - A plaintext client is refused on a port without `allow_unmeshed`. On a port with
//!      it, the client is treated as listed by every authorization of the port: it is
//!      allowed by any authorization whose routes match, and by the port itself
//!      (`unmeshed`) when the port has no authorizations.
//!    - An opaque TCP connection has no request: only authorizations without routes allow it.
//! 2. Whatever rule 1 does not allow follows the default policy: `Allow` allows everything
//!    (`default:allow`), `AllowAuthenticated` allows every meshed client
//!    (`default:allow_authenticated`), `Deny` denies with the reason rule 1 found.
//!
//! A denial has exactly one [`Reason`], the first rule that failed.

use std::sync::{Arc, LazyLock};

use http::{HeaderMap, Method};

use crate::config::{Authorization, DefaultPolicy, Inbound, InboundPort};

/// Who is calling, as far as the connection proves it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Client<'a> {
    /// The SPIFFE id from the client's mTLS certificate; `None`: plaintext.
    pub identity: Option<&'a str>,
}

/// An HTTP request's method, path and headers; `None` for an opaque TCP connection.
pub type Request<'a> = Option<(&'a Method, &'a str, &'a HeaderMap)>;

/// What the policy says about one request or connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this authorization (or `default:allow`, `default:allow_authenticated`,
    /// `unmeshed`).
    Allow {
        authorization: Arc<str>,
    },
    Deny {
        reason: Reason,
    },
}

/// Why a request was denied; the label of `trellis_inbound_denied_total` and the value of
/// the `trellis-proxy-error` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A plaintext client, on a port that does not allow unmeshed clients.
    Unauthenticated,
    /// No authorization of the port lists the client's identity.
    IdentityNotAllowed,
    /// Authorizations allow the client, but none of their routes match the request.
    RouteNotAllowed,
    /// The port is not in the policy and the default policy denies.
    PortNotAllowed,
    /// The port has no authorization and the default policy denies.
    DefaultDeny,
    /// No inbound policy has arrived yet (decided by the layer, never by [`authorize`]).
    NoPolicy,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unauthenticated => "unauthenticated",
            Reason::IdentityNotAllowed => "identity_not_allowed",
            Reason::RouteNotAllowed => "route_not_allowed",
            Reason::PortNotAllowed => "port_not_allowed",
            Reason::DefaultDeny => "default_deny",
            Reason::NoPolicy => "no_inbound_policy",
        }
    }
}

/// Names of decisions no authorization made.
pub mod names {
    pub const DEFAULT_ALLOW: &str = "default:allow";
    pub const DEFAULT_ALLOW_AUTHENTICATED: &str = "default:allow_authenticated";
    pub const UNMESHED: &str = "unmeshed";
}

static DEFAULT_ALLOW: LazyLock<Arc<str>> = LazyLock::new(|| names::DEFAULT_ALLOW.into());
static DEFAULT_ALLOW_AUTHENTICATED: LazyLock<Arc<str>> =
    LazyLock::new(|| names::DEFAULT_ALLOW_AUTHENTICATED.into());
static UNMESHED: LazyLock<Arc<str>> = LazyLock::new(|| names::UNMESHED.into());

/// Decides one request (or, with `request: None`, one opaque TCP connection) to `port`.
pub fn authorize(policy: &Inbound, port: u16, client: &Client, request: Request) -> Decision {
    let refused = match policy.port(port) {
        Some(listed) => match authorize_port(listed, client, request) {
            Ok(name) => return allow(name),
            Err(reason) => reason,
        },
        None if client.identity.is_none()
            && policy.default_policy == DefaultPolicy::AllowAuthenticated =>
        {
            Reason::Unauthenticated
        }
        None => Reason::PortNotAllowed,
    };
    match (policy.default_policy, client.identity) {
        (DefaultPolicy::Allow, _) => allow(&DEFAULT_ALLOW),
        (DefaultPolicy::AllowAuthenticated, Some(_)) => allow(&DEFAULT_ALLOW_AUTHENTICATED),
        _ => Decision::Deny { reason: refused },
    }
}

fn allow(name: &Arc<str>) -> Decision {
    Decision::Allow {
        authorization: name.clone(),
    }
}

/// Rule 1: the port's own authorizations.
fn authorize_port<'p>(
    port: &'p InboundPort,
    client: &Client,
    request: Request,
) -> Result<&'p Arc<str>, Reason> {
    let routes_match = |a: &Authorization| {
        a.routes.is_empty()
            || request.is_some_and(|(method, path, headers)| {
                a.routes.iter().any(|r| r.matches(method, path, headers))
            })
    };
    match client.identity {
        None if !port.allow_unmeshed => Err(Reason::Unauthenticated),
        None if port.authorizations.is_empty() => Ok(&UNMESHED),
        None => port
            .authorizations
            .iter()
            .find(|a| routes_match(a))
            .map(|a| &a.name)
            .ok_or(Reason::RouteNotAllowed),
        Some(_) if port.authorizations.is_empty() => Err(Reason::DefaultDeny),
        Some(identity) => {
            let mut listed = port
                .authorizations
                .iter()
                .filter(|a| a.lists(identity))
                .peekable();
            if listed.peek().is_none() {
                return Err(Reason::IdentityNotAllowed);
            }
            listed
                .find(|a| routes_match(a))
                .map(|a| &a.name)
                .ok_or(Reason::RouteNotAllowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpMatch;

    const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";
    const BATCH: &str = "spiffe://cluster.local/ns/shop/sa/batch";
    const OTHER: &str = "spiffe://cluster.local/ns/else/sa/x";

    fn mk_authz(name: &str, identities: &[&str], paths: &[&str]) -> Authorization {
        Authorization {
            name: name.into(),
            identities: identities.iter().map(|i| (*i).to_owned()).collect(),
            routes: paths
                .iter()
                .map(|p| HttpMatch {
                    path: Some(regex::Regex::new(&format!("^(?:{p})")).unwrap()),
                    methods: vec![],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn mk_port(port: u16, allow_unmeshed: bool, authorizations: Vec<Authorization>) -> InboundPort {
        InboundPort {
            port,
            protocol: crate::config::Protocol::Detect,
            authorizations,
            allow_unmeshed,
            rate_limit: None,
        }
    }

    fn mk_policy(default_policy: DefaultPolicy, ports: Vec<InboundPort>) -> Inbound {
        Inbound {
            version: "1".into(),
            ports,
            default_policy,
        }
    }

    /// Port 8080: `web` may call /api, `batch` anything, `*` may call /health; port 9090
    /// lets plaintext clients call /public; port 7070 is listed without authorizations and
    /// allows unmeshed clients; port 6060 is listed without authorizations.
    fn mk_shop(default_policy: DefaultPolicy) -> Inbound {
        mk_policy(
            default_policy,
            vec![
                mk_port(
                    8080,
                    false,
                    vec![
                        mk_authz("web-to-api", &[WEB], &["/api"]),
                        mk_authz("batch-all", &[BATCH], &[]),
                        mk_authz("mesh-health", &["*"], &["/health"]),
                    ],
                ),
                mk_port(9090, true, vec![mk_authz("public", &[], &["/public"])]),
                mk_port(7070, true, vec![]),
                mk_port(6060, false, vec![]),
            ],
        )
    }

    fn allowed(name: &str) -> Decision {
        Decision::Allow {
            authorization: name.into(),
        }
    }

    fn denied(reason: Reason) -> Decision {
        Decision::Deny { reason }
    }

    /// (case, default policy, port, client identity, request path or `None` for opaque TCP,
    /// expected decision)
    type Case = (
        &'static str,
        DefaultPolicy,
        u16,
        Option<&'static str>,
        Option<&'static str>,
        Decision,
    );

    fn check(cases: &[Case]) {
        let headers = HeaderMap::new();
        for (case, default, port, identity, path, expected) in cases {
            let policy = mk_shop(*default);
            let request = path.map(|p| (&Method::GET, p, &headers));
            let got = authorize(
                &policy,
                *port,
                &Client {
                    identity: *identity,
                },
                request,
            );
            assert_eq!(&got, expected, "{case}");
        }
    }

    // One row per outcome: (case, default policy, port, identity, path, expected).
    #[rustfmt::skip]
    #[test]
    fn meshed_clients_are_allowed_by_an_authorization_listing_them_for_the_route() {
        use DefaultPolicy::Deny;
        check(&[
            ("listed identity, matching route", Deny, 8080, Some(WEB), Some("/api/x"), allowed("web-to-api")),
            ("listed identity, no routes = every request", Deny, 8080, Some(BATCH), Some("/anything"), allowed("batch-all")),
            ("\"*\" lists every meshed client", Deny, 8080, Some(OTHER), Some("/health"), allowed("mesh-health")),
            ("the first authorization that allows names it", Deny, 8080, Some(WEB), Some("/health"), allowed("mesh-health")),
            ("listed identity, other route", Deny, 8080, Some(WEB), Some("/admin"), denied(Reason::RouteNotAllowed)),
            ("only \"*\" lists it, other route", Deny, 8080, Some(OTHER), Some("/api"), denied(Reason::RouteNotAllowed)),
            ("identity nobody lists", Deny, 9090, Some(WEB), Some("/public"), denied(Reason::IdentityNotAllowed)),
            ("port without authorizations", Deny, 6060, Some(WEB), Some("/"), denied(Reason::DefaultDeny)),
            ("port not in the policy", Deny, 5050, Some(WEB), Some("/"), denied(Reason::PortNotAllowed)),
        ]);
    }

    #[rustfmt::skip]
    #[test]
    fn plaintext_clients_are_allowed_only_on_ports_allowing_unmeshed_clients() {
        use DefaultPolicy::Deny;
        check(&[
            ("port without allow_unmeshed", Deny, 8080, None, Some("/api"), denied(Reason::Unauthenticated)),
            ("allow_unmeshed, a route of an authorization", Deny, 9090, None, Some("/public/a"), allowed("public")),
            ("allow_unmeshed, no authorization's route", Deny, 9090, None, Some("/private"), denied(Reason::RouteNotAllowed)),
            ("allow_unmeshed, no authorizations: the port allows", Deny, 7070, None, Some("/"), allowed("unmeshed")),
            ("listed without authorizations nor allow_unmeshed", Deny, 6060, None, Some("/"), denied(Reason::Unauthenticated)),
            ("port not in the policy", Deny, 5050, None, Some("/"), denied(Reason::PortNotAllowed)),
        ]);
    }

    #[rustfmt::skip]
    #[test]
    fn opaque_connections_are_decided_on_identity_and_port_alone() {
        use DefaultPolicy::Deny;
        check(&[
            ("an authorization without routes", Deny, 8080, Some(BATCH), None, allowed("batch-all")),
            ("only authorizations with routes", Deny, 8080, Some(WEB), None, denied(Reason::RouteNotAllowed)),
            ("identity nobody lists", Deny, 9090, Some(OTHER), None, denied(Reason::IdentityNotAllowed)),
            ("plaintext, port without allow_unmeshed", Deny, 8080, None, None, denied(Reason::Unauthenticated)),
            ("plaintext, allow_unmeshed, routes only", Deny, 9090, None, None, denied(Reason::RouteNotAllowed)),
            ("plaintext, allow_unmeshed, no authorizations", Deny, 7070, None, None, allowed("unmeshed")),
            ("port not in the policy", Deny, 5050, Some(WEB), None, denied(Reason::PortNotAllowed)),
        ]);
    }

    #[rustfmt::skip]
    #[test]
    fn the_default_policy_allow_allows_everything_and_keeps_authorization_names() {
        use DefaultPolicy::Allow;
        check(&[
            ("an authorization still names it", Allow, 8080, Some(WEB), Some("/api"), allowed("web-to-api")),
            ("a route no authorization allows", Allow, 8080, Some(WEB), Some("/admin"), allowed("default:allow")),
            ("plaintext on a meshed-only port", Allow, 8080, None, Some("/api"), allowed("default:allow")),
            ("port not in the policy", Allow, 5050, None, Some("/"), allowed("default:allow")),
            ("opaque TCP", Allow, 5050, None, None, allowed("default:allow")),
        ]);
    }

    #[rustfmt::skip]
    #[test]
    fn the_default_policy_allow_authenticated_allows_every_meshed_client() {
        use DefaultPolicy::AllowAuthenticated as Authn;
        check(&[
            ("an authorization still names it", Authn, 8080, Some(WEB), Some("/api"), allowed("web-to-api")),
            ("a route no authorization allows", Authn, 8080, Some(WEB), Some("/admin"), allowed("default:allow_authenticated")),
            ("port not in the policy", Authn, 5050, Some(OTHER), Some("/"), allowed("default:allow_authenticated")),
            ("opaque TCP", Authn, 5050, Some(OTHER), None, allowed("default:allow_authenticated")),
            ("plaintext, port not in the policy", Authn, 5050, None, Some("/"), denied(Reason::Unauthenticated)),
            ("plaintext, meshed-only port", Authn, 8080, None, Some("/api"), denied(Reason::Unauthenticated)),
            ("plaintext, allow_unmeshed, other route", Authn, 9090, None, Some("/private"), denied(Reason::RouteNotAllowed)),
            ("plaintext, allow_unmeshed", Authn, 9090, None, Some("/public"), allowed("public")),
        ]);
    }

    #[test]
    fn routes_match_on_method_and_headers_too() {
        let mut authz = mk_authz("post-json", &[WEB], &["/api"]);
        authz.routes[0].methods = vec![Method::POST];
        authz.routes[0].headers = vec![(
            http::header::CONTENT_TYPE,
            regex::Regex::new("^(?:application/json)$").unwrap(),
        )];
        let policy = mk_policy(DefaultPolicy::Deny, vec![mk_port(8080, false, vec![authz])]);
        let client = Client {
            identity: Some(WEB),
        };
        let mut json = HeaderMap::new();
        json.insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
        let none = HeaderMap::new();

        let decide =
            |method, headers| authorize(&policy, 8080, &client, Some((method, "/api", headers)));

        assert_eq!(decide(&Method::POST, &json), allowed("post-json"));
        assert_eq!(decide(&Method::GET, &json), denied(Reason::RouteNotAllowed));
        assert_eq!(
            decide(&Method::POST, &none),
            denied(Reason::RouteNotAllowed)
        );
    }

    #[test]
    fn every_reason_has_a_distinct_label() {
        let all = [
            Reason::Unauthenticated,
            Reason::IdentityNotAllowed,
            Reason::RouteNotAllowed,
            Reason::PortNotAllowed,
            Reason::DefaultDeny,
            Reason::NoPolicy,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), all.len());
    }
}
