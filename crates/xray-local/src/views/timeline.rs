//! The waterfall view of one trace: segments in start order, each followed
//! by its subsegment tree (embedded and streamed), as flat rows with depth.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::state::store::{MAX_WALK_DEPTH, StoredEntity, Trace, end_of, start_of};
use crate::validate::MAX_PROBLEMS_PER_DOCUMENT;

/// Problems shown on one row: validation lists at most this many per document
/// (the last one counting the rest); the cap holds whatever the store was given.
const MAX_ROW_PROBLEMS: usize = MAX_PROBLEMS_PER_DOCUMENT + 1;

/// How far (seconds) a callee segment may start before, or end after, the
/// remote call it is nested under before its row is flagged: SDKs that keep
/// milliseconds put up to 1 ms of rounding between two honest clocks.
const CLOCK_SKEW_TOLERANCE: f64 = 0.001;

/// Builds `{Id, StartTime, Duration, Rows[...], Problems[...]}` for a trace.
pub fn build(t: &Trace) -> Value {
    let entities = t.entities();
    // The rows show whole JSON values (http, aws, metadata, ...), which the
    // typed form does not keep: re-read each document's text and walk it the
    // way Trace::entities walks the typed form, so entity i is value i.
    let parsed: Vec<Map<String, Value>> = t
        .documents_in_order()
        .iter()
        .map(|d| serde_json::from_str(&d.raw).unwrap_or_default())
        .collect();
    let mut values = Vec::with_capacity(entities.len());
    for m in &parsed {
        walk_values(m, 0, &mut values);
    }
    let (start, end) = t.time_range();
    let ids: HashSet<&str> = entities.iter().map(|e| e.id).collect();
    let subsegment_ids: HashSet<&str> = entities
        .iter()
        .filter(|e| !e.is_segment)
        .map(|e| e.id)
        .collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, e) in entities.iter().enumerate() {
        // A downstream segment goes under the subsegment that called it (its
        // parent_id), so the rows read caller → remote call → callee; one whose
        // caller is not in the trace (yet) stays top-level.
        let parent = if e.is_segment {
            e.node
                .parent_id
                .as_str()
                .filter(|p| subsegment_ids.contains(p))
        } else {
            e.parent.filter(|p| ids.contains(p))
        };
        match parent {
            Some(p) if p != e.id => children.entry(p).or_default().push(i),
            _ => roots.push(i),
        }
    }
    let by_start =
        |a: &usize, b: &usize| start_of(entities[*a].node).total_cmp(&start_of(entities[*b].node));
    roots.sort_by(by_start);
    for list in children.values_mut() {
        list.sort_by(by_start);
    }
    let mut rows = Vec::new();
    let mut seen = vec![false; entities.len()];
    // (entity, depth, the entity of the row it is nested under)
    let mut stack: Vec<(usize, usize, Option<usize>)> =
        roots.iter().rev().map(|i| (*i, 0, None)).collect();
    // Entities no root reaches (subsegments naming each other as parents) are shown too,
    // as roots of their own, once the others are.
    let mut unreached: Option<std::vec::IntoIter<usize>> = None;
    loop {
        let Some((i, depth, parent)) = stack.pop() else {
            let rest = unreached.get_or_insert_with(|| {
                let mut rest: Vec<usize> = (0..entities.len()).filter(|i| !seen[*i]).collect();
                rest.sort_by(by_start);
                rest.into_iter()
            });
            match rest.next() {
                Some(i) => {
                    stack.push((i, 0, None));
                    continue;
                }
                None => break,
            }
        };
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let e = &entities[i];
        let skew = parent
            .map(|p| &entities[p])
            .filter(|p| e.is_segment && !p.is_segment)
            .and_then(|p| clock_skew(p, e));
        rows.push(row(t, e, values.get(i).copied(), depth, skew));
        if let Some(kids) = children.get(e.id) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1, Some(i))));
        }
    }
    let problems: Vec<Value> = t
        .trace_problems
        .iter()
        .map(|(doc, p)| json!({"DocumentId": doc, "Code": p.code, "Message": p.message}))
        .collect();
    json!({
        "Id": &*t.id,
        "StartTime": start,
        "Duration": end - start,
        "Settled": t.settled,
        "Rows": rows,
        "Problems": problems,
    })
}

/// Seconds by which `callee` (a segment) lies outside the remote call
/// `caller` it is nested under, when that is more than the tolerance. Only
/// segments under a subsegment are checked: their times come from another
/// host's clock, so a callee outside its call most likely means the clocks
/// disagree. Subsegments outside their parent in one process are real (async
/// work outliving the request) and are not flagged.
fn clock_skew(caller: &StoredEntity<'_>, callee: &StoredEntity<'_>) -> Option<f64> {
    let early = start_of(caller.node) - start_of(callee.node);
    // Ends are compared only when both are known: an in-progress entity has none.
    let late = if caller.node.in_progress || callee.node.in_progress {
        f64::NAN
    } else {
        end_of(callee.node) - end_of(caller.node)
    };
    let worst = [early, late]
        .into_iter()
        .filter(|d| d.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    (worst > CLOCK_SKEW_TOLERANCE).then_some(worst)
}

/// The JSON objects of a document's entities, in [`Trace::entities`] order.
fn walk_values<'a>(v: &'a Map<String, Value>, depth: usize, out: &mut Vec<&'a Map<String, Value>>) {
    out.push(v);
    if depth >= MAX_WALK_DEPTH {
        return;
    }
    if let Some(Value::Array(subs)) = v.get("subsegments") {
        for s in subs {
            if let Value::Object(m) = s {
                walk_values(m, depth + 1, out);
            }
        }
    }
}

fn row(
    t: &Trace,
    e: &StoredEntity<'_>,
    v: Option<&Map<String, Value>>,
    depth: usize,
    clock_skew: Option<f64>,
) -> Value {
    let get = |k: &str| v.and_then(|v| v.get(k)).cloned().unwrap_or(Value::Null);
    let doc = t.docs.get(e.doc_id);
    // The document's problems go on the row of its top-level node only: embedded
    // subsegments may repeat its id (or all lack one), and copying the list to each of
    // them made the answer rows × problems long.
    let is_top = doc.is_some_and(|d| std::ptr::eq(&d.node, e.node));
    let problems: Vec<Value> = match doc {
        Some(d) if is_top => d
            .problems
            .iter()
            .take(MAX_ROW_PROBLEMS)
            .map(|p| json!({"Code": p.code, "Message": p.message}))
            .collect(),
        _ => Vec::new(),
    };
    json!({
        "Id": e.id,
        "ParentId": e.parent,
        "DocumentId": e.doc_id,
        "Name": get("name"),
        "Kind": if e.is_segment { "segment" } else { "subsegment" },
        "Depth": depth,
        "StartTime": get("start_time"),
        "EndTime": get("end_time"),
        "InProgress": e.node.in_progress,
        "Namespace": get("namespace"),
        "Origin": get("origin"),
        "Error": e.node.error,
        "Fault": e.node.fault,
        "Throttle": e.node.throttle,
        "Http": get("http"),
        "Aws": get("aws"),
        "Sql": get("sql"),
        "Annotations": get("annotations"),
        "Metadata": get("metadata"),
        "Cause": get("cause"),
        "Problems": problems,
        // Seconds outside the calling subsegment, or null: see clock_skew.
        "ClockSkew": clock_skew,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use crate::state::store::Store;

    #[test]
    fn subsegments_naming_each_other_as_parents_still_get_rows() {
        let mut s = Store::new(10, 1 << 20);
        let docs = [
            json!({"trace_id":"t","id":"aaaaaaaaaaaaaaaa","name":"seg","start_time":1.0,"end_time":2.0}),
            json!({"trace_id":"t","id":"bbbbbbbbbbbbbbbb","name":"x","type":"subsegment",
                   "parent_id":"cccccccccccccccc","start_time":1.1,"end_time":1.2}),
            json!({"trace_id":"t","id":"cccccccccccccccc","name":"y","type":"subsegment",
                   "parent_id":"bbbbbbbbbbbbbbbb","start_time":1.3,"end_time":1.4}),
        ];
        for d in docs {
            let raw = d.to_string();
            let node = crate::document::parse(raw.as_bytes()).unwrap_or_default();
            s.ingest(node, raw.into(), vec![], 0.0, Instant::now());
        }
        let t = s.get("t").expect("stored");
        let view = super::build(t);
        let rows = view["Rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 3, "{view:#}");
    }

    #[test]
    fn document_problems_go_on_the_top_level_row_only() {
        let mut s = Store::new(10, 1 << 20);
        // No id anywhere, and subsegments repeating the segment's id: every row's id
        // equals the document's.
        let docs = [
            json!({"trace_id":"t","id":"","subsegments":vec![json!({}); 50]}),
            json!({"trace_id":"t","id":"aaaaaaaaaaaaaaaa","name":"seg","start_time":1.0,
                   "subsegments":vec![json!({"id":"aaaaaaaaaaaaaaaa"}); 50]}),
        ];
        let mut listed = 0;
        for d in docs {
            let raw = d.to_string();
            let node = crate::document::parse(raw.as_bytes()).unwrap_or_default();
            let problems = crate::validate::check_node(&node, raw.len(), 0);
            listed += problems.len();
            s.ingest(node, raw.into(), problems, 0.0, Instant::now());
        }
        let view = super::build(s.get("t").expect("stored"));
        let rows = view["Rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 102, "{view:#}");
        let with_problems: Vec<&str> = rows
            .iter()
            .filter(|r| r["Problems"].as_array().is_some_and(|p| !p.is_empty()))
            .map(|r| r["Kind"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(with_problems, ["segment", "segment"], "{view:#}");
        let shown: usize = rows
            .iter()
            .filter_map(|r| r["Problems"].as_array())
            .map(Vec::len)
            .sum();
        assert_eq!(shown, listed);
    }

    #[test]
    fn problems_per_row_are_capped() {
        let mut s = Store::new(10, 1 << 22);
        let raw = json!({"trace_id":"t","id":"aaaaaaaaaaaaaaaa"}).to_string();
        let node = crate::document::parse(raw.as_bytes()).unwrap_or_default();
        let problems = (0..1_000)
            .map(|i| crate::validate::Problem {
                code: "missing_name",
                message: format!("problem {i}"),
            })
            .collect();
        s.ingest(node, raw.into(), problems, 0.0, Instant::now());
        let view = super::build(s.get("t").expect("stored"));
        let shown = view["Rows"][0]["Problems"].as_array().map_or(0, Vec::len);
        assert_eq!(shown, super::MAX_ROW_PROBLEMS, "{view:#}");
    }

    fn view_of(docs: &[serde_json::Value]) -> serde_json::Value {
        let mut s = Store::new(10, 1 << 20);
        for d in docs {
            let raw = d.to_string();
            let node = crate::document::parse(raw.as_bytes()).unwrap_or_default();
            s.ingest(node, raw.into(), vec![], 0.0, Instant::now());
        }
        super::build(s.get("t").expect("stored"))
    }

    /// `[name, depth]` of each row, in order.
    fn names_and_depths(view: &serde_json::Value) -> Vec<(String, u64)> {
        view["Rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                let name = r["Name"].as_str().unwrap_or("").to_owned();
                (name, r["Depth"].as_u64().unwrap_or(99))
            })
            .collect()
    }

    #[test]
    fn downstream_segments_nest_under_the_calling_subsegment() {
        let view = view_of(&[
            json!({"trace_id":"t","id":"aaaaaaaaaaaaaaaa","name":"front","start_time":1.0,"end_time":2.0,
                   "subsegments":[
                       {"id":"1111111111111111","name":"call-api","start_time":1.1,"end_time":1.5},
                       {"id":"2222222222222222","name":"later","start_time":1.6,"end_time":1.7}]}),
            // Starts after "later" does: sorted by start alone it came last.
            json!({"trace_id":"t","id":"bbbbbbbbbbbbbbbb","name":"api","parent_id":"1111111111111111",
                   "start_time":1.12,"end_time":1.45,
                   "subsegments":[{"id":"3333333333333333","name":"db","start_time":1.2,"end_time":1.3}]}),
            // Its caller is not in the trace: stays top-level.
            json!({"trace_id":"t","id":"cccccccccccccccc","name":"orphan","parent_id":"9999999999999999",
                   "start_time":1.05,"end_time":1.06}),
        ]);
        let rows = names_and_depths(&view);
        let want = [
            ("front", 0),
            ("call-api", 1),
            ("api", 2),
            ("db", 3),
            ("later", 1),
            ("orphan", 0),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|(n, d)| (n.to_string(), *d)).collect();
        assert_eq!(rows, want, "{view:#}");
        assert!(
            view["Rows"]
                .as_array()
                .is_some_and(|r| r.iter().all(|r| r["ClockSkew"].is_null())),
            "{view:#}"
        );
    }

    #[test]
    fn callees_outside_their_call_are_flagged_as_clock_skew() {
        let call = |id: &str, start: f64, end: f64| json!({"id": id, "name": format!("call-{id}"), "start_time": start, "end_time": end});
        let callee = |id: &str, parent: &str, start: f64, end: f64| {
            json!({"trace_id":"t","id": id,"name": format!("seg-{id}"),"parent_id": parent,
                   "start_time": start,"end_time": end})
        };
        let view = view_of(&[
            json!({"trace_id":"t","id":"aaaaaaaaaaaaaaaa","name":"front","start_time":1.0,"end_time":3.0,
                   "subsegments":[call("1111111111111111", 1.0, 1.5), call("2222222222222222", 1.5, 2.0),
                                  call("3333333333333333", 2.0, 2.5), call("4444444444444444", 2.5, 3.0)]}),
            // 50 ms before its call starts.
            callee("bbbbbbbbbbbbbbbb", "1111111111111111", 0.95, 1.2),
            // 100 ms after its call ends.
            callee("cccccccccccccccc", "2222222222222222", 1.6, 2.1),
            // Within the tolerance: rounding, not skew.
            callee("dddddddddddddddd", "3333333333333333", 1.9995, 2.5005),
            // Inside its call.
            callee("eeeeeeeeeeeeeeee", "4444444444444444", 2.6, 2.9),
        ]);
        let skew = |name: &str| {
            view["Rows"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["Name"] == json!(name)))
                .map(|r| r["ClockSkew"].clone())
                .expect("row")
        };
        let near =
            |v: serde_json::Value, want: f64| v.as_f64().is_some_and(|v| (v - want).abs() < 1e-6);
        assert!(near(skew("seg-bbbbbbbbbbbbbbbb"), 0.05), "{view:#}");
        assert!(near(skew("seg-cccccccccccccccc"), 0.1), "{view:#}");
        assert!(skew("seg-dddddddddddddddd").is_null(), "{view:#}");
        assert!(skew("seg-eeeeeeeeeeeeeeee").is_null(), "{view:#}");
        // Subsegments outside their segment (async work) are not skew.
        assert!(skew("call-4444444444444444").is_null(), "{view:#}");
    }
}
