//! Stopping a recorder cleanly: [`Recorder::shutdown`] and its blocking twin.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use crate::emitter::EmitterStats;
use crate::recorder::Recorder;

/// What a shutdown did: the emitter's final counters and what did not reach the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The emitter's counters when the shutdown returned.
    pub stats: EmitterStats,
    /// Segments still queued when the deadline passed (sent by the emitter thread later, if
    /// the process lives long enough).
    pub pending: u64,
    /// What was lost since the recorder was built, each in its own unit: documents dropped
    /// because the queue was full or a document too large, datagrams or requests not sent
    /// because a send failed, and with OTLP, spans dropped. Zero when everything arrived;
    /// `stats` says what each loss was.
    pub lost: u64,
}

impl ShutdownReport {
    /// True when every document recorded was handed to the operating system.
    pub fn is_complete(&self) -> bool {
        self.pending == 0 && self.lost == 0
    }
}

impl Recorder {
    /// Sends what is queued (waiting at most `timeout`), stops the recorder's background
    /// work (the emitter thread, the centralized sampler's calls to the daemon) and reports
    /// what was lost. Segments that end afterwards are counted in
    /// [`EmitterStats::dropped_after_shutdown`], not sent. This blocks the calling thread; in
    /// async code, await [`Recorder::shutdown`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use xray_sdk::Recorder;
    /// # let recorder = Recorder::disabled();
    /// let report = recorder.shutdown_blocking(Duration::from_secs(2));
    /// assert!(report.is_complete());
    /// ```
    pub fn shutdown_blocking(&self, timeout: Duration) -> ShutdownReport {
        if let Err(e) = self.flush(timeout) {
            tracing::warn!(error = %e, "X-Ray shutdown: not everything was sent in time");
        }
        let source = self.source();
        source.sampler.shutdown();
        source.sink.emitter.close(timeout);
        let stats = self.stats();
        let report = ShutdownReport {
            stats,
            pending: stats.pending(),
            lost: stats.dropped_queue_full
                + stats.dropped_too_large
                + stats.send_errors
                + stats.spans_dropped,
        };
        tracing::debug!(?report, "X-Ray recorder shut down");
        report
    }

    /// [`Recorder::shutdown_blocking`] as a future, for async code: the waiting happens on a
    /// thread of its own, so the runtime is never blocked. Works with any executor.
    ///
    /// ```
    /// use std::time::Duration;
    /// use xray_sdk::Recorder;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let recorder = Recorder::disabled();
    /// let report = recorder.shutdown(Duration::from_secs(2)).await;
    /// assert_eq!(report.pending, 0);
    /// # }
    /// ```
    pub fn shutdown(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = ShutdownReport> + Send + 'static {
        let shared: Arc<Mutex<Waiting>> = Arc::default();
        let recorder = self.clone();
        let on_thread = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("xray-shutdown".into())
            .spawn(move || {
                let report = recorder.shutdown_blocking(timeout);
                let waker = {
                    let mut w = on_thread.lock().unwrap_or_else(PoisonError::into_inner);
                    w.report = Some(report);
                    w.waker.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            });
        if spawned.is_err() {
            // No thread to wait on: wait here rather than not at all.
            let report = self.shutdown_blocking(timeout);
            shared.lock().unwrap_or_else(PoisonError::into_inner).report = Some(report);
        }
        Shutdown { shared }
    }
}

#[derive(Default)]
struct Waiting {
    report: Option<ShutdownReport>,
    waker: Option<Waker>,
}

/// The future [`Recorder::shutdown`] returns.
struct Shutdown {
    shared: Arc<Mutex<Waiting>>,
}

impl Future for Shutdown {
    type Output = ShutdownReport;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<ShutdownReport> {
        let mut w = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        match w.report.take() {
            Some(report) => Poll::Ready(report),
            None => {
                w.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
