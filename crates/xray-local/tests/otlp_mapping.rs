//! Every row of the span-to-segment mapping (docs/ARCHITECTURE.md, "OTLP
//! intake"), through real HTTP requests to a running xray-local: the same
//! spans sent as protobuf, as OTLP/JSON, and both gzipped, each under its own
//! trace ID, then read back as the stored documents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::otlp::*;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Status;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{Value, json};

/// A random-looking W3C trace ID (its first 8 hex digits are no recent
/// time), one per wire form.
fn trace(variant: u8) -> Vec<u8> {
    let mut t = vec![0xc3, 0x7e, 0x19, variant];
    t.extend((0..12u8).map(|n| n.wrapping_mul(37) ^ variant));
    t
}

fn sid(variant: u8, n: u8) -> Vec<u8> {
    vec![variant, 0x51, 0, 0, 0, 0, 0, n]
}

fn id_hex(variant: u8, n: u8) -> String {
    hex(&sid(variant, n))
}

fn error_status(message: &str) -> Option<Status> {
    Some(Status {
        code: StatusCode::Error as i32,
        message: message.into(),
    })
}

fn exception(ty: &str, message: &str, stack: &str) -> Event {
    Event {
        name: "exception".into(),
        attributes: vec![
            kv("exception.type", s(ty)),
            kv("exception.message", s(message)),
            kv("exception.stacktrace", s(stack)),
        ],
        ..Event::default()
    }
}

const PY_TRACEBACK: &str = "Traceback (most recent call last):\n  File \"/srv/app.py\", line 40, in checkout\n    reserve(cart)\n  File \"/srv/stock.py\", line 12, in reserve\n    raise ValueError(\"out of stock\")\nValueError: out of stock\n";
const JAVA_TRACE: &str = "java.lang.IllegalStateException: ledger closed\n\tat com.shop.Ledger.post(Ledger.java:88)\n\tat com.shop.Api.handle(Api.java:21)\n";

fn checkout_resource() -> Vec<KeyValue> {
    vec![
        kv("service.name", s("checkout")),
        kv("service.version", s("2.0.1")),
        kv("deployment.environment", s("test")),
        kv("telemetry.sdk.name", s("opentelemetry")),
        kv("telemetry.sdk.language", s("python")),
        kv("telemetry.sdk.version", s("1.2.3")),
        kv("cloud.provider", s("aws")),
        kv("cloud.platform", s("aws_ecs")),
        kv("cloud.account.id", s("123456789012")),
        kv("cloud.availability_zone", s("eu-west-1b")),
        kv("container.name", s("checkout")),
        kv("aws.ecs.launchtype", s("fargate")),
        kv(
            "aws.ecs.cluster.arn",
            s("arn:aws:ecs:eu-west-1:123456789012:cluster/shop"),
        ),
        kv(
            "aws.ecs.task.arn",
            s("arn:aws:ecs:eu-west-1:123456789012:task/shop/1"),
        ),
        kv("aws.ecs.task.family", s("checkout")),
        kv(
            "aws.log.group.arns",
            arr(&["arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/checkout:*"]),
        ),
    ]
}

/// The request every wire form carries: four resources, spans for every
/// row, three invalid spans.
fn request(v: u8, t0: f64) -> ExportTraceServiceRequest {
    let t = trace(v);
    let id = |n| sid(v, n);
    let sp = |n: u8, parent: Option<u8>, name: &str, kind: SpanKind, attrs: Vec<KeyValue>| {
        let parent = parent.map(id);
        span(
            &t,
            &id(n),
            parent.as_deref(),
            name,
            kind,
            t0 + f64::from(n) * 0.01,
            0.5,
            attrs,
        )
    };
    let caller = [0xaa; 8];

    let mut root = span(
        &t,
        &id(1),
        Some(&caller),
        "GET /checkout",
        SpanKind::Server,
        t0,
        1.0,
        vec![
            kv("http.request.method", s("GET")),
            kv("url.scheme", s("http")),
            kv("server.address", s("shop.local")),
            kv("server.port", i(8080)),
            kv("url.path", s("/checkout")),
            kv("url.query", s("id=7")),
            kv("user_agent.original", s("curl/8")),
            kv("client.address", s("203.0.113.9")),
            kv("http.response.status_code", i(503)),
            kv("enduser.id", s("alice")),
            kv(
                "aws.xray.annotations",
                arr(&[
                    "tier",
                    "order.count",
                    "otel.resource.deployment.environment",
                ]),
            ),
            kv("tier", s("gold")),
            kv("order.count", i(3)),
            kv("plain", s("x")),
            kv("ratio", d(0.5)),
            kv("aws.xray.metadata.shop", s(r#"{"cart":{"items":2}}"#)),
            kv("aws.xray.metadata.default", s(r#"{"note":"n"}"#)),
            kv("aws.xray.metadata.broken", s("{not json")),
        ],
    );
    root.status = error_status("upstream failed");
    root.events = vec![exception("ValueError", "out of stock", PY_TRACEBACK)];

    let mut internal_err = sp(8, Some(1), "template", SpanKind::Internal, vec![]);
    internal_err.status = error_status("bad template");
    let mut not_found = sp(
        9,
        Some(1),
        "GET",
        SpanKind::Client,
        vec![
            kv("http.method", s("GET")),
            kv("http.scheme", s("https")),
            kv("net.peer.name", s("api.example.com")),
            kv("net.peer.port", i(443)),
            kv("http.target", s("/v1/x")),
            kv("http.status_code", i(404)),
        ],
    );
    not_found.status = error_status("not found");
    let mut linked = sp(
        10,
        Some(2),
        "GET /stock",
        SpanKind::Server,
        vec![kv("aws.local.service", s("inventory-api"))],
    );
    linked.links = vec![Link {
        trace_id: vec![0x11; 16],
        span_id: vec![0x22; 8],
        attributes: vec![kv("link.kind", s("follows"))],
        ..Link::default()
    }];
    let mut old = sp(16, None, "old", SpanKind::Server, vec![]);
    old.start_time_unix_nano = ((t0 - 20.0 * 86_400.0) * 1e9) as u64;
    let mut zero_trace = sp(17, None, "zero", SpanKind::Server, vec![]);
    zero_trace.trace_id = vec![0; 16];
    let mut short_id = sp(18, None, "short", SpanKind::Server, vec![]);
    short_id.span_id = vec![1, 2, 3];
    let mut payment = sp(
        15,
        None,
        "POST /pay",
        SpanKind::Server,
        vec![
            kv("http.method", s("POST")),
            kv("http.scheme", s("http")),
            kv("http.host", s("shop.local:8080")),
            kv("http.target", s("/pay")),
            kv("http.status_code", s("500")),
            kv("http.client_ip", s("198.51.100.1")),
            kv("net.peer.ip", s("10.0.0.1")),
            kv("messaging.message_payload_size_bytes", i(42)),
        ],
    );
    payment.events = vec![];

    let checkout = vec![
        root,
        sp(
            2,
            Some(1),
            "GET",
            SpanKind::Client,
            vec![
                kv("http.request.method", s("GET")),
                kv("url.full", s("http://inventory.local/stock?sku=1")),
                kv("http.response.status_code", i(429)),
                kv("peer.service", s("inventory")),
            ],
        ),
        sp(
            3,
            Some(1),
            "DynamoDB.PutItem",
            SpanKind::Client,
            vec![
                kv("rpc.system", s("aws-api")),
                kv("rpc.service", s("DynamoDB")),
                kv("rpc.method", s("PutItem")),
                kv("aws.remote.service", s("AWS::DynamoDB")),
                kv("aws.request_id", s("REQ1")),
                kv("aws.dynamodb.table_names", arr(&["orders"])),
                kv("aws.region", s("eu-west-1")),
                kv("http.response.status_code", i(200)),
            ],
        ),
        sp(
            4,
            Some(1),
            "DynamoDB.BatchGetItem",
            SpanKind::Client,
            vec![
                kv("rpc.system", s("aws-api")),
                kv("rpc.service", s("DynamoDB")),
                kv("rpc.method", s("BatchGetItem")),
                kv("aws.dynamodb.table_names", arr(&["a", "b"])),
                kv("cloud.region", s("us-east-2")),
            ],
        ),
        sp(
            5,
            Some(1),
            "SQS.SendMessage",
            SpanKind::Producer,
            vec![
                kv("rpc.system", s("aws-api")),
                kv("rpc.service", s("SQS")),
                kv("rpc.method", s("SendMessage")),
                kv(
                    "aws.queue_url",
                    s("https://sqs.eu-west-1.amazonaws.com/123456789012/q"),
                ),
            ],
        ),
        sp(
            6,
            Some(1),
            "SELECT orders",
            SpanKind::Client,
            vec![
                kv("db.system", s("postgresql")),
                kv("db.name", s("orders")),
                kv("db.connection_string", s("postgresql://pg.local:5432")),
                kv("db.user", s("app")),
                kv("db.statement", s("SELECT 1")),
            ],
        ),
        sp(7, Some(1), "render<html>", SpanKind::Internal, vec![]),
        internal_err,
        not_found,
        linked,
        sp(
            11,
            Some(1),
            "receive",
            SpanKind::Consumer,
            vec![kv("aws.service", s("SQS"))],
        ),
        sp(
            12,
            None,
            "POST",
            SpanKind::Client,
            vec![
                kv("aws.span.kind", s("LOCAL_ROOT")),
                kv("aws.local.service", s("worker")),
                kv("aws.remote.service", s("billing")),
                kv("http.request.method", s("POST")),
                kv("url.full", s("http://billing.local/charge")),
            ],
        ),
        sp(13, None, "nightly job", SpanKind::Internal, vec![]),
        sp(
            14,
            Some(1),
            "grpc",
            SpanKind::Client,
            vec![
                kv("rpc.system", s("grpc")),
                kv("rpc.service", s("shop.Pricing")),
            ],
        ),
        payment,
        old,
        zero_trace,
        short_id,
    ];
    let mut java = sp(20, None, "POST /post", SpanKind::Server, vec![]);
    java.events = vec![exception(
        "java.lang.IllegalStateException",
        "ledger closed",
        JAVA_TRACE,
    )];
    java.status = error_status("");
    let ledger = resource_spans(
        vec![
            kv("service.name", s("ledger")),
            kv("cloud.provider", s("aws")),
            kv("cloud.platform", s("aws_ec2")),
            kv("host.id", s("i-0abc")),
            kv("host.type", s("m5.large")),
            kv("host.image.id", s("ami-1")),
            kv("cloud.availability_zone", s("eu-west-1a")),
            kv("k8s.cluster.name", s("prod")),
            kv("k8s.pod.name", s("ledger-1")),
            kv("container.id", s("cid")),
            kv("container.image.tag", s("7.1")),
            kv("telemetry.sdk.name", s("opentelemetry")),
            kv("telemetry.sdk.language", s("java")),
            kv("telemetry.sdk.version", s("1.40")),
            kv("telemetry.auto.version", s("2.0")),
        ],
        vec![java],
    );
    let gcp = resource_spans(
        vec![
            kv("service.name", s("gcp-svc")),
            kv("cloud.provider", s("gcp")),
            kv("cloud.platform", s("gcp_compute_engine")),
        ],
        vec![sp(
            21,
            None,
            "GET /",
            SpanKind::Server,
            vec![kv("aws.request_id", s("R"))],
        )],
    );
    let beanstalk = resource_spans(
        vec![
            kv("service.name", s("eb")),
            kv("cloud.provider", s("aws")),
            kv("cloud.platform", s("aws_elastic_beanstalk")),
            kv("service.namespace", s("prod-env")),
            kv("service.instance.id", s("42")),
            kv("service.version", s("v9")),
            kv("aws.log.group.names", s("/eb/a&/eb/b")),
        ],
        vec![sp(22, None, "GET /eb", SpanKind::Server, vec![])],
    );
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans(checkout_resource(), checkout),
            ledger,
            gcp,
            beanstalk,
        ],
    }
}

/// Documents the spans above become: 21 spans, of which 16, 17 and 18 are
/// rejected, and 12 gives two documents.
const DOCUMENTS: usize = 19;
const REJECTED: i64 = 3;

fn check(v: u8, docs: &HashMap<String, Value>, t0: f64) {
    let d = |n: u8| {
        docs.get(&id_hex(v, n))
            .unwrap_or_else(|| panic!("span {n} of variant {v} was stored: {:?}", docs.keys()))
    };
    let trace_id = xray_trace_id(&trace(v));

    // Trace and entity IDs, parents, times, the segment/subsegment rule.
    let root = d(1);
    assert_eq!(root["trace_id"], trace_id.as_str());
    assert_eq!(root["id"], id_hex(v, 1).as_str());
    assert_eq!(
        root["parent_id"], "aaaaaaaaaaaaaaaa",
        "SERVER with a remote parent"
    );
    assert!(root.get("type").is_none(), "SERVER spans are segments");
    assert!((root["start_time"].as_f64().unwrap() - t0).abs() < 1e-6);
    assert!((root["end_time"].as_f64().unwrap() - (t0 + 1.0)).abs() < 1e-6);
    for n in [2, 3, 4, 5, 6, 7, 8, 9, 11, 14] {
        assert_eq!(d(n)["type"], "subsegment", "span {n}");
        assert_eq!(d(n)["parent_id"], id_hex(v, 1).as_str(), "span {n}");
        assert_eq!(d(n)["trace_id"], trace_id.as_str(), "span {n}");
    }
    assert!(d(10).get("type").is_none(), "a SERVER child is a segment");
    assert_eq!(d(10)["parent_id"], id_hex(v, 2).as_str());
    assert!(
        d(13).get("type").is_none() && d(13).get("parent_id").is_none(),
        "root INTERNAL"
    );

    // Names, in the converter's order.
    assert_eq!(root["name"], "checkout", "SERVER: service.name");
    assert_eq!(d(2)["name"], "inventory", "peer.service");
    assert_eq!(d(3)["name"], "DynamoDB", "aws.remote.service without AWS::");
    assert_eq!(d(4)["name"], "DynamoDB", "rpc.service");
    assert_eq!(d(6)["name"], "orders@pg.local", "db.name@host");
    assert_eq!(
        d(7)["name"],
        "renderhtml",
        "span name, invalid characters dropped"
    );
    assert_eq!(d(9)["name"], "api.example.com", "net.peer.name");
    assert_eq!(d(10)["name"], "inventory-api", "aws.local.service");
    assert_eq!(d(11)["name"], "SQS", "aws.service");
    assert_eq!(d(13)["name"], "nightly job", "INTERNAL root: span name");
    assert_eq!(d(14)["name"], "shop.Pricing", "rpc.service");
    assert_eq!(d(15)["name"], "checkout");

    // Namespaces.
    assert_eq!(d(2)["namespace"], "remote");
    assert_eq!(d(3)["namespace"], "aws");
    assert_eq!(d(5)["namespace"], "aws", "aws-api PRODUCER");
    assert_eq!(d(6)["namespace"], "remote");
    assert!(d(7).get("namespace").is_none());
    assert_eq!(d(11)["namespace"], "aws", "named after aws.service");

    // http: new names, server URL assembly, forwarded client IP.
    assert_eq!(
        root["http"],
        json!({"request": {"method": "GET", "url": "http://shop.local:8080/checkout?id=7",
                           "user_agent": "curl/8", "client_ip": "203.0.113.9", "x_forwarded_for": true},
               "response": {"status": 503}})
    );
    assert_eq!(
        d(2)["http"]["request"]["url"],
        "http://inventory.local/stock?sku=1"
    );
    // Old names, client URL assembly (port 443 left out for https).
    assert_eq!(
        d(9)["http"],
        json!({"request": {"method": "GET", "url": "https://api.example.com/v1/x"}, "response": {"status": 404}})
    );
    // Old names, server: http.host with its port; a peer IP means no X-Forwarded-For.
    assert_eq!(
        d(15)["http"],
        json!({"request": {"method": "POST", "url": "http://shop.local:8080/pay", "client_ip": "198.51.100.1"},
               "response": {"status": 500, "content_length": 42}})
    );

    // Flags.
    let flags = |n: u8| {
        let f = |k: &str| d(n).get(k).and_then(Value::as_bool).unwrap_or(false);
        (f("error"), f("throttle"), f("fault"))
    };
    assert_eq!(flags(1), (false, false, true), "503");
    assert_eq!(flags(2), (true, true, false), "429");
    assert_eq!(flags(3), (false, false, false), "200");
    assert_eq!(flags(8), (false, false, true), "ERROR status, no code");
    assert_eq!(flags(9), (true, false, false), "404 with ERROR status");
    assert_eq!(flags(15), (false, false, true), "500 as a string");

    // Cause: exception events (stack read as the resource's language), or
    // the status message.
    let ex = &root["cause"]["exceptions"][0];
    assert_eq!(ex["type"], "ValueError");
    assert_eq!(ex["message"], "out of stock");
    assert_eq!(
        ex["stack"][0],
        json!({"path": "/srv/stock.py", "line": 12, "label": "reserve"})
    );
    assert_eq!(
        ex["stack"][1],
        json!({"path": "/srv/app.py", "line": 40, "label": "checkout"})
    );
    assert_eq!(ex["id"].as_str().map(str::len), Some(16));
    assert!(ex.get("remote").is_none(), "raised in a SERVER span");
    assert_eq!(d(8)["cause"]["exceptions"][0]["message"], "bad template");
    assert_eq!(d(9)["cause"]["exceptions"][0]["message"], "not found");
    let jex = &d(20)["cause"]["exceptions"][0];
    assert_eq!(jex["type"], "java.lang.IllegalStateException");
    assert_eq!(
        jex["stack"][0],
        json!({"path": "Ledger.java", "line": 88, "label": "com.shop.Ledger.post"})
    );
    assert_eq!(flags(20), (false, false, true));

    // user.
    assert_eq!(root["user"], "alice");

    // aws: the call's fields.
    let aws3 = &d(3)["aws"];
    assert_eq!(aws3["operation"], "PutItem");
    assert_eq!(aws3["request_id"], "REQ1");
    assert_eq!(aws3["table_name"], "orders");
    assert_eq!(aws3["remote_region"], "eu-west-1");
    assert_eq!(aws3["account_id"], "123456789012", "from cloud.account.id");
    assert_eq!(d(4)["aws"]["table_names"], json!(["a", "b"]));
    assert_eq!(
        d(4)["aws"]["remote_region"],
        "us-east-2",
        "cloud.region on the span"
    );
    assert_eq!(
        d(5)["aws"]["queue_url"],
        "https://sqs.eu-west-1.amazonaws.com/123456789012/q"
    );
    assert_eq!(d(5)["aws"]["operation"], "SendMessage");
    assert!(
        d(14)["aws"].get("operation").is_none(),
        "rpc.service alone is no operation"
    );
    assert_eq!(d(14)["namespace"], "remote");
}

fn check_resources(v: u8, docs: &HashMap<String, Value>) {
    let d = |n: u8| {
        docs.get(&id_hex(v, n))
            .unwrap_or_else(|| panic!("span {n}"))
    };
    let root = d(1);
    // aws: the platform's fields from the resource.
    let aws = &root["aws"];
    assert_eq!(
        aws["ecs"],
        json!({"container": "checkout", "availability_zone": "eu-west-1b", "launch_type": "fargate",
               "cluster_arn": "arn:aws:ecs:eu-west-1:123456789012:cluster/shop",
               "task_arn": "arn:aws:ecs:eu-west-1:123456789012:task/shop/1", "task_family": "checkout"})
    );
    assert_eq!(
        aws["cloudwatch_logs"],
        json!([{"log_group": "/ecs/checkout", "arn": "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/checkout:*"}])
    );
    assert_eq!(
        aws["xray"],
        json!({"sdk": "opentelemetry for python", "sdk_version": "1.2.3", "auto_instrumentation": false})
    );
    assert_eq!(root["origin"], "AWS::ECS::Fargate");
    assert_eq!(root["service"], json!({"version": "2.0.1"}));
    let ledger = d(20);
    assert_eq!(ledger["origin"], "AWS::EC2::Instance");
    assert_eq!(
        ledger["aws"]["ec2"],
        json!({"instance_id": "i-0abc", "availability_zone": "eu-west-1a", "instance_size": "m5.large", "ami_id": "ami-1"})
    );
    assert_eq!(
        ledger["aws"]["eks"],
        json!({"cluster_name": "prod", "pod": "ledger-1", "container_id": "cid"})
    );
    assert_eq!(ledger["aws"]["xray"]["auto_instrumentation"], true);
    assert_eq!(
        ledger["service"],
        json!({"version": "7.1"}),
        "container.image.tag"
    );
    let gcp = d(21);
    assert!(
        gcp.get("aws").is_none() && gcp.get("origin").is_none(),
        "another cloud: {gcp}"
    );
    assert_eq!(
        gcp["metadata"]["default"]["aws.request_id"], "R",
        "not read outside AWS"
    );
    let eb = d(22);
    assert_eq!(eb["origin"], "AWS::ElasticBeanstalk::Environment");
    assert_eq!(
        eb["aws"]["elastic_beanstalk"],
        json!({"environment_name": "prod-env", "version_label": "v9", "deployment_id": 42})
    );
    assert_eq!(
        eb["aws"]["cloudwatch_logs"],
        json!([{"log_group": "/eb/a"}, {"log_group": "/eb/b"}])
    );

    // sql.
    assert_eq!(
        d(6)["sql"],
        json!({"url": "SELECT orders", "connection_string": "postgresql://pg.local:5432/orders",
               "database_type": "postgresql", "user": "app", "sanitized_query": "SELECT 1"})
    );
    assert!(
        d(6).get("metadata").is_none(),
        "db.* read into sql stay out of the metadata: {}",
        d(6)
    );

    // Annotations (keys listed in aws.xray.annotations; dots become
    // underscores), metadata (the rest; aws.xray.metadata.<ns> as
    // namespaces), resource attributes on segments only.
    assert_eq!(
        root["annotations"],
        json!({"tier": "gold", "order_count": 3, "otel_resource_deployment_environment": "test"})
    );
    let meta = &root["metadata"];
    assert_eq!(meta["shop"], json!({"cart": {"items": 2}}));
    let default = meta["default"].as_object().unwrap();
    assert_eq!(default["plain"], "x");
    assert_eq!(default["ratio"], 0.5);
    assert_eq!(
        default["note"], "n",
        "aws.xray.metadata.default merges into default"
    );
    assert_eq!(default["aws.xray.metadata.broken"], "{not json");
    assert_eq!(default["otel.resource.service.name"], "checkout");
    assert_eq!(default["otel.resource.cloud.platform"], "aws_ecs");
    for consumed in [
        "tier",
        "order.count",
        "aws.xray.annotations",
        "enduser.id",
        "http.request.method",
        "url.path",
        "client.address",
        "otel.resource.deployment.environment",
    ] {
        assert!(
            !default.contains_key(consumed),
            "{consumed} in metadata: {default:?}"
        );
    }
    assert_eq!(
        d(2)["metadata"]["default"],
        json!({"peer.service": "inventory"}),
        "no resource on subsegments"
    );
    assert!(
        d(13)["metadata"]["default"]["otel.resource.service.name"].is_string(),
        "root INTERNAL is a segment"
    );

    // Links.
    assert_eq!(
        d(10)["links"],
        json!([{"trace_id": "1-11111111-111111111111111111111111", "id": "2222222222222222",
                "attributes": {"link.kind": "follows"}}])
    );

    // A CLIENT local root: a service segment and the call under it.
    let call = d(12);
    assert_eq!(call["name"], "billing");
    assert_eq!(call["type"], "subsegment");
    assert_eq!(call["namespace"], "remote");
    assert_eq!(
        call["http"]["request"]["url"],
        "http://billing.local/charge"
    );
    let service = &docs[call["parent_id"].as_str().unwrap()];
    assert_eq!(service["name"], "worker");
    assert!(service.get("http").is_none() && service.get("type").is_none());
    assert_eq!(service["origin"], "AWS::ECS::Fargate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_over_protobuf_json_and_gzip() {
    let server = start_default().await;
    let t0 = now() - 60.0;
    for (k, wire) in Wire::ALL.into_iter().enumerate() {
        let v = k as u8 + 1;
        let rejected = export(&server, wire, &request(v, t0));
        assert_eq!(rejected, REJECTED, "{wire:?}");
        let docs = stored_docs(&server, &xray_trace_id(&trace(v)));
        assert_eq!(docs.len(), DOCUMENTS, "{wire:?}: {:?}", docs.keys());
        check(v, &docs, t0);
        check_resources(v, &docs);
    }
    // Random W3C trace IDs are no problem for spans (the endpoint takes
    // them); each wire form stored the same documents.
    let validation = get_json(&server, "/api/validation?limit=1000");
    let codes = &validation["Counts"]["ByCode"];
    assert_eq!(
        codes
            .get("trace_id_too_old")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        0,
        "{codes}"
    );
    assert_eq!(
        codes
            .get("trace_id_in_future")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        0,
        "{codes}"
    );
    let stats = get_json(&server, "/api/stats");
    let otlp = &stats["Intake"]["Otlp"];
    assert_eq!(otlp["Requests"], 4);
    assert_eq!(otlp["Spans"], 4 * 21);
    assert_eq!(otlp["Documents"], 4 * DOCUMENTS);
    assert_eq!(otlp["SpansRejected"]["out_of_time_range"], 4);
    assert_eq!(otlp["SpansRejected"]["invalid_trace_id"], 4);
    assert_eq!(otlp["SpansRejected"]["invalid_span_id"], 4);
    assert_eq!(stats["Intake"]["Accepted"], 4 * DOCUMENTS);
    server.shutdown().await;
}

/// OTLP/JSON as the specification writes it (hex IDs, integer enums,
/// 64-bit integers as strings), typed by hand rather than by a serializer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_form_json() {
    let server = start_default().await;
    let start = (now() as u64 - 30) * 1_000_000_000;
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"orders"}}}}]}},
           "scopeSpans":[{{"scope":{{"name":"manual"}},"spans":[
             {{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"",
               "name":"GET /orders","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}",
               "attributes":[{{"key":"http.response.status_code","value":{{"intValue":"404"}}}},
                             {{"key":"aws.xray.annotations","value":{{"arrayValue":{{"values":[{{"stringValue":"count"}}]}}}}}},
                             {{"key":"count","value":{{"intValue":7}}}},
                             {{"key":"flag","value":{{"boolValue":true}}}}],
               "status":{{"code":2,"message":"missing"}},"unknownField":1}}]}}]}}]}}"#,
        end = start + 250_000_000
    );
    let r = post_otlp(&server, Wire::Json, body.as_bytes());
    assert_eq!((r.status, r.text().as_str()), (200, "{}"));
    let docs = stored_docs(&server, "1-5b8efff7-98038103d269b633813fc60c");
    let doc = &docs["eee19b7ec3c1b174"];
    assert_eq!(doc["name"], "orders");
    assert_eq!(doc["http"]["response"]["status"], 404);
    assert_eq!(doc["error"], true);
    assert!(doc.get("fault").is_none());
    assert_eq!(doc["annotations"], json!({"count": 7}));
    assert_eq!(doc["metadata"]["default"]["flag"], true);
    assert!(
        (doc["end_time"].as_f64().unwrap() - doc["start_time"].as_f64().unwrap() - 0.25).abs()
            < 1e-6
    );
    server.shutdown().await;
}
