//! The Discovery API over real gRPC on loopback: a proxy names its destination, receives a
//! versioned config, and NACKs a bad one with a reason the control plane sees.

use std::pin::Pin;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use trellis_proxy_api::v1::discovery_client::DiscoveryClient;
use trellis_proxy_api::v1::discovery_server::{Discovery, DiscoveryServer};
use trellis_proxy_api::v1::{
    Ack, InboundConfig, InboundRequest, Nack, OutboundConfig, OutboundRequest, Route,
    WeightedBackend, ack, outbound_request,
};

type ConfigStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A control plane that answers every watch with one config and reports the proxy's acks.
struct OneShot {
    acks: mpsc::Sender<(Option<outbound_request::Target>, Ack)>,
}

#[tonic::async_trait]
impl Discovery for OneShot {
    type WatchInboundStream = ConfigStream<InboundConfig>;
    type WatchOutboundStream = ConfigStream<OutboundConfig>;

    async fn watch_inbound(
        &self,
        _: Request<Streaming<InboundRequest>>,
    ) -> Result<Response<Self::WatchInboundStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn watch_outbound(
        &self,
        request: Request<Streaming<OutboundRequest>>,
    ) -> Result<Response<Self::WatchOutboundStream>, Status> {
        let mut requests = request.into_inner();
        let first = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty watch"))?;
        let target = first.target.clone();
        let acks = self.acks.clone();
        tokio::spawn(async move {
            while let Some(Ok(req)) = requests.next().await {
                if let Some(a) = req.ack {
                    let _ = acks.send((target.clone(), a)).await;
                }
            }
        });
        let authority = match first.target {
            Some(outbound_request::Target::Authority(a)) => a,
            _ => return Err(Status::invalid_argument("name an authority")),
        };
        let config = OutboundConfig {
            version: "7".into(),
            authority,
            routes: vec![Route {
                name: "default".into(),
                backends: vec![WeightedBackend {
                    backend: "web-v1".into(),
                    weight: 90,
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(config)]))))
    }
}

/// Serves one gRPC service over HTTP/2 on `listener` (what tonic's router would do, without
/// pulling in axum).
fn serve<S>(listener: TcpListener, service: S)
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
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .http2_only()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
}

#[tokio::test]
async fn a_proxy_watches_a_destination_and_nacks_with_a_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ack_tx, mut ack_rx) = mpsc::channel(4);
    serve(listener, DiscoveryServer::new(OneShot { acks: ack_tx }));

    let mut client = DiscoveryClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(OutboundRequest {
        target: Some(outbound_request::Target::Authority(
            "web.shop.svc.cluster.local".into(),
        )),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut configs = client
        .watch_outbound(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    let config = configs.message().await.unwrap().expect("a config");
    assert_eq!(config.version, "7");
    assert_eq!(config.authority, "web.shop.svc.cluster.local");
    assert_eq!(config.routes[0].backends[0].weight, 90);

    let nack = Ack {
        result: Some(ack::Result::Rejected(Nack {
            version: "7".into(),
            reason: "route default: backend web-v1 is not defined".into(),
        })),
    };
    tx.send(OutboundRequest {
        ack: Some(nack.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let (target, received) = ack_rx
        .recv()
        .await
        .expect("the control plane hears the NACK");
    assert_eq!(
        target,
        Some(outbound_request::Target::Authority(
            "web.shop.svc.cluster.local".into()
        ))
    );
    assert_eq!(received, nack);
}
