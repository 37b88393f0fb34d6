//! A trace's segment documents as `BatchGetTraces` returns them: one per
//! segment, re-serialised, with independently sent subsegments merged into
//! the entity they name as parent, and an *inferred* segment for each AWS
//! resource or remote host that was called but sent no segment itself.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::state::store::{MAX_WALK_DEPTH, Trace, start_of};
use crate::views::graph;

/// Keys a streamed subsegment carries only because it travels on its own.
const STREAMING_KEYS: [&str; 3] = ["type", "trace_id", "parent_id"];

/// `(id, document text)` of every segment of `t`, earliest first.
pub fn segments(t: &Trace) -> Vec<(String, String)> {
    let docs = t.documents_in_order();
    let mut segments: Vec<(String, f64, Map<String, Value>)> = Vec::new();
    let mut streamed: Vec<(String, Map<String, Value>)> = Vec::new();
    for d in &docs {
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&d.raw) else {
            continue;
        };
        if d.streamed {
            let parent = d.node.parent_id.as_str().unwrap_or("").to_string();
            streamed.push((parent, m));
        } else {
            segments.push((d.id.to_string(), start_of(&d.node), m));
        }
    }
    // Streamed subsegments go into their parent, which may itself be
    // streamed: attach in rounds until a round attaches nothing (at most as
    // many rounds as the nesting that is followed anywhere else).
    for _ in 0..MAX_WALK_DEPTH {
        let before = streamed.len();
        let mut left = Vec::new();
        for (parent, mut sub) in streamed {
            for k in STREAMING_KEYS {
                sub.remove(k);
            }
            let sub = Value::Object(sub);
            match attach(&mut segments, &parent, sub) {
                Ok(()) => {}
                Err(Value::Object(sub)) => left.push((parent, sub)),
                Err(_) => {}
            }
        }
        streamed = left;
        if streamed.is_empty() || streamed.len() == before {
            break;
        }
    }
    // A subsegment whose parent never arrived stays a document of its own.
    for (parent, mut sub) in streamed {
        sub.insert("type".into(), json!("subsegment"));
        sub.insert("trace_id".into(), json!(&*t.id));
        sub.insert("parent_id".into(), json!(parent));
        let id = sub
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let start = sub
            .get("start_time")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        segments.push((id, start, sub));
    }
    segments.extend(inferred(t));
    segments.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    segments
        .into_iter()
        .map(|(id, _, m)| (id, Value::Object(m).to_string()))
        .collect()
}

/// Puts `sub` into the `subsegments` of the entity with id `parent`,
/// anywhere in `segments`; gives it back when there is none.
fn attach(
    segments: &mut [(String, f64, Map<String, Value>)],
    parent: &str,
    sub: Value,
) -> Result<(), Value> {
    for (_, _, m) in segments.iter_mut() {
        if let Some(target) = find(m, parent, 0) {
            match target.get_mut("subsegments") {
                Some(Value::Array(list)) => list.push(sub),
                _ => {
                    target.insert("subsegments".into(), Value::Array(vec![sub]));
                }
            }
            return Ok(());
        }
    }
    Err(sub)
}

fn find<'m>(
    m: &'m mut Map<String, Value>,
    id: &str,
    depth: usize,
) -> Option<&'m mut Map<String, Value>> {
    if m.get("id").and_then(Value::as_str) == Some(id) {
        return Some(m);
    }
    if depth >= MAX_WALK_DEPTH {
        return None;
    }
    let Some(Value::Array(subs)) = m.get_mut("subsegments") else {
        return None;
    };
    subs.iter_mut()
        .filter_map(Value::as_object_mut)
        .find_map(|s| find(s, id, depth + 1))
}

/// An inferred segment per call to a resource or remote host that sent no
/// segment: named after the call, its child, with the call's times, status
/// and `http`/`aws` blocks.
fn inferred(t: &Trace) -> Vec<(String, f64, Map<String, Value>)> {
    let entities = t.entities();
    let mut raw: HashMap<&str, Map<String, Value>> = HashMap::new();
    let mut out = Vec::new();
    for (_, (name, kind), call) in graph::trace_edges(&entities, false) {
        let e = &entities[call.entity];
        if e.is_segment {
            continue;
        }
        // The call's own JSON, for its http and aws blocks.
        let doc = raw.entry(e.doc_id).or_insert_with(|| {
            t.docs
                .get(e.doc_id)
                .and_then(|d| serde_json::from_str(&d.raw).ok())
                .unwrap_or_default()
        });
        let fields = find(doc, e.id, 0).cloned().unwrap_or_default();
        let id = inferred_id(e.id);
        let mut seg = Map::new();
        seg.insert("id".into(), json!(id));
        seg.insert("name".into(), json!(name));
        seg.insert("trace_id".into(), json!(&*t.id));
        seg.insert("parent_id".into(), json!(e.id));
        for k in [
            "start_time",
            "end_time",
            "error",
            "fault",
            "throttle",
            "http",
            "aws",
        ] {
            if let Some(v) = fields.get(k) {
                seg.insert(k.into(), v.clone());
            }
        }
        seg.insert("inferred".into(), json!(true));
        if kind != "remote" {
            seg.insert("origin".into(), json!(kind));
        }
        out.push((id, start_of(call.node), seg));
    }
    out
}

/// A stable 16-hex-digit id for the segment inferred below call `id`.
fn inferred_id(id: &str) -> String {
    // FNV-1a: the same call always gives the same id.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "inferred:".bytes().chain(id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::{Value, json};

    use super::segments;
    use crate::state::store::Store;

    fn ingest(s: &mut Store, v: Value) {
        let raw = v.to_string();
        let node = crate::document::parse(raw.as_bytes()).unwrap_or_default();
        s.ingest(node, raw.into(), vec![], 0.0, Instant::now());
    }

    #[test]
    fn merges_streamed_subsegments_and_infers_resources() {
        let t = "1-5759e988-bd862e3fe1be46a994272793";
        let mut s = Store::new(10, 1 << 20);
        ingest(
            &mut s,
            json!({"trace_id": t, "id": "a000000000000001", "name": "A", "start_time": 1.0,
                   "end_time": 2.0, "subsegments": [
                {"id": "c000000000000001", "name": "DynamoDB", "namespace": "aws", "start_time": 1.1,
                 "end_time": 1.2, "fault": true, "aws": {"operation": "GetItem", "table_name": "t"}}]}),
        );
        ingest(
            &mut s,
            json!({"trace_id": t, "id": "d000000000000001", "name": "work", "type": "subsegment",
                   "parent_id": "a000000000000001", "start_time": 1.3, "end_time": 1.4}),
        );
        ingest(
            &mut s,
            json!({"trace_id": t, "id": "d000000000000002", "name": "inner", "type": "subsegment",
                   "parent_id": "d000000000000001", "start_time": 1.31, "end_time": 1.32}),
        );
        ingest(
            &mut s,
            json!({"trace_id": t, "id": "e000000000000001", "name": "lost", "type": "subsegment",
                   "parent_id": "ffffffffffffffff", "start_time": 1.5, "end_time": 1.6}),
        );
        let docs = segments(s.get(t).expect("trace"));
        let parsed: Vec<Value> = docs
            .iter()
            .map(|(_, d)| serde_json::from_str(d).expect("JSON"))
            .collect();
        assert_eq!(docs.len(), 3, "{parsed:#?}");
        let a = &parsed[0];
        assert_eq!(a["subsegments"][1]["name"], "work");
        assert_eq!(a["subsegments"][1]["subsegments"][0]["name"], "inner");
        assert!(a["subsegments"][1].get("parent_id").is_none());
        let ddb = &parsed[1];
        assert_eq!(ddb["inferred"], json!(true));
        assert_eq!(ddb["origin"], "AWS::DynamoDB::Table");
        assert_eq!(ddb["parent_id"], "c000000000000001");
        assert_eq!(ddb["fault"], json!(true));
        assert_eq!(ddb["aws"]["table_name"], "t");
        assert_eq!(ddb["id"].as_str().map(str::len), Some(16));
        assert_eq!(parsed[2]["name"], "lost");
        assert_eq!(parsed[2]["parent_id"], "ffffffffffffffff");
    }
}
