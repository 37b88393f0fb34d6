//! [`XRayLambdaLayer`]: the tower layer around a `lambda_runtime` handler.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use lambda_runtime::{Diagnostic, LambdaEvent};
use tower_layer::Layer;
use tower_service::Service;
use xray_sdk::{FutureExt, Recorder};

use crate::future::XRayFuture;
use crate::init::Init;
use crate::invocation::Settings;

/// Traces every invocation of a `lambda_runtime` handler: a subsegment per invocation under
/// Lambda's segment, current while the handler runs, ended and sent before the runtime
/// posts the response.
///
/// It wraps the handler (a `Service<LambdaEvent<T>>`), not the runtime:
/// `Runtime::layer` places a layer around the part that posts the response, where it would
/// end after the response is posted.
///
/// ```no_run
/// use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
/// use serde_json::Value;
/// use tower_layer::Layer;
/// use xray_sdk_lambda::XRayLambdaLayer;
///
/// async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
///     // AWS SDK calls (xray-sdk-aws), reqwest calls (xray-sdk-reqwest) and
///     // xray_sdk::subsegment(..) record under the invocation here.
///     Ok(event.payload)
/// }
///
/// # async fn demo() -> Result<(), Error> {
/// let recorder = xray_sdk_lambda::recorder()?;
/// let handler = XRayLambdaLayer::new(recorder).layer(service_fn(handler));
/// Runtime::new(handler).run().await
/// # }
/// ```
///
/// Per invocation:
///
/// - the trace header is the invocation's own (`Context::xray_trace_id`, from the
///   `Lambda-Runtime-Trace-Id` header of the Runtime API); `_X_AMZN_TRACE_ID` is read only when
///   that is missing and the runtime is sequential (`AWS_LAMBDA_MAX_CONCURRENCY` unset or 1),
///   so concurrent invocations never see one another's;
/// - Lambda's segment is a facade ([`Recorder::facade`]): never sent, its `Sampled` flag
///   final;
/// - one subsegment named after the function (see [`XRayLambdaLayer::subsegment_name`])
///   covers the handler, with the function's ARN, name and account and the request ID in
///   its `aws` block. Everything the handler records goes under it;
/// - an error or a panic is recorded on it as a fault with the error; the runtime then
///   reports it as usual (a panic is resumed).
#[derive(Clone)]
pub struct XRayLambdaLayer {
    settings: Arc<Settings>,
}

impl std::fmt::Debug for XRayLambdaLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XRayLambdaLayer")
            .field("recorder", &self.settings.recorder)
            .field("subsegment_name", &self.settings.name)
            .finish_non_exhaustive()
    }
}

impl XRayLambdaLayer {
    /// A layer recording with `recorder` (see [`recorder`](crate::recorder) for one
    /// configured for Lambda).
    pub fn new(recorder: Recorder) -> Self {
        XRayLambdaLayer {
            settings: Arc::new(Settings::new(recorder)),
        }
    }

    /// Names the invocation subsegment (default: the function's name).
    pub fn subsegment_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.settings_mut().name = Some(name.into());
        self
    }

    /// Ends `init`'s subsegment now and hands it to the first invocation, which sends it
    /// (see [`Init`]).
    pub fn init(mut self, init: Init) -> Self {
        self.settings_mut().set_init(init);
        self
    }

    fn settings_mut(&mut self) -> &mut Settings {
        // Configured before the layer is cloned into services; a shared one is copied.
        if Arc::get_mut(&mut self.settings).is_none() {
            self.settings = Arc::new(self.settings.copy());
        }
        Arc::get_mut(&mut self.settings).unwrap_or_else(|| unreachable!("just made unique"))
    }

    #[cfg(feature = "http")]
    pub(crate) fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }
}

impl<S> Layer<S> for XRayLambdaLayer {
    type Service = XRayLambda<S>;

    fn layer(&self, inner: S) -> XRayLambda<S> {
        XRayLambda {
            inner,
            settings: Arc::clone(&self.settings),
        }
    }
}

/// A handler traced by [`XRayLambdaLayer`]. Its error type is the runtime's
/// [`Diagnostic`], made from the handler's error as the runtime would make it.
#[derive(Clone)]
pub struct XRayLambda<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> std::fmt::Debug for XRayLambda<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XRayLambda").finish_non_exhaustive()
    }
}

impl<S, T> Service<LambdaEvent<T>> for XRayLambda<S>
where
    S: Service<LambdaEvent<T>>,
    S::Error: Into<Diagnostic>,
{
    type Response = S::Response;
    type Error = Diagnostic;
    type Future = XRayFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Diagnostic>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, event: LambdaEvent<T>) -> Self::Future {
        let invocation = self.settings.begin(&event.context, None, |_| {});
        let context = invocation.context();
        let inner = &mut self.inner;
        // A handler may work before returning its future: with the invocation current too.
        let called = catch_unwind(AssertUnwindSafe(|| context.in_scope(|| inner.call(event))));
        match called {
            Ok(future) => XRayFuture::new(future.in_context(context), invocation, None),
            Err(payload) => {
                invocation.panicked(&*payload);
                resume_unwind(payload)
            }
        }
    }
}
