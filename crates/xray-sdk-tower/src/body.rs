//! [`ResponseBody`]: ends the segment when the body has been streamed.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http_body::{Body, Frame, SizeHint};
use xray_sdk::{Exception, Record};

use crate::record::Recording;

pin_project_lite::pin_project! {
    /// The response body of [`XRay`](crate::XRay): the inner body, unchanged, plus the
    /// request's segment, which ends when the body does.
    ///
    /// The segment ends at the first of: the last data frame (the inner body reports its end),
    /// the trailers (which hold a gRPC call's status), the end of the stream, an error from
    /// the inner body (recorded as a fault), or this body being dropped (a client that went
    /// away; a gRPC call then counts as `CANCELLED`). The segment is the current X-Ray context
    /// while the inner body produces frames, so work done while streaming attaches to it.
    /// The answer the layer gives in place of a panic has an empty body.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Option<B>,
        recording: Option<Recording>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(recording) = this.project().recording.take() {
                recording.end_dropped();
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, recording: Option<Recording>) -> Self {
        ResponseBody {
            inner: Some(inner),
            recording,
        }
    }

    /// The empty body of the answer to a panic.
    pub(crate) fn empty() -> Self {
        ResponseBody {
            inner: None,
            recording: None,
        }
    }

    /// The wrapped body; `None` in the layer's answer to a panic.
    pub fn get_ref(&self) -> Option<&B> {
        self.inner.as_ref()
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(mut inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let Some(recording) = this.recording.as_mut() else {
            return inner.poll_frame(cx);
        };
        let polled = {
            let _current = recording.enter();
            let inner = inner.as_mut();
            catch_unwind(AssertUnwindSafe(move || inner.poll_frame(cx)))
        };
        let frame = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(frame)) => frame,
            Err(payload) => {
                if let Some(recording) = this.recording.take() {
                    recording.end_with_panic(&*payload);
                }
                resume_unwind(payload)
            }
        };
        let (done, failed) = match &frame {
            None => (true, false),
            Some(Ok(f)) => (f.is_trailers() || inner.is_end_stream(), false),
            Some(Err(_)) => (true, true),
        };
        if done && let Some(recording) = this.recording.take() {
            if failed {
                recording.into_segment().end_with(|e| {
                    e.add_exception(Exception::new(
                        "the response body failed while streaming",
                        "BodyError",
                    ));
                    e.set_fault();
                });
            } else {
                let trailers = match &frame {
                    Some(Ok(f)) => f.trailers_ref(),
                    _ => None,
                };
                recording.end_with_trailers(trailers);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
