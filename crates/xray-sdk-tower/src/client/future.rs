//! [`ClientResponseFuture`] of the client layer: waits for the answer with the call's subsegment
//! current, then hands the subsegment to the response body.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use http::Response;
use xray_sdk::{Cause, ContextMissingError};

use super::BoxError;
use super::body::ClientResponseBody;
use super::recording::ClientRecording;

pin_project_lite::pin_project! {
    /// The response future of [`XRayClient`](super::XRayClient).
    ///
    /// The call's subsegment is the current X-Ray context during every poll. An error ends
    /// it with `fault` and the error as the cause; a response hands it to the
    /// [`ClientResponseBody`], which ends it. Dropping the future first ends it too.
    #[must_use = "futures do nothing unless polled"]
    pub struct ClientResponseFuture<F> {
        // `None` once completed, or when the call was refused.
        #[pin]
        inner: Option<F>,
        recording: Option<ClientRecording>,
        refused: Option<ContextMissingError>,
    }

    impl<F> PinnedDrop for ClientResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(recording) = this.project().recording.take() {
                recording.finish(None, None, true);
            }
        }
    }
}

impl<F> ClientResponseFuture<F> {
    pub(crate) fn traced(inner: F, recording: ClientRecording) -> Self {
        ClientResponseFuture {
            inner: Some(inner),
            recording: Some(recording),
            refused: None,
        }
    }

    pub(crate) fn untraced(inner: F) -> Self {
        ClientResponseFuture {
            inner: Some(inner),
            recording: None,
            refused: None,
        }
    }

    pub(crate) fn refused(error: ContextMissingError) -> Self {
        ClientResponseFuture {
            inner: None,
            recording: None,
            refused: Some(error),
        }
    }
}

impl<F> fmt::Debug for ClientResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponseFuture")
            .field("recording", &self.recording)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ClientResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: http_body::Body,
{
    type Output = Result<Response<ClientResponseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return match this.refused.take() {
                Some(error) => Poll::Ready(Err(Box::new(error))),
                // Polled again after completing.
                None => Poll::Pending,
            };
        };
        let out = match this.recording.as_mut() {
            Some(recording) => {
                let _current = recording.enter();
                ready!(inner.poll(cx))
            }
            None => ready!(inner.poll(cx)),
        };
        this.inner.set(None);
        let recording = this.recording.take().filter(ClientRecording::is_sampled);
        match out {
            Ok(res) => {
                let recording = recording.and_then(|r| r.on_response(&res));
                Poll::Ready(Ok(res.map(|b| ClientResponseBody::new(b, recording))))
            }
            Err(e) => {
                let e: BoxError = e.into();
                if let Some(recording) = recording {
                    // Built before the lock is taken: it walks the error chain.
                    let cause = Cause::from_dyn_error(&*e);
                    recording.finish(None, Some(cause), false);
                }
                Poll::Ready(Err(e))
            }
        }
    }
}
