//! Trace assembly from segments, streamed subsegments and in-progress documents.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_subsegments_before_and_after_parent() {
    let server = start_default().await;
    let t = trace_id();
    let (seg, early, late, nested) = (entity_id(), entity_id(), entity_id(), entity_id());
    let t0 = now();
    // A subsegment arrives before its segment...
    send_doc(
        &server,
        &streamed(&t, &early, &seg, "early", t0 + 0.01, 0.02),
    );
    wait_accepted(&server, 1);
    // ...then the segment with an embedded subsegment...
    let mut s = segment(&t, &seg, "api", None, t0, 0.5);
    s["subsegments"] = json!([{"name": "embedded", "id": "aaaaaaaaaaaaaaaa", "start_time": t0 + 0.05, "end_time": t0 + 0.1}]);
    send_doc(&server, &s);
    wait_accepted(&server, 2);
    // ...then one after it, and one nested under the late one.
    send_doc(&server, &streamed(&t, &late, &seg, "late", t0 + 0.2, 0.1));
    send_doc(
        &server,
        &streamed(&t, &nested, &late, "nested", t0 + 0.25, 0.01),
    );
    wait_accepted(&server, 4);

    let tl = timeline(&server, &t);
    let rows = tl["Rows"].as_array().expect("rows");
    let names: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["Name"].as_str().unwrap_or(""),
                r["Depth"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("api", 0),
            ("early", 1),
            ("embedded", 1),
            ("late", 1),
            ("nested", 2)
        ]
    );
    assert!((tl["Duration"].as_f64().expect("duration") - 0.5).abs() < 1e-6);

    // BatchGetTraces returns each stored document as a JSON string.
    let v = get_json(
        &server,
        &format!("/api/Traces?ids={t},1-00000000-000000000000000000000000"),
    );
    let traces = v["Traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0]["Id"], json!(t));
    let segs = traces[0]["Segments"].as_array().expect("segments");
    assert_eq!(segs.len(), 4);
    for s in segs {
        let doc: serde_json::Value =
            serde_json::from_str(s["Document"].as_str().expect("document string")).expect("json");
        assert_eq!(doc["id"], s["Id"]);
    }
    assert_eq!(
        v["UnprocessedTraceIds"],
        json!(["1-00000000-000000000000000000000000"])
    );

    // The summary sees one trace with the segment as entry point.
    let sum = get_json(&server, "/api/TraceSummaries");
    let list = sum["TraceSummaries"].as_array().expect("summaries");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["Id"], json!(t));
    assert_eq!(list[0]["EntryPoint"]["Name"], json!("api"));
    assert_eq!(list[0]["DocumentCount"], json!(4));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_document_replaces_in_progress() {
    let server = start_default().await;
    let t = trace_id();
    let id = entity_id();
    let t0 = now();
    send_doc(
        &server,
        &json!({"name":"api","id":id,"trace_id":t,"start_time":t0,"in_progress":true}),
    );
    wait_accepted(&server, 1);
    let s = get_json(&server, "/api/TraceSummaries");
    assert_eq!(s["TraceSummaries"][0]["IsPartial"], json!(true));

    send_doc(&server, &segment(&t, &id, "api", None, t0, 0.3));
    wait_accepted(&server, 2);
    // A late in-progress copy must not overwrite the complete one.
    send_doc(
        &server,
        &json!({"name":"api","id":id,"trace_id":t,"start_time":t0,"in_progress":true}),
    );
    wait_accepted(&server, 3);
    let s = get_json(&server, "/api/TraceSummaries");
    assert_eq!(s["TraceSummaries"][0]["IsPartial"], json!(false));
    assert_eq!(s["TraceSummaries"][0]["DocumentCount"], json!(1));
    let stats = get_json(&server, "/api/stats");
    assert_eq!(stats["Store"]["Counters"]["Replaced"], json!(1));
    assert_eq!(stats["Store"]["Counters"]["StaleInProgress"], json!(1));
    server.shutdown().await;
}
