//! [`XRayHttpLayer`]: the same per-invocation tracing for `lambda_http` handlers, with the
//! request and response recorded in the `http` block.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{HeaderName, HeaderValue};
use lambda_http::{Body, IntoResponse, Request, RequestExt, Response};
use lambda_runtime::{BoxFuture, Diagnostic};
use tower_layer::Layer;
use tower_service::Service;
use xray_sdk::{FutureExt, Patch, Record, Recorder};

use crate::future::XRayFuture;
use crate::init::Init;
use crate::invocation::Settings;
use crate::layer::XRayLambdaLayer;

const TRACE_HEADER: HeaderName = HeaderName::from_static("x-amzn-trace-id");
const TRACEPARENT: HeaderName = HeaderName::from_static(xray_sdk::header::TRACEPARENT);
const TRACESTATE: HeaderName = HeaderName::from_static(xray_sdk::header::TRACESTATE);

/// [`XRayLambdaLayer`] for `lambda_http` handlers (API Gateway, function URLs, ALB,
/// VPC Lattice): the layer goes around the HTTP handler, inside `lambda_http`'s adapter.
///
/// ```no_run
/// use lambda_http::{Error, Request, service_fn};
/// use tower_layer::Layer;
/// use xray_sdk_lambda::XRayHttpLayer;
///
/// async fn handler(request: Request) -> Result<String, Error> {
///     Ok(format!("hello {}", request.uri().path()))
/// }
///
/// # async fn demo() -> Result<(), Error> {
/// let recorder = xray_sdk_lambda::recorder()?;
/// lambda_http::run(XRayHttpLayer::new(recorder).layer(service_fn(handler))).await
/// # }
/// ```
///
/// Besides what [`XRayLambdaLayer`] records, the invocation subsegment gets the request's
/// method, URL, user agent and client address, and the response's status and length (a 4xx
/// sets `error`, a 5xx `fault`). The request's `x-amzn-trace-id` header is set from the
/// invocation's own context (Lambda's trace header), never from the process environment,
/// so it is right under concurrent invocations too.
///
/// **W3C Trace Context.** Lambda's trace header comes first. An invocation without one
/// (or without a valid `Root`) continues the trace of the request's W3C `traceparent`
/// instead: its trace ID, its parent ID as Lambda's segment and its sampled flag (`01` records,
/// `00` does not), with the `tracestate` kept for downstream calls; an invalid `traceparent`
/// is ignored (see [`xray_sdk::header::incoming_trace`]). Downstream HTTP calls made in the
/// handler (`xray-sdk-reqwest`, `xray-sdk-tower`'s client layer) carry `traceparent` besides
/// `X-Amzn-Trace-Id` when the recorder propagates it (`OTEL_PROPAGATORS` listing
/// `tracecontext`, or `OTEL_TRACES_EXPORTER=otlp`); AWS SDK calls carry the X-Ray header
/// only. The response is not given a trace header.
///
/// This replaces `xray-sdk-tower`'s layer on Lambda: there the function's segment is Lambda's,
/// and a tower layer would record a second segment of its own.
#[derive(Clone, Debug)]
pub struct XRayHttpLayer {
    layer: XRayLambdaLayer,
}

impl XRayHttpLayer {
    /// A layer recording with `recorder`.
    pub fn new(recorder: Recorder) -> Self {
        XRayHttpLayer {
            layer: XRayLambdaLayer::new(recorder),
        }
    }

    /// Names the invocation subsegment (default: the function's name).
    pub fn subsegment_name(self, name: impl Into<Arc<str>>) -> Self {
        XRayHttpLayer {
            layer: self.layer.subsegment_name(name),
        }
    }

    /// Ends `init`'s subsegment now and hands it to the first invocation (see [`Init`]).
    pub fn init(self, init: Init) -> Self {
        XRayHttpLayer {
            layer: self.layer.init(init),
        }
    }
}

impl From<XRayLambdaLayer> for XRayHttpLayer {
    fn from(layer: XRayLambdaLayer) -> Self {
        XRayHttpLayer { layer }
    }
}

impl<S> Layer<S> for XRayHttpLayer {
    type Service = XRayHttp<S>;

    fn layer(&self, inner: S) -> XRayHttp<S> {
        XRayHttp {
            inner,
            settings: Arc::clone(self.layer.settings()),
        }
    }
}

/// An HTTP handler traced by [`XRayHttpLayer`]. It answers with the handler's response
/// converted into a `lambda_http` response, and fails with the runtime's [`Diagnostic`].
#[derive(Clone)]
pub struct XRayHttp<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> std::fmt::Debug for XRayHttp<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XRayHttp").finish_non_exhaustive()
    }
}

/// The future of an [`XRayHttp`] handler.
pub type XRayHttpFuture<E> =
    XRayFuture<BoxFuture<'static, Result<Response<Body>, E>>, Response<Body>>;

impl<S, R> Service<Request> for XRayHttp<S>
where
    S: Service<Request, Response = R>,
    S::Future: Send + 'static,
    S::Error: Into<Diagnostic> + 'static,
    R: IntoResponse + Send + 'static,
{
    type Response = Response<Body>;
    type Error = Diagnostic;
    type Future = XRayHttpFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Diagnostic>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let header = request
            .lambda_context_ref()
            .and_then(|c| c.xray_trace_id.as_deref())
            .and_then(|v| HeaderValue::from_str(v).ok());
        if let Some(value) = header {
            request.headers_mut().insert(TRACE_HEADER, value);
        }
        let headers = request.headers();
        let w3c = Some((
            headers.get(TRACEPARENT).map(HeaderValue::as_bytes),
            headers
                .get_all(TRACESTATE)
                .into_iter()
                .map(HeaderValue::as_bytes)
                .collect(),
        ));
        let invocation = match request.lambda_context_ref() {
            Some(lambda) => self
                .settings
                .begin(lambda, w3c, |p| describe_request(p, &request)),
            None => {
                tracing::debug!(
                    "request without a Lambda context: not under lambda_http's adapter"
                );
                self.settings
                    .begin(&lambda_runtime::Context::default(), w3c, |p| {
                        describe_request(p, &request)
                    })
            }
        };
        let context = invocation.context();
        let future = context.in_scope(|| self.inner.call(request));
        let future: BoxFuture<'static, _> = Box::pin(async move {
            let response = future.await?;
            Ok(response.into_response().await)
        });
        XRayFuture::new(
            future.in_context(context),
            invocation,
            Some(describe_response),
        )
    }
}

fn describe_request<'a>(p: &Patch<'a>, request: &'a Request) {
    p.set_http_method(request.method().as_str());
    p.set_http_url(request.uri().to_string());
    let headers = request.headers();
    if let Some(agent) = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        p.set_http_user_agent(agent);
    }
    let client = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(ip) = client {
        p.set_http_client_ip(ip, true);
    }
}

fn describe_response(p: &Patch<'_>, response: &Response<Body>) {
    let length = match response.body() {
        Body::Empty => 0,
        Body::Text(t) => t.len(),
        Body::Binary(b) => b.len(),
        _ => return p.set_http_response(response.status().as_u16(), None),
    };
    p.set_http_response(response.status().as_u16(), Some(length as u64));
}
