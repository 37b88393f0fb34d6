//! What the emitter receives from a trace: a whole segment, or subsegments streamed ahead of it.

use std::sync::Arc;

use super::entity::{EntityData, Extra, Item, MoreKey, Text};
use crate::id::{EntityId, TraceId};

/// A whole segment (`is_segment`: entity 0 is the segment; any other entity without a parent
/// was begun under a subsegment streamed earlier) or a set of completed subtrees streamed
/// early. Every entity with `parent == NO_PARENT`, other than a segment, is the root of an
/// independent subsegment document, under its `parent_id`. Parents come before their
/// children, and siblings are in the order they began.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) trace_id: TraceId,
    pub(crate) rule_name: Option<Arc<str>>,
    pub(crate) is_segment: bool,
    /// The segment (entity 0) is a facade: not written; its children go out on their own.
    pub(crate) facade: bool,
    pub(crate) entities: Vec<EntityData>,
    pub(crate) text: String,
    pub(crate) extras: Vec<Extra>,
}

impl Batch {
    /// Hands the batch's buffers back for new traces, once it has been written.
    pub(crate) fn recycle(self) {
        super::pool::give(self.entities, self.text);
    }

    /// A string of this batch.
    pub(crate) fn str(&self, t: Text) -> &str {
        t.get(&self.text)
    }

    /// The value of a field few entities have (`user`, `origin`, ...), among the extras at
    /// `extras` (an entity's).
    pub(crate) fn more(&self, extras: &[u32], key: MoreKey) -> Option<&str> {
        extras
            .iter()
            .find_map(|&x| match self.extras.get(x as usize) {
                Some(Extra {
                    item: Item::More(k, t),
                    ..
                }) if *k == key => Some(self.str(*t)),
                _ => None,
            })
    }

    /// Moves the batch into trace `trace_id`, with entity `from` (a facade) becoming `to`:
    /// its subsegments are then sent under `to`.
    pub(crate) fn move_under(&mut self, trace_id: TraceId, from: EntityId, to: EntityId) {
        self.trace_id = trace_id;
        for e in &mut self.entities {
            if e.id == from {
                e.id = to;
            }
            if e.parent_id() == Some(from) {
                e.set_parent_id(Some(to));
            }
        }
    }
}
