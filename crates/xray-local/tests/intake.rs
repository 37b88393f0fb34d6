//! Garbage, wrong headers and truncated datagrams are counted by reason;
//! accepted datagrams are forwarded unchanged.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use serde_json::json;
use xray_local::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_are_counted_by_reason() {
    let server = start_default().await;
    let good = segment(&trace_id(), &entity_id(), "svc", None, now(), 0.1).to_string();
    let datagrams: Vec<Vec<u8>> = vec![
        b"just garbage without newline".to_vec(),
        format!("{HEADER}\n").into_bytes(),
        format!("{{\"format\":\"json\",\"version\":2}}\n{good}").into_bytes(),
        format!("{{\"format\":\"protobuf\",\"version\":1}}\n{good}").into_bytes(),
        format!("not json\n{good}").into_bytes(),
        format!("{HEADER}\n{}", &good[..good.len() / 2]).into_bytes(),
        format!("{HEADER}\nnot json at all").into_bytes(),
        format!("{HEADER}\n[1,2,3]").into_bytes(),
        vec![0xff, 0xfe, b'\n', 0x00],
        // Accepted: the daemon's spaced header, mixed-case format.
        format!("{{\"format\": \"JSON\", \"version\": 1}}\n{good}").into_bytes(),
    ];
    for d in &datagrams {
        send_raw(&server, d);
    }
    let stats = wait_for("all datagrams counted", || {
        let s = get_json(&server, "/api/stats");
        let i = &s["Intake"];
        (i["Accepted"].as_u64()? + i["RejectedTotal"].as_u64()? == datagrams.len() as u64)
            .then_some(s)
    });
    let intake = &stats["Intake"];
    assert_eq!(intake["Received"], json!(datagrams.len()));
    assert_eq!(intake["Accepted"], json!(1));
    let r = &intake["Rejected"];
    assert_eq!(r["missing_header_or_body"], json!(2));
    assert_eq!(r["invalid_header"], json!(4));
    assert_eq!(r["truncated_body"], json!(1));
    assert_eq!(r["invalid_json"], json!(1));
    assert_eq!(r["not_an_object"], json!(1));
    assert_eq!(r["oversized"], json!(0));
    assert!(stats["UdpReceiveBufferBytes"].as_u64() > Some(0));

    // Datagrams over 64 KiB cannot be sent over IPv4 UDP; check the path directly.
    let big = vec![b'x'; 70_000];
    assert!(server.app().ingest_datagram(&big).is_err());
    let s = get_json(&server, "/api/stats");
    assert_eq!(s["Intake"]["Rejected"]["oversized"], json!(1));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_datagrams_are_forwarded_unchanged() {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    sink.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let server = start(Config {
        forward: Some(sink.local_addr().expect("addr")),
        ..Config::ephemeral()
    })
    .await;
    let doc = segment(&trace_id(), &entity_id(), "svc", None, now(), 0.1);
    let datagram = format!("{{\"format\": \"json\", \"version\": 1}}\n{doc}");
    send_raw(&server, b"garbage");
    send_raw(&server, datagram.as_bytes());
    let mut buf = vec![0u8; 70_000];
    let (n, _) = sink.recv_from(&mut buf).expect("forwarded datagram");
    assert_eq!(&buf[..n], datagram.as_bytes());
    wait_accepted(&server, 1);
    let s = get_json(&server, "/api/stats");
    assert_eq!(s["Intake"]["Forwarded"], json!(1));
    server.shutdown().await;
}
