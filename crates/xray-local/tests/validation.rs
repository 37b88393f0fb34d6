//! Every validation rule, through real UDP datagrams and the JSON API.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use xray_local::Config;

/// Codes reported per document id.
fn problems_by_doc(server: &xray_local::Server) -> BTreeMap<String, Vec<String>> {
    let v = get_json(server, "/api/validation?limit=1000");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in v["Problems"].as_array().expect("problems") {
        let doc = p["DocumentId"].as_str().expect("doc id").to_string();
        out.entry(doc)
            .or_default()
            .push(p["Code"].as_str().expect("code").to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_document_rule_is_reported() {
    let server = start(Config {
        settle: Duration::from_millis(300),
        ..Config::ephemeral()
    })
    .await;
    let t0 = now();
    let good_trace = trace_id();
    let old_trace = trace_id_at(t0 as u64 - 31 * 86_400);
    let future_trace = trace_id_at(t0 as u64 + 600);
    let base = |id: &str| segment(&good_trace, id, "svc", None, t0, 0.1);
    let mut cases: Vec<(String, Value, &[&str])> = Vec::new();
    let mut case = |expect: &'static [&'static str], edit: &dyn Fn(&mut Value)| {
        let id = entity_id();
        let mut v = base(&id);
        edit(&mut v);
        cases.push((id, v, expect));
    };
    case(&["invalid_trace_id"], &|v| {
        v["trace_id"] = json!(good_trace.to_uppercase())
    });
    case(&["trace_id_too_old"], &|v| v["trace_id"] = json!(old_trace));
    case(&["trace_id_in_future"], &|v| {
        v["trace_id"] = json!(future_trace)
    });
    case(&["invalid_parent_id"], &|v| {
        v["parent_id"] = json!("not-hex")
    });
    case(&["missing_name"], &|v| {
        drop(v.as_object_mut().map(|m| m.remove("name")))
    });
    case(&["missing_start_time"], &|v| {
        drop(v.as_object_mut().map(|m| m.remove("start_time")))
    });
    case(&["missing_end_time"], &|v| {
        drop(v.as_object_mut().map(|m| m.remove("end_time")))
    });
    case(&["start_time_not_number"], &|v| {
        v["start_time"] = json!("yesterday")
    });
    case(&["end_time_not_number"], &|v| v["end_time"] = json!(null));
    case(&["end_before_start"], &|v| v["end_time"] = json!(t0 - 1.0));
    case(&["name_too_long"], &|v| v["name"] = json!("n".repeat(201)));
    case(&["name_invalid_characters"], &|v| {
        v["name"] = json!("svc<script>")
    });
    case(&["invalid_annotation_key"], &|v| {
        v["annotations"] = json!({"user-id": "x"})
    });
    case(&["invalid_annotation_value"], &|v| {
        v["annotations"] = json!({"user": {"id": 1}})
    });
    case(&["invalid_annotations"], &|v| v["annotations"] = json!([1]));
    case(&["invalid_type"], &|v| v["type"] = json!("segment"));
    case(&["streamed_subsegment_missing_type"], &|v| {
        v["namespace"] = json!("remote")
    });
    case(&["streamed_subsegment_missing_parent_id"], &|v| {
        v["type"] = json!("subsegment")
    });
    case(
        &["name_invalid_characters"],
        &|v| {
            v["subsegments"] = json!([{"name": "bad!", "id": "aaaaaaaaaaaaaaaa", "start_time": t0, "end_time": t0}])
        },
    );
    case(&[], &|v| {
        v["name"] = json!("ok name_.:/%&#=+\\-@ ünïcode 名前")
    });

    for (_, v, _) in &cases {
        send_doc(&server, v);
    }
    // Bad ids: the document is still filed under its (odd) id.
    let bad_id = "xyz";
    send_doc(&server, &base(bad_id));
    // Missing id.
    let mut no_id = base("x");
    no_id.as_object_mut().map(|m| m.remove("id"));
    no_id["name"] = json!("no-id");
    send_doc(&server, &no_id);
    // Missing trace_id: cannot be filed, listed under Unfiled.
    send_doc(
        &server,
        &json!({"name": "lost", "id": entity_id(), "start_time": t0, "end_time": t0}),
    );
    send_doc(
        &server,
        &json!({"type": "subsegment", "name": "lost-sub", "id": entity_id(), "parent_id": entity_id(), "start_time": t0, "end_time": t0}),
    );
    let total = cases.len() as u64 + 4;
    wait_accepted(&server, total);

    let by_doc = problems_by_doc(&server);
    for (id, _, expect) in &cases {
        let got: Vec<&str> = by_doc
            .get(id)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(got, *expect, "document {id}");
    }
    assert_eq!(
        by_doc.get(bad_id).map(Vec::as_slice),
        Some(&["invalid_id".to_string()][..])
    );
    assert!(
        by_doc
            .iter()
            .any(|(k, v)| k.starts_with("(no id") && v == &["missing_id"])
    );

    let v = get_json(&server, "/api/validation");
    let unfiled: Vec<Vec<&str>> = v["Unfiled"]
        .as_array()
        .expect("unfiled")
        .iter()
        .map(|u| {
            u["Problems"]
                .as_array()
                .expect("p")
                .iter()
                .filter_map(|p| p["Code"].as_str())
                .collect()
        })
        .collect();
    assert!(unfiled.contains(&vec!["missing_trace_id"]), "{unfiled:?}");
    assert!(
        unfiled.contains(&vec!["streamed_subsegment_missing_trace_id"]),
        "{unfiled:?}"
    );
    let counts = &v["Counts"];
    assert_eq!(counts["DocumentsChecked"], json!(total));
    assert_eq!(counts["ByCode"]["invalid_trace_id"], json!(1));

    // Per-trace problem counts show up in the summaries.
    let s = get_json(&server, "/api/TraceSummaries?service=svc&limit=1000");
    assert!(
        s["TraceSummaries"]
            .as_array()
            .expect("list")
            .iter()
            .any(|t| t["ProblemCount"].as_u64() > Some(10))
    );

    // Oversized documents (only possible outside UDP) are flagged too.
    let mut big = base(&entity_id());
    big["metadata"] = json!({"default": {"pad": "x".repeat(70_000)}});
    let text = big.to_string();
    let map = big.as_object().expect("object");
    let codes: Vec<&str> = xray_local::validate::check_document(map, text.len(), t0 as i64)
        .into_iter()
        .map(|p| p.code)
        .collect();
    assert_eq!(codes, ["document_too_large"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_level_rules_after_settling() {
    let server = start(Config {
        settle: Duration::from_millis(300),
        ..Config::ephemeral()
    })
    .await;
    let t = trace_id();
    let t0 = now();
    let (seg, orphan, open) = (entity_id(), entity_id(), entity_id());
    send_doc(&server, &segment(&t, &seg, "svc", None, t0, 1.0));
    send_doc(
        &server,
        &streamed(&t, &orphan, &entity_id(), "orphan", t0, 0.1),
    );
    send_doc(
        &server,
        &json!({"type": "subsegment", "name": "open", "id": open, "trace_id": t,
                             "parent_id": seg, "start_time": t0, "in_progress": true}),
    );
    wait_accepted(&server, 3);
    let by_doc = wait_for("settled trace problems", || {
        let m = problems_by_doc(&server);
        (m.len() == 2).then_some(m)
    });
    assert_eq!(
        by_doc.get(&orphan),
        Some(&vec!["orphan_subsegment".to_string()])
    );
    assert_eq!(
        by_doc.get(&open),
        Some(&vec!["in_progress_never_completed".to_string()])
    );
    let tl = timeline(&server, &t);
    assert_eq!(tl["Problems"].as_array().map(Vec::len), Some(2));
    assert_eq!(tl["Settled"], json!(true));

    // The completion arrives late: the trace re-settles without the problem.
    send_doc(&server, &streamed(&t, &open, &seg, "open", t0, 0.2));
    wait_accepted(&server, 4);
    let by_doc = wait_for("re-settled", || {
        let tl = timeline(&server, &t);
        (tl["Settled"] == json!(true)).then(|| problems_by_doc(&server))
    });
    assert_eq!(by_doc.len(), 1);
    let stats = get_json(&server, "/api/stats");
    assert_eq!(
        stats["Validation"]["ByCode"]["in_progress_never_completed"],
        json!(0)
    );
    assert_eq!(stats["Validation"]["ByCode"]["orphan_subsegment"], json!(1));
    server.shutdown().await;
}
