//! `GET` over one plain HTTP/1 connection with a deadline: what both providers need (a
//! proxy's `/metrics`, Prometheus' query API).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Answers larger than this are refused (a proxy's `/metrics` is far smaller).
const MAX_BODY: usize = 16 << 20;

pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// `GET path` from `authority` (`host:port`, a name is resolved), all within `timeout`.
/// The error says what failed, without the authority (callers name it).
pub async fn get(authority: &str, path: &str, timeout: Duration) -> Result<Answer, String> {
    let exchange = async {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(header::HOST, authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot ask for {path}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("GET {path}: reading the answer: {e}"))?
            .to_bytes();
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer within {timeout:?}"))?
}
