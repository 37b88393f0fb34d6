//! [`ClientResponseBody`] of the client layer: ends the call's subsegment when the body ends.

use std::fmt;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http_body::{Body, Frame, SizeHint};

use super::recording::{ClientRecording, short_type_name};

pin_project_lite::pin_project! {
    /// The response body of [`XRayClient`](super::XRayClient): the inner body, unchanged,
    /// plus the call's subsegment, which ends at the first of: the last data frame, the
    /// trailers (which hold a gRPC call's status), the end of the stream, an error from the
    /// body (a fault, with the error's message as the cause), or this body being dropped (a
    /// gRPC call then counts as `CANCELLED`).
    pub struct ClientResponseBody<B> {
        #[pin]
        inner: B,
        recording: Option<ClientRecording>,
    }

    impl<B> PinnedDrop for ClientResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(recording) = this.project().recording.take() {
                recording.finish(None, None, true);
            }
        }
    }
}

impl<B> ClientResponseBody<B> {
    pub(crate) fn new(inner: B, recording: Option<ClientRecording>) -> Self {
        ClientResponseBody { inner, recording }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> fmt::Debug for ClientResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponseBody")
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}

impl<B> Body for ClientResponseBody<B>
where
    B: Body,
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = match this.inner.as_mut().poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(frame) => frame,
        };
        if this.recording.is_none() {
            return Poll::Ready(frame);
        }
        let done = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(f)) => f.is_trailers() || this.inner.is_end_stream(),
        };
        if done && let Some(recording) = this.recording.take() {
            match &frame {
                Some(Err(error)) => recording.finish_with_body_error(
                    error,
                    short_type_name(std::any::type_name::<B::Error>()),
                ),
                Some(Ok(f)) => recording.finish_with_trailers(f.trailers_ref()),
                None => recording.finish_with_trailers(None),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
