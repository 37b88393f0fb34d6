//! Bounded fuzzing of the W3C `traceparent` and `tracestate` parsers and of the choice of the
//! incoming trace, on stable Rust: a seeded mutation loop over byte strings built from valid
//! and invalid header values: [`RUNS`] inputs from a fixed seed, the same on every machine
//! (`XRAY_FUZZ_RUNS` changes the count; `XRAY_FUZZ_SECS` runs for that many seconds instead).
//!
//! For every input: nothing panics; a `traceparent` that parses has the W3C shape (55
//! lowercase hex digits and dashes, no all-zero ID, known flags only), formats back to the
//! input when the input was a plain version `00` value, parses back to itself and survives
//! the round trip through the X-Ray header; a `tracestate` kept is printable ASCII, at most
//! 512 bytes and 32 members; the trace picked from a request's headers follows the
//! precedence rules, and what a segment begun from it sends downstream obeys the same rules.
//!
//! Reproduce a failure with the settings it prints: `XRAY_FUZZ_SEED=<seed> cargo test -p
//! xray-sdk --test fuzz_traceparent`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use xray_sdk::header::{
    MAX_TRACESTATE_LEN, MAX_TRACESTATE_MEMBERS, incoming_trace, normalize_tracestate,
};
use xray_sdk::remote::w3c_headers;
use xray_sdk::sampling::NeverSample;
use xray_sdk::testing::{FuzzRng, UdpCapture, fuzz_budget};
use xray_sdk::{Recorder, SamplingFlag, TraceHeader, TraceParent};

/// Inputs tried by default (about 1 s in a debug build on a 2-core machine).
const RUNS: u64 = 20_000;

const TRACEPARENTS: &[&str] = &[
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03",
    "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-02",
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future",
    "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09",
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
    " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\t",
    "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "",
    "-",
    "00--",
];

const TRACESTATES: &[&str] = &[
    "congo=t61rcWkgMzE",
    "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    " a=1 ,, b=2 ",
    "tenant@vendor=x y z",
    "novalue",
    "=1",
    "a=\r\nb",
    "",
];

const XRAYS: &[&str] = &[
    "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=1111111111111111;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Lineage=10:1234abcd:3",
    "Root=garbage;Sampled=0",
    "Sampled=?",
    "",
];

/// Fragments worth splicing in.
const TOKENS: &[&[u8]] = &[
    b"-",
    b",",
    b"=",
    b" ",
    b"\t",
    b"\r\n",
    b"\0",
    b"\x7f",
    b"\xff",
    b"\xc3\xa9",
    b"00",
    b"ff",
    b"0",
    b"f",
    b"F",
    b"g",
    b"0000000000000000",
    b"b7ad6b7169203331",
    b"01",
    b"03",
];

/// One to four random edits of `base`, at any byte (the parsers take bytes).
fn mutate(rng: &mut FuzzRng, base: &[u8]) -> Vec<u8> {
    let mut s = base.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(10) {
            // A hex digit for another: mostly values that still parse, to reach the checks
            // of valid ones (flags, versions, zero IDs).
            7..=9 if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] = b"0123456789abcdef"[rng.below(16)];
            }
            0 => s
                .splice(at..at, rng.pick(TOKENS).iter().copied())
                .for_each(drop),
            1 if !s.is_empty() => {
                let end = (at + 1 + rng.below(4)).min(s.len());
                s.drain(at.min(end)..end);
            }
            2 if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] = rng.below(256) as u8;
            }
            3 => {
                let end = (at + rng.below(40)).min(s.len());
                let piece = s[at.min(end)..end].to_vec();
                s.splice(end..end, piece).for_each(drop);
            }
            4 => s.truncate(at),
            5 => {
                // Many members, long members: the tracestate bounds.
                for i in 0..rng.below(50) {
                    s.extend(format!(",k{i}={}", "v".repeat(rng.below(150))).bytes());
                }
            }
            _ => {
                if let Some(b) = s.get_mut(at) {
                    *b = if b.is_ascii_lowercase() {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    };
                }
            }
        }
    }
    s
}

fn is_lower_hex(b: &[u8]) -> bool {
    b.iter()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

fn check_traceparent(input: &[u8]) {
    let Ok(tp) = TraceParent::parse_bytes(input) else {
        return;
    };
    let out = tp.to_bytes();
    assert_eq!(out.len(), 55);
    assert_eq!(&out[..3], b"00-");
    assert!(out[35] == b'-' && out[52] == b'-');
    assert!(is_lower_hex(&out[3..35]) && is_lower_hex(&out[36..52]) && is_lower_hex(&out[53..]));
    assert_ne!(
        &out[3..35],
        [b'0'; 32].as_slice(),
        "all-zero trace ID accepted"
    );
    assert_ne!(
        &out[36..52],
        [b'0'; 16].as_slice(),
        "all-zero parent ID accepted"
    );
    assert_eq!(tp.flags() & !0x03, 0);
    let trimmed = input.trim_ascii();
    assert!(trimmed.len() >= 55);
    assert!(&trimmed[..2] != b"ff");
    if trimmed.starts_with(b"00-") {
        assert_eq!(trimmed.len(), 55, "version 00 of another length accepted");
        if tp.flags()
            == u8::from_str_radix(std::str::from_utf8(&trimmed[53..]).unwrap(), 16).unwrap()
        {
            assert_eq!(&out[..], trimmed);
        }
    } else {
        assert!(trimmed.len() == 55 || trimmed[55] == b'-');
    }
    // The same fields back, and through the X-Ray header.
    assert_eq!(TraceParent::parse_bytes(&out), Ok(tp));
    let header = tp.to_trace_header();
    assert_eq!(TraceParent::from_trace_header(&header), Some(tp));
    assert_eq!(
        TraceHeader::parse(&header.to_string()).root(),
        Some(tp.trace_id())
    );
}

fn check_tracestate(lines: &[&[u8]]) {
    let Some(out) = normalize_tracestate(lines.iter().copied()) else {
        return;
    };
    assert!(!out.is_empty());
    assert!(out.len() <= MAX_TRACESTATE_LEN, "{} bytes", out.len());
    assert!(out.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{out:?}");
    let members: Vec<&str> = out.split(',').collect();
    assert!(members.len() <= MAX_TRACESTATE_MEMBERS);
    for m in members {
        assert_eq!(m, m.trim(), "{out:?}");
        assert!(m.find('=').is_some_and(|i| i > 0), "{out:?}");
    }
    // Normalizing again changes nothing.
    assert_eq!(
        normalize_tracestate([out.as_bytes()]).as_deref(),
        Some(&*out)
    );
}

fn check_incoming(
    xray: Option<&[u8]>,
    tp: Option<&[u8]>,
    ts: &[&[u8]],
    recorder: Option<&Recorder>,
) {
    let picked = incoming_trace(xray, tp, || ts.iter().copied());
    let from_xray = xray.map(|v| TraceHeader::parse(&String::from_utf8_lossy(v)));
    let valid_tp = tp.and_then(|v| TraceParent::parse_bytes(v).ok());
    let Some(h) = picked else {
        assert!(xray.is_none() && valid_tp.is_none());
        return;
    };
    match from_xray.as_ref().and_then(TraceHeader::root) {
        // A valid X-Ray header wins.
        Some(root) => {
            assert_eq!(h.root(), Some(root));
            assert_eq!(h.sampled(), from_xray.as_ref().unwrap().sampled());
            if h.tracestate().is_some() {
                assert_eq!(valid_tp.map(|t| t.trace_id()), Some(root));
            }
        }
        None => match valid_tp {
            Some(t) => {
                assert_eq!(h.root(), Some(t.trace_id()));
                assert_eq!(h.parent(), Some(t.parent_id()));
                assert_eq!(h.sampled(), SamplingFlag::from_decision(t.sampled()));
            }
            None => assert_eq!(h.root(), None),
        },
    }
    if let Some(state) = h.tracestate() {
        assert_eq!(
            normalize_tracestate(ts.iter().copied()).as_deref(),
            Some(state)
        );
    }
    // What a service sends downstream after receiving these headers.
    let Some(recorder) = recorder else {
        return;
    };
    let segment = recorder.segment("fuzz").header(&h).begin();
    let sub = segment.begin_subsegment("call");
    let w3c = w3c_headers(&sub).unwrap();
    let out = TraceParent::parse_bytes(&w3c.traceparent).unwrap();
    assert_eq!(out.trace_id(), segment.trace_id());
    assert_eq!(out.parent_id(), sub.id());
    assert_eq!(w3c.tracestate, h.tracestate());
    if let Some(root) = h.root() {
        assert_eq!(segment.trace_id(), root);
    }
    if let Some(decision) = h.sampled().decision() {
        assert_eq!(out.sampled(), decision, "a decision that came in is kept");
    }
}

#[test]
fn w3c_parsers_survive_mutated_input() {
    let budget = fuzz_budget(0x5eed_0000_3c7a_ce01, RUNS);
    let mut rng = FuzzRng::new(budget.seed);
    // Decides "not sampled" unless the header decided; propagates W3C. What a sampled
    // header records goes to a loopback capture.
    let capture = UdpCapture::start().unwrap();
    let recorder = capture
        .recorder_builder("fuzz")
        .sampler(NeverSample)
        .propagate_traceparent(true)
        .build()
        .unwrap();
    for tp in TRACEPARENTS {
        check_traceparent(tp.as_bytes());
    }
    let started = Instant::now();
    let mut runs = 0u64;
    while budget.more(runs) {
        let base = rng.pick(TRACEPARENTS);
        let tp = mutate(&mut rng, base.as_bytes());
        let mut lines = Vec::new();
        for _ in 0..rng.below(3) {
            let base = rng.pick(TRACESTATES);
            lines.push(mutate(&mut rng, base.as_bytes()));
        }
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let xray = if rng.chance(3) {
            let base = rng.pick(XRAYS);
            Some(mutate(&mut rng, base.as_bytes()))
        } else {
            None
        };
        let tp_given = !rng.chance(8);
        let downstream = runs.is_multiple_of(4);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            check_traceparent(&tp);
            check_tracestate(&lines);
            check_incoming(
                xray.as_deref(),
                tp_given.then_some(tp.as_slice()),
                &lines,
                downstream.then_some(&recorder),
            );
        }));
        if let Err(panic) = outcome {
            eprintln!("fuzz_traceparent: failure after {runs} inputs ({budget})");
            eprintln!("traceparent: {:?}", String::from_utf8_lossy(&tp));
            eprintln!("tracestate: {lines:?}");
            eprintln!("x-amzn-trace-id: {xray:?}");
            std::panic::resume_unwind(panic);
        }
        runs += 1;
    }
    eprintln!(
        "fuzz_traceparent: {runs} inputs in {:.1} s ({budget})",
        started.elapsed().as_secs_f64()
    );
    assert!(runs > 100, "only {runs} inputs were tried");
}

/// The mutations reach both outcomes: a fuzz loop that only ever saw invalid (or only
/// valid) values would check little.
#[test]
fn mutations_reach_valid_and_invalid_values() {
    let mut rng = FuzzRng::new(7);
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..2_000 {
        let base = rng.pick(TRACEPARENTS);
        let tp = mutate(&mut rng, base.as_bytes());
        match TraceParent::parse_bytes(&tp) {
            Ok(_) => valid += 1,
            Err(_) => invalid += 1,
        }
    }
    assert!(
        valid > 100 && invalid > 100,
        "{valid} valid, {invalid} invalid"
    );
}
