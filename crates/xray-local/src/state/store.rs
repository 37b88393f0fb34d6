//! In-memory trace store.
//!
//! Documents are grouped by `trace_id` and keyed by `id` inside a trace: a
//! complete document replaces an in-progress one with the same id, never the
//! other way round. Streamed subsegments may arrive before or after their
//! parent; they are linked when the trace is read, not when it is written.
//! The store is bounded by a trace count and an approximate byte budget and
//! evicts the oldest trace (by first arrival) first.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::mem::size_of;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::document::{Field, Node, SmallStr, Sub};
use crate::validate::Problem;

/// Approximate bookkeeping cost of one heap allocation.
const ALLOC_OVERHEAD: usize = 16;

/// Approximate cost of a trace beyond its documents: the `Trace` itself and
/// its slots in the store's maps (its id is the first document's).
const TRACE_OVERHEAD: usize = size_of::<Trace>() + 96;
/// Approximate bytes of one trace-level problem besides its texts.
const PROBLEM_OVERHEAD: usize = size_of::<(String, Problem)>() + 32;

/// Approximate heap cost of one stored document: its text, its typed form,
/// its problems and its slot in the trace's map.
fn document_cost(doc: &Document) -> usize {
    let problems: usize = doc
        .problems
        .iter()
        .map(|p| size_of::<Problem>() + p.message.len() + ALLOC_OVERHEAD)
        .sum();
    size_of::<Document>()
        + 2 * doc.id.heap_bytes()
        + doc.raw.len()
        + 2 * ALLOC_OVERHEAD
        + doc.node.heap_bytes()
        + problems
        + 32
}

/// How many documents without a usable `trace_id` are kept for display.
const UNFILED_KEPT: usize = 100;

/// One stored top-level document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document's `id` (or a placeholder when it has none).
    pub id: SmallStr,
    /// The JSON text as received.
    pub raw: Arc<str>,
    /// The fields of the document this crate reads.
    pub node: Node,
    /// `true` for an independently sent subsegment (`"type":"subsegment"`).
    pub streamed: bool,
    /// `true` while the document is an in-progress fragment.
    pub in_progress: bool,
    /// Problems found when the document arrived.
    pub problems: Vec<Problem>,
    /// Arrival time, Unix seconds.
    pub received_at: f64,
    /// Bytes charged against the memory cap.
    cost: usize,
}

/// All documents of one trace.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The trace ID.
    pub id: Arc<str>,
    /// Documents keyed by their `id`.
    pub docs: HashMap<SmallStr, Document>,
    /// When the first document arrived, Unix seconds.
    pub first_seen: f64,
    /// Trace-level problems found when the trace settled, with the id of the
    /// document concerned.
    pub trace_problems: Vec<(String, Problem)>,
    /// `true` once trace-level checks have run and nothing arrived since.
    pub settled: bool,
    last_update: Instant,
    bytes: usize,
    /// The part of `bytes` that `trace_problems` take.
    problems_bytes: usize,
}

/// One segment or subsegment, wherever it sits in the trace.
#[derive(Debug, Clone, Copy)]
pub struct StoredEntity<'a> {
    /// The entity's `id` (empty when missing).
    pub id: &'a str,
    /// Structural parent: the enclosing entity for embedded subsegments, the
    /// `parent_id` for streamed subsegments, `None` for segments.
    pub parent: Option<&'a str>,
    /// The entity's fields.
    pub node: &'a Node,
    /// `true` for segments (top-level documents that are not subsegments).
    pub is_segment: bool,
    /// Id of the top-level document that holds this entity.
    pub doc_id: &'a str,
}

impl Trace {
    /// Every segment and subsegment of the trace, documents in start order,
    /// each followed by its embedded subsegments.
    pub fn entities(&self) -> Vec<StoredEntity<'_>> {
        let mut out = Vec::new();
        for d in self.documents_in_order() {
            let parent = if d.streamed {
                d.node.parent_id.as_str()
            } else {
                None
            };
            walk(&d.node, parent, !d.streamed, &d.id, 0, &mut out);
        }
        out
    }

    /// The top-level documents in the order [`Trace::entities`] visits them.
    pub fn documents_in_order(&self) -> Vec<&Document> {
        let mut docs: Vec<&Document> = self.docs.values().collect();
        docs.sort_by(|a, b| {
            start_of(&a.node)
                .total_cmp(&start_of(&b.node))
                .then_with(|| a.id.cmp(&b.id))
        });
        docs
    }

    /// Earliest start and latest end over every entity, embedded subsegments
    /// included, Unix seconds. An entity without an end (in progress, or
    /// `end_time` missing) counts as ending at its start: an in-progress
    /// segment then reaches as far as its latest finished descendant, and a
    /// subsegment that outlives its segment still counts.
    pub fn time_range(&self) -> (f64, f64) {
        let mut range = (f64::INFINITY, f64::NEG_INFINITY);
        for d in self.docs.values() {
            widen(&d.node, 0, &mut range);
        }
        let (start, end) = range;
        if start.is_finite() {
            (start, end.max(start))
        } else {
            (self.first_seen, self.first_seen)
        }
    }

    /// Number of document-level and trace-level problems.
    pub fn problem_count(&self) -> usize {
        self.docs.values().map(|d| d.problems.len()).sum::<usize>() + self.trace_problems.len()
    }

    /// Bytes charged to this trace against the memory cap.
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }
}

/// Embedded subsegments deeper than this are not visited.
pub const MAX_WALK_DEPTH: usize = 64;

fn walk<'a>(
    v: &'a Node,
    parent: Option<&'a str>,
    is_segment: bool,
    doc_id: &'a str,
    depth: usize,
    out: &mut Vec<StoredEntity<'a>>,
) {
    let id = v.id.as_str().unwrap_or("");
    out.push(StoredEntity {
        id,
        parent,
        node: v,
        is_segment,
        doc_id,
    });
    if depth >= MAX_WALK_DEPTH {
        return;
    }
    if let Field::Ok(subs) = &v.subsegments {
        for s in subs {
            if let Sub::Node(m) = s {
                walk(m, Some(id), false, doc_id, depth + 1, out);
            }
        }
    }
}

/// Widens `range` by `v` and its embedded subsegments, walked like
/// [`Trace::entities`] does (same depth cap), without collecting them.
fn widen(v: &Node, depth: usize, range: &mut (f64, f64)) {
    if let Some(s) = v.start_time.as_f64().filter(|s| s.is_finite()) {
        let e = if v.in_progress {
            None
        } else {
            v.end_time.as_f64().filter(|e| e.is_finite())
        };
        range.0 = range.0.min(s);
        range.1 = range.1.max(e.unwrap_or(s));
    }
    if depth >= MAX_WALK_DEPTH {
        return;
    }
    if let Field::Ok(subs) = &v.subsegments {
        for s in subs {
            if let Sub::Node(m) = s {
                widen(m, depth + 1, range);
            }
        }
    }
}

/// `start_time` as `f64`, `NaN` when absent or not a number.
pub fn start_of(v: &Node) -> f64 {
    v.start_time.as_f64().unwrap_or(f64::NAN)
}

/// `end_time` as `f64`, `NaN` when absent or not a number.
pub fn end_of(v: &Node) -> f64 {
    v.end_time.as_f64().unwrap_or(f64::NAN)
}

/// A document that could not be filed under a trace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Unfiled {
    /// Arrival time, Unix seconds.
    pub received_at: f64,
    /// Problems found.
    pub problems: Vec<Problem>,
    /// The beginning of the document text.
    pub excerpt: String,
}

/// Cumulative validation counters.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationCounts {
    /// Documents checked.
    pub documents_checked: u64,
    /// Documents with at least one problem.
    pub documents_with_problems: u64,
    /// Problems by code (document-level, plus trace-level for settled traces).
    pub by_code: BTreeMap<&'static str, u64>,
}

/// What happened to an ingested document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored as a new document.
    Stored,
    /// Replaced an earlier document with the same id.
    Replaced,
    /// An in-progress document arrived after the complete one and was dropped.
    StaleInProgress,
    /// The document had no usable `trace_id` and was kept aside.
    Unfiled,
}

/// Store-level counters.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoreCounters {
    /// Documents stored.
    pub stored: u64,
    /// Documents that replaced one with the same id.
    pub replaced: u64,
    /// In-progress documents ignored because the complete one was there.
    pub stale_in_progress: u64,
    /// Documents without a usable trace_id.
    pub unfiled: u64,
    /// Traces evicted to respect the caps.
    pub evicted_traces: u64,
    /// Documents dropped with evicted traces.
    pub evicted_documents: u64,
    /// Evictions caused by the trace-count cap.
    pub evicted_for_count: u64,
    /// Evictions caused by the memory cap.
    pub evicted_for_memory: u64,
}

/// The trace store.
#[derive(Debug)]
pub struct Store {
    traces: HashMap<Arc<str>, Trace>,
    order: VecDeque<Arc<str>>,
    bytes: usize,
    max_traces: usize,
    max_bytes: usize,
    unfiled: VecDeque<Unfiled>,
    counters: StoreCounters,
    validation: ValidationCounts,
}

impl Store {
    /// An empty store with the given caps.
    pub fn new(max_traces: usize, max_bytes: usize) -> Self {
        Self {
            traces: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_traces: max_traces.max(1),
            max_bytes,
            unfiled: VecDeque::new(),
            counters: StoreCounters::default(),
            validation: ValidationCounts::default(),
        }
    }

    /// Adds a parsed, already validated document: its typed form and its
    /// text.
    pub fn ingest(
        &mut self,
        node: Node,
        raw: Arc<str>,
        problems: Vec<Problem>,
        received_at: f64,
        now: Instant,
    ) -> Outcome {
        self.validation.documents_checked += 1;
        if !problems.is_empty() {
            self.validation.documents_with_problems += 1;
        }
        for p in &problems {
            *self.validation.by_code.entry(p.code).or_default() += 1;
        }
        let Field::Ok(trace_id) = &node.trace_id else {
            self.counters.unfiled += 1;
            if self.unfiled.len() >= UNFILED_KEPT {
                self.unfiled.pop_front();
            }
            self.unfiled.push_back(Unfiled {
                received_at,
                problems,
                excerpt: raw.chars().take(300).collect(),
            });
            return Outcome::Unfiled;
        };
        let trace_id = match self.traces.get(&**trace_id) {
            Some(t) => t.id.clone(),
            None => {
                let key = trace_id.clone();
                self.bytes += TRACE_OVERHEAD;
                self.order.push_back(key.clone());
                self.traces.insert(
                    key.clone(),
                    Trace {
                        id: key.clone(),
                        docs: HashMap::new(),
                        first_seen: received_at,
                        trace_problems: Vec::new(),
                        settled: false,
                        last_update: now,
                        bytes: TRACE_OVERHEAD,
                        problems_bytes: 0,
                    },
                );
                key
            }
        };
        let Some(trace) = self.traces.get_mut(&trace_id) else {
            return Outcome::Unfiled;
        };
        let id = match node.id.as_str() {
            Some(id) => SmallStr::new(id),
            None => SmallStr::new(&format!("(no id #{})", self.counters.stored)),
        };
        let in_progress = node.in_progress;
        let streamed = node.kind.as_str() == Some("subsegment");
        let mut doc = Document {
            id,
            raw,
            node,
            streamed,
            in_progress,
            problems,
            received_at,
            cost: 0,
        };
        doc.cost = document_cost(&doc);
        let cost = doc.cost;
        let mut outcome = Outcome::Stored;
        if let Some(old) = trace.docs.get(&doc.id) {
            if in_progress && !old.in_progress {
                self.counters.stale_in_progress += 1;
                return Outcome::StaleInProgress;
            }
            let old_cost = old.cost;
            trace.bytes -= old_cost;
            self.bytes -= old_cost;
            outcome = Outcome::Replaced;
            self.counters.replaced += 1;
        }
        if trace.settled {
            trace.settled = false;
            for (_, p) in trace.trace_problems.drain(..) {
                if let Some(n) = self.validation.by_code.get_mut(p.code) {
                    *n = n.saturating_sub(1);
                }
            }
            trace.bytes -= trace.problems_bytes;
            self.bytes -= trace.problems_bytes;
            trace.problems_bytes = 0;
        }
        trace.last_update = now;
        trace.bytes += cost;
        self.bytes += cost;
        trace.docs.insert(doc.id.clone(), doc);
        self.counters.stored += 1;
        self.evict(&trace_id);
        outcome
    }

    /// Evicts oldest traces until both caps hold; `keep` is evicted only if
    /// it alone breaks a cap.
    fn evict(&mut self, keep: &str) {
        // A trace over the memory cap on its own goes first: evicting the others would not
        // make it fit.
        if self
            .traces
            .get(keep)
            .is_some_and(|t| t.bytes > self.max_bytes)
        {
            self.order.retain(|id| **id != *keep);
            if let Some(t) = self.traces.remove(keep) {
                self.bytes -= t.bytes;
                self.counters.evicted_traces += 1;
                self.counters.evicted_documents += t.docs.len() as u64;
                self.counters.evicted_for_memory += 1;
            }
        }
        loop {
            let for_count = self.traces.len() > self.max_traces;
            let for_memory = self.bytes > self.max_bytes;
            if !for_count && !for_memory {
                return;
            }
            let Some(oldest) = self.order.pop_front() else {
                return;
            };
            if *oldest == *keep && self.traces.len() > 1 {
                // The trace being written may be the oldest; keep it and
                // evict the next one instead.
                self.order.push_back(oldest);
                continue;
            }
            if let Some(t) = self.traces.remove(&oldest) {
                self.bytes -= t.bytes;
                self.counters.evicted_traces += 1;
                self.counters.evicted_documents += t.docs.len() as u64;
                if for_count {
                    self.counters.evicted_for_count += 1;
                } else {
                    self.counters.evicted_for_memory += 1;
                }
            }
        }
    }

    /// Runs trace-level checks on traces quiet for at least `settle`.
    pub fn settle(&mut self, now: Instant, settle: Duration) {
        for trace in self.traces.values_mut() {
            if trace.settled || now.saturating_duration_since(trace.last_update) < settle {
                continue;
            }
            trace.trace_problems = trace_level_problems(trace);
            for (_, p) in &trace.trace_problems {
                *self.validation.by_code.entry(p.code).or_default() += 1;
            }
            // The problems count against the memory cap like the documents do.
            let cost: usize = trace
                .trace_problems
                .iter()
                .map(|(id, p)| PROBLEM_OVERHEAD + id.len() + p.message.len())
                .sum();
            trace.problems_bytes = cost;
            trace.bytes += cost;
            self.bytes += cost;
            trace.settled = true;
        }
        self.evict("");
    }

    /// Looks up a trace.
    pub fn get(&self, id: &str) -> Option<&Trace> {
        self.traces.get(id)
    }

    /// All traces, in no particular order.
    pub fn traces(&self) -> impl Iterator<Item = &Trace> {
        self.traces.values()
    }

    /// Number of traces stored.
    pub fn len(&self) -> usize {
        self.traces.len()
    }

    /// `true` when no trace is stored.
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty()
    }

    /// Approximate bytes used by stored documents.
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// Store counters.
    pub fn counters(&self) -> &StoreCounters {
        &self.counters
    }

    /// Validation counters.
    pub fn validation(&self) -> &ValidationCounts {
        &self.validation
    }

    /// Recent documents without a usable trace_id, oldest first.
    pub fn unfiled(&self) -> impl DoubleEndedIterator<Item = &Unfiled> {
        self.unfiled.iter()
    }

    /// The configured caps: (traces, bytes).
    pub fn caps(&self) -> (usize, usize) {
        (self.max_traces, self.max_bytes)
    }
}

/// Orphan subsegments and in-progress documents that never completed.
fn trace_level_problems(trace: &Trace) -> Vec<(String, Problem)> {
    let entities = trace.entities();
    let ids: HashSet<&str> = entities.iter().map(|e| e.id).collect();
    let mut out = Vec::new();
    for d in trace.docs.values() {
        if d.streamed
            && let Some(parent) = d.node.parent_id.as_str()
            && !ids.contains(parent)
        {
            out.push((
                d.id.to_string(),
                Problem {
                    code: "orphan_subsegment",
                    message: format!(
                        "subsegment {} names parent {parent}, which never arrived",
                        d.id
                    ),
                },
            ));
        }
    }
    for e in &entities {
        if e.node.in_progress {
            let name = e.node.name.as_str().unwrap_or("?");
            out.push((
                e.doc_id.to_string(),
                Problem {
                    code: "in_progress_never_completed",
                    message: format!(
                        "{name} ({}) is still in progress and no complete document arrived",
                        e.id
                    ),
                },
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn doc(v: Value) -> (Node, Arc<str>) {
        let raw = v.to_string();
        (
            crate::document::parse(raw.as_bytes()).unwrap_or_default(),
            raw.into(),
        )
    }

    #[test]
    fn complete_replaces_in_progress_but_not_back() {
        let mut s = Store::new(10, 1 << 20);
        let now = Instant::now();
        let (m, r) = doc(json!({"trace_id":"t","id":"a","in_progress":true}));
        assert_eq!(s.ingest(m, r, vec![], 0.0, now), Outcome::Stored);
        let (m, r) = doc(json!({"trace_id":"t","id":"a","end_time":2}));
        assert_eq!(s.ingest(m, r, vec![], 0.0, now), Outcome::Replaced);
        let (m, r) = doc(json!({"trace_id":"t","id":"a","in_progress":true}));
        assert_eq!(s.ingest(m, r, vec![], 0.0, now), Outcome::StaleInProgress);
        assert_eq!(s.get("t").map(|t| t.docs.len()), Some(1));
    }

    fn ingest_all(docs: &[Value]) -> Store {
        let mut s = Store::new(10, 1 << 20);
        for d in docs {
            let (m, r) = doc(d.clone());
            s.ingest(m, r, vec![], 0.0, Instant::now());
        }
        s
    }

    #[test]
    fn time_range_of_an_in_progress_segment_reaches_its_finished_children() {
        // The segment is still open; a streamed subsegment and an embedded one
        // (inside an open embedded subsegment) have finished.
        let s = ingest_all(&[
            json!({"trace_id":"t","id":"a","name":"seg","start_time":10.0,"in_progress":true,
                   "subsegments":[{"id":"b","name":"open","start_time":10.1,"in_progress":true,
                       "subsegments":[{"id":"c","name":"done","start_time":10.2,"end_time":10.7}]}]}),
            json!({"trace_id":"t","id":"d","type":"subsegment","parent_id":"a","name":"late",
                   "start_time":10.3,"end_time":10.5}),
        ]);
        assert_eq!(s.get("t").map(Trace::time_range), Some((10.0, 10.7)));
    }

    #[test]
    fn time_range_counts_embedded_subsegments_outliving_their_segment() {
        let s = ingest_all(&[
            json!({"trace_id":"t","id":"a","name":"seg","start_time":10.0,
            "end_time":11.0,"subsegments":[{"id":"b","name":"async","start_time":9.5,"end_time":12.5}]}),
        ]);
        assert_eq!(s.get("t").map(Trace::time_range), Some((9.5, 12.5)));
    }

    #[test]
    fn time_range_of_a_lone_in_progress_segment_is_its_start() {
        // No end anywhere: the range is empty at the start, never negative or NaN.
        let s = ingest_all(&[
            json!({"trace_id":"t","id":"a","name":"seg","start_time":10.0,"in_progress":true,
                   "end_time":99.0}),
            json!({"trace_id":"u","id":"a","name":"no times"}),
        ]);
        assert_eq!(s.get("t").map(Trace::time_range), Some((10.0, 10.0)));
        assert_eq!(s.get("u").map(Trace::time_range), Some((0.0, 0.0)));
    }

    #[test]
    fn evicts_oldest_by_count() {
        let mut s = Store::new(2, 1 << 20);
        for t in ["a", "b", "c"] {
            let (m, r) = doc(json!({"trace_id":t,"id":"x"}));
            s.ingest(m, r, vec![], 0.0, Instant::now());
        }
        assert!(s.get("a").is_none());
        assert_eq!(s.len(), 2);
        assert_eq!(s.counters().evicted_for_count, 1);
    }

    #[test]
    fn trace_level_problems_count_against_the_memory_cap() {
        let mut s = Store::new(10, 1 << 20);
        let t0 = Instant::now();
        let subs: Vec<serde_json::Value> = (0..200)
            .map(|i| json!({"id": format!("{i:016x}"), "name": "s", "in_progress": true}))
            .collect();
        let (m, r) = doc(json!({"trace_id":"t","id":"x","name":"seg","subsegments": subs}));
        s.ingest(m, r, vec![], 0.0, t0);
        let before = s.approx_bytes();
        s.settle(t0 + Duration::from_secs(10), Duration::from_secs(1));
        let problems = s.get("t").map_or(0, |t| t.trace_problems.len());
        assert!(problems >= 200, "{problems}");
        let after = s.approx_bytes();
        assert!(after >= before + problems * 50, "{before} -> {after}");
        // A new document reopens the trace: the problems and their cost go.
        let (m, r) = doc(json!({"trace_id":"t","id":"y","name":"more"}));
        s.ingest(m, r, vec![], 0.0, t0 + Duration::from_secs(11));
        assert!(s.approx_bytes() < after, "{after} -> {}", s.approx_bytes());
    }

    #[test]
    fn a_trace_too_big_on_its_own_is_evicted_alone() {
        let mut s = Store::new(10, 4_000);
        for t in ["a", "b"] {
            let (m, r) = doc(json!({"trace_id":t,"id":"x","name":"small"}));
            s.ingest(m, r, vec![], 0.0, Instant::now());
        }
        let (m, r) = doc(json!({"trace_id":"big","id":"x","name":"x".repeat(10_000)}));
        s.ingest(m, r, vec![], 0.0, Instant::now());
        // The small traces stay; only the one that cannot fit goes.
        assert!(s.get("big").is_none());
        assert!(s.get("a").is_some() && s.get("b").is_some());
        assert_eq!(s.len(), 2);
        assert_eq!(s.counters().evicted_for_memory, 1);
        // And the store keeps working afterwards.
        let (m, r) = doc(json!({"trace_id":"c","id":"x"}));
        s.ingest(m, r, vec![], 0.0, Instant::now());
        assert!(s.get("c").is_some());
    }
}
