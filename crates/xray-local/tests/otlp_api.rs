//! OTLP traces through the X-Ray API and the viewer: what arrives as spans
//! answers GetTraceSummaries (with filter expressions), BatchGetTraces and
//! GetServiceGraph like segments sent over UDP, and joins them in one
//! trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::otlp::*;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::{Value, json};

fn trace(n: u8) -> Vec<u8> {
    vec![0x9a, 0x11, n, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, n]
}

fn summaries(server: &xray_local::Server, t0: f64, filter: &str) -> Vec<String> {
    let (status, v) = xray_call(
        server,
        "/TraceSummaries",
        &json!({"StartTime": t0 - 60.0, "EndTime": t0 + 60.0, "TimeRangeType": "Event",
                "FilterExpression": filter}),
    );
    assert_eq!(status, 200, "{filter}: {v}");
    v["TraceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_traces_answer_the_xray_api_and_the_viewer() {
    let server = start_default().await;
    let t0 = now() - 30.0;
    let t = trace(1);
    let id = xray_trace_id(&t);
    let (checkout, inventory) = shop(&t, t0);
    // Each service exports on its own, one over protobuf, one over JSON.
    let one = |resource, spans| ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(resource, spans)],
    };
    assert_eq!(
        export(&server, Wire::Protobuf, &one(checkout_resource(), checkout)),
        0
    );
    assert_eq!(
        export(
            &server,
            Wire::JsonGzip,
            &one(inventory_resource(), inventory)
        ),
        0
    );

    // GetTraceSummaries with filter expressions.
    for filter in [
        "annotation.tier = \"gold\"",
        "service(\"inventory\") { fault }",
        "service(\"DynamoDB\")",
        "fault AND http.status = 500",
        "edge(\"checkout\", \"inventory\")",
    ] {
        assert_eq!(summaries(&server, t0, filter), vec![id.clone()], "{filter}");
    }
    for filter in ["annotation.tier = \"silver\"", "service(\"nothing\")", "ok"] {
        assert!(summaries(&server, t0, filter).is_empty(), "{filter}");
    }

    // BatchGetTraces: the client span merged into checkout's segment, the
    // DynamoDB call inferred as a segment of its own.
    let (status, v) = xray_call(&server, "/Traces", &json!({"TraceIds": [id]}));
    assert_eq!(status, 200, "{v}");
    let docs: Vec<Value> = v["Traces"][0]["Segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_str(s["Document"].as_str().unwrap()).unwrap())
        .collect();
    let by_name = |n: &str| {
        docs.iter()
            .find(|d| d["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {docs:?}"))
    };
    let checkout_doc = by_name("checkout");
    assert_eq!(
        checkout_doc["subsegments"][0]["id"],
        hex(&CALL_INVENTORY).as_str()
    );
    assert_eq!(checkout_doc["subsegments"][0]["name"], "inventory");
    assert_eq!(
        by_name("inventory")["parent_id"],
        hex(&CALL_INVENTORY).as_str()
    );
    assert_eq!(by_name("DynamoDB")["inferred"], true);

    // GetServiceGraph: checkout -> inventory -> the DynamoDB table.
    let (status, g) = xray_call(
        &server,
        "/ServiceGraph",
        &json!({"StartTime": t0 - 60.0, "EndTime": t0 + 60.0}),
    );
    assert_eq!(status, 200, "{g}");
    let services = g["Services"].as_array().unwrap();
    let node = |name: &str| {
        services
            .iter()
            .find(|s| s["Name"] == name)
            .unwrap_or_else(|| panic!("{name} in {g}"))
    };
    let edge_to = |from: &Value, to: &Value| {
        from["Edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["ReferenceId"] == to["ReferenceId"])
    };
    let (c, i, ddb) = (node("checkout"), node("inventory"), node("DynamoDB"));
    assert_eq!(ddb["Type"], "AWS::DynamoDB::Table");
    assert!(edge_to(c, i), "{g}");
    assert!(edge_to(i, ddb), "{g}");
    assert_eq!(i["SummaryStatistics"]["FaultStatistics"]["TotalCount"], 1);

    // The viewer: the list and the timeline.
    let list = get_json(
        &server,
        "/api/TraceSummaries?filter=service(%22inventory%22)",
    );
    assert_eq!(list["TraceSummaries"][0]["Id"], id.as_str());
    let tl = timeline(&server, &id);
    let names: Vec<&str> = tl["Rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    for n in ["checkout", "inventory", "DynamoDB"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    server.shutdown().await;
}

/// A service sending spans over OTLP and one sending segment documents over
/// UDP, calling each other: one trace, with the right parents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_udp_segments_join_in_one_trace() {
    let server = start_default().await;
    let t0 = now() - 20.0;
    let t = trace(2);
    let id = xray_trace_id(&t);
    let (checkout, _) = shop(&t, t0);
    let req = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(checkout_resource(), checkout)],
    };
    assert_eq!(export(&server, Wire::Protobuf, &req), 0);
    // inventory answers the call with a segment document over UDP, its
    // parent the client span's ID (as a traceparent would carry it).
    let inv = entity_id();
    send_doc(
        &server,
        &json!({"name": "inventory", "id": inv, "trace_id": id, "parent_id": hex(&CALL_INVENTORY),
                "start_time": t0 + 0.12, "end_time": t0 + 0.3,
                "http": {"response": {"status": 200}}}),
    );
    wait_accepted(&server, 3);
    let docs = stored_docs(&server, &id);
    assert_eq!(docs.len(), 3, "{docs:?}");
    assert_eq!(docs[&inv]["parent_id"], hex(&CALL_INVENTORY).as_str());
    assert_eq!(
        docs[&hex(&CALL_INVENTORY)]["parent_id"],
        hex(&CHECKOUT).as_str()
    );
    let (_, g) = xray_call(
        &server,
        "/ServiceGraph",
        &json!({"StartTime": t0 - 60.0, "EndTime": t0 + 60.0}),
    );
    let services = g["Services"].as_array().unwrap();
    let checkout_node = services.iter().find(|s| s["Name"] == "checkout").unwrap();
    let inventory_node = services.iter().find(|s| s["Name"] == "inventory").unwrap();
    assert!(
        checkout_node["Edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["ReferenceId"] == inventory_node["ReferenceId"]),
        "{g}"
    );
    server.shutdown().await;
}
