//! The emitter: a bounded queue in front of one background thread that renders batches and
//! sends them.
//!
//! The request path only moves a finished batch into the queue (`queue.rs`) under a short
//! lock: it never waits for room and never allocates for emission. A full queue drops the new
//! batch and counts it. The thread sleeps until work arrives (an idle recorder costs no
//! wake-ups). After work it lingers (5 to 50 ms, shorter under load), woken by its own
//! timer rather than by each trace, so a steady flow of requests costs the request threads
//! no system call; a producer wakes it when it sleeps without a timeout, when half the queue
//! is full, and for a flush or a stop. An exporter that holds work for a batch (OTLP) is
//! woken once enough has arrived to fill it, not for every trace. The thread hands each
//! batch to an exporter: the segment-document renderer writes datagrams of at most
//! [`MAX_DATAGRAM_SIZE`] bytes and sends them over UDP. Send failures are counted and never
//! stop later sends.

pub(crate) mod json;
mod queue;
pub(crate) mod udp;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use self::queue::{Queue, Taken};
use crate::id::{EntityId, TraceId};
use crate::trace::Batch;

/// The line every datagram starts with.
pub const DAEMON_HEADER: &[u8] = b"{\"format\":\"json\",\"version\":1}\n";

/// Largest datagram sent, header included. The daemon reads 64 KiB per datagram; this keeps a
/// margin below it (the Java SDK's limit) and below the 65,507-byte IPv4 UDP payload limit.
pub const MAX_DATAGRAM_SIZE: usize = 63 * 1024;

/// Counters of the emitter, all since the recorder was built (more may be added).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmitterStats {
    /// Segments (or streamed groups of subsegments) accepted into the queue.
    pub queued: u64,
    /// Segments dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Datagrams handed to the operating system (with OTLP over HTTP: requests accepted by
    /// the receiver).
    pub sent: u64,
    /// Documents dropped because they exceeded the size limit even on their own, without
    /// children and metadata.
    pub dropped_too_large: u64,
    /// Documents whose metadata was removed so they would fit the size limit.
    pub truncated: u64,
    /// Datagrams that could not be sent (daemon address unresolvable, socket errors); with
    /// OTLP over HTTP, requests given up (their spans are in `spans_dropped`).
    pub send_errors: u64,
    /// Queued items the worker has finished with (with OTLP: turned into spans, which may
    /// wait in the exporter for their batch).
    pub processed: u64,
    /// Segments ended after the recorder was shut down, not sent.
    pub dropped_after_shutdown: u64,
    /// OTLP: spans the receiver accepted (in requests or datagrams that went out).
    pub spans_exported: u64,
    /// OTLP: spans lost: their request failed for good (a non-retryable answer, or retries
    /// that ran out of time), the exporter's span queue was full, or a span was too large
    /// for a datagram.
    pub spans_dropped: u64,
    /// OTLP: spans the receiver reported as rejected in a `partial_success` answer.
    pub spans_rejected: u64,
    /// OTLP: requests sent again after a retryable answer or a connection error.
    pub export_retries: u64,
}

impl EmitterStats {
    /// Items queued but not yet processed.
    pub fn pending(&self) -> u64 {
        self.queued.saturating_sub(self.processed)
    }
}

/// The counters, shared by the queue's producers, the thread and its exporter.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Batches exported inline (no queue and no thread); a queue counts its own.
    pub(crate) queued: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped_too_large: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    pub(crate) processed: AtomicU64,
    pub(crate) dropped_after_shutdown: AtomicU64,
    pub(crate) spans_exported: AtomicU64,
    pub(crate) spans_dropped: AtomicU64,
    pub(crate) spans_rejected: AtomicU64,
    pub(crate) export_retries: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> EmitterStats {
        EmitterStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            dropped_too_large: self.dropped_too_large.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
            processed: self.processed.load(Ordering::Relaxed),
            dropped_after_shutdown: self.dropped_after_shutdown.load(Ordering::Relaxed),
            spans_exported: self.spans_exported.load(Ordering::Relaxed),
            spans_dropped: self.spans_dropped.load(Ordering::Relaxed),
            spans_rejected: self.spans_rejected.load(Ordering::Relaxed),
            export_retries: self.export_retries.load(Ordering::Relaxed),
        }
    }
}

/// Why [`crate::Recorder::flush`] returned before everything was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// The deadline passed; the given number of items were still queued.
    Timeout {
        /// Items still pending.
        pending: u64,
    },
    /// The emitter thread is gone (it could not be started).
    Stopped,
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::Timeout { pending } => {
                write!(f, "flush timed out with {pending} segment(s) still queued")
            }
            FlushError::Stopped => f.write_str("the X-Ray emitter thread is not running"),
        }
    }
}

impl std::error::Error for FlushError {}

/// The seam between recording and a wire format: what the emitter thread does with each
/// batch. The segment-document renderer over UDP is one, OTLP spans (feature `otlp`)
/// another; a wire format plugs in here without touching the recording.
pub(crate) trait Exporter: Send + 'static {
    /// Renders and sends (or buffers) one batch, counting what happens to it.
    fn export(&mut self, batch: &Batch);

    /// Sends whatever is buffered, giving up on what cannot be sent by `deadline` (counted
    /// as lost). Called for every flush, when [`Exporter::flush_due`] passes and when the
    /// emitter stops.
    fn flush(&mut self, deadline: Option<Instant>) {
        let _ = deadline;
    }

    /// When buffered work must be sent even if nothing else arrives: the emitter thread
    /// then wakes and calls [`Exporter::flush`]. `None` (the default) when nothing waits,
    /// so an idle emitter sleeps without a timeout.
    fn flush_due(&self) -> Option<Instant> {
        None
    }

    /// While buffered work waits for [`Exporter::flush_due`]: how many more entities
    /// arriving make it worth waking the thread before then (1, the default: any).
    fn wake_after(&self) -> usize {
        1
    }
}

impl<E: Exporter + ?Sized> Exporter for Box<E> {
    fn export(&mut self, batch: &Batch) {
        (**self).export(batch);
    }

    fn flush(&mut self, deadline: Option<Instant>) {
        (**self).flush(deadline);
    }

    fn flush_due(&self) -> Option<Instant> {
        (**self).flush_due()
    }

    fn wake_after(&self) -> usize {
        (**self).wake_after()
    }
}

/// An exporter that drops every batch (`OTEL_TRACES_EXPORTER=none`).
pub(crate) struct Discard;

impl Exporter for Discard {
    fn export(&mut self, _batch: &Batch) {}
}

enum Work {
    Batch(Batch),
    /// Flush, giving up at the deadline, then answer.
    Flush(SyncSender<()>, Option<Instant>),
    /// Everything before has been handled: the thread exits.
    Stop,
}

/// The queue and its thread (dropping every handle lets the thread finish the queue and
/// exit), or an exporter run on the thread that finishes each batch.
pub(crate) struct Emitter {
    queue: Option<Arc<Queue<Work>>>,
    /// Set when batches are sent on the caller's thread instead (AWS Lambda).
    inline: Option<Mutex<Box<dyn Exporter>>>,
    /// Set by [`Emitter::close`]: later batches are counted, not sent.
    closed: AtomicBool,
    /// Set for the batches of a facade whose trace is not known yet (see [`Held`]).
    held: Option<Mutex<Held>>,
    counters: Arc<Counters>,
}

/// What happens to the batches of a held facade (work recorded before the trace it belongs
/// to is known, such as AWS Lambda's init phase; see [`crate::HeldFacade`]).
pub(crate) enum Held {
    /// The trace is not known yet: kept in memory.
    Holding(Vec<Batch>),
    /// Moved into trace `trace_id`, under entity `to` instead of the facade `from`, and sent
    /// through `sink`.
    Forward {
        trace_id: TraceId,
        from: EntityId,
        to: EntityId,
        sink: Arc<Sink>,
    },
    /// The trace is not recorded: dropped.
    Discard,
}

impl Held {
    /// Keeps, forwards or drops `batch`, as the state says.
    pub(crate) fn accept(&mut self, mut batch: Batch) {
        match self {
            Held::Holding(kept) => kept.push(batch),
            Held::Forward {
                trace_id,
                from,
                to,
                sink,
            } => {
                batch.move_under(*trace_id, *from, *to);
                sink.emitter.submit(batch);
            }
            Held::Discard => {}
        }
    }
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Emitter {
    /// An emitter that sends nothing (recording disabled).
    pub(crate) fn disabled() -> Emitter {
        Emitter {
            queue: None,
            inline: None,
            closed: AtomicBool::new(false),
            held: None,
            counters: Arc::default(),
        }
    }

    /// An emitter that keeps every batch until [`Emitter::release`] says where it goes.
    pub(crate) fn held() -> Emitter {
        Emitter {
            queue: None,
            inline: None,
            closed: AtomicBool::new(false),
            held: Some(Mutex::new(Held::Holding(Vec::new()))),
            counters: Arc::default(),
        }
    }

    /// Sets where the batches of a held emitter go from now on, and returns those it held.
    pub(crate) fn release(&self, to: Held) -> Vec<Batch> {
        let Some(held) = &self.held else {
            return Vec::new();
        };
        let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *held, to) {
            Held::Holding(kept) => kept,
            _ => Vec::new(),
        }
    }

    /// An emitter without a thread: each batch is rendered and sent by `exporter` on the
    /// thread that finished it, before that thread goes on.
    pub(crate) fn inline(counters: Arc<Counters>, exporter: impl Exporter) -> Emitter {
        Emitter {
            queue: None,
            inline: Some(Mutex::new(Box::new(exporter))),
            closed: AtomicBool::new(false),
            held: None,
            counters,
        }
    }

    /// Starts the `xray-emitter` thread with a queue of `capacity` batches in front of
    /// `exporter`, which counts into `counters`.
    pub(crate) fn start(
        capacity: usize,
        counters: Arc<Counters>,
        mut exporter: impl Exporter,
    ) -> Emitter {
        let queue = Arc::new(Queue::new(capacity));
        let worker_queue = Arc::clone(&queue);
        let worker_counters = Arc::clone(&counters);
        let spawned = thread::Builder::new()
            .name("xray-emitter".into())
            .spawn(move || run(&worker_queue, &worker_counters, &mut exporter));
        match spawned {
            Ok(_) => Emitter {
                queue: Some(queue),
                inline: None,
                closed: AtomicBool::new(false),
                held: None,
                counters,
            },
            Err(e) => {
                tracing::error!(error = %e, "could not start the X-Ray emitter thread; nothing will be sent");
                Emitter {
                    queue: None,
                    inline: None,
                    closed: AtomicBool::new(false),
                    held: None,
                    counters,
                }
            }
        }
    }

    /// Queues a batch without blocking; counts it as dropped when the queue is full.
    pub(crate) fn submit(&self, batch: Batch) {
        if self.closed.load(Ordering::Relaxed) {
            let n = self
                .counters
                .dropped_after_shutdown
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "X-Ray recorder shut down; segments ended since are not sent"
                );
            }
            return;
        }
        let Some(queue) = &self.queue else {
            if let Some(exporter) = &self.inline {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                // Nothing that runs under this lock panics on input; a poisoned one is usable.
                let mut exporter = exporter.lock().unwrap_or_else(PoisonError::into_inner);
                exporter.export(&batch);
                exporter.flush(None);
                self.counters.processed.fetch_add(1, Ordering::Relaxed);
            } else if let Some(held) = &self.held {
                // Forwarding submits to another emitter under this lock: never this one.
                held.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .accept(batch);
            }
            return;
        };
        let entities = batch.entities.len();
        // Counted by the queue, under its lock.
        if let Err(work) = queue.push(Work::Batch(batch), entities, false) {
            let n = self
                .counters
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            // Freed here rather than by the thread; it never ran user code.
            drop(work);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "X-Ray emitter queue full; dropping segments");
            }
        }
    }

    pub(crate) fn stats(&self) -> EmitterStats {
        let mut stats = self.counters.snapshot();
        if let Some(queue) = &self.queue {
            stats.queued += queue.pushed();
        }
        stats
    }

    /// Waits until everything queued before this call has been sent, or `timeout` passes.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let Some(queue) = &self.queue else {
            // Sent as they were finished, or nothing was ever sent.
            return if self.inline.is_some() || self.counters.queued.load(Ordering::Relaxed) == 0 {
                Ok(())
            } else {
                Err(FlushError::Stopped)
            };
        };
        // Elapsed time against the timeout, rather than a deadline: `Duration::MAX` ("wait as
        // long as it takes") is past what an `Instant` can hold.
        let started = Instant::now();
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let mut msg = Work::Flush(ack_tx, started.checked_add(timeout));
        loop {
            match queue.push(msg, 0, true) {
                Ok(()) => break,
                Err(_) if queue.is_closed() => return Err(FlushError::Stopped),
                Err(m) => {
                    if started.elapsed() >= timeout {
                        return Err(FlushError::Timeout {
                            pending: self.stats().pending(),
                        });
                    }
                    thread::sleep(Duration::from_millis(1));
                    msg = m;
                }
            }
        }
        let remaining = timeout.saturating_sub(started.elapsed());
        ack_rx
            .recv_timeout(remaining)
            .map_err(|_| FlushError::Timeout {
                pending: self.stats().pending(),
            })
    }
}

impl Emitter {
    /// Closes the emitter: batches handed over later are counted, not sent, and the thread
    /// exits once it has handled what was queued before (waiting at most `timeout` for room
    /// in a full queue to tell it so).
    pub(crate) fn close(&self, timeout: Duration) {
        self.closed.store(true, Ordering::Relaxed);
        let Some(queue) = &self.queue else {
            return;
        };
        let started = Instant::now();
        let mut msg = Work::Stop;
        while let Err(m) = queue.push(msg, 0, true) {
            if started.elapsed() >= timeout {
                // No room to say it in time: the thread stops once the queue is drained.
                queue.close();
                return;
            }
            thread::sleep(Duration::from_millis(1));
            msg = m;
        }
    }
}

impl Drop for Emitter {
    /// The thread finishes what is queued, sends what its exporter holds, and exits.
    fn drop(&mut self) {
        if let Some(queue) = &self.queue {
            queue.close();
        }
    }
}

/// How long the emitter thread lingers after it last had work, at most, sleeping with a
/// timeout that producers do not cut short: traces that end meanwhile wait in the queue (at
/// most this long; the daemon itself waits up to a second to upload) instead of each waking
/// the thread, a system call on the request thread. Early wake-ups still come for a flush, a
/// stop, or once half the queue is full. A linger that passes with nothing queued ends in a
/// sleep without timeout, so an idle recorder costs no wake-ups.
const LINGER: Duration = Duration::from_millis(50);

/// The shortest linger. Under load the thread shortens its linger (halving it, down to this)
/// while its timer finds more traces than half the buffer pool holds, and lengthens it again
/// (doubling, up to [`LINGER`]) when it finds few: its own timer then collects the traces
/// often enough that their buffers go back to the pool before new traces need them, and no
/// producer has to wake it.
const MIN_LINGER: Duration = Duration::from_millis(5);

/// The emitter thread: sleeps until work arrives (or until the exporter's buffered work is
/// due, or a linger after recent work ends), exits when the emitter is dropped or told to
/// stop, after what was queued before.
fn run(queue: &Queue<Work>, counters: &Counters, exporter: &mut dyn Exporter) {
    /// Closes the queue when the thread ends, however it ends: what is pushed later is
    /// refused at once (a flush then reports the thread stopped) instead of waiting.
    struct CloseOnExit<'a>(&'a Queue<Work>);
    impl Drop for CloseOnExit<'_> {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _close = CloseOnExit(queue);
    let mut taken = std::collections::VecDeque::new();
    // Until when the thread lingers after its last work, woken by a timer rather than by
    // each trace, and for how long it lingers (see LINGER).
    let mut linger: Option<Instant> = None;
    let mut linger_for = LINGER;
    loop {
        let flush_due = exporter.flush_due();
        let (due, wake_after) = match (flush_due, linger) {
            (Some(d), l) => (Some(l.map_or(d, |l| l.min(d))), exporter.wake_after()),
            (None, Some(l)) => (Some(l), usize::MAX),
            (None, None) => (None, 1),
        };
        match queue.take_all(&mut taken, due, wake_after) {
            Taken::Items => {
                // Traces collected without a flush or a stop among them (those come early).
                if taken.iter().all(|w| matches!(w, Work::Batch(_))) {
                    linger_for = adapt_linger(linger_for, taken.len());
                }
                while let Some(work) = taken.pop_front() {
                    match work {
                        Work::Batch(batch) => {
                            exporter.export(&batch);
                            batch.recycle();
                            counters.processed.fetch_add(1, Ordering::Relaxed);
                        }
                        Work::Flush(ack, deadline) => {
                            exporter.flush(deadline);
                            let _ = ack.try_send(());
                        }
                        Work::Stop => {
                            exporter.flush(None);
                            return;
                        }
                    }
                }
                linger = Some(Instant::now() + linger_for);
            }
            Taken::Due => {
                let now = Instant::now();
                if exporter.flush_due().is_some_and(|d| d <= now) {
                    exporter.flush(None);
                }
                if linger.is_some_and(|l| l <= now) {
                    linger = None;
                }
            }
            Taken::Closed => break,
        }
    }
    exporter.flush(None);
}

/// The next linger after one that collected `collected` traces (see [`MIN_LINGER`]).
fn adapt_linger(linger: Duration, collected: usize) -> Duration {
    let pool = crate::trace::pool::MAX_KEPT;
    if collected > pool / 2 {
        (linger / 2).max(MIN_LINGER)
    } else if collected < pool / 16 {
        (linger * 2).min(LINGER)
    } else {
        linger
    }
}

/// Where a trace's finished batches go: the emitter, and the setting the arena needs.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) emitter: Emitter,
    /// Completed subsegments a segment holds before they are streamed ahead of it.
    pub(crate) streaming_threshold: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The linger halves while the timer finds more than half the pool's worth of traces,
    /// within 5 to 50 ms, and grows back when it finds few.
    #[test]
    fn the_linger_follows_the_load() {
        let mut linger = LINGER;
        for _ in 0..10 {
            linger = adapt_linger(linger, 200);
        }
        assert_eq!(linger, MIN_LINGER);
        assert_eq!(
            adapt_linger(Duration::from_millis(20), 100),
            Duration::from_millis(20)
        );
        for _ in 0..10 {
            linger = adapt_linger(linger, 3);
        }
        assert_eq!(linger, LINGER);
    }
}
