//! The cap on subsegments per segment.
//!
//! Spans that descend from a span of this layer share its budget through the span's own
//! state, so only the first span of a segment seen on a path (one whose parent is not a span
//! of this layer) looks the budget up here. The table is per layer, split into shards keyed
//! by the trace ID, and keeps the budgets of the most recent segments ([`SHARDS`] x
//! [`PER_SHARD`]), so that sibling spans that run one after another under the same segment
//! share one even when no span of it is open in between.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use xray_sdk::{Context, EntityId, Record, TraceId};

/// Shards of the table.
const SHARDS: usize = 32;
/// Traces remembered per shard; the oldest is forgotten first.
const PER_SHARD: usize = 32;

/// Metadata key (in the layer's metadata namespace) of the count of spans left out.
pub const OMITTED_KEY: &str = "omitted_subsegments";

/// The subsegments left for one trace in this process.
#[derive(Debug)]
pub(crate) struct Budget {
    max: u32,
    used: AtomicU32,
    omitted: AtomicU32,
    /// Where the count of omitted spans is written: the segment.
    anchor: Context,
}

impl Budget {
    fn new(max: u32, anchor: Context) -> Self {
        Budget {
            max,
            used: AtomicU32::new(0),
            omitted: AtomicU32::new(0),
            anchor,
        }
    }

    /// Takes one subsegment from the budget; false when it is spent.
    pub(crate) fn try_take(&self) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u < self.max).then_some(u + 1)
            })
            .is_ok()
    }

    /// Counts one omitted span and records the running total on the anchor.
    pub(crate) fn omit(&self, namespace: &str) {
        let n = self
            .omitted
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        self.anchor.put_metadata_in(namespace, OMITTED_KEY, n);
    }
}

struct Entry {
    trace_id: TraceId,
    segment_id: EntityId,
    budget: Arc<Budget>,
}

/// Budgets by segment (two segments of one trace in this process, such as two requests of
/// one trace, each have their own).
pub(crate) struct BudgetTable {
    max: Option<u32>,
    shards: Box<[Mutex<VecDeque<Entry>>]>,
}

impl std::fmt::Debug for BudgetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetTable")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BudgetTable {
    pub(crate) fn new(max: Option<u32>) -> Self {
        BudgetTable {
            max,
            shards: (0..SHARDS).map(|_| Mutex::new(VecDeque::new())).collect(),
        }
    }

    pub(crate) fn max(&self) -> Option<u32> {
        self.max
    }

    pub(crate) fn set_max(&mut self, max: Option<u32>) {
        self.max = max;
    }

    /// The budget of `parent`'s segment, created if there is none; `None` when there is no
    /// cap, or nothing of `parent` is recorded.
    pub(crate) fn get(&self, parent: &Context) -> Option<Arc<Budget>> {
        let max = self.max?;
        let segment = parent.segment()?;
        let trace_id = parent.trace_id();
        let segment_id = segment.id();
        let random = trace_id.random_bytes();
        let shard = usize::from(random[11]) % SHARDS;
        let mut entries = lock(&self.shards[shard]);
        if let Some(e) = entries
            .iter()
            .find(|e| e.segment_id == segment_id && e.trace_id == trace_id)
        {
            return Some(Arc::clone(&e.budget));
        }
        if entries.len() >= PER_SHARD {
            // Forget the oldest segment (its open spans keep their budget).
            entries.pop_front();
        }
        let budget = Arc::new(Budget::new(max, segment));
        entries.push_back(Entry {
            trace_id,
            segment_id,
            budget: Arc::clone(&budget),
        });
        Some(budget)
    }
}

/// The namespace the omitted count goes to when the layer records no other metadata.
pub(crate) fn omitted_namespace<'a>(configured: Option<&'a Cow<'static, str>>) -> &'a str {
    configured.map_or(crate::fields::DEFAULT_METADATA_NAMESPACE, |c| c.as_ref())
}
