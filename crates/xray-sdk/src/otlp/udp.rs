//! OTLP over UDP to AWS Lambda's daemon, as AWS's OpenTelemetry distributions send it:
//! `{"format":"json","version":1}` + `\n` + `T1S` + the base64 (standard alphabet) of a
//! protobuf `ExportTraceServiceRequest`. A few spans per datagram (at most
//! [`MAX_SPANS_PER_DATAGRAM`], the distributions' batch size in Lambda), each datagram at
//! most [`MAX_DATAGRAM_SIZE`] bytes. A span too large for a datagram on its own is dropped
//! and counted. Only sampled spans are recorded, so the prefix is always `T1S`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

use crate::config::Endpoint;
use crate::emitter::udp::UdpTransport;
use crate::emitter::{Counters, DAEMON_HEADER, MAX_DATAGRAM_SIZE};

/// The prefix of a datagram of sampled spans.
pub(crate) const SAMPLED_PREFIX: &[u8] = b"T1S";
/// Most spans in one datagram (AWS's distributions export 10 at a time in Lambda).
pub(crate) const MAX_SPANS_PER_DATAGRAM: usize = 10;

/// The largest protobuf payload whose datagram stays within [`MAX_DATAGRAM_SIZE`].
const MAX_PAYLOAD: usize = (MAX_DATAGRAM_SIZE - DAEMON_HEADER.len() - SAMPLED_PREFIX.len()) / 4 * 3;

/// The UDP side of the exporter in Lambda.
pub(crate) struct LambdaUdp {
    transport: UdpTransport,
    counters: Arc<Counters>,
    payload: Vec<u8>,
    datagram: Vec<u8>,
}

impl LambdaUdp {
    pub(crate) fn new(endpoint: Endpoint, counters: Arc<Counters>) -> Self {
        LambdaUdp {
            transport: UdpTransport::new(endpoint),
            counters,
            payload: Vec::new(),
            datagram: Vec::with_capacity(MAX_DATAGRAM_SIZE),
        }
    }

    /// Sends the spans of `group` (one resource, one scope), packed into datagrams; the
    /// group's spans are consumed.
    pub(crate) fn send(&mut self, group: &mut ResourceSpans) {
        let Some(scope) = group.scope_spans.first_mut() else {
            return;
        };
        let spans = std::mem::take(&mut scope.spans);
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: group.resource.clone(),
                scope_spans: vec![ScopeSpans {
                    scope: scope.scope.clone(),
                    spans: Vec::with_capacity(MAX_SPANS_PER_DATAGRAM),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let empty = request.encoded_len();
        let mut size = empty;
        for span in spans {
            // A span adds its own length, its field key and its length prefix.
            let adds = span.encoded_len() + 1 + prost::length_delimiter_len(span.encoded_len());
            let held = held_spans(&request);
            if held > 0 && (size + adds + 8 > MAX_PAYLOAD || held >= MAX_SPANS_PER_DATAGRAM) {
                self.send_request(&mut request);
                size = empty;
            }
            if empty + adds + 8 > MAX_PAYLOAD {
                let n = self.counters.spans_dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.counters
                    .dropped_too_large
                    .fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(
                        bytes = adds,
                        "OTLP span too large for a UDP datagram to Lambda's daemon; dropped"
                    );
                }
                continue;
            }
            size += adds;
            push_span(&mut request, span);
        }
        if held_spans(&request) > 0 {
            self.send_request(&mut request);
        }
    }

    fn send_request(&mut self, request: &mut ExportTraceServiceRequest) {
        let n = held_spans(request) as u64;
        self.payload.clear();
        let encoded = request.encode(&mut self.payload).is_ok();
        clear_spans(request);
        self.datagram.clear();
        self.datagram.extend_from_slice(DAEMON_HEADER);
        self.datagram.extend_from_slice(SAMPLED_PREFIX);
        let start = self.datagram.len();
        self.datagram.resize(
            start + base64::encoded_len(self.payload.len(), true).unwrap_or(0),
            0,
        );
        let written = STANDARD
            .encode_slice(&self.payload, &mut self.datagram[start..])
            .ok();
        if !encoded || written.is_none() || self.datagram.len() > MAX_DATAGRAM_SIZE {
            self.counters.spans_dropped.fetch_add(n, Ordering::Relaxed);
            self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.transport.send(&self.datagram, &self.counters) {
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            self.counters.spans_exported.fetch_add(n, Ordering::Relaxed);
        } else {
            self.counters.spans_dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

fn spans_of(request: &mut ExportTraceServiceRequest) -> Option<&mut Vec<Span>> {
    request
        .resource_spans
        .first_mut()
        .and_then(|r| r.scope_spans.first_mut())
        .map(|s| &mut s.spans)
}

fn held_spans(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .first()
        .and_then(|r| r.scope_spans.first())
        .map_or(0, |s| s.spans.len())
}

fn push_span(request: &mut ExportTraceServiceRequest, span: Span) {
    if let Some(spans) = spans_of(request) {
        spans.push(span);
    }
}

fn clear_spans(request: &mut ExportTraceServiceRequest) {
    if let Some(spans) = spans_of(request) {
        spans.clear();
    }
}
