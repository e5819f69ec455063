//! Connect: the bottom of every HTTP stack. Sends a request to the endpoint chosen above
//! ([`EndpointAddr`]) over a pooled connection: HTTP/1.1 for HTTP/1 requests, HTTP/2 for
//! HTTP/2 and gRPC requests, so trailers and streaming pass through unchanged.
//! `Upgrade` requests (WebSocket) are joined end to end once the endpoint answers 101.
//! A meshed endpoint ([`EndpointIdentity`]) is reached over mTLS ([`mesh`]) and the
//! response says whom it came from ([`PeerIdentity`]).

pub mod mesh;

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, StatusCode, Version, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::answer::{Failure, answer_for, grpc, is_grpc};
use crate::body::{self, Body, Req, Rsp};
use crate::outbound::is_upgrade;
use crate::telemetry::PeerIdentity;
use crate::tls::{SpiffeId, Tls};
use mesh::{Expected, MeshConnector};

/// The endpoint a request goes to (set by balance, or by the inbound stack).
#[derive(Clone, Copy, Debug)]
pub struct EndpointAddr(pub SocketAddr);

/// The identity the chosen endpoint must prove (set by balance for meshed endpoints).
#[derive(Clone, Debug)]
pub struct EndpointIdentity(pub Arc<SpiffeId>);

/// Pooled clients for both HTTP versions. Cheap to clone (every layer above holds one).
#[derive(Clone)]
pub struct Connect {
    clients: Arc<Clients>,
}

struct Clients {
    http1: Client<MeshConnector, Body>,
    http2: Client<MeshConnector, Body>,
    expected: Expected,
}

impl Connect {
    /// `tls`: this proxy's identity, for meshed endpoints; `None`: requests to meshed
    /// endpoints fail with a 502 that says so.
    pub fn new(connect_timeout: Duration, tls: Option<Arc<Tls>>) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.enforce_http(false);
        let expected = Expected::default();
        let connector = MeshConnector {
            tcp,
            tls,
            expected: expected.clone(),
            handshake_timeout: connect_timeout,
        };
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector.clone());
        let http2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Self {
            clients: Arc::new(Clients {
                http1,
                http2,
                expected,
            }),
        }
    }

    pub async fn send(&self, mut req: Req) -> Rsp {
        let grpc_req = is_grpc(&req);
        let Some(EndpointAddr(addr)) = req.extensions().get::<EndpointAddr>().copied() else {
            return answer_for(
                grpc_req,
                Failure::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                grpc::UNAVAILABLE,
                "no endpoint was chosen for the request",
            );
        };
        let identity = req
            .extensions()
            .get::<EndpointIdentity>()
            .map(|i| i.0.clone());
        let peer = identity.as_ref().map(|id| self.expect(addr, id));
        let scheme = if peer.is_some() { "https" } else { "http" };
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *req.uri_mut() = match format!("{scheme}://{addr}{path}").parse() {
            Ok(uri) => uri,
            Err(_) => {
                return answer_for(
                    grpc_req,
                    Failure::NoRoute,
                    StatusCode::BAD_REQUEST,
                    grpc::UNAVAILABLE,
                    "the request path is not a valid URI path",
                );
            }
        };
        let upgrade = is_upgrade(&req);
        strip_hop_by_hop(req.headers_mut(), upgrade);
        let server_side = upgrade.then(|| hyper::upgrade::on(&mut req));
        let client = if req.version() == Version::HTTP_2 {
            &self.clients.http2
        } else {
            &self.clients.http1
        };
        match client.request(req).await {
            Ok(mut rsp) => {
                if let Some(server_side) = server_side
                    && rsp.status() == StatusCode::SWITCHING_PROTOCOLS
                {
                    let client_side = hyper::upgrade::on(&mut rsp);
                    tokio::spawn(async move {
                        if let (Ok(a), Ok(b)) = tokio::join!(server_side, client_side) {
                            let _ = tokio::io::copy_bidirectional(
                                &mut TokioIo::new(a),
                                &mut TokioIo::new(b),
                            )
                            .await;
                        }
                    });
                } else {
                    strip_hop_by_hop(rsp.headers_mut(), false);
                }
                if peer.is_some() {
                    rsp.extensions_mut().insert(PeerIdentity(peer));
                }
                rsp.map(body::boxed)
            }
            Err(e) => {
                let cause = e.source().map_or_else(|| e.to_string(), |s| s.to_string());
                let (failure, reason) = if e.is_connect() {
                    (
                        Failure::Connect,
                        format!("connecting to {addr} failed: {cause}"),
                    )
                } else {
                    (
                        Failure::Reset,
                        format!("the connection to {addr} failed before a response: {cause}"),
                    )
                };
                answer_for(
                    grpc_req,
                    failure,
                    StatusCode::BAD_GATEWAY,
                    grpc::UNAVAILABLE,
                    &reason,
                )
            }
        }
    }
}

impl Connect {
    /// Records the identity `addr` must prove, for the connector.
    /// Returns the identity as text, made once per address and identity.
    fn expect(&self, addr: SocketAddr, id: &Arc<SpiffeId>) -> Arc<str> {
        let expected = &self.clients.expected;
        if let Some((known, text)) = expected
            .read()
            .expect("expected identities lock")
            .get(&addr)
            && known == id
        {
            return text.clone();
        }
        let text: Arc<str> = id.to_string().into();
        expected
            .write()
            .expect("expected identities lock")
            .insert(addr, (id.clone(), text.clone()));
        text
    }
}

/// Connection-scoped headers must not be forwarded (RFC 9110 §7.6.1); an upgrade keeps
/// `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !(upgrade && name == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection", "transfer-encoding"] {
        headers.remove(name);
    }
    if headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes() != b"trailers")
    {
        headers.remove(header::TE);
    }
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_scoped_headers_are_dropped_but_upgrades_kept() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert("traceparent", "00-abc".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["te", "traceparent"]);

        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.len(), 2);
    }
}
