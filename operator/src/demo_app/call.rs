//! `/call?service=api.shop&path=/items&method=GET`: the demo app calls another service the
//! way a meshed application does, through its local proxy: it connects to `--proxy` and
//! sends an HTTP/1.1 request with `Host: <service>`, which is what the proxy routes by.
//! Without `--proxy` it connects to the service itself (DNS name or address, port 80
//! unless the service names one).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::BadParameter;
use super::query;

/// The query parameters `/call` reads.
pub mod params {
    pub const SERVICE: &str = "service";
    pub const PATH: &str = "path";
    pub const METHOD: &str = "method";
}

/// How long connecting to the proxy (or the service) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the whole exchange may take once connected, body included.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The request `/call` is asked to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `host[:port]`, sent as the `Host` header.
    pub service: Authority,
    pub path: PathAndQuery,
    pub method: Method,
}

impl Call {
    /// Reads `service` (required), `path` (default `/`) and `method` (default `GET`).
    pub fn from_query(pairs: &[(String, String)]) -> Result<Call, BadParameter> {
        let service = match query::get(pairs, params::SERVICE) {
            None | Some("") => {
                return Err(BadParameter::new(
                    params::SERVICE,
                    "missing; name the service to call, e.g. /call?service=api.shop&path=/items",
                ));
            }
            Some(s) => s
                .parse::<Authority>()
                .ok()
                .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
                .ok_or_else(|| {
                    BadParameter::new(
                        params::SERVICE,
                        format!(
                            "{s:?} is not a host[:port]; name the service as the mesh knows \
                             it, e.g. api.shop or api.shop:8080"
                        ),
                    )
                })?,
        };
        let path = match query::get(pairs, params::PATH) {
            None | Some("") => PathAndQuery::from_static("/"),
            Some(p) => Some(p)
                .filter(|p| p.starts_with('/'))
                .and_then(|p| p.parse::<PathAndQuery>().ok())
                .ok_or_else(|| {
                    BadParameter::new(
                        params::PATH,
                        format!("{p:?} is not a path; use one starting with /, e.g. /items"),
                    )
                })?,
        };
        let method = match query::get(pairs, params::METHOD) {
            None | Some("") => Method::GET,
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                BadParameter::new(
                    params::METHOD,
                    format!("{m:?} is not an HTTP method; use e.g. GET, POST or DELETE"),
                )
            })?,
        };
        Ok(Call {
            service,
            path,
            method,
        })
    }

    /// `http://api.shop/items`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.service, self.path)
    }
}

/// What the upstream answered, body read in full.
#[derive(Debug)]
pub struct Upstream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a call got no answer. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(
        "cannot connect to the proxy {proxy}: {source}; check that trellis-proxy runs and \
         listens on {proxy} (the demo app's --proxy)"
    )]
    ProxyUnreachable {
        proxy: SocketAddr,
        source: io::Error,
    },
    #[error(
        "cannot connect to {service}: {source}; check that the name resolves from here and \
         something listens on that port, or start the demo app with --proxy to call through \
         the mesh"
    )]
    ServiceUnreachable { service: String, source: io::Error },
    #[error(
        "{peer} did not answer within {timeout:?}; check that it speaks HTTP/1.1 and that \
         the service behind it is up"
    )]
    Timeout { peer: String, timeout: Duration },
    #[error("the HTTP/1.1 exchange with {peer} failed: {source}; check that it speaks HTTP/1.1")]
    Http { peer: String, source: hyper::Error },
}

/// Makes `call` through `proxy` (or straight to the service) and reads the whole answer.
pub async fn send(call: &Call, proxy: Option<SocketAddr>) -> Result<Upstream, CallError> {
    let (stream, peer) = match proxy {
        Some(proxy) => (
            connect(proxy)
                .await
                .map_err(|source| CallError::ProxyUnreachable { proxy, source })?,
            format!("the proxy {proxy}"),
        ),
        None => {
            let host = call
                .service
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let port = call.service.port_u16().unwrap_or(80);
            let service = format!("{}:{port}", call.service.host());
            (
                connect((host, port))
                    .await
                    .map_err(|source| CallError::ServiceUnreachable {
                        service: service.clone(),
                        source,
                    })?,
                service,
            )
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, call))
        .await
        .map_err(|_| CallError::Timeout {
            peer: peer.clone(),
            timeout: EXCHANGE_TIMEOUT,
        })?
        .map_err(|source| CallError::Http { peer, source })
}

async fn connect(addr: impl tokio::net::ToSocketAddrs) -> io::Result<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(connected) => connected,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no connection within {CONNECT_TIMEOUT:?}"),
        )),
    }
}

async fn exchange(stream: TcpStream, call: &Call) -> Result<Upstream, hyper::Error> {
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let request = Request::builder()
        .method(call.method.clone())
        .uri(call.path.clone())
        .header(header::HOST, call.service.as_str())
        .body(Empty::<Bytes>::new())
        .expect("a request from validated parts");
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    conn.abort();
    Ok(Upstream {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(query: &str) -> Result<Call, BadParameter> {
        Call::from_query(&query::parse(Some(query)))
    }

    #[test]
    fn path_and_method_have_defaults() {
        let call = from("service=api.shop").unwrap();
        assert_eq!(call.url(), "http://api.shop/");
        assert_eq!(call.method, Method::GET);
    }

    #[test]
    fn service_may_name_a_port_and_path_a_query() {
        let call = from("service=api.shop:8080&path=%2Fitems%3Fpage%3D2&method=post").unwrap();
        assert_eq!(call.url(), "http://api.shop:8080/items?page=2");
        assert_eq!(call.service.as_str(), "api.shop:8080");
        assert_eq!(call.method, Method::POST);
    }

    #[test]
    fn bad_input_names_the_parameter() {
        for (query, parameter) in [
            ("path=/items", "service"),
            ("service=", "service"),
            ("service=http://api.shop/x", "service"),
            ("service=user@api.shop", "service"),
            ("service=api.shop&path=items", "path"),
            ("service=api.shop&method=G%20T", "method"),
        ] {
            let err = from(query).unwrap_err();
            assert_eq!(err.name, parameter, "{query}: {err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("query parameter {parameter}: "))
            );
        }
    }
}
