//! Bounded mutation fuzzing of the OTLP intake, in `fuzz_intake.rs`'s style:
//! a fixed number of inputs from a fixed seed (`XRAY_FUZZ_RUNS`,
//! `XRAY_FUZZ_SECS`, `XRAY_FUZZ_SEED` as there). Protobuf and OTLP/JSON
//! bodies (plain and gzipped) through the decoders and the mapping, then a
//! sample through real HTTP; `T1S` datagrams mutated as text and as
//! protobuf, then a sample through real UDP. Never a panic, never a 5xx,
//! the counts add up, and a trace stored first is never lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::time::Duration;

use common::fuzz::*;
use common::otlp::*;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use prost::Message;
use xray_local::otlp::{MAX_BODY_BYTES, wire};
use xray_local::state::sampling;
use xray_local::{App, Config};

const BODIES: u64 = 3_000;
const HTTP_BODIES: u64 = 200;
const DATAGRAMS: u64 = 3_000;
const UDP_DATAGRAMS: u64 = 1_000;

/// Pieces of OTLP/JSON and protobuf spliced into inputs.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"1e999",
    b"-1",
    b"\"18446744073709551616\"",
    b"\"traceId\":\"",
    b"\"spanId\":\"0000000000000000\"",
    b"\"parentSpanId\":\"abc\"",
    b"\"kind\":7",
    b"\"startTimeUnixNano\":\"1\"",
    b"{\"intValue\":\"9223372036854775808\"}",
    b"{\"arrayValue\":{\"values\":[",
    b"{\"kvlistValue\":{\"values\":[",
    b"{\"bytesValue\":\"!!\"}",
    b"\"spans\":[{}]",
    b"\"events\":[{\"name\":\"exception\"}]",
    b"\xff\xff\xff\xff\x0f",
    b"\x0a\x00",
    b"\x12\x00",
    b"\x4a\x02\x0a\x00",
    b"\x80",
    b"[[[[[[[[[[[[[[[[",
];

fn request(trace: &[u8], t0: f64) -> ExportTraceServiceRequest {
    let (mut checkout, inventory) = shop(trace, t0);
    checkout[0].events = vec![Event {
        name: "exception".into(),
        attributes: vec![
            kv("exception.type", s("ValueError")),
            kv(
                "exception.stacktrace",
                s(
                    "Traceback (most recent call last):\n  File \"a.py\", line 1, in f\nValueError: x\n",
                ),
            ),
        ],
        ..Event::default()
    }];
    checkout[1]
        .attributes
        .push(kv("aws.xray.metadata.ns", s("{\"a\":[1,2]}")));
    checkout[1].attributes.push(kv("list", arr(&["x", "y"])));
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans(checkout_resource(), checkout),
            resource_spans(inventory_resource(), inventory),
        ],
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut d = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(4) {
        let len = d.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                d.insert(i, rng.next() as u8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let j = (i + rng.below(32)).min(len);
                d.drain(i..j);
            }
            3 => {
                let i = rng.below(len + 1);
                let tok = TOKENS[rng.below(TOKENS.len())];
                d.splice(i..i, tok.iter().copied());
            }
            4 => d.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                let i = rng.below(len);
                let j = (i + rng.below(64)).min(len);
                let chunk = d[i..j].to_vec();
                let k = rng.below(len + 1);
                d.splice(k..k, chunk);
            }
            _ => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(other.len() + 1);
                let at = rng.below(len + 1);
                d.truncate(at);
                d.extend_from_slice(&other[cut..]);
            }
        }
    }
    d
}

/// Runs one body through what the HTTP surface does, without the HTTP.
fn ingest_body(app: &App, body: &[u8], encoding: wire::Encoding, gzipped: bool) {
    let plain = if gzipped {
        match wire::inflate(body, MAX_BODY_BYTES) {
            Ok(p) => p,
            Err(_) => return,
        }
    } else {
        body.to_vec()
    };
    if let Ok(req) = wire::decode_body(&plain, encoding) {
        let out = app.ingest_otlp(&req, None);
        assert!(out.documents <= out.spans * 2, "{out:?}");
    }
}

#[test]
fn fuzz_otlp_bodies() {
    let mut rng = Rng(seed(0x5eed_0000_07e1_b0d1));
    let config = Config {
        max_traces: 50,
        max_bytes: 512 * 1024,
        ..Config::ephemeral()
    };
    let app = App::new(config, sampling::default_rules());
    let t0 = now() - 10.0;
    let req = request(&[0x66; 16], t0);
    let protobuf = vec![req.encode_to_vec()];
    let json = vec![serde_json::to_vec(&req).unwrap()];
    let budget = budget(BODIES);
    let mut n = 0u64;
    while budget.more(n) {
        let as_json = rng.below(2) == 0;
        let (corpus, encoding) = if as_json {
            (&json, wire::Encoding::Json)
        } else {
            (&protobuf, wire::Encoding::Protobuf)
        };
        let body = mutate(&mut rng, corpus);
        match rng.below(4) {
            // Gzip of a mutated body, or a mutated gzip stream.
            0 => ingest_body(&app, &gzip(&body), encoding, true),
            1 => ingest_body(&app, &mutate(&mut rng, &[gzip(&corpus[0])]), encoding, true),
            _ => ingest_body(&app, &body, encoding, false),
        }
        n += 1;
        if n.is_multiple_of(100) {
            check_consistent(&app);
        }
    }
    check_consistent(&app);
    println!("fuzzed {n} OTLP bodies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_otlp_over_http() {
    let mut rng = Rng(seed(0x5eed_0000_07e1_477b));
    let server = start_default().await;
    let t0 = now() - 10.0;
    let kept = request(&[0x67; 16], t0);
    assert_eq!(export(&server, Wire::Protobuf, &kept), 0);
    let kept_id = xray_trace_id(&[0x67; 16]);
    let before = stored_docs(&server, &kept_id);
    let req = request(&[0x68; 16], t0);
    let corpus = [req.encode_to_vec(), serde_json::to_vec(&req).unwrap()];
    let budget = budget(HTTP_BODIES);
    let mut n = 0u64;
    while budget.more(n) {
        let wire = Wire::ALL[rng.below(4)];
        let plain = mutate(
            &mut rng,
            &corpus[usize::from(wire.is_json())..=usize::from(wire.is_json())],
        );
        let body = if wire.is_gzip() { gzip(&plain) } else { plain };
        let r = post_otlp(&server, wire, &body);
        assert!(
            matches!(r.status, 200 | 400),
            "{wire:?} -> {}: {}",
            r.status,
            r.text()
        );
        n += 1;
    }
    check_consistent(server.app());
    assert_eq!(
        stored_docs(&server, &kept_id),
        before,
        "nothing stored is lost"
    );
    println!("fuzzed {n} OTLP requests over HTTP");
    server.shutdown().await;
}

/// Datagram corpus: `T1S` datagrams of a few spans.
fn datagram_corpus(t0: f64) -> Vec<Vec<u8>> {
    let req = request(&[0x69; 16], t0);
    let rs = &req.resource_spans[0];
    let spans = &rs.scope_spans[0].spans;
    let resource = &rs.resource.as_ref().unwrap().attributes;
    let mut out = datagrams(resource, spans, 1, true);
    out.extend(datagrams(resource, spans, 2, false));
    out
}

/// A datagram mutated as text, or its protobuf mutated and encoded again
/// (so the decoder, not only base64, sees the damage).
fn mutate_datagram(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(2) == 0 {
        return mutate(rng, corpus);
    }
    use base64::Engine as _;
    let d = &corpus[rng.below(corpus.len())];
    let nl = d.iter().position(|b| *b == b'\n').unwrap();
    let proto = base64::engine::general_purpose::STANDARD
        .decode(&d[nl + 4..])
        .unwrap();
    let bad = mutate(rng, &[proto]);
    [
        &d[..nl + 4],
        base64::engine::general_purpose::STANDARD
            .encode(bad)
            .as_bytes(),
    ]
    .concat()
}

#[test]
fn fuzz_otlp_datagrams() {
    let mut rng = Rng(seed(0x5eed_0000_07e1_d9a7));
    let app = App::new(
        Config {
            max_traces: 50,
            ..Config::ephemeral()
        },
        sampling::default_rules(),
    );
    let corpus = datagram_corpus(now() - 10.0);
    let budget = budget(DATAGRAMS);
    let mut n = 0u64;
    while budget.more(n) {
        let d = mutate_datagram(&mut rng, &corpus);
        let _ = app.ingest_datagram(&d);
        n += 1;
        if n.is_multiple_of(100) {
            check_consistent(&app);
        }
    }
    check_consistent(&app);
    println!("fuzzed {n} OTLP datagrams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_otlp_over_udp() {
    let mut rng = Rng(seed(0x5eed_0000_07e1_0d9a));
    let server = start(Config {
        max_traces: 100,
        ..Config::ephemeral()
    })
    .await;
    let corpus = datagram_corpus(now() - 10.0);
    let sock = sender();
    let budget = budget(UDP_DATAGRAMS);
    let mut sent = 0u64;
    while budget.more(sent) && sent < 20_000 {
        let mut d = mutate_datagram(&mut rng, &corpus);
        d.truncate(60_000);
        if sock.send_to(&d, server.udp_addr()).is_ok() {
            sent += 1;
        }
        if sent.is_multiple_of(250) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut last = u64::MAX;
    wait_for("every datagram counted", || {
        let i = server.app().intake.snapshot();
        let settled = i.received + i.otlp.documents
            == i.accepted + i.rejected_total + i.otlp.datagrams
            && i.received == last;
        last = i.received;
        std::thread::sleep(Duration::from_millis(100));
        (settled && i.received > 0 && i.received <= sent).then_some(())
    });
    check_consistent(server.app());
    let i = server.app().intake.snapshot();
    println!("sent {sent} OTLP datagrams: {i:?}");
    assert!(
        i.rejected_total > 0 && i.otlp.datagrams > 0,
        "both kinds seen: {i:?}"
    );
    server.shutdown().await;
}
