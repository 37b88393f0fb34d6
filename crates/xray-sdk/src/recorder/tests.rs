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

#[test]
fn otel_traces_exporter_is_read_and_none_sends_nothing() {
    let (env, errors) = EnvConfig::read(|k| (k == "OTEL_TRACES_EXPORTER").then(|| "none".into()));
    assert!(errors.is_empty());
    assert_eq!(env.traces_exporter, Some(TracesExporter::None));
    let capture = crate::testing::UdpCapture::start().unwrap();
    let r = Recorder::builder()
        .daemon_address(capture.daemon_address())
        .sampler(sampling::AlwaysSample)
        .centralized_sampling(false)
        .build_with(env)
        .unwrap();
    let s = r.segment("a").begin();
    assert!(s.is_sampled());
    s.end();
    r.flush(Duration::from_secs(1)).unwrap();
    let stats = r.stats();
    assert_eq!((stats.queued, stats.processed, stats.sent), (1, 1, 0));
    assert!(capture.drain(Duration::from_millis(100)).is_empty());
    let (_, errors) = EnvConfig::read(|k| (k == "OTEL_TRACES_EXPORTER").then(|| "zipkin".into()));
    assert_eq!(errors[0].setting(), "OTEL_TRACES_EXPORTER");
}

/// Without the `otlp` feature, asking for OTLP keeps UDP segments (and logs a warning once).
#[cfg(not(feature = "otlp"))]
#[test]
fn otlp_without_the_feature_keeps_udp() {
    let (env, _) = EnvConfig::read(|k| (k == "OTEL_TRACES_EXPORTER").then(|| "otlp".into()));
    let capture = crate::testing::UdpCapture::start().unwrap();
    let r = Recorder::builder()
        .daemon_address(capture.daemon_address())
        .sampler(sampling::AlwaysSample)
        .centralized_sampling(false)
        .build_with(env)
        .unwrap();
    r.segment("a").begin().end();
    r.flush(Duration::from_secs(1)).unwrap();
    assert_eq!(capture.documents(1, Duration::from_secs(2)).len(), 1);
}

#[test]
fn traceparent_setting_and_its_environment() {
    let build = |code: bool, vars: &[(&str, &str)]| {
        let (env, errors) = EnvConfig::read(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        });
        assert!(errors.is_empty());
        Recorder::builder()
            .propagate_traceparent(code)
            .build_with(env)
            .unwrap()
            .propagates_traceparent()
    };
    assert!(!build(false, &[]));
    assert!(build(true, &[]));
    assert!(build(
        false,
        &[("OTEL_PROPAGATORS", "tracecontext,baggage")]
    ));
    assert!(!build(true, &[("OTEL_PROPAGATORS", "xray")]));
    assert!(build(false, &[("OTEL_TRACES_EXPORTER", "otlp")]));
    assert!(build(true, &[("OTEL_TRACES_EXPORTER", "xray")]));
    assert!(!build(
        false,
        &[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_PROPAGATORS", "none")
        ]
    ));
    // Every context of the recorder's traces tells the same, sampled or not.
    let r = Recorder::builder()
        .ignore_env()
        .propagate_traceparent(true)
        .sampler(sampling::NeverSample)
        .build()
        .unwrap();
    let segment = r.segment("a").begin();
    assert!(segment.propagates_traceparent());
    assert!(segment.begin_subsegment("b").propagates_traceparent());
    let facade = r.facade(&TraceHeader::parse(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    ));
    assert!(facade.propagates_traceparent());
    assert!(
        !Recorder::disabled()
            .segment("a")
            .begin()
            .propagates_traceparent()
    );
}

/// An OTLP exporter chosen in code sends `traceparent` too, unless the environment decides.
#[test]
fn an_otlp_exporter_in_code_turns_traceparent_on() {
    let build = |vars: &[(&str, &str)]| {
        let (env, errors) = EnvConfig::read(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        });
        assert!(errors.is_empty());
        Recorder::builder()
            .exporter(TracesExporter::Otlp)
            .sampler(sampling::NeverSample)
            .plugins(crate::plugins::Plugins::none())
            .build_with(env)
            .unwrap()
            .propagates_traceparent()
    };
    assert!(build(&[]));
    assert!(!build(&[("OTEL_PROPAGATORS", "xray")]));
    assert!(!build(&[("OTEL_TRACES_EXPORTER", "xray")]));
}
