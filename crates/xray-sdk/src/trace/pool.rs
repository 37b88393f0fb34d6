//! Buffers of sent traces, handed back by the emitter for new traces to reuse.
//!
//! A trace's entity vector and text buffer are allocated on the request thread and freed on
//! the emitter's, once the batch is written. Freed there, they land in the emitter thread's
//! allocator cache, and the next request has to be served from the allocator's shared bins:
//! the two dearest allocations of a sampled request. Kept here instead, cleared, they are
//! taken back by the next trace under one short lock (`spinlock`).
//!
//! A trace with many subsegments grows its buffers (each doubling a copy, and from 1 KiB up a
//! request to glibc's large bins); its grown buffers are kept too, so that the next such trace
//! starts at the size it needs. The pool is bounded in entries, in the size of one buffer and
//! in the bytes it holds in all ([`MAX_BYTES`]), whatever the traffic.

use spin::mutex::SpinMutex;

use super::entity::EntityData;
use super::spinlock;
use super::{ARENA_CAPACITY, TEXT_CAPACITY};

/// Buffer pairs kept at most: more than a burst of concurrent traces needs.
pub(crate) const MAX_KEPT: usize = 256;

/// Buffers grown past these (a trace with hundreds of subsegments or long texts) are freed.
const MAX_ENTITIES: usize = ARENA_CAPACITY * 64;
const MAX_TEXT: usize = TEXT_CAPACITY * 16;

/// Bytes of buffers kept at most.
const MAX_BYTES: usize = 1 << 20;

impl Buffers {
    /// The bytes the pair holds.
    fn bytes(&self) -> usize {
        self.entities.capacity() * std::mem::size_of::<EntityData>() + self.text.capacity()
    }
}

struct Pool {
    kept: Vec<Buffers>,
    bytes: usize,
}

/// An entity vector and a text buffer, both empty.
pub(crate) struct Buffers {
    pub(crate) entities: Vec<EntityData>,
    pub(crate) text: String,
}

static POOL: SpinMutex<Pool> = SpinMutex::new(Pool {
    kept: Vec::new(),
    bytes: 0,
});

/// Empty buffers for a new trace: reused ones when the pool has some, else fresh ones of the
/// usual capacity.
pub(crate) fn take() -> Buffers {
    let reused = {
        let mut pool = spinlock::lock(&POOL);
        let b = pool.kept.pop();
        if let Some(b) = &b {
            pool.bytes -= b.bytes();
        }
        b
    };
    reused.unwrap_or_else(|| Buffers {
        entities: Vec::with_capacity(ARENA_CAPACITY),
        text: String::with_capacity(TEXT_CAPACITY),
    })
}

/// Hands back a sent trace's buffers (emptied here, off the request path), unless they grew
/// past the largest size kept or the pool is full.
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
    let given = Buffers { entities, text };
    let bytes = given.bytes();
    let mut pool = spinlock::lock(&POOL);
    if pool.kept.len() < MAX_KEPT && pool.bytes + bytes <= MAX_BYTES {
        if pool.kept.capacity() == 0 {
            pool.kept.reserve_exact(MAX_KEPT);
        }
        pool.bytes += bytes;
        pool.kept.push(given);
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

        // A buffer grown past the largest size is not kept.
        let before = spinlock::lock(&POOL).kept.len();
        give(
            Vec::with_capacity(MAX_ENTITIES + 1),
            String::with_capacity(TEXT_CAPACITY),
        );
        give(
            Vec::with_capacity(ARENA_CAPACITY),
            String::with_capacity(MAX_TEXT + 1),
        );
        assert!(spinlock::lock(&POOL).kept.len() <= before);
    }

    #[test]
    fn grown_buffers_are_kept_within_the_byte_bound() {
        // A trace's grown buffers come back for the next trace of that size.
        give(
            Vec::with_capacity(MAX_ENTITIES),
            String::with_capacity(MAX_TEXT),
        );
        let bytes = spinlock::lock(&POOL).bytes;
        assert!(bytes <= MAX_BYTES);
        // Whatever comes back, the pool never holds more than its bound.
        for _ in 0..MAX_KEPT {
            give(
                Vec::with_capacity(MAX_ENTITIES),
                String::with_capacity(MAX_TEXT),
            );
        }
        let pool = spinlock::lock(&POOL);
        assert!(pool.bytes <= MAX_BYTES, "{} bytes kept", pool.bytes);
        assert_eq!(
            pool.bytes,
            pool.kept.iter().map(Buffers::bytes).sum::<usize>()
        );
    }
}
