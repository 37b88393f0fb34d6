//! The daemon's segment intake: UDP datagrams, read as fast as they come,
//! handed over in batches to an ingest thread that parses, checks and
//! stores them (`App::ingest_bodies`). Datagrams carrying OTLP spans
//! (`T1S`/`T1U`, as Lambda's daemon takes them) share the socket, the queue
//! and the ingest thread.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::intake::{self, Reject};
use crate::state::{App, lock};

/// Receive buffer requested for the UDP socket (the kernel may cap it).
const UDP_RECV_BUFFER: usize = 8 * 1024 * 1024;
/// Bytes of datagram bodies that may wait between the receive task and the
/// ingest thread; beyond this, datagrams are counted as `queue_full`.
const QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Batches that may wait (a bound for many tiny batches at low rates).
const QUEUE_BATCHES: usize = 4096;
/// A batch is handed over once it holds this many datagrams or bytes, or
/// when the socket has nothing more to read.
const BATCH_DATAGRAMS: usize = 256;
const BATCH_BYTES: usize = 256 * 1024;
/// Empty batch buffers kept for reuse.
const SPARE_BATCHES: usize = 8;
/// Pause between reads while datagrams keep arriving.
const BUSY_NAP: Duration = Duration::from_millis(1);

/// Datagram bodies handed from the receive task to the ingest thread in one
/// piece: one buffer for all bodies, plus where each ends.
#[derive(Debug, Default)]
struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
    /// Where each body came from.
    from: Vec<SocketAddr>,
}

impl Batch {
    fn push(&mut self, body: &[u8], from: SocketAddr) {
        self.data.extend_from_slice(body);
        self.ends.push(self.data.len());
        self.from.push(from);
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn is_full(&self) -> bool {
        self.ends.len() >= BATCH_DATAGRAMS || self.data.len() >= BATCH_BYTES
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.from.clear();
    }

    fn bodies(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .zip(&self.from)
            .map(|((start, end), from)| (&self.data[start..*end], Some(*from)))
    }
}

/// The bounded hand-over between the receive task and the ingest thread.
#[derive(Debug)]
struct Queue {
    /// Body bytes sent and not yet stored.
    pending: AtomicUsize,
    /// Emptied batches, for reuse.
    spare: Mutex<Vec<Batch>>,
}

impl Queue {
    fn take_spare(&self) -> Batch {
        // New batches grow as needed, so a trickle of datagrams (many small
        // batches) does not pin large buffers.
        lock(&self.spare).pop().unwrap_or_default()
    }

    fn give_back(&self, mut batch: Batch) {
        batch.clear();
        let mut spare = lock(&self.spare);
        if spare.len() < SPARE_BATCHES {
            spare.push(batch);
        }
    }
}

/// Binds the segment socket with a large receive buffer; returns it and
/// the buffer size the kernel granted.
pub fn bind(addr: SocketAddr) -> io::Result<(UdpSocket, usize)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps this at net.core.rmem_max.
    let _ = sock.set_recv_buffer_size(UDP_RECV_BUFFER);
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    let granted = sock.recv_buffer_size().unwrap_or(0);
    let std_sock: std::net::UdpSocket = sock.into();
    Ok((UdpSocket::from_std(std_sock)?, granted))
}

/// Drains the socket as fast as possible and hands the bodies over in
/// batches; parsing happens on the ingest thread.
async fn receive(
    udp: UdpSocket,
    forward: Option<(UdpSocket, SocketAddr)>,
    app: Arc<App>,
    tx: SyncSender<Batch>,
    queue: Arc<Queue>,
) {
    // One byte more than the daemon reads, to tell "oversized" apart.
    let mut buf = vec![0u8; intake::MAX_DATAGRAM + 1];
    let mut batch = queue.take_spare();
    loop {
        if udp.readable().await.is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        // While datagrams keep coming, read what is there, hand it over and
        // nap briefly instead of waking up for every single datagram (the
        // socket buffer holds far more than a nap's worth); once a read
        // finds nothing, go back to waiting for readiness.
        loop {
            let (read, drained) = drain(&udp, &mut buf, &mut batch, forward.as_ref(), &app, &queue);
            if batch.len() > 0 {
                let next = queue.take_spare();
                hand_over(std::mem::replace(&mut batch, next), &tx, &queue, &app);
            }
            match drained {
                Drained::Full => tokio::task::yield_now().await,
                Drained::Empty if read > 0 => tokio::time::sleep(BUSY_NAP).await,
                Drained::Empty => break,
                // ICMP errors and the like: keep reading, without spinning.
                Drained::Failed => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    break;
                }
            }
        }
    }
}

/// Why [`drain`] stopped.
enum Drained {
    /// The batch is full.
    Full,
    /// The socket has nothing more to read.
    Empty,
    /// Reading failed.
    Failed,
}

/// Reads datagrams until the socket is empty or the batch is full; returns
/// how many were read and why it stopped.
fn drain(
    udp: &UdpSocket,
    buf: &mut [u8],
    batch: &mut Batch,
    forward: Option<&(UdpSocket, SocketAddr)>,
    app: &App,
    queue: &Queue,
) -> (usize, Drained) {
    let mut read = 0;
    while !batch.is_full() {
        let (n, from) = match udp.try_recv_from(buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (read, Drained::Empty),
            Err(_) => return (read, Drained::Failed),
        };
        read += 1;
        let datagram = &buf[..n];
        app.intake.record_received(n);
        let body = match intake::split_datagram(datagram) {
            Ok(body) => body,
            Err(r) => {
                app.intake.record_rejected(r);
                continue;
            }
        };
        if let Some((sock, to)) = forward {
            app.intake
                .record_forward(sock.try_send_to(datagram, *to).is_ok());
        }
        let queued = queue.pending.load(Ordering::Relaxed) + batch.data.len();
        if queued + body.len() > QUEUE_BYTES {
            app.intake.record_rejected(Reject::QueueFull);
            continue;
        }
        batch.push(body, from);
    }
    (read, Drained::Full)
}

fn hand_over(batch: Batch, tx: &SyncSender<Batch>, queue: &Queue, app: &App) {
    let bytes = batch.data.len();
    queue.pending.fetch_add(bytes, Ordering::Relaxed);
    match tx.try_send(batch) {
        Ok(()) => {}
        Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) => {
            queue.pending.fetch_sub(bytes, Ordering::Relaxed);
            for _ in 0..batch.len() {
                app.intake.record_rejected(Reject::QueueFull);
            }
            queue.give_back(batch);
        }
    }
}

/// The ingest thread: parses, validates and stores batches until the receive
/// task goes away.
fn ingest(rx: Receiver<Batch>, app: &App, queue: &Queue) {
    let mut ready = Vec::with_capacity(BATCH_DATAGRAMS);
    while let Ok(batch) = rx.recv() {
        app.ingest_bodies(batch.bodies(), &mut ready);
        queue.pending.fetch_sub(batch.data.len(), Ordering::Relaxed);
        queue.give_back(batch);
    }
}

/// The running intake: the receive task's handle and the ingest thread.
#[derive(Debug)]
pub struct Intake {
    /// The receive task.
    pub task: tokio::task::JoinHandle<()>,
    /// The ingest thread; it ends once the receive task is gone.
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts reading `udp` (forwarding each accepted datagram to `forward`,
/// when set) into `app`.
pub fn start(
    udp: UdpSocket,
    forward: Option<(UdpSocket, SocketAddr)>,
    app: Arc<App>,
) -> io::Result<Intake> {
    let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
    let queue = Arc::new(Queue {
        pending: AtomicUsize::new(0),
        spare: Mutex::new(Vec::new()),
    });
    let thread = {
        let (app, queue) = (app.clone(), queue.clone());
        std::thread::Builder::new()
            .name("xray-local-ingest".into())
            .spawn(move || ingest(rx, &app, &queue))?
    };
    let task = tokio::spawn(receive(udp, forward, app, tx, queue));
    Ok(Intake { task, thread })
}
