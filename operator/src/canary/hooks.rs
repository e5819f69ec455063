//! Webhook calls: `POST url` with a JSON body naming the Canary, like Flagger's; any 2xx
//! within the webhook's timeout passes.
//!
//! ```text
//! {"name": "api", "namespace": "shop", "phase": "Progressing", "type": "rollout",
//!  "target": "v3", "canaryWeight": 20, "metadata": {...}}
//! ```
//!
//! Plain `http://` only: webhooks are in-cluster services (load testers, gates); an
//! `https://` URL fails with a message saying so.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use smi_crds::trellis::canary::{Webhook, WebhookType};

use super::machine::Hook;

/// Timeout of a webhook without `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer body kept for a message.
const MAX_MESSAGE: usize = 200;

pub fn hook_of(t: WebhookType) -> Hook {
    match t {
        WebhookType::PreRollout => Hook::PreRollout,
        WebhookType::Rollout => Hook::Rollout,
        WebhookType::ConfirmPromotion => Hook::ConfirmPromotion,
        WebhookType::PostRollout => Hook::PostRollout,
        WebhookType::Rollback => Hook::Rollback,
    }
}

/// What the webhooks of a tick are told about the run.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub phase: &'a str,
    pub target: Option<&'a str>,
    pub canary_weight: u32,
}

/// The body of one call: the context, the webhook's type and its metadata.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub phase: &'a str,
    #[serde(rename = "type")]
    pub type_: WebhookType,
    pub target: Option<&'a str>,
    pub canary_weight: u32,
    pub metadata: &'a std::collections::BTreeMap<String, String>,
}

impl<'a> Context<'a> {
    pub fn payload(&self, webhook: &'a Webhook) -> Payload<'a> {
        Payload {
            name: self.name,
            namespace: self.namespace,
            phase: self.phase,
            type_: webhook.type_,
            target: self.target,
            canary_weight: self.canary_weight,
            metadata: &webhook.metadata,
        }
    }
}

/// Calls every webhook of type `hook` in turn. `Ok` when all answered 2xx (rollback: when
/// one did), `Err` with the first failure; `None` when the Canary has no webhook of that
/// type.
pub async fn run(
    webhooks: &[Webhook],
    hook: Hook,
    context: &Context<'_>,
) -> Option<Result<(), String>> {
    let selected: Vec<&Webhook> = webhooks
        .iter()
        .filter(|w| hook_of(w.type_) == hook)
        .collect();
    if selected.is_empty() {
        return None;
    }
    let mut failures = Vec::new();
    for webhook in selected {
        match call(webhook, &context.payload(webhook)).await {
            Ok(()) if hook == Hook::Rollback => return Some(Ok(())),
            Ok(()) => {}
            Err(why) => {
                let why = format!("{}: {why}", webhook.name);
                if hook != Hook::Rollback {
                    return Some(Err(why));
                }
                failures.push(why);
            }
        }
    }
    Some(if hook == Hook::Rollback {
        Err(failures.join("; "))
    } else {
        Ok(())
    })
}

/// One call: 2xx within the timeout is `Ok`.
pub async fn call(webhook: &Webhook, payload: &Payload<'_>) -> Result<(), String> {
    let timeout = webhook
        .timeout
        .as_deref()
        .and_then(|t| smi_crds::validate::parse_duration(t).ok())
        .unwrap_or(DEFAULT_TIMEOUT);
    let body = serde_json::to_vec(payload).expect("the payload serializes");
    match tokio::time::timeout(timeout, post(&webhook.url, body)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(result) => result,
    }
}

async fn post(url: &str, body: Vec<u8>) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|e| format!("URL {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{url}: only http:// webhooks are supported (in-cluster services)"
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("URL {url:?} has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", authority)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("{url}: {e}"))?;
    let reply = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = reply.status();
    if status.is_success() {
        return Ok(());
    }
    let body = reply
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let text: String = text.trim().chars().take(MAX_MESSAGE).collect();
    Err(if text.is_empty() {
        format!("answered {status}")
    } else {
        format!("answered {status}: {text}")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use http::{Response, StatusCode};
    use hyper::service::service_fn;

    use super::*;

    /// A real HTTP server on loopback answering `status` after `delay`, keeping the bodies.
    async fn server(status: u16, delay: Duration) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = bodies.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            seen.lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            tokio::time::sleep(delay).await;
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .status(StatusCode::from_u16(status).unwrap())
                                    .body(Full::new(Bytes::from_static(b"gate closed")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, bodies)
    }

    fn webhook(type_: WebhookType, addr: SocketAddr, timeout: &str) -> Webhook {
        Webhook {
            name: "gate".into(),
            type_,
            url: format!("http://{addr}/gate"),
            timeout: Some(timeout.into()),
            metadata: BTreeMap::from([("cmd".into(), "hey -z 1m".into())]),
        }
    }

    const CONTEXT: Context<'static> = Context {
        name: "api",
        namespace: "shop",
        phase: "Progressing",
        target: Some("v3"),
        canary_weight: 20,
    };

    #[tokio::test]
    async fn a_2xx_passes_and_the_body_names_the_canary() {
        let (addr, bodies) = server(200, Duration::ZERO).await;
        let hooks = [webhook(WebhookType::Rollout, addr, "2s")];
        assert_eq!(run(&hooks, Hook::Rollout, &CONTEXT).await, Some(Ok(())));
        let body: serde_json::Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
        assert_eq!(body["name"], "api");
        assert_eq!(body["type"], "rollout");
        assert_eq!(body["canaryWeight"], 20);
        assert_eq!(body["metadata"]["cmd"], "hey -z 1m");
    }

    #[tokio::test]
    async fn an_error_answer_fails_with_its_status_and_body() {
        let (addr, _) = server(503, Duration::ZERO).await;
        let hooks = [webhook(WebhookType::PreRollout, addr, "2s")];
        let result = run(&hooks, Hook::PreRollout, &CONTEXT).await;
        assert_eq!(
            result,
            Some(Err(
                "gate: answered 503 Service Unavailable: gate closed".into()
            ))
        );
    }

    #[tokio::test]
    async fn no_answer_within_the_timeout_fails() {
        let (addr, _) = server(200, Duration::from_secs(5)).await;
        let hooks = [webhook(WebhookType::Rollout, addr, "200ms")];
        let result = run(&hooks, Hook::Rollout, &CONTEXT).await;
        assert_eq!(result, Some(Err("gate: no answer within 200ms".into())));
    }

    #[tokio::test]
    async fn a_rollback_hook_rolls_back_only_when_it_answers_2xx() {
        let (closed, _) = server(404, Duration::ZERO).await;
        let hooks = [webhook(WebhookType::Rollback, closed, "2s")];
        assert!(matches!(
            run(&hooks, Hook::Rollback, &CONTEXT).await,
            Some(Err(_))
        ));
        let (open, _) = server(200, Duration::ZERO).await;
        let hooks = [webhook(WebhookType::Rollback, open, "2s")];
        assert_eq!(run(&hooks, Hook::Rollback, &CONTEXT).await, Some(Ok(())));
    }

    #[tokio::test]
    async fn no_webhook_of_the_type_is_none() {
        let (addr, _) = server(200, Duration::ZERO).await;
        let hooks = [webhook(WebhookType::Rollout, addr, "2s")];
        assert_eq!(run(&hooks, Hook::ConfirmPromotion, &CONTEXT).await, None);
    }
}
