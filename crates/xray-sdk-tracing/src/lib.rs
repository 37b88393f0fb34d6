//! # xray-sdk-tracing
//!
//! Records the [`tracing`] spans of a traced request as AWS X-Ray subsegments, and puts the
//! X-Ray trace ID into `tracing_subscriber::fmt` logs.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::{fmt, prelude::*};
//! use xray_sdk::{Recorder, context::FutureExt};
//! use xray_sdk_tracing::{XRayFormat, XRayTracingLayer};
//!
//! #[tracing::instrument(fields(annotation.customer = %customer))]
//! async fn load_cart(customer: &str) -> usize {
//!     3
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! tracing_subscriber::registry()
//!     .with(XRayTracingLayer::new())
//!     .with(fmt::layer().event_format(XRayFormat::new(fmt::format())))
//!     .init();
//!
//! let recorder = Recorder::from_env();
//! let segment = recorder.segment("checkout").begin();
//! // `load_cart` becomes a subsegment of the segment, annotated `customer`.
//! load_cart("c-42").in_context(segment.context()).await;
//! segment.end();
//! recorder.shutdown(Duration::from_secs(1)).await; // before the process exits
//! # }
//! ```
//!
//! ## Which spans become subsegments
//!
//! A span becomes a subsegment when it is created inside a **sampled** X-Ray context (a
//! segment or subsegment made current with `in_context`, `enter`, an adapter, or an
//! enclosing span of this layer) and passes the filters. Its parent is the X-Ray context
//! current when it is created, so spans nest as they nest in `tracing`, adapters' subsegments
//! included; a span with an explicit `parent:` nests under that span's subsegment. The
//! subsegment is named after the span (`#[instrument]`: the function name), **begins on the
//! span's first enter and ends when the span closes**, so an `async fn` polled many times is
//! one subsegment covering its whole life. A span that is never entered records nothing
//! (note that `tracing::Instrument` enters its span once when dropped, so a future dropped
//! before its first poll records a subsegment of no duration).
//!
//! As in the official SDKs, a segment is sent once it and all its subsegments have ended: a
//! span kept alive past its request (a task spawned with `.in_current_span()` that runs on,
//! a span stored in a shared object) holds its request's segment back until the span
//! closes. Spawn such background work without the request's span (no `.in_current_span()`)
//! if the request should be sent when it ends.
//!
//! While a recorded span is entered, its subsegment is the current X-Ray context
//! ([`xray_sdk::context::replace_current`]), and the previous one is restored on exit: the
//! reqwest middleware, the AWS SDK interceptor and [`xray_sdk::subsegment`] called inside the
//! span nest under it. A span of another trace entered while a context is current (a span
//! kept in a shared object and entered by later requests) does not become current: the
//! work of the request that entered it stays in its own trace.
//!
//! Outside any sampled X-Ray context the layer does nothing beyond one thread-local read per
//! span (see `docs/PERFORMANCE.md`); spans of unsampled requests record nothing either.
//!
//! Spans run in another task nest correctly when the task carries the span
//! (`tracing::Instrument`) or the context ([`xray_sdk::FutureExt::in_current_context`]), in
//! either order of the two wrappers.
//!
//! ## Filters
//!
//! - **Level**: spans at `INFO` or more severe ([`XRayTracingLayer::max_level`]), the level
//!   `#[instrument]` uses. Filters of the subscriber apply first: a span the subscriber
//!   disables never reaches the layer.
//! - **Target**: [`DEFAULT_EXCLUDED_TARGETS`] (AWS SDK, reqwest, tower-http, hyper, h2,
//!   tower, tokio, rustls, ...), changed with [`XRayTracingLayer::exclude_target`],
//!   [`XRayTracingLayer::include_target`] and [`XRayTracingLayer::without_default_exclusions`]; names with
//!   [`XRayTracingLayer::exclude_span_name`]; anything else with [`XRayTracingLayer::span_filter`].
//! - **Cap**: at most [`DEFAULT_MAX_SUBSEGMENTS`] subsegments from this layer per trace
//!   segment ([`XRayTracingLayer::max_subsegments_per_segment`]). Spans beyond it are left out and
//!   counted in the metadata `tracing.omitted_subsegments` of their segment. Budgets are
//!   kept per segment for the 1 024 most recent segments of the layer: a segment that stays
//!   open while more than 1 024 others start in the process (a long job on a busy server)
//!   can be given a fresh budget. The cap bounds the cost of chatty spans; it is not an
//!   exact count.
//!
//! A span that is left out is transparent: the spans and adapter calls inside it nest under
//! its nearest recorded ancestor. (One exception: a child given a left-out span as its
//! explicit `parent:` on a thread where no X-Ray context is current is not recorded; the
//! layer keeps no trace of left-out spans, so that the many library spans it leaves out cost
//! nothing.)
//!
//! ## Fields
//!
//! | Field | Recorded as |
//! |---|---|
//! | `xray.annotation.<key>` or `annotation.<key>` ([`XRayTracingLayer::annotation_prefixes`]) | annotation `<key>` |
//! | a name given to [`XRayTracingLayer::annotate_field`] | annotation with that name |
//! | any other field | metadata `tracing.<field name>` ([`XRayTracingLayer::metadata_namespace`], [`XRayTracingLayer::without_metadata`]) |
//!
//! Annotation keys are sanitized ([`xray_sdk::model::sanitize_annotation_key`]:
//! `annotation.http.route` becomes `http_route`), strings, integers, floats and booleans keep
//! their type, `%value`/`?value` fields become strings, and a value X-Ray would refuse (a
//! non-finite float) goes to metadata instead. Nothing in the user's code ever fails.
//! Fields recorded later with `Span::record` are added the same way.
//!
//! ## Errors
//!
//! An event at `ERROR` ([`XRayTracingLayer::error_level`]) inside a recorded span adds an exception
//! to the subsegment's `cause` and sets `fault`; outside any span of this layer, it goes to
//! the current X-Ray context. The exception's message is the event's message and its
//! `error` field's text (`error = %e`, `error = ?e` or `error = &e as &dyn Error`; the last
//! also records the `source()` chain and the error's type); its type is the error type when
//! known, else the event's target; its first stack frame is the event's file, line and
//! target. `#[instrument(err)]` works as is.
//!
//! ## Log correlation
//!
//! [`XRayFormat`] wraps a `fmt` event formatter and writes the current
//! `AWS-XRAY-TRACE-ID: <trace id>@<entity id>` on every line (as a prefix, or as a JSON
//! member with [`XRayFormat::json`]); [`log_correlation_id`] returns the same value for
//! other loggers.
//!
//! ## With the X-Ray adapters
//!
//! One unit of work is one subsegment. The adapters (`xray-sdk-tower`, `xray-sdk-reqwest`,
//! `xray-sdk-aws`) record the calls they see with their own, richer subsegments (HTTP and
//! AWS blocks, downstream headers), so the spans the same libraries emit for those calls are
//! excluded by default: the AWS SDK's `DynamoDB.GetItem` and `try_attempt` spans
//! (`aws_sdk_*`, `aws_smithy_*`), `reqwest-tracing`'s spans and `tower_http`'s `TraceLayer`
//! `request` span. Since an excluded span is transparent, the adapter's subsegment nests
//! under the user's enclosing span. To record such spans instead of using the adapter,
//! remove the rule with [`XRayTracingLayer::include_target`].
//!
//! ## Features
//!
//! None: everything is on by default, and the crate adds no optional dependency.
//!
//! ## The crates
//!
//! - [`xray-sdk`](https://docs.rs/xray-sdk) — the core: recorder, segments, header, sampling, emitter
//! - [`xray-sdk-tower`](https://docs.rs/xray-sdk-tower) — tower and axum: a segment per incoming request, a subsegment per call of a tower client
//! - [`xray-sdk-reqwest`](https://docs.rs/xray-sdk-reqwest) — reqwest-middleware: a subsegment per outgoing HTTP call
//! - [`xray-sdk-aws`](https://docs.rs/xray-sdk-aws) — the AWS SDK for Rust: a subsegment per AWS call
//! - `xray-sdk-tracing` (this crate) — `tracing` spans as subsegments, trace IDs in log lines
//! - [`xray-sdk-lambda`](https://docs.rs/xray-sdk-lambda) — AWS Lambda functions
//! - [`xray-local`](https://docs.rs/xray-local) — a local stand-in for the X-Ray daemon and API, with a trace viewer (`cargo install xray-local`)

#![cfg_attr(docsrs, feature(doc_cfg))]

mod budget;
mod correlation;
mod fields;
mod filter;
mod layer;

pub use budget::OMITTED_KEY;
pub use correlation::{LOG_CORRELATION_KEY, XRayFormat, log_correlation_id};
pub use fields::{DEFAULT_ANNOTATION_PREFIXES, DEFAULT_METADATA_NAMESPACE};
pub use filter::DEFAULT_EXCLUDED_TARGETS;
pub use layer::{DEFAULT_MAX_SUBSEGMENTS, XRayTracingLayer};

// The public types cross threads and tasks: checked when the crate compiles.
const _: () = {
    const fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<XRayTracingLayer>();
};
