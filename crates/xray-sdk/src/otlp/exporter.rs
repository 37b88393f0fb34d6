//! The OTLP exporter on the emitter's thread: each batch becomes spans, which wait in a
//! bounded queue until a full export batch is there, the schedule delay has passed since the
//! oldest one arrived, or a flush asks for them, as OpenTelemetry's batch span processor
//! does. Nothing here runs on the request path.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use prost::Message as _;

use super::config::BatchSettings;
use super::encode::Encoder;
use super::http::HttpTransport;
use super::mapping::Mapper;
use super::protobuf::{self, SpanList};
use super::resource::ResourceInfo;
use super::udp::LambdaUdp;
use crate::emitter::{Counters, Exporter};
use crate::trace::Batch;

/// At most this many resources are held apart for segments that set their own `origin`;
/// spans of further origins go with the process's resource.
const MAX_ORIGINS: usize = 8;

/// Entities that wake the thread while spans wait for their batch: often enough that traces'
/// buffers return to the pool the recording side takes them from (256 kept), rarely enough
/// that the wake-up's cost spreads over a dozen requests.
const WAKE_EVERY: usize = 64;

/// Where the spans go.
pub(crate) enum Wire {
    Http {
        transport: HttpTransport,
        encoder: Encoder,
    },
    LambdaUdp(LambdaUdp),
}

/// Spans waiting, for one resource.
struct Group {
    /// The `origin` the segments set themselves; `None` for the process's resource.
    origin: Option<String>,
    /// The `ResourceSpans.resource` field, written.
    resource: Vec<u8>,
    /// The spans held.
    spans: SpanList,
}

/// Segments and subsegments as OTLP spans.
pub(crate) struct OtlpExporter {
    mapper: Mapper,
    info: ResourceInfo,
    /// The resources were built after the plugins answered.
    settled: bool,
    groups: Vec<Group>,
    /// The `ScopeSpans.scope` field, written.
    scope: Vec<u8>,
    /// Spans held, in all groups.
    held: usize,
    /// When the oldest span held arrived.
    since: Option<Instant>,
    batch: BatchSettings,
    wire: Wire,
    counters: Arc<Counters>,
    /// The spans of the batch being mapped.
    scratch: SpanList,
    /// The request being sent, as protobuf.
    request: Vec<u8>,
}

fn scope() -> Vec<u8> {
    let scope = InstrumentationScope {
        name: "xray-sdk".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    };
    let mut out = Vec::new();
    prost::encoding::message::encode(protobuf::SCOPE, &scope, &mut out);
    out
}

impl OtlpExporter {
    pub(crate) fn new(
        info: ResourceInfo,
        batch: BatchSettings,
        wire: Wire,
        counters: Arc<Counters>,
    ) -> Self {
        let mut exporter = OtlpExporter {
            mapper: Mapper::default(),
            settled: info.settled(),
            groups: Vec::new(),
            scope: scope(),
            info,
            held: 0,
            since: None,
            batch,
            wire,
            counters,
            scratch: SpanList::default(),
            request: Vec::new(),
        };
        exporter.group_for(None);
        exporter
    }

    /// The `resource` field for `origin`.
    fn resource(&self, origin: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::message::encode(protobuf::RESOURCE, &self.info.build(origin), &mut out);
        out
    }

    /// The group of `origin`, made when new (within [`MAX_ORIGINS`]).
    fn group_for(&mut self, origin: Option<&str>) -> usize {
        if let Some(i) = self
            .groups
            .iter()
            .position(|g| g.origin.as_deref() == origin)
        {
            return i;
        }
        if self.groups.len() > MAX_ORIGINS {
            return 0;
        }
        self.groups.push(Group {
            origin: origin.map(str::to_owned),
            resource: self.resource(origin),
            spans: SpanList::default(),
        });
        self.groups.len() - 1
    }

    /// Builds the resources again once the plugins have answered.
    fn settle(&mut self) {
        if self.settled || !self.info.settled() {
            return;
        }
        self.settled = true;
        for i in 0..self.groups.len() {
            self.groups[i].resource = self.resource(self.groups[i].origin.as_deref());
        }
    }

    /// Sends up to `limit` of the spans held, oldest groups first.
    fn send(&mut self, limit: usize, deadline: Option<Instant>) {
        let request = &mut self.request;
        request.clear();
        let mut taken = 0;
        for g in &mut self.groups {
            if g.spans.is_empty() || taken == limit {
                continue;
            }
            let k = g.spans.len().min(limit - taken);
            let spans = g.spans.first(k);
            let scope_spans = self.scope.len() + spans.len();
            let resource_spans =
                g.resource.len() + protobuf::delimited_len(protobuf::SCOPE_SPANS, scope_spans);
            protobuf::delimited_head(request, protobuf::REQUEST_RESOURCE_SPANS, resource_spans);
            request.extend_from_slice(&g.resource);
            protobuf::delimited_head(request, protobuf::SCOPE_SPANS, scope_spans);
            request.extend_from_slice(&self.scope);
            request.extend_from_slice(spans);
            g.spans.remove_first(k);
            taken += k;
        }
        self.held -= taken;
        if taken == 0 {
            return;
        }
        match &mut self.wire {
            Wire::Http { transport, encoder } => match encoder.encode(request) {
                Ok(body) => transport.send(body, taken as u64, deadline),
                Err(e) => self.dropped(taken, &e),
            },
            Wire::LambdaUdp(udp) => match ExportTraceServiceRequest::decode(&request[..]) {
                Ok(mut decoded) => {
                    for group in &mut decoded.resource_spans {
                        udp.send(group);
                    }
                }
                Err(e) => self.dropped(taken, &e.to_string()),
            },
        }
    }

    /// Counts `n` spans that could not be encoded as dropped.
    fn dropped(&self, n: usize, error: &str) {
        tracing::warn!(error, "OTLP request could not be encoded; spans dropped");
        self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
        self.counters
            .spans_dropped
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl Exporter for OtlpExporter {
    fn export(&mut self, batch: &Batch) {
        self.settle();
        let mut spans = std::mem::take(&mut self.scratch);
        spans.clear();
        let origin = self
            .mapper
            .map(batch, &self.info.service_name, &mut spans)
            .origin;
        let room = self.batch.max_queue_size.saturating_sub(self.held);
        if spans.len() > room {
            let over = (spans.len() - room) as u64;
            spans.truncate(room);
            let n = self
                .counters
                .spans_dropped
                .fetch_add(over, Ordering::Relaxed)
                + over;
            if n.is_power_of_two() || over == n {
                tracing::warn!(
                    dropped = n,
                    queue = self.batch.max_queue_size,
                    "OTLP span queue full (OTEL_BSP_MAX_QUEUE_SIZE); dropping spans"
                );
            }
        }
        if !spans.is_empty() {
            let g = self.group_for(origin);
            self.held += spans.len();
            self.groups[g].spans.append(&mut spans);
            self.since.get_or_insert_with(Instant::now);
        }
        self.scratch = spans;
        while self.held >= self.batch.max_export_batch_size {
            self.send(self.batch.max_export_batch_size, None);
        }
        if self.held == 0 {
            self.since = None;
        }
    }

    fn flush(&mut self, deadline: Option<Instant>) {
        self.settle();
        while self.held > 0 {
            self.send(self.batch.max_export_batch_size, deadline);
        }
        self.since = None;
    }

    /// Woken early for a full export batch (the spans still missing from it: a batch of
    /// traces holds at least as many entities as it gives spans), and at the latest every
    /// [`WAKE_EVERY`] entities, so that finished traces give their buffers back to the
    /// recording side steadily.
    fn wake_after(&self) -> usize {
        self.batch
            .max_export_batch_size
            .saturating_sub(self.held)
            .clamp(1, WAKE_EVERY)
    }

    fn flush_due(&self) -> Option<Instant> {
        self.since
            .and_then(|t| t.checked_add(self.batch.schedule_delay))
    }
}
