//! [`XRay`]: the service that wraps each request in a segment.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use tower_service::Service;
use xray_sdk::Recorder;

use crate::body::ResponseBody;
use crate::config::Config;
use crate::future::ResponseFuture;
use crate::record;

/// The service produced by [`XRayLayer`](crate::XRayLayer): every request becomes a segment
/// that ends when the response body has been sent (or failed, or was dropped).
///
/// Cloning is cheap (the inner service's clone plus one reference count).
#[derive(Clone)]
pub struct XRay<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> XRay<S> {
    pub(crate) fn from_parts(inner: S, config: Arc<Config>) -> Self {
        XRay { inner, config }
    }

    /// Wraps `inner` with the default settings of [`XRayLayer::new`](crate::XRayLayer::new).
    pub fn new(inner: S, recorder: Recorder) -> Self {
        tower_layer::Layer::layer(&crate::XRayLayer::new(recorder), inner)
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

impl<S: fmt::Debug> fmt::Debug for XRay<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XRay")
            .field("inner", &self.inner)
            .field("naming", &self.config.naming)
            .field("response_header", &self.config.response_header)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for XRay<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let (mut recording, mode) = record::begin(&self.config, &req);
        req.extensions_mut().insert(recording.segment.context());
        let called = {
            let _current = recording.enter();
            let inner = &mut self.inner;
            catch_unwind(AssertUnwindSafe(move || inner.call(req)))
        };
        match called {
            Ok(future) => ResponseFuture::new(future, recording, mode),
            Err(payload) => {
                // Answered by the future, as a panic in the future itself is.
                recording.record_panic(&*payload);
                ResponseFuture::panicked(recording, mode)
            }
        }
    }
}

/// A wrapped tonic service keeps its name, so that `Server::add_service(XRay::new(svc, ..))`
/// routes to it.
#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService> tonic::server::NamedService for XRay<S> {
    const NAME: &'static str = S::NAME;
}
