//! Bounded fuzzing of the daemon's sampling answers on stable Rust: seeded mutations of
//! `GetSamplingRules` and `SamplingTargets` response bodies (the shapes of the X-Ray API
//! documentation and of `sampling_centralized.rs`): a fixed number of bodies from a fixed
//! seed ([`IN_PROCESS_RUNS`], [`ROUNDS_PER_LANE`]), the same on every machine
//! (`XRAY_FUZZ_RUNS` changes the count; `XRAY_FUZZ_SECS` runs for that many seconds instead).
//!
//! Bodies are mutated as text (tokens spliced in, bytes flipped, inserted, deleted,
//! duplicated, truncated) and as JSON (values swapped for wrong types, huge, negative or
//! NaN-like numbers, very long strings, deep nesting, records and keys removed, added,
//! duplicated), and within the format (rates, reservoirs, quotas, TTLs, intervals and
//! priorities just in and out of range, names repeated).
//!
//! - `rules_answers_in_process`: each body goes to `CentralizedSampler::apply_rules_response`
//!   (what the poller does with a `GetSamplingRules` answer). It never panics; it agrees
//!   with an independent reading of the format: a body that is not the answer's shape is
//!   refused with a clear message and the rules in force stay, otherwise exactly the valid
//!   records apply (`Version` 1, `ResourceARN` `*`, no attributes, a name, a whole
//!   priority, `FixedRate` in 0..=1, `ReservoirSize` >= 0, five patterns; a name at most
//!   once), in priority order with `Default` last. Then decisions on requests of every kind
//!   pick the rule the order and `wildcard_match` pick (or the fallback), borrow one request
//!   per second where the reservoir allows, never sample at rate 0 and always at rate 1.
//!   Every eighth body is a pristine valid answer, which must apply in full (recovery).
//! - `answers_over_loopback`: the same through the real poller, against a fake daemon on
//!   127.0.0.1 (one port per lane, one lane of rules answers and two of targets answers, run
//!   in parallel). After each mutated answer the poller thread must still be alive and
//!   calling, the rules must be what the answer allows, and for targets every rule's
//!   decisions must follow the quota, TTL and rate the valid parts of all answers so far set
//!   (out-of-range values ignored); every fourth answer is a valid one whose effect is
//!   asserted (recovery).
//!
//! Reproduce a failure with the settings it prints: `XRAY_FUZZ_SEED=<seed> cargo test -p
//! xray-sdk --all-features --test fuzz_sampling_answers` (the bodies are the same; the poller's
//! timing around them is not).

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use xray_sdk::clock::{Clock, ManualClock};
use xray_sdk::config::DaemonAddress;
use xray_sdk::sampling::{CentralizedSampler, InvalidAnswer, LocalRules, wildcard_match};
use xray_sdk::testing::{FuzzBudget, FuzzRng, fuzz_budget};
use xray_sdk::{Sampler, SamplingRequest};

const T0: u64 = 1_700_000_000;
/// Bodies tried in process by default (about 2 s in a debug build on a 2-core machine).
const IN_PROCESS_RUNS: u64 = 5_000;
/// Answers per loopback lane by default (three lanes: about 2 s).
const ROUNDS_PER_LANE: u64 = 100;
/// Upper bounds on bodies tried, whatever the time budget.
const MAX_IN_PROCESS: u64 = 1_000_000;
const MAX_ROUNDS_PER_LANE: u64 = 20_000;
/// Longest body kept as the base of the next mutation.
const MAX_CHAINED_LEN: usize = 32 * 1024;
/// How long one answer may take to go through the poller before the lane fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Seeds and mutation.

fn record(name: &str, priority: f64, rate: f64, reservoir: f64, patterns: [&str; 5]) -> Value {
    let [service, service_type, host, method, path] = patterns;
    json!({
        "SamplingRule": {
            "RuleName": name,
            "RuleARN": format!("arn:aws:xray:us-east-1:123456789012:sampling-rule/{name}"),
            "ResourceARN": "*", "Priority": priority, "FixedRate": rate,
            "ReservoirSize": reservoir, "ServiceName": service, "ServiceType": service_type,
            "Host": host, "HTTPMethod": method, "URLPath": path, "Version": 1,
            "Attributes": {}
        },
        "CreatedAt": 1.53e9, "ModifiedAt": 1_530_920_505.0
    })
}

fn any_path(path: &str) -> [&str; 5] {
    ["*", "*", "*", "*", path]
}

/// Valid `GetSamplingRules` answers.
fn rules_seeds() -> Vec<String> {
    let mut version_2 = record("v2", 1.0, 1.0, 1.0, any_path("*"));
    version_2["SamplingRule"]["Version"] = json!(2);
    let mut arn = record("arn", 1.0, 1.0, 1.0, any_path("*"));
    arn["SamplingRule"]["ResourceARN"] = json!("arn:aws:ecs:x");
    let mut attrs = record("attrs", 1.0, 1.0, 1.0, any_path("*"));
    attrs["SamplingRule"]["Attributes"] = json!({"a": "b"});
    vec![
        // The rules of sampling_centralized.rs, invalid records included.
        json!({ "SamplingRuleRecords": [
            record("Default", 10000.0, 0.0, 0.0, any_path("*")),
            record("health", 20.0, 0.0, 0.0, ["*", "*", "*", "GET", "/health"]),
            record("checkout", 10.0, 1.0, 0.0, ["*", "*", "*", "POST", "/api/checkout"]),
            record("api-b", 30.0, 0.0, 1.0, any_path("/api/*")),
            record("api-a", 30.0, 0.0, 1.0, any_path("/api/*")),
            version_2, arn, attrs,
        ]})
        .to_string(),
        // The API documentation's example.
        json!({ "SamplingRuleRecords": [
            record("Default", 10000.0, 0.01, 0.0, any_path("*")),
            record("base-scorekeep", 9000.0, 0.1, 2.0, ["Scorekeep", "*", "*", "*", "*"]),
            record("polling-scorekeep", 5000.0, 0.003, 0.0,
                ["Scorekeep", "*", "*", "GET", "/api/state/*"]),
        ], "NextToken": null })
        .to_string(),
        json!({ "SamplingRuleRecords": [
            record("ec2", 5.0, 1.0, 0.0, ["*", "AWS::EC2::Instance", "*.example.com", "*", "*"]),
            record("ünï", 6.0, 0.0, 1.0, ["sv?", "*", "*", "G?T", "/é/*"]),
            record("Default", 10000.0, 1.0, 1.0, any_path("*")),
        ]})
        .to_string(),
        json!({ "SamplingRuleRecords": [] }).to_string(),
    ]
}

/// Valid `SamplingTargets` answers for the rules of the loopback lanes.
fn targets_seeds() -> Vec<String> {
    vec![
        // The API documentation's example, for one of our rules.
        json!({
            "SamplingTargetDocuments": [{
                "RuleName": "r-half", "FixedRate": 0.1, "ReservoirQuota": 2,
                "ReservoirQuotaTTL": (T0 + 100) as f64, "Interval": 10
            }],
            "LastRuleModification": 1_530_920_505.0,
            "UnprocessedStatistics": []
        })
        .to_string(),
        json!({
            "SamplingTargetDocuments": [
                { "RuleName": "r-low", "FixedRate": 1.0 },
                { "RuleName": "r-high", "FixedRate": 0.0, "ReservoirQuota": 3,
                  "ReservoirQuotaTTL": (T0 + 1_000_000) as f64, "Interval": 1 },
                { "RuleName": "ghost", "FixedRate": 0.5 },
                { "RuleName": "Default", "ReservoirQuotaTTL": (T0 + 50) as f64 }
            ],
            "LastRuleModification": (T0 + 10) as f64,
            "UnprocessedStatistics": [
                { "RuleName": "api", "ErrorCode": "400", "Message": "unknown rule" }
            ]
        })
        .to_string(),
        json!({
            "SamplingTargetDocuments": [
                { "RuleName": "api", "FixedRate": 0.0, "ReservoirQuota": 0,
                  "ReservoirQuotaTTL": (T0 + 100_000) as f64 }
            ],
            "UnprocessedStatistics": [{ "RuleName": "r-low", "ErrorCode": "500" }]
        })
        .to_string(),
        json!({ "SamplingTargetDocuments": [], "LastRuleModification": 1.0,
                "UnprocessedStatistics": [] })
        .to_string(),
    ]
}

/// Fragments worth splicing in: JSON syntax, numbers just in and out of range, numbers
/// JSON cannot hold, escapes, the answers' keys.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    " ",
    "\n",
    "\0",
    "\u{7f}",
    "\u{85}",
    "é",
    "🦀",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "false",
    "0",
    "1",
    "-1",
    "-0",
    "0.5",
    "1.5",
    "1e2",
    "1e-400",
    "1e400",
    "NaN",
    "Infinity",
    "01",
    ".5",
    "18446744073709551616",
    "-9223372036854775809",
    "\"SamplingRuleRecords\"",
    "\"SamplingRule\"",
    "\"RuleName\"",
    "\"Default\"",
    "\"Priority\"",
    "\"FixedRate\"",
    "\"ReservoirSize\"",
    "\"Version\"",
    "\"ResourceARN\"",
    "\"Attributes\"",
    "\"SamplingTargetDocuments\"",
    "\"ReservoirQuota\"",
    "\"ReservoirQuotaTTL\"",
    "\"Interval\"",
    "\"LastRuleModification\"",
    "\"UnprocessedStatistics\"",
    "\"ErrorCode\"",
    "\"FixedRate\": 2,",
    "\"FixedRate\": -0.5,",
    "\"ReservoirQuota\": -1,",
    "\"Priority\": 1.5,",
    "*",
    "?",
];

const KEYS: &[&str] = &[
    "SamplingRuleRecords",
    "SamplingRule",
    "RuleName",
    "Priority",
    "FixedRate",
    "ReservoirSize",
    "ServiceName",
    "ServiceType",
    "Host",
    "HTTPMethod",
    "URLPath",
    "ResourceARN",
    "Version",
    "Attributes",
    "SamplingTargetDocuments",
    "ReservoirQuota",
    "ReservoirQuotaTTL",
    "Interval",
    "LastRuleModification",
    "UnprocessedStatistics",
    "ErrorCode",
    "NextToken",
    "rulename",
    "",
    "\u{0}",
];

/// Rule names answers may use; the loopback lanes' canary rule is never among them.
const NAMES: &[&str] = &[
    "Default", "r-low", "r-high", "r-half", "api", "ghost", "health", "checkout", "api-a", "x",
    "ünï", "",
];

fn random_char(rng: &mut FuzzRng) -> char {
    match rng.below(4) {
        0 => char::from(rng.below(0x80) as u8),
        1 => char::from(rng.below(0x20) as u8),
        2 => char::from_u32(rng.below(0x800) as u32).unwrap_or('\u{fffd}'),
        _ => char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}'),
    }
}

fn long_string(rng: &mut FuzzRng) -> String {
    let len = if rng.chance(4) {
        1000 + rng.below(10_000)
    } else {
        rng.below(60)
    };
    let unit = rng.pick(&["a", "é", "*", "?", "🦀", "/", "\u{0}", "\\", "\""]);
    unit.repeat(len)
}

/// A value of the wrong type, out of range, at a boundary, or just odd.
fn weird_value(rng: &mut FuzzRng) -> Value {
    match rng.below(30) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-0.0),
        4 => json!(1),
        5 => json!(-1),
        6 => json!(0.5),
        7 => json!(1.000_000_1),
        8 => json!(-0.0001),
        9 => json!(1.5),
        10 => json!(u64::MAX),
        11 => json!(i64::MIN),
        12 => json!(1e308),
        13 => json!(-1e308),
        14 => json!(5e-324),
        15 => json!(1.0),
        16 => json!(9.3e18),
        17 => json!("NaN"),
        18 => json!("Infinity"),
        19 => json!("1"),
        20 => json!(""),
        21 => json!("*"),
        22 => json!([]),
        23 => json!({}),
        24 => json!([1, "two", null]),
        25 => json!({"RuleName": "x"}),
        26 => json!(T0 as f64),
        27 => json!(rng.below(1 << 20)),
        _ => Value::String(long_string(rng)),
    }
}

/// JSON pointers to every node of `v` (bounded).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    if out.len() > 4096 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One blind structural edit of a random node.
fn mutate_value(rng: &mut FuzzRng, root: &mut Value) {
    let mut ptrs = Vec::new();
    pointers(root, String::new(), &mut ptrs);
    let ptr = ptrs[rng.below(ptrs.len())].clone();
    let Some(node) = root.pointer_mut(&ptr) else {
        return;
    };
    match rng.below(7) {
        0 | 1 => *node = weird_value(rng),
        2 => {
            let depth = if rng.chance(8) {
                100 + rng.below(80)
            } else {
                1 + rng.below(3)
            };
            let mut v = node.take();
            for _ in 0..depth {
                v = if rng.chance(2) {
                    json!([v])
                } else {
                    json!({ "SamplingRule": v })
                };
            }
            *node = v;
        }
        _ => match node {
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                if !keys.is_empty() && rng.chance(2) {
                    m.remove(&keys[rng.below(keys.len())]);
                } else {
                    let v = weird_value(rng);
                    m.insert(rng.pick(KEYS).to_owned(), v);
                }
            }
            Value::Array(a) if !a.is_empty() => match rng.below(3) {
                0 => {
                    let copy = a[rng.below(a.len())].clone();
                    let most = if rng.chance(16) { 3000 } else { 3 };
                    for _ in 0..1 + rng.below(most) {
                        a.push(copy.clone());
                    }
                }
                1 => {
                    let (i, j) = (rng.below(a.len()), rng.below(a.len()));
                    a.swap(i, j);
                }
                _ => {
                    a.remove(rng.below(a.len()));
                }
            },
            other => *other = weird_value(rng),
        },
    }
}

fn rate(rng: &mut FuzzRng) -> f64 {
    if rng.chance(3) {
        rng.below(1001) as f64 / 1000.0
    } else {
        rng.pick(&[
            0.0,
            1.0,
            -0.0,
            5e-324,
            1.0 - f64::EPSILON / 2.0,
            1.5,
            -0.5,
            1e300,
        ])
    }
}

fn pattern(rng: &mut FuzzRng) -> Value {
    const PIECES: &[&str] = &[
        "*", "?", "a", "GET", "/api", "/", ".", "shop", "é", "K", "\u{212a}", "İ", "🦀",
    ];
    if rng.chance(16) {
        return weird_value(rng);
    }
    let mut p = String::new();
    for _ in 0..rng.below(5) {
        p.push_str(rng.pick(PIECES));
    }
    Value::String(p)
}

/// Edits within the rules answer's format: values near and past their limits, names
/// repeated, records added, removed, duplicated.
fn mutate_rules_answer(rng: &mut FuzzRng, root: &mut Value) {
    let Some(records) = root
        .get_mut("SamplingRuleRecords")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let n = records.len();
    if n == 0 || rng.chance(4) {
        let name = rng.pick(NAMES);
        let p = [
            rng.pick(&["*", "*", "shop", "Scorekeep"]),
            "*",
            rng.pick(&["*", "*", "*.example.com"]),
            rng.pick(&["*", "GET", "POST"]),
            rng.pick(&["*", "/api/*", "/health", "/é"]),
        ];
        let prio = rng.pick(&[0.0, 1.0, 10.0, 10_000.0, -5.0, 1e15, 9.3e18, 0.5]);
        let reservoir = rng.pick(&[0.0, 1.0, 2.0, 1e10, -1.0, 0.5, 1e300]);
        let r = record(name, prio, rate(rng), reservoir, p);
        records.insert(rng.below(n + 1), r);
        return;
    }
    let i = rng.below(n);
    if rng.chance(5) {
        let copy = records[i].clone();
        records.insert(rng.below(n + 1), copy);
        return;
    }
    // (Indexing assigns only into objects.)
    let Some(rule) = records[i].get_mut("SamplingRule").filter(|r| r.is_object()) else {
        return;
    };
    match rng.below(10) {
        0 => rule["RuleName"] = json!(rng.pick(NAMES)),
        1 => {
            rule["Priority"] = json!(rng.pick(&[0.0, 1.0, 29.0, 31.0, 1e4, -1.0, 1.5, 1e19, -1e19]))
        }
        2 | 3 => rule["FixedRate"] = json!(rate(rng)),
        4 => rule["ReservoirSize"] = json!(rng.pick(&[0.0, 1.0, 0.9, -0.0, -1.0, 1e19])),
        5 => rule["Version"] = json!(rng.pick(&[1.0, 2.0, 0.0, 1.000_000_1])),
        6 => rule["ResourceARN"] = json!(rng.pick(&["*", "arn:aws:x", ""])),
        7 => {
            rule["Attributes"] =
                [json!({}), Value::Null, json!({"a": "b"}), json!([])][rng.below(4)].clone()
        }
        _ => {
            let key = rng.pick(&[
                "ServiceName",
                "ServiceType",
                "Host",
                "HTTPMethod",
                "URLPath",
            ]);
            rule[key] = pattern(rng);
        }
    }
}

fn ttl(rng: &mut FuzzRng, now: u64) -> Value {
    match rng.below(7) {
        0 => json!(now.saturating_sub(1) as f64),
        1 => json!((now + 10) as f64),
        2 => json!((now + 1_000_000) as f64),
        3 => json!(0),
        4 => json!(-1),
        5 => json!(1e300),
        _ => weird_value(rng),
    }
}

/// Edits within the targets answer's format.
fn mutate_targets_answer(rng: &mut FuzzRng, root: &mut Value, now: u64) {
    if !root.is_object() {
        return;
    }
    match rng.below(8) {
        0 => {
            root["LastRuleModification"] = match rng.below(4) {
                0 => json!(0),
                1 => json!((now + 1) as f64),
                2 => json!(-1e300),
                _ => weird_value(rng),
            }
        }
        1 => {
            let code = rng.pick(&["400", "429", "500", "4", "", "x"]);
            root["UnprocessedStatistics"] =
                json!([{ "RuleName": rng.pick(NAMES), "ErrorCode": code, "Message": "m" }]);
        }
        _ => {
            let mut doc = json!({ "RuleName": rng.pick(NAMES) });
            for _ in 0..=rng.below(4) {
                match rng.below(4) {
                    0 => doc["FixedRate"] = json!(rate(rng)),
                    1 => {
                        doc["ReservoirQuota"] = json!(rng.pick(&[
                            0.0,
                            1.0,
                            3.0,
                            2.7,
                            1e19,
                            1.9e19,
                            -1.0,
                            1e300,
                            4_294_967_296.0
                        ]))
                    }
                    2 => doc["ReservoirQuotaTTL"] = ttl(rng, now),
                    _ => doc["Interval"] = json!(rng.pick(&[0.0, 1.0, 10.0, 1e18, -1.0])),
                }
            }
            match &mut root["SamplingTargetDocuments"] {
                Value::Array(docs) => {
                    let at = rng.below(docs.len() + 1);
                    docs.insert(at, doc);
                }
                other => *other = json!([doc]),
            }
        }
    }
}

fn mutate_text(rng: &mut FuzzRng, base: &str, seeds: &[String]) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(8) {
            0 | 1 => s.splice(at..at, rng.pick(TOKENS).chars()).for_each(drop),
            2 if !s.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(s.len());
                s.drain(at.min(end)..end);
            }
            3 if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] = random_char(rng);
            }
            4 => {
                let end = (at + rng.below(120)).min(s.len());
                let piece: Vec<char> = s[at.min(end)..end].to_vec();
                s.splice(end..end, piece).for_each(drop);
            }
            5 => {
                let other: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(200)).min(other.len());
                s.splice(at..at, other[from..to].iter().copied())
                    .for_each(drop);
            }
            6 if rng.chance(4) => s.truncate(at),
            _ => {
                // A duplicate key after an opening brace.
                let braces: Vec<usize> = s
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == '{')
                    .map(|(i, _)| i)
                    .collect();
                if !braces.is_empty() {
                    let i = braces[rng.below(braces.len())] + 1;
                    let text = format!("\"{}\": {},", rng.pick(KEYS), weird_value(rng));
                    s.splice(i..i, text.chars()).for_each(drop);
                }
            }
        }
    }
    s.into_iter().collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rules,
    Targets,
}

/// One to four edits of `base`: within the format, blind on the JSON, or on the text.
fn mutate(rng: &mut FuzzRng, base: &str, kind: Kind, seeds: &[String], now: u64) -> String {
    if let Ok(mut v) = serde_json::from_str::<Value>(base) {
        if rng.chance(2) {
            for _ in 0..=rng.below(3) {
                match kind {
                    Kind::Rules => mutate_rules_answer(rng, &mut v),
                    Kind::Targets => mutate_targets_answer(rng, &mut v, now),
                }
            }
        } else if rng.chance(2) {
            for _ in 0..=rng.below(2) {
                mutate_value(rng, &mut v);
            }
        } else {
            return mutate_text(rng, base, seeds);
        }
        let text = if rng.chance(4) {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            v.to_string()
        };
        return if rng.chance(4) {
            mutate_text(rng, &text, seeds)
        } else {
            text
        };
    }
    mutate_text(rng, base, seeds)
}

// ---------------------------------------------------------------------------------------
// An independent reading of the rules answer.

/// A console rule the answer should put in force.
#[derive(Debug, Clone)]
struct ExpRule {
    name: String,
    priority: i64,
    rate: f64,
    borrows: bool,
    /// Service name, service type, host, HTTP method, URL path.
    patterns: [String; 5],
}

#[derive(Debug)]
enum RulesOutcome {
    /// The body is not a rules answer: the rules in force stay.
    Refused,
    /// The rules in force afterwards: the others by (priority, name), then `Default`.
    Applied {
        accepted: usize,
        rules: Vec<ExpRule>,
        default: Option<ExpRule>,
    },
    /// A record the reading cannot judge (a rule given as an array, which serde may read
    /// field by field): only the weaker properties are checked.
    Unsure,
}

/// The answer's shape: `SamplingRuleRecords` is an array; any other key is skipped unread
/// (so garbage there, even a lone surrogate escape, does not spoil the answer).
#[derive(Deserialize)]
struct RulesShape {
    #[serde(rename = "SamplingRuleRecords")]
    records: Vec<Value>,
}

fn read_rules_answer(body: &str) -> RulesOutcome {
    let Ok(RulesShape { records }) = serde_json::from_str::<RulesShape>(body) else {
        return RulesOutcome::Refused;
    };
    let mut accepted: Vec<ExpRule> = Vec::new();
    let mut names = HashSet::new();
    for record in &records {
        let rule = match record.get("SamplingRule") {
            Some(Value::Object(rule)) => rule,
            Some(Value::Array(_)) => return RulesOutcome::Unsure,
            _ => continue,
        };
        // A field of the wrong type makes the record malformed; null is absent.
        let mut malformed = false;
        let mut text = |k: &str| match rule.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                malformed = true;
                None
            }
        };
        let name = text("RuleName");
        let arn = text("ResourceARN");
        let patterns = [
            text("ServiceName"),
            text("ServiceType"),
            text("Host"),
            text("HTTPMethod"),
            text("URLPath"),
        ];
        let mut number = |k: &str| match rule.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                malformed = true;
                None
            }
        };
        let version = number("Version");
        let priority = number("Priority");
        let fixed_rate = number("FixedRate");
        let reservoir = number("ReservoirSize");
        if malformed {
            continue;
        }
        let attributes_empty = match rule.get("Attributes") {
            None | Some(Value::Null) => true,
            Some(Value::Object(o)) => o.is_empty(),
            Some(_) => false,
        };
        let (Some(name), Some(priority), Some(rate), Some(reservoir)) =
            (name, priority, fixed_rate, reservoir)
        else {
            continue;
        };
        if version != Some(1.0)
            || arn.as_deref() != Some("*")
            || !attributes_empty
            || name.is_empty()
            || priority.fract() != 0.0
            || !(0.0..=1.0).contains(&rate)
            || reservoir < 0.0
            || patterns.iter().any(Option::is_none)
        {
            continue;
        }
        // Names are unique: the first valid record of a name wins.
        if !names.insert(name.clone()) {
            continue;
        }
        accepted.push(ExpRule {
            name,
            priority: priority as i64,
            rate,
            borrows: reservoir as u64 != 0,
            patterns: patterns.map(Option::unwrap_or_default),
        });
    }
    let count = accepted.len();
    let default = accepted.iter().find(|r| r.name == "Default").cloned();
    let mut rules: Vec<ExpRule> = accepted
        .into_iter()
        .filter(|r| r.name != "Default")
        .collect();
    rules.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    RulesOutcome::Applied {
        accepted: count,
        rules,
        default,
    }
}

/// Owned request attributes: service name, service type, host, method, URL path.
type Req = [Option<String>; 5];

fn request(r: &Req) -> SamplingRequest<'_> {
    SamplingRequest {
        service_name: r[0].as_deref(),
        service_type: r[1].as_deref(),
        host: r[2].as_deref(),
        method: r[3].as_deref(),
        url_path: r[4].as_deref(),
        ..Default::default()
    }
}

fn req(parts: [Option<&str>; 5]) -> Req {
    parts.map(|p| p.map(str::to_owned))
}

/// Text a pattern certainly matches: `*` stands for nothing, `?` for one letter.
fn instance(pattern: &str) -> String {
    pattern
        .chars()
        .filter(|c| *c != '*')
        .map(|c| if c == '?' { 'q' } else { c })
        .collect()
}

fn requests_for(rules: &[ExpRule]) -> Vec<Req> {
    let mut out = vec![
        req([
            Some("shop"),
            None,
            Some("shop.example.com"),
            Some("GET"),
            Some("/"),
        ]),
        req([None, None, None, Some("GET"), Some("/health")]),
        req([
            Some("x"),
            Some("y"),
            Some("z"),
            Some("POST"),
            Some("/api/checkout"),
        ]),
        req([Some("shop"), None, None, Some("GET"), Some("/api/x")]),
        req([None; 5]),
        req([Some(""), Some(""), Some(""), Some(""), Some("")]),
        req([
            Some("Scorekeep"),
            Some("AWS::EC2::Instance"),
            Some("a.EXAMPLE.com"),
            Some("get"),
            Some("/api/state/1"),
        ]),
        req([
            Some("SVC"),
            None,
            Some("\u{212a}"),
            Some("gEt"),
            Some("/É/x"),
        ]),
    ];
    for r in rules.iter().take(4) {
        out.push(r.patterns.clone().map(|p| Some(instance(&p))));
    }
    out
}

fn rule_matches(rule: &ExpRule, r: &Req) -> bool {
    rule.patterns
        .iter()
        .zip(r)
        // An empty attribute is an absent one.
        .all(|(p, t)| {
            t.as_deref()
                .filter(|t| !t.is_empty())
                .is_none_or(|t| wildcard_match(p, t))
        })
}

/// Decisions follow the expected rules. The fallback (local rules) samples everything, and
/// `clock` must show a second no decision has used yet.
fn check_rule_decisions(
    sampler: &CentralizedSampler,
    rules: &[ExpRule],
    default: Option<&ExpRule>,
) {
    let mut borrowed = HashSet::new();
    for r in requests_for(rules)
        .iter()
        .cycle()
        .take(2 * (8 + rules.len().min(4)))
    {
        let want = rules.iter().find(|rule| rule_matches(rule, r)).or(default);
        let d = sampler.should_sample(&request(r));
        match want {
            None => {
                assert_eq!(d.rule_name, None, "{r:?}");
                assert!(d.sampled, "fallback for {r:?}");
            }
            Some(rule) => {
                assert_eq!(d.rule_name.as_deref(), Some(rule.name.as_str()), "{r:?}");
                if rule.borrows && borrowed.insert(rule.name.clone()) {
                    assert!(d.sampled, "borrowed request of {rule:?} for {r:?}");
                } else if rule.rate == 0.0 {
                    assert!(!d.sampled, "rate 0 of {rule:?} for {r:?}");
                } else if rule.rate == 1.0 {
                    assert!(d.sampled, "rate 1 of {rule:?} for {r:?}");
                }
            }
        }
    }
}

fn in_force(sampler: &CentralizedSampler) -> Vec<String> {
    sampler.rule_names().iter().map(|n| n.to_string()).collect()
}

/// What must hold after `body` was offered as a rules answer (`result`: what
/// `apply_rules_response` said, when it was called directly).
fn check_rules_outcome(
    sampler: &CentralizedSampler,
    body: &str,
    before: &[String],
    result: Option<&Result<usize, InvalidAnswer>>,
) {
    match read_rules_answer(body) {
        RulesOutcome::Refused => {
            if let Some(result) = result {
                let msg = result
                    .as_ref()
                    .expect_err("a body that is no rules answer applied")
                    .to_string();
                assert!(
                    msg.starts_with("invalid GetSamplingRules answer: ")
                        && msg.len() > "invalid GetSamplingRules answer: ".len() + 3,
                    "{msg:?}"
                );
                assert!(!msg.contains(char::is_control), "{msg:?}");
                assert!(msg.len() <= 300, "{} bytes: {msg:?}", msg.len());
            }
            assert_eq!(in_force(sampler), before, "the rules in force changed");
        }
        RulesOutcome::Applied {
            accepted,
            rules,
            default,
        } => {
            if let Some(result) = result {
                assert_eq!(result.as_ref().ok(), Some(&accepted));
            }
            let mut want: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
            want.extend(default.iter().map(|r| r.name.clone()));
            assert_eq!(in_force(sampler), want);
            assert!(!sampler.is_using_fallback());
            check_rule_decisions(sampler, &rules, default.as_ref());
        }
        RulesOutcome::Unsure => {
            let names = in_force(sampler);
            for r in requests_for(&[]) {
                let d = sampler.should_sample(&request(&r));
                if let Some(n) = d.rule_name {
                    assert!(names.iter().any(|x| **x == *n), "{n} not in {names:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// In process: `apply_rules_response`.

const SEED: u64 = 0x5eed_0000_a5e7_7a95;

fn budget(runs: u64) -> FuzzBudget {
    fuzz_budget(SEED, runs)
}

#[test]
fn rules_answers_in_process() {
    let budget = budget(IN_PROCESS_RUNS);
    let seed = budget.seed;
    let seeds = rules_seeds();
    let clock = Arc::new(ManualClock::new(T0));
    let sampler = CentralizedSampler::builder(&DaemonAddress::default())
        .polling(false)
        .clock(clock.clone())
        .seed(seed)
        .fallback(LocalRules::new(0, 1.0))
        .build();
    let mut rng = FuzzRng::new(seed);
    let started = Instant::now();
    let (mut runs, mut refused, mut applied) = (0u64, 0u64, 0u64);
    let mut current = seeds[0].clone();
    while runs < seeds.len() as u64 || (budget.more(runs) && runs < MAX_IN_PROCESS) {
        let body = if runs < seeds.len() as u64 {
            seeds[runs as usize].clone()
        } else if runs % 8 == 0 {
            // Recovery: a pristine answer applies in full whatever came before.
            seeds[rng.below(seeds.len())].clone()
        } else {
            let base = if runs % 4 == 1 {
                seeds[rng.below(seeds.len())].clone()
            } else {
                current.clone()
            };
            mutate(&mut rng, &base, Kind::Rules, &seeds, T0)
        };
        // A fresh second for every body, so reservoirs start empty.
        clock.advance(1);
        let before = in_force(&sampler);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let result = sampler.apply_rules_response(&body);
            if runs % 8 == 0 || runs < seeds.len() as u64 {
                assert!(result.is_ok(), "a valid answer was refused: {result:?}");
            }
            check_rules_outcome(&sampler, &body, &before, Some(&result));
            result.is_ok()
        }));
        match outcome {
            Ok(true) => applied += 1,
            Ok(false) => refused += 1,
            Err(panic) => {
                eprintln!("fuzz_sampling_answers: rules answer {runs} failed ({budget})");
                eprintln!("rules in force before: {before:?}");
                eprintln!("body: {body:?}");
                std::panic::resume_unwind(panic);
            }
        }
        if body.len() <= MAX_CHAINED_LEN {
            current = body;
        }
        runs += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz_sampling_answers: {runs} rules answers in process in {elapsed:.1} s ({:.0}/s; {applied} applied, {refused} refused; {budget})",
        runs as f64 / elapsed
    );
    assert!(runs > 100, "only {runs} answers were tried");
    assert!(
        applied > 10 && refused > 10,
        "{applied} applied, {refused} refused"
    );
}

// ---------------------------------------------------------------------------------------
// Over loopback: a fake daemon, one port per lane.

/// One endpoint of a lane: queued answers, then `idle` for every further call.
#[derive(Default)]
struct Endpoint {
    queue: VecDeque<(StatusCode, String)>,
    idle: String,
    served: u64,
}

#[derive(Default)]
struct LaneState {
    rules: Endpoint,
    targets: Endpoint,
}

#[derive(Default)]
struct Lane {
    state: Mutex<LaneState>,
    served: Condvar,
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serve(&self, targets: bool) -> (StatusCode, String) {
        let mut s = self.lock();
        let e = if targets {
            &mut s.targets
        } else {
            &mut s.rules
        };
        let answer = e
            .queue
            .pop_front()
            .unwrap_or_else(|| (StatusCode::OK, e.idle.clone()));
        e.served += 1;
        drop(s);
        self.served.notify_all();
        answer
    }

    /// Queues one answer; returns the number of calls served so far.
    fn queue(&self, targets: bool, status: StatusCode, body: String) -> u64 {
        let mut s = self.lock();
        let e = if targets {
            &mut s.targets
        } else {
            &mut s.rules
        };
        e.queue.push_back((status, body));
        e.served
    }

    /// Waits until `count` calls were served, with `nudge` run between checks (to give
    /// the poller something to report); fails if the poller thread is gone or stalls.
    fn wait_served(
        &self,
        targets: bool,
        count: u64,
        poller: &Weak<()>,
        stop: &AtomicBool,
        mut nudge: impl FnMut(),
    ) -> Result<(), String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut s = self.lock();
        loop {
            let served = if targets {
                s.targets.served
            } else {
                s.rules.served
            };
            if served >= count {
                return Ok(());
            }
            if poller.upgrade().is_none() {
                return Err("the poller thread died".into());
            }
            if stop.load(Ordering::Relaxed) {
                return Err("stopped".into());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no poll for {STEP_TIMEOUT:?} ({served} of {count})"
                ));
            }
            drop(s);
            nudge();
            s = self.lock();
            s = self
                .served
                .wait_timeout(s, Duration::from_millis(20))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

async fn rules_handler(State(lane): State<Arc<Lane>>) -> (StatusCode, String) {
    lane.serve(false)
}

async fn targets_handler(State(lane): State<Arc<Lane>>) -> (StatusCode, String) {
    lane.serve(true)
}

/// The lanes' servers, on one thread and runtime; dropping it closes them.
struct FakeDaemons {
    addrs: Vec<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeDaemons {
    fn start(lanes: &[Arc<Lane>]) -> FakeDaemons {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let apps: Vec<Router> = lanes
            .iter()
            .map(|lane| {
                Router::new()
                    .route("/GetSamplingRules", post(rules_handler))
                    .route("/SamplingTargets", post(targets_handler))
                    .with_state(Arc::clone(lane))
            })
            .collect();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut addrs = Vec::new();
                for app in apps {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    addrs.push(listener.local_addr().unwrap());
                    tokio::spawn(async move {
                        let _ = axum::serve(listener, app).await;
                    });
                }
                bound_tx.send(addrs).unwrap();
                let _ = stop_rx.await;
            });
        });
        let addrs = bound_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        FakeDaemons {
            addrs,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for FakeDaemons {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A console rule of the targets lanes and what the answers so far made of it.
#[derive(Debug, Clone)]
struct Modeled {
    name: &'static str,
    path: &'static str,
    rate: f64,
    borrows: bool,
    /// `u64::MAX`: no quota granted yet.
    quota: u64,
    ttl: u64,
}

/// Reported every round, so each round has statistics to send; no answer names it.
const CANARY: &str = "canary-7d1e0b";

fn lane_rules() -> Vec<Modeled> {
    let m = |name, path, rate, borrows| Modeled {
        name,
        path,
        rate,
        borrows,
        quota: u64::MAX,
        ttl: 0,
    };
    vec![
        m("r-low", "/low", 0.0, false),
        m("r-high", "/high", 1.0, false),
        m("r-half", "/half", 0.5, true),
        m("api", "/api/x", 0.1, true),
        m("Default", "/other", 0.05, true),
    ]
}

fn lane_rules_answer() -> String {
    let prio = |name: &str| match name {
        "r-low" => 10.0,
        "r-high" => 11.0,
        "r-half" => 12.0,
        "api" => 20.0,
        _ => 10_000.0,
    };
    let mut records = vec![record(CANARY, 1.0, 0.0, 0.0, any_path("/canary-7d1e0b"))];
    for r in lane_rules() {
        let path = match r.name {
            "api" => "/api/*",
            "Default" => "*",
            _ => r.path,
        };
        records.push(record(
            r.name,
            prio(r.name),
            r.rate,
            f64::from(u8::from(r.borrows)),
            any_path(path),
        ));
    }
    json!({ "SamplingRuleRecords": records }).to_string()
}

const IDLE_TARGETS: &str =
    r#"{"SamplingTargetDocuments":[],"LastRuleModification":0,"UnprocessedStatistics":[]}"#;

/// The answer's shape as the X-Ray API defines it.
#[derive(Deserialize)]
struct TargetsShape {
    #[serde(rename = "SamplingTargetDocuments", default)]
    docs: Option<Vec<Value>>,
    #[serde(rename = "LastRuleModification", default)]
    _modified: Option<f64>,
    #[serde(rename = "UnprocessedStatistics", default)]
    _unprocessed: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct TargetShape {
    #[serde(rename = "RuleName")]
    name: String,
    #[serde(rename = "FixedRate", default)]
    rate: Option<f64>,
    #[serde(rename = "ReservoirQuota", default)]
    quota: Option<f64>,
    #[serde(rename = "ReservoirQuotaTTL", default)]
    ttl: Option<f64>,
    #[serde(rename = "Interval", default)]
    _interval: Option<f64>,
}

fn whole(x: Option<f64>) -> Option<u64> {
    x.filter(|x| x.is_finite() && *x >= 0.0).map(|x| x as u64)
}

/// What a targets answer does to the rules: valid values apply, the rest is ignored.
fn apply_model(model: &mut [Modeled], status: StatusCode, body: &str) {
    if status != StatusCode::OK {
        return;
    }
    let Ok(answer) = serde_json::from_str::<TargetsShape>(body) else {
        return;
    };
    for doc in answer.docs.unwrap_or_default() {
        let Ok(t) = serde_json::from_value::<TargetShape>(doc) else {
            continue;
        };
        let Some(rule) = model.iter_mut().find(|r| r.name == t.name) else {
            continue;
        };
        if let Some(rate) = t.rate.filter(|r| (0.0..=1.0).contains(r)) {
            rule.rate = rate;
        }
        // Each value replaces the current one when present; a TTL alone gives a rule that
        // had no quota a quota of 0.
        let quota = whole(t.quota);
        if let Some(ttl) = whole(t.ttl) {
            rule.ttl = ttl;
            if quota.is_none() && rule.quota == u64::MAX {
                rule.quota = 0;
            }
        }
        if let Some(quota) = quota {
            rule.quota = quota.min(u64::MAX - 1);
        }
    }
}

const PER_RULE: usize = 12;

/// `PER_RULE` requests per rule in a fresh second: the quota (while valid) or one borrowed
/// request come first, then the rate.
fn check_targets_model(sampler: &CentralizedSampler, model: &[Modeled], now: u64) {
    for rule in model {
        let quota_valid = rule.quota != u64::MAX && now <= rule.ttl;
        let first = if quota_valid {
            usize::try_from(rule.quota)
                .unwrap_or(usize::MAX)
                .min(PER_RULE)
        } else {
            usize::from(rule.borrows)
        };
        let r = req([None, None, None, Some("GET"), Some(rule.path)]);
        let mut sampled = 0;
        for i in 0..PER_RULE {
            let d = sampler.should_sample(&request(&r));
            assert_eq!(d.rule_name.as_deref(), Some(rule.name));
            if i < first {
                assert!(d.sampled, "request {i} of {rule:?} (quota or borrow)");
            }
            sampled += usize::from(d.sampled);
        }
        if rule.rate == 0.0 {
            assert_eq!(sampled, first, "{rule:?}");
        } else if rule.rate == 1.0 {
            assert_eq!(sampled, PER_RULE, "{rule:?}");
        } else {
            assert!(sampled >= first, "{rule:?}");
        }
    }
}

fn lane_sampler(
    addr: SocketAddr,
    clock: &Arc<ManualClock>,
    kind: Kind,
    seed: u64,
) -> CentralizedSampler {
    let (rules_every, targets_every) = match kind {
        Kind::Rules => (Duration::from_millis(10), Duration::from_secs(3600)),
        Kind::Targets => (Duration::from_secs(3600), Duration::from_millis(10)),
    };
    let sampler = CentralizedSampler::builder(&DaemonAddress::parse(&addr.to_string()).unwrap())
        .rules_interval(rules_every)
        .targets_interval(targets_every)
        .request_timeout(Duration::from_secs(5))
        .rule_cache_ttl(Duration::from_secs(1 << 40))
        .clock(clock.clone())
        .seed(seed)
        .fallback(LocalRules::new(0, 1.0))
        .build();
    sampler.start_polling();
    sampler
}

/// A valid targets answer with a known effect on one rule: rate 0 or 1, no quota left.
fn recovery_answer(rng: &mut FuzzRng, now: u64) -> String {
    let names = ["r-low", "r-high", "r-half", "api", "Default"];
    json!({
        "SamplingTargetDocuments": [{
            "RuleName": names[rng.below(names.len())],
            "FixedRate": if rng.chance(2) { 0.0 } else { 1.0 },
            "ReservoirQuota": 0, "ReservoirQuotaTTL": (now + 1000) as f64, "Interval": 1
        }],
        "LastRuleModification": 0, "UnprocessedStatistics": []
    })
    .to_string()
}

fn status(rng: &mut FuzzRng) -> StatusCode {
    match rng.below(40) {
        0 => StatusCode::INTERNAL_SERVER_ERROR,
        1 => StatusCode::NOT_FOUND,
        2 => StatusCode::NO_CONTENT,
        _ => StatusCode::OK,
    }
}

/// One targets lane: each round queues an answer, waits until the poller called again (so
/// the answer was fully processed, rules refresh included), then checks every rule.
fn run_targets_lane(
    lane: &Lane,
    addr: SocketAddr,
    seed: u64,
    budget: FuzzBudget,
    stop: &AtomicBool,
) -> u64 {
    let clock = Arc::new(ManualClock::new(T0));
    let sampler = lane_sampler(addr, &clock, Kind::Targets, seed);
    let poller = sampler.poller_liveness();
    // The lane's rules (the canary and five others) are in force before the first answer.
    let deadline = Instant::now() + STEP_TIMEOUT;
    while sampler.rule_names().len() < 6 {
        assert!(Instant::now() < deadline, "the lane's rules never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let seeds = targets_seeds();
    let mut rng = FuzzRng::new(seed);
    let mut model = lane_rules();
    let canary = req([None, None, None, Some("GET"), Some("/canary-7d1e0b")]);
    let nudge = || {
        sampler.should_sample(&request(&canary));
    };
    let mut current = seeds[0].clone();
    let mut rounds = 0;
    while budget.more(rounds) && rounds < MAX_ROUNDS_PER_LANE && !stop.load(Ordering::Relaxed) {
        let now = clock.epoch_seconds();
        let recovery = rounds % 4 == 3;
        let (code, body) = if recovery {
            (StatusCode::OK, recovery_answer(&mut rng, now))
        } else {
            let base = if rounds % 4 == 0 {
                seeds[rng.below(seeds.len())].clone()
            } else {
                current.clone()
            };
            (
                status(&mut rng),
                mutate(&mut rng, &base, Kind::Targets, &seeds, now),
            )
        };
        let before = in_force(&sampler);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let served = lane.queue(true, code, body.clone());
            lane.wait_served(true, served + 1, &poller, stop, nudge)?;
            // The call after it: the poller is done with the answer.
            lane.wait_served(true, served + 2, &poller, stop, nudge)?;
            apply_model(&mut model, code, &body);
            assert_eq!(in_force(&sampler), before, "targets changed the rules");
            clock.advance(1);
            check_targets_model(&sampler, &model, clock.epoch_seconds());
            Ok::<(), String>(())
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e == "stopped" => break,
            other => {
                stop.store(true, Ordering::Relaxed);
                eprintln!(
                    "fuzz_sampling_answers: targets lane (seed {seed}) failed at round {rounds} ({budget})",
                );
                eprintln!("answer ({code}): {body:?}");
                eprintln!("model: {model:?}");
                match other {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(Err(e)) => panic!("{e}"),
                    Ok(Ok(())) => unreachable!(),
                }
            }
        }
        if !recovery && body.len() <= MAX_CHAINED_LEN {
            current = body;
        }
        rounds += 1;
    }
    rounds
}

/// The rules lane: each round queues a rules answer; the poller's next call gets a garbage
/// answer (which leaves the rules alone), so the rules can be checked after it.
fn run_rules_lane(
    lane: &Lane,
    addr: SocketAddr,
    seed: u64,
    budget: FuzzBudget,
    stop: &AtomicBool,
) -> u64 {
    let clock = Arc::new(ManualClock::new(T0));
    lane.lock().rules.idle = "not json".into();
    let sampler = lane_sampler(addr, &clock, Kind::Rules, seed);
    let poller = sampler.poller_liveness();
    let seeds = rules_seeds();
    let mut rng = FuzzRng::new(seed);
    let mut current = seeds[0].clone();
    let mut rounds = 0;
    while budget.more(rounds) && rounds < MAX_ROUNDS_PER_LANE && !stop.load(Ordering::Relaxed) {
        let recovery = rounds % 4 == 3 || rounds == 0;
        let (code, body) = if recovery {
            (StatusCode::OK, seeds[rng.below(seeds.len())].clone())
        } else {
            let base = if rounds % 4 == 0 {
                seeds[rng.below(seeds.len())].clone()
            } else {
                current.clone()
            };
            (
                status(&mut rng),
                mutate(&mut rng, &base, Kind::Rules, &seeds, T0),
            )
        };
        let before = in_force(&sampler);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let served = lane.queue(false, code, body.clone());
            lane.wait_served(false, served + 2, &poller, stop, || {})?;
            clock.advance(1);
            let offered = if code == StatusCode::OK {
                body.as_str()
            } else {
                ""
            };
            check_rules_outcome(&sampler, offered, &before, None);
            if recovery {
                assert!(matches!(
                    read_rules_answer(&body),
                    RulesOutcome::Applied { .. }
                ));
            }
            Ok::<(), String>(())
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e == "stopped" => break,
            other => {
                stop.store(true, Ordering::Relaxed);
                eprintln!(
                    "fuzz_sampling_answers: rules lane (seed {seed}) failed at round {rounds} ({budget})",
                );
                eprintln!("rules in force before: {before:?}");
                eprintln!("answer ({code}): {body:?}");
                match other {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(Err(e)) => panic!("{e}"),
                    Ok(Ok(())) => unreachable!(),
                }
            }
        }
        if !recovery && body.len() <= MAX_CHAINED_LEN {
            current = body;
        }
        rounds += 1;
    }
    rounds
}

#[test]
fn answers_over_loopback() {
    let budget = budget(ROUNDS_PER_LANE);
    let seed = budget.seed;
    let kinds = [Kind::Rules, Kind::Targets, Kind::Targets];
    let lanes: Vec<Arc<Lane>> = kinds
        .iter()
        .map(|_| {
            let lane = Lane::default();
            {
                let mut s = lane.lock();
                s.rules.idle = lane_rules_answer();
                s.targets.idle = IDLE_TARGETS.to_owned();
            }
            Arc::new(lane)
        })
        .collect();
    let daemons = FakeDaemons::start(&lanes);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let rounds: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = kinds
            .iter()
            .zip(&lanes)
            .zip(&daemons.addrs)
            .enumerate()
            .map(|(i, ((kind, lane), addr))| {
                let stop = &stop;
                let lane_seed = seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                s.spawn(move || match kind {
                    Kind::Rules => run_rules_lane(lane, *addr, lane_seed, budget, stop),
                    Kind::Targets => run_targets_lane(lane, *addr, lane_seed, budget, stop),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    drop(daemons);
    let elapsed = started.elapsed().as_secs_f64();
    let total: u64 = rounds.iter().sum();
    eprintln!(
        "fuzz_sampling_answers: {total} answers over loopback in {elapsed:.1} s ({:.0}/s; rules lane {}, targets lanes {:?}; {budget})",
        total as f64 / elapsed,
        rounds[0],
        &rounds[1..],
    );
    assert!(
        rounds.iter().all(|&r| r >= 4),
        "rounds per lane: {rounds:?}"
    );
}
