//! Tests of `recorder.rs`.

use super::*;
use crate::header::TraceHeader;

#[test]
fn builder_rejects_bad_values() {
    let e = Recorder::builder()
        .ignore_env()
        .daemon_address("nope")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "daemon_address");
    assert!(e.to_string().contains("\"nope\""), "{e}");
    let e = Recorder::builder()
        .ignore_env()
        .queue_capacity(0)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "queue_capacity");
}

#[test]
fn env_overrides_code() {
    let (env, errors) = EnvConfig::read(|k| match k {
        "AWS_XRAY_TRACING_NAME" => Some("from-env".into()),
        "AWS_XRAY_SDK_ENABLED" => Some("false".into()),
        "AWS_XRAY_DAEMON_ADDRESS" => Some("127.0.0.1:2999".into()),
        _ => None,
    });
    assert!(errors.is_empty());
    let r = Recorder::builder()
        .service_name("from-code")
        .daemon_address("127.0.0.1:1")
        .build_with(env)
        .unwrap();
    assert_eq!(r.service_name(), "from-env");
    assert_eq!(r.env_segment_name(), Some("from-env"));
    assert!(!r.is_enabled());
    assert_eq!(r.daemon_address().udp().port, 2999);
}

#[test]
fn header_decisions_are_obeyed() {
    let r = Recorder::builder()
        .ignore_env()
        .sampler(sampling::NeverSample)
        .build()
        .unwrap();
    let h = TraceHeader::parse(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    );
    let s = r.segment("a").header(&h).begin();
    assert!(s.is_sampled());
    assert_eq!(s.trace_id(), h.root().unwrap());
    let h0 = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Lineage=1:a:2");
    let s = r.segment("a").header(&h0).begin();
    assert!(!s.is_sampled());
    assert_eq!(
        s.downstream_header().to_string(),
        format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent={};Sampled=0;Lineage=1:a:2",
            s.id()
        )
    );
    // '?' and absent: the sampler decides (NeverSample here); forcing wins over everything.
    let hq = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?");
    assert!(!r.segment("a").header(&hq).begin().is_sampled());
    assert!(
        r.segment("a")
            .header(&h0)
            .sampled(true)
            .begin()
            .is_sampled()
    );
    assert!(
        !r.segment("a")
            .header(&h)
            .sampled(false)
            .begin()
            .is_sampled()
    );
}
