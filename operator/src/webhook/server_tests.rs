use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use super::*;

pub(crate) fn mk_conversion_review() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {
            "uid": "c-1",
            "desiredAPIVersion": "split.smi-spec.io/v1alpha4",
            "objects": [{
                "apiVersion": "split.smi-spec.io/v1alpha2",
                "kind": "TrafficSplit",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 1}]}
            }]
        }
    })
}

pub(crate) fn mk_admission_review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "a-1",
            "kind": {"group": "split.smi-spec.io", "version": "v1alpha4", "kind": "TrafficSplit"},
            "resource": {"group": "split.smi-spec.io", "version": "v1alpha4", "resource": "trafficsplits"},
            "name": "web",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "dev"},
            "object": {
                "apiVersion": "split.smi-spec.io/v1alpha4",
                "kind": "TrafficSplit",
                "metadata": {"name": "web"},
                "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": -1}]}
            }
        }
    })
}

/// `routes`' answer to `method path` with `body`: status and body text.
async fn ask(routes: &Routes, method: &str, path: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = routes.answer(req).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn conversion_and_validation_reviews_are_answered_as_json() {
    let routes = Routes::webhooks();
    let (status, body) = ask(
        &routes,
        "POST",
        "/convert",
        &mk_conversion_review().to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "c-1");
    assert_eq!(
        answer["response"]["convertedObjects"][0]["apiVersion"],
        "split.smi-spec.io/v1alpha4"
    );

    let (status, body) = ask(
        &routes,
        "POST",
        "/validate",
        &mk_admission_review().to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "a-1");
    assert_eq!(answer["response"]["allowed"], false);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_saying_so() {
    let (status, body) = ask(&Routes::webhooks(), "POST", "/validate", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with(
            "/validate: the body is not JSON: key must be a string at line 1 column 2"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_path_is_a_404_naming_the_served_ones() {
    let (status, body) = ask(&Routes::webhooks(), "POST", "/mutate", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        "no webhook at /mutate; served: /convert, /validate, /healthz\n"
    );
}

#[tokio::test]
async fn a_review_must_be_posted() {
    let (status, body) = ask(&Routes::webhooks(), "GET", "/convert", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body, "POST a review to /convert\n");
}

#[tokio::test]
async fn healthz_answers_ok() {
    assert_eq!(
        ask(&Routes::webhooks(), "GET", "/healthz", "").await,
        (StatusCode::OK, "ok\n".to_owned())
    );
}

#[tokio::test]
async fn a_handler_added_later_is_served() {
    let routes = Routes::webhooks().with("/inject", |review| json!({"echo": review}));
    assert_eq!(
        routes.paths().collect::<Vec<_>>(),
        ["/convert", "/inject", "/validate"]
    );
    let (status, body) = ask(&routes, "POST", "/inject", "[1]").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"echo":[1]}"#));
}

#[tokio::test]
async fn the_server_answers_over_a_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve_with(listener, Plain, Routes::webhooks()));

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/convert")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(mk_conversion_review().to_string())))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(answer["response"]["result"]["status"], "Success");
    server.abort();
}
