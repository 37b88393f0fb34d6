//! The layer on the real `lambda_runtime`, driven by a local Runtime API over HTTP, with the
//! function in a process of its own (Lambda's environment is per process) sending its
//! documents over real UDP. DynamoDB calls go to moto (scripts/with-moto.sh).

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::time::Duration;

use common::aws::{RecordingProxy, ensure_table, header, moto_endpoint};
use common::{
    Entry, Event, FUNCTION_ARN, FUNCTION_ENV, FUNCTION_NAME, Function, RuntimeApi, answer_to,
    documents_before_answer, documents_of, entities, named,
};
use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use serde_json::{Value, json};
use tower::Layer;
use xray_sdk::{FutureExt, Record};
use xray_sdk_lambda::{Init, XRayHttpLayer, XRayLambdaLayer};

const TABLE: &str = "xray-lambda-tests";
const WAIT: Duration = Duration::from_secs(60);

fn root(n: u32) -> String {
    format!("1-5759e988-{n:024x}")
}

fn parent(n: u32) -> String {
    format!("{:016x}", 0x5399_5c3f_0000_0000_u64 + u64::from(n))
}

fn sampled(n: u32) -> String {
    format!("Root={};Parent={};Sampled=1", root(n), parent(n))
}

/// The invocation subsegment of `docs` (the one directly under Lambda's segment, `parent`).
fn invocation_subsegment<'a>(docs: &'a [Value], parent: &str) -> &'a Value {
    let tops: Vec<&Value> = docs
        .iter()
        .filter(|d| d["name"] == FUNCTION_NAME && d["parent_id"] == parent)
        .collect();
    assert_eq!(
        tops.len(),
        1,
        "one invocation subsegment under {parent}: {docs:#?}"
    );
    tops[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_invocations_send_their_own_subsegments_before_each_response() {
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, 1, None);
    let lineage = format!("{};Lineage=a87bd80c:1", sampled(1));
    api.push(Event::new("a", Some(&lineage), json!({"n": 1})));
    api.push(Event::new(
        "b",
        Some(&format!("Root={};Parent={};Sampled=0", root(2), parent(2))),
        json!({"n": 2}),
    ));
    api.push(Event::new("c", Some(&sampled(3)), json!({"n": 3})));
    api.push(Event::new("d", None, json!({"n": 4})));
    let log = api.wait_answers(&["a", "b", "c", "d"], WAIT).await;

    // A: its subsegments, and the init work, all before its response.
    let docs = documents_before_answer(&log, &root(1), "a");
    for d in &docs {
        assert_eq!(d["type"], "subsegment", "no segment document: {d}");
        assert_eq!(d["trace_id"], root(1));
    }
    let top = invocation_subsegment(&docs, &parent(1));
    assert_eq!(top["aws"]["request_id"], "a");
    assert_eq!(top["aws"]["function_arn"], FUNCTION_ARN);
    assert_eq!(top["aws"]["resource_names"], json!([FUNCTION_NAME]));
    assert_eq!(top["aws"]["account_id"], "123456789012");
    assert!(top.get("fault").is_none(), "{top}");
    let all = entities(&docs);
    let compute = named(&all, "compute");
    assert_eq!(compute.len(), 1, "{docs:#?}");
    assert_eq!(compute[0].1.as_deref(), top["id"].as_str());
    assert_eq!(compute[0].2["annotations"]["request_id"], "a");
    let init = named(&all, "init");
    assert_eq!(
        init.len(),
        1,
        "init work goes with the first invocation: {docs:#?}"
    );
    assert_eq!(init[0].1.as_deref(), Some(parent(1).as_str()));
    let config = named(&all, "load-config");
    assert_eq!(config[0].1.as_deref(), Some(init[0].0.as_str()));
    assert!(init[0].2["start_time"].as_f64() < top["start_time"].as_f64());

    // The handler's downstream header: its own subsegment, with the extra keys kept.
    let Entry::Response { body, .. } = answer_to(&log, "a") else {
        panic!("a failed")
    };
    assert_eq!(
        body["downstream"],
        format!(
            "Root={};Parent={};Sampled=1;Lineage=a87bd80c:1",
            root(1),
            top["id"].as_str().unwrap()
        )
    );

    // B is not sampled: nothing sent, the decision passed on.
    assert!(documents_of(&log, &root(2)).is_empty());
    let Entry::Response { body, .. } = answer_to(&log, "b") else {
        panic!("b failed")
    };
    let down = body["downstream"].as_str().unwrap();
    assert!(
        down.starts_with(&format!("Root={};Parent=", root(2))),
        "{down}"
    );
    assert!(down.ends_with(";Sampled=0"), "{down}");

    // C: its own trace, no init work any more.
    let docs = documents_before_answer(&log, &root(3), "c");
    let top = invocation_subsegment(&docs, &parent(3));
    assert_eq!(top["aws"]["request_id"], "c");
    assert!(named(&entities(&docs), "init").is_empty());

    // D came without a trace header: answered, nothing recorded.
    assert!(matches!(answer_to(&log, "d"), Entry::Response { .. }));
    let known: Vec<String> = [1, 2, 3].iter().map(|&n| root(n)).collect();
    for e in &log {
        if let Entry::Document(d) = e {
            assert!(
                known.iter().any(|r| d["trace_id"] == *r),
                "stray document {d}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_never_mix_traces() {
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, 4, None);
    assert!(
        api.wait_open_next(4, WAIT).await,
        "four `next` requests open at once"
    );
    let ids: Vec<String> = (10..18).map(|n| format!("req-{n}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let n = 10 + i as u32;
        // The unsampled one comes after the first four have begun (each sleeps 300 ms and
        // four run at once), so the init work always goes with a sampled invocation.
        let header = if n == 17 {
            format!("Root={};Parent={};Sampled=0", root(n), parent(n))
        } else {
            sampled(n)
        };
        api.push(Event::new(
            id,
            Some(&header),
            json!({"n": n, "sleep_ms": 300}),
        ));
    }
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let log = api.wait_answers(&id_refs, WAIT).await;
    assert!(api.max_open_next() >= 4);

    let mut spans = Vec::new();
    let mut inits = 0;
    for (i, id) in ids.iter().enumerate() {
        let n = 10 + i as u32;
        let Entry::Response { body, .. } = answer_to(&log, id) else {
            panic!("{id} failed")
        };
        // Concurrent runtimes leave the process-wide variable alone.
        assert_eq!(body["trace_env"], Value::Null, "{body}");
        let docs = documents_before_answer(&log, &root(n), id);
        if n == 17 {
            assert!(docs.is_empty(), "{docs:#?}");
            continue;
        }
        let top = invocation_subsegment(&docs, &parent(n));
        assert_eq!(top["aws"]["request_id"], id.as_str());
        let mut all = entities(&docs);
        // The init work goes with whichever invocation came first.
        let before = all.len();
        all.retain(|(_, _, d)| d["name"] != "init" && d["name"] != "load-config");
        inits += usize::from(before != all.len());
        assert_eq!(
            all.len(),
            2,
            "the invocation and its compute step only: {docs:#?}"
        );
        let compute = named(&all, "compute");
        assert_eq!(compute[0].1.as_deref(), top["id"].as_str());
        assert_eq!(compute[0].2["annotations"]["request_id"], id.as_str());
        assert!(
            body["downstream"].as_str().unwrap().starts_with(&format!(
                "Root={};Parent={}",
                root(n),
                top["id"].as_str().unwrap()
            )),
            "{body}"
        );
        spans.push((
            top["start_time"].as_f64().unwrap(),
            top["end_time"].as_f64().unwrap(),
        ));
    }
    assert_eq!(inits, 1, "init work sent once");
    // They did run at once.
    let overlapping = spans
        .iter()
        .enumerate()
        .any(|(i, a)| spans[i + 1..].iter().any(|b| a.0 < b.1 && b.0 < a.1));
    assert!(overlapping, "{spans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_panics_are_faults_and_the_runtime_reports_them() {
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, 1, None);
    api.push(Event::new(
        "err",
        Some(&sampled(20)),
        json!({"op": "error"}),
    ));
    api.push(Event::new(
        "boom",
        Some(&sampled(21)),
        json!({"op": "panic"}),
    ));
    api.push(Event::new("after", Some(&sampled(22)), json!({})));
    let log = api.wait_answers(&["err", "boom", "after"], WAIT).await;

    let Entry::Error {
        error_type, body, ..
    } = answer_to(&log, "err")
    else {
        panic!("err was not reported as an error")
    };
    assert!(!error_type.is_empty());
    let docs = documents_before_answer(&log, &root(20), "err");
    let top = invocation_subsegment(&docs, &parent(20));
    assert_eq!(top["fault"], true, "{top}");
    let exception = &top["cause"]["exceptions"][0];
    assert_eq!(exception["message"], body["errorMessage"]);
    assert_eq!(exception["message"], "failed on purpose: err");
    assert_eq!(exception["type"], body["errorType"]);

    let Entry::Error { body, .. } = answer_to(&log, "boom") else {
        panic!("the panic was not reported as an error")
    };
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("panicked on purpose: boom"),
        "{body}"
    );
    let docs = documents_before_answer(&log, &root(21), "boom");
    let top = invocation_subsegment(&docs, &parent(21));
    assert_eq!(top["fault"], true, "{top}");
    assert_eq!(top["cause"]["exceptions"][0]["type"], "panic");
    assert_eq!(
        top["cause"]["exceptions"][0]["message"],
        "panicked on purpose: boom"
    );
    // What ended before the panic was sent, and the runtime goes on.
    assert_eq!(named(&entities(&docs), "compute").len(), 1);
    assert!(matches!(answer_to(&log, "after"), Entry::Response { .. }));
    let docs = documents_before_answer(&log, &root(22), "after");
    assert!(
        invocation_subsegment(&docs, &parent(22))
            .get("fault")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_leaves_what_had_finished_already_sent() {
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, 1, None);
    api.push(
        Event::new("slow", Some(&sampled(30)), json!({"op": "hang"}))
            .deadline(Duration::from_millis(800)),
    );
    // Past the deadline, Lambda stops the function; what it had sent is all there is.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !documents_of(&api.log(), &root(30)).is_empty() {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let log = api.log();
    assert!(
        log.iter().all(|e| e.request_id().is_none()),
        "no answer: {log:#?}"
    );
    let docs = documents_of(&log, &root(30));
    let all = entities(&docs);
    assert_eq!(
        named(&all, "compute").len(),
        1,
        "the finished step was sent: {docs:#?}"
    );
    // The invocation and the step that hangs never finished: nothing of them was sent.
    assert!(named(&all, FUNCTION_NAME).is_empty(), "{docs:#?}");
    assert!(named(&all, "stuck").is_empty(), "{docs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_work_is_dropped_when_the_first_invocation_is_not_sampled() {
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, 1, None);
    api.push(Event::new(
        "first",
        Some(&format!(
            "Root={};Parent={};Sampled=0",
            root(40),
            parent(40)
        )),
        json!({}),
    ));
    api.push(Event::new("second", Some(&sampled(41)), json!({})));
    let log = api.wait_answers(&["first", "second"], WAIT).await;
    assert!(documents_of(&log, &root(40)).is_empty());
    let docs = documents_before_answer(&log, &root(41), "second");
    invocation_subsegment(&docs, &parent(41));
    assert!(named(&entities(&docs), "init").is_empty(), "{docs:#?}");
    assert!(
        log.iter()
            .all(|e| !matches!(e, Entry::Document(d) if d["name"] == "init")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_calls_carry_the_invocation_and_their_own_subsegment() {
    let Some(moto) = moto_endpoint() else {
        return;
    };
    let proxy = RecordingProxy::start(&moto).await;
    let api = RuntimeApi::start().await;
    // Sequential: the runtime sets _X_AMZN_TRACE_ID, which the AWS SDK's recursion
    // detection copies into the request; the interceptor's header must win.
    let _function = Function::start(&api, 1, Some(&proxy.endpoint));
    let incoming = format!("{};Lineage=a87bd80c:1", sampled(50));
    api.push(Event::new(
        "put",
        Some(&incoming),
        json!({"dynamodb": true}),
    ));
    let log = api.wait_answers(&["put"], WAIT).await;
    assert!(
        matches!(answer_to(&log, "put"), Entry::Response { .. }),
        "{log:#?}"
    );
    let docs = documents_before_answer(&log, &root(50), "put");
    let all = entities(&docs);
    let top = invocation_subsegment(&docs, &parent(50));

    // The table was made ready during init: those calls went with this first invocation.
    let init = named(&all, "init");
    assert_eq!(init.len(), 1, "{docs:#?}");
    let init_calls: Vec<&str> = all
        .iter()
        .filter(|(_, p, _)| p.as_deref() == Some(init[0].0.as_str()))
        .filter_map(|(_, _, d)| d["aws"]["operation"].as_str())
        .collect();
    assert!(init_calls.contains(&"DescribeTable"), "{init_calls:?}");

    let puts: Vec<_> = all
        .iter()
        .filter(|(_, _, d)| d["aws"]["operation"] == "PutItem")
        .collect();
    assert_eq!(puts.len(), 1, "{docs:#?}");
    let (put_id, put_parent, put) = puts[0];
    assert_eq!(put["name"], "DynamoDB");
    assert_eq!(put["namespace"], "aws");
    assert_eq!(put["aws"]["table_name"], TABLE);
    assert_eq!(put["http"]["response"]["status"], 200);
    assert_eq!(put_parent.as_deref(), top["id"].as_str());

    let sent: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|h| header(h, "x-amz-target") == Some("DynamoDB_20120810.PutItem"))
        .filter_map(|h| header(h, "x-amzn-trace-id").map(str::to_owned))
        .collect();
    assert_eq!(
        sent,
        [format!(
            "Root={};Parent={put_id};Sampled=1;Lineage=a87bd80c:1",
            root(50)
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_http_requests_get_the_invocation_header_and_an_http_block() {
    let api = RuntimeApi::start().await;
    let _function = Function::start_http(&api, 2);
    assert!(api.wait_open_next(2, WAIT).await);
    for (id, n, path, agent) in [
        ("h1", 60, "/orders/1", "curl/8"),
        ("h2", 61, "/missing", "tests/1"),
    ] {
        api.push(Event::new(
            id,
            Some(&sampled(n)),
            api_gateway_v2(path, agent),
        ));
    }
    let log = api.wait_answers(&["h1", "h2"], WAIT).await;
    for (id, n, path, status) in [("h1", 60, "/orders/1", 200), ("h2", 61, "/missing", 404)] {
        let Entry::Response { body, .. } = answer_to(&log, id) else {
            panic!("{id} failed")
        };
        assert_eq!(body["statusCode"], status, "{body}");
        let seen: Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
        // The handler saw this invocation's header, not the process's.
        assert_eq!(seen["x-amzn-trace-id"], sampled(n));
        let docs = documents_before_answer(&log, &root(n), id);
        let top = invocation_subsegment(&docs, &parent(n));
        assert_eq!(top["http"]["request"]["method"], "GET");
        assert_eq!(
            top["http"]["request"]["url"],
            format!("https://abc.execute-api.us-west-2.amazonaws.com{path}")
        );
        assert_eq!(top["http"]["request"]["client_ip"], "198.51.100.7");
        assert_eq!(top["http"]["response"]["status"], status);
        if status == 404 {
            assert_eq!(top["error"], true, "{top}");
        }
    }
}

/// `lambda_http` with W3C Trace Context: Lambda's trace header first; without one, the
/// request's `traceparent` (and `tracestate`); `OTEL_PROPAGATORS` in the function's
/// environment turns on `traceparent` for downstream calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_http_continues_a_traceparent_when_lambda_gives_no_header() {
    const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const XRAY_TRACE: &str = "1-4bf92f35-77b34da6a3ce929d0e0e4736";
    const W3C_PARENT: &str = "00f067aa0ba902b7";
    let with_w3c = |traceparent: &str, tracestate: Option<&str>| {
        let mut event = api_gateway_v2("/w3c", "otel/1");
        event["headers"]["traceparent"] = json!(traceparent);
        if let Some(state) = tracestate {
            event["headers"]["tracestate"] = json!(state);
        }
        event
    };
    let api = RuntimeApi::start().await;
    let _function = Function::start_http_with_env(
        &api,
        2,
        &[("OTEL_PROPAGATORS", "baggage,xray,tracecontext")],
    );
    assert!(api.wait_open_next(2, WAIT).await);
    let sampled_tp = format!("00-{W3C_TRACE}-{W3C_PARENT}-01");
    // No Lambda header: the traceparent's trace, sampled, its tracestate kept.
    api.push(Event::new(
        "w1",
        None,
        with_w3c(&sampled_tp, Some("congo=t61rcWkgMzE")),
    ));
    let log = api.wait_answers(&["w1"], WAIT).await;
    let Entry::Response { body, .. } = answer_to(&log, "w1") else {
        panic!("w1 failed")
    };
    let seen: Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    let docs = documents_before_answer(&log, XRAY_TRACE, "w1");
    let top = invocation_subsegment(&docs, W3C_PARENT);
    let top_id = top["id"].as_str().unwrap();
    assert_eq!(seen["traceparent"], format!("00-{W3C_TRACE}-{top_id}-01"));
    assert_eq!(seen["tracestate"], "congo=t61rcWkgMzE");

    // Lambda's header wins over another trace's traceparent (and its tracestate).
    api.push(Event::new(
        "w2",
        Some(&sampled(70)),
        with_w3c(&sampled_tp, Some("congo=t61rcWkgMzE")),
    ));
    // No Lambda header, flag 00: nothing recorded, the decision goes on.
    api.push(Event::new(
        "w3",
        None,
        with_w3c(&format!("00-{W3C_TRACE}-{W3C_PARENT}-00"), None),
    ));
    // No Lambda header, an invalid traceparent: no trace to record under.
    api.push(Event::new(
        "w4",
        None,
        with_w3c(&format!("ff-{W3C_TRACE}-{W3C_PARENT}-01"), None),
    ));
    let log = api.wait_answers(&["w2", "w3", "w4"], WAIT).await;
    let body = |id: &str| -> Value {
        let Entry::Response { body, .. } = answer_to(&log, id) else {
            panic!("{id} failed")
        };
        serde_json::from_str(body["body"].as_str().unwrap()).unwrap()
    };
    let docs = documents_before_answer(&log, &root(70), "w2");
    let top = invocation_subsegment(&docs, &parent(70));
    let w3c_root = root(70).replace('-', "")[1..].to_owned();
    assert_eq!(
        body("w2")["traceparent"],
        format!("00-{w3c_root}-{}-01", top["id"].as_str().unwrap())
    );
    assert_eq!(body("w2")["tracestate"], Value::Null);
    let w3 = body("w3");
    let tp = w3["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with(&format!("00-{W3C_TRACE}-")) && tp.ends_with("-00"),
        "{tp}"
    );
    let w4 = body("w4");
    assert!(
        !w4["traceparent"].as_str().unwrap().contains(W3C_TRACE),
        "{w4}"
    );
    // Only w1's and w2's documents ever arrived.
    let roots: std::collections::HashSet<String> = log
        .iter()
        .filter_map(|e| match e {
            Entry::Document(d) => d["trace_id"].as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(
        roots,
        [XRAY_TRACE.to_owned(), root(70)].into_iter().collect(),
        "{log:#?}"
    );
}

/// An API Gateway HTTP API (payload 2.0) event.
fn api_gateway_v2(path: &str, agent: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "abc.execute-api.us-west-2.amazonaws.com",
            "user-agent": agent,
            "x-forwarded-for": "198.51.100.7, 10.0.0.1",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.execute-api.us-west-2.amazonaws.com",
            "domainPrefix": "abc",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": agent
            },
            "requestId": "r1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "07/Dec/2026:08:00:00 +0000",
            "timeEpoch": 1796630400000u64
        },
        "isBase64Encoded": false
    })
}

// ---------------------------------------------------------------------------------------
// The function process.

/// The function the tests above start as a process of their own (see `common::Function`).
#[test]
#[ignore = "the function process the other tests start; not a test of its own"]
fn function_process() {
    assert!(
        std::env::var_os(FUNCTION_ENV).is_some(),
        "started by the other tests of this file, with {FUNCTION_ENV} set"
    );
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Err(e) = runtime.block_on(run_function()) {
        panic!("the function stopped: {e}");
    }
}

async fn run_function() -> Result<(), Error> {
    let recorder = xray_sdk_lambda::recorder()?;
    let concurrent = std::env::var("AWS_LAMBDA_MAX_CONCURRENCY").is_ok_and(|c| c != "1");
    if std::env::var_os("XRAY_TEST_FUNCTION_HTTP").is_some() {
        let app = XRayHttpLayer::new(recorder).layer(service_fn(http_handler));
        return if concurrent {
            lambda_http::run_concurrent(app).await
        } else {
            lambda_http::run(app).await
        };
    }
    let init = Init::begin(&recorder);
    let dynamodb = match std::env::var("XRAY_TEST_FUNCTION_DYNAMODB") {
        Ok(endpoint) => {
            let client = common::aws::dynamodb(&endpoint);
            ensure_table(&client, TABLE)
                .in_context(init.context())
                .await;
            Some(client)
        }
        Err(_) => None,
    };
    xray_sdk::subsegment("load-config", async {})
        .in_context(init.context())
        .await;
    let layer = XRayLambdaLayer::new(recorder).init(init);
    let handler = layer.layer(service_fn(move |event| handler(event, dynamodb.clone())));
    let runtime = Runtime::new(handler);
    if concurrent {
        runtime.run_concurrent().await
    } else {
        runtime.run().await
    }
}

async fn handler(
    event: LambdaEvent<Value>,
    dynamodb: Option<aws_sdk_dynamodb::Client>,
) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let id = context.request_id.clone();
    let sleep = Duration::from_millis(payload["sleep_ms"].as_u64().unwrap_or(0));
    xray_sdk::subsegment("compute", async {
        if let Some(current) = xray_sdk::Context::current() {
            current.annotate("request_id", id.as_str());
        }
        tokio::time::sleep(sleep).await;
    })
    .await;
    if payload["dynamodb"] == true {
        let client = dynamodb.ok_or("no DynamoDB endpoint")?;
        client
            .put_item()
            .table_name(TABLE)
            .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
            .send()
            .await?;
    }
    match payload["op"].as_str() {
        Some("error") => return Err(format!("failed on purpose: {id}").into()),
        Some("panic") => panic!("panicked on purpose: {id}"),
        Some("hang") => {
            xray_sdk::subsegment("stuck", tokio::time::sleep(Duration::from_secs(3600))).await;
        }
        _ => {}
    }
    Ok(json!({
        "request_id": id,
        "trace_env": std::env::var("_X_AMZN_TRACE_ID").ok(),
        "downstream": xray_sdk::Context::current().map(|c| c.downstream_header().to_string()),
    }))
}

async fn http_handler(
    request: lambda_http::Request,
) -> Result<lambda_http::Response<String>, Error> {
    let status = if request.uri().path() == "/missing" {
        404
    } else {
        200
    };
    // What a downstream HTTP call made here would carry besides the X-Ray header.
    let current = xray_sdk::Context::current();
    let seen = json!({
        "x-amzn-trace-id": request.headers().get("x-amzn-trace-id").and_then(|v| v.to_str().ok()),
        "traceparent": current
            .as_ref()
            .filter(|c| c.propagates_traceparent())
            .map(|c| c.traceparent().to_string()),
        "tracestate": current.as_ref().and_then(|c| c.tracestate().map(str::to_owned)),
    });
    Ok(lambda_http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(seen.to_string())?)
}
