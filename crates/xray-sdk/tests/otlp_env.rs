//! Choosing and configuring the exporter from the environment. Each case runs in a child
//! process whose environment holds only the variables under test (this binary again, with
//! one test selected), against a real OTLP/HTTP receiver or UDP socket in the parent. The
//! child builds its recorder as the `emit` example does (`Recorder::builder()` with a name
//! and a version, then `build()`); the last tests run the `emit` and `axum_service`
//! examples themselves with the variables.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod otlp_support;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use otlp_support::{Receiver, is_child, list, resources_of, run_child, s};
use xray_sdk::config::TracesExporter;
use xray_sdk::testing::UdpCapture;
use xray_sdk::{Record, Recorder};

fn var(name: &str) -> String {
    std::env::var(name).unwrap()
}

/// What the children record: a segment with two subsegments, forced sampled.
fn record(recorder: &Recorder) -> String {
    let seg = recorder.segment("emit-example").sampled(true).begin();
    seg.annotate("customer_tier", "gold");
    seg.begin_subsegment("validate").end();
    seg.begin_subsegment("price").end();
    let header = seg.downstream_header().to_string();
    seg.end();
    recorder.flush(Duration::from_secs(10)).unwrap();
    header
}

fn emit_like() -> Recorder {
    Recorder::builder()
        .service_name("emit-example")
        .service_version("1.0.0")
        .build()
        .unwrap()
}

#[test]
fn child_sends_otlp_as_the_environment_says() {
    if !is_child() {
        return;
    }
    let recorder = emit_like();
    record(&recorder);
    let s = recorder.stats();
    assert_eq!(
        (s.spans_exported, s.sent, s.spans_dropped),
        (3, 1, 0),
        "{s:?}"
    );
}

#[test]
fn the_otel_variables_choose_and_configure_otlp() {
    let receiver = Receiver::start(vec![]);
    let udp = UdpCapture::start().unwrap();
    run_child(
        "child_sends_otlp_as_the_environment_says",
        &[
            ("OTEL_TRACES_EXPORTER", "otlp".into()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{}/", receiver.base()),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-team=checkout,authorization=Bearer%20abc".into(),
            ),
            ("OTEL_SERVICE_NAME", "orders-env".into()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=staging,team=a%2Cb".into(),
            ),
            ("AWS_XRAY_DAEMON_ADDRESS", udp.daemon_address()),
        ],
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/v1/traces");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("x-team"), Some("checkout"));
    assert_eq!(r.header("authorization"), Some("Bearer abc"));
    let res = &resources_of(&r.request)[0].attributes;
    assert_eq!(s(res, "service.name"), Some("orders-env"));
    assert_eq!(s(res, "service.version"), Some("1.0.0"));
    assert_eq!(s(res, "deployment.environment.name"), Some("staging"));
    assert_eq!(s(res, "team"), Some("a,b"));
    let spans = r.spans();
    assert_eq!(spans.len(), 3);
    let seg = spans.iter().find(|s| s.name == "emit-example").unwrap();
    // Named apart from OTEL_SERVICE_NAME: the segment's name travels with it.
    assert_eq!(
        s(&seg.attributes, "aws.local.service"),
        Some("emit-example")
    );
    assert_eq!(
        list(&seg.attributes, "aws.xray.annotations").unwrap(),
        ["customer_tier"]
    );
    assert!(
        udp.drain(Duration::from_millis(200)).is_empty(),
        "nothing over UDP"
    );
}

#[test]
fn child_traces_endpoint_is_used_as_it_is() {
    if !is_child() {
        return;
    }
    record(&emit_like());
}

#[test]
fn the_traces_endpoint_wins_and_is_used_as_it_is() {
    let receiver = Receiver::start(vec![]);
    run_child(
        "child_traces_endpoint_is_used_as_it_is",
        &[
            ("OTEL_TRACES_EXPORTER", "OTLP".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/".into()),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/custom/path", receiver.base()),
            ),
        ],
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/custom/path");
    assert_eq!(
        got[0].header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(got[0].header("content-encoding"), None);
}

#[test]
fn child_grpc_is_refused() {
    if !is_child() {
        return;
    }
    let err = Recorder::builder().build().unwrap_err();
    assert_eq!(err.setting(), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
    assert_eq!(err.value(), "grpc");
    assert!(
        err.expected().contains("http/protobuf or http/json"),
        "{err}"
    );
    assert!(err.to_string().contains("gRPC is not supported"), "{err}");
    // `from_env` never fails: it logs and falls back to the defaults (UDP).
    let fallback = Recorder::from_env();
    assert!(fallback.is_enabled());
    record(&fallback);
    assert_eq!(fallback.stats().spans_exported, 0);
    assert_eq!(fallback.stats().sent, 1);
}

#[test]
fn grpc_is_refused_by_build() {
    let udp = UdpCapture::start().unwrap();
    run_child(
        "child_grpc_is_refused",
        &[
            ("OTEL_TRACES_EXPORTER", "otlp".into()),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc".into()),
            ("AWS_XRAY_DAEMON_ADDRESS", udp.daemon_address()),
        ],
    );
    assert_eq!(udp.documents(1, Duration::from_secs(2)).len(), 1);
}

#[test]
fn child_none_records_but_sends_nothing() {
    if !is_child() {
        return;
    }
    let recorder = emit_like();
    let header = record(&recorder);
    assert!(header.contains("Sampled=1"), "{header}");
    let s = recorder.stats();
    assert_eq!(
        (s.queued, s.processed, s.sent, s.spans_exported),
        (1, 1, 0, 0),
        "{s:?}"
    );
}

#[test]
fn none_sends_nothing_anywhere() {
    let receiver = Receiver::start(vec![]);
    let udp = UdpCapture::start().unwrap();
    run_child(
        "child_none_records_but_sends_nothing",
        &[
            ("OTEL_TRACES_EXPORTER", "none".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base()),
            ("AWS_XRAY_DAEMON_ADDRESS", udp.daemon_address()),
        ],
    );
    assert!(udp.drain(Duration::from_millis(200)).is_empty());
    assert!(receiver.received().is_empty());
}

#[test]
fn child_udp_segments() {
    if !is_child() {
        return;
    }
    let code_says = var("CODE_SAYS");
    let mut b = Recorder::builder()
        .service_name("emit-example")
        .exporter(TracesExporter::parse(&code_says).unwrap());
    if std::env::var_os("IGNORE_ENV").is_some() {
        b = b.ignore_env().daemon_address(var("CODE_DAEMON"));
    }
    let recorder = b.build().unwrap();
    record(&recorder);
    let s = recorder.stats();
    assert_eq!((s.sent, s.spans_exported), (1, 0), "{s:?}");
}

#[test]
fn unset_or_xray_keeps_udp_segments_and_the_environment_wins_over_code() {
    let receiver = Receiver::start(vec![]);
    let udp = UdpCapture::start().unwrap();
    let common = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base()),
        ("AWS_XRAY_DAEMON_ADDRESS", udp.daemon_address()),
    ];
    // Unset: UDP.
    let mut vars = common.to_vec();
    vars.push(("CODE_SAYS", "xray".into()));
    run_child("child_udp_segments", &vars);
    // `xray` in the environment beats OTLP chosen in code.
    let mut vars = common.to_vec();
    vars.push(("OTEL_TRACES_EXPORTER", "xray".into()));
    vars.push(("CODE_SAYS", "otlp".into()));
    run_child("child_udp_segments", &vars);
    // `ignore_env()`: the environment's `otlp` is not read.
    let mut vars = common.to_vec();
    vars.push(("OTEL_TRACES_EXPORTER", "otlp".into()));
    vars.push(("CODE_SAYS", "xray".into()));
    vars.push(("IGNORE_ENV", "1".into()));
    vars.push(("CODE_DAEMON", udp.daemon_address()));
    run_child("child_udp_segments", &vars);
    assert_eq!(udp.documents(3, Duration::from_secs(2)).len(), 3);
    assert!(receiver.received().is_empty());
}

/// An example binary built next to this test (`cargo test` builds the examples of the
/// packages it tests); `None` when it was not built (a single test target was asked for).
fn example(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent()?.parent()?.join("examples").join(name);
    path.exists().then_some(path)
}

fn skip(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} was not built next to the tests (run `cargo test --workspace --all-features`)"
    );
    println!("skipped: {what} not built (run the whole workspace's tests)");
}

#[test]
fn the_emit_example_honours_the_variables() {
    let Some(emit) = example("emit") else {
        return skip("the emit example");
    };
    let receiver = Receiver::start(vec![]);
    let out = std::process::Command::new(emit)
        .env_clear()
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base())
        .env("OTEL_SERVICE_NAME", "emit-otlp")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !stdout.contains("sent as OpenTelemetry spans") && receiver.received().is_empty() {
        // The binary next to the tests was built by a run without the `otlp` feature (it
        // warned and sent UDP segments, as documented).
        return skip("the emit example built with the `otlp` feature");
    }
    let spans = receiver.spans();
    // The segment, its 4 named subsegments and the 150 price rules.
    assert_eq!(spans.len(), 155, "{stdout}");
    let res = &resources_of(&receiver.received()[0].request)[0].attributes;
    assert_eq!(s(res, "service.name"), Some("emit-otlp"));
    assert!(stdout.contains("spans exported: 155"), "{stdout}");
}

#[test]
fn the_axum_service_example_honours_the_variables() {
    let Some(service) = example("axum_service") else {
        return skip("the axum_service example");
    };
    let receiver = Receiver::start(vec![]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(service)
        .env_clear()
        .env("PORT", port.to_string())
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url())
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut c) => {
                c.write_all(
                    b"GET /orders/7 HTTP/1.1\r\nHost: localhost\r\nX-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
                let mut text = String::new();
                let _ = c.read_to_string(&mut text);
                break text;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = child.kill();
                panic!("the example did not listen: {e}");
            }
        }
    };
    let spans = receiver.wait_for(1, Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let spans: Vec<_> = spans.iter().flat_map(|r| r.spans()).collect();
    let seg = spans
        .iter()
        .find(|s| s.kind == opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32)
        .unwrap();
    assert_eq!(
        otlp_support::hex(&seg.trace_id),
        "5759e988bd862e3fe1be46a994272793"
    );
    assert_eq!(s(&seg.attributes, "http.request.method"), Some("GET"));
}
