//! Service map, built the way X-Ray builds it.
//!
//! Nodes: one per service (segments by name), one per AWS resource
//! (subsegments with namespace `aws`), one per remote host (subsegments with
//! namespace `remote` whose downstream sent no segment) and a `client` node
//! for segments without a parent. An edge A→B exists when a segment of B has
//! a `parent_id` equal to the id of a subsegment inside A's segment.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::document::Node;
use crate::state::store::{StoredEntity, Trace, end_of, start_of};
use crate::views::histogram::Histogram;

/// Request counts and timings, in X-Ray's `SummaryStatistics` shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stats {
    /// All completed requests.
    pub total_count: u64,
    /// Requests without error, throttle or fault.
    pub ok_count: u64,
    /// 4xx-class requests (throttles included).
    pub error_statistics: ErrorStats,
    /// 5xx-class requests.
    pub fault_statistics: FaultStats,
    /// Sum of durations, seconds.
    pub total_response_time: f64,
}

/// Error counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorStats {
    /// All errors, throttles included.
    pub total_count: u64,
    /// Throttles (429).
    pub throttle_count: u64,
    /// Errors that are not throttles.
    pub other_count: u64,
}

/// Fault counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FaultStats {
    /// All faults.
    pub total_count: u64,
    /// Same as `total_count` (no finer classification locally).
    pub other_count: u64,
}

impl Stats {
    /// Counts one completed request.
    pub fn record(&mut self, e: &Node) {
        let duration = end_of(e) - start_of(e);
        self.total_count += 1;
        if duration.is_finite() && duration >= 0.0 {
            self.total_response_time += duration;
        }
        if e.fault {
            self.fault_statistics.total_count += 1;
            self.fault_statistics.other_count += 1;
        } else if e.throttle {
            self.error_statistics.total_count += 1;
            self.error_statistics.throttle_count += 1;
        } else if e.error {
            self.error_statistics.total_count += 1;
            self.error_statistics.other_count += 1;
        } else {
            self.ok_count += 1;
        }
    }

    /// Adds every count of `o`.
    pub fn merge(&mut self, o: &Stats) {
        self.total_count += o.total_count;
        self.ok_count += o.ok_count;
        self.error_statistics.total_count += o.error_statistics.total_count;
        self.error_statistics.throttle_count += o.error_statistics.throttle_count;
        self.error_statistics.other_count += o.error_statistics.other_count;
        self.fault_statistics.total_count += o.fault_statistics.total_count;
        self.fault_statistics.other_count += o.fault_statistics.other_count;
        self.total_response_time += o.total_response_time;
    }
}

/// A node of the map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    /// Index of this node in `Services`.
    pub reference_id: usize,
    /// Display name.
    pub name: String,
    /// All names (X-Ray shape; always the one name here).
    pub names: Vec<String>,
    /// `client`, `remote`, an `AWS::...` resource type, a segment origin, or
    /// `service`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `true` when the node is reached directly from the client.
    pub root: bool,
    /// Earliest request received, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<f64>,
    /// Latest end of a request received, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// Outgoing edges.
    pub edges: Vec<Edge>,
    /// Requests received by this node (sum of incoming edges).
    pub summary_statistics: Stats,
    /// Their durations.
    pub response_time_histogram: Histogram,
    /// The same durations (locally nothing tells a service's duration from
    /// its response time).
    pub duration_histogram: Histogram,
}

/// An edge of the map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Edge {
    /// Target node's `ReferenceId`.
    pub reference_id: usize,
    /// Earliest request along the edge, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<f64>,
    /// Latest end of a request along it, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// Requests along this edge.
    pub summary_statistics: Stats,
    /// Their durations.
    pub response_time_histogram: Histogram,
}

/// Requests along one edge, as they are added up.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Counts and total time.
    pub stats: Stats,
    /// Durations.
    pub histogram: Histogram,
    /// Earliest start and latest end.
    pub span: Option<(f64, f64)>,
}

impl Tally {
    /// Counts one completed request.
    pub fn record(&mut self, e: &Node) {
        self.stats.record(e);
        let (s, end) = (start_of(e), end_of(e));
        self.histogram.add(end - s);
        if s.is_finite() && end.is_finite() {
            let (a, b) = self.span.unwrap_or((s, end));
            self.span = Some((a.min(s), b.max(end)));
        }
    }

    fn merge(&mut self, o: &Tally) {
        self.stats.merge(&o.stats);
        self.histogram.merge(&o.histogram);
        if let Some((s, e)) = o.span {
            let (a, b) = self.span.unwrap_or((s, e));
            self.span = Some((a.min(s), b.max(e)));
        }
    }
}

/// A node of the map: its name and its type.
pub type Key = (String, String);

/// The graph for a set of traces.
pub fn build<'a>(traces: impl Iterator<Item = &'a Trace>) -> Vec<Service> {
    let mut edges: BTreeMap<(Key, Key), Tally> = BTreeMap::new();
    let mut nodes: BTreeMap<Key, ()> = BTreeMap::new();
    for t in traces {
        add_trace(t, &mut nodes, &mut edges);
    }
    let index: HashMap<&Key, usize> = nodes.keys().enumerate().map(|(i, k)| (k, i)).collect();
    let mut received: Vec<Tally> = vec![Tally::default(); nodes.len()];
    let mut services: Vec<Service> = nodes
        .keys()
        .enumerate()
        .map(|(i, (name, kind))| Service {
            reference_id: i,
            name: name.clone(),
            names: vec![name.clone()],
            kind: kind.clone(),
            root: false,
            start_time: None,
            end_time: None,
            edges: Vec::new(),
            summary_statistics: Stats::default(),
            response_time_histogram: Histogram::default(),
            duration_histogram: Histogram::default(),
        })
        .collect();
    for ((from, to), tally) in &edges {
        let (Some(&f), Some(&t)) = (index.get(from), index.get(to)) else {
            continue;
        };
        if from.1 == "client" {
            services[t].root = true;
        }
        received[t].merge(tally);
        services[f].edges.push(Edge {
            reference_id: t,
            start_time: tally.span.map(|s| s.0),
            end_time: tally.span.map(|s| s.1),
            summary_statistics: tally.stats.clone(),
            response_time_histogram: tally.histogram.clone(),
        });
    }
    for (s, tally) in services.iter_mut().zip(received) {
        s.start_time = tally.span.map(|s| s.0);
        s.end_time = tally.span.map(|s| s.1);
        s.summary_statistics = tally.stats;
        s.duration_histogram = tally.histogram.clone();
        s.response_time_histogram = tally.histogram;
    }
    services
}

/// One request along an edge of the map, inside one trace.
#[derive(Debug, Clone, Copy)]
pub struct TraceEdge<'a> {
    /// Index in the trace's entities of the callee's side of the request:
    /// the callee's segment, or the call itself for a resource or a remote
    /// host that sent no segment.
    pub entity: usize,
    /// The fields of that entity.
    pub node: &'a Node,
}

/// The requests along the map's edges in one trace, with the nodes at
/// their ends: `(from, to, request)`. In-progress entities are left out
/// unless `in_progress` is set.
pub fn trace_edges<'a>(
    entities: &[StoredEntity<'a>],
    in_progress: bool,
) -> Vec<(Key, Key, TraceEdge<'a>)> {
    let by_id: HashMap<&str, &StoredEntity<'_>> = entities.iter().map(|e| (e.id, e)).collect();
    let segment_parents: HashSet<&str> = entities
        .iter()
        .filter(|e| e.is_segment)
        .filter_map(|e| e.node.parent_id.as_str())
        .collect();
    // The service that owns each entity: walk up structural parents to the
    // segment (bounded, since streamed parent_ids can form cycles).
    let owner = |e: &StoredEntity<'_>| -> Option<Key> {
        let mut cur = *e;
        for _ in 0..128 {
            if cur.is_segment {
                return Some(service_key(cur.node));
            }
            cur = **by_id.get(cur.parent?)?;
        }
        None
    };
    let client: Key = ("client".into(), "client".into());
    let mut out = Vec::new();
    for (i, e) in entities.iter().enumerate() {
        if e.node.in_progress && !in_progress {
            continue;
        }
        let request = TraceEdge {
            entity: i,
            node: e.node,
        };
        if e.is_segment {
            let to = service_key(e.node);
            let from = e
                .node
                .parent_id
                .as_str()
                .and_then(|p| by_id.get(p))
                .and_then(|p| owner(p))
                .unwrap_or_else(|| client.clone());
            out.push((from, to, request));
            continue;
        }
        let Some(to) = resource_key(e.node) else {
            continue;
        };
        if segment_parents.contains(e.id) || inside_resource_call(e, &by_id) {
            continue;
        }
        let Some(from) = owner(e) else { continue };
        out.push((from, to, request));
    }
    out
}

fn add_trace(t: &Trace, nodes: &mut BTreeMap<Key, ()>, edges: &mut BTreeMap<(Key, Key), Tally>) {
    let entities = t.entities();
    for (from, to, request) in trace_edges(&entities, false) {
        nodes.insert(from.clone(), ());
        nodes.insert(to.clone(), ());
        edges.entry((from, to)).or_default().record(request.node);
    }
}

/// `true` when an ancestor subsegment is itself an aws/remote call, so only
/// the outermost call counts.
fn inside_resource_call(e: &StoredEntity<'_>, by_id: &HashMap<&str, &StoredEntity<'_>>) -> bool {
    let mut cur = e.parent;
    for _ in 0..128 {
        let Some(p) = cur.and_then(|id| by_id.get(id)) else {
            return false;
        };
        if p.is_segment {
            return false;
        }
        if resource_key(p.node).is_some() {
            return true;
        }
        cur = p.parent;
    }
    false
}

fn service_key(v: &Node) -> Key {
    let name = v.name.as_str().unwrap_or("(unnamed)");
    let kind = v.origin.as_str().unwrap_or("service");
    (name.to_string(), kind.to_string())
}

fn resource_key(v: &Node) -> Option<Key> {
    let name = v.name.as_str().unwrap_or("(unnamed)");
    match v.namespace.as_str() {
        Some("aws") => Some((name.to_string(), aws_type(name))),
        Some("remote") => Some((name.to_string(), "remote".to_string())),
        _ => None,
    }
}

/// X-Ray's node type for an AWS SDK call, from the subsegment name.
pub fn aws_type(service: &str) -> String {
    match service {
        "DynamoDB" => "AWS::DynamoDB::Table".into(),
        "S3" => "AWS::S3::Bucket".into(),
        "SQS" => "AWS::SQS::Queue".into(),
        "SNS" => "AWS::SNS::Topic".into(),
        "Lambda" => "AWS::Lambda::Function".into(),
        other => format!("AWS::{other}"),
    }
}
