//! Log correlation: `AWS-XRAY-TRACE-ID: <trace>@<entity>` in fmt output.

#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::{Arc, Mutex};

use tracing::{Dispatch, info, info_span};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{fmt, prelude::*};
use xray_sdk::{Context, Recorder};
use xray_sdk_tracing::{XRayFormat, XRayTracingLayer, log_correlation_id};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// Logs one line outside any context, one in the segment and one in a span; returns the
/// lines and the expected IDs (segment, span subsegment).
fn log_three(dispatch: Dispatch, recorder: &Recorder) -> (String, String) {
    let segment = recorder.segment("svc").begin();
    let expected_segment = format!("{}@{}", segment.trace_id(), segment.id());
    let mut expected_span = String::new();
    tracing::dispatcher::with_default(&dispatch, || {
        info!("outside");
        segment.in_scope(|| {
            info!("in segment");
            info_span!("step").in_scope(|| {
                let c = Context::current().unwrap();
                expected_span = format!("{}@{}", c.trace_id(), c.id());
                assert_eq!(
                    log_correlation_id().as_deref(),
                    Some(expected_span.as_str())
                );
                info!(n = 1, "in span");
            });
        });
    });
    assert_ne!(
        expected_segment, expected_span,
        "the span has its own subsegment"
    );
    (expected_segment, expected_span)
}

fn recorder() -> (xray_sdk::testing::UdpCapture, Recorder) {
    let capture = xray_sdk::testing::UdpCapture::start().unwrap();
    let recorder = capture.recorder("svc");
    (capture, recorder)
}

#[test]
fn text_lines_carry_the_trace_id_prefix() {
    let buf = Buffer::default();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(XRayTracingLayer::new())
            .with(
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(buf.clone())
                    .event_format(XRayFormat::new(fmt::format().with_ansi(false))),
            ),
    );
    let (_capture, recorder) = recorder();
    let (seg, span) = log_three(dispatch, &recorder);
    let lines = buf.lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(!lines[0].contains("AWS-XRAY-TRACE-ID"), "{}", lines[0]);
    assert!(lines[0].contains("outside"));
    assert!(
        lines[1].starts_with(&format!("AWS-XRAY-TRACE-ID: {seg} ")),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with("in segment"));
    assert!(
        lines[2].starts_with(&format!("AWS-XRAY-TRACE-ID: {span} ")),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains("step: "),
        "span context kept: {}",
        lines[2]
    );
}

#[test]
fn json_lines_carry_the_trace_id_member() {
    let buf = Buffer::default();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(XRayTracingLayer::new())
            .with(
                fmt::layer()
                    .json()
                    .with_writer(buf.clone())
                    .event_format(XRayFormat::json(fmt::format().json())),
            ),
    );
    let (_capture, recorder) = recorder();
    let (seg, span) = log_three(dispatch, &recorder);
    let lines: Vec<serde_json::Value> = buf
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].get("AWS-XRAY-TRACE-ID").is_none());
    assert_eq!(lines[1]["AWS-XRAY-TRACE-ID"], seg);
    assert_eq!(lines[2]["AWS-XRAY-TRACE-ID"], span);
    assert_eq!(lines[2]["fields"]["message"], "in span");
    assert!(buf.lines()[1].starts_with("{\"AWS-XRAY-TRACE-ID\":"));
}
