//! The emitter: a bounded queue in front of one background thread that serializes documents
//! and sends them to the daemon over UDP.
//!
//! The request path only moves a finished segment into the queue with `try_send`: it never
//! blocks, never allocates for emission and never makes a system call (the worker polls the
//! queue with a short, backing-off sleep instead of being woken per document). A full queue
//! drops the new segment and counts it. The worker turns each segment into datagrams of at
//! most [`MAX_DATAGRAM_SIZE`] bytes (the header line plus one document), streaming children
//! as independent subsegments when a document is too large. Send failures (no daemon, an
//! unresolvable name, ECONNREFUSED from an ICMP "port unreachable", a full socket buffer) are
//! counted and never stop later sends.

pub(crate) mod serialize;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::config::Endpoint;
use crate::plugins::Resources;
use crate::segment::Batch;

/// The line every datagram starts with.
pub const DAEMON_HEADER: &[u8] = b"{\"format\":\"json\",\"version\":1}\n";

/// Largest datagram sent, header included. The daemon reads 64 KiB per datagram; this keeps a
/// margin below it (the Java SDK's limit) and below the 65,507-byte IPv4 UDP payload limit.
pub const MAX_DATAGRAM_SIZE: usize = 63 * 1024;

const MIN_IDLE_SLEEP: Duration = Duration::from_micros(500);
const MAX_IDLE_SLEEP: Duration = Duration::from_millis(20);
const RESOLVE_RETRY: Duration = Duration::from_secs(1);

/// Counters of the emitter, all since the recorder was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmitterStats {
    /// Segments (or streamed groups of subsegments) accepted into the queue.
    pub queued: u64,
    /// Segments dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Datagrams handed to the operating system.
    pub sent: u64,
    /// Documents dropped because they exceeded the size limit even on their own, without
    /// children and metadata.
    pub dropped_too_large: u64,
    /// Documents whose metadata was removed so they would fit the size limit.
    pub truncated: u64,
    /// Datagrams that could not be sent (daemon address unresolvable, socket errors).
    pub send_errors: u64,
    /// Queued items the worker has finished with.
    pub processed: u64,
}

impl EmitterStats {
    /// Items queued but not yet processed.
    pub fn pending(&self) -> u64 {
        self.queued.saturating_sub(self.processed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    queued: AtomicU64,
    dropped_queue_full: AtomicU64,
    sent: AtomicU64,
    dropped_too_large: AtomicU64,
    truncated: AtomicU64,
    send_errors: AtomicU64,
    processed: AtomicU64,
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

/// Support for the crate's benchmarks; not part of the public API.
#[doc(hidden)]
pub mod bench_support {
    use super::serialize;
    use crate::id::{EntityId, TraceId};
    use crate::plugins::Resources;
    use crate::segment::{Batch, EntityData, EntityState, NO_PARENT};

    /// A finished segment ready for serialization.
    pub struct SampleBatch(Batch);

    impl SampleBatch {
        /// A segment with `subsegments` children, each with an http block and an annotation.
        pub fn new(subsegments: usize) -> Self {
            let mut entities = Vec::new();
            let root = EntityId::new();
            for i in 0..=subsegments {
                let mut e = EntityData::bench(
                    if i == 0 { root } else { EntityId::new() },
                    if i == 0 { NO_PARENT } else { 0 },
                    if i == 0 { None } else { Some(root) },
                );
                e.state = EntityState::Ended;
                entities.push(e);
            }
            SampleBatch(Batch {
                trace_id: TraceId::new(),
                entities,
                is_segment: true,
                rule_name: None,
            })
        }

        /// Serializes into `buf` (cleared first); returns the number of datagrams.
        pub fn serialize(&self, buf: &mut Vec<u8>, scratch: &mut Scratch) -> usize {
            buf.clear();
            let resources = Resources::default();
            let env = serialize::Env {
                resources: &resources,
                service_version: None,
            };
            let mut n = 0;
            serialize::documents(&self.0, &env, &mut scratch.0, buf, &mut |_| n += 1);
            n
        }
    }

    /// Reusable serializer buffers.
    #[derive(Default)]
    pub struct Scratch(serialize::Scratch);
}

enum Work {
    Batch(Batch),
    Flush(SyncSender<()>),
}

pub(crate) struct Emitter {
    tx: Option<SyncSender<Work>>,
    worker: Option<Thread>,
    counters: Arc<Counters>,
}

impl Emitter {
    pub(crate) fn start(
        endpoint: Endpoint,
        capacity: usize,
        resources: Arc<Resources>,
        service_version: Option<String>,
        enabled: bool,
    ) -> Emitter {
        let counters = Arc::new(Counters::default());
        if !enabled {
            return Emitter {
                tx: None,
                worker: None,
                counters,
            };
        }
        let (tx, rx) = mpsc::sync_channel(capacity);
        let worker_counters = Arc::clone(&counters);
        let spawned = thread::Builder::new()
            .name("xray-emitter".into())
            .spawn(move || {
                Worker::new(endpoint, worker_counters, resources, service_version).run(rx);
            });
        match spawned {
            Ok(handle) => Emitter {
                tx: Some(tx),
                worker: Some(handle.thread().clone()),
                counters,
            },
            Err(e) => {
                tracing::error!(error = %e, "could not start the X-Ray emitter thread; nothing will be sent");
                Emitter {
                    tx: None,
                    worker: None,
                    counters,
                }
            }
        }
    }

    /// Queues a batch without blocking; counts it as dropped when the queue is full.
    pub(crate) fn submit(&self, batch: Batch) {
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(Work::Batch(batch)) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self
                    .counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "X-Ray emitter queue full; dropping segments");
                }
            }
        }
    }

    pub(crate) fn stats(&self) -> EmitterStats {
        self.counters.snapshot()
    }

    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let (Some(tx), Some(worker)) = (&self.tx, &self.worker) else {
            return if self.counters.queued.load(Ordering::Relaxed) == 0 {
                Ok(())
            } else {
                Err(FlushError::Stopped)
            };
        };
        // Elapsed time against the timeout, rather than a deadline: `Duration::MAX` ("wait as
        // long as it takes") is past what an `Instant` can hold.
        let started = Instant::now();
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let mut msg = Work::Flush(ack_tx);
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) => {
                    worker.unpark();
                    if started.elapsed() >= timeout {
                        return Err(FlushError::Timeout {
                            pending: self.stats().pending(),
                        });
                    }
                    thread::sleep(Duration::from_millis(1));
                    msg = m;
                }
                Err(TrySendError::Disconnected(_)) => return Err(FlushError::Stopped),
            }
        }
        worker.unpark();
        let remaining = timeout.saturating_sub(started.elapsed());
        ack_rx
            .recv_timeout(remaining)
            .map_err(|_| FlushError::Timeout {
                pending: self.stats().pending(),
            })
    }
}

struct Worker {
    endpoint: Endpoint,
    counters: Arc<Counters>,
    resources: Arc<Resources>,
    service_version: Option<String>,
    socket: Option<UdpSocket>,
    target: Option<SocketAddr>,
    next_resolve: Instant,
    buf: Vec<u8>,
    scratch: serialize::Scratch,
}

impl Worker {
    fn new(
        endpoint: Endpoint,
        counters: Arc<Counters>,
        resources: Arc<Resources>,
        service_version: Option<String>,
    ) -> Self {
        Worker {
            endpoint,
            counters,
            resources,
            service_version,
            socket: None,
            target: None,
            next_resolve: Instant::now(),
            buf: Vec::with_capacity(MAX_DATAGRAM_SIZE),
            scratch: serialize::Scratch::default(),
        }
    }

    fn run(mut self, rx: Receiver<Work>) {
        let mut idle = MIN_IDLE_SLEEP;
        loop {
            match rx.try_recv() {
                Ok(Work::Batch(batch)) => {
                    self.emit(&batch);
                    self.counters.processed.fetch_add(1, Ordering::Relaxed);
                    idle = MIN_IDLE_SLEEP;
                }
                Ok(Work::Flush(ack)) => {
                    let _ = ack.try_send(());
                }
                Err(TryRecvError::Empty) => {
                    thread::park_timeout(idle);
                    idle = (idle * 2).min(MAX_IDLE_SLEEP);
                }
                Err(TryRecvError::Disconnected) => return,
            }
        }
    }

    fn emit(&mut self, batch: &Batch) {
        let mut out = std::mem::take(&mut self.scratch.out);
        out.clear();
        serialize::documents(
            batch,
            &serialize::Env {
                resources: &self.resources,
                service_version: self.service_version.as_deref(),
            },
            &mut self.scratch,
            &mut self.buf,
            &mut |outcome| out.push(outcome),
        );
        for outcome in out.drain(..) {
            match outcome {
                serialize::Outcome::Datagram {
                    start,
                    end,
                    truncated,
                } => {
                    if truncated {
                        self.counters.truncated.fetch_add(1, Ordering::Relaxed);
                    }
                    let range = start..end;
                    self.send(range);
                }
                serialize::Outcome::TooLarge => {
                    let n = self
                        .counters
                        .dropped_too_large
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(
                            dropped = n,
                            "X-Ray document over 64 KiB even without children and metadata and with its cause cut short; dropped"
                        );
                    }
                }
            }
        }
        self.scratch.out = out;
        self.buf.clear();
    }

    fn resolve(&mut self) -> Option<SocketAddr> {
        if let Some(t) = self.target {
            return Some(t);
        }
        let now = Instant::now();
        if now < self.next_resolve {
            return None;
        }
        self.next_resolve = now + RESOLVE_RETRY;
        let resolved = (self.endpoint.host.as_str(), self.endpoint.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut it| it.next());
        match resolved {
            Some(addr) => {
                let bind: SocketAddr = if addr.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                // A connected socket skips the route lookup on every send. The kernel then
                // reports an ICMP "port unreachable" as ECONNREFUSED on a later send, which
                // is counted like any send error and does not stop the sends after it.
                match UdpSocket::bind(bind).and_then(|sock| sock.connect(addr).map(|()| sock)) {
                    Ok(sock) => {
                        let _ = sock.set_write_timeout(Some(Duration::from_millis(200)));
                        self.socket = Some(sock);
                        self.target = Some(addr);
                        Some(addr)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open a UDP socket for X-Ray");
                        None
                    }
                }
            }
            None => {
                tracing::warn!(address = %self.endpoint, "cannot resolve the X-Ray daemon address; will retry");
                None
            }
        }
    }

    fn send(&mut self, range: std::ops::Range<usize>) {
        if self.resolve().is_none() {
            self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(sock) = &self.socket else {
            self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(data) = self.buf.get(range) else {
            return;
        };
        match sock.send(data) {
            Ok(_) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let n = self.counters.send_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, errors = n, "sending to the X-Ray daemon failed");
                }
                // A host name may now point elsewhere: resolve (and connect) again later. A
                // refused port is reported once per ICMP message; the next send goes out.
                if e.kind() != std::io::ErrorKind::ConnectionRefused
                    && self.endpoint.host.parse::<std::net::IpAddr>().is_err()
                {
                    self.target = None;
                }
            }
        }
    }
}
