//! The `grpc` example's service, server and calls (the crate's gRPC tests run them too).

// Each user (the example, the tests) takes the parts it needs.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_stream::Stream;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use xray_sdk::context::FutureExt;
use xray_sdk::{Record, Recorder};
use xray_sdk_tower::{SegmentNaming, XRayClient, XRayClientLayer, XRayLayer};

use crate::echo::echo_client::EchoClient;
use crate::echo::echo_server::{Echo, EchoServer};
use crate::echo::{EchoReply, EchoRequest};

/// Answers as each request asks: replies, a status, or a panic.
#[derive(Debug, Default)]
pub(crate) struct EchoService;

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

fn status_asked(req: &EchoRequest) -> Result<(), Status> {
    if req.panic {
        panic!("the handler panicked on {:?}", req.message);
    }
    match Code::from_i32(req.code) {
        Code::Ok => Ok(()),
        code => Err(Status::new(code, format!("asked for {code:?}"))),
    }
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        // The request's segment is current here: annotate it.
        if let Some(segment) = xray_sdk::Context::current() {
            segment.annotate("echo_message", request.get_ref().message.as_str());
        }
        let req = request.into_inner();
        status_asked(&req)?;
        Ok(Response::new(EchoReply {
            message: req.message,
            index: 0,
        }))
    }

    type StreamStream = ReplyStream;

    async fn stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let req = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            // `count` 0: until the client goes away.
            let mut index = 0;
            while req.count == 0 || index < req.count {
                let reply = EchoReply {
                    message: req.message.clone(),
                    index,
                };
                if tx.send(Ok(reply)).await.is_err() {
                    return;
                }
                index += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // The status after the replies travels in the trailers.
            if let Err(status) = status_asked(&req) {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Where the server's `CatchPanicLayer` sits relative to the X-Ray layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CatchPanic {
    /// Inside (added after the X-Ray layer): its answer is recorded like any response.
    Inside,
    /// Outside: the X-Ray layer answers the panic itself.
    Outside,
}

/// A running server; dropping it shuts the server down.
pub(crate) struct RunningServer {
    pub(crate) addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting, lets the calls in flight finish, and waits for the server to end.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The answer to a panic: a function, so that the layer's type can be named.
type PanicAnswer = fn(Box<dyn std::any::Any + Send>) -> http::Response<tonic::body::Body>;

/// The panic recipe: tonic has no panic handler of its own, and a handler that panics
/// reaches the client as a reset stream. `CatchPanicLayer::custom` answers `INTERNAL`.
fn catch_panic() -> CatchPanicLayer<PanicAnswer> {
    CatchPanicLayer::custom(|_panic| Status::internal("the handler panicked").into_http())
}

/// Serves [`EchoService`] on 127.0.0.1 with the X-Ray layer, its segments named `name`.
pub(crate) async fn serve(
    recorder: Recorder,
    name: &'static str,
    placement: CatchPanic,
) -> std::io::Result<RunningServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let xray = XRayLayer::new(recorder).naming(SegmentNaming::fixed(name));
    let (tx, rx) = oneshot::channel::<()>();
    let incoming = TcpListenerStream::new(listener);
    let shutdown = async {
        let _ = rx.await;
    };
    let echo = EchoServer::new(EchoService);
    let task = match placement {
        CatchPanic::Inside => tokio::spawn(async move {
            let served = Server::builder()
                .layer(xray)
                .layer(catch_panic())
                .add_service(echo)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the gRPC server failed");
            }
        }),
        CatchPanic::Outside => tokio::spawn(async move {
            let served = Server::builder()
                .layer(catch_panic())
                .layer(xray)
                .add_service(echo)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the gRPC server failed");
            }
        }),
    };
    Ok(RunningServer {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// A client of the server at `addr` whose calls are recorded by the X-Ray client layer.
pub(crate) async fn client(
    addr: SocketAddr,
) -> Result<EchoClient<XRayClient<Channel>>, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    let channel = endpoint.connect().await?;
    let channel = ServiceBuilder::new()
        // The channel adds the endpoint's origin below the layer: the layer is told it too.
        .layer(XRayClientLayer::new().origin(endpoint.uri().clone()))
        .service(channel);
    Ok(EchoClient::new(channel))
}

fn ask(message: &str, code: Code, count: u32, panic: bool) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        code: code as i32,
        count,
        panic,
    }
}

/// Makes the example's five calls inside a segment named `grpc-client`, and returns what
/// each one answered.
pub(crate) async fn run_calls(
    recorder: &Recorder,
    client: &mut EchoClient<XRayClient<Channel>>,
) -> Vec<String> {
    let segment = recorder.segment("grpc-client").begin();
    let outcomes = async {
        let mut outcomes = Vec::new();
        let unary = client.unary(ask("hello", Code::Ok, 0, false)).await;
        outcomes.push(format!(
            "unary: {:?}",
            unary.map(|r| r.into_inner().message)
        ));

        let mut replies = 0;
        let streamed = match client.stream(ask("tick", Code::Ok, 3, false)).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(_)) => replies += 1,
                        Ok(None) => break Ok(replies),
                        Err(status) => break Err(status),
                    }
                }
            }
            Err(status) => Err(status),
        };
        outcomes.push(format!("server-streaming: {streamed:?} replies"));

        for (what, request) in [
            ("NOT_FOUND", ask("missing", Code::NotFound, 0, false)),
            ("INTERNAL", ask("broken", Code::Internal, 0, false)),
            ("panic", ask("boom", Code::Ok, 0, true)),
        ] {
            let answer = client.unary(request).await;
            outcomes.push(format!(
                "{what}: {:?}",
                answer
                    .map(|_| ())
                    .map_err(|s| (s.code(), s.message().to_owned()))
            ));
        }
        outcomes
    }
    .in_context(segment.context())
    .await;
    segment.end();
    outcomes
}
