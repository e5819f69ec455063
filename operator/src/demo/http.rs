//! The two requests the demo makes to the operator's admin endpoint: `GET /status` and
//! `POST /hooks/git` (the push webhook, with the shared secret).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let reply = sender.send_request(request).await?;
        let status = reply.status().as_u16();
        let body = reply.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, body))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("{addr} did not answer within {TIMEOUT:?}"))?
}

/// The operator's `/status`.
pub async fn status(admin: SocketAddr) -> anyhow::Result<serde_json::Value> {
    let request = Request::get("/status")
        .header("host", admin.to_string())
        .body(Full::default())?;
    let (status, body) = send(admin, request).await?;
    if status != 200 {
        bail!("GET /status answered {status}");
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Calls the push webhook as a Git host would after a push.
pub async fn push_hook(admin: SocketAddr, secret: &str) -> anyhow::Result<()> {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/hooks/git")
        .header("host", admin.to_string())
        .header("authorization", format!("Bearer {secret}"))
        .body(Full::new(Bytes::from_static(b"{}")))?;
    let (status, body) = send(admin, request).await?;
    if status != 202 {
        bail!(
            "POST /hooks/git answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(())
}
