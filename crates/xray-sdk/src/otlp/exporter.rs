//! The OTLP exporter on the emitter's thread: each batch becomes spans, which wait in a
//! bounded queue until a full export batch is there, the schedule delay has passed since the
//! oldest one arrived, or a flush asks for them, as OpenTelemetry's batch span processor
//! does. Nothing here runs on the request path.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::config::BatchSettings;
use super::encode::Encoder;
use super::http::HttpTransport;
use super::mapping::Mapper;
use super::pool;
use super::resource::ResourceInfo;
use super::udp::LambdaUdp;
use crate::emitter::{Counters, Exporter};
use crate::trace::Batch;

/// At most this many resources are held apart for segments that set their own `origin`;
/// spans of further origins go with the process's resource.
const MAX_ORIGINS: usize = 8;

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
    /// The resource and scope, and the spans held.
    spans: ResourceSpans,
}

/// Segments and subsegments as OTLP spans.
pub(crate) struct OtlpExporter {
    mapper: Mapper,
    info: ResourceInfo,
    /// The resources were built after the plugins answered.
    settled: bool,
    groups: Vec<Group>,
    /// Spans held, in all groups.
    held: usize,
    /// When the oldest span held arrived.
    since: Option<Instant>,
    batch: BatchSettings,
    wire: Wire,
    counters: Arc<Counters>,
    scratch: Vec<Span>,
    /// Emptied vectors of spans, their capacity kept (at most `MAX_ORIGINS + 1`).
    spare: Vec<Vec<Span>>,
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "xray-sdk".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
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
            info,
            held: 0,
            since: None,
            batch,
            wire,
            counters,
            scratch: Vec::new(),
            spare: Vec::new(),
        };
        exporter.group_for(None);
        exporter
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
            spans: ResourceSpans {
                resource: Some(self.info.build(origin)),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        });
        self.groups.len() - 1
    }

    /// Builds the resources again once the plugins have answered.
    fn settle(&mut self) {
        if self.settled || !self.info.settled() {
            return;
        }
        self.settled = true;
        for g in &mut self.groups {
            g.spans.resource = Some(self.info.build(g.origin.as_deref()));
        }
    }

    /// Sends up to `limit` of the spans held, oldest groups first.
    fn send(&mut self, limit: usize, deadline: Option<Instant>) {
        let mut request = ExportTraceServiceRequest::default();
        let mut taken = 0;
        for g in &mut self.groups {
            let Some(scope) = g.spans.scope_spans.first_mut() else {
                continue;
            };
            if scope.spans.is_empty() || taken == limit {
                continue;
            }
            let k = scope.spans.len().min(limit - taken);
            // Vectors of spans are kept from request to request: one of 512 spans is
            // larger than 64 KiB, and allocating and freeing that much every request
            // costs more than the mapping (the allocator consolidates its free lists).
            let mut spans = self.spare.pop().unwrap_or_default();
            if k == scope.spans.len() {
                std::mem::swap(&mut spans, &mut scope.spans);
            } else {
                spans.extend(scope.spans.drain(..k));
            }
            taken += k;
            request.resource_spans.push(ResourceSpans {
                resource: g.spans.resource.clone(),
                scope_spans: vec![ScopeSpans {
                    scope: scope.scope.clone(),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            });
        }
        self.held -= taken;
        if taken == 0 {
            return;
        }
        match &mut self.wire {
            Wire::Http { transport, encoder } => match encoder.encode(&request) {
                Ok(body) => transport.send(body, taken as u64, deadline),
                Err(e) => {
                    tracing::warn!(error = %e, "OTLP request could not be encoded; spans dropped");
                    self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .spans_dropped
                        .fetch_add(taken as u64, Ordering::Relaxed);
                }
            },
            Wire::LambdaUdp(udp) => {
                for group in &mut request.resource_spans {
                    udp.send(group);
                }
            }
        }
        for group in request.resource_spans {
            for mut scope in group.scope_spans {
                if self.spare.len() <= MAX_ORIGINS {
                    pool::recycle(&mut scope.spans);
                    self.spare.push(scope.spans);
                }
            }
        }
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
            if let Some(scope) = self.groups[g].spans.scope_spans.first_mut() {
                scope.spans.append(&mut spans);
            }
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

    fn flush_due(&self) -> Option<Instant> {
        self.since
            .and_then(|t| t.checked_add(self.batch.schedule_delay))
    }
}
