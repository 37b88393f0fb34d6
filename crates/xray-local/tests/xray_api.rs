//! The X-Ray API spoken by the AWS SDK's own client (aws-sdk-xray) against
//! a running xray-local: segments in through PutTraceSegments, then
//! summaries, traces, graphs and time series back, filter expressions,
//! pagination, and bad input answered as the service answers it.

mod common;
#[path = "common/xray.rs"]
mod xray;

use std::collections::BTreeSet;

use aws_sdk_xray::Client;
use aws_sdk_xray::error::ProvideErrorMetadata;
use aws_sdk_xray::types::{AnnotationValue, TimeRangeType};
use common::*;
use serde_json::{Value, json};
use xray::{at, client};

/// One request through the shop: `frontend` (the root, answering `status`)
/// calls `orders-api` (which faults when `api_fault`), DynamoDB and an
/// untraced host. Returns the trace ID and the documents, as JSON texts.
fn shop_trace(t0: f64, status: u16, api_fault: bool, customer: &str) -> (String, Vec<String>) {
    let t = trace_id_at(t0 as u64);
    let (front, call_api, ddb, ext, api, query) = (
        entity_id(),
        entity_id(),
        entity_id(),
        entity_id(),
        entity_id(),
        entity_id(),
    );
    let mut root = segment(&t, &front, "frontend", None, t0, 0.5);
    root["http"] = json!({"request": {"method": "GET", "url": format!("http://shop.local/orders/{customer}"),
        "user_agent": "curl/8.5", "client_ip": "10.1.2.3"}, "response": {"status": status}});
    root["fault"] = json!(status >= 500);
    root["error"] = json!((400..500).contains(&status));
    root["user"] = json!("alice");
    root["annotations"] = json!({"customer": customer, "vip": customer == "c-1", "items": 3});
    root["subsegments"] = json!([
        {"name": "orders-api", "id": call_api, "namespace": "remote", "start_time": t0 + 0.01,
         "end_time": t0 + 0.21, "fault": api_fault,
         "http": {"request": {"method": "POST", "url": "http://orders-api.local/q", "traced": true},
                  "response": {"status": if api_fault { 500 } else { 200 }}}},
        {"name": "DynamoDB", "id": ddb, "namespace": "aws", "start_time": t0 + 0.3, "end_time": t0 + 0.35,
         "aws": {"operation": "GetItem", "table_name": "orders"},
         "http": {"response": {"status": 200}}},
        {"name": "example.com", "id": ext, "namespace": "remote", "start_time": t0 + 0.36, "end_time": t0 + 0.4,
         "http": {"request": {"method": "GET", "url": "https://example.com/"}, "response": {"status": 200}}}
    ]);
    let mut callee = segment(&t, &api, "orders-api", Some(&call_api), t0 + 0.02, 0.18);
    callee["fault"] = json!(api_fault);
    callee["origin"] = json!("AWS::ECS::Container");
    callee["http"] = json!({"request": {"method": "POST", "url": "http://orders-api.local/q"},
        "response": {"status": if api_fault { 500 } else { 200 }}});
    let streamed = streamed(&t, &query, &api, "db-query", t0 + 0.05, 0.1);
    let docs = [root, callee, streamed]
        .iter()
        .map(Value::to_string)
        .collect();
    (t, docs)
}

async fn put(xray: &Client, docs: Vec<String>) -> Vec<(String, String)> {
    let out = xray
        .put_trace_segments()
        .set_trace_segment_documents(Some(docs))
        .send()
        .await
        .expect("PutTraceSegments");
    out.unprocessed_trace_segments()
        .iter()
        .map(|u| {
            (
                u.id().unwrap_or_default().to_string(),
                u.error_code().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Three shop traces a second apart, stored through the API.
async fn three_shop_traces(xray: &Client, t0: f64) -> [String; 3] {
    let (a, mut docs) = shop_trace(t0, 200, true, "c-1");
    let (b, more) = shop_trace(t0 + 1.0, 500, true, "c-2");
    docs.extend(more);
    let (c, more) = shop_trace(t0 + 2.0, 200, false, "c-3");
    docs.extend(more);
    assert_eq!(put(xray, docs).await, []);
    [a, b, c]
}

fn sorted(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = ids.into_iter().collect();
    v.sort();
    v
}

async fn summary_ids(xray: &Client, t0: f64, filter: Option<&str>) -> Vec<String> {
    let out = xray
        .get_trace_summaries()
        .start_time(at(t0 - 60.0))
        .end_time(at(t0 + 60.0))
        .set_filter_expression(filter.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetTraceSummaries {filter:?}: {e:?}"));
    sorted(
        out.trace_summaries()
            .iter()
            .filter_map(|s| s.id().map(str::to_string)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_put_through_the_api_come_back_as_summaries_traces_and_graphs() {
    let server = start_default().await;
    let xray = client(&server);
    let t0 = (now() - 120.0).floor();
    let [a, b, c] = three_shop_traces(&xray, t0).await;

    // The same checks as the UDP intake: what the service would refuse is listed.
    let bad_id = entity_id();
    let refused = put(
        &xray,
        vec![
            json!({"trace_id": "1-bad", "id": bad_id, "name": "x", "start_time": t0 - 3600.0,
                   "end_time": t0 - 3599.0})
            .to_string(),
            "not json".to_string(),
        ],
    )
    .await;
    assert_eq!(
        refused,
        [
            (bad_id, "invalid_trace_id".to_string()),
            (String::new(), "invalid_json".to_string())
        ]
    );
    let stats = get_json(&server, "/api/stats");
    assert_eq!(stats["Intake"]["ApiDocuments"], json!(11));
    assert_eq!(stats["Intake"]["Accepted"], json!(10));

    // Summaries, typed as the SDK reads them.
    let out = xray
        .get_trace_summaries()
        .start_time(at(t0 - 60.0))
        .end_time(at(t0 + 60.0))
        .send()
        .await
        .expect("GetTraceSummaries");
    assert_eq!(out.traces_processed_count(), Some(3));
    assert!(out.approximate_time().is_some());
    assert_eq!(out.next_token(), None);
    let list = out.trace_summaries();
    // Newest first.
    let ids: Vec<&str> = list.iter().filter_map(|s| s.id()).collect();
    assert_eq!(ids, [c.as_str(), b.as_str(), a.as_str()]);
    let sa = &list[2];
    assert_eq!(sa.has_fault(), Some(false), "the root answered 200");
    assert_eq!(sa.response_time(), Some(0.5));
    assert_eq!(sa.duration(), Some(0.5));
    assert_eq!(sa.start_time().map(|t| t.secs()), Some(t0 as i64));
    assert_eq!(sa.is_partial(), Some(false));
    let http = sa.http().expect("Http");
    assert_eq!(http.http_status(), Some(200));
    assert_eq!(http.http_method(), Some("GET"));
    assert_eq!(http.http_url(), Some("http://shop.local/orders/c-1"));
    assert_eq!(http.user_agent(), Some("curl/8.5"));
    assert_eq!(http.client_ip(), Some("10.1.2.3"));
    assert_eq!(sa.entry_point().and_then(|e| e.name()), Some("frontend"));
    assert_eq!(sa.users()[0].user_name(), Some("alice"));
    let services: BTreeSet<(&str, &str)> = sa
        .service_ids()
        .iter()
        .map(|s| (s.name().unwrap_or(""), s.r#type().unwrap_or("")))
        .collect();
    assert_eq!(
        services,
        BTreeSet::from([
            ("frontend", "service"),
            ("orders-api", "AWS::ECS::Container"),
            ("DynamoDB", "AWS::DynamoDB::Table"),
            ("example.com", "remote"),
        ])
    );
    let annotations = sa.annotations().expect("Annotations");
    let customer = annotations["customer"][0].annotation_value();
    assert_eq!(customer, Some(&AnnotationValue::StringValue("c-1".into())));
    assert_eq!(
        annotations["items"][0].annotation_value(),
        Some(&AnnotationValue::NumberValue(3.0))
    );
    assert_eq!(
        annotations["vip"][0].annotation_value(),
        Some(&AnnotationValue::BooleanValue(true))
    );
    assert_eq!(list[1].has_fault(), Some(true));
    assert_eq!(list[1].http().and_then(|h| h.http_status()), Some(500));

    // A window that holds none of them; the Event time range.
    let out = xray
        .get_trace_summaries()
        .start_time(at(t0 + 10.0))
        .end_time(at(t0 + 20.0))
        .send()
        .await
        .expect("GetTraceSummaries");
    assert!(out.trace_summaries().is_empty());
    let out = xray
        .get_trace_summaries()
        .start_time(at(t0 + 0.5))
        .end_time(at(t0 + 1.5))
        .time_range_type(TimeRangeType::Event)
        .send()
        .await
        .expect("GetTraceSummaries");
    let ids: Vec<&str> = out
        .trace_summaries()
        .iter()
        .filter_map(|s| s.id())
        .collect();
    assert_eq!(ids, [b.as_str()]);

    // BatchGetTraces: the streamed subsegment merged into its parent, and an inferred
    // segment for each called resource that sent none.
    let out = xray
        .batch_get_traces()
        .trace_ids(a.clone())
        .trace_ids("1-00000000-000000000000000000000000")
        .send()
        .await
        .expect("BatchGetTraces");
    assert_eq!(
        out.unprocessed_trace_ids(),
        ["1-00000000-000000000000000000000000"]
    );
    let trace = &out.traces()[0];
    assert_eq!(trace.id(), Some(a.as_str()));
    assert_eq!(trace.duration(), Some(0.5));
    assert_eq!(trace.limit_exceeded(), Some(false));
    let docs: Vec<Value> = trace
        .segments()
        .iter()
        .map(|s| serde_json::from_str(s.document().expect("Document")).expect("JSON"))
        .collect();
    for (seg, doc) in trace.segments().iter().zip(&docs) {
        assert_eq!(seg.id(), doc["id"].as_str());
    }
    let by_name = |n: &str| {
        docs.iter()
            .find(|d| d["name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {docs:#?}"))
    };
    assert_eq!(docs.len(), 4, "{docs:#?}");
    assert_eq!(by_name("orders-api")["subsegments"][0]["name"], "db-query");
    let ddb = by_name("DynamoDB");
    assert_eq!(ddb["inferred"], json!(true));
    assert_eq!(ddb["origin"], "AWS::DynamoDB::Table");
    assert_eq!(ddb["aws"]["table_name"], "orders");
    let front = by_name("frontend");
    assert_eq!(ddb["parent_id"], front["subsegments"][1]["id"]);
    assert_eq!(by_name("example.com")["inferred"], json!(true));

    // The trace graph of one trace, the service graph of the window.
    let out = xray
        .get_trace_graph()
        .trace_ids(a.clone())
        .send()
        .await
        .expect("GetTraceGraph");
    let names: BTreeSet<&str> = out.services().iter().filter_map(|s| s.name()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "client",
            "frontend",
            "orders-api",
            "DynamoDB",
            "example.com"
        ])
    );
    let out = xray
        .get_service_graph()
        .start_time(at(t0 - 60.0))
        .end_time(at(t0 + 60.0))
        .send()
        .await
        .expect("GetServiceGraph");
    assert!(!out.contains_old_group_versions());
    let services = out.services();
    let node = |n: &str| {
        services
            .iter()
            .find(|s| s.name() == Some(n))
            .unwrap_or_else(|| panic!("no node {n}"))
    };
    let front = node("frontend");
    assert_eq!(front.root(), Some(true));
    let st = front.summary_statistics().expect("SummaryStatistics");
    assert_eq!(st.total_count(), Some(3));
    assert_eq!(st.ok_count(), Some(2));
    assert_eq!(st.fault_statistics().and_then(|f| f.total_count()), Some(1));
    let hist_total: i32 = front
        .response_time_histogram()
        .iter()
        .map(|h| h.count())
        .sum();
    assert_eq!(hist_total, 3);
    assert_eq!(front.response_time_histogram()[0].value(), 0.5);
    assert_eq!(front.start_time().map(|t| t.secs()), Some(t0 as i64));
    let api = node("orders-api");
    assert_eq!(api.r#type(), Some("AWS::ECS::Container"));
    let st = api.summary_statistics().expect("SummaryStatistics");
    assert_eq!(st.fault_statistics().and_then(|f| f.total_count()), Some(2));
    let to_ddb = front
        .edges()
        .iter()
        .find(|e| e.reference_id() == node("DynamoDB").reference_id())
        .expect("frontend -> DynamoDB");
    assert_eq!(
        to_ddb.summary_statistics().and_then(|s| s.total_count()),
        Some(3)
    );
    assert!(!to_ddb.response_time_histogram().is_empty());

    // Time series: a service, an edge, and the requests entering the system.
    let series = |selector: Option<&str>| {
        let xray = xray.clone();
        let selector = selector.map(str::to_string);
        async move {
            xray.get_time_series_service_statistics()
                .start_time(at(t0 - 120.0))
                .end_time(at(t0 + 120.0))
                .period(60)
                .set_entity_selector_expression(selector)
                .send()
                .await
                .expect("GetTimeSeriesServiceStatistics")
        }
    };
    let out = series(Some("service(\"orders-api\")")).await;
    let points = out.time_series_service_statistics();
    assert!(points.len() >= 4, "{points:?}");
    let total = |pick: fn(&aws_sdk_xray::types::TimeSeriesServiceStatistics) -> Option<i64>| {
        points.iter().filter_map(pick).sum::<i64>()
    };
    assert_eq!(total(|p| p.service_summary_statistics()?.total_count()), 3);
    assert_eq!(
        total(|p| p
            .service_summary_statistics()?
            .fault_statistics()?
            .total_count()),
        2
    );
    for w in points.windows(2) {
        let step = w[1].timestamp().map(|t| t.secs()).unwrap_or(0)
            - w[0].timestamp().map(|t| t.secs()).unwrap_or(0);
        assert_eq!(step, 60);
        assert_eq!(w[0].timestamp().map(|t| t.secs() % 60), Some(0));
    }
    let out = series(Some("edge(\"frontend\", \"DynamoDB\")")).await;
    let edge_total: i64 = out
        .time_series_service_statistics()
        .iter()
        .filter_map(|p| p.edge_summary_statistics()?.total_count())
        .sum();
    assert_eq!(edge_total, 3);
    let out = series(None).await;
    let entering: i64 = out
        .time_series_service_statistics()
        .iter()
        .filter_map(|p| p.service_summary_statistics()?.total_count())
        .sum();
    assert_eq!(entering, 3);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_expressions_select_the_traces_the_service_would() {
    let server = start_default().await;
    let xray = client(&server);
    let t0 = (now() - 120.0).floor();
    let [a, b, c] = three_shop_traces(&xray, t0).await;
    let all = sorted([a.clone(), b.clone(), c.clone()]);
    let table: Vec<(&str, Vec<String>)> = vec![
        ("ok", sorted([a.clone(), c.clone()])),
        ("fault", vec![b.clone()]),
        ("!fault AND !error", sorted([a.clone(), c.clone()])),
        ("http.status = 500", vec![b.clone()]),
        (
            "http.status >= 200 AND http.status < 300",
            sorted([a.clone(), c.clone()]),
        ),
        ("http.url ENDSWITH \"/c-3\"", vec![c.clone()]),
        ("http.url CONTAINS \"/orders/\"", all.clone()),
        ("http.method = \"POST\"", vec![]),
        ("responsetime >= 0.5", all.clone()),
        ("duration < 0.1", vec![]),
        ("user = \"alice\"", all.clone()),
        ("annotation.customer = \"c-2\"", vec![b.clone()]),
        ("annotation.vip", vec![a.clone()]),
        ("annotation.items > 2", all.clone()),
        (
            "service(\"orders-api\") { fault }",
            sorted([a.clone(), b.clone()]),
        ),
        // The root answered 200 while a downstream service faulted.
        ("ok AND service(\"orders-api\") { fault }", vec![a.clone()]),
        (
            "service(id(name: \"DynamoDB\", type: \"AWS::DynamoDB::Table\"))",
            all.clone(),
        ),
        (
            "edge(\"frontend\", \"orders-api\") { fault }",
            sorted([a.clone(), b.clone()]),
        ),
        ("edge(\"orders-api\", \"frontend\")", vec![]),
        (
            "(fault OR annotation.vip) AND !service(\"nope\")",
            sorted([a.clone(), b.clone()]),
        ),
    ];
    let mut wrong = Vec::new();
    for (expr, want) in &table {
        let got = summary_ids(&xray, t0, Some(expr)).await;
        if &got != want {
            wrong.push(format!("{expr}: got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The same language in the viewer's list.
    let v = get_json(
        &server,
        "/api/TraceSummaries?filter=service(%22orders-api%22)%20%7B%20fault%20%7D%20AND%20ok",
    );
    let ids: Vec<&str> = v["TraceSummaries"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["Id"].as_str())
        .collect();
    assert_eq!(ids, [a.as_str()]);
    assert_eq!(v["TraceSummaries"][0]["DownstreamFailed"], json!(true));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_page_through_next_token() {
    let server = start_default().await;
    let xray = client(&server);
    let t0 = (now() - 600.0).floor();
    let mut want = Vec::new();
    for chunk in 0..5 {
        let mut docs = Vec::new();
        for i in 0..50 {
            let t = trace_id_at(t0 as u64);
            let start = t0 + f64::from(chunk * 50 + i) * 0.01;
            docs.push(segment(&t, &entity_id(), "batch", None, start, 0.01).to_string());
            want.push(t);
        }
        assert_eq!(put(&xray, docs).await, []);
    }
    let pages: Vec<_> = xray
        .get_trace_summaries()
        .start_time(at(t0 - 1.0))
        .end_time(at(t0 + 1.0))
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    let pages: Vec<_> = pages.into_iter().map(|p| p.expect("page")).collect();
    assert_eq!(pages.len(), 3);
    let sizes: Vec<usize> = pages.iter().map(|p| p.trace_summaries().len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let got: Vec<String> = pages
        .iter()
        .flat_map(|p| p.trace_summaries())
        .filter_map(|s| s.id().map(str::to_string))
        .collect();
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 250, "no repeats");
    assert_eq!(sorted(got), sorted(want));
    // Each page starts where the last ended, newest first.
    let starts: Vec<f64> = pages
        .iter()
        .flat_map(|p| p.trace_summaries())
        .filter_map(|s| s.start_time().map(|t| t.as_secs_f64()))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]));

    let err = xray
        .get_trace_summaries()
        .start_time(at(t0 - 1.0))
        .end_time(at(t0 + 1.0))
        .next_token("made-up")
        .send()
        .await
        .expect_err("a token this server never handed out")
        .into_service_error();
    assert!(err.is_invalid_request_exception(), "{err:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_typed_errors() {
    let server = start_default().await;
    let xray = client(&server);
    let t0 = now();

    let err = xray
        .get_trace_summaries()
        .start_time(at(t0))
        .end_time(at(t0 - 10.0))
        .send()
        .await
        .expect_err("end before start")
        .into_service_error();
    assert!(err.is_invalid_request_exception(), "{err:?}");

    let err = xray
        .get_trace_summaries()
        .start_time(at(t0 - 10.0))
        .end_time(at(t0))
        .filter_expression("service(\"a\") { fault")
        .send()
        .await
        .expect_err("malformed expression")
        .into_service_error();
    assert!(err.is_invalid_request_exception(), "{err:?}");
    let message = err.message().unwrap_or_default();
    assert!(
        message.contains("position 21") && message.contains("close the `{`"),
        "{message}"
    );

    let many: Vec<String> = (0..101).map(|_| trace_id()).collect();
    let err = xray
        .batch_get_traces()
        .set_trace_ids(Some(many))
        .send()
        .await
        .expect_err("too many IDs")
        .into_service_error();
    assert!(err.is_invalid_request_exception(), "{err:?}");

    let err = xray
        .get_time_series_service_statistics()
        .start_time(at(t0 - 600.0))
        .end_time(at(t0))
        .period(61)
        .send()
        .await
        .expect_err("period")
        .into_service_error();
    assert!(err.is_invalid_request_exception(), "{err:?}");
    let err = xray
        .get_time_series_service_statistics()
        .start_time(at(t0 - 600.0))
        .end_time(at(t0))
        .entity_selector_expression("fault")
        .send()
        .await
        .expect_err("not a selector")
        .into_service_error();
    assert!(err.is_invalid_request_exception(), "{err:?}");

    let err = xray
        .get_service_graph()
        .start_time(at(t0 - 600.0))
        .end_time(at(t0))
        .group_name("checkout")
        .send()
        .await
        .expect_err("no such group")
        .into_service_error();
    assert!(err.is_invalid_request_exception(), "{err:?}");

    // An operation xray-local does not serve: a clear error, not a hang or a 500.
    let err = xray
        .get_groups()
        .send()
        .await
        .expect_err("groups are not served");
    assert_eq!(err.code(), Some("UnknownOperationException"), "{err:?}");

    // Raw requests: missing members, a body that is not JSON, the wrong types.
    for (path, body, words) in [
        ("/TraceSummaries", "{}", "StartTime is required"),
        (
            "/TraceSummaries",
            "{\"StartTime\": \"yesterday\", \"EndTime\": 1}",
            "StartTime must be",
        ),
        ("/TraceSummaries", "nope", "not JSON"),
        ("/Traces", "{}", "TraceIds is required"),
        (
            "/TraceSegments",
            "{\"TraceSegmentDocuments\": \"{}\"}",
            "list of strings",
        ),
        ("/ServiceGraph", "[]", "JSON object"),
        ("/CreateSamplingRule", "{}", "SamplingRule is required"),
        ("/SamplingTargets", "{}", "SamplingStatisticsDocuments"),
    ] {
        let r = request(server.ui_addr(), "POST", path, body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        assert!(
            r.headers
                .to_ascii_lowercase()
                .contains("x-amzn-errortype: invalidrequestexception"),
            "{}",
            r.headers
        );
        let v = r.json();
        assert_eq!(v["__type"], "InvalidRequestException");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(words)),
            "{path} {body}: {v}"
        );
    }
    let r = request(server.ui_addr(), "POST", "/Groups", "{}");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["__type"], "UnknownOperationException");
    // A page of another site cannot post here (a browser names its origin);
    // the viewer's own origin can.
    let post_from = |origin: &str| {
        let mut s = std::net::TcpStream::connect(server.ui_addr()).expect("connect");
        let req = format!(
            "POST /DeleteSamplingRule HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\nConnection: close\r\n\
             Content-Type: text/plain\r\nContent-Length: 21\r\n\r\n{{\"RuleName\":\"health\"}}",
            server.ui_addr()
        );
        std::io::Write::write_all(&mut s, req.as_bytes()).expect("write");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).expect("read");
        out
    };
    let refused = post_from("http://evil.example");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(
        request(server.tcp_addr(), "POST", "/GetSamplingRules", "")
            .body
            .contains("\"health\"")
    );
    let own = post_from(&format!("http://{}", server.ui_addr()));
    assert!(own.starts_with("HTTP/1.1 200"), "{own}");
    // The daemon sends its telemetry here; it is accepted and dropped.
    let r = request(
        server.ui_addr(),
        "POST",
        "/TelemetryRecords",
        "{\"TelemetryRecords\": []}",
    );
    assert_eq!(r.status, 200);
    server.shutdown().await;
}
