//! Moving subtrees out of a trace's arena: completed subsegments streamed ahead of their
//! segment, and the whole segment when its arena's slots were reused.
//!
//! A streamed entity's slot is freed for the next subsegment, and the arena's text is
//! rebuilt from what is still live, so a segment that runs for hours holds only its open
//! entities and at most a threshold's worth of completed ones.

use std::collections::VecDeque;

use super::TraceState;
use super::batch::Batch;
use super::entity::{EntityState, NO_PARENT};
use crate::id::TraceId;

impl TraceState {
    /// Removes the entity at `index` from its parent's list of children.
    fn unlink(&mut self, index: u32) {
        let Some(parent) = self.entities.get(index as usize).map(|e| e.parent) else {
            return;
        };
        let next = self.entities[index as usize].next_sibling;
        let Some(p) = self.entities.get(parent as usize) else {
            return;
        };
        let (first, last) = (p.first_child, p.last_child);
        if first == index {
            let p = &mut self.entities[parent as usize];
            p.first_child = next;
            if last == index {
                p.last_child = NO_PARENT;
            }
            return;
        }
        let mut prev = first;
        while let Some(e) = self.entities.get(prev as usize) {
            if e.next_sibling == index {
                self.entities[prev as usize].next_sibling = next;
                if last == index {
                    self.entities[parent as usize].last_child = prev;
                }
                return;
            }
            prev = e.next_sibling;
        }
    }

    /// Copies the subtrees under `roots` into a batch, breadth first (siblings keep the order
    /// they began in; parents come before their children), with their extras. Their slots are
    /// left as they were; the caller frees them or drops the arena.
    ///
    /// `copy_text`: copy each string into the batch's own text (streaming: the arena stays);
    /// otherwise the batch takes the arena's text whole.
    fn extract(
        &mut self,
        roots: &[u32],
        trace_id: TraceId,
        copy_text: bool,
    ) -> (Batch, Vec<(u32, u32)>) {
        let mut batch = Batch {
            trace_id,
            rule_name: None,
            is_segment: false,
            facade: false,
            entities: Vec::new(),
            text: String::new(),
            extras: Vec::new(),
        };
        // (old index, new index), in the order copied.
        let mut moved: Vec<(u32, u32)> = Vec::new();
        let mut queue: VecDeque<(u32, u32)> = VecDeque::new();
        for &root in roots {
            queue.push_back((root, NO_PARENT));
            while let Some((node, new_parent)) = queue.pop_front() {
                let Some(e) = self.entities.get(node as usize) else {
                    continue;
                };
                if e.state == EntityState::Streamed {
                    continue;
                }
                let new_index = u32::try_from(batch.entities.len()).unwrap_or(NO_PARENT);
                let mut copy = e.clone();
                copy.parent = new_parent;
                copy.first_child = NO_PARENT;
                copy.last_child = NO_PARENT;
                copy.next_sibling = NO_PARENT;
                copy.next_completed = NO_PARENT;
                if copy_text {
                    copy.move_text(&self.text, &mut batch.text);
                }
                batch.entities.push(copy);
                moved.push((node, new_index));
                let mut child = e.first_child;
                while let Some(c) = self.entities.get(child as usize) {
                    queue.push_back((child, new_index));
                    child = c.next_sibling;
                }
            }
        }
        // Extras follow their entities, re-indexed.
        let mut by_old = moved.clone();
        by_old.sort_unstable();
        let mut kept = Vec::with_capacity(self.extras.len());
        for mut x in std::mem::take(&mut self.extras) {
            match by_old.binary_search_by_key(&x.entity, |&(old, _)| old) {
                Ok(pos) => {
                    x.entity = by_old[pos].1;
                    if copy_text {
                        x.item.move_text(&self.text, &mut batch.text);
                    }
                    batch.extras.push(x);
                }
                Err(_) => kept.push(x),
            }
        }
        self.extras = kept;
        if !copy_text {
            batch.text = std::mem::take(&mut self.text);
        }
        (batch, moved)
    }

    /// Rebuilds the text from the live entities and extras, leaving out what streamed or
    /// replaced values left behind.
    fn compact_text(&mut self) {
        let old = std::mem::take(&mut self.text);
        let mut text = String::with_capacity(old.len() / 2);
        for e in &mut self.entities {
            if e.state != EntityState::Streamed {
                e.move_text(&old, &mut text);
            }
        }
        for x in &mut self.extras {
            x.item.move_text(&old, &mut text);
        }
        self.text = text;
    }

    /// Subsegments begun under a parent that had already been streamed: sent under their
    /// parent's ID, on their own.
    fn orphans(&self) -> impl Iterator<Item = u32> + '_ {
        self.entities
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, e)| e.parent == NO_PARENT && e.state != EntityState::Streamed)
            .map(|(i, _)| i as u32)
    }

    /// Moves the whole segment out in tree order (its slots were reused or left empty by
    /// streaming, so their order is not the order the entities began in).
    pub(super) fn take_reordered(&mut self, trace_id: TraceId) -> Batch {
        let mut roots = vec![0];
        roots.extend(self.orphans());
        let (mut batch, _) = self.extract(&roots, trace_id, false);
        batch.is_segment = true;
        self.entities.clear();
        batch
    }
}

/// Streams every maximal completed subtree (an ended subsegment whose descendants have all
/// ended, under a parent that is still open or is the segment) out of the arena as independent
/// subsegments. Only the candidates and the subtrees moved out are visited, and the freed
/// slots are reused, so the cost does not grow with the number of subsegments already
/// streamed.
pub(super) fn stream_completed(state: &mut TraceState, trace_id: TraceId) -> Option<Batch> {
    // Oldest first, so subtrees go out in the order they completed.
    let mut candidates = Vec::with_capacity(state.completed_len as usize);
    let mut next = state.completed_head;
    while let Some(e) = state.entities.get(next as usize) {
        candidates.push(next);
        next = e.next_completed;
    }
    candidates.reverse();
    let mut roots = Vec::new();
    let mut keep = Vec::new();
    for &c in &candidates {
        let i = c as usize;
        let Some(e) = state.entities.get(i) else {
            continue;
        };
        if !state.is_complete(i) {
            keep.push(c);
            continue;
        }
        let parent = e.parent;
        if parent != 0 && state.is_complete(parent as usize) {
            // Goes out with its parent's subtree.
            keep.push(c);
            continue;
        }
        roots.push(c);
    }
    for &r in &roots {
        state.unlink(r);
    }
    let (batch, moved) = state.extract(&roots, trace_id, true);
    for &(old, _) in &moved {
        if let Some(e) = state.entities.get_mut(old as usize) {
            e.state = EntityState::Streamed;
            state.free.push(old);
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
    if batch.entities.is_empty() {
        return None;
    }
    state.reordered = true;
    state.compact_text();
    Some(batch)
}
