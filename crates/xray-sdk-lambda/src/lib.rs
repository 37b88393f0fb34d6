//! # xray-sdk-lambda
//!
//! AWS X-Ray for Rust functions on AWS Lambda (`lambda_runtime`, `lambda_http`). With
//! `Tracing: Active`, Lambda records the function's segment itself; this crate records the
//! function's own work as subsegments under it, per invocation, and sends them before the
//! response is posted, so nothing is left unsent when Lambda freezes the execution
//! environment.
//!
//! ```no_run
//! use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
//! use serde_json::{Value, json};
//! use tower_layer::Layer;
//! use xray_sdk::Record;
//! use xray_sdk_lambda::XRayLambdaLayer;
//!
//! async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
//!     // A subsegment of the invocation; AWS SDK clients with xray-sdk-aws's interceptor
//!     // and reqwest with xray-sdk-reqwest's middleware record theirs the same way.
//!     let total = xray_sdk::subsegment("compute", async {
//!         if let Some(current) = xray_sdk::Context::current() {
//!             current.annotate("items", 3);
//!         }
//!         42
//!     })
//!     .await;
//!     Ok(json!({ "total": total, "request_id": event.context.request_id }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let recorder = xray_sdk_lambda::recorder()?;
//!     let handler = XRayLambdaLayer::new(recorder).layer(service_fn(handler));
//!     Runtime::new(handler).run().await // or .run_concurrent() on Lambda Managed Instances
//! }
//! ```
//!
//! ## What is sent
//!
//! For each sampled invocation (`Sampled=1` in Lambda's trace header), independent
//! subsegments (`"type": "subsegment"`) with the invocation's `Root` as `trace_id` and
//! Lambda's segment (`Parent`) as `parent_id`:
//!
//! - one per invocation, named after the function, that covers the handler, with the
//!   function's ARN, name and account and the request ID in its `aws` block and, for a
//!   handler that failed or panicked, `fault` and the error in `cause`;
//! - under it, everything the handler records: AWS SDK calls, HTTP calls, its own
//!   subsegments, annotations and metadata;
//! - with the first invocation, what was recorded during init (see [`Init`]).
//!
//! Each subsegment is sent as soon as it ends, on the thread that ends it (no emitter
//! thread): if the function times out, everything that had finished is already sent. No
//! segment document is ever sent (the segment is Lambda's), and nothing at all for
//! `Sampled=0`; downstream calls still carry the decision on.
//!
//! ## Concurrent invocations
//!
//! The trace header comes from each invocation's own context (`Context::xray_trace_id`), and
//! the current subsegment follows each invocation's future, so `run_concurrent` (Lambda
//! Managed Instances, `AWS_LAMBDA_MAX_CONCURRENCY` > 1) never mixes two invocations'
//! traces. The process-wide `_X_AMZN_TRACE_ID` is read only by sequential runtimes, and only
//! when the context carries no header.
//!
//! ## W3C Trace Context
//!
//! Lambda's trace header always comes first. [`XRayHttpLayer`] reads the request's W3C
//! `traceparent` (and keeps its `tracestate`) only for an invocation that has no valid
//! Lambda header; [`XRayLambdaLayer`] reads no event's headers. Downstream HTTP calls made
//! in the handler carry `traceparent` (and the kept `tracestate`) besides `X-Amzn-Trace-Id`
//! when the recorder propagates it: `OTEL_PROPAGATORS` listing `tracecontext`, or
//! `OTEL_TRACES_EXPORTER=otlp`, or
//! [`propagate_traceparent`](xray_sdk::RecorderBuilder::propagate_traceparent) on
//! [`recorder_builder`]. AWS SDK calls carry the X-Ray header only.
//!
//! ## Configuration
//!
//! [`recorder`] builds a recorder configured for Lambda (see [`recorder_builder`]):
//! `AWS_XRAY_DAEMON_ADDRESS` (set by Lambda) and `AWS_XRAY_CONTEXT_MISSING` apply; sampling is
//! Lambda's; no environment plugin calls a metadata endpoint.
//!
//! ## Features
//!
//! - `http`: [`XRayHttpLayer`] for `lambda_http` handlers.
//! - `sqs`: [`SqsLink::from_message`] for `aws_lambda_events`' SQS messages.
//!
//! ## The crates
//!
//! - [`xray-sdk`](https://docs.rs/xray-sdk) — the core: recorder, segments, header, sampling, emitter
//! - [`xray-sdk-tower`](https://docs.rs/xray-sdk-tower) — tower and axum: a segment per incoming request, a subsegment per call of a tower client
//! - [`xray-sdk-reqwest`](https://docs.rs/xray-sdk-reqwest) — reqwest-middleware: a subsegment per outgoing HTTP call
//! - [`xray-sdk-aws`](https://docs.rs/xray-sdk-aws) — the AWS SDK for Rust: a subsegment per AWS call
//! - [`xray-sdk-tracing`](https://docs.rs/xray-sdk-tracing) — `tracing` spans as subsegments, trace IDs in log lines
//! - `xray-sdk-lambda` (this crate) — AWS Lambda functions
//! - [`xray-local`](https://docs.rs/xray-local) — a local stand-in for the X-Ray daemon and API, with a trace viewer (`cargo install xray-local`)

#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod future;
#[cfg(feature = "http")]
mod http;
mod init;
mod invocation;
mod layer;
mod sqs;

pub use config::{env, recorder, recorder_builder};
pub use future::XRayFuture;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::{XRayHttp, XRayHttpFuture, XRayHttpLayer};
pub use init::{INIT_SUBSEGMENT, Init};
pub use layer::{XRayLambda, XRayLambdaLayer};
pub use sqs::{LINK_ANNOTATION, LINK_METADATA, SqsLink, TRACE_ATTRIBUTE};

// The public types cross threads and tasks: checked when the crate compiles.
const _: () = {
    const fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<XRayLambdaLayer>();
    send_sync::<Init>();
    send_sync::<SqsLink>();
    #[cfg(feature = "http")]
    send_sync::<XRayHttpLayer>();
};
