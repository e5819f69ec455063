//! Serving the control plane's gRPC services (Discovery, Identity, Registry) on one
//! HTTP/2 listener: a small router by path (`/trellis.proxy.v1.Discovery/...`), served by
//! hyper-util, so tonic's axum-based router is not needed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_service::Service;

type Request = http::Request<Incoming>;
type Response = http::Response<tonic::body::Body>;
type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;
type BoxService = Box<dyn CloneService + Send>;

/// A cloneable boxed tonic service.
pub trait CloneService {
    fn call_boxed(&mut self, req: Request) -> BoxFuture;
    fn clone_box(&self) -> BoxService;
}

impl<S> CloneService for S
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    fn call_boxed(&mut self, req: Request) -> BoxFuture {
        Box::pin(self.call(req))
    }

    fn clone_box(&self) -> BoxService {
        Box::new(self.clone())
    }
}

/// gRPC services by name (`trellis.proxy.v1.Discovery`).
#[derive(Default)]
pub struct Routes {
    services: Vec<(String, BoxService)>,
}

impl Clone for Routes {
    fn clone(&self) -> Self {
        Self {
            services: self
                .services
                .iter()
                .map(|(name, s)| (name.clone(), s.clone_box()))
                .collect(),
        }
    }
}

impl Routes {
    /// Adds a generated tonic server (`DiscoveryServer::new(..)`).
    pub fn with<S>(mut self, service: S) -> Self
    where
        S: tonic::server::NamedService
            + Service<Request, Response = Response, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        self.services
            .push((format!("/{}/", S::NAME), Box::new(service)));
        self
    }
}

impl Service<Request> for Routes {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> BoxFuture {
        let path = req.uri().path();
        match self
            .services
            .iter_mut()
            .find(|(p, _)| path.starts_with(p.as_str()))
        {
            Some((_, service)) => service.call_boxed(req),
            None => {
                let status = tonic::Status::unimplemented(format!("no gRPC service at {path}"));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

/// Serves `routes` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, routes: Routes) {
    let builder = {
        let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        b.http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(None)
            .keep_alive_interval(Some(std::time::Duration::from_secs(20)));
        b.http2_only()
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(routes.clone());
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// Connections a listener queues before accepting them: thousands of proxies reconnect at
/// once after an operator restart, far more than the usual default of 128.
pub const BACKLOG: u32 = 4096;

/// Binds `addr` with a message that says what to do when it is taken.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    listen().map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr} for {what}: {e}; pick another address with the flag"
        )
    })
}
