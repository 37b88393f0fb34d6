//! # xray-sdk
//!
//! The core of the AWS X-Ray SDK for Rust: trace IDs, the `X-Amzn-Trace-Id` header and W3C
//! Trace Context (`traceparent`, `tracestate`; see [`header`]),
//! segments and subsegments with annotations, metadata, `http`/`aws`/`sql`/`cause` blocks and
//! error/throttle/fault flags, sampling, a context that follows a request across `.await`,
//! and a non-blocking emitter that sends documents over UDP to the X-Ray daemon (or the
//! CloudWatch agent, or `xray-local`).
//!
//! The adapters build on it (see [the crates](#the-crates)).
//!
//! ```
//! use std::time::Duration;
//! use xray_sdk::{Record, Recorder, TraceHeader, context::FutureExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // `AWS_XRAY_*` variables, when set, override these (see `RecorderBuilder`).
//! let recorder = Recorder::builder()
//!     .service_name("checkout")
//!     .daemon_address("127.0.0.1:2000")
//!     .build()
//!     .unwrap();
//!
//! // Continue the caller's trace (or start one) and record the request.
//! let incoming = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
//! let segment = recorder.segment("checkout").header(&incoming).begin();
//! segment.annotate("customer_tier", "gold");
//!
//! async {
//!     // A timed step: a subsegment of whatever is current.
//!     xray_sdk::subsegment("price-cart", async {
//!         if let Some(current) = xray_sdk::Context::current() {
//!             current.put_metadata("items", 3);
//!         }
//!     })
//!     .await;
//! }
//! .in_context(segment.context())
//! .await;
//!
//! segment.set_http_response(200, Some(512));
//! segment.end();
//! // Before the process exits: send what is queued, stop the background work.
//! let report = recorder.shutdown(Duration::from_secs(1)).await;
//! # let _ = report;
//! # }
//! ```
//!
//! ## Guarantees
//!
//! - Every datagram is `{"format":"json","version":1}\n` plus one document, at most 63 KiB in
//!   all (under the daemon's 64 KiB limit).
//! - Ending a segment moves it into a bounded queue; serialization and the UDP send happen on
//!   the `xray-emitter` thread. A full queue drops and counts ([`Recorder::stats`]).
//! - Unsampled requests allocate nothing for the trace and send nothing; their decision still
//!   travels downstream in [`Context::downstream_header`].
//! - No function panics on input; problems are logged through `tracing` and counted.
//!
//! ## Features
//!
//! - `test-util` (off by default): the `testing` module, a loopback UDP socket standing in for the
//!   daemon that captures every datagram, for tests of your own instrumentation.
//! - `otlp` (off by default): the [`otlp`] module, OpenTelemetry output: the same recording
//!   sent as OTLP spans over HTTP (protobuf or JSON, gzip, TLS) to X-Ray's OTLP endpoint, a
//!   collector or the CloudWatch agent, or over UDP to AWS Lambda's daemon. Chosen with
//!   `OTEL_TRACES_EXPORTER=otlp` or [`RecorderBuilder::exporter`].
//! - `otlp-sigv4` (off by default, implies `otlp`): SigV4 signing for X-Ray's OTLP endpoint,
//!   with credentials from the AWS SDK's default chain.
//!
//! ## The crates
//!
//! - `xray-sdk` (this crate) — the core: recorder, segments, header, sampling, emitter
//! - [`xray-sdk-tower`](https://docs.rs/xray-sdk-tower) — tower and axum: a segment per incoming request, a subsegment per call of a tower client
//! - [`xray-sdk-reqwest`](https://docs.rs/xray-sdk-reqwest) — reqwest-middleware: a subsegment per outgoing HTTP call
//! - [`xray-sdk-aws`](https://docs.rs/xray-sdk-aws) — the AWS SDK for Rust: a subsegment per AWS call
//! - [`xray-sdk-tracing`](https://docs.rs/xray-sdk-tracing) — `tracing` spans as subsegments, trace IDs in log lines
//! - [`xray-sdk-lambda`](https://docs.rs/xray-sdk-lambda) — AWS Lambda functions
//! - [`xray-local`](https://docs.rs/xray-local) — a local stand-in for the X-Ray daemon and API, with a trace viewer (`cargo install xray-local`)

#![cfg_attr(docsrs, feature(doc_cfg))]

mod background;
pub mod clock;
pub mod config;
pub mod context;
pub mod deferred;
pub mod emitter;
mod handle;
pub mod header;
mod held;
mod http;
pub mod id;
mod json;
pub mod model;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
pub mod panic;
pub mod plugins;
mod record;
pub mod recorder;
pub mod remote;
pub mod sampling;
mod segment_builder;
mod shutdown;
mod trace;

#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;

/// The `serde_json` this crate's API takes values of (`set_aws_field`, metadata, the
/// `aws` block writers), for callers that do not depend on it themselves.
pub use serde_json;

pub use config::{ConfigError, ContextMissing, DaemonAddress, TracesExporter};
pub use context::{ContextMissingError, FutureExt, begin_subsegment, subsegment, with_subsegment};
pub use emitter::{EmitterStats, FlushError};
pub use handle::{Context, Entity};
pub use header::{SamplingFlag, TraceHeader, TraceParent};
pub use held::HeldFacade;
pub use id::{EntityId, IdError, TraceId};
pub use model::{AnnotationError, AnnotationValue, Cause, Exception, HttpRequest, Namespace};
pub use record::{Patch, Record};
pub use recorder::{GlobalAlreadyInstalled, Recorder, RecorderBuilder};
pub use sampling::{Sampler, SamplingDecision, SamplingRequest};
pub use segment_builder::SegmentBuilder;
pub use shutdown::ShutdownReport;

// The public types cross threads and tasks: checked when the crate compiles.
const _: () = {
    const fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Recorder>();
    send_sync::<RecorderBuilder>();
    send_sync::<Context>();
    send_sync::<Entity>();
    send_sync::<HeldFacade>();
    send_sync::<TraceHeader>();
    send_sync::<TraceParent>();
    send_sync::<header::TraceParentError>();
    send_sync::<ConfigError>();
    send_sync::<ContextMissingError>();
    send_sync::<FlushError>();
    send_sync::<IdError>();
    send_sync::<AnnotationError>();
    send_sync::<sampling::CentralizedSampler>();
    send_sync::<sampling::LocalSampler>();
};
