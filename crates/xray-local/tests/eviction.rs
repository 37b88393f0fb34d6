//! The store's trace-count and memory caps.

mod common;

use common::*;
use serde_json::json;
use xray_local::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicts_oldest_under_count_cap() {
    let server = start(Config {
        max_traces: 3,
        ..Config::ephemeral()
    })
    .await;
    let ids: Vec<String> = (0..5).map(|_| trace_id()).collect();
    for (i, t) in ids.iter().enumerate() {
        send_doc(&server, &segment(t, &entity_id(), "svc", None, now(), 0.1));
        wait_accepted(&server, i as u64 + 1);
    }
    let stats = get_json(&server, "/api/stats");
    assert_eq!(stats["Store"]["Traces"], json!(3));
    assert_eq!(stats["Store"]["Counters"]["EvictedTraces"], json!(2));
    assert_eq!(stats["Store"]["Counters"]["EvictedForCount"], json!(2));
    let v = get_json(&server, &format!("/api/Traces?ids={}", ids.join(",")));
    let kept: Vec<&str> = v["Traces"]
        .as_array()
        .expect("traces")
        .iter()
        .filter_map(|t| t["Id"].as_str())
        .collect();
    assert_eq!(kept, [ids[2].as_str(), ids[3].as_str(), ids[4].as_str()]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicts_oldest_under_memory_cap() {
    // Each document is about 2 KB of text; the cap fits only a few.
    let server = start(Config {
        max_bytes: 20_000,
        ..Config::ephemeral()
    })
    .await;
    let pad = "x".repeat(2000);
    let ids: Vec<String> = (0..10).map(|_| trace_id()).collect();
    for (i, t) in ids.iter().enumerate() {
        let mut s = segment(t, &entity_id(), "svc", None, now(), 0.1);
        s["metadata"] = json!({"default": {"pad": pad}});
        send_doc(&server, &s);
        wait_accepted(&server, i as u64 + 1);
    }
    let stats = get_json(&server, "/api/stats");
    let kept = stats["Store"]["Traces"].as_u64().expect("count");
    assert!((1..10).contains(&kept), "kept {kept}");
    assert!(stats["Store"]["ApproxBytes"].as_u64().expect("bytes") <= 20_000);
    assert_eq!(
        stats["Store"]["Counters"]["EvictedForMemory"],
        json!(10 - kept)
    );
    // The newest trace survived, the oldest did not.
    let v = get_json(&server, &format!("/api/Traces?ids={},{}", ids[0], ids[9]));
    assert_eq!(v["Traces"][0]["Id"], json!(ids[9]));
    assert_eq!(v["UnprocessedTraceIds"], json!([ids[0]]));
    server.shutdown().await;
}
