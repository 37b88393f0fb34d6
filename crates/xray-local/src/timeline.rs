//! The waterfall view of one trace: segments in start order, each followed
//! by its subsegment tree (embedded and streamed), as flat rows with depth.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::store::{Entity, MAX_WALK_DEPTH, Trace, start_of};
use crate::validate::MAX_PROBLEMS_PER_DOCUMENT;

/// Problems shown on one row: validation lists at most this many per document
/// (the last one counting the rest); the cap holds whatever the store was given.
const MAX_ROW_PROBLEMS: usize = MAX_PROBLEMS_PER_DOCUMENT + 1;

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
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, e) in entities.iter().enumerate() {
        match e.parent {
            Some(p) if !e.is_segment && ids.contains(p) && p != e.id => {
                children.entry(p).or_default().push(i)
            }
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
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|i| (*i, 0)).collect();
    // Entities no root reaches (subsegments naming each other as parents) are shown too,
    // as roots of their own, once the others are.
    let mut unreached: Option<std::vec::IntoIter<usize>> = None;
    loop {
        let Some((i, depth)) = stack.pop() else {
            let rest = unreached.get_or_insert_with(|| {
                let mut rest: Vec<usize> = (0..entities.len()).filter(|i| !seen[*i]).collect();
                rest.sort_by(by_start);
                rest.into_iter()
            });
            match rest.next() {
                Some(i) => {
                    stack.push((i, 0));
                    continue;
                }
                None => break,
            }
        };
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let e = &entities[i];
        rows.push(row(t, e, values.get(i).copied(), depth));
        if let Some(kids) = children.get(e.id) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
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

fn row(t: &Trace, e: &Entity<'_>, v: Option<&Map<String, Value>>, depth: usize) -> Value {
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
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use crate::store::Store;

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
}
