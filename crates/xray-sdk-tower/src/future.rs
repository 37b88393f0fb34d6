//! [`ResponseFuture`]: runs the inner service's future with the segment current.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use http::Response;
use xray_sdk::Record;

use crate::body::ResponseBody;
use crate::panic;
use crate::record::{self, Recording, ResponseHeaderMode};

pin_project_lite::pin_project! {
    /// The response future of [`XRay`](crate::XRay).
    ///
    /// The request's segment is the current X-Ray context during every poll. A panic in the
    /// inner service (its `call` or its future) is recorded as a fault with its message as
    /// the cause, and answered in its place: `500 Internal Server Error`, or for a gRPC call
    /// the status `INTERNAL`, with the trace header as on any response. Dropping the future
    /// before it completes ends the segment.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        // `None` when the inner service panicked in `call`, and once the response is out.
        #[pin]
        inner: Option<F>,
        recording: Option<Recording>,
        mode: ResponseHeaderMode,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(recording) = this.project().recording.take() {
                recording.end_dropped();
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, recording: Recording, mode: ResponseHeaderMode) -> Self {
        ResponseFuture {
            inner: Some(inner),
            recording: Some(recording),
            mode,
        }
    }

    /// The future of a request whose `call` panicked (recorded already): it answers for it.
    pub(crate) fn panicked(recording: Recording, mode: ResponseHeaderMode) -> Self {
        ResponseFuture {
            inner: None,
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
        let mut this = self.project();
        let Some(recording) = this.recording.as_mut() else {
            // Polled again after completing: nothing to record, the inner future (if any)
            // decides.
            return match this.inner.as_pin_mut() {
                Some(inner) => {
                    let out = ready!(inner.poll(cx));
                    Poll::Ready(out.map(|res| res.map(|b| ResponseBody::new(b, None))))
                }
                None => Poll::Pending,
            };
        };
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            // `call` panicked.
            let Some(recording) = this.recording.take() else {
                return Poll::Pending;
            };
            return Poll::Ready(Ok(answer_panic(recording, *this.mode)));
        };
        let polled = {
            let _current = recording.enter();
            catch_unwind(AssertUnwindSafe(move || inner.poll(cx)))
        };
        let out = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(out)) => out,
            Err(payload) => {
                recording.record_panic(&*payload);
                // The inner future is not polled again: dropped now, as a server drops a
                // task that panicked.
                this.inner.set(None);
                let Some(recording) = this.recording.take() else {
                    return Poll::Pending;
                };
                return Poll::Ready(Ok(answer_panic(recording, *this.mode)));
            }
        };
        let Some(mut recording) = this.recording.take() else {
            return Poll::Ready(out.map(|res| res.map(|b| ResponseBody::new(b, None))));
        };
        match out {
            Ok(mut res) => {
                record::record_response(&mut recording, *this.mode, &mut res);
                let recording = if res.body().is_end_stream() {
                    // Nothing left to stream (HEAD, 204, empty body, a trailers-only gRPC
                    // answer): done now.
                    recording.end_with_trailers(None);
                    None
                } else {
                    Some(recording)
                };
                Poll::Ready(Ok(res.map(|b| ResponseBody::new(b, recording))))
            }
            Err(e) => {
                // The inner service failed without a response; its error type is opaque here.
                recording.into_segment().end_with(|e| e.set_fault());
                Poll::Ready(Err(e))
            }
        }
    }
}

/// The answer to a request whose handler panicked (the panic is recorded already): a 500, or
/// a gRPC `INTERNAL` status, recorded and given the trace header like any response.
fn answer_panic<B: http_body::Body>(
    mut recording: Recording,
    mode: ResponseHeaderMode,
) -> Response<ResponseBody<B>> {
    let mut res = Response::new(ResponseBody::empty());
    panic::answer(&mut res, recording.grpc);
    record::record_response(&mut recording, mode, &mut res);
    recording.end_with_trailers(None);
    res
}
