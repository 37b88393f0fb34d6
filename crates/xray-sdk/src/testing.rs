//! Test support: a loopback UDP socket standing in for the daemon, capturing every datagram,
//! and a recorder wired to it; and the seeded generator and settings of the bounded fuzz
//! tests. Enabled by the `test-util` feature.
//!
//! ```
//! use std::time::Duration;
//! use xray_sdk::testing::UdpCapture;
//!
//! let capture = UdpCapture::start().unwrap();
//! let recorder = capture.recorder("test-service");
//! recorder.segment("test-service").begin().end();
//! recorder.flush(Duration::from_secs(5)).unwrap();
//! let docs = capture.documents(1, Duration::from_secs(5));
//! assert_eq!(docs[0]["name"], "test-service");
//! ```

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emitter::DAEMON_HEADER;
use crate::plugins::Plugins;
use crate::recorder::Recorder;
use crate::sampling::AlwaysSample;

/// One captured datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The raw bytes, header line included.
    pub bytes: Vec<u8>,
}

impl Datagram {
    /// True when the datagram starts with exactly `{"format":"json","version":1}\n`.
    pub fn has_daemon_header(&self) -> bool {
        self.bytes.starts_with(DAEMON_HEADER)
    }

    /// The document after the header line, parsed (`Value::Null` if it is not JSON).
    pub fn document(&self) -> Value {
        let body = match self.bytes.iter().position(|&b| b == b'\n') {
            Some(i) => &self.bytes[i + 1..],
            None => &self.bytes[..],
        };
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }
}

/// A UDP socket on 127.0.0.1 that collects every datagram it receives on a thread.
#[derive(Debug)]
pub struct UdpCapture {
    addr: SocketAddr,
    rx: Mutex<Receiver<Datagram>>,
    stop: Arc<AtomicBool>,
}

impl UdpCapture {
    /// Binds 127.0.0.1 on a free port and starts collecting.
    pub fn start() -> io::Result<UdpCapture> {
        UdpCapture::bind("127.0.0.1:0".parse().map_err(io::Error::other)?)
    }

    /// Binds the given address and starts collecting (used to reopen a closed port).
    pub fn bind(addr: SocketAddr) -> io::Result<UdpCapture> {
        // A large receive buffer, so bursts are not lost in the kernel while the reader thread
        // waits for a core (the kernel caps it at net.core.rmem_max).
        let raw = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        let _ = raw.set_recv_buffer_size(8 * 1024 * 1024);
        raw.bind(&addr.into())?;
        let socket: UdpSocket = raw.into();
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("xray-udp-capture".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop_thread.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = socket.recv_from(&mut buf)
                        && tx
                            .send(Datagram {
                                bytes: buf[..n].to_vec(),
                            })
                            .is_err()
                    {
                        return;
                    }
                }
            })?;
        Ok(UdpCapture {
            addr,
            rx: Mutex::new(rx),
            stop,
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The address as an `AWS_XRAY_DAEMON_ADDRESS` value.
    pub fn daemon_address(&self) -> String {
        self.addr.to_string()
    }

    /// A recorder that samples everything and sends to this capture (environment ignored,
    /// no plugins, no centralized sampling).
    pub fn recorder(&self, service_name: &'static str) -> Recorder {
        self.recorder_builder(service_name)
            .build()
            .unwrap_or_else(|_| Recorder::disabled())
    }

    /// The builder behind [`UdpCapture::recorder`], to adjust before building.
    pub fn recorder_builder(&self, service_name: &'static str) -> crate::RecorderBuilder {
        Recorder::builder()
            .ignore_env()
            .service_name(service_name)
            .daemon_address(self.daemon_address())
            .sampler(AlwaysSample)
            .centralized_sampling(false)
            .plugins(Plugins::none())
    }

    /// Waits until `n` datagrams have arrived (or `timeout` passes) and returns those that did,
    /// at most `n`; later datagrams stay for the next call.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Datagram> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        let Ok(rx) = self.rx.lock() else {
            return out;
        };
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(d) => out.push(d),
                Err(_) => break,
            }
        }
        out
    }

    /// Like [`UdpCapture::wait_for`], returning the parsed documents.
    pub fn documents(&self, n: usize, timeout: Duration) -> Vec<Value> {
        self.wait_for(n, timeout)
            .iter()
            .map(Datagram::document)
            .collect()
    }

    /// The documents of [`UdpCapture::drain`], parsed.
    pub fn drain_documents(&self, quiet: Duration) -> Vec<Value> {
        self.drain(quiet).iter().map(Datagram::document).collect()
    }

    /// Everything that arrived within `quiet` of the last datagram (no fixed count).
    pub fn drain(&self, quiet: Duration) -> Vec<Datagram> {
        let mut out = Vec::new();
        let Ok(rx) = self.rx.lock() else {
            return out;
        };
        while let Ok(d) = rx.recv_timeout(quiet) {
            out.push(d);
        }
        out
    }
}

impl Drop for UdpCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Every document of a trace, found by walking the embedded `subsegments` arrays and the
/// independent subsegment documents: returns `(id, parent id, document)` for each entity.
pub fn flatten(documents: &[Value]) -> Vec<(String, Option<String>, Value)> {
    fn walk(doc: &Value, parent: Option<String>, out: &mut Vec<(String, Option<String>, Value)>) {
        let id = doc["id"].as_str().unwrap_or_default().to_owned();
        let parent = doc["parent_id"].as_str().map(str::to_owned).or(parent);
        if let Some(subs) = doc["subsegments"].as_array() {
            for s in subs {
                walk(s, Some(id.clone()), out);
            }
        }
        out.push((id, parent, doc.clone()));
    }
    let mut out = Vec::new();
    for d in documents {
        walk(d, None, &mut out);
    }
    out
}

/// A small seeded generator for the bounded fuzz tests (xorshift64*): deterministic, so a
/// failure replays from the seed the test prints.
///
/// ```
/// use xray_sdk::testing::FuzzRng;
///
/// let mut a = FuzzRng::new(7);
/// let mut b = FuzzRng::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// assert_eq!(a.below(0), 0);
/// ```
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct FuzzRng(u64);

impl FuzzRng {
    /// A generator started from `seed` (any value; zero is made odd).
    pub fn new(seed: u64) -> Self {
        FuzzRng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0, without drawing).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            // The remainder is below `n`, so it fits in `usize`.
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True once in `one_in` draws, on average.
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// How much a bounded fuzz test runs, and from which seed.
///
/// By default a fixed number of inputs (the test's own count, or `XRAY_FUZZ_RUNS`) from a
/// fixed seed (the test's own, or `XRAY_FUZZ_SEED`): the same inputs are checked on every
/// machine, however fast. `XRAY_FUZZ_SECS` (0.1 to 3600) runs for that long instead, for
/// longer runs that try more inputs than the count.
///
/// ```
/// use xray_sdk::testing::fuzz_budget;
///
/// let budget = fuzz_budget(7, 1_000);
/// let mut runs = 0;
/// while budget.more(runs) {
///     runs += 1;
/// }
/// # if std::env::var_os("XRAY_FUZZ_SECS").is_none() && std::env::var_os("XRAY_FUZZ_RUNS").is_none() {
/// assert_eq!(runs, 1_000);
/// # }
/// ```
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct FuzzBudget {
    /// The seed of the test's generator.
    pub seed: u64,
    limit: FuzzLimit,
    started: Instant,
}

#[derive(Debug, Clone, Copy)]
enum FuzzLimit {
    Runs(u64),
    Time(Duration),
}

/// The budget of a fuzz test: `default_runs` inputs from `default_seed`, unless the
/// environment says otherwise (see [`FuzzBudget`]).
#[doc(hidden)]
pub fn fuzz_budget(default_seed: u64, default_runs: u64) -> FuzzBudget {
    let var = |name: &str| std::env::var(name).ok();
    let seed = var("XRAY_FUZZ_SEED")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default_seed);
    let secs = var("XRAY_FUZZ_SECS")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite());
    let limit = match secs {
        Some(secs) => FuzzLimit::Time(Duration::from_secs_f64(secs.clamp(0.1, 3600.0))),
        None => FuzzLimit::Runs(
            var("XRAY_FUZZ_RUNS")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default_runs),
        ),
    };
    FuzzBudget {
        seed,
        limit,
        started: Instant::now(),
    }
}

impl FuzzBudget {
    /// Whether to try another input after `runs` of them.
    pub fn more(&self, runs: u64) -> bool {
        match self.limit {
            FuzzLimit::Runs(n) => runs < n,
            FuzzLimit::Time(t) => self.started.elapsed() < t,
        }
    }

    /// The same budget with its count scaled by `part` (e.g. per worker), at least 1; a
    /// time budget is kept as it is.
    pub fn share(&self, part: f64) -> FuzzBudget {
        let mut shared = *self;
        if let FuzzLimit::Runs(n) = self.limit {
            shared.limit = FuzzLimit::Runs(((n as f64 * part) as u64).max(1));
        }
        shared
    }

    /// True when the budget is a fixed count (the default), false for a time budget.
    pub fn is_fixed(&self) -> bool {
        matches!(self.limit, FuzzLimit::Runs(_))
    }
}

impl std::fmt::Display for FuzzBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.limit {
            FuzzLimit::Runs(n) => write!(f, "{n} inputs, XRAY_FUZZ_SEED={}", self.seed),
            FuzzLimit::Time(t) => write!(
                f,
                "XRAY_FUZZ_SECS={}, XRAY_FUZZ_SEED={}",
                t.as_secs_f64(),
                self.seed
            ),
        }
    }
}

/// The request IDs of [`RecordedSegment::w2`]'s three calls, as DynamoDB returns them.
const W2_REQUEST_IDS: [&str; 3] = [
    "V4KL2QAGFH8IL1L7S5N2S8HUGRVV4KQNSO5AEMVJF66Q9ASUAAJG",
    "8NQ2P0V6CL1B8PRVG9N7Q6S3HTFV4KQNSO5AEMVJF66Q9ASUAAJG",
    "J1S0R8AK4M2VHQ7T3L9GSE6UDTFV4KQNSO5AEMVJF66Q9ASUAAJG",
];

/// A finished segment held for rendering, for benchmarks of the emitter's own work: the
/// shape of a real request (a segment with its `http` block and `n` DynamoDB-style
/// subsegments, each with a status and four `aws` fields).
pub struct RecordedSegment(crate::trace::Batch);

impl std::fmt::Debug for RecordedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedSegment")
            .field("entities", &self.0.entities.len())
            .finish()
    }
}

/// Buffers a renderer reuses from segment to segment.
#[derive(Default)]
pub struct RenderScratch {
    scratch: crate::emitter::json::Scratch,
    info: crate::emitter::json::ProcessInfo,
}

impl std::fmt::Debug for RenderScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenderScratch")
    }
}

impl RecordedSegment {
    /// A segment with `subsegments` DynamoDB-style subsegments.
    pub fn new(subsegments: usize) -> Self {
        Self::build(subsegments, true)
    }

    /// Exactly what the benchmarks' W2 request records: a segment named `orders-api` with
    /// method, URL, client IP (from `X-Forwarded-For`) and response status 200, and three
    /// `DynamoDB` subsegments, each in the `aws` namespace with operation, region, table name,
    /// request ID and response status 200. No content length, user agent or annotation.
    pub fn w2() -> Self {
        Self::build(3, false)
    }

    fn build(subsegments: usize, extras: bool) -> Self {
        use crate::model::Namespace;
        use crate::record::{Patch, Record};
        use crate::trace::{Batch, Origin, Trace};

        let origin = Origin {
            trace_id: crate::TraceId::new(),
            segment_id: crate::EntityId::new(),
            parent_id: Some(crate::EntityId::new()),
            carried: None,
            traceparent: false,
            rule_name: None,
            facade: false,
        };
        let seg = origin.segment_id;
        let t0 = crate::clock::now_micros();
        let mut request = Patch::new();
        request.set_http_method("GET");
        request.set_http_url("https://orders.example.com/orders/42");
        if extras {
            request.set_http_user_agent("Mozilla/5.0 (X11; Linux x86_64)");
        }
        request.set_http_client_ip("203.0.113.7", true);
        let trace = request.apply(|c| Trace::new(origin, Some("orders-api"), t0, c));
        for i in 0..subsegments {
            let id = crate::EntityId::new();
            let mut call = Patch::new();
            call.set_namespace(Namespace::Aws);
            call.set_aws_operation("GetItem");
            call.set_aws_region("us-east-1");
            call.set_aws_table_name("orders");
            let index = call
                .apply(|c| trace.begin(0, seg, id, "DynamoDB", t0 + 10, c))
                .unwrap_or(0);
            let mut done = Patch::new();
            done.set_http_response(200, extras.then_some(512));
            if extras {
                done.set_aws_request_id(format!(
                    "V4KL2QAGFH8IL1L7S5N2S8HUGRVV4KQNSO5AEMVJF66Q9ASUAAJ{i}"
                ));
            } else {
                done.set_aws_request_id(W2_REQUEST_IDS[i % W2_REQUEST_IDS.len()]);
            }
            let _ = done.apply(|c| trace.end(index, id, t0 + 1500, c, u32::MAX));
        }
        let mut last = Patch::new();
        last.set_http_response(200, extras.then_some(1024));
        if extras {
            last.annotate("tier", "gold");
        }
        let batch = last.apply(|c| trace.end(0, seg, t0 + 2000, c, u32::MAX));
        // A segment whose subsegments have all ended is sent when it ends.
        RecordedSegment(batch.unwrap_or_else(|| Batch {
            trace_id: trace.trace_id,
            rule_name: None,
            is_segment: true,
            facade: false,
            entities: Vec::new(),
            text: String::new(),
            extras: Vec::new(),
        }))
    }

    /// Renders the segment into datagrams appended to `buf` (cleared first), as the emitter
    /// does; returns how many.
    pub fn render(&self, buf: &mut Vec<u8>, scratch: &mut RenderScratch) -> usize {
        buf.clear();
        let mut n = 0;
        crate::emitter::json::documents(
            &self.0,
            &scratch.info,
            &mut scratch.scratch,
            buf,
            &mut |_| n += 1,
        );
        n
    }
}
