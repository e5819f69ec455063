//! The built-in backend: HTTP/1.1 with keep-alive, every request answered `200` with the same
//! 1 KiB body. It runs on a thread of its own with a single-threaded runtime, so its cost is
//! the same whatever sits in front of it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Size of every response body.
pub const BODY_LEN: usize = 1024;

/// Connections the backend has accepted so far: shows how well a proxy reuses its
/// connections to the backend.
pub static ACCEPTED: AtomicU64 = AtomicU64::new(0);

pub fn accepted() -> u64 {
    ACCEPTED.load(Ordering::Relaxed)
}

/// Starts the backend on `addr` (port 0 picks one) in a background thread and returns the
/// bound address. The thread lives as long as the process.
pub fn spawn(addr: SocketAddr) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("bench-backend".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("backend runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("backend listener");
                serve(listener).await;
            });
        })?;
    Ok(local)
}

async fn serve(listener: tokio::net::TcpListener) {
    let body = Bytes::from(vec![b'x'; BODY_LEN]);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        ACCEPTED.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req: Request<Incoming>| {
                let mut resp = Response::new(Full::new(body.clone()));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Runs the backend in the foreground until Ctrl-C (the `backend` subcommand).
pub async fn run_foreground(addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!(
        "trellis-bench backend listening on {} ({BODY_LEN}-byte responses)",
        listener.local_addr()?
    );
    tokio::select! {
        () = serve(listener) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
