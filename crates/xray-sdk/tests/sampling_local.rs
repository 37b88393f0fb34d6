//! Local sampling: wildcard tables, the rules file formats and their errors, reservoir and
//! rate accuracy (seeded, on an injected clock), and the recorder's use of the rules.

use std::path::PathBuf;
use std::sync::Arc;

use xray_sdk::clock::ManualClock;
use xray_sdk::sampling::{LocalRule, LocalRules, LocalSampler, NeverSample, wildcard_match};
use xray_sdk::{Recorder, Sampler, SamplingRequest, TraceHeader};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sampling")
        .join(name)
}

fn req<'a>(method: &'a str, host: &'a str, path: &'a str) -> SamplingRequest<'a> {
    SamplingRequest {
        method: Some(method),
        host: Some(host),
        url_path: Some(path),
        ..Default::default()
    }
}

#[test]
fn wildcard_table_from_the_spec() {
    // (pattern, text, matches): the behaviours the official SDKs' pattern tests pin down.
    let table: &[(&str, &str, bool)] = &[
        // Empty pattern matches only empty text; "*" matches anything, even empty.
        ("", "", true),
        ("", "a", false),
        ("*", "", true),
        ("*", "a", true),
        ("*", "whatever/you/want", true),
        // '?' is exactly one character.
        ("?", "", false),
        ("?", "a", true),
        ("?", "ab", false),
        ("*?", "", false),
        ("*?", "a", true),
        ("*?", "abc", true),
        ("?*", "a", true),
        ("?*?", "a", false),
        ("?*?", "ab", true),
        ("?*?", "abcdef", true),
        // Repeated stars.
        ("**", "", true),
        ("**a**", "a", true),
        ("**a**", "xxaxx", true),
        ("**a**", "xxxx", false),
        // Backtracking.
        ("a*na*ha", "anananahahanahana", false),
        ("a*na*ha", "anahaha", true),
        ("*abc", "ababc", true),
        ("a*b*c", "aXbYbZc", true),
        ("a*b*c", "aXbYbZ", false),
        // Exact text, case-insensitive.
        ("foo", "foo", true),
        ("foo", "FOO", true),
        ("FoO", "fOo", true),
        ("foo", "foox", false),
        ("foo", "fo", false),
        // Typical rule patterns.
        ("GET", "get", true),
        ("/api/*", "/api/orders", true),
        ("/api/*", "/apix", false),
        ("*.example.com", "www.EXAMPLE.com", true),
        ("localhost:*", "localhost:3000", true),
        ("/users/?/profile", "/users/7/profile", true),
        ("/users/?/profile", "/users/42/profile", false),
        // Non-ASCII text and case.
        ("ünïcode*", "ÜNÏCODE-text", true),
        ("?", "é", true),
    ];
    for &(pattern, text, want) in table {
        assert_eq!(
            wildcard_match(pattern, text),
            want,
            "pattern {pattern:?} text {text:?}"
        );
    }
}

#[test]
fn version_2_file() {
    let rules = LocalRules::from_file(fixture("v2.json")).expect("valid v2 file");
    assert_eq!(rules.version(), 2);
    assert_eq!(rules.rules().len(), 3);
    assert_eq!(rules.default_rule().fixed_target(), 1);
    assert_eq!(rules.default_rule().rate(), 0.05);
    assert_eq!(
        rules.rules()[0].description(),
        Some("never sample health checks")
    );
    assert_eq!(rules.find(&req("GET", "any", "/health")), Some(0));
    assert_eq!(rules.find(&req("get", "any", "/HEALTH")), Some(0));
    assert_eq!(rules.find(&req("POST", "any", "/health")), None);
    assert_eq!(rules.find(&req("POST", "x", "/api/checkout")), Some(1));
    assert_eq!(
        rules.find(&req("DELETE", "shop.eu.example.com", "/api/cart")),
        Some(2)
    );
    assert_eq!(
        rules.find(&req("DELETE", "blog.example.com", "/api/cart")),
        None
    );
    // A request without the attribute matches the rule's matcher implicitly.
    let no_host = SamplingRequest {
        method: Some("PUT"),
        url_path: Some("/api/x"),
        ..Default::default()
    };
    assert_eq!(rules.find(&no_host), Some(2));
    // An empty attribute is an absent one (as in the Go, Python and Node SDKs).
    assert_eq!(rules.find(&req("PUT", "", "/api/x")), Some(2));
    assert_eq!(
        rules.find(&req("", "", "")),
        rules.find(&SamplingRequest::default())
    );
}

#[test]
fn version_1_file_maps_service_name_to_host() {
    let rules = LocalRules::from_file(fixture("v1.json")).expect("valid v1 file");
    assert_eq!(rules.version(), 1);
    assert_eq!(rules.rules()[0].host(), Some("localhost:*"));
    assert_eq!(rules.find(&req("GET", "localhost:8080", "/ping")), Some(0));
    assert_eq!(rules.find(&req("GET", "example.com", "/ping")), None);
    assert_eq!(rules.find(&req("PATCH", "api.foo.com", "/x")), Some(1));
}

#[test]
fn bad_files_say_where_and_what() {
    let cases: &[(&str, &[&str])] = &[
        (
            "bad-syntax.json",
            &["bad-syntax.json", "line 5, column", "invalid JSON"],
        ),
        (
            "bad-rate.json",
            &[
                "bad-rate.json",
                "rules[1].rate",
                "a number from 0 to 1",
                "1.5",
            ],
        ),
        (
            "v2-service-name.json",
            &["rules[0].service_name", "\"host\" in a version 2 file"],
        ),
        (
            "v1-host.json",
            &["rules[0].host", "\"service_name\" in a version 1 file"],
        ),
        (
            "default-with-path.json",
            &[
                "default.url_path",
                "only fixed_target, rate and description",
            ],
        ),
        ("no-default.json", &["default: expected a default rule"]),
        ("version-3.json", &["version: expected 1 or 2, found 3"]),
        (
            "missing-url-path.json",
            &["rules[0].url_path", "a string pattern"],
        ),
        (
            "does-not-exist.json",
            &["does-not-exist.json", "cannot read"],
        ),
    ];
    for (file, needles) in cases {
        let err = LocalRules::from_file(fixture(file)).expect_err(file);
        let msg = err.to_string();
        for needle in *needles {
            assert!(msg.contains(needle), "{file}: {msg:?} lacks {needle:?}");
        }
        assert_eq!(err.file(), Some(fixture(file).as_path()));
    }
    let err = LocalRules::from_file(fixture("bad-syntax.json")).expect_err("syntax");
    assert_eq!(err.line_column().map(|(l, _)| l), Some(5));
    let err = LocalRules::from_file(fixture("bad-rate.json")).expect_err("rate");
    assert_eq!(err.field(), Some("rules[1].rate"));

    for (json, needle) in [
        ("[]", "(top level): expected an object"),
        (
            r#"{"version":2,"default":{"fixed_target":-1,"rate":0}}"#,
            "default.fixed_target",
        ),
        (
            r#"{"version":2,"default":{"fixed_target":1,"rate":"x"}}"#,
            "default.rate",
        ),
        (
            r#"{"version":2,"default":{"fixed_target":1,"rate":0},"rules":{}}"#,
            "rules: expected an array",
        ),
        (
            r#"{"version":2,"default":{"fixed_target":1,"rate":0},"extra":1}"#,
            "extra",
        ),
        (
            r#"{"version":2,"default":{"fixed_target":1,"rate":0},"rules":[{"host":"*","http_method":"GET","url_path":"/","fixed_target":1,"rate":0,"hots":"x"}]}"#,
            "rules[0].hots",
        ),
        (
            r#"{"version":2,"default":{"fixed_target":1,"rate":0"#,
            "line 1",
        ),
    ] {
        let msg = LocalRules::from_json_str(json).expect_err(json).to_string();
        assert!(msg.contains(needle), "{json}: {msg:?} lacks {needle:?}");
    }
}

#[test]
fn rules_in_code_equal_rules_from_a_file() {
    let code = LocalRules::new(1, 0.05)
        .with_rule(
            LocalRule::new(0, 0.0)
                .with_host("*")
                .with_http_method("GET")
                .with_url_path("/health")
                .with_description("never sample health checks"),
        )
        .with_rule(
            LocalRule::new(10, 1.0)
                .with_host("*")
                .with_http_method("POST")
                .with_url_path("/api/checkout")
                .with_description("every checkout"),
        )
        .with_rule(
            LocalRule::new(2, 0.1)
                .with_host("shop.*.example.com")
                .with_http_method("*")
                .with_url_path("/api/*")
                .with_description("shop API: 2 per second, then 10 %"),
        );
    let file = LocalRules::from_file(fixture("v2.json")).expect("valid");
    assert_eq!(code, file);
}

#[test]
fn reservoir_allows_fixed_target_per_second() {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let sampler = LocalSampler::new(LocalRules::new(3, 0.0))
        .clock(clock.clone())
        .seed(1);
    let any = SamplingRequest::default();
    for second in 0..5 {
        let sampled = (0..100)
            .filter(|_| sampler.should_sample(&any).sampled)
            .count();
        assert_eq!(sampled, 3, "second {second}");
        clock.advance(1);
    }
}

#[test]
fn reservoir_holds_across_threads() {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let sampler = Arc::new(
        LocalSampler::new(LocalRules::new(50, 0.0))
            .clock(clock.clone())
            .seed(2),
    );
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let sampler = Arc::clone(&sampler);
                s.spawn(move || {
                    (0..2_000)
                        .filter(|_| sampler.should_sample(&SamplingRequest::default()).sampled)
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(total, 50);
}

#[test]
fn reservoir_on_the_real_clock() {
    // fixed_target 5, rate 0: over about 1.5 s of wall clock, at most 5 per second started.
    let sampler = LocalSampler::new(LocalRules::new(5, 0.0));
    let start = std::time::Instant::now();
    let mut sampled = 0;
    while start.elapsed() < std::time::Duration::from_millis(1500) {
        sampled += usize::from(sampler.should_sample(&SamplingRequest::default()).sampled);
    }
    // 1.5 s touch 2 or 3 wall-clock seconds.
    assert!((10..=15).contains(&sampled), "{sampled}");
}

/// 4.5 standard deviations of a binomial(n, p) count around its mean.
fn within_binomial(count: usize, n: usize, p: f64) -> bool {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - mean).abs() <= 4.5 * sd
}

#[test]
fn rate_is_accurate() {
    for seed in [1u64, 42, 12_345] {
        for rate in [0.05, 0.5, 0.9] {
            let clock = Arc::new(ManualClock::new(1_700_000_000));
            let sampler = LocalSampler::new(LocalRules::new(0, rate))
                .clock(clock)
                .seed(seed);
            let n = 10_000;
            let count = (0..n)
                .filter(|_| sampler.should_sample(&SamplingRequest::default()).sampled)
                .count();
            assert!(
                within_binomial(count, n, rate),
                "seed {seed} rate {rate}: {count} of {n}"
            );
        }
    }
}

#[test]
fn default_rule_is_one_per_second_then_five_percent() {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let sampler = LocalSampler::new(LocalRules::default())
        .clock(clock.clone())
        .seed(7);
    let any = SamplingRequest::default();
    let mut total = 0;
    for _ in 0..10 {
        // The first request of each second is always sampled.
        assert!(sampler.should_sample(&any).sampled);
        total += 1;
        total += (0..1_000)
            .filter(|_| sampler.should_sample(&any).sampled)
            .count();
        clock.advance(1);
    }
    // 10 from the reservoir plus ~5 % of 10 000.
    assert!(within_binomial(total - 10, 10_000, 0.05), "{total}");
}

#[test]
fn rules_decide_per_request() {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let sampler = LocalSampler::new(LocalRules::from_file(fixture("v2.json")).expect("valid"))
        .clock(clock)
        .seed(3);
    for _ in 0..1_000 {
        assert!(!sampler.should_sample(&req("GET", "a", "/health")).sampled);
        let d = sampler.should_sample(&req("POST", "a", "/api/checkout"));
        assert!(d.sampled);
        assert_eq!(d.rule_name, None);
    }
    // shop API: 2 from the reservoir, then ~10 % of 998.
    let n = (0..1_000)
        .filter(|_| {
            sampler
                .should_sample(&req("GET", "shop.us.example.com", "/api/x"))
                .sampled
        })
        .count();
    assert!(within_binomial(n - 2, 998, 0.1), "{n}");
}

#[test]
fn recorder_reports_a_bad_rules_file() {
    let path = fixture("bad-rate.json");
    let err = Recorder::builder()
        .ignore_env()
        .centralized_sampling(false)
        .sampling_rules_file(&path)
        .build()
        .expect_err("bad file");
    assert_eq!(err.setting(), "sampling_rules_file");
    let msg = err.to_string();
    assert!(msg.contains("bad-rate.json"), "{msg}");
    assert!(msg.contains("rules[1].rate"), "{msg}");
    assert!(msg.contains("expected"), "{msg}");
}

#[test]
fn recorder_applies_a_rules_file() {
    let recorder = Recorder::builder()
        .ignore_env()
        .centralized_sampling(false)
        .sampling_rules_file(fixture("v2.json"))
        .build()
        .expect("valid");
    for _ in 0..100 {
        let health = recorder
            .segment("api")
            .sampling_request(req("GET", "h", "/health"))
            .begin();
        assert!(!health.is_sampled());
        let checkout = recorder
            .segment("api")
            .sampling_request(req("POST", "h", "/api/checkout"))
            .begin();
        assert!(checkout.is_sampled());
    }
    // The header's decision wins over the rules.
    let forced = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
    assert!(
        recorder
            .segment("api")
            .header(&forced)
            .sampling_request(req("GET", "h", "/health"))
            .begin()
            .is_sampled()
    );
    // So does the code.
    assert!(
        recorder
            .segment("api")
            .sampled(true)
            .sampling_request(req("GET", "h", "/health"))
            .begin()
            .is_sampled()
    );
    let never = Recorder::builder()
        .ignore_env()
        .sampler(NeverSample)
        .build()
        .expect("valid");
    assert!(!never.segment("x").begin().is_sampled());
}
