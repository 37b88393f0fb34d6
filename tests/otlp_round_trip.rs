//! The round trip: the same recording sent twice to one xray-local, once as segment documents
//! over UDP and once as OpenTelemetry spans over OTLP/HTTP (protobuf, then JSON with gzip),
//! read back with BatchGetTraces and GetTraceSummaries. What the console shows (names,
//! namespaces, flags, http, aws, sql, annotations, metadata, user, causes, the tree) must be
//! the same whichever way the trace travelled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use xray_local::{Config, Server};
use xray_sdk::model::{Exception, HttpRequest, Namespace, Sql};
use xray_sdk::otlp::{OtlpCompression, OtlpProtocol, OtlpSettings};
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::AlwaysSample;
use xray_sdk::{Record, Recorder, RecorderBuilder, TraceHeader, TracesExporter};

fn builder(server: &Server) -> RecorderBuilder {
    Recorder::builder()
        .ignore_env()
        .service_name("shop")
        .service_version("2.0.1")
        .daemon_address(format!(
            "udp:{} tcp:{}",
            server.udp_addr(),
            server.tcp_addr()
        ))
        .sampler(AlwaysSample)
        .centralized_sampling(false)
        .plugins(Plugins::none())
}

/// An error with a source, as handlers return them.
#[derive(Debug)]
struct Checkout(std::io::Error);

impl std::fmt::Display for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("checkout failed")
    }
}

impl std::error::Error for Checkout {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// One request of a shop: what the adapters record on real calls, and what users add.
fn record(recorder: &Recorder, trace_id: &str) {
    let header = TraceHeader::parse(&format!(
        "Root={trace_id};Parent=53995c3f42cd8ad8;Sampled=1"
    ));
    let seg = recorder.segment("shop").header(&header).begin();
    seg.set_http_request(HttpRequest {
        method: Some("POST".into()),
        url: Some("https://shop.example.com/cart?x=1".into()),
        user_agent: Some("curl/8.5".into()),
        client_ip: Some("203.0.113.7".into()),
        x_forwarded_for: true,
        traced: false,
    });
    seg.annotate("tier", "gold");
    seg.annotate("items", 3);
    seg.annotate("vip", true);
    seg.put_metadata("note", "first order");
    seg.put_metadata_in("debug", "cart", json!({"lines": [1, 2]}));
    seg.set_user("alice");

    let ddb = seg.begin_subsegment("DynamoDB");
    ddb.set_namespace(Namespace::Aws);
    ddb.set_aws_operation("GetItem");
    ddb.set_aws_region("eu-west-1");
    ddb.set_aws_table_name("orders");
    ddb.set_aws_request_id("V4KL2QAGFH8IL1L7S5N2S8HUGRVV4KQNSO5AEMVJF66Q9ASUAAJG");
    ddb.set_http_response(200, Some(88));
    ddb.end();

    let missing = seg.begin_subsegment("DynamoDB");
    missing.set_namespace(Namespace::Aws);
    missing.set_aws_operation("PutItem");
    missing.set_aws_region("eu-west-1");
    missing.set_aws_table_name("audit");
    missing.set_http_response(400, None);
    missing.add_exception(
        Exception::new("Requested resource not found", "ResourceNotFoundException").remote(true),
    );
    missing.end();

    let inventory = seg.begin_subsegment("inventory");
    inventory.set_namespace(Namespace::Remote);
    inventory.set_http_request(HttpRequest {
        method: Some("GET".into()),
        url: Some("http://inventory:8080/items/7".into()),
        traced: true,
        ..Default::default()
    });
    inventory.set_http_response(429, Some(0));
    inventory.end();

    let pricing = seg.begin_subsegment("pricing");
    pricing.set_namespace(Namespace::Remote);
    pricing.set_http_request(HttpRequest {
        method: Some("GET".into()),
        url: Some("http://pricing/quote".into()),
        ..Default::default()
    });
    pricing.set_http_response(503, None);
    pricing.end();

    let db = seg.begin_subsegment("orders-db");
    db.set_namespace(Namespace::Remote);
    db.set_sql(Sql {
        database_type: Some("PostgreSQL".into()),
        sanitized_query: Some("SELECT * FROM orders WHERE id = $1".into()),
        user: Some("app".into()),
        connection_string: Some("postgresql://db:5432/shop".into()),
        ..Default::default()
    });
    db.end();

    let compute = seg.begin_subsegment("compute");
    compute.annotate("step", "totals");
    compute.put_metadata("lines", 2);
    let inner = compute.begin_subsegment("tax");
    inner.record_error(&Checkout(std::io::Error::other("rate table missing")));
    inner.end();
    compute.end();

    seg.set_http_response(500, Some(512));
    seg.end();
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn post(server: &Server, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("http://{}{path}", server.ui_addr()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "POST {path}: {}", r.status());
    r.json().await.unwrap()
}

/// The trace's documents as BatchGetTraces answers them, once all `want` have arrived.
async fn documents(server: &Server, trace_id: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = post(server, "/Traces", json!({"TraceIds": [trace_id]})).await;
        let docs: Vec<Value> = v["Traces"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["Segments"].as_array().unwrap().clone())
            .map(|s| serde_json::from_str(s["Document"].as_str().unwrap()).unwrap())
            .collect();
        let entities: usize = docs.iter().map(count_entities).sum();
        if entities >= want {
            return docs;
        }
        assert!(
            Instant::now() < deadline,
            "{trace_id}: {entities} of {want} entities arrived: {docs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count_entities(doc: &Value) -> usize {
    1 + doc["subsegments"]
        .as_array()
        .map_or(0, |s| s.iter().map(count_entities).sum())
}

/// What the console shows of an entity and its subtree: its name and namespace, flags, user,
/// origin, annotations, the user's metadata, the http request and status, the AWS call, the
/// SQL query and the causes (message, type, remote).
///
/// Left out, because X-Ray's converter of spans does not give them back whatever the
/// exporter sends, and xray-local converts as it does: IDs and times (checked apart), the
/// `service` and `aws.xray` blocks (taken from the resource), `http.response.content_length`
/// (read only from messaging payload sizes), `http.request.traced`, the span attributes and
/// resource attributes the converter files under `metadata.default` (keys with a dot), and the
/// SQL connection string and URL it assembles. The call's region comes back as
/// `aws.remote_region`, and the database type as the `db.system` value (lower case): both are
/// compared under one name.
fn shown(entity: &Value) -> Value {
    let e = entity.as_object().unwrap();
    let mut out = Map::new();
    for k in [
        "name",
        "namespace",
        "error",
        "fault",
        "throttle",
        "user",
        "origin",
        "annotations",
    ] {
        if let Some(v) = e.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(Value::Object(metadata)) = e.get("metadata") {
        let mut user = Map::new();
        for (ns, values) in metadata {
            let mut kept = values.as_object().unwrap().clone();
            kept.retain(|k, _| ns != "default" || !k.contains('.'));
            if !kept.is_empty() {
                user.insert(ns.clone(), Value::Object(kept));
            }
        }
        if !user.is_empty() {
            out.insert("metadata".into(), Value::Object(user));
        }
    }
    if let Some(http) = e.get("http") {
        let mut h = Map::new();
        for k in ["method", "url", "client_ip", "user_agent"] {
            if let Some(v) = http["request"].get(k) {
                h.insert(format!("request.{k}"), v.clone());
            }
        }
        if let Some(v) = http["response"].get("status") {
            h.insert("response.status".into(), v.clone());
        }
        out.insert("http".into(), Value::Object(h));
    }
    if let Some(Value::Object(aws)) = e.get("aws") {
        let mut a = Map::new();
        for (k, v) in aws {
            match k.as_str() {
                "xray" | "ec2" | "ecs" | "eks" | "elastic_beanstalk" | "cloudwatch_logs" => {}
                "remote_region" => {
                    a.insert("region".into(), v.clone());
                }
                _ => {
                    a.insert(k.clone(), v.clone());
                }
            }
        }
        if !a.is_empty() {
            out.insert("aws".into(), Value::Object(a));
        }
    }
    if let Some(sql) = e.get("sql") {
        out.insert(
            "sql".into(),
            json!({
                "sanitized_query": sql["sanitized_query"],
                "user": sql["user"],
                "database_type": sql["database_type"].as_str().map(str::to_lowercase),
            }),
        );
    }
    if let Some(cause) = e.get("cause") {
        let exceptions: Vec<Value> = cause["exceptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| json!({"message": x["message"], "type": x["type"], "remote": x["remote"]}))
            .collect();
        out.insert("cause".into(), json!(exceptions));
    }
    if let Some(subs) = e.get("subsegments").and_then(Value::as_array) {
        let mut subs: Vec<Value> = subs.iter().map(shown).collect();
        subs.sort_by_key(|s| s.to_string());
        out.insert("subsegments".into(), Value::Array(subs));
    }
    Value::Object(out)
}

/// The trace's summary fields the console's list and its filters use.
async fn summary(server: &Server, trace_id: &str, started: f64) -> Value {
    let v = post(
        server,
        "/TraceSummaries",
        json!({"StartTime": started - 60.0, "EndTime": unix_now() + 60.0}),
    )
    .await;
    let s = v["TraceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Id"] == trace_id)
        .unwrap_or_else(|| panic!("{trace_id} in {v}"))
        .clone();
    json!({
        "HasFault": s["HasFault"], "HasError": s["HasError"], "HasThrottle": s["HasThrottle"],
        "Http": s["Http"], "Annotations": s["Annotations"], "Users": s["Users"],
        "ServiceIds": s["ServiceIds"], "IsPartial": s["IsPartial"],
    })
}

async fn round_trip(protocol: OtlpProtocol, compression: OtlpCompression) {
    let started = unix_now();
    let server = Server::start(Config::ephemeral()).await.unwrap();
    let udp = builder(&server).build().unwrap();
    let otlp = builder(&server)
        .exporter(TracesExporter::Otlp)
        .otlp(
            OtlpSettings::default()
                .endpoint(format!("http://{}/v1/traces", server.ui_addr()))
                .protocol(protocol)
                .compression(compression)
                .schedule_delay(Duration::from_millis(50)),
        )
        .build()
        .unwrap();
    let epoch = format!("{:08x}", started as u64);
    let by_udp = format!("1-{epoch}-000000000000000000000001");
    let by_otlp = format!("1-{epoch}-000000000000000000000002");
    record(&udp, &by_udp);
    record(&otlp, &by_otlp);
    udp.flush(Duration::from_secs(5)).unwrap();
    otlp.flush(Duration::from_secs(5)).unwrap();

    let udp_docs = documents(&server, &by_udp, 8).await;
    let otlp_docs = documents(&server, &by_otlp, 8).await;
    // The service's segment, and the segments xray-local infers for what it called (as X-Ray
    // does for the service map).
    let split = |docs: &[Value]| {
        let (inferred, own): (Vec<&Value>, Vec<&Value>) =
            docs.iter().partition(|d| d["inferred"] == true);
        assert_eq!(own.len(), 1, "{docs:?}");
        let mut inferred: Vec<Value> = inferred.into_iter().map(shown).collect();
        inferred.sort_by_key(|d| d.to_string());
        (own[0].clone(), inferred)
    };
    let ((udp_seg, udp_inferred), (otlp_seg, otlp_inferred)) =
        (split(&udp_docs), split(&otlp_docs));
    assert_eq!(udp_inferred.len(), 5, "{udp_inferred:?}");
    assert_eq!(otlp_inferred, udp_inferred, "the same inferred nodes");
    let (u, o) = (shown(&udp_seg), shown(&otlp_seg));
    // Not vacuous: the recording is there in full.
    assert_eq!(u["http"]["response.status"], 500, "{u}");
    assert_eq!(u["annotations"]["tier"], "gold", "{u}");
    assert_eq!(u["subsegments"].as_array().unwrap().len(), 6, "{u}");
    assert_eq!(
        serde_json::to_string_pretty(&o).unwrap(),
        serde_json::to_string_pretty(&u).unwrap(),
        "the OTLP trace shows what the UDP trace shows"
    );
    // Times survive to the microsecond the document format carries.
    for d in [&udp_seg, &otlp_seg] {
        let took = d["end_time"].as_f64().unwrap() - d["start_time"].as_f64().unwrap();
        assert!((0.0..5.0).contains(&took), "{d}");
    }
    let (su, so) = (
        summary(&server, &by_udp, started).await,
        summary(&server, &by_otlp, started).await,
    );
    assert_eq!(su["HasFault"], true, "{su}");
    assert_eq!(so, su, "the summaries agree");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_protobuf_trace_shows_what_the_udp_trace_shows() {
    round_trip(OtlpProtocol::HttpProtobuf, OtlpCompression::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_gzipped_json_trace_shows_what_the_udp_trace_shows() {
    round_trip(OtlpProtocol::HttpJson, OtlpCompression::Gzip).await;
}
