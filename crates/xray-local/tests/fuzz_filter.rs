//! Seeded, fixed-iteration fuzzing of filter expressions: mutated
//! expressions never panic the parser or the evaluator, and every malformed
//! one is refused with a position inside the text (or just after it). A
//! sample goes through real HTTP: the X-Ray API answers 200 or a 400
//! `InvalidRequestException` naming the position, never anything else.
//!
//! `XRAY_FUZZ_SEED` replays another seed; `XRAY_FUZZ_FILTER_ITERATIONS`
//! changes the number of expressions (default 20,000).

// Printing the seed is the point: it is how a failure gets replayed.
#![allow(clippy::print_stdout)]

mod common;

use common::*;
use serde_json::json;
use xray_local::views::filter::{Facts, Filter};

/// xorshift64*: small, seedable, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const DEFAULT_SEED: u64 = 0x5EED_F117_E2E5;

fn seed() -> u64 {
    let s = std::env::var("XRAY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    println!("filter fuzz seed: {s} (replay with XRAY_FUZZ_SEED={s})");
    s | 1
}

fn iterations() -> usize {
    std::env::var("XRAY_FUZZ_FILTER_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

const SEEDS: &[&str] = &[
    "ok",
    "!fault AND responsetime > 0.5",
    "http.status = 500 OR (error AND throttle)",
    "http.url CONTAINS \"/api/\" AND http.method = \"GET\"",
    "service(\"api\") { fault = true }",
    "service(id(name: \"DynamoDB\", type: \"AWS::DynamoDB::Table\")) { throttle }",
    "edge(\"a\", \"b\") { responsetime >= 1 }",
    "annotation.customer BEGINSWITH \"c-\" AND annotation.vip",
    "user = \"alice\" AND duration <= 2.5e0",
    "service() { error } AND !service(\"x\")",
];

const TOKENS: &[&str] = &[
    " ",
    "(",
    ")",
    "{",
    "}",
    "!",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    ",",
    ":",
    "\"",
    "\\",
    "\\\"",
    "AND",
    "OR",
    "and",
    "CONTAINS",
    "BEGINSWITH",
    "ENDSWITH",
    "ok",
    "fault",
    "error",
    "throttle",
    "responsetime",
    "duration",
    "http.status",
    "http.url",
    "user",
    "annotation.k",
    "annotation.",
    "service",
    "edge",
    "id",
    "name",
    "type",
    "account.id",
    "true",
    "false",
    "0",
    "-1",
    "1e999",
    "0.5",
    ".5",
    "1.2.3",
    "\"s\"",
    "\"é\u{1F600}\"",
    "group.name",
    "json",
    "&&",
    "||",
    "'",
    "#",
    "\u{0}",
    "\u{202E}",
    "((((((((((",
    "))))))))))",
    "!!!!!!!!!!",
    "service(\"a\") {",
];

fn mutate(rng: &mut Rng) -> String {
    let mut s: Vec<String> = SEEDS[rng.below(SEEDS.len())]
        .chars()
        .map(String::from)
        .collect();
    for _ in 0..=rng.below(6) {
        let at = rng.below(s.len() + 1);
        match rng.below(5) {
            0 if !s.is_empty() => {
                s.remove(at.min(s.len() - 1));
            }
            1 => s.insert(at, TOKENS[rng.below(TOKENS.len())].to_string()),
            2 => s.insert(at, char::from(rng.below(128) as u8).to_string()),
            3 if !s.is_empty() => {
                let end = (at + rng.below(8)).min(s.len());
                s.drain(at.min(end)..end);
            }
            _ => {
                // Splice in a part of another seed.
                let other = SEEDS[rng.below(SEEDS.len())];
                let cut = rng.below(other.len() + 1);
                let part = other.get(cut..).unwrap_or("");
                s.insert(at, part.to_string());
            }
        }
    }
    s.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_filter_expressions_never_panic_and_errors_say_where() {
    let mut rng = Rng(seed());
    let server = start_default().await;
    let t0 = now() - 5.0;
    // Something to evaluate against: a root with a downstream call and a callee.
    let t = trace_id();
    let (root, call) = (entity_id(), entity_id());
    let mut a = segment(&t, &root, "api", None, t0, 1.0);
    a["annotations"] = json!({"k": "v", "vip": true, "n": 2});
    a["http"] =
        json!({"request": {"method": "GET", "url": "http://x/api/1"}, "response": {"status": 500}});
    a["fault"] = json!(true);
    a["subsegments"] = json!([{"name": "b", "id": call, "namespace": "remote", "start_time": t0 + 0.1, "end_time": t0 + 0.5}]);
    send_doc(&server, &a);
    send_doc(
        &server,
        &segment(&t, &entity_id(), "b", Some(&call), t0 + 0.2, 0.2),
    );
    wait_accepted(&server, 2);

    let (mut parsed, mut refused) = (0usize, 0usize);
    for i in 0..iterations() {
        let text = mutate(&mut rng);
        match Filter::parse(&text) {
            Ok(f) => {
                parsed += 1;
                let store = server.app().store();
                for trace in store.traces() {
                    let _ = f.matches(&Facts::new(trace, f.needs_graph()));
                }
            }
            Err(e) => {
                refused += 1;
                let len = text.chars().count();
                assert!(
                    (1..=len + 1).contains(&e.position),
                    "#{i} {text:?}: position {} outside 1..={}: {e}",
                    e.position,
                    len + 1
                );
                assert!(!e.message.is_empty(), "#{i} {text:?}");
                assert!(e.to_string().contains(&format!("position {}", e.position)));
            }
        }
    }
    println!("filter fuzz: {parsed} parsed, {refused} refused");
    assert!(
        parsed > 100 && refused > 100,
        "{parsed} parsed, {refused} refused"
    );

    // A sample through the X-Ray API and the viewer's list.
    let window = json!({"StartTime": t0 - 60.0, "EndTime": t0 + 60.0});
    for _ in 0..200 {
        let text = mutate(&mut rng);
        let mut body = window.clone();
        body["FilterExpression"] = json!(text);
        let r = request(
            server.ui_addr(),
            "POST",
            "/TraceSummaries",
            &body.to_string(),
        );
        let v = r.json();
        match r.status {
            200 => assert!(v["TraceSummaries"].is_array(), "{text:?}: {v}"),
            400 => {
                assert_eq!(v["__type"], "InvalidRequestException", "{text:?}: {v}");
                assert!(
                    v["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("position")),
                    "{text:?}: {v}"
                );
            }
            s => panic!("{text:?}: HTTP {s}: {v}"),
        }
        let q: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
        let r = get(&server, &format!("/api/TraceSummaries?filter={q}"));
        match r.status {
            200 => {}
            400 => assert!(
                r.json()["position"].as_u64().is_some(),
                "{text:?}: {}",
                r.body
            ),
            s => panic!("{text:?}: HTTP {s}: {}", r.body),
        }
    }
    server.shutdown().await;
}
