//! Checks a local sampling rules file offline: loads it, then shows which rule each request
//! matches and how many of 1 000 such requests in one second would be sampled.
//!
//! ```text
//! cargo run -p xray-sdk --example sampling -- rules.json
//! cargo run -p xray-sdk --example sampling -- rules.json GET api.example.com /health POST api.example.com /api/checkout
//! ```
//!
//! Extra arguments are `METHOD HOST PATH` triples; without them a few typical requests are
//! shown. A bad file prints the error (file, line or field, what was expected) and exits 1.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;

use xray_sdk::clock::ManualClock;
use xray_sdk::sampling::{LocalRules, LocalSampler};
use xray_sdk::{Sampler, SamplingRequest};

const USAGE: &str = "usage: sampling RULES.json [METHOD HOST PATH]...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((file, triples)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if triples.len() % 3 != 0 {
        eprintln!("requests come in METHOD HOST PATH triples\n{USAGE}");
        return ExitCode::from(2);
    }
    let rules = match LocalRules::from_file(file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    println!(
        "{file}: version {}, {} rule(s); default: {} per second, then {} %",
        rules.version(),
        rules.rules().len(),
        rules.default_rule().fixed_target(),
        rules.default_rule().rate() * 100.0
    );
    for (i, r) in rules.rules().iter().enumerate() {
        println!(
            "  #{} {} {} {}: {} per second, then {} %{}",
            i + 1,
            r.http_method().unwrap_or("*"),
            r.host().unwrap_or("*"),
            r.url_path().unwrap_or("*"),
            r.fixed_target(),
            r.rate() * 100.0,
            r.description()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
    }
    println!();

    let defaults: Vec<String> = [
        "GET",
        "example.com",
        "/", //
        "GET",
        "example.com",
        "/health", //
        "POST",
        "example.com",
        "/api/checkout", //
        "GET",
        "api.example.com",
        "/api/orders/42",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let requests = if triples.is_empty() {
        &defaults[..]
    } else {
        triples
    };

    for t in requests.chunks(3) {
        let req = SamplingRequest {
            method: Some(&t[0]),
            host: Some(&t[1]),
            url_path: Some(&t[2]),
            ..Default::default()
        };
        let matched = match rules.find(&req) {
            Some(i) => format!("rule #{}", i + 1),
            None => "default rule".to_owned(),
        };
        // A fresh sampler on a frozen clock: 1 000 requests within one second.
        let sampler = LocalSampler::new(rules.clone())
            .clock(Arc::new(ManualClock::new(1_700_000_000)))
            .seed(2024);
        let first = sampler.should_sample(&req).sampled;
        let of_1000 = usize::from(first)
            + (1..1000)
                .filter(|_| sampler.should_sample(&req).sampled)
                .count();
        println!(
            "{:<6} {:<20} {:<24} -> {matched}: first request {}, {of_1000} of 1000 in one second sampled",
            t[0],
            t[1],
            t[2],
            if first { "sampled" } else { "not sampled" },
        );
    }
    ExitCode::SUCCESS
}
