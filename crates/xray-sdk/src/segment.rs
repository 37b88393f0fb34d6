//! Segments, subsegments and the [`Context`] handle that records into them.
//!
//! All entities of one trace segment live in one arena behind one mutex, so beginning a
//! subsegment is a push onto a vector and ending one is a store, with no allocation for names
//! given as `&'static str`. When the segment and all its subsegments have ended, the arena is
//! handed to the emitter's queue in one move; serialization happens on the emitter thread.
//!
//! Unsampled requests have no arena at all: their [`Context`] carries only the IDs and the
//! extra header keys that go downstream.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::deferred::DeferredFields;
use crate::header::{SamplingFlag, TraceHeader};
use crate::id::{EntityId, TraceId};
use crate::model::{
    AnnotationError, AnnotationValue, Cause, Exception, Http, HttpRequest,
    MAX_ANNOTATION_VALUE_LEN, Namespace, Sql, is_valid_name, sanitize_name,
    validate_annotation_key,
};
use crate::recorder::RecorderInner;
use crate::timestamp::now_micros;

pub(crate) const NO_PARENT: u32 = u32::MAX;

/// The most a new trace's entity arena asks of the allocator at first.
///
/// The arena is allocated on the request thread and freed on the emitter's, so the request
/// thread's allocator cache rarely has a block ready, and a request of 1 KiB or more is the
/// worst case: glibc serves it from its large bins, which first merges every small freed
/// block (`malloc_consolidate`). Measured on the tower layer's sampled request, an arena of
/// 4 entities of 256 bytes (a 1 024-byte request) cost 0.07 to 0.35 µs more than one under
/// 1 000 bytes. Staying under that keeps the arena among the small, cached sizes.
const ARENA_BYTES: usize = 1000;

/// Entities room is made for when a trace begins: the segment and, within
/// [`ARENA_BYTES`], its first subsegments (4 while an entity takes at most 250 bytes).
const ARENA_CAPACITY: usize = ARENA_BYTES / std::mem::size_of::<EntityData>();

// A segment with three subsegments is the common shape (and the core benchmark's): a new
// arena holds it without growing, within ARENA_BYTES. An entity that grows past 250 bytes
// fails the build here.
const _: () = assert!(
    ARENA_CAPACITY >= 4,
    "an entity must stay within 250 bytes: see ARENA_BYTES"
);

/// Room made in an entity's `aws` block when its first field is set.
const AWS_FIELDS_HINT: usize = 12;

pub(crate) const FLAG_ERROR: u8 = 1;
pub(crate) const FLAG_FAULT: u8 = 2;
pub(crate) const FLAG_THROTTLE: u8 = 4;

/// Flags for an HTTP status, as all official SDKs set them: 4xx error, 429 also throttle,
/// 5xx fault.
pub(crate) fn status_flags(status: u16) -> u8 {
    match status {
        429 => FLAG_ERROR | FLAG_THROTTLE,
        400..=499 => FLAG_ERROR,
        500..=599 => FLAG_FAULT,
        _ => 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntityState {
    Open,
    Ended,
    /// Already sent as an independent subsegment; only a tombstone remains.
    Streamed,
}

/// A value of the `aws` block: built JSON, or JSON text copied as it is.
#[derive(Debug)]
pub(crate) enum AwsValue {
    Value(Value),
    Raw(Box<serde_json::value::RawValue>),
}

/// An entity's name: owned or borrowed like most names, or a reference to a name shared
/// between many entities (a service's fixed segment name), which costs no copy per entity.
#[derive(Clone)]
pub(crate) enum EntityName {
    Cow(Cow<'static, str>),
    Shared(Arc<str>),
}

impl Default for EntityName {
    fn default() -> Self {
        EntityName::Cow(Cow::Borrowed(""))
    }
}

impl std::ops::Deref for EntityName {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            EntityName::Cow(name) => name,
            EntityName::Shared(name) => name,
        }
    }
}

impl fmt::Debug for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl From<Cow<'static, str>> for EntityName {
    fn from(name: Cow<'static, str>) -> Self {
        EntityName::Cow(name)
    }
}

impl EntityName {
    /// `name` itself when it is a valid name, otherwise a sanitized copy.
    fn shared(name: &Arc<str>) -> Self {
        if is_valid_name(name) {
            EntityName::Shared(Arc::clone(name))
        } else {
            EntityName::Cow(sanitize_name(name.to_string()))
        }
    }
}

/// Everything beyond the few fields every entity has; boxed so the common entity stays small.
#[derive(Debug, Default)]
pub(crate) struct EntityExt {
    /// Fields of the subsegment's `aws` block, in the order they were first set.
    pub(crate) aws: Vec<(Cow<'static, str>, AwsValue)>,
    /// Deferred fields after the first (which is inline in the entity).
    pub(crate) deferred: Vec<Box<dyn DeferredFields>>,
    pub(crate) annotations: Vec<(Cow<'static, str>, AnnotationValue)>,
    pub(crate) metadata: Option<Map<String, Value>>,
    pub(crate) cause: Option<Cause>,
    pub(crate) sql: Option<Sql>,
    pub(crate) user: Option<String>,
    pub(crate) origin: Option<String>,
    pub(crate) resource_arn: Option<String>,
    pub(crate) service_version: Option<String>,
    pub(crate) precursor_ids: Vec<EntityId>,
}

#[derive(Debug)]
pub(crate) struct EntityData {
    pub(crate) id: EntityId,
    /// Index of the parent in the arena, or [`NO_PARENT`].
    pub(crate) parent: u32,
    /// The parent's ID: for a segment the caller's (from the header), for a subsegment the
    /// enclosing entity's, kept so a streamed subtree knows where it belongs.
    pub(crate) parent_id: Option<EntityId>,
    pub(crate) name: EntityName,
    pub(crate) start_us: u64,
    /// 0 while the entity is in progress (a plain integer rather than an `Option`: 8 bytes
    /// fewer per entity, see [`ARENA_BYTES`]).
    pub(crate) end_us: u64,
    pub(crate) flags: u8,
    pub(crate) namespace: Option<Namespace>,
    pub(crate) state: EntityState,
    /// Inline rather than in `ext`: segments and remote calls nearly always have one, and
    /// one allocation fewer per entity matters on the request path.
    pub(crate) http: Option<Http>,
    /// The first deferred fields, inline for the same reason (an AWS call has one); any
    /// further ones are in `ext`.
    pub(crate) deferred: Option<Box<dyn DeferredFields>>,
    pub(crate) ext: Option<Box<EntityExt>>,
    /// Tree links inside the arena ([`NO_PARENT`] when absent), so a subtree can be moved
    /// out without scanning the whole arena.
    first_child: u32,
    last_child: u32,
    next_sibling: u32,
    /// Descendants not yet ended.
    open_descendants: u32,
    /// Next entry of the list of ended subsegments still in the arena.
    next_completed: u32,
}

impl EntityData {
    fn new(
        id: EntityId,
        parent: u32,
        parent_id: Option<EntityId>,
        name: Cow<'static, str>,
    ) -> Self {
        EntityData {
            id,
            parent,
            parent_id,
            name: name.into(),
            start_us: now_micros(),
            end_us: 0,
            flags: 0,
            namespace: None,
            state: EntityState::Open,
            http: None,
            deferred: None,
            ext: None,
            first_child: NO_PARENT,
            last_child: NO_PARENT,
            next_sibling: NO_PARENT,
            open_descendants: 0,
            next_completed: NO_PARENT,
        }
    }

    /// A finished entity with typical content, for benchmarks.
    pub(crate) fn bench(id: EntityId, parent: u32, parent_id: Option<EntityId>) -> Self {
        let mut e = EntityData::new(id, parent, parent_id, Cow::Borrowed("downstream-call"));
        e.end_us = e.start_us + 1500;
        e.namespace = Some(Namespace::Remote);
        e.http = Some(Http {
            request: HttpRequest {
                method: Some("GET".into()),
                url: Some("http://backend.internal:8080/api/items/42".into()),
                ..HttpRequest::default()
            },
            response: crate::model::HttpResponse {
                status: Some(200),
                content_length: Some(512),
            },
        });
        e.ext()
            .annotations
            .push((Cow::Borrowed("item"), AnnotationValue::Int(42)));
        e
    }

    fn ext(&mut self) -> &mut EntityExt {
        self.ext.get_or_insert_with(Box::default)
    }

    fn tombstone(&mut self) -> EntityData {
        let taken = EntityData {
            id: self.id,
            parent: self.parent,
            parent_id: self.parent_id,
            name: std::mem::take(&mut self.name),
            start_us: self.start_us,
            end_us: self.end_us,
            flags: self.flags,
            namespace: self.namespace,
            state: EntityState::Ended,
            http: self.http.take(),
            deferred: self.deferred.take(),
            ext: self.ext.take(),
            first_child: NO_PARENT,
            last_child: NO_PARENT,
            next_sibling: NO_PARENT,
            open_descendants: 0,
            next_completed: NO_PARENT,
        };
        self.state = EntityState::Streamed;
        taken
    }
}

/// What the emitter receives: a whole segment (entity 0 is the segment) or a set of completed
/// subtrees streamed early (every entity with `parent == NO_PARENT` is the root of an
/// independent subsegment document).
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) trace_id: TraceId,
    pub(crate) entities: Vec<EntityData>,
    pub(crate) is_segment: bool,
    pub(crate) rule_name: Option<Arc<str>>,
}

#[derive(Debug)]
pub(crate) struct TraceState {
    pub(crate) entities: Vec<EntityData>,
    /// Ended subsegments still held in the arena (candidates for streaming), as a list linked
    /// through the entities, so ending a subsegment never allocates.
    completed_head: u32,
    completed_len: u32,
    sent: bool,
}

impl TraceState {
    /// Adds `delta` (+1 or -1) to the open-descendant count of every ancestor of `index`.
    fn adjust_ancestors(&mut self, index: usize, increment: bool) {
        let mut p = self.entities.get(index).map_or(NO_PARENT, |e| e.parent);
        while let Some(e) = self.entities.get_mut(p as usize) {
            e.open_descendants = if increment {
                e.open_descendants + 1
            } else {
                e.open_descendants.saturating_sub(1)
            };
            p = e.parent;
        }
    }

    fn link_child(&mut self, parent: usize, child: u32) {
        let last = match self.entities.get_mut(parent) {
            Some(p) => {
                let last = p.last_child;
                p.last_child = child;
                if last == NO_PARENT {
                    p.first_child = child;
                }
                last
            }
            None => return,
        };
        if let Some(prev) = self.entities.get_mut(last as usize) {
            prev.next_sibling = child;
        }
    }

    /// Ended, with every descendant ended, and not streamed yet.
    fn is_complete(&self, index: usize) -> bool {
        self.entities
            .get(index)
            .is_some_and(|e| e.state == EntityState::Ended && e.open_descendants == 0)
    }
}

pub(crate) struct TraceShared {
    pub(crate) trace_id: TraceId,
    /// The ID of the segment (entity 0 of the arena).
    segment_id: EntityId,
    pub(crate) extra: Option<Arc<str>>,
    pub(crate) rule_name: Option<Arc<str>>,
    pub(crate) recorder: Arc<RecorderInner>,
    state: Mutex<TraceState>,
}

impl fmt::Debug for TraceShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceShared")
            .field("trace_id", &self.trace_id)
            .finish_non_exhaustive()
    }
}

impl TraceShared {
    /// Locks the trace's state, or `None` when this thread already holds the lock, directly
    /// or further out: user code run under it (an `update` or `end_with` closure, a value
    /// serialized as metadata, an error formatted as a cause, or a `tracing` event they emit)
    /// touched the same trace, perhaps through another trace's closure. Waiting would
    /// deadlock; the caller drops the change instead.
    fn lock(&self) -> Option<TraceGuard<'_>> {
        let me = self as *const TraceShared as usize;
        // One thread-local access: this trace becomes the innermost one held, and what was
        // held before comes back.
        let prev = HELD
            .try_with(|h| h.replace(me | (h.get() & DEFERRED_BIT)))
            .unwrap_or(0);
        if prev & !DEFERRED_BIT != 0 {
            // Another trace (or this one) is held already: rare.
            return self.lock_nested(me, prev);
        }
        // A panic while holding the lock leaves consistent data (every update is a single
        // store), so a poisoned lock is still usable.
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Some(TraceGuard {
            state,
            _held: HeldMarker { prev },
        })
    }

    /// [`Self::lock`] when this thread already holds a trace's lock (`prev`, the marker
    /// `lock` replaced with `me`, this trace): user code under that lock touched a trace.
    ///
    /// `None` at once when this trace is held here or further out (waiting would deadlock).
    /// Another trace's lock is waited for at most [`NESTED_LOCK_WAIT`], far longer than any
    /// change holds a lock: a thread doing the same the other way round would otherwise
    /// deadlock with this one. After that the change is dropped.
    #[cold]
    #[inline(never)]
    fn lock_nested(&self, me: usize, prev: usize) -> Option<TraceGuard<'_>> {
        if !push_outer(prev & !DEFERRED_BIT, me) {
            let _ = HELD.try_with(|h| h.set(prev));
            return None;
        }
        // Dropped without a lock (the wait gave up), it restores what `lock` marked.
        let held = HeldMarker { prev };
        let mut deadline = None;
        let state = loop {
            match self.state.try_lock() {
                Ok(guard) => break guard,
                Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
            let now = Instant::now();
            if now >= *deadline.get_or_insert(now + NESTED_LOCK_WAIT) {
                tracing::debug!(
                    waited_ms = NESTED_LOCK_WAIT.as_millis() as u64,
                    "X-Ray: a trace's lock stayed taken while this thread held another trace's (user code under each recording into the other?); giving up rather than risking a deadlock"
                );
                return None;
            }
            std::thread::yield_now();
        };
        Some(TraceGuard { state, _held: held })
    }
}

/// How long a thread that holds one trace's lock waits for another trace's.
const NESTED_LOCK_WAIT: Duration = Duration::from_millis(20);

/// This thread is about to lock trace `me` while it holds `innermost` (user code under a
/// trace's lock touching a trace again: rare). Records `innermost` as held further out, or
/// returns `false` when `me` is already held, here or further out, where waiting would
/// deadlock.
#[cold]
#[inline(never)]
fn push_outer(innermost: usize, me: usize) -> bool {
    if innermost == me {
        return false;
    }
    OUTER
        .try_with(|o| {
            let Ok(mut outer) = o.try_borrow_mut() else {
                return false;
            };
            if outer.contains(&me) {
                return false;
            }
            outer.push(innermost);
            true
        })
        .unwrap_or(false)
}

/// Undoes [`push_outer`] when the nested lock is released.
fn pop_outer() {
    let _ = OUTER.try_with(|o| {
        if let Ok(mut outer) = o.try_borrow_mut() {
            outer.pop();
        }
    });
}

thread_local! {
    /// The address of the trace whose lock this thread holds (the innermost; 0: none), with
    /// [`DEFERRED_BIT`] set while `DEFERRED_ENDS` has entries.
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// The other traces whose locks this thread holds, outermost first (empty unless user
    /// code under one trace's lock took another's).
    static OUTER: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// Ends asked for while this thread held the same trace's lock, applied on release.
    static DEFERRED_ENDS: RefCell<Vec<(Arc<TraceShared>, u32, u64)>> = const { RefCell::new(Vec::new()) };
}

/// The low bit of `HELD` (a `TraceShared` is aligned to more than 1 byte).
const DEFERRED_BIT: usize = 1;

/// The locked state of a trace. Its fields drop in order: the lock is released first, then
/// the marker, which applies the ends deferred meanwhile.
struct TraceGuard<'a> {
    state: MutexGuard<'a, TraceState>,
    _held: HeldMarker,
}

impl std::ops::Deref for TraceGuard<'_> {
    type Target = TraceState;
    fn deref(&self) -> &TraceState {
        &self.state
    }
}

impl std::ops::DerefMut for TraceGuard<'_> {
    fn deref_mut(&mut self) -> &mut TraceState {
        &mut self.state
    }
}

struct HeldMarker {
    prev: usize,
}

impl Drop for HeldMarker {
    #[inline]
    fn drop(&mut self) {
        let held = HELD
            .try_with(|h| h.replace(self.prev & !DEFERRED_BIT))
            .unwrap_or(0);
        // One test for the two rare cases: another trace is still held further out, or ends
        // were deferred meanwhile.
        if (self.prev & !DEFERRED_BIT) | (held & DEFERRED_BIT) != 0 {
            release_nested(self.prev, held);
        }
    }
}

/// The rare part of releasing a trace's lock: forgets the trace held further out that
/// [`push_outer`] recorded, then applies the ends deferred meanwhile.
#[cold]
#[inline(never)]
fn release_nested(prev: usize, held: usize) {
    if prev & !DEFERRED_BIT != 0 {
        pop_outer();
    }
    if held & DEFERRED_BIT != 0 {
        apply_deferred_ends();
    }
}

/// Applies the ends deferred while this thread held a trace's lock (rare: an end from
/// inside a closure run under the lock).
#[cold]
#[inline(never)]
fn apply_deferred_ends() {
    let deferred = DEFERRED_ENDS
        .try_with(|d| d.try_borrow_mut().map(|mut d| std::mem::take(&mut *d)).ok())
        .ok()
        .flatten()
        .unwrap_or_default();
    for (trace, index, end_us) in deferred {
        let batch = match trace.lock() {
            Some(mut state) => end_in_arena(&mut state, &trace, index as usize, end_us),
            None => {
                // Still held further out on this thread: try again when that releases.
                defer_end(&trace, index, end_us);
                None
            }
        };
        if let Some(batch) = batch {
            trace.recorder.emitter.submit(batch);
        }
    }
}

/// Remembers an end that cannot be applied now (this thread holds the trace's lock).
fn defer_end(trace: &Arc<TraceShared>, index: u32, end_us: u64) {
    let _ = DEFERRED_ENDS.try_with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            d.push((Arc::clone(trace), index, end_us));
            let _ = HELD.try_with(|h| h.set(h.get() | DEFERRED_BIT));
        }
    });
}

/// Logs a change dropped because the code making it ran under the same trace's lock.
#[cold]
fn reentered(what: &'static str) {
    tracing::debug!(
        operation = what,
        "X-Ray: a segment was changed from code running inside a change to the same trace (an update or end_with closure, metadata serialization), or its lock could not be taken without risking a deadlock; this change is not recorded"
    );
}

#[derive(Clone)]
enum Inner {
    Sampled {
        trace: Arc<TraceShared>,
        index: u32,
        id: EntityId,
    },
    /// Nothing is recorded: the trace is not sampled, or (`sampled: true`) the work began
    /// where it could not be recorded (its segment already sent, or inside a closure that
    /// holds the trace's lock), while the trace's decision still travels downstream.
    Unsampled {
        trace_id: TraceId,
        id: EntityId,
        extra: Option<Arc<str>>,
        sampled: bool,
    },
}

/// A handle to an open segment or subsegment: records into it, begins subsegments under it,
/// and produces the trace header for downstream calls.
///
/// `Context` is cheap to clone (a reference count) and `Send + Sync`. It does not own the
/// entity: the [`Segment`] or [`Subsegment`] guard does, and ends it when dropped. Recording
/// through a `Context` whose entity was already sent is ignored. For an unsampled request,
/// every recording method is a no-op and only the IDs are kept, so the decision still
/// travels downstream.
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
    pub(crate) fn new_segment(
        recorder: Arc<RecorderInner>,
        name: Cow<'static, str>,
        trace_id: TraceId,
        parent_id: Option<EntityId>,
        extra: Option<Arc<str>>,
        rule_name: Option<Arc<str>>,
        init: impl FnOnce(&mut EntityMut<'_>),
    ) -> Context {
        let id = EntityId::new();
        let mut entities = Vec::with_capacity(ARENA_CAPACITY);
        let mut segment = EntityData::new(id, NO_PARENT, parent_id, sanitize_name(name));
        init(&mut EntityMut::new(&mut segment));
        entities.push(segment);
        let trace = Arc::new(TraceShared {
            trace_id,
            segment_id: id,
            extra,
            rule_name,
            recorder,
            state: Mutex::new(TraceState {
                entities,
                completed_head: NO_PARENT,
                completed_len: 0,
                sent: false,
            }),
        });
        Context {
            inner: Inner::Sampled {
                trace,
                index: 0,
                id,
            },
        }
    }

    pub(crate) fn new_unsampled(trace_id: TraceId, extra: Option<Arc<str>>) -> Context {
        Context {
            inner: Inner::Unsampled {
                trace_id,
                id: EntityId::new(),
                extra,
                sampled: false,
            },
        }
    }

    /// A context of a sampled trace whose work is not recorded.
    fn not_recorded(trace: &TraceShared) -> Context {
        Context {
            inner: Inner::Unsampled {
                trace_id: trace.trace_id,
                id: EntityId::new(),
                extra: trace.extra.clone(),
                sampled: true,
            },
        }
    }

    /// The current context of this task or thread, if any (see [`crate::context`]).
    pub fn current() -> Option<Context> {
        crate::context::current()
    }

    /// The trace ID.
    #[inline]
    pub fn trace_id(&self) -> TraceId {
        match &self.inner {
            Inner::Sampled { trace, .. } => trace.trace_id,
            Inner::Unsampled { trace_id, .. } => *trace_id,
        }
    }

    /// The ID of this segment or subsegment.
    #[inline]
    pub fn id(&self) -> EntityId {
        match &self.inner {
            Inner::Sampled { id, .. } | Inner::Unsampled { id, .. } => *id,
        }
    }

    /// The segment this entity belongs to (itself for a segment), while it is recorded;
    /// `None` when nothing is recorded (an unsampled trace). For example, to annotate the
    /// request's segment from deep inside its subsegments.
    ///
    /// ```
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// # let segment = recorder.begin_segment("svc");
    /// # let sub = segment.begin_subsegment("step");
    /// if let Some(segment) = sub.segment() {
    ///     segment.annotate("customer_tier", "gold");
    /// }
    /// ```
    pub fn segment(&self) -> Option<Context> {
        match &self.inner {
            Inner::Sampled { trace, .. } => Some(Context {
                inner: Inner::Sampled {
                    trace: Arc::clone(trace),
                    index: 0,
                    id: trace.segment_id,
                },
            }),
            Inner::Unsampled { .. } => None,
        }
    }

    /// True when this trace is sampled: its documents are sent, and downstream calls carry
    /// `Sampled=1`. (Work begun under a segment that was already sent is not recorded, but
    /// its trace stays sampled downstream.)
    #[inline]
    pub fn is_sampled(&self) -> bool {
        match &self.inner {
            Inner::Sampled { .. } => true,
            Inner::Unsampled { sampled, .. } => *sampled,
        }
    }

    /// Extra header keys that came in with the trace (such as `Lineage`), as `k=v;k=v`.
    pub fn extra_header_fields(&self) -> Option<&str> {
        match &self.inner {
            Inner::Sampled { trace, .. } => trace.extra.as_deref(),
            Inner::Unsampled { extra, .. } => extra.as_deref(),
        }
    }

    /// The header to send with a downstream call made by this entity:
    /// `Root=<trace>;Parent=<this id>;Sampled=<1|0>` plus the extra keys that came in.
    ///
    /// ```
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// let segment = recorder.begin_segment("svc");
    /// let header = segment.downstream_header();
    /// assert_eq!(header.parent(), Some(segment.id()));
    /// ```
    pub fn downstream_header(&self) -> TraceHeader {
        let extra = match &self.inner {
            Inner::Sampled { trace, .. } => trace.extra.clone(),
            Inner::Unsampled { extra, .. } => extra.clone(),
        };
        TraceHeader::new(
            self.trace_id(),
            Some(self.id()),
            SamplingFlag::from_decision(self.is_sampled()),
        )
        .with_extra_shared(extra)
    }

    /// Runs `f` on this entity's data if it is sampled and still held by the arena.
    fn with_entity<R>(&self, f: impl FnOnce(&mut EntityData) -> R) -> Option<R> {
        let Inner::Sampled { trace, index, .. } = &self.inner else {
            return None;
        };
        let Some(mut state) = trace.lock() else {
            reentered("record");
            return None;
        };
        if state.sent {
            return None;
        }
        let entity = state.entities.get_mut(*index as usize)?;
        if entity.state == EntityState::Streamed {
            return None;
        }
        Some(f(entity))
    }

    /// Makes several changes to this entity under one lock, which is cheaper than calling
    /// the setters one by one. Returns `None` without calling `f` when nothing is recorded:
    /// the trace is not sampled, or the entity was already sent.
    ///
    /// ```
    /// use xray_sdk::Namespace;
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// # let segment = recorder.begin_segment("svc");
    /// let call = segment.begin_subsegment("DynamoDB");
    /// call.update(|e| {
    ///     e.set_namespace(Namespace::Aws);
    ///     e.set_aws_field("operation", "GetItem");
    ///     e.set_aws_field("table_name", "orders");
    /// });
    /// ```
    pub fn update<R>(&self, f: impl FnOnce(&mut EntityMut<'_>) -> R) -> Option<R> {
        self.with_entity(|entity| f(&mut EntityMut::new(entity)))
    }

    /// Begins a subsegment under this entity. The returned guard ends it when dropped.
    pub fn begin_subsegment(&self, name: impl Into<Cow<'static, str>>) -> Subsegment {
        self.begin_subsegment_with(name, |_| {})
    }

    /// Begins a subsegment and records into it before it joins the trace, under one lock:
    /// cheaper than [`Context::begin_subsegment`] followed by several setters. `init` runs
    /// only when the trace is sampled, without the trace's lock (so it may record elsewhere
    /// in the trace); its changes are dropped if the segment was sent meanwhile.
    ///
    /// ```
    /// use xray_sdk::{HttpRequest, Namespace};
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// let segment = recorder.begin_segment("svc");
    /// let call = segment.begin_subsegment_with("inventory.internal", |e| {
    ///     e.set_namespace(Namespace::Remote);
    ///     e.set_http_request(HttpRequest {
    ///         method: Some("GET".into()),
    ///         url: Some("http://inventory.internal/items/42".into()),
    ///         ..HttpRequest::default()
    ///     });
    /// });
    /// call.end_with(|e| e.set_http_response(200, Some(512)));
    /// ```
    pub fn begin_subsegment_with(
        &self,
        name: impl Into<Cow<'static, str>>,
        init: impl FnOnce(&mut EntityMut<'_>),
    ) -> Subsegment {
        let ctx = match &self.inner {
            Inner::Unsampled {
                trace_id,
                extra,
                sampled,
                ..
            } => Context {
                inner: Inner::Unsampled {
                    trace_id: *trace_id,
                    id: EntityId::new(),
                    extra: extra.clone(),
                    sampled: *sampled,
                },
            },
            Inner::Sampled { trace, index, id } => {
                // `init` runs on the new entity before it joins the arena, without the
                // trace's lock: user code in it may record into the same trace, and a panic
                // in it leaves nothing half-linked (the segment would wait for it forever).
                let new_id = EntityId::new();
                let mut entity = EntityData::new(new_id, *index, Some(*id), sanitize_name(name));
                init(&mut EntityMut::new(&mut entity));
                match trace.lock() {
                    Some(mut state) if !state.sent => {
                        let new_index =
                            u32::try_from(state.entities.len()).unwrap_or(NO_PARENT - 1);
                        state.entities.push(entity);
                        state.link_child(*index as usize, new_index);
                        state.adjust_ancestors(new_index as usize, true);
                        drop(state);
                        Context {
                            inner: Inner::Sampled {
                                trace: Arc::clone(trace),
                                index: new_index,
                                id: new_id,
                            },
                        }
                    }
                    // The segment was already sent: record nothing, keep propagating.
                    Some(_) => Context::not_recorded(trace),
                    None => {
                        reentered("begin a subsegment");
                        Context::not_recorded(trace)
                    }
                }
            }
        };
        Subsegment { ctx, ended: false }
    }

    /// Adds an annotation (indexed for filter expressions). An invalid key or a non-finite
    /// number is logged at debug level and dropped; use [`Context::try_annotate`] to get the
    /// error instead. String values are cut to 1000 characters.
    pub fn annotate(&self, key: impl Into<Cow<'static, str>>, value: impl Into<AnnotationValue>) {
        if let Err(e) = self.try_annotate(key, value) {
            tracing::debug!(error = %e, "annotation dropped");
        }
    }

    /// Adds an annotation, or says why it cannot be added.
    pub fn try_annotate(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<AnnotationValue>,
    ) -> Result<(), AnnotationError> {
        if !self.is_sampled() {
            return Ok(());
        }
        let (key, value) = checked_annotation(key.into(), value.into())?;
        self.with_entity(|e| insert_annotation(e, key, value));
        Ok(())
    }

    /// Adds metadata under the `default` namespace. Values that cannot be turned into JSON are
    /// logged at debug level and dropped.
    pub fn put_metadata(&self, key: impl Into<String>, value: impl Serialize) {
        self.put_metadata_in("default", key, value);
    }

    /// Adds metadata under a namespace. Namespaces starting with `AWS.` are reserved for AWS
    /// and refused (logged at debug level).
    pub fn put_metadata_in(&self, namespace: &str, key: impl Into<String>, value: impl Serialize) {
        if !self.is_sampled() {
            return;
        }
        // Converted before taking the lock: serialization can be slow.
        if let Some(value) = metadata_value(namespace, value) {
            let key = key.into();
            self.with_entity(|e| insert_metadata(e, namespace, key, value));
        }
    }

    /// Sets the `http.request` block.
    pub fn set_http_request(&self, request: HttpRequest) {
        self.update(|e| e.set_http_request(request));
    }

    /// Marks the downstream service of this subsegment as traced (`http.request.traced`).
    pub fn set_http_traced(&self, traced: bool) {
        self.update(|e| e.set_http_traced(traced));
    }

    /// Sets the `http.response` block and the error/throttle/fault flags the status implies:
    /// 4xx error, 429 throttle (and error), 5xx fault.
    pub fn set_http_response(&self, status: u16, content_length: Option<u64>) {
        self.update(|e| e.set_http_response(status, content_length));
    }

    /// Sets the `error` flag (a client error, 4xx-like).
    pub fn set_error(&self) {
        self.update(|e| e.set_error());
    }

    /// Sets the `fault` flag (a server error, 5xx-like).
    pub fn set_fault(&self) {
        self.update(|e| e.set_fault());
    }

    /// Sets the `throttle` and `error` flags.
    pub fn set_throttle(&self) {
        self.update(|e| e.set_throttle());
    }

    /// Records an error and its `source()` chain as the `cause`, and sets `fault`.
    pub fn record_error<E: std::error::Error + 'static>(&self, error: &E) {
        if self.is_sampled() {
            let cause = Cause::from_error(error);
            self.update(|e| {
                e.add_cause(cause);
                e.set_fault();
            });
        }
    }

    /// Records an error given as a trait object, and sets `fault`.
    pub fn record_dyn_error(&self, error: &(dyn std::error::Error + 'static)) {
        if self.is_sampled() {
            let cause = Cause::from_dyn_error(error);
            self.update(|e| {
                e.add_cause(cause);
                e.set_fault();
            });
        }
    }

    /// Adds the exceptions of `cause` to this entity's `cause` block without changing flags.
    pub fn add_cause(&self, cause: Cause) {
        self.update(|e| e.add_cause(cause));
    }

    /// Adds one exception to the `cause` block without changing flags.
    pub fn add_exception(&self, exception: Exception) {
        self.update(|e| e.add_exception(exception));
    }

    /// Sets the subsegment's namespace (`aws` or `remote`).
    pub fn set_namespace(&self, namespace: Namespace) {
        self.update(|e| e.set_namespace(namespace));
    }

    /// Sets one field of the `aws` block (subsegments: `operation`, `region`, `request_id`,
    /// `retries`, `table_name`, ...; segments: `account_id`, `elastic_beanstalk`, ...).
    /// Setting a key again replaces its value. On a segment, the keys the SDK writes itself
    /// (`xray`, and `ecs`, `ec2`, `eks`, `account_id` when an environment plugin found them)
    /// keep the SDK's values.
    pub fn set_aws_field(&self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let (key, value) = (key.into(), value.into());
        self.update(|e| e.set_aws_field(key, value));
    }

    /// Sets the `sql` block.
    pub fn set_sql(&self, sql: Sql) {
        self.update(|e| e.set_sql(sql));
    }

    /// Sets the `user` field (segments).
    pub fn set_user(&self, user: impl Into<String>) {
        let user = user.into();
        self.update(|e| e.set_user(user));
    }

    /// Sets the `origin` field (segments), e.g. `AWS::ECS::Container`. Overrides the plugins'.
    pub fn set_origin(&self, origin: impl Into<String>) {
        let origin = origin.into();
        self.update(|e| e.set_origin(origin));
    }

    /// Sets `resource_arn`.
    pub fn set_resource_arn(&self, arn: impl Into<String>) {
        let arn = arn.into();
        self.update(|e| e.set_resource_arn(arn));
    }

    /// Sets `service.version` (segments).
    pub fn set_service_version(&self, version: impl Into<String>) {
        let v = version.into();
        self.update(|e| e.set_service_version(v));
    }

    /// Adds a `precursor_ids` entry: a sibling subsegment that completed before this one began.
    pub fn add_precursor_id(&self, id: EntityId) {
        self.update(|e| e.add_precursor_id(id));
    }

    /// Renames the entity (sanitized like every name).
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        let name = sanitize_name(name).into();
        self.with_entity(|e| e.name = name);
    }

    /// Ends the entity this context points to. Used by the guards.
    fn end(&self) {
        self.end_with(|_| {});
    }

    /// Applies `last` (when the entity is recorded and still open), then ends the entity,
    /// all under one lock.
    fn end_with(&self, last: impl FnOnce(&mut EntityMut<'_>)) {
        let Inner::Sampled { trace, index, .. } = &self.inner else {
            return;
        };
        let batch = {
            let Some(mut state) = trace.lock() else {
                // Ended from inside a closure that holds this trace's lock: the end is
                // applied as soon as the lock is released, so the segment still goes out;
                // `last`'s changes cannot be made and are dropped.
                reentered("end");
                defer_end(trace, *index, now_micros());
                return;
            };
            let mut panicked = None;
            if !state.sent
                && let Some(entity) = state.entities.get_mut(*index as usize)
                && entity.state == EntityState::Open
            {
                // A panic in `last` still ends the entity (else its segment would wait for
                // it forever), then carries on once the lock is released.
                let last = std::panic::AssertUnwindSafe(|| last(&mut EntityMut::new(entity)));
                panicked = std::panic::catch_unwind(last).err();
            }
            let batch = end_in_arena(&mut state, trace, *index as usize, now_micros());
            (batch, panicked)
        };
        let (batch, panicked) = batch;
        if let Some(batch) = batch {
            trace.recorder.emitter.submit(batch);
        }
        if let Some(payload) = panicked {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Validates an annotation and cuts a long string value.
fn checked_annotation(
    key: Cow<'static, str>,
    mut value: AnnotationValue,
) -> Result<(Cow<'static, str>, AnnotationValue), AnnotationError> {
    validate_annotation_key(&key)?;
    match &mut value {
        AnnotationValue::Float(f) if !f.is_finite() => {
            return Err(AnnotationError::NonFiniteNumber(key.into_owned()));
        }
        AnnotationValue::String(s) => {
            if let Some((cut, _)) = s.char_indices().nth(MAX_ANNOTATION_VALUE_LEN) {
                *s = Cow::Owned(s[..cut].to_owned());
            }
        }
        _ => {}
    }
    Ok((key, value))
}

fn insert_annotation(e: &mut EntityData, key: Cow<'static, str>, value: AnnotationValue) {
    let anns = &mut e.ext().annotations;
    if let Some(slot) = anns.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
    } else {
        anns.push((key, value));
    }
}

/// The JSON form of a metadata value, or `None` (logged) when the namespace is reserved or
/// the value cannot be serialized.
fn metadata_value(namespace: &str, value: impl Serialize) -> Option<Value> {
    if namespace.starts_with("AWS.") || namespace.is_empty() {
        tracing::debug!(
            namespace,
            "metadata namespace is reserved or empty; dropped"
        );
        return None;
    }
    match serde_json::to_value(value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(error = %e, "metadata value is not serializable; dropped");
            None
        }
    }
}

fn insert_metadata(e: &mut EntityData, namespace: &str, key: String, value: Value) {
    let all = e.ext().metadata.get_or_insert_with(Map::new);
    if !all.contains_key(namespace) {
        all.insert(namespace.to_owned(), Value::Object(Map::new()));
    }
    if let Some(Value::Object(map)) = all.get_mut(namespace) {
        map.insert(key, value);
    }
}

/// Write access to one open segment or subsegment, for several changes under one lock. Get
/// one from [`Context::update`], [`Context::begin_subsegment_with`],
/// [`Subsegment::end_with`], [`Segment::end_with`] or
/// [`SegmentBuilder::begin_with`](crate::recorder::SegmentBuilder::begin_with).
///
/// The methods are those of [`Context`] with the same names. Keep the closures short: the
/// segment's lock is held while they run.
pub struct EntityMut<'a> {
    entity: &'a mut EntityData,
}

impl fmt::Debug for EntityMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntityMut")
            .field("id", &self.entity.id)
            .field("name", &self.entity.name)
            .finish_non_exhaustive()
    }
}

impl<'a> EntityMut<'a> {
    pub(crate) fn new(entity: &'a mut EntityData) -> Self {
        EntityMut { entity }
    }

    /// The entity's ID.
    pub fn id(&self) -> EntityId {
        self.entity.id
    }

    /// Renames the entity (sanitized like every name).
    pub fn set_name(&mut self, name: impl Into<Cow<'static, str>>) {
        self.entity.name = sanitize_name(name).into();
    }

    /// Renames the entity with a name shared between many entities, without copying it: a
    /// valid name (see [`sanitize_name`]) is kept by reference, any other is sanitized into a
    /// copy. For names every request uses, such as a service's fixed segment name.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # let recorder = xray_sdk::Recorder::builder().ignore_env().build().unwrap();
    /// let name: Arc<str> = Arc::from("orders-api");
    /// let segment = recorder
    ///     .segment("")
    ///     .sampled(true)
    ///     .begin_with(|e| e.set_shared_name(&name));
    /// segment.end();
    /// ```
    pub fn set_shared_name(&mut self, name: &Arc<str>) {
        self.entity.name = EntityName::shared(name);
    }

    /// Sets the subsegment's namespace (`aws` or `remote`).
    pub fn set_namespace(&mut self, namespace: Namespace) {
        self.entity.namespace = Some(namespace);
    }

    /// Sets the `http.request` block.
    pub fn set_http_request(&mut self, request: HttpRequest) {
        self.entity.http.get_or_insert_with(Http::default).request = request;
    }

    /// Marks the downstream service as traced (`http.request.traced`).
    pub fn set_http_traced(&mut self, traced: bool) {
        self.entity
            .http
            .get_or_insert_with(Http::default)
            .request
            .traced = traced;
    }

    /// Sets the `http.response` block and the flags the status implies: 4xx error, 429
    /// throttle (and error), 5xx fault.
    pub fn set_http_response(&mut self, status: u16, content_length: Option<u64>) {
        self.entity.flags |= status_flags(status);
        let http = self.entity.http.get_or_insert_with(Http::default);
        http.response.status = Some(status);
        http.response.content_length = content_length;
    }

    /// Sets one field of the `aws` block; setting a key again replaces its value.
    pub fn set_aws_field(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.set_aws(key.into(), AwsValue::Value(value.into()));
    }

    /// Sets one field of the `aws` block to a value that is already JSON text, such as a
    /// field copied out of a service's response body, without building it as a [`Value`].
    ///
    /// ```
    /// use serde_json::value::RawValue;
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// # let segment = recorder.begin_segment("svc");
    /// let raw = RawValue::from_string(r#"{"CapacityUnits":0.5}"#.to_owned()).unwrap();
    /// segment.begin_subsegment("DynamoDB").end_with(|e| e.set_aws_field_json("consumed_capacity", raw));
    /// ```
    pub fn set_aws_field_json(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: Box<serde_json::value::RawValue>,
    ) {
        self.set_aws(key.into(), AwsValue::Raw(value));
    }

    /// Adds fields that are worked out when the document is written, on the emitter's
    /// thread, instead of now (see [`crate::deferred`]). Fields set directly win over
    /// deferred ones.
    pub fn add_deferred_fields(&mut self, fields: Box<dyn DeferredFields>) {
        if self.entity.deferred.is_none() {
            self.entity.deferred = Some(fields);
        } else {
            self.entity.ext().deferred.push(fields);
        }
    }

    fn set_aws(&mut self, key: Cow<'static, str>, value: AwsValue) {
        let aws = &mut self.entity.ext().aws;
        match aws.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => {
                if aws.capacity() == 0 {
                    // An AWS call sets about ten fields: one allocation instead of three.
                    aws.reserve_exact(AWS_FIELDS_HINT);
                }
                aws.push((key, value));
            }
        }
    }

    /// Sets the `error` flag.
    pub fn set_error(&mut self) {
        self.entity.flags |= FLAG_ERROR;
    }

    /// Sets the `fault` flag.
    pub fn set_fault(&mut self) {
        self.entity.flags |= FLAG_FAULT;
    }

    /// Sets the `throttle` and `error` flags.
    pub fn set_throttle(&mut self) {
        self.entity.flags |= FLAG_THROTTLE | FLAG_ERROR;
    }

    /// Adds the exceptions of `cause` to the `cause` block without changing flags.
    ///
    /// The first [`MAX_EXCEPTIONS`](crate::model::MAX_EXCEPTIONS) exceptions are kept; later
    /// ones are counted in the last kept exception's `skipped`, so that a long-lived segment
    /// recording an error per message neither grows without bound nor gets too large to send.
    pub fn add_cause(&mut self, mut cause: Cause) {
        let new = std::mem::take(&mut cause.exceptions);
        // The first cause's working directory and paths stay.
        let existing = self.entity.ext().cause.get_or_insert(cause);
        crate::model::append_exceptions(&mut existing.exceptions, new);
    }

    /// Adds one exception to the `cause` block without changing flags.
    pub fn add_exception(&mut self, exception: Exception) {
        self.add_cause(Cause::from_exception(exception));
    }

    /// Adds an annotation; an invalid one is logged at debug level and dropped (see
    /// [`Context::annotate`]).
    pub fn annotate(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<AnnotationValue>,
    ) {
        if let Err(e) = self.try_annotate(key, value) {
            tracing::debug!(error = %e, "annotation dropped");
        }
    }

    /// Adds an annotation, or says why it cannot be added (see [`Context::try_annotate`]).
    pub fn try_annotate(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<AnnotationValue>,
    ) -> Result<(), AnnotationError> {
        let (key, value) = checked_annotation(key.into(), value.into())?;
        insert_annotation(self.entity, key, value);
        Ok(())
    }

    /// Adds metadata under the `default` namespace (see [`Context::put_metadata`]).
    pub fn put_metadata(&mut self, key: impl Into<String>, value: impl Serialize) {
        self.put_metadata_in("default", key, value);
    }

    /// Records an error and its `source()` chain as the `cause`, and sets `fault` (see
    /// [`Context::record_error`]).
    pub fn record_error<E: std::error::Error + 'static>(&mut self, error: &E) {
        self.add_cause(Cause::from_error(error));
        self.set_fault();
    }

    /// Records an error given as a trait object, and sets `fault`.
    pub fn record_dyn_error(&mut self, error: &(dyn std::error::Error + 'static)) {
        self.add_cause(Cause::from_dyn_error(error));
        self.set_fault();
    }

    /// Adds metadata under a namespace (see [`Context::put_metadata_in`]); the value is
    /// serialized while the lock is held.
    pub fn put_metadata_in(
        &mut self,
        namespace: &str,
        key: impl Into<String>,
        value: impl Serialize,
    ) {
        if let Some(value) = metadata_value(namespace, value) {
            insert_metadata(self.entity, namespace, key.into(), value);
        }
    }

    /// Sets the `sql` block.
    pub fn set_sql(&mut self, sql: Sql) {
        self.entity.ext().sql = Some(sql);
    }

    /// Sets the `user` field (segments).
    pub fn set_user(&mut self, user: impl Into<String>) {
        self.entity.ext().user = Some(user.into());
    }

    /// Sets the `origin` field (segments).
    pub fn set_origin(&mut self, origin: impl Into<String>) {
        self.entity.ext().origin = Some(origin.into());
    }

    /// Sets `resource_arn`.
    pub fn set_resource_arn(&mut self, arn: impl Into<String>) {
        self.entity.ext().resource_arn = Some(arn.into());
    }

    /// Sets `service.version` (segments).
    pub fn set_service_version(&mut self, version: impl Into<String>) {
        self.entity.ext().service_version = Some(version.into());
    }

    /// Adds a `precursor_ids` entry.
    pub fn add_precursor_id(&mut self, id: EntityId) {
        self.entity.ext().precursor_ids.push(id);
    }
}

/// Marks entity `index` ended; returns what must be sent now, if anything.
fn end_in_arena(
    state: &mut TraceState,
    trace: &TraceShared,
    index: usize,
    end_us: u64,
) -> Option<Batch> {
    if state.sent {
        return None;
    }
    let entity = state.entities.get_mut(index)?;
    if entity.state != EntityState::Open {
        return None;
    }
    entity.state = EntityState::Ended;
    // Never before the start (see `timestamp`: anchors of two threads may differ slightly).
    // Never 0, which means "in progress".
    entity.end_us = end_us.max(entity.start_us).max(1);
    state.adjust_ancestors(index, false);
    if index != 0 {
        let head = state.completed_head;
        if let Some(e) = state.entities.get_mut(index) {
            e.next_completed = head;
        }
        state.completed_head = index as u32;
        state.completed_len += 1;
    }
    // The segment goes out once it and every subsegment have ended.
    if state.is_complete(0) {
        state.sent = true;
        return Some(take_segment(state, trace));
    }
    let threshold = trace.recorder.config.streaming_threshold;
    if index != 0 && state.completed_len > threshold {
        return stream_completed(state, trace);
    }
    None
}

/// Moves every remaining entity out of the arena, re-indexed, tombstones skipped.
fn take_segment(state: &mut TraceState, trace: &TraceShared) -> Batch {
    let entities = std::mem::take(&mut state.entities);
    let has_tombstones = entities.iter().any(|e| e.state == EntityState::Streamed);
    let entities = if has_tombstones {
        let mut map = vec![NO_PARENT; entities.len()];
        let mut out = Vec::with_capacity(entities.len());
        for (old, mut e) in entities.into_iter().enumerate() {
            if e.state == EntityState::Streamed {
                continue;
            }
            map[old] = u32::try_from(out.len()).unwrap_or(NO_PARENT);
            if e.parent != NO_PARENT {
                e.parent = map.get(e.parent as usize).copied().unwrap_or(NO_PARENT);
            }
            out.push(e);
        }
        out
    } else {
        entities
    };
    Batch {
        trace_id: trace.trace_id,
        entities,
        is_segment: true,
        rule_name: trace.rule_name.clone(),
    }
}

/// Streams every maximal completed subtree (an ended subsegment whose descendants have all
/// ended, under a parent that is still open or is the segment) out of the arena as independent
/// subsegments. Only the candidates and the subtrees moved out are visited, so the cost does
/// not grow with the number of subsegments already streamed.
fn stream_completed(state: &mut TraceState, trace: &TraceShared) -> Option<Batch> {
    // Oldest first, so subtrees go out in the order they completed.
    let mut candidates = Vec::with_capacity(state.completed_len as usize);
    let mut next = state.completed_head;
    while let Some(e) = state.entities.get(next as usize) {
        candidates.push(next);
        next = e.next_completed;
    }
    candidates.reverse();
    let mut out: Vec<EntityData> = Vec::new();
    let mut keep: Vec<u32> = Vec::new();
    let mut queue: std::collections::VecDeque<(u32, u32)> = std::collections::VecDeque::new();
    for &c in &candidates {
        let i = c as usize;
        let Some(e) = state.entities.get(i) else {
            continue;
        };
        if e.state == EntityState::Streamed {
            continue;
        }
        let parent = e.parent as usize;
        if !state.is_complete(i) {
            keep.push(c);
            continue;
        }
        if parent != 0 && state.is_complete(parent) {
            // Goes out with its parent's subtree.
            keep.push(c);
            continue;
        }
        // Breadth-first copy of the subtree (siblings keep their order), re-indexed into `out`.
        queue.push_back((c, NO_PARENT));
        while let Some((node, new_parent)) = queue.pop_front() {
            let n = node as usize;
            let (first, state_now) = match state.entities.get(n) {
                Some(d) => (d.first_child, d.state),
                None => continue,
            };
            if state_now == EntityState::Streamed {
                continue;
            }
            let new_index = u32::try_from(out.len()).unwrap_or(NO_PARENT);
            let mut taken = state.entities[n].tombstone();
            taken.parent = new_parent;
            out.push(taken);
            let mut child = first;
            while let Some(ch) = state.entities.get(child as usize) {
                queue.push_back((child, new_index));
                child = ch.next_sibling;
            }
        }
    }
    // Whatever was moved out with a parent is no longer a candidate.
    keep.retain(|&k| {
        state
            .entities
            .get(k as usize)
            .is_some_and(|e| e.state != EntityState::Streamed)
    });
    state.completed_head = NO_PARENT;
    state.completed_len = 0;
    for k in keep {
        let head = state.completed_head;
        if let Some(e) = state.entities.get_mut(k as usize) {
            e.next_completed = head;
        }
        state.completed_head = k;
        state.completed_len += 1;
    }
    if out.is_empty() {
        return None;
    }
    Some(Batch {
        trace_id: trace.trace_id,
        entities: out,
        is_segment: false,
        rule_name: None,
    })
}

/// An open segment: one unit of work of this service (usually one incoming request).
///
/// Dereferences to [`Context`] for recording. Ends when [`Segment::end`] is called or when
/// dropped; it is sent once it and all its subsegments have ended.
#[must_use = "a segment ends when dropped"]
pub struct Segment {
    ctx: Context,
    ended: bool,
}

impl Segment {
    pub(crate) fn from_context(ctx: Context) -> Self {
        Segment { ctx, ended: false }
    }

    /// A handle to record into this segment from elsewhere (clones share the segment).
    pub fn context(&self) -> Context {
        self.ctx.clone()
    }

    /// Ends the segment now.
    pub fn end(mut self) {
        self.ended = true;
        self.ctx.end();
    }

    /// Records the last changes and ends the segment, under one lock.
    pub fn end_with(mut self, last: impl FnOnce(&mut EntityMut<'_>)) {
        self.ended = true;
        self.ctx.end_with(last);
    }
}

impl std::ops::Deref for Segment {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if !self.ended {
            self.ctx.end();
        }
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Segment").field(&self.ctx).finish()
    }
}

/// An open subsegment: a unit of work inside a segment (a downstream call, a query, a step).
///
/// Dereferences to [`Context`]. Ends when [`Subsegment::end`] is called or when dropped, so a
/// cancelled future still closes what it opened.
#[must_use = "a subsegment ends when dropped"]
pub struct Subsegment {
    ctx: Context,
    ended: bool,
}

impl Subsegment {
    /// A subsegment that records nothing (used when there is no current context).
    pub fn noop() -> Self {
        Subsegment {
            ctx: Context::new_unsampled(TraceId::from_parts(0, [0; 12]), None),
            ended: true,
        }
    }

    /// A handle to record into this subsegment from elsewhere.
    pub fn context(&self) -> Context {
        self.ctx.clone()
    }

    /// Ends the subsegment now.
    pub fn end(mut self) {
        self.ended = true;
        self.ctx.end();
    }

    /// Records the last changes and ends the subsegment, under one lock (`last` runs only
    /// when the subsegment is recorded).
    ///
    /// ```
    /// # let recorder = xray_sdk::Recorder::disabled();
    /// # let segment = recorder.begin_segment("svc");
    /// let call = segment.begin_subsegment("payments.internal");
    /// call.end_with(|e| {
    ///     e.set_http_response(503, None);
    ///     e.set_http_traced(true);
    /// });
    /// ```
    pub fn end_with(mut self, last: impl FnOnce(&mut EntityMut<'_>)) {
        self.ended = true;
        self.ctx.end_with(last);
    }
}

impl std::ops::Deref for Subsegment {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for Subsegment {
    fn drop(&mut self) {
        if !self.ended {
            self.ctx.end();
        }
    }
}

impl fmt::Debug for Subsegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Subsegment").field(&self.ctx).finish()
    }
}
