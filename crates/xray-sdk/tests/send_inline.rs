//! Sending on the caller's thread (AWS Lambda): in a test binary of its own, so that no other
//! test's emitter thread is around when the threads are counted.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use xray_sdk::TraceHeader;
use xray_sdk::testing::UdpCapture;

const INVOCATION: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// The `xray-*` threads of this process.
fn sdk_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("xray-"))
        .collect()
}

#[test]
fn sending_inline_sends_each_subsegment_before_it_returns_without_an_emitter_thread() {
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("fn")
        .send_inline(true)
        .streaming_threshold(0)
        .build()
        .unwrap();
    assert!(
        !sdk_threads().iter().any(|t| t == "xray-emitter"),
        "{:?}",
        sdk_threads()
    );
    let facade = recorder.facade(&TraceHeader::parse(INVOCATION));
    let first = facade.begin_subsegment("first");
    first.end();
    // Already handed to the kernel when `end` returned: no flush needed.
    let got = capture.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].document()["name"], "first");
    let second = facade.begin_subsegment("second");
    second.end();
    facade.end();
    let got = capture.wait_for(1, Duration::from_secs(5));
    assert_eq!(got[0].document()["name"], "second");
    let stats = recorder.stats();
    assert_eq!((stats.sent, stats.pending(), stats.send_errors), (2, 0, 0));
    assert!(recorder.flush(Duration::ZERO).is_ok());
}
