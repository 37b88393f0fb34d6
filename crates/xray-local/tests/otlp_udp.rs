//! OTLP over UDP, as Lambda's OpenTelemetry distributions send it to the
//! Lambda daemon: real datagrams (`{"format":"json","version":1}` + `\n` +
//! `T1S` + base64 of a protobuf `ExportTraceServiceRequest`) to the daemon
//! port, beside segment documents; garbage is a counted drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::otlp::*;
use common::*;
use serde_json::Value;

fn trace(n: u8) -> Vec<u8> {
    vec![0x41, 0x4d, n, 0x42, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0xee, n]
}

fn stats(server: &xray_local::Server) -> Value {
    get_json(server, "/api/stats")["Intake"].clone()
}

/// Waits until every datagram sent has been read and accounted for.
fn wait_counted(server: &xray_local::Server, datagrams: u64) -> Value {
    wait_for("every datagram counted", || {
        let i = stats(server);
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let (received, accepted, rejected) =
            (n(&i["Received"]), n(&i["Accepted"]), n(&i["RejectedTotal"]));
        let (api, docs, otlp_datagrams) = (
            n(&i["ApiDocuments"]),
            n(&i["Otlp"]["Documents"]),
            n(&i["Otlp"]["Datagrams"]),
        );
        (received == datagrams && received + api + docs == accepted + rejected + otlp_datagrams)
            .then_some(i)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1s_datagrams_become_segments_beside_segment_documents() {
    let server = start_default().await;
    let t0 = now() - 10.0;
    let t = trace(1);
    let id = xray_trace_id(&t);
    let (checkout, inventory) = shop(&t, t0);
    let mut sent = 0u64;
    // Two spans per datagram for checkout, one for inventory.
    for d in datagrams(&checkout_resource(), &checkout, 2, true)
        .into_iter()
        .chain(datagrams(&inventory_resource(), &inventory, 1, true))
    {
        assert!(d.len() < 64 * 1024);
        send_raw(&server, &d);
        sent += 1;
    }
    // A segment document of another service, in the same trace.
    let other = entity_id();
    send_doc(
        &server,
        &segment(&id, &other, "audit", Some(&hex(&CHECKOUT)), t0 + 0.2, 0.1),
    );
    sent += 1;
    let i = wait_counted(&server, sent);
    assert_eq!(i["Otlp"]["Datagrams"], 3);
    assert_eq!(i["Otlp"]["Spans"], 4);
    assert_eq!(i["Otlp"]["Documents"], 4);
    assert_eq!(i["Accepted"], 5);
    assert_eq!(i["RejectedTotal"], 0);

    let docs = stored_docs(&server, &id);
    assert_eq!(docs.len(), 5);
    assert_eq!(docs[&hex(&CHECKOUT)]["name"], "checkout");
    assert_eq!(docs[&hex(&CALL_INVENTORY)]["type"], "subsegment");
    assert_eq!(
        docs[&hex(&INVENTORY)]["parent_id"],
        hex(&CALL_INVENTORY).as_str()
    );
    assert_eq!(docs[&hex(&GET_ITEM)]["aws"]["table_name"], "stock");
    assert_eq!(docs[&other]["parent_id"], hex(&CHECKOUT).as_str());
    // The sender is remembered like any other segment sender.
    let tl = timeline(&server, &id);
    assert_eq!(tl["Rows"].as_array().map(Vec::len), Some(5));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_spans_are_counted_not_stored() {
    let server = start_default().await;
    let t = trace(2);
    let (checkout, _) = shop(&t, now() - 5.0);
    for d in datagrams(&checkout_resource(), &checkout, 2, false) {
        assert!(d.windows(4).any(|w| w == b"\nT1U"));
        send_raw(&server, &d);
    }
    let i = wait_counted(&server, 1);
    assert_eq!(i["Otlp"]["SpansUnsampled"], 2);
    assert_eq!(i["Otlp"]["Documents"], 0);
    assert!(stored_docs(&server, &xray_trace_id(&t)).is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_t1s_datagrams_are_counted_drops_and_lose_nothing() {
    let server = start_default().await;
    let t0 = now() - 10.0;
    let t = trace(3);
    let id = xray_trace_id(&t);
    let (checkout, _) = shop(&t, t0);
    let good = datagrams(&checkout_resource(), &checkout, 2, true).remove(0);
    send_raw(&server, &good);
    wait_counted(&server, 1);
    let before = stored_docs(&server, &id);
    assert_eq!(before.len(), 2);

    let header = HEADER.as_bytes();
    let with_body = |body: &[u8]| [header, b"\n", body].concat();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let nl = good.iter().position(|b| *b == b'\n').unwrap();
    let payload = &good[nl + 4..];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (with_body(b"T1S!!not base64!!"), "otlp_invalid_base64"),
        (with_body(b"T1S\xff\xfe"), "otlp_invalid_base64"),
        (
            with_body(format!("T1S{}", b64(b"\xff\xff\xff\xff")).as_bytes()),
            "otlp_invalid_protobuf",
        ),
        // Cut in the middle of the base64 (to a length no base64 has).
        (
            good[..nl + 4 + ((payload.len() / 2) & !3 | 1)].to_vec(),
            "otlp_invalid_base64",
        ),
        // Whole base64 of a cut protobuf.
        (
            with_body(
                format!(
                    "T1S{}",
                    b64(&base64::engine::general_purpose::STANDARD
                        .decode(payload)
                        .unwrap()[..40])
                )
                .as_bytes(),
            ),
            "otlp_invalid_protobuf",
        ),
        (
            with_body(format!("T1U{}", b64(b"\x0a\xff\xff\xff\x0f")).as_bytes()),
            "otlp_invalid_protobuf",
        ),
        // A bad header in front of spans: the daemon's own rule.
        (
            [b"{\"format\":\"json\",\"version\":2}\n", &good[nl + 1..]].concat(),
            "invalid_header",
        ),
        // M1 (metrics) is no span datagram: not a segment document either.
        (with_body(b"M1AAAA"), "invalid_json"),
    ];
    let mut want: std::collections::HashMap<&str, u64> = Default::default();
    for (d, reason) in &cases {
        send_raw(&server, d);
        *want.entry(reason).or_default() += 1;
    }
    // "T1S" and nothing more is an empty request: no spans, no drop.
    send_raw(&server, &with_body(b"T1S"));
    let i = wait_counted(&server, 2 + cases.len() as u64);
    for (reason, n) in want {
        assert_eq!(i["Rejected"][reason], n, "{reason}: {i}");
    }
    assert_eq!(i["RejectedTotal"], cases.len() as u64);
    assert_eq!(i["Otlp"]["Datagrams"], 2);
    assert_eq!(stored_docs(&server, &id), before, "nothing stored is lost");
    server.shutdown().await;
}
