//! Starting and stopping the listeners, and the shared state behind them.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::intake::{self, IntakeCounters, Reject};
use crate::sampling::{self, Sampler};
use crate::store::{Outcome, Store};
use crate::validate;

/// Receive buffer requested for the UDP socket (the kernel may cap it).
const UDP_RECV_BUFFER: usize = 8 * 1024 * 1024;
/// Datagrams waiting between the receive task and the store.
const QUEUE_CAPACITY: usize = 32 * 1024;
/// Datagrams moved into the store under one lock.
const INGEST_BATCH: usize = 512;

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

    /// Runs the full intake path on one datagram, counting the outcome.
    pub fn ingest_datagram(&self, datagram: &[u8]) -> Result<Outcome, Reject> {
        self.intake.record_received(datagram.len());
        let result = intake::split_datagram(datagram).and_then(|body| {
            let doc = self.prepare(body)?;
            Ok(self
                .store()
                .ingest(doc.0, doc.1, doc.2, unix_now(), Instant::now()))
        });
        match &result {
            Ok(_) => self.intake.record_accepted(),
            Err(r) => self.intake.record_rejected(*r),
        }
        result
    }

    /// Parses and validates a body; counts nothing.
    fn prepare(&self, body: &[u8]) -> Result<Prepared, Reject> {
        let map = intake::parse_body(body)?;
        let problems = validate::check_document(&map, body.len(), unix_now() as i64);
        // The body parsed as JSON, so it is UTF-8.
        let raw = String::from_utf8_lossy(body).into_owned();
        Ok((map, raw, problems))
    }

    /// Parses and stores a batch of bodies under one lock.
    fn ingest_bodies(&self, bodies: &[Vec<u8>]) {
        let mut ready = Vec::with_capacity(bodies.len());
        for body in bodies {
            match self.prepare(body) {
                Ok(doc) => ready.push(doc),
                Err(r) => self.intake.record_rejected(r),
            }
        }
        if ready.is_empty() {
            return;
        }
        let (epoch, now) = (unix_now(), Instant::now());
        let mut store = self.store();
        for (map, raw, problems) in ready {
            store.ingest(map, raw, problems, epoch, now);
            self.intake.record_accepted();
        }
    }
}

type Prepared = (Map<String, Value>, String, Vec<validate::Problem>);

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
        let app = Arc::new(app);
        let (stop, stopped) = watch::channel(false);
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let tasks = vec![
            tokio::spawn(receive(udp, forward, app.clone(), tx)),
            tokio::spawn(ingest(rx, app.clone())),
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
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
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

/// Drains the socket as fast as possible; parsing happens in [`ingest`].
async fn receive(
    udp: UdpSocket,
    forward: Option<(UdpSocket, SocketAddr)>,
    app: Arc<App>,
    tx: mpsc::Sender<Vec<u8>>,
) {
    // One byte more than the daemon reads, to tell "oversized" apart.
    let mut buf = vec![0u8; intake::MAX_DATAGRAM + 1];
    loop {
        let n = match udp.recv_from(&mut buf).await {
            Ok((n, _)) => n,
            // ICMP errors and the like: keep reading, without spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let datagram = &buf[..n];
        app.intake.record_received(n);
        let body = match intake::split_datagram(datagram) {
            Ok(body) => body,
            Err(r) => {
                app.intake.record_rejected(r);
                continue;
            }
        };
        if let Some((sock, to)) = &forward {
            app.intake
                .record_forward(sock.try_send_to(datagram, *to).is_ok());
        }
        if tx.try_send(body.to_vec()).is_err() {
            app.intake.record_rejected(Reject::QueueFull);
        }
    }
}

async fn ingest(mut rx: mpsc::Receiver<Vec<u8>>, app: Arc<App>) {
    let mut batch = Vec::with_capacity(INGEST_BATCH);
    while rx.recv_many(&mut batch, INGEST_BATCH).await > 0 {
        let app2 = app.clone();
        let bodies = std::mem::take(&mut batch);
        // JSON parsing is CPU work; keep it off the receive task's thread.
        let _ = tokio::task::spawn_blocking(move || app2.ingest_bodies(&bodies)).await;
        batch = Vec::with_capacity(INGEST_BATCH);
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
