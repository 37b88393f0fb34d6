//! The SDK's own threads. A process with one default recorder (centralized sampling and the
//! plugins on) runs at most two: `xray-emitter` and `xray-background`, the second shared by the
//! sampling poller, the metadata look-ups and the second ticked for decisions; and that thread
//! sleeps while nothing is due.
//!
//! A test binary of its own, with one test, so that no other test's recorder or threads are
//! around when the threads are counted.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use serde_json::json;
use xray_sdk::plugins::Plugins;
use xray_sdk::{Recorder, SamplingRequest};

/// A local HTTP server playing the daemon's sampling API and the ECS metadata endpoint, on a
/// thread and runtime of its own.
fn serve() -> std::net::SocketAddr {
    let rules = json!({ "SamplingRuleRecords": [{ "SamplingRule": {
        "RuleName": "checkout", "ResourceARN": "*", "Priority": 1, "FixedRate": 1.0,
        "ReservoirSize": 0, "ServiceName": "*", "ServiceType": "*", "Host": "*",
        "HTTPMethod": "*", "URLPath": "/checkout", "Version": 1, "Attributes": {}
    }}]})
    .to_string();
    let app = Router::new()
        .route("/GetSamplingRules", post(move || async move { rules }))
        .route(
            "/SamplingTargets",
            post(|| async { json!({ "SamplingTargetDocuments": [] }).to_string() }),
        )
        .route(
            "/v4/c",
            get(|| async { axum::Json(json!({ "DockerId": "d0c4e1d" })) }),
        )
        .route(
            "/v4/c/task",
            get(|| async { axum::Json(json!({ "LaunchType": "FARGATE" })) }),
        );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.ok();
        });
    });
    addr
}

/// The threads of this process: (thread ID, name).
fn threads() -> Vec<(String, String)> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            Some((
                entry.file_name().to_string_lossy().into_owned(),
                name.trim_end().to_owned(),
            ))
        })
        .collect()
}

fn sdk_threads() -> Vec<(String, String)> {
    threads()
        .into_iter()
        .filter(|(_, name)| name.starts_with("xray-"))
        .collect()
}

/// How often the thread has gone to sleep and been woken since it started.
fn wake_ups(tid: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).expect("task status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_default_recorder_runs_at_most_two_threads_of_the_sdk() {
    let addr = serve();
    let recorder = Recorder::builder()
        .ignore_env()
        .service_name("threads")
        .daemon_address(addr.to_string())
        .plugins(Plugins::default().ecs_metadata_uri(format!("http://{addr}/v4/c")))
        .build()
        .expect("recorder");
    let checkout = SamplingRequest {
        url_path: Some("/checkout"),
        ..Default::default()
    };
    // The first decision starts the poller; the console's rule arrives through it.
    wait_until("the console's rules", || {
        recorder.should_sample(&checkout).rule_name.as_deref() == Some("checkout")
    });
    wait_until("the ECS plugin", || {
        recorder.origin() == Some("AWS::ECS::Container")
    });
    let segment = recorder.segment("threads").begin();
    segment.end();
    recorder.flush(Duration::from_secs(5)).expect("flush");

    let sdk = sdk_threads();
    assert!(sdk.len() <= 2, "threads of the SDK: {sdk:?}");
    let names: Vec<&str> = sdk.iter().map(|(_, name)| name.as_str()).collect();
    assert!(names.contains(&"xray-background"), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| ["xray-emitter", "xray-background"].contains(n)),
        "{names:?}"
    );

    let (tid, _) = sdk
        .iter()
        .find(|(_, name)| name == "xray-background")
        .expect("background thread");
    // While decisions are made, the thread ticks the second for them: about once a second
    // (plus a statistics report that may fall due).
    let before = wake_ups(tid);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        recorder.should_sample(&checkout);
        std::thread::sleep(Duration::from_millis(1));
    }
    let woken = wake_ups(tid) - before;
    assert!(
        woken <= 5,
        "the background thread woke {woken} times in 2 s"
    );
    // Once no decision reads the second, the ticks stop within a few seconds, and with
    // nothing due for seconds (the next report in 10 s, rules in 5 min) the thread sleeps:
    // a window of 1.5 s without a wake-up (ticks would be one a second).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = wake_ups(tid);
        std::thread::sleep(Duration::from_millis(1_500));
        let woken = wake_ups(tid) - before;
        if woken == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background thread still wakes ({woken} times in 1.5 s)"
        );
    }
}
