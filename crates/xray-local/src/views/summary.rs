//! Trace summaries, in the `GetTraceSummaries` shape.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::document::{Details, Field, Scalar};
use crate::state::store::{StoredEntity, Trace, start_of};

/// Parents followed from an entity up to its segment (bad input can make a loop).
const MAX_ANCESTORS: usize = 64;

/// The parts of a trace the lists, the filters and the summary need.
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
    /// The root answered without error, fault or throttle, but a call or a
    /// downstream service in the trace failed.
    pub downstream_failed: bool,
    /// Services and resources in the trace: name and type.
    pub services: Vec<(String, String)>,
    /// Annotation values by key, each with the service that recorded it.
    pub annotations: BTreeMap<String, Vec<(Scalar, String)>>,
    /// Users (the `user` field) and the service that recorded each.
    pub users: Vec<(String, String)>,
    /// The root segment's HTTP request and response.
    pub http: Details,
    /// The root segment's name and type.
    pub entry_point: Option<(String, String)>,
    /// Stored documents.
    pub documents: usize,
    /// Validation problems.
    pub problems: usize,
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
        let is_call = |e: &StoredEntity<'_>| {
            !e.is_segment && matches!(e.node.namespace.as_str(), Some("aws" | "remote"))
        };
        // The segment an entity belongs to, and whether it sits inside another call.
        let ancestry = |e: &StoredEntity<'_>| {
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
        let mut users: Vec<(String, String)> = Vec::new();
        let mut downstream_failed = false;
        for e in &entities {
            let name = e.node.name.as_str().unwrap_or("");
            if e.node.error || e.node.fault || e.node.throttle {
                downstream_failed |= root.is_none_or(|r| !std::ptr::eq(r.node, e.node));
            }
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
                    Some("aws") => Some(crate::views::graph::aws_type(name)),
                    Some("remote") => Some("remote".to_string()),
                    _ => None,
                }
            };
            if let Some(kind) = kind
                && seen_services.insert((name, kind.clone()))
            {
                services.push((name.to_string(), kind));
            }
            if let Some(user) = e.node.details().user.as_deref()
                && users.len() < 20
                && !users.iter().any(|(u, _)| u == user)
            {
                users.push((user.to_string(), owner.to_string()));
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
        let has_error = root.is_some_and(|r| r.node.error || r.node.throttle);
        let has_fault = root.is_some_and(|r| r.node.fault);
        Summary {
            id: t.id.to_string(),
            start,
            duration: end - start,
            response_time,
            has_error,
            has_fault,
            has_throttle: root.is_some_and(|r| r.node.throttle),
            is_partial: t.docs.values().any(|d| d.in_progress),
            downstream_failed: downstream_failed && !has_error && !has_fault,
            services,
            annotations,
            users,
            http: root.map(|r| r.node.details().clone()).unwrap_or_default(),
            entry_point: root.and_then(|r| {
                let name = r.node.name.as_str()?;
                Some((
                    name.to_string(),
                    r.node.origin.as_str().unwrap_or("service").to_string(),
                ))
            }),
            documents: t.docs.len(),
            problems: t.problem_count(),
        }
    }

    /// The viewer's summary: the X-Ray `TraceSummary` members plus a few
    /// local extras (`DocumentCount`, `ProblemCount`, `DownstreamFailed`).
    pub fn to_json(&self) -> Value {
        let mut v = self.to_xray_json();
        v["EntryPoint"] = self
            .entry_point
            .as_ref()
            .map_or(Value::Null, |(n, _)| json!({"Name": n}));
        let h = &self.http;
        v["Http"] = if h.has_http() {
            json!({
                "HttpURL": h.url,
                "HttpMethod": h.method,
                "UserAgent": h.user_agent,
                "ClientIp": h.client_ip,
                "HttpStatus": h.status.map(number),
            })
        } else {
            json!({})
        };
        v["DocumentCount"] = json!(self.documents);
        v["ProblemCount"] = json!(self.problems);
        v["DownstreamFailed"] = json!(self.downstream_failed);
        v
    }

    /// The `TraceSummary` of `GetTraceSummaries`, typed as the AWS SDKs
    /// read it (integers where the API has integers, no nulls).
    pub fn to_xray_json(&self) -> Value {
        let id = |(n, t): &(String, String)| json!({"Name": n, "Names": [n], "Type": t});
        let type_of = |svc: &str| {
            self.services
                .iter()
                .find(|(n, _)| n == svc)
                .map_or("service", |(_, t)| t.as_str())
        };
        let service_id = |svc: &str| id(&(svc.to_string(), type_of(svc).to_string()));
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
                    json!({"AnnotationValue": av, "ServiceIds": [service_id(svc)]})
                })
                .collect();
            annotations.insert(k.clone(), Value::Array(list));
        }
        let mut http = Map::new();
        let h = &self.http;
        for (k, v) in [
            ("HttpURL", &h.url),
            ("HttpMethod", &h.method),
            ("UserAgent", &h.user_agent),
            ("ClientIp", &h.client_ip),
        ] {
            if let Some(v) = v {
                http.insert(k.into(), json!(v));
            }
        }
        if let Some(status) = h.status.and_then(as_i32) {
            http.insert("HttpStatus".into(), json!(status));
        }
        let users: Vec<Value> = self
            .users
            .iter()
            .map(|(u, svc)| json!({"UserName": u, "ServiceIds": [service_id(svc)]}))
            .collect();
        let mut v = json!({
            "Id": self.id,
            "StartTime": self.start,
            "Duration": self.duration,
            "ResponseTime": self.response_time,
            "HasError": self.has_error,
            "HasFault": self.has_fault,
            "HasThrottle": self.has_throttle,
            "IsPartial": self.is_partial,
            "ServiceIds": self.services.iter().map(id).collect::<Vec<_>>(),
            "Annotations": annotations,
            "Http": http,
            "Users": users,
            "Revision": i32::try_from(self.documents).unwrap_or(i32::MAX),
        });
        if let Some(e) = &self.entry_point {
            v["EntryPoint"] = id(e);
        }
        v
    }
}

/// A JSON number: an integer when `x` is a whole number.
pub fn number(x: f64) -> Value {
    match as_i64(x) {
        Some(i) => json!(i),
        None => json!(x),
    }
}

fn as_i64(x: f64) -> Option<i64> {
    (x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64)
}

/// `x` as a 32-bit integer, when it is a whole number in range.
pub fn as_i32(x: f64) -> Option<i32> {
    as_i64(x).and_then(|i| i32::try_from(i).ok())
}

/// The segment without a parent (earliest if several), else the earliest
/// segment, else the earliest document.
pub fn root_segment<'a>(entities: &[StoredEntity<'a>]) -> Option<StoredEntity<'a>> {
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
    use crate::state::store::Store;

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
