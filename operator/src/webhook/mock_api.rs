//! A scripted API server for the kube adapters' tests (kube-rs' `tower-test` verifier
//! pattern): each expected request is asserted (method, path and query, JSON body) and
//! answered in order.

use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use tower_test::mock::{self, Handle};

pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// A client talking to a scripted API server.
pub fn pair() -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer(handle))
}

impl ApiServer {
    /// Asserts the next request is `method uri` with JSON `body` (`Value::Null`: no
    /// body), and answers `status` with `reply`.
    pub async fn expect(
        &mut self,
        method: &str,
        uri: &str,
        body: Value,
        status: u16,
        reply: Value,
    ) {
        let check = |sent: &Value| assert_eq!(sent, &body, "body of {method} {uri}");
        self.expect_with(method, uri, check, status, reply).await;
    }

    /// Asserts that no request comes (within 300 ms, or before the client goes away).
    pub async fn expect_none(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(300), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request: {} {}", request.method(), request.uri());
        }
    }

    /// As [`Self::expect`], with the body checked by `check` (for generated content).
    pub async fn expect_with(
        &mut self,
        method: &str,
        uri: &str,
        check: impl FnOnce(&Value),
        status: u16,
        reply: Value,
    ) {
        let (request, send) = tokio::time::timeout(Duration::from_secs(5), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("no request came; expected {method} {uri}"))
            .unwrap_or_else(|| panic!("the client went away; expected {method} {uri}"));
        assert_eq!(
            (
                request.method().as_str(),
                request.uri().to_string().as_str()
            ),
            (method, uri)
        );
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let sent: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        check(&sent);
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap();
        send.send_response(response);
    }
}

/// The API server's answer for a missing object.
pub fn not_found(kind: &str, name: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("{kind} \"{name}\" not found"),
        "reason": "NotFound", "code": 404
    })
}

/// The API server's answer for an object created meanwhile.
pub fn already_exists(kind: &str, name: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("{kind} \"{name}\" already exists"),
        "reason": "AlreadyExists", "code": 409
    })
}

/// The API server's answer for a write with a stale `resourceVersion`.
pub fn conflict(kind: &str, name: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        "reason": "Conflict", "code": 409
    })
}
