//! # xray-sdk-tower
//!
//! AWS X-Ray for [tower](https://docs.rs/tower) HTTP services and [axum](https://docs.rs/axum)
//! routers: one layer turns every incoming request into a segment that continues the caller's
//! trace.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, body::Body, routing::get};
//! use http::Request;
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use xray_sdk::Record;
//! use xray_sdk_tower::{XRayContext, XRayLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let capture = xray_sdk::testing::UdpCapture::start().unwrap();
//! # let recorder = capture.recorder("checkout");
//! // let recorder = xray_sdk::Recorder::from_env();
//! let app = Router::new()
//!     .route("/cart", get(|segment: XRayContext| async move {
//!         segment.annotate("items", 3);
//!         "ok"
//!     }))
//!     .layer(XRayLayer::new(recorder.clone()));
//!
//! let request = Request::get("/cart")
//!     .header("host", "shop.example.com")
//!     .header("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
//!     .body(Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(
//!     response.headers()["x-amzn-trace-id"],
//!     "Root=1-5759e988-bd862e3fe1be46a994272793"
//! );
//! // The segment ends when the body has been sent.
//! response.into_body().collect().await.unwrap();
//!
//! recorder.shutdown(Duration::from_secs(5)).await; // before the process exits
//! # let docs = capture.documents(1, Duration::from_secs(5));
//! # let doc = &docs[0];
//! # assert_eq!(doc["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
//! # assert_eq!(doc["parent_id"], "53995c3f42cd8ad8");
//! # assert_eq!(doc["http"]["request"]["url"], "http://shop.example.com/cart");
//! # assert_eq!(doc["annotations"]["items"], 3);
//! # }
//! ```
//!
//! The layer works on an axum [`Router`](axum::Router) (`Router::layer`), on any
//! `tower::Service<http::Request<B>, Response = http::Response<B2>>` (for example a plain
//! hyper 1 server through `hyper_util::service::TowerToHyperService`), and together with
//! tower-http layers on either side of it.
//!
//! Around the whole router, [`XRay::new`] records the same segments as `Router::layer`, and
//! costs less per request (about 0.2 µs in the crate's `oneshot` benchmark), because
//! `Router::layer` boxes every route's service, future and body once more. `axum::serve`
//! wants axum's own body type back (`map_response`, from `tower::ServiceExt` with tower's
//! `util` feature), and `map_request` only names the request type for type inference.
//! To change the settings there, build the service from the layer:
//! `tower::Layer::layer(&XRayLayer::new(recorder).naming(..), router)`.
//!
//! ```no_run
//! use axum::{Router, ServiceExt as _, body::Body, routing::get};
//! use tower::ServiceExt as _;
//! use xray_sdk_tower::XRay;
//!
//! # async fn demo(recorder: xray_sdk::Recorder) {
//! let router = Router::new().route("/", get(|| async { "ok" }));
//! let app = XRay::new(router, recorder)
//!     .map_request(|r: axum::extract::Request| r)
//!     .map_response(|r: http::Response<_>| r.map(Body::new));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! let make = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
//! axum::serve(listener, make).await.unwrap();
//! # }
//! ```
//!
//! ## What happens for each request
//!
//! 1. **The incoming `X-Amzn-Trace-Id`** is parsed leniently ([`xray_sdk::TraceHeader`]). Its
//!    `Root` and `Parent` become the segment's `trace_id` and `parent_id`; `Sampled=1` and
//!    `Sampled=0` are obeyed; with `Sampled=?` or no decision, the recorder's sampler decides,
//!    matching on the host, method, URL path and segment name. Other keys (such as `Lineage`)
//!    travel on to downstream calls; `Self` is dropped. A header without a valid `Root` starts
//!    a new trace and is logged at debug level; the client never sees an error for it.
//!    **Without it** (or when it has no valid `Root`), the W3C `traceparent` header is read
//!    (see [W3C Trace Context](#w3c-trace-context)).
//! 2. **The segment is named** by [`SegmentNaming`]: by default the recorder's service name,
//!    or the `Host` header when it matches a wildcard pattern, with a fallback;
//!    `AWS_XRAY_TRACING_NAME` replaces the fixed name and the fallback.
//! 3. **The segment is current** (see [`xray_sdk::context`]) while the inner service is called,
//!    during every poll of its future and while the response body streams, so subsegments
//!    and instrumented clients in the handler attach to it without extra code. It is also in
//!    the request's extensions as an [`xray_sdk::Context`], and, with the `axum` feature, the
//!    [`XRayContext`] extractor hands it to handlers.
//! 4. **When sampled**, the `http` block records the method, the URL the client addressed
//!    (`scheme://host/path`, the query left out as the Go and Java SDKs do; the scheme from
//!    the request URI, else `X-Forwarded-Proto`, else `http`), the `User-Agent`, and the
//!    client address: the first `X-Forwarded-For` entry (with `x_forwarded_for: true`), else
//!    the peer address from axum's `ConnectInfo<SocketAddr>` (serve the app with
//!    `into_make_service_with_connect_info::<SocketAddr>()`; plain `axum::serve(listener,
//!    app)` gives no peer address), tonic's `TcpConnectInfo` (feature `tonic`) or a
//!    `SocketAddr` request extension. The response's status and length follow; 4xx sets
//!    `error`, 429 `throttle`, 5xx `fault`. A gRPC call's status is recorded as well (see
//!    [gRPC](#grpc-tonic)).
//! 5. **The response** carries `X-Amzn-Trace-Id: Root=<trace id>`, plus `;Sampled=1|0` when the
//!    caller asked with `Sampled=?` (turn it off with [`XRayLayer::response_header`]). A header
//!    already set by the inner service is left alone.
//! 6. **The segment ends** when the response body has finished streaming, fails (a fault), or
//!    is dropped because the client went away; a response with an empty body ends it at
//!    once. See [Errors and panics](#errors-and-panics) for failed requests.
//!
//! Unsampled requests do no more than the decision and the propagation: no name, URL or
//! address is built and nothing is sent.
//!
//! ## W3C Trace Context
//!
//! Services instrumented with OpenTelemetry send the W3C `traceparent` header instead of
//! `X-Amzn-Trace-Id`. The layer continues their trace, with the rules of
//! [`xray_sdk::header::incoming_trace`]:
//!
//! - **`X-Amzn-Trace-Id` first.** A request with a valid X-Ray header continues that trace;
//!   a `traceparent` beside it is ignored (its `tracestate` is kept only when it names the
//!   same trace).
//! - **Else `traceparent`**: its trace ID becomes the segment's `trace_id` (the 32 hex digits
//!   split 8 + 24: `1-{8}-{24}`), its parent ID the `parent_id`, and its sampled flag the
//!   decision: `01` records, `00` records nothing and passes `Sampled=0` on; the sampler is
//!   not asked, as for `Sampled=1`/`0` in the X-Ray header. The `tracestate` is kept and
//!   passed on. A `traceparent` that is not valid (version `ff`, an all-zero ID, a wrong
//!   length, upper-case or non-hex digits) is ignored: the request starts a new trace.
//! - A trace ID from `traceparent` whose first 8 hex digits are not a recent time (random
//!   W3C IDs) is continued as it is; X-Ray rejects such IDs unless CloudWatch Transaction
//!   Search is on, which is logged once per process at warn level.
//!
//! Responses carry `X-Amzn-Trace-Id` as before, never `traceparent`. Downstream calls made
//! with [`XRayClientLayer`] or `xray-sdk-reqwest` carry `traceparent` (and the `tracestate`
//! kept) besides `X-Amzn-Trace-Id` when the recorder propagates it
//! ([`xray_sdk::RecorderBuilder::propagate_traceparent`]: `OTEL_PROPAGATORS` listing
//! `tracecontext`, or `OTEL_TRACES_EXPORTER=otlp`).
//!
//! ## Errors and panics
//!
//! - **A returned error.** A 5xx response sets `fault` (4xx `error`), but the layer cannot
//!   know why. Put an [`ErrorCause`] in the response (with axum, as a response part:
//!   `(StatusCode::INTERNAL_SERVER_ERROR, ErrorCause::new(err), "...")`) and the error with
//!   its `source()` chain becomes the segment's `cause`. This is the place for it in an
//!   axum error type's `IntoResponse`, where every handler's `Result<_, AppError>` passes;
//!   see `examples/axum_service.rs`.
//! - **A panic in the handler** (in the inner service's `call`, its future, or a
//!   [`CatchPanicLayer`](https://docs.rs/tower-http/latest/tower_http/catch_panic/) inside
//!   this layer) is recorded as `fault`, status 500, and a cause: the panic message, typed
//!   `panic`, with the file and line it happened at. Either order of the two layers works:
//!   - **`CatchPanicLayer` inside** (added to the router before `XRayLayer`): its answer
//!     passes through this layer like any response (status, trace header), and the panic
//!     reaches the segment through a panic hook the layer installs once (chained to the hook
//!     already there). This is the place for a custom answer, such as a JSON body or gRPC's
//!     `Status::internal`.
//!   - **`CatchPanicLayer` outside, or none**: the panic never leaves this layer. It answers
//!     in its place, with the trace header as on any response: `500 Internal Server
//!     Error` with an empty body, or for a gRPC call a trailers-only `INTERNAL` status
//!     (`grpc-message: Service panicked`). The connection goes on serving.
//!
//!   A panic while the body streams (the status is already sent) is recorded the same way
//!   and continues, as without the layer.
//!
//! ## gRPC (tonic)
//!
//! A request whose `content-type` is `application/grpc` (or `application/grpc+proto`, ...)
//! is a gRPC call. Besides the HTTP block (method `POST`, the URL
//! `http://host/package.Service/Method`, status 200), its segment records the gRPC status,
//! read from the response headers (a trailers-only answer, which is how tonic sends an error
//! of a unary call) or from the trailers that end a stream:
//!
//! - the code as the annotation `grpc_status` (filter: `annotation.grpc_status = 5`);
//! - the flags: `error` for `INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`,
//!   `PERMISSION_DENIED`, `FAILED_PRECONDITION`, `ABORTED`, `OUT_OF_RANGE`,
//!   `UNAUTHENTICATED`; `throttle` and `error` for `RESOURCE_EXHAUSTED`; `fault` for
//!   `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`,
//!   `DATA_LOSS`; none for `OK` and `CANCELLED`;
//! - for a code that sets a flag, the `grpc-message` as the `cause`, typed by the code's name;
//! - a call the client gave up (the stream dropped before its status) ends with
//!   `grpc_status` 1 (`CANCELLED`) and no flag.
//!
//! The server: every service of a tonic server, or one of them.
//!
//! ```no_run
//! # mod echo { include!("../examples/grpc/echo.rs"); }
//! # use echo::{EchoReply, EchoRequest, echo_server::{Echo, EchoServer}};
//! # #[derive(Default)] struct MyEcho;
//! # #[tonic::async_trait] impl Echo for MyEcho {
//! #     async fn unary(&self, r: tonic::Request<EchoRequest>) -> Result<tonic::Response<EchoReply>, tonic::Status> { unimplemented!() }
//! #     type StreamStream = tokio_stream::Empty<Result<EchoReply, tonic::Status>>;
//! #     async fn stream(&self, r: tonic::Request<EchoRequest>) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> { unimplemented!() }
//! # }
//! use tonic::service::LayerExt as _;
//! use tonic::transport::Server;
//! use tower_http::catch_panic::CatchPanicLayer;
//! use xray_sdk_tower::{XRay, XRayLayer};
//!
//! # async fn demo(recorder: xray_sdk::Recorder) -> Result<(), tonic::transport::Error> {
//! let addr = "127.0.0.1:50051".parse().unwrap();
//! // Every service: the first layer added is the outermost.
//! Server::builder()
//!     .layer(XRayLayer::new(recorder.clone()))
//!     // tonic has no panic handler: without one a panic resets the stream. This one, inside
//!     // the X-Ray layer, answers `INTERNAL` and the segment still gets the panic as cause.
//!     .layer(CatchPanicLayer::custom(|_| {
//!         tonic::Status::internal("internal error").into_http::<tonic::body::Body>()
//!     }))
//!     .add_service(EchoServer::new(MyEcho))
//!     .serve(addr)
//!     .await?;
//!
//! // One service (feature `tonic`: `XRay<S>` keeps `S`'s name), or through tonic's
//! // `named_layer`.
//! Server::builder()
//!     .add_service(XRay::new(EchoServer::new(MyEcho), recorder.clone()))
//!     .serve(addr)
//!     .await?;
//! Server::builder()
//!     .add_service(XRayLayer::new(recorder).named_layer(EchoServer::new(MyEcho)))
//!     .serve(addr)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! In a handler, the request's segment is the current context
//! ([`xray_sdk::Context::current`]) and is in the request's extensions
//! (`request.extensions().get::<xray_sdk::Context>()`), for annotations and subsegments.
//!
//! The client: [`XRayClientLayer`] around the `Channel` records each call as a `remote`
//! subsegment of the current context (same status, flags and cause, the exception marked
//! `remote`) and sends `X-Amzn-Trace-Id` with it as the parent (and `traceparent` when the
//! recorder propagates it), so the server's segment joins the trace. A client made with `new` sends path-only URIs and its channel adds the
//! endpoint below the layer, so tell the layer the endpoint
//! ([`XRayClientLayer::origin`]):
//!
//! ```no_run
//! # mod echo { include!("../examples/grpc/echo.rs"); }
//! # use echo::{EchoRequest, echo_client::EchoClient};
//! use tonic::transport::Endpoint;
//! use xray_sdk::context::FutureExt;
//! use xray_sdk_tower::XRayClientLayer;
//!
//! # async fn demo(recorder: xray_sdk::Recorder) -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = Endpoint::from_static("http://echo.internal:50051");
//! let channel = tower::ServiceBuilder::new()
//!     .layer(XRayClientLayer::new().origin(endpoint.uri().clone()))
//!     .service(endpoint.connect().await?);
//! let mut client = EchoClient::new(channel);
//!
//! let segment = recorder.segment("checkout").begin();
//! let reply = client
//!     .unary(EchoRequest::default())
//!     .in_context(segment.context())
//!     .await?;
//! # let _ = reply;
//! segment.end();
//! # Ok(()) }
//! ```
//!
//! The same layer records calls of any tower HTTP client, such as hyper-util's
//! (see [`client`]). `examples/grpc` runs a server and a client with both layers:
//! `cargo run -p xray-sdk-tower --example grpc`.
//!
//! ## Feature flags
//!
//! - `axum` (default): the [`XRayContext`] extractor, [`ErrorCause`] as an axum response part,
//!   and the client address from `axum::extract::ConnectInfo<SocketAddr>`.
//! - `tonic`: `XRay<S>` implements `tonic::server::NamedService` when `S` does (a single
//!   traced service for `Server::add_service`), and the client address comes from tonic's
//!   `TcpConnectInfo`. Recording gRPC status codes and the client layer need no feature.
//!
//! ## The crates
//!
//! - [`xray-sdk`](https://docs.rs/xray-sdk) — the core: recorder, segments, header, sampling, emitter
//! - `xray-sdk-tower` (this crate) — tower and axum: a segment per incoming request, a subsegment per call of a tower client
//! - [`xray-sdk-reqwest`](https://docs.rs/xray-sdk-reqwest) — reqwest-middleware: a subsegment per outgoing HTTP call
//! - [`xray-sdk-aws`](https://docs.rs/xray-sdk-aws) — the AWS SDK for Rust: a subsegment per AWS call
//! - [`xray-sdk-tracing`](https://docs.rs/xray-sdk-tracing) — `tracing` spans as subsegments, trace IDs in log lines
//! - [`xray-sdk-lambda`](https://docs.rs/xray-sdk-lambda) — AWS Lambda functions
//! - [`xray-local`](https://docs.rs/xray-local) — a local stand-in for the X-Ray daemon and API, with a trace viewer (`cargo install xray-local`)

#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate documentation links to the `axum` feature's items, absent without it.
#![cfg_attr(not(feature = "axum"), allow(rustdoc::broken_intra_doc_links))]

mod body;
mod cause;
pub mod client;
mod config;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod grpc;
mod layer;
mod naming;
mod panic;
mod record;
mod service;

pub use body::ResponseBody;
pub use cause::ErrorCause;
pub use client::{XRayClient, XRayClientLayer};
#[cfg(feature = "axum")]
pub use extract::{MissingXRayContext, XRayContext};
pub use future::ResponseFuture;
pub use layer::XRayLayer;
pub use naming::SegmentNaming;
pub use service::XRay;

// The public types cross threads and tasks: checked when the crate compiles.
const _: () = {
    const fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<XRayLayer>();
    send_sync::<XRay<()>>();
    send_sync::<ResponseFuture<()>>();
    send_sync::<ResponseBody<()>>();
    send_sync::<SegmentNaming>();
    send_sync::<ErrorCause>();
    send_sync::<XRayClientLayer>();
    send_sync::<XRayClient<()>>();
    send_sync::<client::ClientResponseFuture<()>>();
    send_sync::<client::ClientResponseBody<()>>();
};
