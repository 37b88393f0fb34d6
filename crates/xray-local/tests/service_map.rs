//! Service graph for client → A → B, A → DynamoDB (+ a remote host).

mod common;

use common::*;
use serde_json::{Value, json};

fn node<'a>(services: &'a [Value], name: &str) -> &'a Value {
    services
        .iter()
        .find(|s| s["Name"] == json!(name))
        .unwrap_or_else(|| panic!("no node {name} in {services:?}"))
}

fn edge<'a>(services: &'a [Value], from: &str, to: &str) -> &'a Value {
    let to_ref = &node(services, to)["ReferenceId"];
    node(services, from)["Edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| &e["ReferenceId"] == to_ref)
        .unwrap_or_else(|| panic!("no edge {from} -> {to}"))
}

/// Sends one trace: A calls B over HTTP (B faults when `b_fault`) and
/// DynamoDB through the AWS SDK; optionally A also calls a remote host.
fn send_trace(server: &xray_local::Server, b_fault: bool, remote_host: bool) {
    let t = trace_id();
    let (a, call_b, ddb, ext, b) = (
        entity_id(),
        entity_id(),
        entity_id(),
        entity_id(),
        entity_id(),
    );
    let t0 = now();
    let mut subs = vec![
        json!({"name": "B", "id": call_b, "namespace": "remote", "start_time": t0 + 0.01, "end_time": t0 + 0.21,
               "fault": b_fault, "http": {"request": {"method": "GET", "url": "http://b/x", "traced": true}}}),
        json!({"name": "DynamoDB", "id": ddb, "namespace": "aws", "start_time": t0 + 0.3, "end_time": t0 + 0.35,
               "aws": {"operation": "GetItem", "table_name": "users"},
               "subsegments": [{"name": "attempt", "id": entity_id(), "namespace": "aws", "start_time": t0 + 0.3, "end_time": t0 + 0.34}]}),
    ];
    if remote_host {
        subs.push(
            json!({"name": "example.com", "id": ext, "namespace": "remote",
                         "start_time": t0 + 0.36, "end_time": t0 + 0.4}),
        );
    }
    let mut seg_a = segment(&t, &a, "A", None, t0, 0.5);
    seg_a["subsegments"] = json!(subs);
    seg_a["http"] =
        json!({"request": {"method": "GET", "url": "http://a/"}, "response": {"status": 200}});
    let mut seg_b = segment(&t, &b, "B", Some(&call_b), t0 + 0.02, 0.18);
    seg_b["fault"] = json!(b_fault);
    seg_b["origin"] = json!("AWS::EC2::Instance");
    send_doc(server, &seg_b);
    send_doc(server, &seg_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_service_graph() {
    let server = start_default().await;
    send_trace(&server, false, false);
    send_trace(&server, true, false);
    send_trace(&server, false, true);
    wait_accepted(&server, 6);

    let g = get_json(&server, "/api/ServiceGraph");
    let services = g["Services"].as_array().expect("services");
    let mut names: Vec<(&str, &str)> = services
        .iter()
        .map(|s| {
            (
                s["Name"].as_str().unwrap_or(""),
                s["Type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("A", "service"),
            ("B", "AWS::EC2::Instance"),
            ("DynamoDB", "AWS::DynamoDB::Table"),
            ("client", "client"),
            ("example.com", "remote"),
        ]
    );

    let c_a = &edge(services, "client", "A")["SummaryStatistics"];
    assert_eq!(c_a["TotalCount"], json!(3));
    assert_eq!(c_a["OkCount"], json!(3));
    assert!((c_a["TotalResponseTime"].as_f64().expect("time") - 1.5).abs() < 1e-6);
    assert_eq!(node(services, "A")["Root"], json!(true));

    let a_b = &edge(services, "A", "B")["SummaryStatistics"];
    assert_eq!(a_b["TotalCount"], json!(3));
    assert_eq!(a_b["OkCount"], json!(2));
    assert_eq!(a_b["FaultStatistics"]["TotalCount"], json!(1));
    assert!((a_b["TotalResponseTime"].as_f64().expect("time") - 0.54).abs() < 1e-6);

    // Only the outer DynamoDB call counts, not its nested attempt.
    let a_ddb = &edge(services, "A", "DynamoDB")["SummaryStatistics"];
    assert_eq!(a_ddb["TotalCount"], json!(3));
    let a_ext = &edge(services, "A", "example.com")["SummaryStatistics"];
    assert_eq!(a_ext["TotalCount"], json!(1));

    assert_eq!(node(services, "B")["Edges"], json!([]));
    assert_eq!(
        node(services, "B")["SummaryStatistics"]["TotalCount"],
        json!(3)
    );

    // Summaries can be filtered by service and see resources in ServiceIds.
    let s = get_json(&server, "/api/TraceSummaries?service=example.com");
    assert_eq!(s["TraceSummaries"].as_array().map(Vec::len), Some(1));
    let s = get_json(&server, "/api/TraceSummaries?service=B");
    assert_eq!(s["TraceSummaries"].as_array().map(Vec::len), Some(3));

    // A time range in the past shows nothing.
    let g = get_json(&server, "/api/ServiceGraph?start=1&end=2");
    assert_eq!(g["Services"], json!([]));
    server.shutdown().await;
}
