//! JSON API filters and error handling.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_filters() {
    let server = start_default().await;
    let t0 = now();
    let mk = |name: &str, dur: f64, flags: serde_json::Value, ann: serde_json::Value| {
        let t = trace_id();
        let mut s = segment(&t, &entity_id(), name, None, t0, dur);
        for (k, v) in flags.as_object().expect("flags") {
            s[k] = v.clone();
        }
        s["annotations"] = ann;
        s["http"] = json!({"request": {"method": "POST", "url": "http://x/y"}, "response": {"status": 503}});
        send_doc(&server, &s);
        t
    };
    let ok = mk("web", 0.1, json!({}), json!({"user": "alice", "n": 3}));
    let err = mk("web", 0.2, json!({"error": true}), json!({"user": "bob"}));
    let fault = mk("api", 2.0, json!({"fault": true}), json!({"flag": true}));
    let thr = mk(
        "api",
        0.3,
        json!({"error": true, "throttle": true}),
        json!({}),
    );
    wait_accepted(&server, 4);
    let ids = |q: &str| summary_ids(&server, q);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(ids("status=ok"), [ok.as_str()]);
    assert_eq!(ids("status=fault"), [fault.as_str()]);
    assert_eq!(ids("status=throttle"), [thr.as_str()]);
    assert_eq!(ids("status=error"), sorted(vec![err.clone(), thr.clone()]));
    assert_eq!(ids("service=web"), sorted(vec![ok.clone(), err.clone()]));
    assert_eq!(ids("min_duration=1.5"), [fault.as_str()]);
    assert_eq!(ids("annotation=user%3Dbob"), [err.as_str()]);
    assert_eq!(ids("annotation=user=alice"), [ok.as_str()]);
    assert_eq!(ids("annotation=n=3"), [ok.as_str()]);
    assert_eq!(ids("annotation=flag=true"), [fault.as_str()]);
    assert_eq!(
        ids(&format!("start={}&end={}", t0 - 1.0, t0 + 1.0)).len(),
        4
    );
    assert!(ids(&format!("start={}", t0 + 10.0)).is_empty());
    assert_eq!(ids("limit=2").len(), 2);

    let v = get_json(&server, "/api/TraceSummaries?service=api&status=fault");
    let s = &v["TraceSummaries"][0];
    assert_eq!(s["Http"]["HttpStatus"], json!(503));
    assert_eq!(s["Http"]["HttpMethod"], json!("POST"));
    assert_eq!(s["HasFault"], json!(true));
    assert_eq!(
        s["Annotations"]["flag"][0]["AnnotationValue"]["BooleanValue"],
        json!(true)
    );
    assert_eq!(s["ServiceIds"][0]["Name"], json!("api"));
    assert!((s["Duration"].as_f64().expect("d") - 2.0).abs() < 1e-6);
    assert!((s["ResponseTime"].as_f64().expect("r") - 2.0).abs() < 1e-6);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_with_json() {
    let server = start_default().await;
    for path in [
        "/api/TraceSummaries?status=weird",
        "/api/TraceSummaries?min_duration=abc",
        "/api/TraceSummaries?start=NaN",
        "/api/TraceSummaries?start=5&end=1",
        "/api/TraceSummaries?limit=0",
        "/api/TraceSummaries?limit=1001",
        "/api/TraceSummaries?annotation=novalue",
        "/api/TraceSummaries?bogus=1",
        "/api/TraceSummaries?service=a&service=b",
        "/api/TraceSummaries?service=%zz",
        "/api/Traces",
        "/api/Traces?ids=a&x=1",
        "/api/Timeline",
        "/api/ServiceGraph?start=x",
        "/api/validation?limit=-1",
        "/api/stats?x=1",
    ] {
        let r = get(&server, path);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(
            r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}"
        );
    }
    let many: Vec<String> = (0..101).map(|_| trace_id()).collect();
    assert_eq!(
        get(&server, &format!("/api/Traces?ids={}", many.join(","))).status,
        400
    );
    assert_eq!(
        get(
            &server,
            "/api/Timeline?id=1-00000000-000000000000000000000000"
        )
        .status,
        404
    );
    assert_eq!(get(&server, "/api/nothing").status, 404);
    // The UI is served from the same port.
    let r = get(&server, "/");
    assert_eq!(r.status, 200);
    assert!(r.headers.to_ascii_lowercase().contains("text/html"));
    assert_eq!(get(&server, "/app.js").status, 200);
    assert_eq!(get(&server, "/style.css").status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_datagram_cannot_blow_up_the_timeline_or_batch_answers() {
    let server = start_default().await;
    // 2,000 empty subsegments under a segment with an empty id: every row shares the
    // document's id, and the document has the most problems validation lists.
    let t = trace_id();
    let doc = json!({"trace_id": t, "id": "", "subsegments": vec![json!({}); 2_000]});
    send_doc(&server, &doc);
    wait_accepted(&server, 1);
    let r = get(&server, &format!("/api/Timeline?id={t}"));
    assert_eq!(r.status, 200);
    assert!(r.body.len() < 2_000_000, "{} bytes", r.body.len());
    let v = r.json();
    let rows = v["Rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2_001);
    let problems: Vec<usize> = rows
        .iter()
        .filter_map(|r| r["Problems"].as_array().map(Vec::len))
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(problems, [101]);
    // The same trace asked for 100 times comes back once.
    let ids = vec![t.as_str(); 100].join(",");
    let v = get_json(&server, &format!("/api/Traces?ids={ids}"));
    assert_eq!(v["Traces"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["UnprocessedTraceIds"], json!([]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_traces_last_until_their_latest_finished_entity() {
    let server = start_default().await;
    let t0 = now() - 5.0;
    // An open segment whose embedded child finished 0.8 s after it started (and a
    // streamed one before that), and a finished segment whose embedded async
    // subsegment outlives it (1.5 s in all).
    let open = trace_id();
    let seg = entity_id();
    send_doc(
        &server,
        &json!({"trace_id": open, "id": seg, "name": "open", "start_time": t0, "in_progress": true,
                "subsegments": [{"id": entity_id(), "name": "embedded", "start_time": t0 + 0.1, "end_time": t0 + 0.8}]}),
    );
    send_doc(
        &server,
        &streamed(&open, &entity_id(), &seg, "child", t0 + 0.3, 0.4),
    );
    let long = trace_id();
    let mut s = segment(&long, &entity_id(), "long", None, t0, 0.2);
    s["subsegments"] =
        json!([{"id": entity_id(), "name": "async", "start_time": t0 + 0.1, "end_time": t0 + 1.5}]);
    send_doc(&server, &s);
    wait_accepted(&server, 3);
    let duration = |t: &str| {
        let v = get_json(&server, "/api/TraceSummaries");
        let s = v["TraceSummaries"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["Id"] == json!(t)))
            .unwrap_or_else(|| panic!("{t} listed: {v}"));
        s["Duration"].as_f64().expect("Duration")
    };
    let near = |a: f64, b: f64| (a - b).abs() < 1e-3;
    assert!(near(duration(&open), 0.8), "{}", duration(&open));
    assert!(near(duration(&long), 1.5), "{}", duration(&long));
    // The timeline, the list and the min-duration filter agree.
    for (t, d) in [(&open, 0.8), (&long, 1.5)] {
        let tl = timeline(&server, t);
        assert!(near(tl["Duration"].as_f64().expect("Duration"), d), "{tl}");
        assert!(
            near(tl["StartTime"].as_f64().expect("StartTime"), t0),
            "{tl}"
        );
    }
    let ids = |q: &str| summary_ids(&server, q);
    let mut both = vec![open.clone(), long.clone()];
    both.sort();
    assert_eq!(ids("min_duration=0.79"), both);
    assert_eq!(ids("min_duration=0.81"), [long.as_str()]);
    assert!(ids("min_duration=1.51").is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_name_the_bound_udp_address() {
    // Configured as port 0: the answer gives the port actually bound, for the UI to show.
    let server = start_default().await;
    let v = get_json(&server, "/api/stats");
    assert_eq!(v["UdpAddress"], json!(server.udp_addr().to_string()));
    server.shutdown().await;
}

/// The IDs of the trace summaries `/api/TraceSummaries?<query>` lists, sorted.
fn summary_ids(server: &xray_local::Server, query: &str) -> Vec<String> {
    let v = get_json(server, &format!("/api/TraceSummaries?{query}"));
    let mut ids: Vec<String> = v["TraceSummaries"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["Id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}
