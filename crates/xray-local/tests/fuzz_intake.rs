//! Bounded mutation fuzzing (stable Rust, no extra tools) of the datagram
//! parser, document ingestion and API query parsing.
//!
//! Each target tries a fixed number of inputs from a fixed seed, so every
//! machine checks the same inputs however fast it is. `XRAY_FUZZ_RUNS`
//! changes the count, `XRAY_FUZZ_SECS` runs each target for that many seconds
//! instead (longer runs), and `XRAY_FUZZ_SEED` changes the seed, which is
//! printed so a failure can be replayed.

// Printing the seed is the point: it is how a failure gets replayed.
#![allow(clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::fuzz::*;
use common::*;
use serde_json::json;
use xray_local::state::sampling;
use xray_local::surfaces::viewer::{api, list, query};
use xray_local::views::{graph, summary, timeline};
use xray_local::{App, Config};

/// Inputs per target by default.
const DATAGRAMS: u64 = 6_000;
const QUERIES: u64 = 20_000;
const UDP_DATAGRAMS: u64 = 5_000;

const TOKENS: &[&str] = &[
    "\n",
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "1e999",
    "-1",
    "0.5",
    "\\u0000",
    "\"type\":\"subsegment\"",
    "\"in_progress\":true",
    "\"parent_id\":\"aaaaaaaaaaaaaaaa\"",
    "\"subsegments\":[",
    "\"annotations\":{\"k\":",
    "\"namespace\":\"aws\"",
    "[[[[[[[[",
    "\u{1F600}",
    "\"trace_id\":\"1-00000000-000000000000000000000000\"",
    "\"id\":\"aaaaaaaaaaaaaaaa\"",
];

fn corpus() -> Vec<Vec<u8>> {
    let t = trace_id();
    let t0 = now();
    let docs = [
        segment(&t, "aaaaaaaaaaaaaaaa", "svc", None, t0, 0.1),
        json!({"name":"svc","id":"bbbbbbbbbbbbbbbb","trace_id":t,"start_time":t0,"in_progress":true,
               "subsegments":[{"name":"DynamoDB","id":"cccccccccccccccc","namespace":"aws","start_time":t0,"end_time":t0+0.01,
                               "subsegments":[{"name":"attempt","id":"dddddddddddddddd","start_time":t0,"end_time":t0}]}]}),
        streamed(&t, "eeeeeeeeeeeeeeee", "aaaaaaaaaaaaaaaa", "sub", t0, 0.01),
        json!({"name":"B","id":"ffffffffffffffff","trace_id":t,"parent_id":"cccccccccccccccc","start_time":t0,"end_time":t0+1.0,
               "fault":true,"annotations":{"a":1,"b":"x","c":true},"http":{"request":{"method":"GET"},"response":{"status":500}},
               "cause":{"exceptions":[{"id":"0123456789abcdef","message":"boom"}]}}),
    ];
    let mut out: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| format!("{HEADER}\n{d}").into_bytes())
        .collect();
    out.push(b"{\"format\": \"json\", \"version\": 1}\n{}".to_vec());
    out.push(b"garbage".to_vec());
    out.push(b"{\"format\":\"json\",\"version\":1}\n[1]".to_vec());
    out
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut d = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(4) {
        let len = d.len();
        match rng.below(8) {
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
                let tok = TOKENS[rng.below(TOKENS.len())].as_bytes();
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
            6 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(other.len() + 1);
                let at = rng.below(len + 1);
                d.truncate(at);
                d.extend_from_slice(&other[cut..]);
            }
            _ => {
                // Mostly-valid document with a random field value.
                let v = match rng.below(5) {
                    0 => json!(rng.next()),
                    1 => json!(-(rng.next() as f64)),
                    2 => json!(null),
                    3 => json!("x".repeat(rng.below(300))),
                    _ => json!({"nested": [1, {"a": "b"}]}),
                };
                let keys = [
                    "name",
                    "id",
                    "trace_id",
                    "parent_id",
                    "start_time",
                    "end_time",
                    "type",
                    "in_progress",
                    "annotations",
                    "subsegments",
                ];
                let mut doc = segment(&trace_id(), &entity_id(), "svc", None, now(), 0.1);
                doc[keys[rng.below(keys.len())]] = v;
                d = format!("{HEADER}\n{doc}").into_bytes();
            }
        }
    }
    d
}

#[test]
fn fuzz_datagrams_and_ingestion() {
    let mut rng = Rng(seed(0x5eed_0000_da7a_6a11));
    let config = Config {
        max_traces: 50,
        max_bytes: 256 * 1024,
        ..Config::ephemeral()
    };
    let app = App::new(config, sampling::default_rules());
    let corpus = corpus();
    let budget = budget(DATAGRAMS);
    let mut n = 0u64;
    while budget.more(n) {
        for _ in 0..200 {
            let d = mutate(&mut rng, &corpus);
            let _ = app.ingest_datagram(&d);
            n += 1;
        }
        // Exercise every reader on whatever the store now holds.
        app.store()
            .settle(Instant::now() + Duration::from_secs(3600), Duration::ZERO);
        {
            let store = app.store();
            let _ = graph::build(store.traces());
            for t in store.traces().take(5) {
                let _ = summary::Summary::of(t).to_json();
                let _ = timeline::build(t);
            }
        }
        let _ = list::trace_summaries_json(&app, "limit=1000").expect("summaries");
        let _ = api::validation_json(&app, "").expect("validation");
        let _ = api::stats_json(&app);
        check_consistent(&app);
    }
    println!("fuzzed {n} datagrams");
    assert!(n > 0);
}

/// Tokens beyond the filter keys themselves (`list::LIST_KEYS`, drawn first).
const OTHER_QUERY_TOKENS: &[&str] = &[
    "=",
    "&",
    "%",
    "%3D",
    "%zz",
    "%ff",
    "+",
    "ok",
    "fault",
    "1e308",
    "-1",
    "NaN",
    "inf",
    "0",
    "1001",
    "k=v",
    "%E2%82%AC",
    "\u{e9}",
    "trace_id",
    "ids",
    ",",
];

fn random_query(rng: &mut Rng) -> String {
    (0..rng.below(12))
        .map(|_| {
            if rng.below(10) == 0 {
                char::from(rng.below(128) as u8).to_string()
            } else {
                let keys = &list::LIST_KEYS;
                let i = rng.below(keys.len() + OTHER_QUERY_TOKENS.len());
                keys.get(i)
                    .copied()
                    .unwrap_or_else(|| OTHER_QUERY_TOKENS[i - keys.len()])
                    .to_string()
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_api_queries() {
    let mut rng = Rng(seed(0x5eed_0000_0a91_0e55));
    let app = App::new(Config::ephemeral(), sampling::default_rules());
    for d in corpus() {
        let _ = app.ingest_datagram(&d);
    }
    let budget = budget(QUERIES);
    let mut n = 0u64;
    while budget.more(n) {
        let q = random_query(&mut rng);
        let _ = query::Params::parse(&q, &list::LIST_KEYS);
        let _ = list::ListQuery::parse(&q);
        let _ = list::trace_summaries_json(&app, &q);
        let _ = api::validation_json(&app, &q);
        n += 1;
    }
    println!("fuzzed {n} queries");

    // A bounded sample through real HTTP: always 200 or 400, never a 5xx.
    let server = start_default().await;
    for d in corpus() {
        send_raw(&server, &d);
    }
    for _ in 0..200 {
        let q: String = random_query(&mut rng)
            .bytes()
            .map(|b| {
                if b.is_ascii_graphic() && b != b'#' {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        for path in [
            "/api/TraceSummaries",
            "/api/validation",
            "/api/ServiceGraph",
        ] {
            let r = get(&server, &format!("{path}?{q}"));
            assert!(
                r.status == 200 || r.status == 400,
                "{path}?{q} -> {}",
                r.status
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_over_udp() {
    let mut rng = Rng(seed(0x5eed_0000_0d9a_7a01));
    let server = start(Config {
        max_traces: 100,
        ..Config::ephemeral()
    })
    .await;
    let corpus = corpus();
    let sock = sender();
    let budget = budget(UDP_DATAGRAMS);
    let mut sent = 0u64;
    while budget.more(sent) && sent < 20_000 {
        let mut d = mutate(&mut rng, &corpus);
        d.truncate(60_000);
        if sock.send_to(&d, server.udp_addr()).is_ok() {
            sent += 1;
        }
        if sent.is_multiple_of(500) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The kernel may drop a few datagrams under load: wait until the counts
    // stop moving and every received datagram has been accounted for.
    let mut last = u64::MAX;
    wait_for("every datagram counted", || {
        let i = server.app().intake.snapshot();
        let settled = i.accepted + i.rejected_total == i.received && i.received == last;
        last = i.received;
        std::thread::sleep(Duration::from_millis(100));
        (settled && i.received > 0 && i.received <= sent).then_some(())
    });
    check_consistent(server.app());
    server.shutdown().await;
}
