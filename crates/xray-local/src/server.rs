//! Starting and stopping the listeners, and the shared state behind them.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::document::Node;
use crate::intake::{self, IntakeCounters, Reject};
use crate::sampling::{self, Sampler};
use crate::store::{Outcome, Store};
use crate::validate::{self, Problem};

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

/// Shared state: the store, the sampler and the counters.
#[derive(Debug)]
pub struct App {
    /// The configuration the server was started with.
    pub config: Config,
    /// Intake counters.
    pub intake: IntakeCounters,
    store: Mutex<Store>,
    sampler: Mutex<Sampler>,
    started_at: f64,
    udp_recv_buffer: usize,
    udp_addr: SocketAddr,
}

/// Current Unix time in seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the store half-updated in a
    // way that matters for a local debugging tool; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    /// State for `config`, with the sampling rules already loaded.
    pub fn new(config: Config, rules: Vec<sampling::Rule>) -> Self {
        let now = unix_now();
        Self {
            store: Mutex::new(Store::new(config.max_traces, config.max_bytes)),
            sampler: Mutex::new(Sampler::new(rules, now)),
            intake: IntakeCounters::default(),
            started_at: now,
            udp_recv_buffer: 0,
            udp_addr: config.udp,
            config,
        }
    }

    /// Locks the trace store.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Locks the sampler.
    pub fn sampler(&self) -> MutexGuard<'_, Sampler> {
        lock(&self.sampler)
    }

    /// When the server started, Unix seconds.
    pub fn started_at(&self) -> f64 {
        self.started_at
    }

    /// The UDP receive buffer size the kernel granted, in bytes.
    pub fn udp_recv_buffer(&self) -> usize {
        self.udp_recv_buffer
    }

    /// The UDP address segments are received on (the bound one, once the
    /// server runs: the configured port may be 0).
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// Runs the full intake path on one datagram, counting the outcome.
    pub fn ingest_datagram(&self, datagram: &[u8]) -> Result<Outcome, Reject> {
        self.intake.record_received(datagram.len());
        let result = intake::split_datagram(datagram).and_then(|body| {
            let epoch = unix_now();
            let (node, raw, problems) = prepare(body, epoch as i64)?;
            Ok(self
                .store()
                .ingest(node, raw, problems, epoch, Instant::now()))
        });
        match &result {
            Ok(_) => self.intake.record_accepted(),
            Err(r) => self.intake.record_rejected(*r),
        }
        result
    }

    /// Parses and validates a batch of bodies, then stores them under one
    /// lock. `ready` is scratch space, empty on return.
    fn ingest_bodies<'b>(&self, bodies: impl Iterator<Item = &'b [u8]>, ready: &mut Vec<Prepared>) {
        let epoch = unix_now();
        for body in bodies {
            match prepare(body, epoch as i64) {
                Ok(doc) => ready.push(doc),
                Err(r) => self.intake.record_rejected(r),
            }
        }
        if ready.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut store = self.store();
        for (node, raw, problems) in ready.drain(..) {
            store.ingest(node, raw, problems, epoch, now);
            self.intake.record_accepted();
        }
    }
}

type Prepared = (Node, Arc<str>, Vec<Problem>);

/// Parses and validates a body; counts nothing.
fn prepare(body: &[u8], now: i64) -> Result<Prepared, Reject> {
    let Ok(raw) = std::str::from_utf8(body) else {
        // Not JSON text either way; parse_body finds out why.
        return Err(intake::parse_body(body)
            .err()
            .unwrap_or(Reject::InvalidJson));
    };
    let node = intake::parse_str(raw)?;
    let problems = validate::check_node(&node, body.len(), now);
    Ok((node, Arc::from(raw), problems))
}

/// Datagram bodies handed from the receive task to the ingest thread in one
/// piece: one buffer for all bodies, plus where each ends.
#[derive(Debug, Default)]
struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn push(&mut self, body: &[u8]) {
        self.data.extend_from_slice(body);
        self.ends.push(self.data.len());
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
    }

    fn bodies(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, end)| &self.data[start..*end])
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

/// A listener that could not be started.
#[derive(Debug)]
pub struct StartError {
    /// What was being set up.
    pub what: String,
    /// The underlying error.
    pub source: io::Error,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
    let what = what.into();
    move |source| StartError { what, source }
}

/// A running xray-local: UDP intake, sampling API and UI.
#[derive(Debug)]
pub struct Server {
    app: Arc<App>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    ui_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    ingest_thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds every listener and starts serving. Must be called inside a
    /// multi-threaded Tokio runtime.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let rules = match &config.rules {
            None => sampling::default_rules(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(err(format!("reading rules file {}", path.display())))?;
                sampling::parse_rules(&text).map_err(|e| StartError {
                    what: format!("rules file {}", path.display()),
                    source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                })?
            }
        };
        let (udp, granted) = bind_udp(config.udp).map_err(err(format!("UDP {}", config.udp)))?;
        let tcp = TcpListener::bind(config.tcp)
            .await
            .map_err(err(format!("TCP {}", config.tcp)))?;
        let ui = TcpListener::bind(config.ui)
            .await
            .map_err(err(format!("UI {}", config.ui)))?;
        let forward = match config.forward {
            None => None,
            Some(to) => {
                let local: SocketAddr = if to.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let s = UdpSocket::bind(local)
                    .await
                    .map_err(err("forwarding socket"))?;
                Some((s, to))
            }
        };
        let addrs = (
            udp.local_addr().map_err(err("UDP address"))?,
            tcp.local_addr().map_err(err("TCP address"))?,
            ui.local_addr().map_err(err("UI address"))?,
        );
        let mut app = App::new(config, rules);
        app.udp_recv_buffer = granted;
        app.udp_addr = addrs.0;
        let app = Arc::new(app);
        let (stop, stopped) = watch::channel(false);
        let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
        let queue = Arc::new(Queue {
            pending: AtomicUsize::new(0),
            spare: Mutex::new(Vec::new()),
        });
        let ingest_thread = {
            let (app, queue) = (app.clone(), queue.clone());
            std::thread::Builder::new()
                .name("xray-local-ingest".into())
                .spawn(move || ingest(rx, &app, &queue))
                .map_err(err("ingest thread"))?
        };
        let tasks = vec![
            tokio::spawn(receive(udp, forward, app.clone(), tx, queue)),
            tokio::spawn(settle(app.clone())),
            tokio::spawn(serve(
                tcp,
                crate::api::sampling_router(app.clone()),
                stopped.clone(),
            )),
            tokio::spawn(serve(ui, crate::api::ui_router(app.clone()), stopped)),
        ];
        Ok(Self {
            app,
            udp_addr: addrs.0,
            tcp_addr: addrs.1,
            ui_addr: addrs.2,
            stop,
            tasks,
            ingest_thread: Some(ingest_thread),
        })
    }

    /// The bound UDP intake address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The bound sampling API address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The bound UI / JSON API address.
    pub fn ui_addr(&self) -> SocketAddr {
        self.ui_addr
    }

    /// The shared state.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops every task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        // The receive task is gone, so the ingest thread sees its channel
        // close once it has stored what was queued.
        if let Some(t) = self.ingest_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn bind_udp(addr: SocketAddr) -> io::Result<(UdpSocket, usize)> {
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
        let n = match udp.try_recv_from(buf) {
            Ok((n, _)) => n,
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
        batch.push(body);
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

async fn settle(app: Arc<App>) {
    let every = app
        .config
        .settle
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        app.store().settle(Instant::now(), app.config.settle);
    }
}

async fn serve(listener: TcpListener, router: axum::Router, mut stopped: watch::Receiver<bool>) {
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
}
