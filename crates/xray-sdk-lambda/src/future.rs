//! [`XRayFuture`]: a handler's future, run with its invocation subsegment current, which
//! ends (and so sends) the subsegment when the handler returns, fails or panics.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use lambda_runtime::Diagnostic;
use xray_sdk::Patch;
use xray_sdk::context::WithContext;

use crate::invocation::Invocation;

/// Records on the invocation subsegment what a successful response says about it.
pub(crate) type OnSuccess<T> = fn(&Patch<'_>, &T);

pin_project_lite::pin_project! {
    /// The future of a traced handler (see [`XRayLambdaLayer`](crate::XRayLambdaLayer)).
    ///
    /// Every poll runs with the invocation subsegment current. When the handler finishes,
    /// the subsegment ends, and is sent, before this future is ready: before the runtime
    /// posts the response. An error is recorded as a fault with the error (as the runtime
    /// will report it) and returned as a [`Diagnostic`]; a panic is recorded the same way
    /// and then resumed, for the runtime to report as usual.
    #[must_use = "futures do nothing unless polled"]
    pub struct XRayFuture<F, T> {
        #[pin]
        inner: WithContext<F>,
        invocation: Option<Invocation>,
        on_success: Option<OnSuccess<T>>,
    }
}

impl<F, T> std::fmt::Debug for XRayFuture<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XRayFuture")
            .field("done", &self.invocation.is_none())
            .finish_non_exhaustive()
    }
}

impl<F, T> XRayFuture<F, T> {
    pub(crate) fn new(
        inner: WithContext<F>,
        invocation: Invocation,
        on_success: Option<OnSuccess<T>>,
    ) -> Self {
        XRayFuture {
            inner,
            invocation: Some(invocation),
            on_success,
        }
    }
}

impl<F, T, E> Future for XRayFuture<F, T>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Diagnostic>,
{
    type Output = Result<T, Diagnostic>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        // The context is taken out of the thread again even when the poll unwinds.
        let polled = catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(value))) => {
                if let Some(invocation) = this.invocation.take() {
                    let on_success = *this.on_success;
                    invocation.succeed(|p| {
                        if let Some(record) = on_success {
                            record(p, &value);
                        }
                    });
                }
                Poll::Ready(Ok(value))
            }
            Ok(Poll::Ready(Err(error))) => {
                let diagnostic: Diagnostic = error.into();
                if let Some(invocation) = this.invocation.take() {
                    invocation.fail(&diagnostic);
                }
                Poll::Ready(Err(diagnostic))
            }
            Err(payload) => {
                if let Some(invocation) = this.invocation.take() {
                    invocation.panicked(&*payload);
                }
                resume_unwind(payload)
            }
        }
    }
}
