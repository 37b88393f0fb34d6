//! Buffers of sent traces, handed back by the emitter for new traces to reuse.
//!
//! A trace's entity vector and text buffer are allocated on the request thread and freed on
//! the emitter's, once the batch is written. Freed there, they land in the emitter thread's
//! allocator cache, and the next request has to be served from the allocator's shared bins:
//! the two dearest allocations of a sampled request. Kept here instead, cleared, they are
//! taken back by the next trace under one uncontended lock.
//!
//! The pool is bounded in entries and in the size of what it keeps, so it never holds more
//! than a few hundred kilobytes, whatever the traffic.

use std::sync::{Mutex, PoisonError};

use super::entity::EntityData;
use super::{ARENA_CAPACITY, TEXT_CAPACITY};

/// Buffer pairs kept at most: more than a burst of concurrent traces needs.
const MAX_KEPT: usize = 256;

/// Buffers grown past these (a trace with many subsegments or long texts) are freed, so the
/// pool keeps only the usual size.
const MAX_ENTITIES: usize = ARENA_CAPACITY * 4;
const MAX_TEXT: usize = TEXT_CAPACITY * 8;

/// An entity vector and a text buffer, both empty.
pub(crate) struct Buffers {
    pub(crate) entities: Vec<EntityData>,
    pub(crate) text: String,
}

static POOL: Mutex<Vec<Buffers>> = Mutex::new(Vec::new());

/// Empty buffers for a new trace: reused ones when the pool has some, else fresh ones of the
/// usual capacity.
pub(crate) fn take() -> Buffers {
    let reused = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop();
    reused.unwrap_or_else(|| Buffers {
        entities: Vec::with_capacity(ARENA_CAPACITY),
        text: String::with_capacity(TEXT_CAPACITY),
    })
}

/// Hands back a sent trace's buffers (emptied here, off the request path), unless they grew
/// past the usual size or the pool is full.
pub(crate) fn give(mut entities: Vec<EntityData>, mut text: String) {
    if entities.capacity() < ARENA_CAPACITY
        || entities.capacity() > MAX_ENTITIES
        || text.capacity() < TEXT_CAPACITY
        || text.capacity() > MAX_TEXT
    {
        return;
    }
    entities.clear();
    text.clear();
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.len() < MAX_KEPT {
        if pool.capacity() == 0 {
            pool.reserve_exact(MAX_KEPT);
        }
        pool.push(Buffers { entities, text });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_usual_sizes_are_kept_and_what_is_taken_is_empty() {
        // Other tests share the pool: only what this test gives can be asserted on its own.
        let mut text = String::with_capacity(TEXT_CAPACITY);
        text.push_str("left over");
        let mut given = Vec::with_capacity(ARENA_CAPACITY);
        given.push(EntityData::new(
            crate::id::EntityId::new(),
            super::super::NO_PARENT,
            None,
            super::super::Text::EMPTY,
            0,
        ));
        give(given, text);
        let taken = take();
        assert!(taken.entities.is_empty());
        assert!(taken.text.is_empty());
        assert!(taken.entities.capacity() >= ARENA_CAPACITY);
        assert!(taken.text.capacity() >= TEXT_CAPACITY);

        // A grown buffer is not kept: the pool does not fill with large blocks.
        let before = POOL.lock().unwrap().len();
        give(
            Vec::with_capacity(MAX_ENTITIES + 1),
            String::with_capacity(TEXT_CAPACITY),
        );
        give(
            Vec::with_capacity(ARENA_CAPACITY),
            String::with_capacity(MAX_TEXT + 1),
        );
        assert!(POOL.lock().unwrap().len() <= before);
    }
}
