//! The waterfall view of one trace: segments in start order, each followed
//! by its subsegment tree (embedded and streamed), as flat rows with depth.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::store::{Entity, Trace, f64_of};

/// Builds `{Id, StartTime, Duration, Rows[...], Problems[...]}` for a trace.
pub fn build(t: &Trace) -> Value {
    let entities = t.entities();
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
    let by_start = |a: &usize, b: &usize| {
        f64_of(entities[*a].value, "start_time")
            .total_cmp(&f64_of(entities[*b].value, "start_time"))
    };
    roots.sort_by(by_start);
    for list in children.values_mut() {
        list.sort_by(by_start);
    }
    let mut rows = Vec::new();
    let mut seen = vec![false; entities.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|i| (*i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let e = &entities[i];
        rows.push(row(t, e, depth));
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
        "Id": t.id,
        "StartTime": start,
        "Duration": end - start,
        "Settled": t.settled,
        "Rows": rows,
        "Problems": problems,
    })
}

fn row(t: &Trace, e: &Entity<'_>, depth: usize) -> Value {
    let v = e.value;
    let get = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let doc = t.docs.get(e.doc_id);
    let is_top = doc.is_some_and(|d| d.value.get("id").and_then(Value::as_str) == Some(e.id));
    let problems: Vec<Value> = match doc {
        Some(d) if is_top => d
            .problems
            .iter()
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
        "InProgress": v.get("in_progress").and_then(Value::as_bool).unwrap_or(false),
        "Namespace": get("namespace"),
        "Origin": get("origin"),
        "Error": v.get("error").and_then(Value::as_bool).unwrap_or(false),
        "Fault": v.get("fault").and_then(Value::as_bool).unwrap_or(false),
        "Throttle": v.get("throttle").and_then(Value::as_bool).unwrap_or(false),
        "Http": get("http"),
        "Aws": get("aws"),
        "Sql": get("sql"),
        "Annotations": get("annotations"),
        "Metadata": get("metadata"),
        "Cause": get("cause"),
        "Problems": problems,
    })
}
