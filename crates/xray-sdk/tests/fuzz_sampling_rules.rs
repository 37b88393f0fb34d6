//! Bounded fuzzing of local sampling rules files on stable Rust: a seeded mutation loop over
//! the crate's own rules files (`tests/data/sampling`) and documentation examples: [`RUNS`]
//! inputs from a fixed seed, the same on every machine (`XRAY_FUZZ_RUNS` changes the count;
//! `XRAY_FUZZ_SECS` runs for that many seconds instead, at most `MAX_RUNS` inputs).
//!
//! Inputs are mutated as text (tokens spliced in, bytes flipped, inserted, deleted, slices
//! duplicated, truncated) and as JSON (values swapped for wrong types, huge, negative or
//! NaN-like numbers, very long strings, deep nesting, keys removed, added, renamed or
//! duplicated). For every input:
//!
//! - `LocalRules::from_json_str` does not panic;
//! - it agrees with an independent reading of the file format: invalid JSON is a syntax error
//!   at the parser's line and column, valid JSON is accepted exactly when every field is
//!   valid (`fixed_target` a whole number in `u32`, `rate` in 0..=1, patterns strings, no
//!   unknown keys, version 1 or 2 with its own host key), and a rejected file names a field
//!   that is really at fault;
//! - an error message is short, free of control characters, and says where (line and
//!   column, or the field path) and what was expected;
//! - accepted rules equal the same rules built in code, and a `LocalSampler` on them decides
//!   without panicking: the first matching rule (checked against `wildcard_match`) applies,
//!   its reservoir grants `fixed_target` requests in the second, then rate 0 never samples
//!   and rate 1 always does;
//! - every 16th input also goes through `LocalRules::from_file` (sometimes with invalid
//!   UTF-8), and now and then through `Recorder::builder().sampling_rules_file` (the path
//!   `AWS_XRAY_SAMPLING_RULES` takes): same outcome, with the file named in the error.
//!
//! Reproduce a failure with the settings it prints: `XRAY_FUZZ_SEED=<seed> cargo test -p
//! xray-sdk --all-features --test fuzz_sampling_rules`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use xray_sdk::clock::ManualClock;
use xray_sdk::plugins::Plugins;
use xray_sdk::sampling::{LocalRule, LocalRules, LocalSampler, RulesError, wildcard_match};
use xray_sdk::testing::{FuzzRng, fuzz_budget};
use xray_sdk::{Recorder, Sampler, SamplingRequest};

/// Inputs tried by default (about 2 s in a debug build on a 2-core machine).
const RUNS: u64 = 20_000;
/// Upper bound on inputs, whatever the time budget.
const MAX_RUNS: u64 = 2_000_000;
/// Recorders built from a fuzzed file (each starts an emitter thread).
const MAX_RECORDERS: u32 = 64;
/// Longest input kept as the base of the next mutation.
const MAX_CHAINED_LEN: usize = 32 * 1024;

/// The crate's rules files (valid and invalid) and the documentation's examples.
const SEEDS: &[&str] = &[
    include_str!("data/sampling/v2.json"),
    include_str!("data/sampling/v1.json"),
    include_str!("data/sampling/bad-rate.json"),
    include_str!("data/sampling/bad-syntax.json"),
    include_str!("data/sampling/default-with-path.json"),
    include_str!("data/sampling/missing-url-path.json"),
    include_str!("data/sampling/no-default.json"),
    include_str!("data/sampling/v1-host.json"),
    include_str!("data/sampling/v2-service-name.json"),
    include_str!("data/sampling/version-3.json"),
    r#"{
  "version": 2,
  "default": { "fixed_target": 1, "rate": 0.05 },
  "rules": [
    { "description": "no health checks", "host": "*", "http_method": "GET",
      "url_path": "/health", "fixed_target": 0, "rate": 0 },
    { "description": "every checkout", "host": "*", "http_method": "POST",
      "url_path": "/api/checkout", "fixed_target": 10, "rate": 1 }
  ]
}"#,
    r#"{"version":2,"default":{"fixed_target":1,"rate":0.05}}"#,
    r#"{"version":1,"default":{"fixed_target":0,"rate":1,"description":"all"},"rules":null}"#,
    r#"{"version":2,"default":{"fixed_target":4294967295,"rate":0},"rules":[{"host":"shop.*.example.com","http_method":"G?T","url_path":"/api/*/items","fixed_target":3,"rate":0.5},{"host":"ünïcode*","http_method":"*","url_path":"*é","fixed_target":0,"rate":1}]}"#,
];

/// Fragments worth splicing in: JSON syntax, the format's keys, numbers just in and out of
/// range, numbers JSON cannot hold, escapes (control characters, surrogates) and wildcards.
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
    "\r\n",
    "\t",
    "\0",
    "\u{7f}",
    "\u{85}",
    "\u{feff}",
    "\u{202e}",
    "é",
    "🦀",
    "\\n",
    "\\u0000",
    "\\u001b[2J",
    "\\ud800",
    "\\udc00\\ud800",
    "\\\"",
    "null",
    "true",
    "false",
    "0",
    "1",
    "-1",
    "-0",
    "0.5",
    "1.0",
    "1.5",
    "1e0",
    "1e2",
    "1e-400",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "01",
    "1.",
    ".5",
    "+1",
    "0x10",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "\"version\"",
    "\"default\"",
    "\"rules\"",
    "\"host\"",
    "\"service_name\"",
    "\"http_method\"",
    "\"url_path\"",
    "\"fixed_target\"",
    "\"rate\"",
    "\"description\"",
    "\"rate\": 2,",
    "\"rate\": -0.5,",
    "\"fixed_target\": -1,",
    "\"fixed_target\": 1.5,",
    "\"version\": 1,",
    "\"host\": \"*\",",
    "*",
    "?",
    "**",
    "/api/*",
];

/// Object keys for JSON mutations: the format's own, near misses and foreign ones.
const KEYS: &[&str] = &[
    "version",
    "default",
    "rules",
    "host",
    "service_name",
    "http_method",
    "url_path",
    "fixed_target",
    "rate",
    "description",
    "Host",
    "RATE",
    "hots",
    "",
    "attributes",
    "\u{0}",
    "\n",
    "\u{1b}[31mred",
    "é",
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
    let len = match rng.below(4) {
        0 => 41 + rng.below(20),
        1 => 100 + rng.below(1000),
        _ => rng.below(40),
    };
    let unit = rng.pick(&["a", "é", "*", "?", "🦀", "/", "\u{0}", "\u{1b}", "\\", "\""]);
    let mut s: String = unit.repeat(len);
    if rng.chance(2) {
        s.push(random_char(rng));
    }
    s
}

/// A value of the wrong type, out of range, at a boundary, or just odd.
fn weird_value(rng: &mut FuzzRng) -> Value {
    match rng.below(34) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(false),
        3 => json!(0),
        4 => json!(-0.0),
        5 => json!(1),
        6 => json!(-1),
        7 => json!(2),
        8 => json!(0.5),
        9 => json!(1.000_000_1),
        10 => json!(-0.0001),
        11 => json!(1.5),
        12 => json!(4_294_967_295_u64),
        13 => json!(4_294_967_296_u64),
        14 => json!(u64::MAX),
        15 => json!(i64::MIN),
        16 => json!(1e308),
        17 => json!(-1e308),
        18 => json!(5e-324),
        19 => json!(1.0),
        20 => json!(2.0),
        21 => json!("NaN"),
        22 => json!("Infinity"),
        23 => json!("-inf"),
        24 => json!("1e999"),
        25 => json!(""),
        26 => json!("*"),
        27 => json!("0.5"),
        28 => json!([]),
        29 => json!({}),
        30 => json!([1, "two", null]),
        31 => json!({"fixed_target": 1, "rate": 0.5}),
        32 => json!(rng.below(1 << 20)),
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

fn nest(rng: &mut FuzzRng, v: Value) -> Value {
    let depth = if rng.chance(8) {
        100 + rng.below(80)
    } else {
        1 + rng.below(3)
    };
    let mut v = v;
    for _ in 0..depth {
        v = if rng.chance(2) {
            json!([v])
        } else {
            json!({ "rules": v })
        };
    }
    v
}

/// One structural edit of a random node.
fn mutate_value(rng: &mut FuzzRng, root: &mut Value) {
    let mut ptrs = Vec::new();
    pointers(root, String::new(), &mut ptrs);
    let ptr = ptrs[rng.below(ptrs.len())].clone();
    let Some(node) = root.pointer_mut(&ptr) else {
        return;
    };
    match rng.below(8) {
        0 | 1 => *node = weird_value(rng),
        2 => *node = nest(rng, node.take()),
        3 => {
            // Numbers just beyond what they were: negated, scaled, nudged.
            if let Some(x) = node.as_f64() {
                let y = match rng.below(5) {
                    0 => -x,
                    1 => x * 10f64.powi(rng.below(40) as i32),
                    2 => x + 1.0,
                    3 => x - 1.0,
                    _ => x + f64::EPSILON,
                };
                *node = json!(y);
            } else {
                *node = weird_value(rng);
            }
        }
        _ => match node {
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                match rng.below(4) {
                    0 if !keys.is_empty() => {
                        m.remove(&keys[rng.below(keys.len())]);
                    }
                    1 if !keys.is_empty() => {
                        // Rename: swapped host keys, changed case, a typo.
                        let k = &keys[rng.below(keys.len())];
                        let v = m.remove(k).unwrap_or(Value::Null);
                        let renamed = match k.as_str() {
                            "host" => "service_name".to_owned(),
                            "service_name" => "host".to_owned(),
                            _ if rng.chance(2) => k.to_uppercase(),
                            _ => rng.pick(KEYS).to_owned(),
                        };
                        m.insert(renamed, v);
                    }
                    _ => {
                        let k = if rng.chance(6) {
                            long_string(rng)
                        } else {
                            rng.pick(KEYS).to_owned()
                        };
                        let v = weird_value(rng);
                        m.insert(k, v);
                    }
                }
            }
            Value::Array(a) => match rng.below(3) {
                0 if !a.is_empty() => {
                    let i = rng.below(a.len());
                    let copy = a[i].clone();
                    let most = if rng.chance(8) { 200 } else { 3 };
                    for _ in 0..1 + rng.below(most) {
                        a.push(copy.clone());
                    }
                }
                1 if a.len() > 1 => {
                    let (i, j) = (rng.below(a.len()), rng.below(a.len()));
                    a.swap(i, j);
                }
                _ if !a.is_empty() => {
                    a.remove(rng.below(a.len()));
                }
                _ => a.push(weird_value(rng)),
            },
            other => *other = weird_value(rng),
        },
    }
}

/// A pattern from wildcards, typical fragments and characters whose case folding is odd.
fn random_pattern(rng: &mut FuzzRng) -> String {
    const PIECES: &[&str] = &[
        "*",
        "?",
        "**",
        "a",
        "GET",
        "post",
        "/api",
        "/",
        ".",
        "example.com",
        "shop",
        ":8080",
        "é",
        "É",
        "K",
        "\u{212a}",
        "ß",
        "İ",
        "ﬀ",
        "🦀",
        " ",
        "\u{0}",
    ];
    let mut p = String::new();
    for _ in 0..rng.below(7) {
        p.push_str(rng.pick(PIECES));
    }
    if rng.chance(16) {
        p.push_str(&long_string(rng));
    }
    p
}

/// A new rule for the file's version, with values in range.
fn random_rule(rng: &mut FuzzRng, host_key: &str) -> Value {
    let mut rule = json!({
        host_key: random_pattern(rng),
        "http_method": random_pattern(rng),
        "url_path": random_pattern(rng),
        "fixed_target": plausible_fixed_target(rng),
        "rate": plausible_rate(rng),
    });
    if rng.chance(3) {
        rule["description"] = Value::String(long_string(rng));
    }
    rule
}

fn plausible_rate(rng: &mut FuzzRng) -> Value {
    match rng.below(8) {
        0 => json!(0),
        1 => json!(1),
        2 => json!(-0.0),
        3 => json!(5e-324),
        4 => json!(1.0 - f64::EPSILON / 2.0),
        5 => json!(1.0),
        _ => json!(rng.below(1001) as f64 / 1000.0),
    }
}

fn plausible_fixed_target(rng: &mut FuzzRng) -> Value {
    match rng.below(6) {
        0 => json!(0),
        1 => json!(u32::MAX),
        2 => json!(1),
        _ => json!(rng.below(20)),
    }
}

/// Edits that keep a valid file valid: values in range, new patterns, rules added,
/// removed, duplicated or reordered. They reach the sampler far more often than blind ones.
fn mutate_within_format(rng: &mut FuzzRng, root: &mut Value) {
    let host_key = if root["version"] == 1 {
        "service_name"
    } else {
        "host"
    };
    let count = root["rules"].as_array().map_or(0, Vec::len);
    match rng.below(6) {
        0 => {
            let rule = random_rule(rng, host_key);
            match &mut root["rules"] {
                Value::Array(rules) => rules.insert(rng.below(count + 1), rule),
                other => *other = json!([rule]),
            }
        }
        1 if count > 0 => {
            if let Some(rules) = root["rules"].as_array_mut() {
                let i = rng.below(count);
                if rng.chance(2) {
                    rules.remove(i);
                } else {
                    let copy = rules[i].clone();
                    rules.insert(rng.below(count + 1), copy);
                }
            }
        }
        2 => root["default"]["rate"] = plausible_rate(rng),
        3 => root["default"]["fixed_target"] = plausible_fixed_target(rng),
        _ if count > 0 => {
            let rule = &mut root["rules"][rng.below(count)];
            match rng.below(5) {
                0 => rule["rate"] = plausible_rate(rng),
                1 => rule["fixed_target"] = plausible_fixed_target(rng),
                2 => rule["description"] = Value::String(long_string(rng)),
                3 => rule[host_key] = Value::String(random_pattern(rng)),
                _ => {
                    let key = if rng.chance(2) {
                        "http_method"
                    } else {
                        "url_path"
                    };
                    rule[key] = Value::String(random_pattern(rng));
                }
            }
        }
        _ => root["default"]["description"] = Value::String(long_string(rng)),
    }
}

/// One to four random edits of `base`, as text or (when it is JSON) as a document.
fn mutate(rng: &mut FuzzRng, base: &str) -> String {
    if rng.chance(2)
        && let Ok(mut v) = serde_json::from_str::<Value>(base)
        && LocalRules::from_json_str(base).is_ok()
    {
        for _ in 0..=rng.below(3) {
            mutate_within_format(rng, &mut v);
        }
        if !rng.chance(4) {
            return if rng.chance(2) {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                v.to_string()
            };
        }
    }
    if rng.chance(3)
        && let Ok(mut v) = serde_json::from_str::<Value>(base)
    {
        for _ in 0..=rng.below(3) {
            mutate_value(rng, &mut v);
        }
        let text = if rng.chance(2) {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            v.to_string()
        };
        if !rng.chance(3) {
            return text;
        }
        return mutate_text(rng, &text);
    }
    mutate_text(rng, base)
}

fn mutate_text(rng: &mut FuzzRng, base: &str) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(9) {
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
                // Duplicate a slice (repeated keys and rules).
                let end = (at + rng.below(80)).min(s.len());
                let piece: Vec<char> = s[at.min(end)..end].to_vec();
                s.splice(end..end, piece).for_each(drop);
            }
            5 => {
                // Splice in a part of another seed.
                let other: Vec<char> = rng.pick(SEEDS).chars().collect();
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(120)).min(other.len());
                s.splice(at..at, other[from..to].iter().copied())
                    .for_each(drop);
            }
            6 if rng.chance(4) => s.truncate(at),
            7 => {
                // A duplicate key right after an opening brace, or before a closing one.
                let braces: Vec<usize> = s
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == '{' || **c == '}')
                    .map(|(i, _)| i)
                    .collect();
                if !braces.is_empty() {
                    let i = braces[rng.below(braces.len())];
                    let key = rng.pick(KEYS);
                    let value = weird_value(rng).to_string();
                    let (pos, text) = if s[i] == '{' {
                        (i + 1, format!("\"{key}\": {value},"))
                    } else {
                        (i, format!(",\"{key}\": {value}"))
                    };
                    s.splice(pos..pos, text.chars()).for_each(drop);
                }
            }
            _ => {
                if let Some(c) = s.get_mut(at) {
                    *c = if c.is_ascii_lowercase() {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    };
                }
            }
        }
    }
    s.into_iter().collect()
}

/// A rule as the file format defines it, read independently of the crate's parser.
#[derive(Debug, Clone)]
struct Expected {
    fixed_target: u32,
    rate: f64,
    description: Option<String>,
    host: Option<String>,
    http_method: Option<String>,
    url_path: Option<String>,
}

/// A field at fault: the path up to the last key, and that key.
type Fault = (String, String);

fn fault(prefix: &str, key: &str) -> Fault {
    (prefix.to_owned(), key.to_owned())
}

/// True when the error's field names this fault. An unknown key may be shown quoted with
/// JSON escapes and cut (it must be, when it is empty, long or has control characters).
fn names(field: &str, (prefix, key): &Fault) -> bool {
    let Some(rest) = field.strip_prefix(prefix.as_str()) else {
        return false;
    };
    let plain = !key.is_empty() && key.len() <= 40 && !has_control(key);
    if plain && rest == key {
        return true;
    }
    // JSON, with the control characters JSON keeps (DEL, C1) escaped as `\u{..}`.
    let quoted: String = Value::String(key.clone())
        .to_string()
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    rest == quoted
        || rest
            .strip_suffix("...")
            .is_some_and(|cut| cut.len() > 1 && quoted.starts_with(cut))
}

/// The rules a valid document holds, or every field that is at fault.
fn read_spec(v: &Value) -> Result<(u32, Expected, Vec<Expected>), Vec<Fault>> {
    let mut bad = Vec::new();
    let Some(top) = v.as_object() else {
        return Err(vec![fault("", "(top level)")]);
    };
    for k in top.keys() {
        if !["version", "default", "rules"].contains(&k.as_str()) {
            bad.push(fault("", k));
        }
    }
    let version = match top.get("version").and_then(Value::as_u64) {
        Some(n @ (1 | 2)) => n as u32,
        _ => {
            bad.push(fault("", "version"));
            return Err(bad);
        }
    };
    let default = match top.get("default") {
        None => {
            bad.push(fault("", "default"));
            None
        }
        Some(d) => read_rule(d, "default", version, true, &mut bad),
    };
    let mut rules = Vec::new();
    match top.get("rules") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(r) = read_rule(item, &format!("rules[{i}]"), version, false, &mut bad) {
                    rules.push(r);
                }
            }
        }
        Some(_) => bad.push(fault("", "rules")),
    }
    match default {
        Some(d) if bad.is_empty() => Ok((version, d, rules)),
        _ => Err(bad),
    }
}

fn read_rule(
    v: &Value,
    at: &str,
    version: u32,
    is_default: bool,
    bad: &mut Vec<Fault>,
) -> Option<Expected> {
    let Some(obj) = v.as_object() else {
        bad.push(fault("", at));
        return None;
    };
    let dot = format!("{at}.");
    let host_key = if version == 1 { "service_name" } else { "host" };
    let before = bad.len();
    let mut allowed = vec!["fixed_target", "rate", "description"];
    if !is_default {
        allowed.extend([host_key, "http_method", "url_path"]);
    }
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            bad.push(fault(&dot, k));
        }
    }
    let fixed_target = obj
        .get("fixed_target")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok());
    if fixed_target.is_none() {
        bad.push(fault(&dot, "fixed_target"));
    }
    let rate = obj
        .get("rate")
        .and_then(Value::as_f64)
        .filter(|r| *r >= 0.0 && *r <= 1.0);
    if rate.is_none() {
        bad.push(fault(&dot, "rate"));
    }
    let mut text = |key: &str, required: bool| match obj.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        None if !required => None,
        _ => {
            bad.push(fault(&dot, key));
            None
        }
    };
    let description = text("description", false);
    let (host, http_method, url_path) = if is_default {
        (None, None, None)
    } else {
        (
            text(host_key, true),
            text("http_method", true),
            text("url_path", true),
        )
    };
    (bad.len() == before).then(|| Expected {
        fixed_target: fixed_target.unwrap_or(0),
        rate: rate.unwrap_or(0.0),
        description,
        host,
        http_method,
        url_path,
    })
}

/// The expected rules, built in code.
fn build(e: &Expected) -> LocalRule {
    let mut r = LocalRule::new(e.fixed_target, e.rate);
    if let Some(d) = &e.description {
        r = r.with_description(d.clone());
    }
    if let Some(p) = &e.host {
        r = r.with_host(p.clone());
    }
    if let Some(p) = &e.http_method {
        r = r.with_http_method(p.clone());
    }
    if let Some(p) = &e.url_path {
        r = r.with_url_path(p.clone());
    }
    r
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// What every error must say, whatever the input.
fn check_error(input: &str, err: &RulesError) {
    let detail = err.detail();
    assert_eq!(err.to_string(), format!("sampling rules: {detail}"));
    assert!(err.file().is_none());
    assert!(!has_control(&detail), "control characters in {detail:?}");
    assert!(detail.len() <= 400, "{} bytes: {detail:?}", detail.len());
    match (err.line_column(), err.field()) {
        (Some((line, column)), None) => {
            let lines = 1 + input.matches('\n').count();
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
            let prefix = format!("line {line}, column {column}: invalid JSON: ");
            assert!(detail.starts_with(&prefix), "{detail:?}");
            assert!(detail.len() > prefix.len() + 3, "{detail:?}");
        }
        (None, Some(field)) => {
            assert!(!field.is_empty());
            let prefix = format!("{field}: expected ");
            assert!(detail.starts_with(&prefix), "{detail:?}");
            assert!(detail.len() > prefix.len() + 3, "{detail:?}");
        }
        other => panic!("neither a position nor a field ({other:?}): {detail:?}"),
    }
}

/// A request that a pattern certainly matches: `*` stands for nothing, `?` for one letter.
fn instance(pattern: &str) -> String {
    pattern
        .chars()
        .map(|c| match c {
            '*' => String::new(),
            '?' => "q".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A rule's matcher against a request attribute; an absent or empty attribute matches.
fn matches(pattern: Option<&str>, text: Option<&str>) -> bool {
    match (pattern, text.filter(|t| !t.is_empty())) {
        (Some(p), Some(t)) => wildcard_match(p, t),
        _ => true,
    }
}

/// Decisions on accepted rules: the right rule applies, reservoirs and rates behave.
fn check_decisions(rules: &LocalRules, seed: u64) {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let sampler = LocalSampler::new(rules.clone()).clock(clock).seed(seed);
    let mut owned: Vec<(Option<String>, Option<String>, Option<String>)> = vec![
        (
            Some("GET".into()),
            Some("example.com".into()),
            Some("/".into()),
        ),
        (
            Some("get".into()),
            Some("any".into()),
            Some("/HEALTH".into()),
        ),
        (
            Some("POST".into()),
            Some("x".into()),
            Some("/api/checkout".into()),
        ),
        (
            Some("DELETE".into()),
            Some("shop.eu.example.com".into()),
            Some("/api/cart".into()),
        ),
        (Some("PUT".into()), None, Some("/api/x".into())),
        (None, None, None),
        (
            Some(String::new()),
            Some(String::new()),
            Some(String::new()),
        ),
        (
            Some("\u{212a}".into()),
            Some("ÜNÏCODE-host".into()),
            Some("/é\u{0}\u{1b}".into()),
        ),
    ];
    for r in rules.rules().iter().take(4) {
        owned.push((
            r.http_method().map(instance),
            r.host().map(instance),
            r.url_path().map(instance),
        ));
    }
    // Reservoir slots used this second, per rule and then the default.
    let mut used = vec![0u64; rules.rules().len() + 1];
    for _round in 0..2 {
        for (method, host, path) in &owned {
            let req = SamplingRequest {
                method: method.as_deref(),
                host: host.as_deref(),
                url_path: path.as_deref(),
                ..Default::default()
            };
            let want = rules.rules().iter().position(|r| {
                matches(r.http_method(), req.method)
                    && matches(r.host(), req.host)
                    && matches(r.url_path(), req.url_path)
            });
            assert_eq!(rules.find(&req), want, "rule for {req:?}");
            let decision = sampler.should_sample(&req);
            assert_eq!(decision.rule_name, None);
            let (rule, slot) = match want {
                Some(i) => (&rules.rules()[i], i),
                None => (rules.default_rule(), rules.rules().len()),
            };
            if used[slot] < u64::from(rule.fixed_target()) {
                used[slot] += 1;
                assert!(decision.sampled, "reservoir of {rule:?} for {req:?}");
            } else if rule.rate() == 0.0 {
                assert!(!decision.sampled, "rate 0 of {rule:?} for {req:?}");
            } else if rule.rate() == 1.0 {
                assert!(decision.sampled, "rate 1 of {rule:?} for {req:?}");
            }
        }
    }
}

/// The properties of one input; returns the parse result for the file checks.
fn check(input: &str, seed: u64) -> Result<LocalRules, RulesError> {
    let result = LocalRules::from_json_str(input);
    match serde_json::from_str::<Value>(input) {
        Err(e) => {
            let err = result.as_ref().expect_err("invalid JSON was accepted");
            assert_eq!(err.line_column(), Some((e.line(), e.column())));
            check_error(input, err);
        }
        Ok(v) => match (read_spec(&v), &result) {
            (Ok((version, default, expected)), Ok(rules)) => {
                assert!(rules.default_rule().rate() >= 0.0 && rules.default_rule().rate() <= 1.0);
                assert_eq!(rules.version(), version);
                assert_eq!(rules.default_rule(), &build(&default));
                assert_eq!(rules.rules().len(), expected.len());
                for (got, want) in rules.rules().iter().zip(&expected) {
                    assert_eq!(got, &build(want));
                    assert!((0.0..=1.0).contains(&got.rate()));
                }
                check_decisions(rules, seed);
            }
            (Err(bad), Err(err)) => {
                check_error(input, err);
                let field = err.field().expect("valid JSON fails on a field");
                assert!(
                    bad.iter().any(|b| names(field, b)),
                    "{field:?} is not at fault; the faults are {bad:?}"
                );
            }
            (Ok(_), Err(err)) => panic!("a valid file was rejected: {err}"),
            (Err(bad), Ok(rules)) => {
                panic!("an invalid file was accepted ({bad:?} at fault): {rules:?}")
            }
        },
    }
    result
}

/// The same text read from a file: same outcome, and the error names the file.
fn check_file(path: &Path, bytes: &[u8], from_str: Option<&Result<LocalRules, RulesError>>) {
    std::fs::write(path, bytes).unwrap();
    let from_file = LocalRules::from_file(path);
    match (from_str, &from_file) {
        (None, Err(err)) => {
            // Not UTF-8: cannot be read as text.
            assert!(err.detail().starts_with("cannot read the file: "), "{err}");
            assert_eq!(err.file(), Some(path));
        }
        (None, Ok(rules)) => panic!("a file that is not UTF-8 was accepted: {rules:?}"),
        (Some(Ok(a)), Ok(b)) => assert_eq!(a, b),
        (Some(Err(a)), Err(b)) => {
            assert_eq!(a.detail(), b.detail());
            assert_eq!(a.field(), b.field());
            assert_eq!(a.line_column(), b.line_column());
            assert_eq!(b.file(), Some(path));
            assert_eq!(
                b.to_string(),
                format!("sampling rules file {}: {}", path.display(), b.detail())
            );
        }
        (Some(a), b) => panic!("from_json_str gave {a:?}, from_file {b:?}"),
    }
}

/// A recorder configured with the file: built exactly when the file is valid.
fn check_recorder(path: &Path, expected: &Result<LocalRules, RulesError>) {
    let built = Recorder::builder()
        .ignore_env()
        .plugins(Plugins::none())
        .centralized_sampling(false)
        .sampling_rules_file(path)
        .build();
    match (expected, built) {
        (Ok(_), Ok(recorder)) => {
            let d = recorder.should_sample(&SamplingRequest {
                method: Some("GET"),
                url_path: Some("/health"),
                ..Default::default()
            });
            assert_eq!(d.rule_name, None);
        }
        (Err(e), Err(config)) => {
            assert_eq!(config.setting(), "sampling_rules_file");
            let msg = config.to_string();
            assert!(msg.contains(&e.detail()), "{msg:?} lacks {:?}", e.detail());
        }
        (Ok(_), Err(config)) => panic!("a valid file failed the recorder: {config}"),
        (Err(e), Ok(_)) => panic!("the recorder accepted a bad file ({e})"),
    }
}

fn fuzz_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("fuzz-sampling-rules-{}.json", std::process::id()))
}

#[test]
fn rules_files_survive_mutation() {
    let budget = fuzz_budget(0x5eed_0000_5a3f_1e5d, RUNS);
    let seed = budget.seed;
    let path = fuzz_path();
    let run_one = |input: &str, runs: u64, rng: &mut FuzzRng, recorders: &mut u32| {
        let file_bytes = runs.is_multiple_of(16).then(|| {
            let mut bytes = input.as_bytes().to_vec();
            if rng.chance(8) {
                // Not UTF-8.
                let at = rng.below(bytes.len() + 1);
                bytes.insert(at, [0xff, 0xc0, 0x80, 0xed][rng.below(4)]);
            }
            bytes
        });
        let with_recorder = runs.is_multiple_of(128) && *recorders < MAX_RECORDERS;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let result = check(input, seed ^ runs);
            let ok = result.is_ok();
            if let Some(bytes) = &file_bytes {
                let utf8 = std::str::from_utf8(bytes).is_ok();
                check_file(&path, bytes, utf8.then_some(&result));
                if with_recorder && utf8 {
                    check_recorder(&path, &result);
                }
            }
            ok
        }));
        if with_recorder {
            *recorders += 1;
        }
        match outcome {
            Ok(ok) => ok,
            Err(panic) => {
                eprintln!("fuzz_sampling_rules: failure after {runs} inputs ({budget})");
                eprintln!("input: {input:?}");
                if let Some(bytes) = &file_bytes {
                    eprintln!("file bytes: {:?}", String::from_utf8_lossy(bytes));
                }
                let _ = std::fs::remove_file(&path);
                std::panic::resume_unwind(panic);
            }
        }
    };
    let mut rng = FuzzRng::new(seed);
    let mut recorders = 0;
    // The seeds themselves first.
    for (i, s) in SEEDS.iter().enumerate() {
        run_one(s, i as u64 * 16, &mut rng, &mut recorders);
    }
    let started = Instant::now();
    let mut runs = 0u64;
    let mut accepted = 0u64;
    // Inputs are chained: every fourth mutation starts again from a seed.
    let mut current = SEEDS[0].to_owned();
    while budget.more(runs) && runs < MAX_RUNS {
        let base = if runs.is_multiple_of(4) {
            rng.pick(SEEDS).to_owned()
        } else {
            current.clone()
        };
        let input = mutate(&mut rng, &base);
        accepted += u64::from(run_one(&input, runs, &mut rng, &mut recorders));
        if input.len() <= MAX_CHAINED_LEN {
            current = input;
        }
        runs += 1;
    }
    let _ = std::fs::remove_file(&path);
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz_sampling_rules: {runs} inputs in {elapsed:.1} s ({:.0}/s, {accepted} accepted, {recorders} recorders; {budget})",
        runs as f64 / elapsed,
    );
    assert!(runs > 100, "only {runs} inputs were tried");
}

/// The seeds are what they claim: the valid ones parse, the invalid ones fail on a field or
/// a position (guards against a seed list that silently stops exercising the parser).
#[test]
fn seeds_cover_valid_and_invalid_files() {
    let (ok, err): (Vec<_>, Vec<_>) = SEEDS
        .iter()
        .map(|s| LocalRules::from_json_str(s))
        .partition(Result::is_ok);
    assert!(ok.len() >= 5, "{} valid seeds", ok.len());
    assert!(err.len() >= 8, "{} invalid seeds", err.len());
}
