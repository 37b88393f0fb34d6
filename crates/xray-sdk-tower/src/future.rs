//! [`ResponseFuture`]: runs the inner service's future with the segment current.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use http::Response;
use xray_sdk::Record;

use crate::body::ResponseBody;
use crate::record::{self, Recording, ResponseHeaderMode};

pin_project_lite::pin_project! {
    /// The response future of [`XRay`](crate::XRay).
    ///
    /// The request's segment is the current X-Ray context during every poll. A panic in the
    /// inner future is recorded as a fault with its message as the cause, the segment is sent,
    /// and the panic continues (so an outer `CatchPanicLayer` or the server handles it as it
    /// would without this layer). Dropping the future before it completes ends the segment.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recording: Option<Recording>,
        mode: ResponseHeaderMode,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, recording: Recording, mode: ResponseHeaderMode) -> Self {
        ResponseFuture {
            inner,
            recording: Some(recording),
            mode,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(recording) = this.recording.as_mut() else {
            // Polled again after completing: nothing to record, the inner future decides.
            let out = ready!(this.inner.poll(cx));
            return Poll::Ready(out.map(|res| res.map(|b| ResponseBody::new(b, None))));
        };
        let polled = {
            let _current = recording.enter();
            let inner = this.inner;
            catch_unwind(AssertUnwindSafe(move || inner.poll(cx)))
        };
        let out = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(out)) => out,
            Err(payload) => {
                if let Some(recording) = this.recording.take() {
                    recording.end_with_panic(&*payload);
                }
                resume_unwind(payload)
            }
        };
        let Some(recording) = this.recording.take() else {
            return Poll::Ready(out.map(|res| res.map(|b| ResponseBody::new(b, None))));
        };
        match out {
            Ok(mut res) => {
                record::record_response(&recording, *this.mode, &mut res);
                let recording = if res.body().is_end_stream() {
                    // Nothing left to stream (HEAD, 204, empty body): done now.
                    recording.segment.end();
                    None
                } else {
                    Some(recording)
                };
                Poll::Ready(Ok(res.map(|b| ResponseBody::new(b, recording))))
            }
            Err(e) => {
                // The inner service failed without a response; its error type is opaque here.
                recording.segment.end_with(|e| e.set_fault());
                Poll::Ready(Err(e))
            }
        }
    }
}
