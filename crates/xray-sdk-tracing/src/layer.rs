//! The [`XRayTracingLayer`]: `tracing` spans as X-Ray subsegments.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use xray_sdk::{Context, Entity, Record as _, context};

use crate::budget::{Budget, BudgetTable, omitted_namespace};
use crate::fields::{EventVisitor, FieldRules, FieldVisitor, Fields};
use crate::filter::SpanFilter;

/// Default cap on the subsegments this layer opens per trace segment.
pub const DEFAULT_MAX_SUBSEGMENTS: u32 = 100;

/// A [`tracing_subscriber::Layer`] that records `tracing` spans as X-Ray subsegments.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// use xray_sdk_tracing::XRayTracingLayer;
///
/// let subscriber = tracing_subscriber::registry().with(
///     XRayTracingLayer::new()
///         .max_level(tracing::Level::DEBUG)
///         .exclude_target("sqlx")
///         .metadata_namespace("app"),
/// );
/// # drop(subscriber);
/// ```
///
/// See the [crate documentation](crate) for the rules: which spans are recorded, how fields
/// map, how errors are recorded and how the layer composes with the X-Ray adapters.
pub struct XRayTracingLayer {
    filter: SpanFilter,
    fields: FieldRules,
    error_level: Level,
    budgets: BudgetTable,
    /// Which spans may have X-Ray state: entering, recording and closing any other span
    /// costs one atomic load instead of a span lookup.
    live: LiveSpans,
}

impl std::fmt::Debug for XRayTracingLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XRayTracingLayer")
            .field("max_level", &self.filter.max_level)
            .field("excluded_targets", &self.filter.excluded_targets)
            .field("excluded_names", &self.filter.excluded_names)
            .field("annotation_prefixes", &self.fields.annotation_prefixes)
            .field("annotation_fields", &self.fields.annotation_fields)
            .field("metadata_namespace", &self.fields.metadata_namespace)
            .field("error_level", &self.error_level)
            .field("max_subsegments", &self.budgets.max())
            .finish_non_exhaustive()
    }
}

impl Default for XRayTracingLayer {
    fn default() -> Self {
        XRayTracingLayer::new()
    }
}

// === builder ===

impl XRayTracingLayer {
    /// A layer with the default rules: spans at `INFO` or more severe, outside
    /// [`DEFAULT_EXCLUDED_TARGETS`](crate::DEFAULT_EXCLUDED_TARGETS); fields prefixed
    /// `xray.annotation.` or `annotation.` as annotations, the others as metadata under
    /// `tracing`; `ERROR` events as faults; at most [`DEFAULT_MAX_SUBSEGMENTS`] subsegments
    /// per segment.
    pub fn new() -> Self {
        XRayTracingLayer {
            filter: SpanFilter::default(),
            fields: FieldRules::default(),
            error_level: Level::ERROR,
            budgets: BudgetTable::new(Some(DEFAULT_MAX_SUBSEGMENTS)),
            live: LiveSpans::new(),
        }
    }

    /// Records spans at `level` or more severe (default `INFO`, the level of `#[instrument]`).
    pub fn max_level(mut self, level: Level) -> Self {
        self.filter.max_level = level;
        self
    }

    /// Leaves out spans whose target matches `rule`: the target itself and its submodules
    /// (`"sqlx"` matches `sqlx::query`), or, when `rule` ends in `_`, every target starting
    /// with it.
    pub fn exclude_target(mut self, rule: impl Into<Cow<'static, str>>) -> Self {
        self.filter.excluded_targets.push(rule.into());
        self
    }

    /// Removes an exclusion rule (a default one such as `"hyper"` or one added earlier), so
    /// those spans are recorded again.
    pub fn include_target(mut self, rule: &str) -> Self {
        self.filter.excluded_targets.retain(|r| r != rule);
        self
    }

    /// Drops every target exclusion, the defaults included.
    pub fn without_default_exclusions(mut self) -> Self {
        self.filter.excluded_targets.clear();
        self
    }

    /// Leaves out spans with this exact name, whatever their target (e.g. `"request"` for a
    /// `tower_http` `TraceLayer` with a custom `MakeSpan`, next to `xray-sdk-tower`).
    pub fn exclude_span_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.filter.excluded_names.push(name.into());
        self
    }

    /// Records only spans for which `f` returns true (on top of the level and target rules).
    pub fn span_filter(
        mut self,
        f: impl Fn(&Metadata<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filter.predicate = Some(Box::new(f));
        self
    }

    /// Replaces the prefixes that make a field an annotation (default `xray.annotation.` and
    /// `annotation.`). The prefix is removed and the rest sanitized into a valid key.
    pub fn annotation_prefixes<I, P>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Cow<'static, str>>,
    {
        self.fields.annotation_prefixes = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Also records the field with exactly this name as an annotation (key sanitized).
    pub fn annotate_field(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.fields.annotation_fields.push(name.into());
        self
    }

    /// The metadata namespace for fields that are not annotations (default `tracing`).
    pub fn metadata_namespace(mut self, namespace: impl Into<Cow<'static, str>>) -> Self {
        self.fields.metadata_namespace = Some(namespace.into());
        self
    }

    /// Drops fields that are not annotations instead of recording them as metadata.
    pub fn without_metadata(mut self) -> Self {
        self.fields.metadata_namespace = None;
        self
    }

    /// Events at `level` or more severe record a cause and set `fault` (default `ERROR`).
    pub fn error_level(mut self, level: Level) -> Self {
        self.error_level = level;
        self
    }

    /// At most `max` subsegments from this layer per trace segment; the spans left out are
    /// counted in the metadata key `omitted_subsegments` on the segment (default
    /// [`DEFAULT_MAX_SUBSEGMENTS`]).
    pub fn max_subsegments_per_segment(mut self, max: u32) -> Self {
        self.budgets.set_max(Some(max));
        self
    }

    /// No cap on subsegments.
    pub fn without_subsegment_cap(mut self) -> Self {
        self.budgets.set_max(None);
        self
    }
}

// === live span filter ===

const LIVE_SLOTS: usize = 1 << 15;

/// A counting filter over the IDs of the spans that have X-Ray state: a zero slot proves a
/// span has none, without looking it up in the registry. Another span sharing the slot
/// only costs the lookup (with 1,000 traced spans open, about 3% of other spans do).
struct LiveSpans {
    slots: Box<[AtomicU16]>,
}

impl LiveSpans {
    fn new() -> Self {
        LiveSpans {
            slots: (0..LIVE_SLOTS).map(|_| AtomicU16::new(0)).collect(),
        }
    }

    fn slot(&self, id: &Id) -> &AtomicU16 {
        // Fibonacci hashing: the registry's IDs differ mostly in their low bits.
        let h = id.into_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - 15);
        &self.slots[usize::try_from(h).unwrap_or(0) % LIVE_SLOTS]
    }

    fn may_contain(&self, id: &Id) -> bool {
        self.slot(id).load(Ordering::Relaxed) != 0
    }

    fn add(&self, id: &Id) {
        // Saturates: a slot that ever reaches the maximum stays "maybe" for good.
        let _ = self
            .slot(id)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
    }

    fn remove(&self, id: &Id) {
        let _ = self
            .slot(id)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n != u16::MAX).then(|| n.saturating_sub(1))
            });
    }
}

// === per-span state ===

/// The X-Ray side of one span, stored in the registry's span extensions.
struct SpanState {
    /// The context the subsegment is begun under.
    parent: Context,
    name: &'static str,
    budget: Option<Arc<Budget>>,
    sub: Mutex<Sub>,
}

enum Sub {
    /// Not entered yet; fields wait here.
    Pending(Fields),
    /// Entered at least once.
    Open(Entity),
    /// Left out because the budget was spent.
    Omitted,
    /// Closed.
    Closed,
}

/// The extension type (an `Arc` so it can be used without holding the extensions lock).
#[derive(Clone)]
struct XraySpan(Arc<SpanState>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What first entering a span produced.
enum Entered {
    Current(Context),
    FirstEnter(Context, Fields),
    Omitted { first: bool },
}

impl SpanState {
    /// The subsegment's context, beginning it on the first call. Core recording methods are
    /// never called with the lock held (they may log through `tracing`).
    fn enter(&self) -> Entered {
        let mut sub = lock(&self.sub);
        match &mut *sub {
            Sub::Open(s) => Entered::Current(s.context()),
            Sub::Omitted | Sub::Closed => Entered::Omitted { first: false },
            Sub::Pending(fields) => {
                if self.budget.as_ref().is_some_and(|b| !b.try_take()) {
                    *sub = Sub::Omitted;
                    return Entered::Omitted { first: true };
                }
                let fields = std::mem::take(fields);
                let s = self.parent.begin_subsegment(self.name);
                let ctx = s.context();
                *sub = Sub::Open(s);
                Entered::FirstEnter(ctx, fields)
            }
        }
    }

    /// The subsegment's context if it is open.
    fn open_context(&self) -> Option<Context> {
        match &*lock(&self.sub) {
            Sub::Open(s) => Some(s.context()),
            _ => None,
        }
    }
}

fn state_of<S>(span: &SpanRef<'_, S>) -> Option<XraySpan>
where
    S: for<'a> LookupSpan<'a>,
{
    span.extensions().get::<XraySpan>().cloned()
}

/// The nearest span of `span`'s scope (itself included) that has X-Ray state.
fn nearest_state<S>(span: SpanRef<'_, S>) -> Option<XraySpan>
where
    S: for<'a> LookupSpan<'a>,
{
    span.scope().find_map(|s| state_of(&s))
}

// === context stack ===

thread_local! {
    /// The contexts replaced by `on_enter`, restored by `on_exit`: (layer, span, previous).
    static ENTERED: RefCell<Vec<(usize, Id, Option<Context>)>> = const { RefCell::new(Vec::new()) };
}

fn push_entered(layer: usize, id: &Id, ctx: Context) {
    // A span of another trace entered while this one is current (a span kept in a shared
    // object, such as a pool, and entered again by later requests): its context would put
    // this request's work, and the headers of its calls, into the other trace. It stays
    // out; the exit then finds nothing to restore.
    if context::with_current(|cur| cur.is_some_and(|cur| cur.trace_id() != ctx.trace_id())) {
        return;
    }
    let previous = context::replace_current(Some(ctx));
    let mut previous = Some(previous);
    let _ = ENTERED.try_with(|stack| {
        if let Ok(mut stack) = stack.try_borrow_mut()
            && let Some(previous) = previous.take()
        {
            stack.push((layer, id.clone(), previous));
        }
    });
    if let Some(previous) = previous {
        // Could not remember it: undo rather than leave the span's context installed.
        context::replace_current(previous);
    }
}

fn pop_entered(layer: usize, id: &Id) {
    let restore = ENTERED
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let pos = stack.iter().rposition(|(l, i, _)| *l == layer && i == id)?;
            let (_, _, previous) = stack.remove(pos);
            if pos == stack.len() {
                Some(previous)
            } else {
                // Exited out of order: the span entered after this one now restores what
                // this one replaced.
                stack[pos].2 = previous;
                None
            }
        })
        .ok()
        .flatten();
    if let Some(previous) = restore {
        context::replace_current(previous);
    }
}

fn entered_is_empty() -> bool {
    ENTERED
        .try_with(|s| s.try_borrow().map(|s| s.is_empty()).unwrap_or(true))
        .unwrap_or(true)
}

// === layer ===

impl XRayTracingLayer {
    fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn namespace(&self) -> Option<&str> {
        self.fields.metadata_namespace.as_deref()
    }

    /// Where a new span (or an error event) with the current span as its parent belongs,
    /// and the budget it shares: the current X-Ray context, except when that is the context
    /// the current traced span itself nested under (an outer `in_context` wrapper polled
    /// inside `instrument`), in which case the span's own subsegment is the parent.
    fn contextual_parent<S>(
        &self,
        xray: Option<Context>,
        ctx: &LayerContext<'_, S>,
    ) -> Option<(Context, Option<XraySpan>)>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let traced = ctx.lookup_current().and_then(nearest_state);
        let Some(traced) = traced else {
            return xray.map(|x| (x, None));
        };
        let own = traced.0.open_context();
        match (own, xray) {
            (Some(own), None) => Some((own, Some(traced))),
            (Some(own), Some(x)) if x.trace_id() == own.trace_id() => {
                if x.id() == traced.0.parent.id() {
                    Some((own, Some(traced)))
                } else {
                    // The span's own subsegment, or something begun inside it (an adapter).
                    Some((x, Some(traced)))
                }
            }
            (_, Some(x)) => {
                let same = x.trace_id() == traced.0.parent.trace_id();
                Some((x, same.then_some(traced)))
            }
            (None, None) => None,
        }
    }

    /// The parent for an explicit `parent:` span.
    fn explicit_parent<S>(
        &self,
        parent: &Id,
        ctx: &LayerContext<'_, S>,
    ) -> Option<(Context, Option<XraySpan>)>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let traced = ctx.span(parent).and_then(nearest_state);
        match traced {
            Some(traced) => {
                let parent = match traced.0.enter() {
                    Entered::Current(c) => c,
                    Entered::FirstEnter(c, fields) => {
                        fields.apply(&c, self.namespace());
                        c
                    }
                    Entered::Omitted { first } => {
                        if first {
                            self.record_omitted(&traced);
                        }
                        traced.0.parent.clone()
                    }
                };
                Some((parent, Some(traced)))
            }
            None => context::current().map(|x| (x, None)),
        }
    }

    fn record_omitted(&self, span: &XraySpan) {
        if let Some(budget) = &span.0.budget {
            budget.omit(omitted_namespace(self.fields.metadata_namespace.as_ref()));
        }
    }

    fn fields_of(&self, record: impl FnOnce(&mut FieldVisitor<'_>)) -> Fields {
        let mut out = Fields::default();
        record(&mut FieldVisitor {
            rules: &self.fields,
            out: &mut out,
        });
        out
    }
}

impl<S> tracing_subscriber::Layer<S> for XRayTracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let found = if let Some(parent) = attrs.parent() {
            if !self.live.may_contain(parent)
                && !context::with_current(|c| c.is_some_and(Context::is_sampled))
            {
                return;
            }
            if !self.filter.includes(attrs.metadata()) {
                return;
            }
            self.explicit_parent(parent, &ctx)
        } else {
            // Fast path: outside a sampled X-Ray context, a span costs one thread-local read.
            let Some(xray) = context::with_current(|c| c.filter(|c| c.is_sampled()).cloned())
            else {
                return;
            };
            if !self.filter.includes(attrs.metadata()) {
                return;
            }
            if attrs.is_root() {
                Some((xray, None))
            } else {
                self.contextual_parent(Some(xray), &ctx)
            }
        };
        let Some((parent, traced_parent)) = found else {
            return;
        };
        if !parent.is_sampled() {
            return;
        }
        let budget = match traced_parent {
            Some(p) if p.0.parent.trace_id() == parent.trace_id() => p.0.budget.clone(),
            _ => self.budgets.get(&parent),
        };
        let fields = self.fields_of(|v| attrs.record(v));
        let state = XraySpan(Arc::new(SpanState {
            parent,
            name: attrs.metadata().name(),
            budget,
            sub: Mutex::new(Sub::Pending(fields)),
        }));
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            // With two of these layers in one subscriber, the first one records the span
            // (a span's extensions hold one value per type).
            if extensions.get_mut::<XraySpan>().is_none() {
                extensions.insert(state);
                self.live.add(id);
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        if !self.live.may_contain(id) {
            return;
        }
        let Some(state) = ctx.span(id).and_then(|s| state_of(&s)) else {
            return;
        };
        let fields = self.fields_of(|v| values.record(v));
        if fields.is_empty() {
            return;
        }
        let open = {
            let mut sub = lock(&state.0.sub);
            match &mut *sub {
                Sub::Pending(pending) => {
                    pending.append(fields);
                    return;
                }
                Sub::Open(s) => s.context(),
                Sub::Omitted | Sub::Closed => return,
            }
        };
        fields.apply(&open, self.namespace());
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        if !self.live.may_contain(id) {
            return;
        }
        let Some(state) = ctx.span(id).and_then(|s| state_of(&s)) else {
            return;
        };
        match state.0.enter() {
            Entered::Current(c) => push_entered(self.key(), id, c),
            Entered::FirstEnter(c, fields) => {
                if !fields.is_empty() {
                    fields.apply(&c, self.namespace());
                }
                push_entered(self.key(), id, c);
            }
            Entered::Omitted { first } => {
                if first {
                    self.record_omitted(&state);
                }
            }
        }
    }

    fn on_exit(&self, id: &Id, _ctx: LayerContext<'_, S>) {
        if entered_is_empty() {
            return;
        }
        pop_entered(self.key(), id);
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        if !self.live.may_contain(&id) {
            return;
        }
        let Some(state) = ctx
            .span(&id)
            .and_then(|s| s.extensions_mut().remove::<XraySpan>())
        else {
            return;
        };
        self.live.remove(&id);
        let sub = std::mem::replace(&mut *lock(&state.0.sub), Sub::Closed);
        if let Sub::Open(s) = sub {
            s.end();
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > self.error_level {
            return;
        }
        let target = if let Some(parent) = event.parent() {
            ctx.span(parent)
                .and_then(nearest_state)
                .and_then(|s| s.0.open_context())
                .or_else(context::current)
        } else if event.is_root() {
            context::current()
        } else {
            self.contextual_parent(context::current(), &ctx)
                .map(|(c, _)| c)
        };
        let Some(target) = target.filter(Context::is_sampled) else {
            return;
        };
        let mut visitor = EventVisitor::default();
        event.record(&mut visitor);
        // Built (the error's text read) before the change is handed over.
        let cause = visitor.into_cause(meta);
        target.update(|p| {
            p.add_cause(cause);
            p.set_fault();
        });
    }
}
