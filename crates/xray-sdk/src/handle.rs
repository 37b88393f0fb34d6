//! [`Context`], a handle that records into an open segment or subsegment, and [`Entity`],
//! the guard that owns one and ends it when dropped.
//!
//! A sampled segment's entities live in one arena per trace (see `trace`), which the
//! handles share with the queue it is sent to. Unsampled requests have no arena at all: their
//! [`Context`] carries only the IDs and what goes downstream with them (extra header keys,
//! `tracestate`).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use crate::emitter::Sink;
use crate::header::{Carried, SamplingFlag, TraceHeader, TraceParent};
use crate::id::{EntityId, TraceId};
use crate::model::sanitize_name;
use crate::record::{Patch, Record};
use crate::trace::{Changes, Op, Origin, Trace};

/// A recorded trace and where its batches go.
pub(crate) struct Shared {
    pub(crate) trace: Trace,
    /// `None` only while the allocation waits in [`SPARE`], where no handle can reach it.
    pub(crate) sink: Option<Arc<Sink>>,
}

thread_local! {
    /// The allocation of this thread's last sent trace, which its next segment reuses, so a
    /// sampled request allocates nothing of its own once the buffer pool is stocked. It is
    /// kept only when no handle refers to it any more, and without its sink, so that it does
    /// not keep a dropped recorder's emitter alive.
    static SPARE: Cell<Option<Arc<Shared>>> = const { Cell::new(None) };
}

/// This thread's spare trace allocation, when it has one.
#[inline]
fn spare() -> Option<Arc<Shared>> {
    SPARE.try_with(Cell::take).ok().flatten()
}

#[derive(Clone)]
enum Inner {
    Recorded {
        shared: Arc<Shared>,
        index: u32,
        id: EntityId,
    },
    /// Nothing is recorded: the trace is not sampled, or (`sampled: true`) the work began
    /// where it could not be recorded (its segment already sent), while the trace's
    /// decision still travels downstream.
    NotRecorded {
        trace_id: TraceId,
        id: EntityId,
        carried: Option<Arc<Carried>>,
        sampled: bool,
        /// Downstream HTTP calls carry `traceparent` too.
        traceparent: bool,
    },
}

/// A handle to an open segment or subsegment: records into it (see [`Record`]), begins
/// subsegments under it, and produces the trace header for downstream calls.
///
/// `Context` is cheap to clone (a reference count) and `Send + Sync`. It does not own the
/// entity: the [`Entity`] guard does, and ends it when dropped. Recording through a
/// `Context` whose entity was already sent is ignored. For an unsampled request, every
/// recording method is a no-op and only the IDs are kept, so the decision still travels
/// downstream.
#[derive(Clone)]
pub struct Context {
    inner: Inner,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("trace_id", &self.trace_id())
            .field("id", &self.id())
            .field("sampled", &self.is_sampled())
            .finish()
    }
}

impl Context {
    /// A recorded segment, its changes applied before it is shared.
    pub(crate) fn new_segment(
        sink: Arc<Sink>,
        origin: Origin,
        name: Option<&str>,
        start_us: u64,
        changes: Changes<'_, '_>,
    ) -> Context {
        let id = origin.segment_id;
        let fresh = |origin, changes, sink| {
            Arc::new(Shared {
                trace: Trace::new(origin, name, start_us, changes),
                sink: Some(sink),
            })
        };
        let shared = match spare() {
            Some(mut spare) => match Arc::get_mut(&mut spare) {
                Some(unique) => {
                    unique.trace.renew(origin, name, start_us, changes);
                    unique.sink = Some(sink);
                    spare
                }
                // Only unique allocations are kept: not reached.
                None => fresh(origin, changes, sink),
            },
            None => fresh(origin, changes, sink),
        };
        Context {
            inner: Inner::Recorded {
                shared,
                index: 0,
                id,
            },
        }
    }

    pub(crate) fn new_unsampled(
        trace_id: TraceId,
        carried: Option<Arc<Carried>>,
        traceparent: bool,
    ) -> Context {
        Context {
            inner: Inner::NotRecorded {
                trace_id,
                id: EntityId::new(),
                carried,
                sampled: false,
                traceparent,
            },
        }
    }

    /// A context of a sampled trace whose work is not recorded.
    fn not_recorded(trace: &Trace) -> Context {
        Context {
            inner: Inner::NotRecorded {
                trace_id: trace.trace_id,
                id: EntityId::new(),
                carried: trace.carried.clone(),
                sampled: true,
                traceparent: trace.traceparent,
            },
        }
    }

    /// The trace ID.
    #[inline]
    pub fn trace_id(&self) -> TraceId {
        match &self.inner {
            Inner::Recorded { shared, .. } => shared.trace.trace_id,
            Inner::NotRecorded { trace_id, .. } => *trace_id,
        }
    }

    /// The ID of this segment or subsegment.
    #[inline]
    pub fn id(&self) -> EntityId {
        match &self.inner {
            Inner::Recorded { id, .. } | Inner::NotRecorded { id, .. } => *id,
        }
    }

    /// The segment this entity belongs to (itself for a segment), while it is recorded;
    /// `None` when nothing is recorded (an unsampled trace). For example, to annotate the
    /// request's segment from deep inside its subsegments.
    ///
    /// ```
    /// use xray_sdk::Record;
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// # let segment = recorder.segment("svc").begin();
    /// # let sub = segment.begin_subsegment("step");
    /// if let Some(segment) = sub.segment() {
    ///     segment.annotate("customer_tier", "gold");
    /// }
    /// ```
    pub fn segment(&self) -> Option<Context> {
        match &self.inner {
            Inner::Recorded { shared, .. } => Some(Context {
                inner: Inner::Recorded {
                    shared: Arc::clone(shared),
                    index: 0,
                    id: shared.trace.segment_id,
                },
            }),
            Inner::NotRecorded { .. } => None,
        }
    }

    /// True when this trace is sampled: its documents are sent, and downstream calls carry
    /// `Sampled=1`. (Work begun under a segment that was already sent is not recorded, but
    /// its trace stays sampled downstream.)
    #[inline]
    pub fn is_sampled(&self) -> bool {
        match &self.inner {
            Inner::Recorded { .. } => true,
            Inner::NotRecorded { sampled, .. } => *sampled,
        }
    }

    fn carried(&self) -> Option<&Carried> {
        match &self.inner {
            Inner::Recorded { shared, .. } => shared.trace.carried.as_deref(),
            Inner::NotRecorded { carried, .. } => carried.as_deref(),
        }
    }

    /// Extra header keys that came in with the trace (such as `Lineage`), as `k=v;k=v`.
    pub fn extra_header_fields(&self) -> Option<&str> {
        self.carried().and_then(|c| c.extra.as_deref())
    }

    /// The W3C `tracestate` that came in with the trace, passed on unchanged with
    /// `traceparent`.
    pub fn tracestate(&self) -> Option<&str> {
        self.carried().and_then(|c| c.tracestate.as_deref())
    }

    /// Whether downstream HTTP calls made under this context carry the W3C `traceparent`
    /// (and `tracestate`) besides `X-Amzn-Trace-Id`: the setting of the recorder that began
    /// the trace ([`RecorderBuilder::propagate_traceparent`](crate::RecorderBuilder::propagate_traceparent)).
    /// Calls to AWS services carry the X-Ray header only, whatever this says.
    #[inline]
    pub fn propagates_traceparent(&self) -> bool {
        match &self.inner {
            Inner::Recorded { shared, .. } => shared.trace.traceparent,
            Inner::NotRecorded { traceparent, .. } => *traceparent,
        }
    }

    /// The `traceparent` for a downstream call made by this entity: the trace, this entity's
    /// ID as the parent, flag `01` when sampled, and the random-trace-id flag when it came in
    /// with the trace.
    ///
    /// ```
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// let segment = recorder.segment("svc").begin();
    /// let tp = segment.traceparent();
    /// assert_eq!(tp.parent_id(), segment.id());
    /// assert_eq!(tp.trace_id(), segment.trace_id());
    /// assert!(!tp.sampled());
    /// ```
    pub fn traceparent(&self) -> TraceParent {
        TraceParent::new(self.trace_id(), self.id(), self.is_sampled())
            .with_random_trace_id(self.carried().is_some_and(|c| c.random))
    }

    /// The header to send with a downstream call made by this entity:
    /// `Root=<trace>;Parent=<this id>;Sampled=<1|0>` plus the extra keys that came in.
    ///
    /// ```
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// let segment = recorder.segment("svc").begin();
    /// let header = segment.downstream_header();
    /// assert_eq!(header.parent(), Some(segment.id()));
    /// ```
    pub fn downstream_header(&self) -> TraceHeader {
        let carried = match &self.inner {
            Inner::Recorded { shared, .. } => shared.trace.carried.clone(),
            Inner::NotRecorded { carried, .. } => carried.clone(),
        };
        TraceHeader::new(
            self.trace_id(),
            Some(self.id()),
            SamplingFlag::from_decision(self.is_sampled()),
        )
        .with_carried(carried)
    }

    /// Makes several changes to this entity under one lock, which is cheaper than calling
    /// the setters one by one. `f` collects them in a [`Patch`] (without any lock held: it
    /// may record anywhere); they are applied when it returns. Returns `None` without
    /// calling `f` when nothing is recorded (an unsampled trace).
    ///
    /// ```
    /// use xray_sdk::{Namespace, Record};
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// # let segment = recorder.segment("svc").begin();
    /// let call = segment.begin_subsegment("DynamoDB");
    /// call.update(|p| {
    ///     p.set_namespace(Namespace::Aws);
    ///     p.set_aws_operation("GetItem");
    ///     p.set_aws_table_name("orders");
    /// });
    /// ```
    pub fn update<'a, R>(&self, f: impl FnOnce(&Patch<'a>) -> R) -> Option<R> {
        let Inner::Recorded { shared, index, id } = &self.inner else {
            return None;
        };
        let mut patch = Patch::new();
        let out = f(&patch);
        patch.apply(|changes| shared.trace.record(*index, *id, changes));
        Some(out)
    }

    /// Begins a subsegment under this entity. The returned guard ends it when dropped.
    pub fn begin_subsegment<'a>(&self, name: impl Into<Cow<'a, str>>) -> Entity {
        self.begin_subsegment_with(name, |_| {})
    }

    /// Begins a subsegment with changes made before it joins the trace, all under one lock:
    /// cheaper than [`Context::begin_subsegment`] followed by several setters. `init` runs
    /// only when the trace is sampled, without any lock held (it may record elsewhere in
    /// the trace); its changes are dropped if the segment was sent meanwhile. A panic in
    /// `init` begins nothing.
    ///
    /// ```
    /// use xray_sdk::{Namespace, Record};
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// let segment = recorder.segment("svc").begin();
    /// let call = segment.begin_subsegment_with("inventory.internal", |p| {
    ///     p.set_namespace(Namespace::Remote);
    ///     p.set_http_method("GET");
    ///     p.set_http_url("http://inventory.internal/items/42");
    /// });
    /// call.end_with(|p| p.set_http_response(200, Some(512)));
    /// ```
    pub fn begin_subsegment_with<'a>(
        &self,
        name: impl Into<Cow<'a, str>>,
        init: impl FnOnce(&Patch<'a>),
    ) -> Entity {
        // Each way out builds its `Entity` where it is returned: built from a `Context`
        // made first, it was copied (about 20 instructions a subsegment).
        let (shared, index, id) = match &self.inner {
            Inner::NotRecorded {
                trace_id,
                carried,
                sampled,
                traceparent,
                ..
            } => {
                return Entity {
                    ctx: Context {
                        inner: Inner::NotRecorded {
                            trace_id: *trace_id,
                            id: EntityId::new(),
                            carried: carried.clone(),
                            sampled: *sampled,
                            traceparent: *traceparent,
                        },
                    },
                    ended: false,
                };
            }
            Inner::Recorded { shared, index, id } => (shared, *index, *id),
        };
        let mut patch = Patch::new();
        init(&patch);
        let name = sanitize_name(name);
        let new_id = EntityId::new();
        let start = crate::clock::now_micros();
        let begun =
            patch.apply(|changes| shared.trace.begin(index, id, new_id, &name, start, changes));
        match begun {
            Some(new_index) => Entity {
                ctx: Context {
                    inner: Inner::Recorded {
                        shared: Arc::clone(shared),
                        index: new_index,
                        id: new_id,
                    },
                },
                ended: false,
            },
            // The segment was already sent: record nothing, keep propagating.
            None => Entity {
                ctx: Context::not_recorded(&shared.trace),
                ended: false,
            },
        }
    }

    /// Applies `last` (when the entity is recorded) and ends the entity, under one lock. A
    /// panic in `last` still ends the entity (with what it had recorded), then carries on.
    /// When this ends the segment and its trace is sent, see [`Context::recycle`].
    fn end_with<'a>(&mut self, last: impl FnOnce(&Patch<'a>)) {
        let Inner::Recorded { shared, index, id } = &self.inner else {
            return;
        };
        let Some(sink) = &shared.sink else {
            return;
        };
        let mut patch = Patch::new();
        let panicked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| last(&patch))).err();
        let end = crate::clock::now_micros();
        let batch = patch.apply(|changes| {
            shared
                .trace
                .end(*index, *id, end, changes, sink.streaming_threshold)
        });
        let sent = batch.is_some_and(|batch| {
            sink.emitter.submit(batch);
            *index == 0
        });
        if let Some(payload) = panicked {
            std::panic::resume_unwind(payload);
        }
        if sent {
            self.recycle();
        }
    }

    /// Ends the entity (see [`Context::end_with`]).
    fn end(&mut self) {
        let Inner::Recorded { shared, index, id } = &self.inner else {
            return;
        };
        let Some(sink) = &shared.sink else {
            return;
        };
        let end = crate::clock::now_micros();
        let batch = Changes::none(|changes| {
            shared
                .trace
                .end(*index, *id, end, changes, sink.streaming_threshold)
        });
        let sent = batch.is_some_and(|batch| {
            sink.emitter.submit(batch);
            *index == 0
        });
        if sent {
            self.recycle();
        }
    }

    /// Once the segment has ended and its trace was sent: when this was the last handle to
    /// the trace, its allocation is kept for this thread's next segment (see [`SPARE`]), and
    /// this handle records nothing any more (it is its guard's, which is being consumed).
    #[inline(never)]
    fn recycle(&mut self) {
        let Inner::Recorded { shared, .. } = &mut self.inner else {
            return;
        };
        let Some(unique) = Arc::get_mut(shared) else {
            return;
        };
        unique.sink = None;
        let done = std::mem::replace(
            &mut self.inner,
            Inner::NotRecorded {
                trace_id: TraceId::from_parts(0, [0; 12]),
                id: EntityId::from_u64(0),
                carried: None,
                sampled: false,
                traceparent: false,
            },
        );
        if let Inner::Recorded { shared, .. } = done {
            // After the thread's storage is gone, the allocation is simply freed.
            let _ = SPARE.try_with(move |spare| spare.set(Some(shared)));
        }
    }
}

impl<'a> Record<'a> for Context {}

impl<'a> crate::record::sealed::Sealed<'a> for Context {
    fn change(&self, f: impl FnOnce(&Patch<'a>)) {
        self.update(f);
    }

    fn push(&self, op: Op<'a>) {
        if let Inner::Recorded { shared, index, id } = &self.inner {
            shared.trace.record_one(*index, *id, &op);
        }
    }

    #[inline]
    fn records(&self) -> bool {
        matches!(self.inner, Inner::Recorded { .. })
    }
}

/// An open segment or subsegment (an *entity*): one unit of work of this service (usually
/// one incoming request), or a unit of work inside one (a downstream call, a query, a step).
///
/// Dereferences to [`Context`] for recording. Ends when [`Entity::end`] is called or when
/// dropped, so a cancelled future still closes what it opened. A segment is sent once it and
/// all its subsegments have ended.
#[must_use = "an entity ends when dropped"]
pub struct Entity {
    ctx: Context,
    ended: bool,
}

impl Entity {
    pub(crate) fn from_context(ctx: Context) -> Self {
        Entity { ctx, ended: false }
    }

    /// An entity that records nothing (used when there is no current context).
    pub fn noop() -> Self {
        Entity {
            ctx: Context::new_unsampled(TraceId::from_parts(0, [0; 12]), None, false),
            ended: true,
        }
    }

    /// A handle to record into this entity from elsewhere (clones share the entity).
    pub fn context(&self) -> Context {
        self.ctx.clone()
    }

    /// Ends the entity now.
    pub fn end(mut self) {
        self.ended = true;
        self.ctx.end();
    }

    /// Records the last changes and ends the entity, under one lock (`last` runs only when
    /// the entity is recorded, without any lock held).
    ///
    /// ```
    /// use xray_sdk::Record;
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// # let segment = recorder.segment("svc").begin();
    /// let call = segment.begin_subsegment("payments.internal");
    /// call.end_with(|p| {
    ///     p.set_http_response(503, None);
    ///     p.set_http_traced(true);
    /// });
    /// ```
    pub fn end_with<'a>(mut self, last: impl FnOnce(&Patch<'a>)) {
        self.ended = true;
        self.ctx.end_with(last);
    }
}

impl std::ops::Deref for Entity {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for Entity {
    fn drop(&mut self) {
        if !self.ended {
            self.ctx.end();
        }
    }
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Entity").field(&self.ctx).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Context, Inner, SPARE, Shared};
    use crate::Record;
    use crate::testing::UdpCapture;

    /// Where the trace `ctx` records into lives, if it is recorded.
    fn allocation(ctx: &Context) -> Option<*const Shared> {
        match &ctx.inner {
            Inner::Recorded { shared, .. } => Some(Arc::as_ptr(shared)),
            Inner::NotRecorded { .. } => None,
        }
    }

    /// This thread's spare allocation and whether it still holds a sink (left in place).
    fn spare() -> Option<(*const Shared, bool)> {
        SPARE.with(|cell| {
            let spare = cell.take();
            let seen = spare.as_ref().map(|s| (Arc::as_ptr(s), s.sink.is_some()));
            cell.set(spare);
            seen
        })
    }

    #[test]
    fn a_sent_trace_s_allocation_serves_the_next_segment_with_nothing_of_the_first() {
        let capture = UdpCapture::start().unwrap();
        let recorder = capture.recorder("spare");
        SPARE.with(|cell| drop(cell.take()));

        let first = recorder.segment("first").begin_with(|p| {
            p.set_http_url("https://example.com/first");
            p.annotate("order", 7);
        });
        let kept = allocation(&first).expect("recorded");
        first.begin_subsegment("DynamoDB").end();
        first.end_with(|p| p.set_http_response(503, None));
        // Sent and no longer referred to: kept for the next segment, without its sink.
        assert_eq!(spare(), Some((kept, false)));

        let second = recorder.segment("second").begin();
        assert_eq!(allocation(&second), Some(kept));
        assert_eq!(spare(), None);
        second.annotate("tier", "gold");
        second.end();
        recorder.flush(Duration::from_secs(5)).unwrap();

        let docs = capture.documents(2, Duration::from_secs(5));
        assert_eq!(docs.len(), 2, "{docs:?}");
        let [a, b] = [&docs[0], &docs[1]];
        assert_eq!(a["name"], "first");
        assert_eq!(a["annotations"]["order"], 7);
        assert_eq!(a["http"]["request"]["url"], "https://example.com/first");
        assert_eq!(a["fault"], true);
        assert_eq!(a["subsegments"].as_array().map(Vec::len), Some(1));
        assert_eq!(b["name"], "second");
        assert_eq!(b["annotations"], serde_json::json!({ "tier": "gold" }));
        for key in ["http", "subsegments", "fault", "error", "parent_id"] {
            assert!(b.get(key).is_none(), "{key} in {b}");
        }
        assert!(b["end_time"].as_f64().is_some(), "{b}");
        assert_ne!(a["id"], b["id"]);
        assert_ne!(a["trace_id"], b["trace_id"]);
    }

    #[test]
    fn a_handle_kept_past_the_end_keeps_the_trace_out_of_the_spare() {
        let capture = UdpCapture::start().unwrap();
        let recorder = capture.recorder("spare");
        SPARE.with(|cell| drop(cell.take()));

        let segment = recorder.segment("kept").begin();
        let ctx = segment.context();
        segment.end();
        assert_eq!(spare(), None);
        // Still a working handle: what it records after the send is ignored.
        ctx.annotate("late", true);
        drop(ctx);

        let next = recorder.segment("next").begin();
        next.end();
        recorder.flush(Duration::from_secs(5)).unwrap();
        let docs = capture.documents(2, Duration::from_secs(5));
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert!(docs[0].get("annotations").is_none(), "{}", docs[0]);
        assert_eq!(docs[1]["name"], "next");
    }

    #[test]
    fn the_spare_keeps_no_recorder_alive() {
        let capture = UdpCapture::start().unwrap();
        let recorder = capture.recorder("spare");
        let segment = recorder.segment("last").begin();
        let sink = match &segment.inner {
            Inner::Recorded { shared, .. } => Arc::downgrade(shared.sink.as_ref().unwrap()),
            Inner::NotRecorded { .. } => panic!("not recorded"),
        };
        segment.end();
        assert!(spare().is_some());
        recorder.flush(Duration::from_secs(5)).unwrap();
        drop(recorder);
        // With the recorder gone nothing holds its sink (the emitter's queue closes with it),
        // though this thread keeps the trace's allocation.
        assert!(sink.upgrade().is_none());
        assert_eq!(capture.documents(1, Duration::from_secs(5)).len(), 1);
    }
}
