//! Outgoing calls: [`XRayClientLayer`] records each call made through a tower HTTP client
//! (a tonic `Channel`, hyper-util's client, anything that is a
//! `tower::Service<http::Request<_>>`) as a `remote` subsegment of the current context, and
//! sends the trace header to the service called.
//!
//! ```no_run
//! use tower::ServiceBuilder;
//! use xray_sdk::context::FutureExt;
//! use xray_sdk_tower::XRayClientLayer;
//!
//! # async fn demo(recorder: xray_sdk::Recorder) -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = tonic::transport::Endpoint::from_static("http://inventory.internal:50051");
//! let channel = ServiceBuilder::new()
//!     // The channel adds its endpoint's origin below this layer: tell the layer too.
//!     .layer(XRayClientLayer::new().origin(endpoint.uri().clone()))
//!     .service(endpoint.connect().await?);
//! // let mut client = InventoryClient::new(channel);
//!
//! let segment = recorder.segment("checkout").begin();
//! async {
//!     // client.reserve(request).await   -- a subsegment of `segment`
//! }
//! .in_context(segment.context())
//! .await;
//! # let _ = channel;
//! # Ok(()) }
//! ```
//!
//! Per call:
//!
//! - the subsegment is named after the host called (without the port), in the `remote`
//!   namespace, with `http.request.method` and `http.request.url` (`scheme://host[:port]/path`,
//!   no query or credentials), `http.response.status` and `content_length`, and the flags
//!   the status implies (4xx `error`, 429 `throttle`, 5xx `fault`);
//! - for a gRPC call (`content-type: application/grpc...`), the gRPC status from the response
//!   headers or the trailers: the `grpc_status` annotation, the flags of
//!   [`GrpcCode::flags`](xray_sdk::remote::GrpcCode::flags) and the `grpc-message` as a
//!   remote exception in the `cause`; a call dropped before its status arrived is annotated
//!   `CANCELLED` (1) and sets no flag;
//! - the request gets `X-Amzn-Trace-Id: Root=..;Parent=<subsegment>;Sampled=..` (a header
//!   the caller set is kept unless [`XRayClientLayer::existing_header`] says otherwise), and
//!   `http.request.traced` is set when the answer carries the header back;
//! - when the trace's recorder propagates W3C Trace Context
//!   ([`xray_sdk::Context::propagates_traceparent`]), the request also gets
//!   `traceparent: 00-<trace>-<subsegment>-<01|00>` and the `tracestate` that came in with
//!   the trace; a `traceparent` the caller set then counts as a header the caller set (kept,
//!   with ours left out, under the default policy);
//! - an error from the inner service sets `fault` with the error and its sources as the
//!   cause, and is returned as a [`BoxError`];
//! - the subsegment ends when the response body ends (its last frame, its trailers, an
//!   error, or the body being dropped), so a streaming call is timed to its end;
//! - the subsegment is current while the inner service is called and its future polled.
//!
//! The parent is a [`xray_sdk::Context`] in the request's extensions, else the current
//! context. Without either, the request is sent untouched and the context-missing policy
//! ([`xray_sdk::ContextMissing`]) decides what else happens (as for `xray-sdk-reqwest`):
//! `LOG_ERROR` logs, `IGNORE_ERROR` stays silent, `RUNTIME_ERROR` answers with a
//! [`xray_sdk::ContextMissingError`] and sends nothing.

mod body;
mod future;
mod recording;

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response, Uri};
use tower_layer::Layer;
use tower_service::Service;
use xray_sdk::ContextMissing;
use xray_sdk::remote::ExistingHeader;

pub use body::ClientResponseBody;
pub use future::ClientResponseFuture;
use recording::Origin;

/// The error type of [`XRayClient`]: the inner service's error, boxed, or a
/// [`xray_sdk::ContextMissingError`] under the `RUNTIME_ERROR` strategy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The operation named by the context-missing message.
const OPERATION: &str = "xray_sdk_tower::XRayClient";

/// Settings shared (behind one `Arc`) by every clone of the client service.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientConfig {
    pub(crate) context_missing: Option<ContextMissing>,
    pub(crate) existing_header: ExistingHeader,
    pub(crate) origin: Option<Origin>,
}

/// A [`Layer`] that records every call made through the wrapped HTTP client as a `remote`
/// subsegment and propagates the trace header. See the [module docs](self).
///
/// ```
/// use xray_sdk::ContextMissing;
/// use xray_sdk::remote::ExistingHeader;
/// use xray_sdk_tower::XRayClientLayer;
///
/// let layer = XRayClientLayer::new()
///     .context_missing(ContextMissing::IgnoreError)
///     .existing_header(ExistingHeader::Overwrite)
///     .origin(http::Uri::from_static("http://inventory.internal:50051"));
/// # let _ = layer;
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct XRayClientLayer {
    config: Arc<ClientConfig>,
}

impl XRayClientLayer {
    /// A layer with the defaults: the context-missing policy from `AWS_XRAY_CONTEXT_MISSING`,
    /// else `LOG_ERROR`; a caller's own `X-Amzn-Trace-Id` header kept; the host taken from
    /// each request's URI.
    pub fn new() -> Self {
        XRayClientLayer::default()
    }

    /// The context-missing policy for calls made outside any segment or subsegment. As for
    /// every X-Ray setting, `AWS_XRAY_CONTEXT_MISSING` wins over it when set (see
    /// [`ContextMissing`] for the rule); without either the policy is `LOG_ERROR`, whether
    /// or not a global recorder is installed.
    /// Under `RUNTIME_ERROR` the layer answers [`xray_sdk::ContextMissingError`] without
    /// calling the inner service.
    pub fn context_missing(self, policy: ContextMissing) -> Self {
        self.update(|c| c.context_missing = Some(policy))
    }

    /// What to do with an `X-Amzn-Trace-Id` header the caller already set (default: keep it).
    pub fn existing_header(self, policy: ExistingHeader) -> Self {
        self.update(|c| c.existing_header = policy)
    }

    /// The scheme and authority recorded for requests whose URI has none: a tonic client
    /// made with `new` sends path-only URIs, and its `Channel` adds the endpoint's origin
    /// below this layer. Pass the endpoint's URI (`Endpoint::uri()`); only its scheme and
    /// authority are used, and only for the record. A URI without an authority changes
    /// nothing.
    pub fn origin(self, origin: Uri) -> Self {
        let parts = origin.into_parts();
        match parts.authority {
            Some(authority) => self.update(|c| {
                c.origin = Some(Origin {
                    scheme: parts.scheme,
                    authority,
                });
            }),
            None => self,
        }
    }

    fn update(self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        f(&mut config);
        XRayClientLayer {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for XRayClientLayer {
    type Service = XRayClient<S>;

    fn layer(&self, inner: S) -> XRayClient<S> {
        XRayClient {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The client service made by [`XRayClientLayer`]: each call is a `remote` subsegment of the
/// current context, ended when the response body ends.
///
/// Cloning is cheap (the inner service's clone plus one reference count).
#[derive(Clone)]
pub struct XRayClient<S> {
    inner: S,
    config: Arc<ClientConfig>,
}

impl<S> XRayClient<S> {
    /// Wraps `inner` with the default settings of [`XRayClientLayer::new`].
    pub fn new(inner: S) -> Self {
        XRayClientLayer::new().layer(inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for XRayClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRayClient")
            .field("inner", &self.inner)
            .field("context_missing", &self.config.context_missing)
            .field("existing_header", &self.config.existing_header)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for XRayClient<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body,
{
    type Response = Response<ClientResponseBody<ResBody>>;
    type Error = BoxError;
    type Future = ClientResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(mut recording) = recording::begin(&self.config, &mut req) else {
            return match xray_sdk::remote::on_missing_context(
                self.config.context_missing,
                OPERATION,
            ) {
                Ok(()) => ClientResponseFuture::untraced(self.inner.call(req)),
                Err(e) => ClientResponseFuture::refused(e),
            };
        };
        let future = {
            let _current = recording.enter();
            self.inner.call(req)
        };
        ClientResponseFuture::traced(future, recording)
    }
}
