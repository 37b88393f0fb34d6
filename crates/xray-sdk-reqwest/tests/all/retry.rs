//! The middleware and reqwest-retry in both orders. B's `/flaky` answers 503 twice, then 200.

use std::sync::Arc;
use std::time::Duration;

use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use xray_sdk::context::FutureExt;
use xray_sdk::testing::UdpCapture;
use xray_sdk_reqwest::XRayMiddleware;

use crate::helpers::*;

fn retry() -> Arc<dyn reqwest_middleware::Middleware> {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(20))
        .build_with_max_retries(3);
    Arc::new(RetryTransientMiddleware::new_with_policy(policy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xray_outside_retry_records_one_subsegment_for_all_attempts() {
    let capture = UdpCapture::start().unwrap();
    let b = service_b(Some(capture.recorder("service-b"))).await;
    let client = client(vec![Arc::new(XRayMiddleware::new()), retry()]);
    let recorder = capture.recorder("caller");
    let segment = recorder.segment("caller").begin();
    let res = client
        .get(b.url("/flaky"))
        .send()
        .in_context(segment.context())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    segment.end();
    assert_eq!(b.hits(), 3);

    let flat = collect(&capture, |f| {
        named(f, "caller").len() == 1 && named(f, "service-b").len() == 3
    });
    let seg = &named(&flat, "caller")[0].2;
    let subs = seg["subsegments"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "one subsegment for the whole call");
    let call = &subs[0];
    assert_eq!(call["http"]["response"]["status"], 200, "the final outcome");
    assert_ne!(call["fault"], true);
    // Every attempt carried the same header: all of B's segments hang under the one call.
    for (_, _, b_seg) in named(&flat, "service-b") {
        assert_eq!(b_seg["parent_id"], call["id"]);
        assert_eq!(b_seg["trace_id"], seg["trace_id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xray_inside_retry_records_one_subsegment_per_attempt() {
    let capture = UdpCapture::start().unwrap();
    let b = service_b(Some(capture.recorder("service-b"))).await;
    let client = client(vec![retry(), Arc::new(XRayMiddleware::new())]);
    let recorder = capture.recorder("caller");
    let segment = recorder.segment("caller").begin();
    let res = client
        .get(b.url("/flaky"))
        .send()
        .in_context(segment.context())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    segment.end();
    assert_eq!(b.hits(), 3);

    let flat = collect(&capture, |f| {
        named(f, "caller").len() == 1 && named(f, "service-b").len() == 3
    });
    let seg = &named(&flat, "caller")[0].2;
    let subs = seg["subsegments"].as_array().unwrap();
    assert_eq!(subs.len(), 3, "one subsegment per attempt");
    let statuses: Vec<_> = subs
        .iter()
        .map(|s| s["http"]["response"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    assert_eq!(subs[0]["fault"], true);
    assert_eq!(subs[1]["fault"], true);
    assert_ne!(subs[2]["fault"], true);
    // Each attempt had its own Parent: each of B's segments hangs under its attempt.
    let b_parents: std::collections::HashSet<_> = named(&flat, "service-b")
        .iter()
        .map(|(_, _, d)| d["parent_id"].as_str().unwrap().to_owned())
        .collect();
    let attempt_ids: std::collections::HashSet<_> = subs
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(b_parents, attempt_ids);
}
