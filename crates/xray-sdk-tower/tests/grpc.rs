//! gRPC: a real tonic server with `XRayLayer` and a real tonic client whose channel has
//! `XRayClientLayer`, on 127.0.0.1, with each side's documents captured on its own UDP socket.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;
#[path = "../examples/grpc/demo.rs"]
mod demo;
#[path = "../examples/grpc/echo.rs"]
#[allow(unreachable_pub, missing_docs, clippy::all)]
mod echo;

use std::time::Duration;

use common::Daemon;
use demo::CatchPanic;
use echo::EchoRequest;
use echo::echo_server::EchoServer;
use serde_json::{Value, json};
use tonic::Code;
use tonic::service::LayerExt;
use tonic::transport::Server;
use xray_sdk::ContextMissing;
use xray_sdk::context::FutureExt;
use xray_sdk_tower::{XRay, XRayClientLayer, XRayLayer};

/// The flags each status code sets, as the project documents them.
fn expected_flags(code: i32) -> &'static [&'static str] {
    match code {
        0 | 1 => &[],
        3 | 5 | 6 | 7 | 9 | 10 | 11 | 16 => &["error"],
        8 => &["error", "throttle"],
        2 | 4 | 12 | 13 | 14 | 15 => &["fault"],
        _ => unreachable!("codes are 0 to 16"),
    }
}

fn assert_flags(doc: &Value, flags: &[&str], what: &str) {
    for flag in ["error", "throttle", "fault"] {
        assert_eq!(
            doc.get(flag) == Some(&json!(true)),
            flags.contains(&flag),
            "{what}: {flag} in {doc}"
        );
    }
}

fn request(message: &str, code: Code, count: u32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        code: code as i32,
        count,
        panic: false,
    }
}

/// The server segments, in the order of the client's subsegments (each found by its parent).
fn server_segments_in_call_order(client: &Value, servers: &[Value]) -> Vec<Value> {
    let calls = client["subsegments"].as_array().unwrap();
    assert_eq!(calls.len(), servers.len(), "one server segment per call");
    calls
        .iter()
        .map(|call| {
            servers
                .iter()
                .find(|s| s["parent_id"] == call["id"])
                .unwrap_or_else(|| panic!("no server segment under {call}"))
                .clone()
        })
        .collect()
}

/// The client subsegment of a call: the remote block, the URL of `method` on the server.
fn assert_client_call(call: &Value, addr: std::net::SocketAddr, method: &str) {
    assert_eq!(call["name"], "127.0.0.1");
    assert_eq!(call["namespace"], "remote");
    let request = &call["http"]["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(
        request["url"],
        format!("http://{addr}/xray.echo.Echo/{method}")
    );
    assert_eq!(request["traced"], true, "{call}");
    assert_eq!(call["http"]["response"]["status"], 200);
    assert!(call["end_time"].as_f64().unwrap() >= call["start_time"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_calls_as_recorded_on_both_sides() {
    let server_side = Daemon::new("unused");
    let client_side = Daemon::new("unused");
    let server = demo::serve(
        server_side.recorder.clone(),
        "grpc-server",
        CatchPanic::Inside,
    )
    .await
    .unwrap();
    let mut client = demo::client(server.addr).await.unwrap();
    let outcomes = demo::run_calls(&client_side.recorder, &mut client).await;
    assert_eq!(
        outcomes,
        [
            r#"unary: Ok("hello")"#,
            "server-streaming: Ok(3) replies",
            r#"NOT_FOUND: Err((NotFound, "asked for NotFound"))"#,
            r#"INTERNAL: Err((Internal, "asked for Internal"))"#,
            r#"panic: Err((Internal, "the handler panicked"))"#,
        ]
    );
    let client_doc = client_side.document().await;
    assert_eq!(client_doc["name"], "grpc-client");
    assert_flags(&client_doc, &[], "client segment");
    let servers = server_side.documents(5).await;
    let servers = server_segments_in_call_order(&client_doc, &servers);
    let calls = client_doc["subsegments"].as_array().unwrap();
    let expected = [
        ("Unary", 0, &[][..], None),
        ("Stream", 0, &[][..], None),
        ("Unary", 5, &["error"][..], Some("asked for NotFound")),
        ("Unary", 13, &["fault"][..], Some("asked for Internal")),
        ("Unary", 13, &["fault"][..], Some("the handler panicked")),
    ];
    for (i, (method, code, flags, message)) in expected.into_iter().enumerate() {
        let (call, server_doc) = (&calls[i], &servers[i]);
        let what = format!("call {i} ({method}, {code})");
        assert_client_call(call, server.addr, method);
        assert_eq!(call["annotations"]["grpc_status"], code, "{what}");
        assert_flags(call, flags, &what);
        assert_eq!(server_doc["name"], "grpc-server");
        assert_eq!(server_doc["trace_id"], client_doc["trace_id"]);
        assert_eq!(server_doc["annotations"]["grpc_status"], code, "{what}");
        assert_flags(server_doc, flags, &what);
        let server_request = &server_doc["http"]["request"];
        assert_eq!(server_request["client_ip"], "127.0.0.1", "{what}");
        assert_eq!(
            server_request["url"],
            format!("http://{}/xray.echo.Echo/{method}", server.addr)
        );
        assert_eq!(server_doc["http"]["response"]["status"], 200);
        match message {
            Some(message) => {
                let client_exception = &call["cause"]["exceptions"][0];
                assert_eq!(client_exception["message"], message, "{what}");
                assert_eq!(client_exception["remote"], true, "{what}");
                let kind = if code == 5 { "NOT_FOUND" } else { "INTERNAL" };
                assert_eq!(client_exception["type"], kind);
                let server_exceptions = server_doc["cause"]["exceptions"].as_array().unwrap();
                let last = server_exceptions.last().unwrap();
                assert_eq!(last["message"], message, "{what}");
                assert!(last.get("remote").is_none(), "{what}");
            }
            None => {
                assert!(call.get("cause").is_none(), "{what}");
                assert!(server_doc.get("cause").is_none(), "{what}");
            }
        }
    }
    // The panic: its message and place first, then the status the client was told.
    let panic = &servers[4]["cause"]["exceptions"][0];
    assert_eq!(panic["type"], "panic");
    assert_eq!(panic["message"], r#"the handler panicked on "boom""#);
    assert!(
        panic["stack"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("examples/grpc/demo.rs")
    );
    // The handler annotated the request's segment through the current context.
    assert_eq!(servers[0]["annotations"]["echo_message"], "hello");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_code_in_a_trailers_only_answer() {
    let server_side = Daemon::new("unused");
    let client_side = Daemon::new("unused");
    let server = demo::serve(server_side.recorder.clone(), "echo", CatchPanic::Inside)
        .await
        .unwrap();
    let mut client = demo::client(server.addr).await.unwrap();
    let segment = client_side.recorder.segment("caller").begin();
    async {
        for code in 0..=16 {
            let answer = client
                .unary(request(&format!("code {code}"), Code::from_i32(code), 0))
                .await;
            assert_eq!(answer.err().map_or(0, |s| s.code() as i32), code);
        }
    }
    .in_context(segment.context())
    .await;
    segment.end();
    let client_doc = client_side.document().await;
    let servers = server_side.documents(17).await;
    let servers = server_segments_in_call_order(&client_doc, &servers);
    for (code, (call, server_doc)) in client_doc["subsegments"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&servers)
        .enumerate()
    {
        let code = i32::try_from(code).unwrap();
        let what = format!("code {code}");
        let flags = expected_flags(code);
        assert_client_call(call, server.addr, "Unary");
        for doc in [call, server_doc] {
            assert_eq!(doc["annotations"]["grpc_status"], code, "{what}: {doc}");
            assert_flags(doc, flags, &what);
            if flags.is_empty() {
                assert!(doc.get("cause").is_none(), "{what}: {doc}");
            } else {
                let exception = &doc["cause"]["exceptions"][0];
                assert_eq!(
                    exception["message"],
                    format!("asked for {:?}", Code::from_i32(code))
                );
            }
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_in_the_trailers_after_a_stream() {
    let server_side = Daemon::new("unused");
    let client_side = Daemon::new("unused");
    let server = demo::serve(server_side.recorder.clone(), "echo", CatchPanic::Inside)
        .await
        .unwrap();
    let mut client = demo::client(server.addr).await.unwrap();
    let codes = [
        Code::Ok,
        Code::InvalidArgument,
        Code::ResourceExhausted,
        Code::Unavailable,
        Code::Cancelled,
    ];
    let segment = client_side.recorder.segment("caller").begin();
    async {
        for code in codes {
            let mut stream = client
                .stream(request("tick", code, 3))
                .await
                .unwrap()
                .into_inner();
            let mut replies = 0;
            let end = loop {
                match stream.message().await {
                    Ok(Some(_)) => replies += 1,
                    Ok(None) => break Code::Ok,
                    Err(status) => break status.code(),
                }
            };
            assert_eq!((replies, end), (3, code));
        }
    }
    .in_context(segment.context())
    .await;
    segment.end();
    let client_doc = client_side.document().await;
    let servers = server_side.documents(codes.len()).await;
    let servers = server_segments_in_call_order(&client_doc, &servers);
    let calls = client_doc["subsegments"].as_array().unwrap();
    for (i, code) in codes.into_iter().enumerate() {
        let code = code as i32;
        let what = format!("stream ending in {code}");
        assert_client_call(&calls[i], server.addr, "Stream");
        for doc in [&calls[i], &servers[i]] {
            assert_eq!(doc["annotations"]["grpc_status"], code, "{what}: {doc}");
            assert_flags(doc, expected_flags(code), &what);
            // Both ends cover the stream: three replies, 10 ms apart.
            let duration = doc["end_time"].as_f64().unwrap() - doc["start_time"].as_f64().unwrap();
            assert!(duration >= 0.02, "{what}: {duration} s");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_0_sends_nothing_on_either_side() {
    // The server samples everything it decides itself: only the header stops it.
    let server_side = Daemon::new("unused");
    let client_side = Daemon::never_sampling("unused");
    let server = demo::serve(server_side.recorder.clone(), "echo", CatchPanic::Inside)
        .await
        .unwrap();
    let mut client = demo::client(server.addr).await.unwrap();
    let segment = client_side.recorder.segment("caller").begin();
    assert!(!segment.is_sampled());
    async {
        let reply = client.unary(request("quiet", Code::Ok, 0)).await.unwrap();
        assert_eq!(reply.into_inner().message, "quiet");
        let failed = client.unary(request("quiet", Code::Internal, 0)).await;
        assert_eq!(failed.unwrap_err().code(), Code::Internal);
        let mut stream = client
            .stream(request("quiet", Code::Ok, 2))
            .await
            .unwrap()
            .into_inner();
        while stream.message().await.unwrap().is_some() {}
    }
    .in_context(segment.context())
    .await;
    segment.end();
    client_side.assert_nothing_sent().await;
    server_side.assert_nothing_sent().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_a_stream_ends_both_sides() {
    let server_side = Daemon::new("unused");
    let client_side = Daemon::new("unused");
    let server = demo::serve(server_side.recorder.clone(), "echo", CatchPanic::Inside)
        .await
        .unwrap();
    let mut client = demo::client(server.addr).await.unwrap();
    let segment = client_side.recorder.segment("caller").begin();
    async {
        // Replies until the client goes away.
        let mut stream = client
            .stream(request("endless", Code::Ok, 0))
            .await
            .unwrap()
            .into_inner();
        for _ in 0..2 {
            assert!(stream.message().await.unwrap().is_some());
        }
        drop(stream);
    }
    .in_context(segment.context())
    .await;
    segment.end();
    let client_doc = client_side.document().await;
    let call = &client_doc["subsegments"][0];
    assert_client_call(call, server.addr, "Stream");
    // Given up before its status: CANCELLED, which sets no flag.
    assert_eq!(call["annotations"]["grpc_status"], 1, "{call}");
    assert_flags(call, &[], "client");
    let server_doc = server_side.document().await;
    assert_eq!(server_doc["parent_id"], call["id"]);
    assert_eq!(server_doc["annotations"]["grpc_status"], 1, "{server_doc}");
    assert_flags(&server_doc, &[], "server");
    assert!(server_doc["end_time"].as_f64().is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_with_catch_panic_outside_is_answered_internal_by_the_layer() {
    let server_side = Daemon::new("unused");
    let client_side = Daemon::new("unused");
    let server = demo::serve(server_side.recorder.clone(), "echo", CatchPanic::Outside)
        .await
        .unwrap();
    let mut client = demo::client(server.addr).await.unwrap();
    let segment = client_side.recorder.segment("caller").begin();
    let status = async {
        client
            .unary(EchoRequest {
                message: "boom".to_owned(),
                panic: true,
                ..EchoRequest::default()
            })
            .await
            .unwrap_err()
    }
    .in_context(segment.context())
    .await;
    segment.end();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "Service panicked");
    let call = client_side.document().await["subsegments"][0].clone();
    assert_eq!(call["annotations"]["grpc_status"], 13);
    assert_eq!(call["fault"], true);
    assert_eq!(call["http"]["request"]["traced"], true);
    let server_doc = server_side.document().await;
    assert_eq!(server_doc["parent_id"], call["id"]);
    assert_eq!(server_doc["annotations"]["grpc_status"], 13);
    assert_eq!(server_doc["fault"], true);
    assert_eq!(server_doc["http"]["response"]["status"], 200);
    // One exception, the panic: the status the layer answered adds none of its own.
    let exceptions = server_doc["cause"]["exceptions"].as_array().unwrap();
    assert_eq!(exceptions.len(), 1, "{server_doc}");
    assert_eq!(
        exceptions[0]["message"],
        r#"the handler panicked on "boom""#
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_traced_service_keeps_its_name() {
    let daemon = Daemon::new("echo-svc");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = daemon.recorder.clone();
    tokio::spawn(async move {
        // `XRay<S>: NamedService` for the first, tonic's `named_layer` for the second.
        Server::builder()
            .add_service(XRay::new(
                EchoServer::new(demo::EchoService),
                recorder.clone(),
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .ok();
    });
    let listener2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr2 = listener2.local_addr().unwrap();
    let recorder = daemon.recorder.clone();
    tokio::spawn(async move {
        Server::builder()
            .add_service(XRayLayer::new(recorder).named_layer(EchoServer::new(demo::EchoService)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener2))
            .await
            .ok();
    });
    for addr in [addr, addr2] {
        let mut client = demo::client(addr).await.unwrap();
        // No context on the client side: the call goes out untouched, and the server starts
        // a trace of its own.
        let reply = client.unary(request("named", Code::Ok, 0)).await.unwrap();
        assert_eq!(reply.into_inner().message, "named");
        let doc = daemon.document().await;
        assert_eq!(doc["name"], "echo-svc");
        assert!(doc.get("parent_id").is_none(), "{doc}");
        assert_eq!(doc["annotations"]["grpc_status"], 0);
        assert_eq!(doc["http"]["request"]["client_ip"], "127.0.0.1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_any_context_the_strategy_decides() {
    let server_side = Daemon::new("unused");
    let server = demo::serve(server_side.recorder.clone(), "echo", CatchPanic::Inside)
        .await
        .unwrap();
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr)).unwrap();
    let channel = endpoint.connect().await.unwrap();
    let strict = tower::ServiceBuilder::new()
        .layer(XRayClientLayer::new().context_missing(ContextMissing::RuntimeError))
        .service(channel);
    let mut client = echo::echo_client::EchoClient::new(strict);
    // RUNTIME_ERROR: nothing is sent, the call fails with the context-missing error.
    let refused = client
        .unary(request("no context", Code::Ok, 0))
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("X-Ray context missing"),
        "{refused:?}"
    );
    server_side.assert_nothing_sent().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_cannot_connect_is_a_fault_with_its_cause() {
    let client_side = Daemon::new("unused");
    // A port nothing listens on (bound, then closed).
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    let channel = tower::ServiceBuilder::new()
        .layer(XRayClientLayer::new().origin(endpoint.uri().clone()))
        .service(endpoint.connect_lazy());
    let mut client = echo::echo_client::EchoClient::new(channel);
    let segment = client_side.recorder.segment("caller").begin();
    let status = client
        .unary(request("nobody home", Code::Ok, 0))
        .in_context(segment.context())
        .await
        .unwrap_err();
    segment.end();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let call = client_side.document().await["subsegments"][0].clone();
    assert_eq!(call["name"], "127.0.0.1");
    assert_eq!(call["fault"], true, "{call}");
    assert!(call["http"].get("response").is_none());
    assert!(!call["cause"]["exceptions"].as_array().unwrap().is_empty());
}
