//! The arena of one trace segment: every entity of a segment, its strings and its open-ended
//! parts, behind one mutex.
//!
//! Beginning a subsegment pushes onto a vector and ending one is a store; strings are copied
//! into one text buffer per trace, so recording a field never allocates on its own. When the
//! segment and all its subsegments have ended, the arena's vectors become a [`Batch`] in one
//! move; documents are written from it on the emitter's thread.
//!
//! Changes arrive as [`Op`]s that hold no user code (values were checked and serialized
//! before), so nothing the lock protects can be re-entered while it is held.

mod batch;
mod entity;
mod op;
pub(crate) mod pool;
mod spinlock;
mod stream;

use std::sync::Arc;

use spin::mutex::{SpinMutex, SpinMutexGuard};

pub(crate) use batch::Batch;
pub(crate) use entity::{
    AwsKey, EntityData, EntityState, Extra, FLAG_ERROR, FLAG_FAULT, FLAG_THROTTLE, Item, MoreKey,
    NO_PARENT, Scalar, Text,
};
pub(crate) use op::Changes;
#[allow(unreachable_pub)]
pub use op::{Op, Owned, Str, Value};

use crate::header::Carried;
use crate::id::{EntityId, TraceId};

/// The most a new trace's entity arena asks of the allocator at first.
///
/// The arena is allocated on the request thread and freed on the emitter's, so the request
/// thread's allocator cache rarely has a block ready, and a request of 1 KiB or more is the
/// worst case: glibc serves it from its large bins, which first merges every small freed
/// block (`malloc_consolidate`). Staying under that keeps the arena among the small, cached
/// sizes.
const ARENA_BYTES: usize = 1000;

/// Entities room is made for when a trace begins: the segment and, within
/// [`ARENA_BYTES`], its first subsegments.
const ARENA_CAPACITY: usize = ARENA_BYTES / std::mem::size_of::<EntityData>();

// A segment with three subsegments is the common shape: a new arena holds it without
// growing, within ARENA_BYTES.
const _: () = assert!(ARENA_CAPACITY >= 4, "see ARENA_BYTES");

// Every byte of an entity is written on the request thread and read on the emitter's, so it
// crosses between the processors' caches once per trace, and an arena of small entities holds
// more of them before it grows. Fields few entities have are extras; the rest are packed.
const _: () = assert!(
    std::mem::size_of::<EntityData>() <= 160,
    "an entity must stay within 160 bytes"
);

/// Room made for the text of a new trace: a URL, a user agent and the names and `aws`
/// fields of a few subsegments.
const TEXT_CAPACITY: usize = 512;

/// A trace segment's entities, text and extras.
#[derive(Debug)]
pub(crate) struct TraceState {
    pub(crate) entities: Vec<EntityData>,
    pub(crate) text: String,
    pub(crate) extras: Vec<Extra>,
    /// Ended subsegments still held in the arena (candidates for streaming), as a list
    /// linked through the entities, so ending a subsegment never allocates.
    completed_head: u32,
    completed_len: u32,
    /// Slots of streamed entities, reused by later subsegments.
    free: Vec<u32>,
    /// Entities were streamed out, so slot order is no longer the order they began in.
    reordered: bool,
    /// The segment has been handed over: nothing more is recorded.
    sent: bool,
}

impl TraceState {
    /// The arena of a new trace: its segment named `name` (`None` when `changes` name it),
    /// begun at `start_us`, with `changes` applied.
    fn first(
        origin: &Origin,
        name: Option<&str>,
        start_us: u64,
        changes: Changes<'_, '_>,
    ) -> TraceState {
        let pool::Buffers {
            mut entities,
            mut text,
        } = pool::take();
        let name = name
            .and_then(|n| Text::push(&mut text, n))
            .unwrap_or(Text::EMPTY);
        entities.push(EntityData::new(
            origin.segment_id,
            NO_PARENT,
            origin.parent_id,
            name,
            start_us,
        ));
        let mut state = TraceState {
            entities,
            text,
            extras: Vec::new(),
            completed_head: NO_PARENT,
            completed_len: 0,
            free: Vec::new(),
            reordered: false,
            sent: false,
        };
        state.apply_all(0, changes);
        state
    }

    /// Adds 1 to (or takes 1 from) the open-descendant count of every ancestor of `index`.
    /// A subsegment whose parent was streamed counts under the segment, which waits for it.
    fn adjust_ancestors(&mut self, index: usize, increment: bool) {
        let up = |i: usize, parent: u32| {
            if parent == NO_PARENT && i != 0 {
                0
            } else {
                parent
            }
        };
        let mut p = self
            .entities
            .get(index)
            .map_or(NO_PARENT, |e| up(index, e.parent));
        while let Some(e) = self.entities.get_mut(p as usize) {
            e.open_descendants = if increment {
                e.open_descendants + 1
            } else {
                e.open_descendants.saturating_sub(1)
            };
            p = up(p as usize, e.parent);
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

    /// Whether the entity at `index` is `id` and can still be recorded into.
    fn live(&self, index: usize, id: EntityId) -> bool {
        !self.sent
            && self
                .entities
                .get(index)
                .is_some_and(|e| e.id == id && e.state != EntityState::Streamed)
    }
}

/// The recorded part of one trace segment: its IDs and the locked arena.
pub(crate) struct Trace {
    pub(crate) trace_id: TraceId,
    /// The ID of the segment (entity 0 of the arena).
    pub(crate) segment_id: EntityId,
    /// What came in with the trace (extra header keys, `tracestate`), passed on downstream.
    pub(crate) carried: Option<Arc<Carried>>,
    /// Downstream HTTP calls carry `traceparent` too (the recorder's setting).
    pub(crate) traceparent: bool,
    /// The sampling rule that chose this trace, written in the segment's `aws` block.
    pub(crate) rule_name: Option<Arc<str>>,
    /// The segment is a facade (another party records it): only its subsegments are sent.
    pub(crate) facade: bool,
    state: SpinMutex<TraceState>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("trace_id", &self.trace_id)
            .finish_non_exhaustive()
    }
}

/// Where a new segment comes from.
pub(crate) struct Origin {
    pub(crate) trace_id: TraceId,
    pub(crate) segment_id: EntityId,
    /// The caller's entity, from the incoming header.
    pub(crate) parent_id: Option<EntityId>,
    pub(crate) carried: Option<Arc<Carried>>,
    /// Downstream HTTP calls carry `traceparent` too.
    pub(crate) traceparent: bool,
    pub(crate) rule_name: Option<Arc<str>>,
    /// The segment is recorded by someone else (AWS Lambda): it is never sent, and its
    /// subsegments go out as independent documents under its ID.
    pub(crate) facade: bool,
}

impl Trace {
    /// A trace whose segment is named `name`, began at `start_us` and holds `changes`
    /// (`name` is `None` when `changes` name the segment.)
    pub(crate) fn new(
        origin: Origin,
        name: Option<&str>,
        start_us: u64,
        changes: Changes<'_, '_>,
    ) -> Trace {
        Trace {
            trace_id: origin.trace_id,
            segment_id: origin.segment_id,
            state: SpinMutex::new(TraceState::first(&origin, name, start_us, changes)),
            carried: origin.carried,
            traceparent: origin.traceparent,
            rule_name: origin.rule_name,
            facade: origin.facade,
        }
    }

    /// Makes this trace, sent and no longer shared, the new trace [`Trace::new`] would make,
    /// in place.
    pub(crate) fn renew(
        &mut self,
        origin: Origin,
        name: Option<&str>,
        start_us: u64,
        changes: Changes<'_, '_>,
    ) {
        // Every field named, so that a field added to `Trace` cannot be left stale here.
        let Trace {
            trace_id,
            segment_id,
            carried,
            traceparent,
            rule_name,
            facade,
            state,
        } = self;
        *state.get_mut() = TraceState::first(&origin, name, start_us, changes);
        *trace_id = origin.trace_id;
        *segment_id = origin.segment_id;
        *carried = origin.carried;
        *traceparent = origin.traceparent;
        *rule_name = origin.rule_name;
        *facade = origin.facade;
    }

    /// Locks the arena (see `spinlock`: on W2, a segment with three subsegments, 119
    /// instructions fewer than with `std::sync::Mutex`).
    #[inline]
    fn lock(&self) -> SpinMutexGuard<'_, TraceState> {
        spinlock::lock(&self.state)
    }

    /// Begins a subsegment `id` under the entity at `parent` (`parent_id`), with `ops`
    /// applied. Returns its index, or `None` when the segment was already sent or the
    /// parent is gone.
    pub(crate) fn begin(
        &self,
        parent: u32,
        parent_id: EntityId,
        id: EntityId,
        name: &str,
        start_us: u64,
        changes: Changes<'_, '_>,
    ) -> Option<u32> {
        let mut state = self.lock();
        if state.sent {
            return None;
        }
        // Work begun under a subsegment already streamed ahead (late work of a detached
        // task) is sent on its own, under its parent's ID.
        let parent = if state.live(parent as usize, parent_id) {
            parent
        } else {
            NO_PARENT
        };
        let name = Text::push(&mut state.text, name).unwrap_or(Text::EMPTY);
        let entity = EntityData::new(id, parent, Some(parent_id), name, start_us);
        let index = match state.free.pop() {
            Some(slot) => {
                state.entities[slot as usize] = entity;
                slot
            }
            None => {
                let index = u32::try_from(state.entities.len())
                    .ok()
                    .filter(|&i| i < NO_PARENT)?;
                state.entities.push(entity);
                index
            }
        };
        if parent != NO_PARENT {
            state.link_child(parent as usize, index);
        }
        state.adjust_ancestors(index as usize, true);
        state.apply_all(index as usize, changes);
        Some(index)
    }

    /// Applies `ops` to the entity at `index` if it is still `id` and recorded. Returns
    /// whether it was.
    pub(crate) fn record(&self, index: u32, id: EntityId, changes: Changes<'_, '_>) -> bool {
        let mut state = self.lock();
        if !state.live(index as usize, id) {
            return false;
        }
        state.apply_all(index as usize, changes);
        true
    }

    /// Applies one change that owns nothing (its strings borrowed) to the entity at `index`
    /// if it is still `id` and recorded: [`Trace::record`] for a change made without a patch.
    pub(crate) fn record_one(&self, index: u32, id: EntityId, op: &Op<'_>) -> bool {
        let mut state = self.lock();
        if !state.live(index as usize, id) {
            return false;
        }
        // Through the list (of one): the same loop as a patch's changes, no second copy of it.
        state.apply_all(
            index as usize,
            Changes {
                first: std::slice::from_ref(op),
                more: &[],
                local: "",
                owned: &mut [],
            },
        );
        true
    }

    /// Applies `ops` and ends the entity at `index` at `end_us`. Returns what must be sent
    /// now, if anything: the whole segment once it and every subsegment have ended, or
    /// completed subsegments streamed ahead of it when more than `streaming_threshold` wait.
    pub(crate) fn end(
        &self,
        index: u32,
        id: EntityId,
        end_us: u64,
        changes: Changes<'_, '_>,
        streaming_threshold: u32,
    ) -> Option<Batch> {
        let mut state = self.lock();
        let i = index as usize;
        if !state.live(i, id) {
            return None;
        }
        state.apply_all(i, changes);
        let entity = state.entities.get_mut(i)?;
        if entity.state != EntityState::Open {
            return None;
        }
        entity.state = EntityState::Ended;
        // Never before the start (anchors of two threads' clocks may differ slightly).
        // Never 0, which means "in progress".
        entity.end_us = end_us.max(entity.start_us).max(1);
        state.adjust_ancestors(i, false);
        if i != 0 {
            let head = state.completed_head;
            if let Some(e) = state.entities.get_mut(i) {
                e.next_completed = head;
            }
            state.completed_head = index;
            state.completed_len += 1;
        }
        // The segment goes out once it and every subsegment have ended.
        if state.is_complete(0) {
            state.sent = true;
            return Some(self.take_segment(&mut state));
        }
        if i != 0 && state.completed_len > streaming_threshold {
            return stream::stream_completed(&mut state, self.trace_id);
        }
        None
    }

    /// Moves every remaining entity out of the arena.
    fn take_segment(&self, state: &mut TraceState) -> Batch {
        let mut batch = if state.reordered {
            state.take_reordered(self.trace_id)
        } else {
            Batch {
                trace_id: self.trace_id,
                rule_name: None,
                is_segment: true,
                facade: false,
                entities: std::mem::take(&mut state.entities),
                text: std::mem::take(&mut state.text),
                extras: std::mem::take(&mut state.extras),
            }
        };
        batch.rule_name = self.rule_name.clone();
        batch.facade = self.facade;
        batch
    }
}

#[cfg(test)]
mod tests;
