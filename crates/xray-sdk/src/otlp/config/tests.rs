#![allow(clippy::unwrap_used)]

use super::*;

fn daemon() -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: 2000,
    }
}

fn with(vars: &[(&'static str, &str)]) -> Result<Resolved, ConfigError> {
    let vars: Vec<_> = vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    resolve(&OtlpSettings::new(), &vars, &daemon())
}

fn url(r: &Resolved) -> &str {
    match &r.target {
        Target::Http { url, .. } => url,
        Target::LambdaUdp(_) => panic!("not http"),
    }
}

#[test]
fn endpoints_follow_the_specification() {
    assert_eq!(url(&with(&[]).unwrap()), DEFAULT_ENDPOINT);
    let r = with(&[(ENDPOINT, "http://collector:4318")]).unwrap();
    assert_eq!(url(&r), "http://collector:4318/v1/traces");
    let r = with(&[(ENDPOINT, "http://collector:4318/base/")]).unwrap();
    assert_eq!(url(&r), "http://collector:4318/base/v1/traces");
    let r = with(&[
        (ENDPOINT, "http://ignored:4318"),
        (TRACES_ENDPOINT, "http://collector:4318/custom"),
    ])
    .unwrap();
    assert_eq!(url(&r), "http://collector:4318/custom");
    let r = with(&[(TRACES_ENDPOINT, "http://collector:4318")]).unwrap();
    assert_eq!(url(&r), "http://collector:4318/");
    for bad in [
        "collector:4318",
        "ftp://x/",
        "http:///v1/traces",
        "http://a b/",
    ] {
        let e = with(&[(TRACES_ENDPOINT, bad)]).unwrap_err();
        assert_eq!(e.setting(), TRACES_ENDPOINT, "{bad}");
    }
    // Code gives the endpoint; the environment wins.
    let code = OtlpSettings::new().endpoint("http://code:4318/v1/traces");
    let r = resolve(&code, &[], &daemon()).unwrap();
    assert_eq!(url(&r), "http://code:4318/v1/traces");
    let r = resolve(&code, &[(ENDPOINT, "http://env:1".into())], &daemon()).unwrap();
    assert_eq!(url(&r), "http://env:1/v1/traces");
}

#[test]
fn grpc_is_refused_with_the_supported_values() {
    for var in [PROTOCOL, TRACES_PROTOCOL] {
        let e = with(&[(var, "grpc")]).unwrap_err();
        assert_eq!(e.setting(), var);
        assert_eq!(e.value(), "grpc");
        assert!(e.expected().contains("http/protobuf or http/json"), "{e}");
    }
    assert_eq!(
        with(&[(PROTOCOL, "http/json")]).unwrap().protocol,
        OtlpProtocol::HttpJson
    );
    assert_eq!(
        with(&[(PROTOCOL, "http/json"), (TRACES_PROTOCOL, "http/protobuf")])
            .unwrap()
            .protocol,
        OtlpProtocol::HttpProtobuf
    );
}

#[test]
fn headers_compression_timeout_and_batches() {
    let r = with(&[
        (HEADERS, "a=1, b=x%20y"),
        (TRACES_HEADERS, "A=2"),
        (COMPRESSION, "gzip"),
        (TRACES_TIMEOUT, "2500"),
        (BSP_MAX_QUEUE_SIZE, "100"),
        (BSP_MAX_EXPORT_BATCH_SIZE, "500"),
        (BSP_SCHEDULE_DELAY, "20"),
    ])
    .unwrap();
    assert_eq!(
        r.headers,
        vec![("b".into(), "x y".into()), ("A".into(), "2".into())]
    );
    assert_eq!(r.compression, OtlpCompression::Gzip);
    assert_eq!(r.timeout, Duration::from_millis(2500));
    assert_eq!(r.batch.max_queue_size, 100);
    assert_eq!(r.batch.max_export_batch_size, 100);
    assert_eq!(r.batch.schedule_delay, Duration::from_millis(20));
    assert_eq!(
        with(&[(TIMEOUT, "0")]).unwrap().timeout,
        Duration::from_secs(30)
    );
    for (var, bad) in [
        (HEADERS, "novalue"),
        (HEADERS, "bad key=1"),
        (COMPRESSION, "zstd"),
        (TIMEOUT, "-1"),
        (BSP_MAX_QUEUE_SIZE, "0"),
        (RESOURCE_ATTRIBUTES, "=x"),
    ] {
        assert!(with(&[(var, bad)]).is_err(), "{var}={bad}");
    }
}

#[test]
fn resource_from_the_environment_wins_over_code() {
    let code = OtlpSettings::new()
        .resource_attribute("team", "a")
        .resource_attribute("tier", "web");
    let vars = vec![
        (
            RESOURCE_ATTRIBUTES,
            "team=b,region%2Fzone=eu%2C1".to_owned(),
        ),
        (SERVICE_NAME, "orders".to_owned()),
    ];
    let r = resolve(&code, &vars, &daemon()).unwrap();
    assert_eq!(
        r.resource_attributes,
        vec![
            ("tier".into(), "web".into()),
            ("team".into(), "b".into()),
            ("region/zone".into(), "eu,1".into())
        ]
    );
    assert_eq!(r.service_name.as_deref(), Some("orders"));
}

#[test]
fn sigv4_is_on_for_xray_endpoints_and_by_region() {
    assert_eq!(
        xray_endpoint_region("https://xray.us-west-2.amazonaws.com/v1/traces").as_deref(),
        Some("us-west-2")
    );
    assert_eq!(
        xray_endpoint_region("https://XRAY-FIPS.us-gov-west-1.amazonaws.com:443/v1/traces")
            .as_deref(),
        Some("us-gov-west-1")
    );
    assert_eq!(
        xray_endpoint_region("https://xray.cn-north-1.amazonaws.com.cn/v1/traces").as_deref(),
        Some("cn-north-1")
    );
    for other in [
        "http://xray.us-west-2.amazonaws.com/v1/traces",
        "https://logs.us-west-2.amazonaws.com/v1/traces",
        "https://xray.us-west-2.amazonaws.com.evil.example/v1/traces",
        "https://collector:4318/v1/traces",
    ] {
        assert_eq!(xray_endpoint_region(other), None, "{other}");
    }
    let xray = "https://xray.eu-west-1.amazonaws.com/v1/traces";
    let signed = with(&[(TRACES_ENDPOINT, xray)]);
    let bearer = with(&[
        (TRACES_ENDPOINT, xray),
        (HEADERS, "Authorization=Bearer%20k"),
    ]);
    let by_region = with(&[(env::OTLP_SIGV4_REGION, "us-east-1")]);
    if cfg!(feature = "otlp-sigv4") {
        let region = |r: Resolved| match r.target {
            Target::Http { sigv4_region, .. } => sigv4_region,
            Target::LambdaUdp(_) => None,
        };
        assert_eq!(region(signed.unwrap()).as_deref(), Some("eu-west-1"));
        assert_eq!(region(by_region.unwrap()).as_deref(), Some("us-east-1"));
    } else {
        let e = signed.unwrap_err();
        assert!(e.expected().contains("otlp-sigv4"), "{e}");
        assert!(by_region.is_err());
    }
    // A bearer key (X-Ray API key) replaces SigV4.
    assert!(matches!(
        bearer.unwrap().target,
        Target::Http {
            sigv4_region: None,
            ..
        }
    ));
    assert!(with(&[(env::OTLP_SIGV4_REGION, "us east")]).is_err());
}

#[test]
fn lambda_without_an_endpoint_sends_udp_to_the_daemon() {
    let r = with(&[(env::LAMBDA_FUNCTION_NAME, "fn")]).unwrap();
    assert_eq!(r.target, Target::LambdaUdp(daemon()));
    assert_eq!(r.lambda_function.as_deref(), Some("fn"));
    let r = with(&[
        (env::LAMBDA_FUNCTION_NAME, "fn"),
        (ENDPOINT, "http://collector:4318"),
    ])
    .unwrap();
    assert_eq!(url(&r), "http://collector:4318/v1/traces");
}
