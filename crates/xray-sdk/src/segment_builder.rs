//! [`SegmentBuilder`]: the one place a segment begins, with its sampling decision.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::emitter::Sink;
use crate::handle::{Context, Entity};
use crate::header::{Carried, SamplingFlag, TraceHeader};
use crate::id::{EntityId, TraceId};
use crate::model::sanitize_name;
use crate::plugins::Resources;
use crate::record::Patch;
use crate::sampling::{Sampler, SamplingDecision, SamplingRequest};
use crate::trace::{Changes, Origin};

/// What a recorder lends its segments: where they go, who decides, and the facts the
/// decision needs.
pub(crate) struct Source {
    pub(crate) enabled: bool,
    /// What decides when no rule names itself, for the debug log of each decision.
    pub(crate) unnamed_rule: &'static str,
    pub(crate) sink: Arc<Sink>,
    pub(crate) sampler: Arc<dyn Sampler>,
    pub(crate) resources: Arc<Resources>,
    /// Downstream HTTP calls carry `traceparent` too (given to every trace begun here).
    pub(crate) traceparent: bool,
}

/// Builds one segment; see [`Recorder::segment`](crate::Recorder::segment).
#[must_use = "call .begin() to start the segment"]
pub struct SegmentBuilder<'a> {
    recorder: &'a Source,
    name: Cow<'a, str>,
    header: Option<&'a TraceHeader>,
    request: SamplingRequest<'a>,
    forced: Option<bool>,
}

impl fmt::Debug for SegmentBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentBuilder")
            .field("name", &self.name)
            .field("header", &self.header)
            .field("forced", &self.forced)
            .finish_non_exhaustive()
    }
}

impl<'a> SegmentBuilder<'a> {
    pub(crate) fn new(recorder: &'a Source, name: Cow<'a, str>) -> Self {
        SegmentBuilder {
            recorder,
            name,
            header: None,
            request: SamplingRequest::default(),
            forced: None,
        }
    }

    /// Continues the trace of an incoming header: its Root and Parent become this segment's
    /// `trace_id` and `parent_id`, and `Sampled=1`/`0` is obeyed. An absent or invalid Root
    /// starts a new trace. What the header carries on (extra keys, a W3C `tracestate`) goes
    /// to downstream calls. For a request that may carry a W3C `traceparent` instead, get the
    /// header from [`incoming_trace`](crate::header::incoming_trace).
    pub fn header(mut self, header: &'a TraceHeader) -> Self {
        self.header = Some(header);
        self
    }

    /// The request facts the sampling rules match on (host, method, path, ...). The service
    /// name defaults to the segment name.
    pub fn sampling_request(mut self, request: SamplingRequest<'a>) -> Self {
        self.request = request;
        self
    }

    /// Forces (`true`) or vetoes (`false`) sampling, whatever the header and rules say.
    pub fn sampled(mut self, sampled: bool) -> Self {
        self.forced = Some(sampled);
        self
    }

    /// Begins the segment.
    pub fn begin(self) -> Entity {
        self.begin_with(|_| {})
    }

    /// Begins the segment and, when it is sampled, records into it before it is shared:
    /// cheaper than [`SegmentBuilder::begin`] followed by setters, and `init` never runs for
    /// an unsampled request. A name set in `init` replaces the builder's.
    ///
    /// ```
    /// use xray_sdk::Record;
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// let segment = recorder.segment("orders").begin_with(|p| {
    ///     p.set_http_method("GET");
    ///     p.set_http_url("https://orders.example.com/orders/7");
    /// });
    /// segment.end();
    /// ```
    pub fn begin_with<'p>(self, init: impl FnOnce(&Patch<'p>)) -> Entity {
        let recorder = self.recorder;
        let root = self.header.and_then(TraceHeader::root);
        let trace_id: TraceId = root.unwrap_or_else(TraceId::new);
        let carried = self.header.and_then(TraceHeader::carried_shared);
        let (decision, by) = if !recorder.enabled {
            (SamplingDecision::new(false), DecidedBy::Disabled)
        } else if let Some(forced) = self.forced {
            (SamplingDecision::new(forced), DecidedBy::Code)
        } else if let Some(d) = self.header.and_then(|h| h.sampled().decision()) {
            (SamplingDecision::new(d), DecidedBy::Header)
        } else {
            let mut req = self.request;
            if req.service_name.is_none() {
                req.service_name = Some(&self.name);
            }
            if req.service_type.is_none() {
                req.service_type = recorder.resources.get().and_then(|r| r.origin);
            }
            let decision = recorder.sampler.should_sample(&req);
            // One check of a cached flag when debug logging is off; nothing is formatted.
            if tracing::enabled!(tracing::Level::DEBUG) {
                log_rule_decision(recorder, &req, trace_id, &decision);
            }
            (decision, DecidedBy::Rule)
        };
        if !matches!(by, DecidedBy::Rule) && tracing::enabled!(tracing::Level::DEBUG) {
            log_decision(trace_id, &decision, by);
        }
        let ctx = if decision.sampled {
            let mut patch = Patch::new();
            init(&patch);
            // A parent without the trace it belongs to is meaningless.
            let parent_id = root.and(self.header.and_then(TraceHeader::parent));
            let origin = Origin {
                trace_id,
                segment_id: EntityId::new(),
                parent_id,
                carried,
                traceparent: recorder.traceparent,
                rule_name: decision.rule_name,
                facade: false,
            };
            // A name set in `init` replaces the builder's, which is then not even checked.
            let name = (!patch.names()).then(|| sanitize_name(self.name));
            let start = crate::clock::now_micros();
            patch.apply(|changes| {
                Context::new_segment(
                    Arc::clone(&recorder.sink),
                    origin,
                    name.as_deref(),
                    start,
                    changes,
                )
            })
        } else {
            Context::new_unsampled(trace_id, carried, recorder.traceparent)
        };
        Entity::from_context(ctx)
    }
}

/// A facade segment for `header` (see [`Recorder::facade`](crate::Recorder::facade)).
pub(crate) fn facade(source: &Source, header: &TraceHeader) -> Entity {
    let root = header.root();
    let trace_id = root.unwrap_or_else(TraceId::new);
    let carried = header.carried_shared();
    let ctx = match (root, header.parent(), header.sampled()) {
        (Some(_), Some(parent), SamplingFlag::Sampled) if source.enabled => recorded_facade(
            Arc::clone(&source.sink),
            trace_id,
            parent,
            carried,
            source.traceparent,
        ),
        _ => Context::new_unsampled(trace_id, carried, source.traceparent),
    };
    Entity::from_context(ctx)
}

/// A facade with IDs of its own whose batches go to `sink`, which holds them until the trace
/// they belong to is known (see [`HeldFacade`](crate::HeldFacade)).
pub(crate) fn held_facade(source: &Source, sink: Arc<Sink>) -> Entity {
    let ctx = if source.enabled {
        recorded_facade(
            sink,
            TraceId::new(),
            EntityId::new(),
            None,
            source.traceparent,
        )
    } else {
        Context::new_unsampled(TraceId::new(), None, source.traceparent)
    };
    Entity::from_context(ctx)
}

fn recorded_facade(
    sink: Arc<Sink>,
    trace_id: TraceId,
    id: EntityId,
    carried: Option<Arc<Carried>>,
    traceparent: bool,
) -> Context {
    let origin = Origin {
        trace_id,
        segment_id: id,
        parent_id: None,
        carried,
        traceparent,
        rule_name: None,
        facade: true,
    };
    let start = crate::clock::now_micros();
    Changes::none(|changes| Context::new_segment(sink, origin, Some("facade"), start, changes))
}

/// What made a sampling decision.
#[derive(Clone, Copy)]
enum DecidedBy {
    Disabled,
    Code,
    Header,
    Rule,
}

fn outcome(decision: &SamplingDecision) -> &'static str {
    if decision.sampled {
        "sampled"
    } else {
        "not sampled"
    }
}

/// A decision of the sampler, with the request facts the rules matched on.
#[cold]
fn log_rule_decision(
    recorder: &Source,
    req: &SamplingRequest<'_>,
    trace_id: TraceId,
    decision: &SamplingDecision,
) {
    let service = req.service_name.unwrap_or("");
    let method = req.method.unwrap_or("");
    let path = req.url_path.unwrap_or("");
    match &decision.rule_name {
        Some(rule) => tracing::debug!(
            %trace_id,
            sampled = decision.sampled,
            rule = &**rule,
            service,
            method,
            path,
            "X-Ray sampling decision: {} by rule {rule:?}",
            outcome(decision),
        ),
        None => tracing::debug!(
            %trace_id,
            sampled = decision.sampled,
            service,
            method,
            path,
            "X-Ray sampling decision: {} by {}",
            outcome(decision),
            recorder.unnamed_rule,
        ),
    }
}

/// A decision made without the sampler.
#[cold]
fn log_decision(trace_id: TraceId, decision: &SamplingDecision, by: DecidedBy) {
    let by = match by {
        DecidedBy::Disabled => "the SDK being disabled",
        DecidedBy::Code => "code (SegmentBuilder::sampled)",
        DecidedBy::Header => "the incoming trace header (X-Amzn-Trace-Id or traceparent)",
        DecidedBy::Rule => "the sampler",
    };
    tracing::debug!(
        %trace_id,
        sampled = decision.sampled,
        "X-Ray sampling decision: {} by {by}",
        outcome(decision),
    );
}
