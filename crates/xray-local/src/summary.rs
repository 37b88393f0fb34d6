//! Trace summaries (the `GetTraceSummaries` shape) and their filters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::document::{self, Field, Scalar};
use crate::query::{Params, QueryError};
use crate::store::{Entity, Trace, start_of};

/// Parents followed from an entity up to its segment (bad input can make a loop).
const MAX_ANCESTORS: usize = 64;

/// Status filter values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No error, fault or throttle on the root segment.
    Ok,
    /// The root segment has `error` (4xx).
    Error,
    /// The root segment has `fault` (5xx).
    Fault,
    /// The root segment has `throttle` (429).
    Throttle,
}

/// Filters for `GET /api/TraceSummaries`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Earliest trace start, Unix seconds.
    pub start: Option<f64>,
    /// Latest trace start, Unix seconds.
    pub end: Option<f64>,
    /// A service (segment name) that must appear in the trace.
    pub service: Option<String>,
    /// Root segment status.
    pub status: Option<Status>,
    /// An annotation `key=value` that must appear in the trace.
    pub annotation: Option<(String, String)>,
    /// Minimum duration, seconds.
    pub min_duration: Option<f64>,
    /// Maximum number of summaries returned.
    pub limit: usize,
}

/// Query keys accepted by [`Filter::parse`].
pub const FILTER_KEYS: [&str; 7] = [
    "start",
    "end",
    "service",
    "status",
    "annotation",
    "min_duration",
    "limit",
];

impl Filter {
    /// Parses a raw query string.
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let p = Params::parse(raw, &FILTER_KEYS)?;
        let status = match p.get("status") {
            None => None,
            Some(s) => Some(match s.to_ascii_lowercase().as_str() {
                "ok" => Status::Ok,
                "error" => Status::Error,
                "fault" => Status::Fault,
                "throttle" => Status::Throttle,
                _ => {
                    return Err(QueryError(format!(
                        "status must be ok, error, fault or throttle, got {s:?}"
                    )));
                }
            }),
        };
        let annotation = match p.get("annotation") {
            None => None,
            Some(a) => match a.split_once('=') {
                Some((k, v)) if !k.is_empty() => Some((k.to_string(), v.to_string())),
                _ => {
                    return Err(QueryError(format!(
                        "annotation must be key=value, got {a:?}"
                    )));
                }
            },
        };
        let f = Self {
            start: p.number("start")?,
            end: p.number("end")?,
            service: p.get("service").map(str::to_string),
            status,
            annotation,
            min_duration: p.number("min_duration")?,
            limit: p.limit(100)?,
        };
        if let (Some(s), Some(e)) = (f.start, f.end)
            && s > e
        {
            return Err(QueryError("start must not be after end".into()));
        }
        Ok(f)
    }
}

/// The parts of a trace the filters and the summary need.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Trace ID.
    pub id: String,
    /// Earliest start, Unix seconds.
    pub start: f64,
    /// Latest end minus earliest start, seconds.
    pub duration: f64,
    /// Root segment duration, seconds.
    pub response_time: f64,
    /// Root segment `error`.
    pub has_error: bool,
    /// Root segment `fault`.
    pub has_fault: bool,
    /// Root segment `throttle`.
    pub has_throttle: bool,
    /// Any document still in progress.
    pub is_partial: bool,
    services: Vec<(String, String)>,
    annotations: BTreeMap<String, Vec<(Scalar, String)>>,
    /// Text of the root segment's document, for its `http` block (read only
    /// when the summary is rendered).
    root_raw: Option<Arc<str>>,
    root_name: Option<String>,
    documents: usize,
    problems: usize,
}

impl Summary {
    /// Summarizes a trace.
    pub fn of(t: &Trace) -> Self {
        let entities = t.entities();
        let root = root_segment(&entities);
        let (start, end) = t.time_range();
        let mut services: Vec<(String, String)> = Vec::new();
        // The same services as a set: a linear search of the list made a trace with
        // many distinct services quadratic, under the store lock.
        let mut seen_services: HashSet<(&str, String)> = HashSet::new();
        let mut annotations: BTreeMap<String, Vec<(Scalar, String)>> = BTreeMap::new();
        let index: HashMap<&str, usize> = entities
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id, i))
            .collect();
        // Calls whose callee sent a segment of its own: the callee is the service, as in
        // the service map.
        let answered: HashSet<&str> = entities
            .iter()
            .filter(|e| e.is_segment)
            .filter_map(|e| e.node.parent_id.as_str())
            .collect();
        let is_call = |e: &Entity<'_>| {
            !e.is_segment && matches!(e.node.namespace.as_str(), Some("aws" | "remote"))
        };
        // The segment an entity belongs to, and whether it sits inside another call.
        let ancestry = |e: &Entity<'_>| {
            let mut inside_call = false;
            let mut parent = e.parent;
            for _ in 0..MAX_ANCESTORS {
                let Some(p) = parent.and_then(|id| index.get(id)).map(|&j| &entities[j]) else {
                    break;
                };
                if p.is_segment {
                    return (p.node.name.as_str().unwrap_or(""), inside_call);
                }
                inside_call |= is_call(p);
                parent = p.parent;
            }
            ("", inside_call)
        };
        for e in &entities {
            let name = e.node.name.as_str().unwrap_or("");
            let (owner, inside_call) = if e.is_segment {
                (name, false)
            } else {
                ancestry(e)
            };
            let kind = if e.is_segment {
                Some(e.node.origin.as_str().unwrap_or("service").to_string())
            } else if inside_call || answered.contains(e.id) {
                None
            } else {
                match e.node.namespace.as_str() {
                    Some("aws") => Some(crate::graph::aws_type(name)),
                    Some("remote") => Some("remote".to_string()),
                    _ => None,
                }
            };
            if let Some(kind) = kind
                && seen_services.insert((name, kind.clone()))
            {
                services.push((name.to_string(), kind));
            }
            if let Field::Ok(a) = &e.node.annotations {
                for (k, v) in a {
                    let list = match annotations.get_mut(&**k) {
                        Some(list) => list,
                        None => annotations.entry(k.to_string()).or_default(),
                    };
                    if list.len() < 20 && !list.iter().any(|(seen, _)| seen == v) {
                        list.push((v.clone(), owner.to_string()));
                    }
                }
            }
        }
        let response_time = root
            .map(|r| {
                let s = start_of(r.node);
                let e = r.node.end_time.as_f64().unwrap_or(s);
                e - s
            })
            .filter(|d| d.is_finite())
            .unwrap_or(0.0);
        Summary {
            id: t.id.to_string(),
            start,
            duration: end - start,
            response_time,
            has_error: root.is_some_and(|r| r.node.error || r.node.throttle),
            has_fault: root.is_some_and(|r| r.node.fault),
            has_throttle: root.is_some_and(|r| r.node.throttle),
            is_partial: t.docs.values().any(|d| d.in_progress),
            services,
            annotations,
            // The root is always a top-level document (see root_segment).
            root_raw: root
                .and_then(|r| t.docs.get(r.doc_id))
                .map(|d| d.raw.clone()),
            root_name: root.and_then(|r| r.node.name.as_str()).map(str::to_string),
            documents: t.docs.len(),
            problems: t.problem_count(),
        }
    }

    /// `true` when the summary passes every filter.
    pub fn matches(&self, f: &Filter) -> bool {
        if f.start.is_some_and(|s| self.start < s) || f.end.is_some_and(|e| self.start > e) {
            return false;
        }
        if f.min_duration.is_some_and(|d| self.duration < d) {
            return false;
        }
        if let Some(svc) = &f.service
            && !self.services.iter().any(|(n, _)| n == svc)
        {
            return false;
        }
        if let Some(status) = f.status {
            let ok = match status {
                Status::Ok => !self.has_error && !self.has_fault && !self.has_throttle,
                Status::Error => self.has_error,
                Status::Fault => self.has_fault,
                Status::Throttle => self.has_throttle,
            };
            if !ok {
                return false;
            }
        }
        if let Some((k, want)) = &f.annotation {
            let hit = self
                .annotations
                .get(k)
                .is_some_and(|vals| vals.iter().any(|(v, _)| annotation_eq(v, want)));
            if !hit {
                return false;
            }
        }
        true
    }

    /// The X-Ray `TraceSummary` JSON, plus a few local extras.
    pub fn to_json(&self) -> Value {
        let service_ids: Vec<Value> = self
            .services
            .iter()
            .map(|(n, t)| json!({"Name": n, "Names": [n], "Type": t}))
            .collect();
        let mut annotations = Map::new();
        for (k, vals) in &self.annotations {
            let list: Vec<Value> = vals
                .iter()
                .map(|(v, svc)| {
                    let av = match v {
                        Scalar::Bool(b) => json!({"BooleanValue": b}),
                        Scalar::Num(n) => json!({"NumberValue": n}),
                        Scalar::Str(s) => json!({"StringValue": s}),
                        Scalar::Other(other) => json!({"StringValue": other.to_string()}),
                    };
                    json!({"AnnotationValue": av, "ServiceIds": [{"Name": svc}]})
                })
                .collect();
            annotations.insert(k.clone(), Value::Array(list));
        }
        let http = self
            .root_raw
            .as_deref()
            .and_then(|raw| document::top_level_field(raw, "http"));
        let http = http.as_ref().map(|h| {
            json!({
                "HttpURL": h.pointer("/request/url"),
                "HttpMethod": h.pointer("/request/method"),
                "UserAgent": h.pointer("/request/user_agent"),
                "ClientIp": h.pointer("/request/client_ip"),
                "HttpStatus": h.pointer("/response/status"),
            })
        });
        json!({
            "Id": self.id,
            "StartTime": self.start,
            "Duration": self.duration,
            "ResponseTime": self.response_time,
            "HasError": self.has_error,
            "HasFault": self.has_fault,
            "HasThrottle": self.has_throttle,
            "IsPartial": self.is_partial,
            "ServiceIds": service_ids,
            "EntryPoint": self.root_name.as_ref().map(|n| json!({"Name": n})),
            "Annotations": annotations,
            "Http": http.unwrap_or_else(|| json!({})),
            "DocumentCount": self.documents,
            "ProblemCount": self.problems,
        })
    }
}

fn annotation_eq(v: &Scalar, want: &str) -> bool {
    match v {
        Scalar::Str(s) => &**s == want,
        Scalar::Bool(b) => want.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Scalar::Num(n) => want
            .parse::<f64>()
            .ok()
            .zip(n.as_f64())
            .is_some_and(|(a, b)| a == b),
        _ => false,
    }
}

/// The segment without a parent (earliest if several), else the earliest
/// segment, else the earliest document.
pub fn root_segment<'a>(entities: &[Entity<'a>]) -> Option<Entity<'a>> {
    let segments = || entities.iter().filter(|e| e.is_segment);
    segments()
        .find(|e| !e.node.parent_id.is_present())
        .or_else(|| segments().next())
        .or_else(|| entities.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::Summary;
    use crate::store::Store;

    fn ingest(s: &mut Store, v: Value) {
        let raw = v.to_string();
        let node = crate::document::parse(raw.as_bytes()).unwrap_or_default();
        s.ingest(node, raw.into(), vec![], 0.0, Instant::now());
    }

    #[test]
    fn services_and_annotations_follow_the_segments_they_belong_to() {
        let mut s = Store::new(10, 1 << 20);
        let t = "1-5759e988-bd862e3fe1be46a994272793";
        // A calls B (traced: B sends its own segment) and, inside an AWS call, a nested
        // remote call; A's independent subsegment starts after B's segment and is annotated.
        ingest(
            &mut s,
            json!({"trace_id": t, "id": "a000000000000001", "name": "A",
            "start_time": 1.0, "end_time": 3.0, "subsegments": [
                {"id": "c000000000000001", "name": "B", "namespace": "remote",
                 "start_time": 1.1, "end_time": 1.5},
                {"id": "c000000000000002", "name": "DynamoDB", "namespace": "aws",
                 "start_time": 1.6, "end_time": 1.7, "subsegments": [
                    {"id": "c000000000000003", "name": "dynamodb.us-east-1.amazonaws.com",
                     "namespace": "remote", "start_time": 1.6, "end_time": 1.7}]}
            ]}),
        );
        ingest(
            &mut s,
            json!({"trace_id": t, "id": "b000000000000001", "name": "B",
            "parent_id": "c000000000000001", "start_time": 1.2, "end_time": 1.4}),
        );
        ingest(
            &mut s,
            json!({"trace_id": t, "id": "d000000000000001", "name": "late-work",
            "type": "subsegment", "parent_id": "a000000000000001",
            "start_time": 2.0, "end_time": 2.5, "annotations": {"order": "o-1"}}),
        );
        let summary = Summary::of(s.get(t).expect("stored")).to_json();
        let mut ids: Vec<(String, String)> = summary["ServiceIds"]
            .as_array()
            .expect("ServiceIds")
            .iter()
            .map(|v| {
                (
                    v["Name"].as_str().unwrap_or("").to_owned(),
                    v["Type"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        ids.sort();
        let names: Vec<&str> = ids.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["A", "B", "DynamoDB"], "{summary:#}");
        let order = &summary["Annotations"]["order"][0];
        assert_eq!(order["ServiceIds"][0]["Name"], "A", "{summary:#}");
    }

    #[test]
    fn many_distinct_services_take_linear_time() {
        // 40,000 remote calls to distinct services. A linear search of the service list
        // per entity took about 8 s here (debug build); a set takes milliseconds.
        let n = 40_000;
        let subs: Vec<Value> = (0..n)
            .map(|i| json!({"name": format!("svc-{i}"), "namespace": "remote"}))
            .collect();
        let mut s = Store::new(10, 1 << 30);
        let t = "1-5759e988-bd862e3fe1be46a994272793";
        ingest(
            &mut s,
            json!({"trace_id": t, "id": "a000000000000001", "name": "A",
            "start_time": 1.0, "end_time": 3.0, "subsegments": subs}),
        );
        let trace = s.get(t).expect("stored");
        let began = Instant::now();
        let summary = Summary::of(trace);
        let took = began.elapsed();
        assert_eq!(summary.services.len(), n + 1);
        assert_eq!(summary.services[1].0, "svc-0");
        assert_eq!(summary.services[n].0, format!("svc-{}", n - 1));
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}
