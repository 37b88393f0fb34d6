//! Bounded fuzzing of the two readers of AWS bodies, on stable Rust: the whitelist picker
//! (which now runs on the emitter's thread, where a panic would cost the document) and the
//! remote error reader. A seeded mutation loop over real request, response and error bodies:
//! [`RUNS`] inputs from a fixed seed, the same on every machine (`XRAY_FUZZ_RUNS` changes the
//! count; `XRAY_FUZZ_SECS` runs for that many seconds instead); reproduce a failure with the
//! settings it prints: `XRAY_FUZZ_SEED=<seed> cargo test -p xray-sdk-aws --lib fuzz`.
//!
//! For every input: neither reader panics; the picker yields only keys of the operation's
//! whitelist, with values of the shape the whitelist says (JSON copied as it is, a count, or
//! a list of strings); the error reader's code and message are bounded by the body and
//! headers they came from, and a code never keeps a namespace (`#`) or details (`:`).

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;
use xray_sdk::testing::{FuzzRng, fuzz_budget};

use crate::params::{self, Capture, Picked};
use crate::remote_error;

/// Inputs tried by default.
const RUNS: u64 = 20_000;

/// Bodies as DynamoDB and other services send them, valid and not.
const SEEDS: &[&str] = &[
    r#"{"TableName":"users","Key":{"id":{"S":"42"}},"ConsistentRead":true,"ProjectionExpression":"a, b"}"#,
    r#"{"ConsumedCapacity":{"CapacityUnits":0.5,"TableName":"users"},"Item":{"id":{"S":"42"}}}"#,
    r#"{"RequestItems":{"t1":[{"PutRequest":{"Item":{"id":{"S":"1"}}}}],"t\u0032":[]}}"#,
    r#"{"TableNames":["a","b","c"],"LastEvaluatedTableName":"c"}"#,
    r#"{"Count":3,"ScannedCount":10,"Items":[{},{},{}],"ConsumedCapacity":{"CapacityUnits":1}}"#,
    r#"{"ItemCollectionMetrics":{"ItemCollectionKey":{"id":{"S":"1"}},"SizeEstimateRangeGB":[0,1]}}"#,
    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
    r#"{"__type":"com.amazon.coral.validate#ValidationException:http://internal","Message":"bad"}"#,
    r#"{"code":"ThrottlingException","message":"Rate exceeded"}"#,
    "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
    "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
    "",
    "{}",
    "[]",
    "null",
    r#"{"TableName":"#,
    r#"{"Consumed\u0043apacity":{"CapacityUnits":1}}"#,
];

/// Fragments worth splicing in: JSON structure, whitelisted names, escapes, odd bytes.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u",
    "\\u0043",
    "\\ud800",
    "null",
    "true",
    "1e999",
    "-0",
    "0.5",
    "\"TableName\":",
    "\"RequestItems\":",
    "\"TableNames\":",
    "\"Count\":",
    "\"ConsumedCapacity\":",
    "\"__type\":",
    "\"message\":",
    "<Code>",
    "</Code>",
    "<Message>",
    "</Message>",
    "#",
    "é",
    "🦀",
    "\u{0}",
    "\r\n",
];

/// One to four byte-level edits of a body (bodies are bytes: invalid UTF-8 included).
fn mutate(rng: &mut FuzzRng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 => b.splice(at..at, rng.pick(TOKENS).bytes()).for_each(drop),
            1 if !b.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(b.len());
                b.drain(at.min(end)..end);
            }
            2 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next_u64() as u8;
            }
            3 => {
                // Duplicate a slice (repeated keys, deep nesting).
                let end = (at + rng.below(40)).min(b.len());
                let piece = b[at.min(end)..end].to_vec();
                b.splice(end..end, piece).for_each(drop);
            }
            4 => {
                // Splice in a part of another seed.
                let other = rng.pick(SEEDS).as_bytes();
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(60)).min(other.len());
                b.splice(at..at, other[from..to].iter().copied())
                    .for_each(drop);
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// Every operation's request and response whitelists.
fn whitelists() -> Vec<&'static [params::Param]> {
    let ops = [
        "BatchGetItem",
        "BatchWriteItem",
        "CreateTable",
        "DeleteItem",
        "DeleteTable",
        "DescribeTable",
        "GetItem",
        "ListTables",
        "PutItem",
        "Query",
        "Scan",
        "UpdateItem",
        "UpdateTable",
    ];
    ops.iter()
        .map(|op| params::lookup("DynamoDB", op).unwrap())
        .flat_map(|op| [op.request, op.response])
        .filter(|list| !list.is_empty())
        .collect()
}

fn check(body: &[u8], lists: &[&'static [params::Param]]) {
    for list in lists {
        let picked = params::pick(body, list);
        for (key, value) in picked {
            let param = list.iter().find(|p| p.key == key);
            let param = param.unwrap_or_else(|| panic!("{key} is not whitelisted here"));
            match (param.capture, value) {
                (Capture::Value, Picked::Raw(raw)) => {
                    serde_json::from_str::<&serde_json::value::RawValue>(raw.get()).unwrap();
                }
                (Capture::Count, Picked::Value(Value::Number(_))) => {}
                (Capture::Keys, Picked::Value(Value::Array(keys))) => {
                    assert!(keys.iter().all(Value::is_string), "{keys:?}");
                }
                (capture, value) => panic!("{capture:?} gave {value:?}"),
            }
        }
    }
    for status in [400, 500] {
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(body.to_vec()),
        );
        if body.first() == Some(&b'x') {
            response
                .headers_mut()
                .insert("x-amzn-errortype", "Foo#BarException:details");
        }
        let error = remote_error::read(&response);
        if let Some(code) = &error.code {
            assert!(!code.contains('#') && !code.contains(':'), "{code:?}");
            assert!(code.len() <= body.len() + 32, "{code:?}");
        }
        if let Some(message) = &error.message {
            // Unescaping never makes text longer than its JSON or XML form; a byte that is
            // not UTF-8 becomes U+FFFD (three bytes).
            assert!(message.len() <= 3 * body.len(), "{message:?}");
        }
    }
}

#[test]
fn body_readers_survive_mutated_input() {
    let budget = fuzz_budget(0x5eed_0000_0a55_b0d1, RUNS);
    let seed = budget.seed;
    let lists = whitelists();
    for s in SEEDS {
        check(s.as_bytes(), &lists);
    }
    let mut rng = FuzzRng::new(seed);
    let started = Instant::now();
    let mut runs = 0u64;
    let mut current = SEEDS[0].as_bytes().to_vec();
    while budget.more(runs) {
        let base = if runs.is_multiple_of(4) {
            rng.pick(SEEDS).as_bytes().to_vec()
        } else {
            current.clone()
        };
        let input = mutate(&mut rng, &base);
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input, &lists)));
        if let Err(panic) = outcome {
            eprintln!("fuzz body readers: failure after {runs} inputs ({budget})");
            eprintln!("input: {:?}", String::from_utf8_lossy(&input));
            std::panic::resume_unwind(panic);
        }
        if input.len() <= 4096 {
            current = input;
        }
        runs += 1;
    }
    eprintln!(
        "fuzz body readers: {runs} inputs in {:.1} s ({budget})",
        started.elapsed().as_secs_f64()
    );
    assert!(runs > 100, "only {runs} inputs were tried");
}
