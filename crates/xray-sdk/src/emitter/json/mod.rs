//! The segment-document renderer: each batch becomes `{"format":"json","version":1}\n` plus
//! one document per datagram, sent over UDP to the daemon.

mod blocks;
mod document;
mod split;

use std::sync::Arc;
use std::sync::atomic::Ordering;

pub(crate) use blocks::ProcessInfo;
#[cfg(feature = "otlp")]
pub(crate) use blocks::{RUSTC_VERSION, SDK_VERSION};
#[cfg(feature = "otlp")]
pub(crate) use document::{Index, write_aws_fields};
pub(crate) use split::{Outcome, Scratch, documents};

use super::udp::UdpTransport;
use super::{Counters, Exporter, MAX_DATAGRAM_SIZE};
use crate::config::Endpoint;
use crate::trace::Batch;

/// Segment documents over UDP, the daemon's protocol.
pub(crate) struct UdpJson {
    info: Arc<ProcessInfo>,
    counters: Arc<Counters>,
    transport: UdpTransport,
    buf: Vec<u8>,
    scratch: Scratch,
    outcomes: Vec<Outcome>,
}

impl UdpJson {
    pub(crate) fn new(endpoint: Endpoint, info: Arc<ProcessInfo>, counters: Arc<Counters>) -> Self {
        UdpJson {
            info,
            transport: UdpTransport::new(endpoint),
            counters,
            buf: Vec::with_capacity(MAX_DATAGRAM_SIZE),
            scratch: Scratch::default(),
            outcomes: Vec::new(),
        }
    }
}

impl Exporter for UdpJson {
    fn export(&mut self, batch: &Batch) {
        let mut outcomes = std::mem::take(&mut self.outcomes);
        self.buf.clear();
        documents(
            batch,
            &self.info,
            &mut self.scratch,
            &mut self.buf,
            &mut |o| outcomes.push(o),
        );
        for outcome in outcomes.drain(..) {
            match outcome {
                Outcome::Datagram {
                    start,
                    end,
                    truncated,
                } => {
                    if truncated {
                        self.counters.truncated.fetch_add(1, Ordering::Relaxed);
                    }
                    let sent = self
                        .buf
                        .get(start..end)
                        .is_some_and(|data| self.transport.send(data, &self.counters));
                    if sent {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Outcome::TooLarge => {
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
        self.outcomes = outcomes;
    }
}
