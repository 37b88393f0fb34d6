//! One sampling decision with 10 rules, matching on the 10th rule or falling through to the
//! default: local rules, console (centralized) rules, and the built-in default rule.
//!
//! ```text
//! cargo bench -p xray-sdk --bench sampling -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use xray_sdk::clock::{Clock, SystemClock};
use xray_sdk::config::DaemonAddress;
use xray_sdk::sampling::{CentralizedSampler, DefaultSampler, LocalRule, LocalRules, LocalSampler};
use xray_sdk::{Sampler, SamplingRequest};

fn local_rules() -> LocalRules {
    (0..10).fold(LocalRules::new(1, 0.05), |rules, i| {
        rules.with_rule(
            LocalRule::new(1, 0.05)
                .with_host(format!("svc{i}.example.com"))
                .with_http_method("GET")
                .with_url_path(format!("/api/v{i}/*")),
        )
    })
}

fn console_rules() -> String {
    let mut records: Vec<_> = (0..10)
        .map(|i| {
            json!({ "SamplingRule": {
                "RuleName": format!("rule-{i}"), "ResourceARN": "*", "Priority": 10 + i,
                "FixedRate": 0.05, "ReservoirSize": 1, "ServiceName": "*", "ServiceType": "*",
                "Host": format!("svc{i}.example.com"), "HTTPMethod": "GET",
                "URLPath": format!("/api/v{i}/*"), "Version": 1, "Attributes": {}
            }})
        })
        .collect();
    records.push(json!({ "SamplingRule": {
        "RuleName": "Default", "ResourceARN": "*", "Priority": 10000, "FixedRate": 0.05,
        "ReservoirSize": 1, "ServiceName": "*", "ServiceType": "*", "Host": "*",
        "HTTPMethod": "*", "URLPath": "*", "Version": 1, "Attributes": {}
    }}));
    json!({ "SamplingRuleRecords": records }).to_string()
}

fn bench(c: &mut Criterion) {
    let tenth = SamplingRequest {
        service_name: Some("shop"),
        host: Some("svc9.example.com"),
        method: Some("GET"),
        url_path: Some("/api/v9/orders/42"),
        ..Default::default()
    };
    let none = SamplingRequest {
        service_name: Some("shop"),
        host: Some("other.example.com"),
        method: Some("GET"),
        url_path: Some("/api/v1/orders/42"),
        ..Default::default()
    };

    let local = LocalSampler::new(local_rules());
    assert!(local.rules().find(&tenth) == Some(9));
    assert!(local.rules().find(&none).is_none());
    c.bench_function("sampling/local/10-rules/match-10th", |b| {
        b.iter(|| local.should_sample(black_box(&tenth)))
    });
    c.bench_function("sampling/local/10-rules/default", |b| {
        b.iter(|| local.should_sample(black_box(&none)))
    });

    let central = CentralizedSampler::builder(&DaemonAddress::default())
        .polling(false)
        .build();
    assert_eq!(central.apply_rules_response(&console_rules()).unwrap(), 11);
    assert_eq!(
        central.should_sample(&tenth).rule_name.as_deref(),
        Some("rule-9")
    );
    c.bench_function("sampling/centralized/10-rules/match-10th", |b| {
        b.iter(|| central.should_sample(black_box(&tenth)))
    });
    c.bench_function("sampling/centralized/10-rules/default", |b| {
        b.iter(|| central.should_sample(black_box(&none)))
    });

    // The parts: rule matching alone; the second decisions read (`SystemClock`: the
    // time-stamp counter, anchored to the wall clock once a second per thread); and the wall
    // clock itself, which decisions do not read.
    let rules = local_rules();
    c.bench_function("sampling/parts/match-only-10th", |b| {
        b.iter(|| rules.find(black_box(&tenth)))
    });
    c.bench_function("sampling/parts/clock", |b| {
        b.iter(|| black_box(SystemClock.epoch_seconds()))
    });
    c.bench_function("sampling/parts/wall-clock", |b| {
        b.iter(|| black_box(std::time::SystemTime::now()))
    });

    let default = DefaultSampler::default();
    c.bench_function("sampling/default-rule", |b| {
        b.iter(|| default.should_sample(black_box(&none)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
