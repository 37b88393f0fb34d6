//! Bounded fuzzing of the `X-Amzn-Trace-Id` parser on stable Rust: a seeded mutation loop over
//! the header strings of the parser's own test table: [`RUNS`] inputs from a fixed seed, the
//! same on every machine (`XRAY_FUZZ_RUNS` changes the count; `XRAY_FUZZ_SECS` runs for that
//! many seconds instead).
//!
//! For every input: parsing does not panic; the formatted header is visible ASCII only (no
//! CR, LF, space or control character can reach an outgoing header), bounded in length, and
//! parses back to the same value; the header a segment built from it sends downstream obeys
//! the same rules.
//!
//! Reproduce a failure with the settings it prints: `XRAY_FUZZ_SEED=<seed> cargo test -p
//! xray-sdk --test fuzz_header`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use xray_sdk::header::{MAX_EXTRA_LEN, MAX_HEADER_LEN};
use xray_sdk::testing::{FuzzRng, fuzz_budget};
use xray_sdk::{Recorder, TraceHeader};

/// Inputs tried by default (about 2 s in a debug build on a 2-core machine).
const RUNS: u64 = 20_000;

/// The inputs of `header.rs`'s `parse_and_format_table` and `never_panics_on_odd_bytes`, plus
/// a few shapes seen from load balancers, Lambda and other SDKs.
const SEEDS: &[&str] = &[
    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793",
    "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
    "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=1;",
    ";;Root=1-5759e988-bd862e3fe1be46a994272793;;Parent=53995c3f42cd8ad8;;;Sampled=1;;;",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=10:1234abcd:3;Foo=bar",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=1234abcd:4|3456abcd:6",
    "sampled=1;parent=53995c3f42cd8ad8;root=1-5759e988-bd862e3fe1be46a994272793",
    "Root=garbage;Parent=53995c3f42cd8ad8;Sampled=1",
    "Root=0-57ff426a-80c11c39b0c928905eb0828d;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz;Sampled=yes",
    "Root=1-5759e988-bd862e3fe1be46a994272793;junk;a=b=c",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Sampled=1;k=1;k=2",
    "Root=1-5759e988-bd862e3fe1be46a994272793;evil=a\r\nSet-Cookie: x;ok=1;sp=a b",
    "",
    ";;;",
    "=",
    "Root=1-5759e988-bd862e3fe1be46a9942727é3",
    "Root=é",
    "\u{0}\u{1}=\u{2}",
    "Parent=ééééééééééééééé",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=\u{7f}",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Self=1-5759e988-bd862e3fe1be46a994272793",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5|c512fbe3:2",
];

/// Fragments worth splicing in: separators, key names, ID-shaped values, and bytes that must
/// never reach an outgoing header.
const TOKENS: &[&str] = &[
    ";",
    "=",
    " ",
    "\t",
    "\r",
    "\n",
    "\r\n",
    "\0",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "é",
    "🦀",
    "\u{200b}",
    "\u{feff}",
    "Root=",
    "root=",
    "ROOT=",
    "Parent=",
    "Sampled=",
    "Self=",
    "Lineage=",
    "1-",
    "-",
    "0",
    "1",
    "?",
    "f",
    "5759e988",
    "bd862e3fe1be46a994272793",
    "53995c3f42cd8ad8",
    ":",
    "|",
    "\"",
    "\\",
    ",",
    "%0d%0a",
];

/// One to four random edits of a seed, at char boundaries (the parser takes `&str`).
fn mutate(rng: &mut FuzzRng, base: &str) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(9) {
            0 => s.splice(at..at, rng.pick(TOKENS).chars()).for_each(drop),
            1 if !s.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(s.len());
                s.drain(at.min(end)..end);
            }
            2 if !s.is_empty() => {
                // Replace one char with an arbitrary code point (control characters included).
                let i = rng.below(s.len());
                let c = match rng.below(3) {
                    0 => char::from(rng.below(0x80) as u8),
                    1 => char::from_u32(rng.below(0x800) as u32).unwrap_or('\u{fffd}'),
                    _ => char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}'),
                };
                s[i] = c;
            }
            3 => {
                // Duplicate a slice (repeated keys, long values).
                let end = (at + rng.below(40)).min(s.len());
                let piece: Vec<char> = s[at.min(end)..end].to_vec();
                s.splice(end..end, piece).for_each(drop);
            }
            4 => {
                // Splice in a part of another seed.
                let other: Vec<char> = rng.pick(SEEDS).chars().collect();
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(60)).min(other.len());
                s.splice(at..at, other[from..to].iter().copied())
                    .for_each(drop);
            }
            5 => s.truncate(at),
            6 => {
                // Many extra keys, to hit the extras budget.
                for i in 0..rng.below(60) {
                    s.extend(format!(";k{i}=v{}", "x".repeat(rng.below(30))).chars());
                }
            }
            7 if rng.below(16) == 0 => {
                // Rarely: longer than the parsed maximum.
                let fill = MAX_HEADER_LEN + rng.below(2 * MAX_HEADER_LEN);
                let unit = rng.pick(TOKENS);
                while s.len() < fill {
                    s.extend(unit.chars());
                    s.push(if rng.below(8) == 0 { ';' } else { 'a' });
                }
            }
            _ => {
                // Flip the case of one char (keys are case-insensitive).
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

fn is_visible_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The formatted header: the ID fields plus at most the extras budget and its separators.
const MAX_FORMATTED_LEN: usize =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?;".len()
        + 2 * MAX_EXTRA_LEN;

fn check(input: &str, recorder: &Recorder, downstream: bool) {
    let h = TraceHeader::parse(input);
    let formatted = h.to_string();
    assert!(
        is_visible_ascii(&formatted),
        "not visible ASCII: {formatted:?}"
    );
    assert!(
        formatted.len() <= MAX_FORMATTED_LEN,
        "{} bytes: {formatted:?}",
        formatted.len()
    );
    assert_eq!(h.to_header_value(), formatted);
    if let Some(extra) = h.extra() {
        let payload: usize = extra.split(';').map(|kv| kv.len().saturating_sub(1)).sum();
        assert!(payload <= MAX_EXTRA_LEN, "extras over budget: {extra:?}");
    }
    // Reparsing the output yields the same header (an invalid Root is dropped on output, so
    // compare the fields, not the "had an invalid root" flag).
    let again = TraceHeader::parse(&formatted);
    assert_eq!(again.root(), h.root(), "root of {formatted:?}");
    assert_eq!(again.parent(), h.parent(), "parent of {formatted:?}");
    assert_eq!(again.sampled(), h.sampled(), "sampled of {formatted:?}");
    assert_eq!(again.extra(), h.extra(), "extra of {formatted:?}");
    assert_eq!(again.to_string(), formatted);
    if downstream {
        // What a service sends downstream after receiving this header.
        let segment = recorder.segment("fuzz").header(&h).begin();
        let sub = segment.begin_subsegment("call");
        for out in [
            segment.downstream_header().to_string(),
            sub.downstream_header().to_header_value(),
        ] {
            assert!(is_visible_ascii(&out), "downstream {out:?}");
            let back = TraceHeader::parse(&out);
            assert_eq!(back.root(), Some(segment.trace_id()));
            assert_eq!(back.extra(), h.extra());
            if let Some(root) = h.root() {
                assert_eq!(segment.trace_id(), root);
            }
        }
    }
}

#[test]
fn header_parser_survives_mutated_input() {
    let budget = fuzz_budget(0x5eed_0000_f7ac_e1d5, RUNS);
    let seed = budget.seed;
    let recorder = Recorder::disabled();
    // The seeds themselves first.
    for s in SEEDS {
        check(s, &recorder, true);
    }
    let mut rng = FuzzRng::new(seed);
    let started = Instant::now();
    let mut runs = 0u64;
    // Inputs are chained: every fourth mutation starts again from a seed.
    let mut current = SEEDS[0].to_owned();
    while budget.more(runs) {
        let base = if runs.is_multiple_of(4) {
            rng.pick(SEEDS).to_owned()
        } else {
            current.clone()
        };
        let input = mutate(&mut rng, &base);
        let downstream = runs.is_multiple_of(8);
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input, &recorder, downstream)));
        if let Err(panic) = outcome {
            eprintln!("fuzz_header: failure after {runs} inputs ({budget})");
            eprintln!("input: {input:?}");
            std::panic::resume_unwind(panic);
        }
        if input.len() <= 2 * MAX_HEADER_LEN {
            current = input;
        }
        runs += 1;
    }
    eprintln!(
        "fuzz_header: {runs} inputs in {:.1} s ({budget})",
        started.elapsed().as_secs_f64()
    );
    assert!(runs > 100, "only {runs} inputs were tried");
}
