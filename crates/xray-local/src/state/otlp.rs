//! Spans in: converted to segment documents (`crate::otlp::mapping`) and
//! stored through the same checks and the same store as documents that
//! arrive over UDP.

use std::net::SocketAddr;
use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::intake::Reject;
use crate::otlp::mapping::{self, Converted};
use crate::otlp::wire;

use super::{App, Prepared, prepare, unix_now};

/// What one request's (or datagram's) spans became.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpOutcome {
    /// Spans read.
    pub spans: u64,
    /// Documents stored.
    pub documents: u64,
    /// Spans that could not be converted.
    pub rejected: u64,
    /// Why, for `partial_success.error_message` (empty when none was).
    pub message: String,
}

/// Trace-ID checks that do not apply to spans: the OTLP endpoint takes
/// random W3C trace IDs, whose first 8 hex digits are no time.
const NOT_FOR_SPANS: [&str; 2] = ["trace_id_too_old", "trace_id_in_future"];

impl App {
    /// Converts the spans of an OTLP request and stores the documents they
    /// become, counting everything. `from` is the sender, when known.
    pub fn ingest_otlp(
        &self,
        request: &ExportTraceServiceRequest,
        from: Option<SocketAddr>,
    ) -> OtlpOutcome {
        let epoch = unix_now();
        let (converted, prepared) = self.prepare_otlp(request, epoch);
        let documents = prepared.len() as u64;
        let mut ready = prepared.into_iter().map(|p| (p, from)).collect();
        self.store_prepared(&mut ready, epoch);
        OtlpOutcome {
            spans: converted.spans,
            documents,
            rejected: converted.rejected_total(),
            message: converted.message(),
        }
    }

    /// Reads an OTLP datagram body (after the daemon header) into `ready`,
    /// counting it: `None` if the body is not an OTLP one (no `T1S`/`T1U`),
    /// else whether its spans could be read.
    pub(super) fn otlp_datagram(
        &self,
        body: &[u8],
        from: Option<SocketAddr>,
        epoch: f64,
        ready: &mut Vec<(Prepared, Option<SocketAddr>)>,
    ) -> Option<Result<(), Reject>> {
        let result = match wire::decode_datagram_body(body)? {
            Err(wire::DatagramError::InvalidBase64) => Err(Reject::OtlpInvalidBase64),
            Err(wire::DatagramError::InvalidProtobuf) => Err(Reject::OtlpInvalidProtobuf),
            Ok(d) => {
                self.intake.otlp.record_datagram();
                if d.sampled {
                    let (_, prepared) = self.prepare_otlp(&d.request, epoch);
                    ready.extend(prepared.into_iter().map(|p| (p, from)));
                } else {
                    let spans = wire::span_count(&d.request) as u64;
                    self.intake.otlp.record_unsampled(spans);
                }
                Ok(())
            }
        };
        if let Err(r) = result {
            self.intake.record_rejected(r);
        }
        Some(result)
    }

    /// Converts and checks spans, counting them; nothing is stored yet.
    fn prepare_otlp(
        &self,
        request: &ExportTraceServiceRequest,
        epoch: f64,
    ) -> (Converted, Vec<Prepared>) {
        let converted = mapping::convert(request, epoch);
        let mut prepared = Vec::with_capacity(converted.documents.len());
        for doc in &converted.documents {
            // The mapping writes JSON objects, so this does not fail; if it
            // ever did, the document would be counted like a bad datagram.
            match prepare(doc.as_bytes(), epoch as i64) {
                Ok((node, raw, mut problems)) => {
                    problems.retain(|p| !NOT_FOR_SPANS.contains(&p.code));
                    prepared.push((node, raw, problems));
                }
                Err(r) => self.intake.record_rejected(r),
            }
        }
        self.intake.otlp.record_spans(
            converted.spans,
            converted.documents.len() as u64,
            &converted.rejected,
        );
        (converted, prepared)
    }

    /// Stores prepared documents under one lock, remembering who sent the
    /// segments (for the per-service request counts). `ready` is empty on
    /// return.
    pub(super) fn store_prepared(
        &self,
        ready: &mut Vec<(Prepared, Option<SocketAddr>)>,
        epoch: f64,
    ) {
        if ready.is_empty() {
            return;
        }
        {
            let mut clients = self.clients();
            for ((node, _, _), from) in ready.iter() {
                if let (Some(from), Some(name)) = (from, node.name.as_str())
                    && node.kind.as_str() != Some("subsegment")
                {
                    clients.segment_from(*from, name);
                }
            }
        }
        let now = Instant::now();
        let mut store = self.store();
        for ((node, raw, problems), _) in ready.drain(..) {
            store.ingest(node, raw, problems, epoch, now);
            self.intake.record_accepted();
        }
    }
}
