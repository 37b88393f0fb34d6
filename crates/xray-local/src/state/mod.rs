//! The state every surface shares: the trace store, the sampling rules and
//! their statistics, and the intake counters, behind one [`App`].
//!
//! Nothing here knows about HTTP or sockets: the surfaces (`crate::surfaces`)
//! hand documents and requests in and read answers out.

pub mod clients;
pub mod otlp;
pub mod sampling;
pub mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::document::Node;
use crate::intake::{self, IntakeCounters, Reject};
use crate::validate::{self, Problem};

use clients::Clients;
use sampling::SamplingState;
use store::{Outcome, Store};

/// Current Unix time in seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Locks `m`, also after a panic elsewhere: a panic while holding the lock
/// cannot leave the store half-updated in a way that matters for a local
/// debugging tool, so keep serving.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shared state: the store, the sampler and the counters.
#[derive(Debug)]
pub struct App {
    /// The configuration the server was started with.
    pub config: Config,
    /// Intake counters.
    pub intake: IntakeCounters,
    store: Mutex<Store>,
    sampler: Mutex<SamplingState>,
    clients: Mutex<Clients>,
    started_at: f64,
    udp_recv_buffer: usize,
    udp_addr: SocketAddr,
}

/// A parsed and validated document, ready for the store.
pub(crate) type Prepared = (Node, Arc<str>, Vec<Problem>);

impl App {
    /// State for `config`, with the sampling rules already loaded.
    pub fn new(config: Config, rules: Vec<sampling::Rule>) -> Self {
        let now = unix_now();
        Self {
            store: Mutex::new(Store::new(config.max_traces, config.max_bytes)),
            sampler: Mutex::new(SamplingState::new(rules, now)),
            clients: Mutex::new(Clients::default()),
            intake: IntakeCounters::default(),
            started_at: now,
            udp_recv_buffer: 0,
            udp_addr: config.udp,
            config,
        }
    }

    /// Records the UDP address actually bound and the receive buffer the
    /// kernel granted (before the state is shared).
    pub(crate) fn set_udp(&mut self, addr: SocketAddr, recv_buffer: usize) {
        self.udp_addr = addr;
        self.udp_recv_buffer = recv_buffer;
    }

    /// Locks the trace store.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Locks the sampler.
    pub fn sampler(&self) -> MutexGuard<'_, SamplingState> {
        lock(&self.sampler)
    }

    /// Locks what is known about the processes that send segments and ask
    /// for sampling targets.
    pub fn clients(&self) -> MutexGuard<'_, Clients> {
        lock(&self.clients)
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

    /// Runs the full intake path on one datagram (a segment document, or
    /// OTLP spans after `T1S`/`T1U`), counting the outcome.
    pub fn ingest_datagram(&self, datagram: &[u8]) -> Result<Ingested, Reject> {
        self.intake.record_received(datagram.len());
        let body = match intake::split_datagram(datagram) {
            Ok(body) => body,
            Err(r) => {
                self.intake.record_rejected(r);
                return Err(r);
            }
        };
        let epoch = unix_now();
        let mut ready = Vec::new();
        if let Some(read) = self.otlp_datagram(body, None, epoch, &mut ready) {
            let documents = ready.len() as u64;
            self.store_prepared(&mut ready, epoch);
            return read.map(|()| Ingested::Spans { documents });
        }
        let result = prepare(body, epoch as i64).map(|(node, raw, problems)| {
            self.store()
                .ingest(node, raw, problems, epoch, Instant::now())
        });
        match &result {
            Ok(_) => self.intake.record_accepted(),
            Err(r) => self.intake.record_rejected(*r),
        }
        result.map(Ingested::Document)
    }

    /// Runs one document that arrived without a daemon header (through
    /// `PutTraceSegments` or an import) through the same checks as a
    /// datagram body, counting it. Returns the outcome and the problems the
    /// document was stored with.
    pub fn ingest_document(&self, body: &[u8]) -> Result<(Outcome, Vec<Problem>), Reject> {
        self.intake.record_api_document(body.len());
        let epoch = unix_now();
        let result = prepare(body, epoch as i64).map(|(node, raw, problems)| {
            let outcome = self
                .store()
                .ingest(node, raw, problems.clone(), epoch, Instant::now());
            (outcome, problems)
        });
        match &result {
            Ok(_) => self.intake.record_accepted(),
            Err(r) => self.intake.record_rejected(*r),
        }
        result
    }

    /// Parses and validates a batch of bodies, then stores them under one
    /// lock. `ready` is scratch space, empty on return. `from` is where the
    /// batch came from, remembered for the per-service request counts.
    pub(crate) fn ingest_bodies<'b>(
        &self,
        bodies: impl Iterator<Item = (&'b [u8], Option<SocketAddr>)>,
        ready: &mut Vec<(Prepared, Option<SocketAddr>)>,
    ) {
        let epoch = unix_now();
        for (body, from) in bodies {
            if self.otlp_datagram(body, from, epoch, ready).is_some() {
                continue;
            }
            match prepare(body, epoch as i64) {
                Ok(doc) => ready.push((doc, from)),
                Err(r) => self.intake.record_rejected(r),
            }
        }
        self.store_prepared(ready, epoch);
    }
}

/// What a datagram became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// A segment document, and what the store did with it.
    Document(Outcome),
    /// OTLP spans, and how many documents they became and were stored.
    Spans {
        /// Documents stored.
        documents: u64,
    },
}

/// Parses and validates a body; counts nothing.
pub(crate) fn prepare(body: &[u8], now: i64) -> Result<Prepared, Reject> {
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
