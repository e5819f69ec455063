//! Answers the proxy makes itself (no route, no backend, rate limited, timeout, fault...).
//!
//! HTTP clients get the status and the reason as a plain-text body; gRPC clients get a
//! trailers-only answer (HTTP 200, `grpc-status`, `grpc-message`). Both carry the
//! `trellis-proxy-error` header so a user can tell the proxy's answers from the app's.

use http::{HeaderValue, StatusCode, header};

use crate::body::{self, Req, Rsp};

/// Header naming why the proxy answered a request itself.
pub const PROXY_ERROR: &str = "trellis-proxy-error";

/// gRPC status codes the proxy answers with.
pub mod grpc {
    pub const OK: u32 = 0;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const PERMISSION_DENIED: u32 = 7;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const UNAVAILABLE: u32 = 14;
}

/// What went wrong, as later layers (retry, breaker, metrics) need to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No config or no route for the request.
    NoRoute,
    /// No backend or endpoint could take the request.
    Unavailable,
    /// A concurrency limit was reached.
    Overloaded,
    RateLimited,
    Timeout,
    /// The endpoint could not be connected to.
    Connect,
    /// The connection failed after it was made (reset, closed early).
    Reset,
    /// An injected fault.
    Fault,
    /// The inbound policy denied the request.
    Denied,
}

/// Whether the request is gRPC (answers must then be gRPC answers).
pub fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The proxy's own answer to `req`.
pub fn answer(req: &Req, failure: Failure, status: StatusCode, grpc: u32, reason: &str) -> Rsp {
    answer_for(is_grpc(req), failure, status, grpc, reason)
}

/// The proxy's own answer, for a request already known to be gRPC or not.
pub fn answer_for(
    grpc: bool,
    failure: Failure,
    status: StatusCode,
    code: u32,
    reason: &str,
) -> Rsp {
    let reason_header =
        HeaderValue::from_str(reason).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    let mut rsp = if grpc {
        let mut rsp = http::Response::new(body::empty());
        let h = rsp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from(code));
        h.insert("grpc-message", reason_header.clone());
        rsp
    } else {
        let mut rsp = http::Response::new(body::full(format!("{reason}\n")));
        *rsp.status_mut() = status;
        rsp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        rsp
    };
    rsp.headers_mut().insert(PROXY_ERROR, reason_header);
    rsp.extensions_mut().insert(failure);
    rsp
}

/// The gRPC status a response carries in its headers (trailers-only answers), if any.
pub fn grpc_status_in_headers(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
