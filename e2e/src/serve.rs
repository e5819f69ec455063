//! Serving a tonic service over HTTP/2 on a loopback listener without tonic's router
//! (hyper-util's server with the generated server as a tower service), and stopping it.

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A running gRPC server. Dropping it (or [`GrpcServer::kill`]) stops accepting and closes
/// every open connection at once, as a crashed control plane would.
pub struct GrpcServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl GrpcServer {
    /// Serves `service` on `127.0.0.1:0`.
    pub async fn start<S>(service: S) -> GrpcServer
    where
        S: tower_service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = hyper::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a gRPC server on loopback");
        Self::serve(listener, service)
    }

    /// Serves `service` on `addr`, e.g. the address of a server killed a moment ago (a
    /// restart); retries binding for up to 2 s while the old socket closes.
    pub async fn start_on<S>(addr: SocketAddr, service: S) -> GrpcServer
    where
        S: tower_service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = hyper::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("binding a gRPC server on {addr} again: {e}")
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        Self::serve(listener, service)
    }

    fn serve<S>(listener: TcpListener, service: S) -> GrpcServer
    where
        S: tower_service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = hyper::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let addr = listener.local_addr().expect("a bound address");
        let task = tokio::spawn(async move {
            // Dropping the set (the task aborted) drops every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        let service = TowerToHyperService::new(service.clone());
                        connections.spawn(async move {
                            let _ = hyper_util::server::conn::auto::Builder::new(
                                TokioExecutor::new(),
                            )
                            .http2_only()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        });
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        GrpcServer { addr, task }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, as `--control-plane` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and drops every connection (streams end with a reset).
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
