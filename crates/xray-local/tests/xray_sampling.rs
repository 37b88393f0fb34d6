//! Sampling rules changed through the X-Ray API (aws-sdk-xray) while a
//! service polls the daemon-side sampling API the way the X-Ray SDKs do:
//! the service's decisions follow the rules; statistics, summaries and the
//! per-service counts add up; bad rules are typed errors.

mod common;
#[path = "common/xray.rs"]
mod xray;

use std::net::UdpSocket;

use aws_sdk_xray::Client;
use aws_sdk_xray::error::ProvideErrorMetadata;
use aws_sdk_xray::types::{SamplingRule, SamplingRuleUpdate, SamplingStatisticsDocument};
use common::*;
use serde_json::{Value, json};
use xray::{at, client};

/// What an SDK's centralized sampler keeps: the rules it fetched from the
/// daemon's sampling port, and when.
struct Poller {
    rules: Vec<Value>,
    fetched_at: u64,
    client_id: String,
}

impl Poller {
    fn new(server: &xray_local::Server) -> Poller {
        let mut p = Poller {
            rules: Vec::new(),
            fetched_at: 0,
            client_id: format!("{:024x}", 0xfeed_u64),
        };
        p.fetch(server);
        p
    }

    /// `POST /GetSamplingRules` on the daemon port.
    fn fetch(&mut self, server: &xray_local::Server) {
        let r = request(server.tcp_addr(), "POST", "/GetSamplingRules", "{}");
        assert_eq!(r.status, 200, "{}", r.body);
        let mut rules: Vec<Value> = r.json()["SamplingRuleRecords"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["SamplingRule"].clone())
            .collect();
        rules.sort_by_key(|r| {
            (
                r["Priority"].as_i64(),
                r["RuleName"].as_str().map(str::to_string),
            )
        });
        self.rules = rules;
        self.fetched_at = now() as u64;
    }

    /// Reports counts for `rule` to `POST /SamplingTargets` and fetches the
    /// rules again when the answer says they changed since the last fetch
    /// (as the SDKs do). Returns the answer.
    fn report(
        &mut self,
        server: &xray_local::Server,
        rule: &str,
        requests: u64,
        sampled: u64,
    ) -> Value {
        let body = json!({"SamplingStatisticsDocuments": [{
            "RuleName": rule, "ClientID": self.client_id, "Timestamp": now().floor(),
            "RequestCount": requests, "SampledCount": sampled, "BorrowCount": 0}]});
        let r = request(
            server.tcp_addr(),
            "POST",
            "/SamplingTargets",
            &body.to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let changed = v["LastRuleModification"]
            .as_f64()
            .is_some_and(|m| m >= self.fetched_at as f64);
        let unknown = v["UnprocessedStatistics"]
            .as_array()
            .is_some_and(|u| !u.is_empty());
        if changed || unknown {
            self.fetch(server);
        }
        v
    }

    /// The rule a request matches and whether it is sampled (the fixed rate
    /// alone: these rules use 0 or 1).
    fn decide(&self, method: &str, path: &str) -> (String, bool) {
        let rule = self
            .rules
            .iter()
            .find(|r| {
                glob(r["HTTPMethod"].as_str().unwrap_or("*"), method)
                    && glob(r["URLPath"].as_str().unwrap_or("*"), path)
                    && glob(r["ServiceName"].as_str().unwrap_or("*"), "shop")
            })
            .expect("Default matches everything");
        let name = rule["RuleName"].as_str().unwrap_or("").to_string();
        (name, rule["FixedRate"].as_f64() == Some(1.0))
    }
}

/// `*` and `?` wildcards, case-insensitive, as the SDKs match rules.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn rule(name: &str, priority: i32, rate: f64, path: &str) -> SamplingRule {
    SamplingRule::builder()
        .rule_name(name)
        .resource_arn("*")
        .priority(priority)
        .fixed_rate(rate)
        .reservoir_size(0)
        .service_name("*")
        .service_type("*")
        .host("*")
        .http_method("*")
        .url_path(path)
        .version(1)
        .build()
        .expect("a complete rule")
}

async fn rule_names(xray: &Client) -> Vec<String> {
    xray.get_sampling_rules()
        .send()
        .await
        .expect("GetSamplingRules")
        .sampling_rule_records()
        .iter()
        .filter_map(|r| r.sampling_rule()?.rule_name().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_changed_through_the_api_change_what_a_service_samples() {
    let server = start_default().await;
    let xray = client(&server);

    // The built-in rules, as the API shows them: every request is sampled but
    // GET /health.
    let out = xray
        .get_sampling_rules()
        .send()
        .await
        .expect("GetSamplingRules");
    let records = out.sampling_rule_records();
    assert_eq!(rule_names(&xray).await, ["health", "Default"]);
    let default = records[1].sampling_rule().expect("rule");
    assert_eq!(
        (
            default.priority(),
            default.fixed_rate(),
            default.reservoir_size()
        ),
        (10_000, 1.0, 1)
    );
    assert_eq!(default.version(), 1);
    assert!(
        default
            .rule_arn()
            .is_some_and(|a| a.ends_with(":sampling-rule/Default"))
    );
    assert!(records[1].created_at().is_some() && records[1].modified_at().is_some());

    let mut service = Poller::new(&server);
    assert_eq!(service.decide("GET", "/orders/1"), ("Default".into(), true));
    assert_eq!(service.decide("GET", "/health"), ("health".into(), false));
    let v = service.report(&server, "Default", 10, 10);
    assert_eq!(v["SamplingTargetDocuments"][0]["FixedRate"], json!(1.0));
    // Once the rules were fetched in a later second than their last change,
    // reports leave them alone.
    let changed = v["LastRuleModification"]
        .as_f64()
        .expect("LastRuleModification");
    wait_for("a second past the last change", || {
        (now().floor() > changed).then_some(())
    });
    service.fetch(&server);
    let fetched = service.fetched_at;
    service.report(&server, "Default", 0, 0);
    assert_eq!(
        service.fetched_at, fetched,
        "fetched again without a change"
    );

    // A rule created through the API: the daemon port serves it, and the
    // service's next report tells it to fetch the rules again.
    let created = xray
        .create_sampling_rule()
        .sampling_rule(rule("no-orders", 10, 0.0, "/orders*"))
        .send()
        .await
        .expect("CreateSamplingRule");
    let record = created.sampling_rule_record().expect("record");
    let arn = record
        .sampling_rule()
        .and_then(|r| r.rule_arn())
        .expect("RuleARN")
        .to_string();
    assert!(arn.ends_with(":sampling-rule/no-orders"), "{arn}");
    assert_eq!(rule_names(&xray).await, ["health", "no-orders", "Default"]);
    service.report(&server, "Default", 5, 5);
    assert_eq!(
        service.decide("GET", "/orders/1"),
        ("no-orders".into(), false)
    );
    assert_eq!(service.decide("POST", "/cart"), ("Default".into(), true));

    // Changed: the daemon port hands out the new rate.
    let updated = xray
        .update_sampling_rule()
        .sampling_rule_update(
            SamplingRuleUpdate::builder()
                .rule_arn(arn.clone())
                .fixed_rate(1.0)
                .url_path("/orders/*")
                .build(),
        )
        .send()
        .await
        .expect("UpdateSamplingRule");
    let r = updated
        .sampling_rule_record()
        .and_then(|r| r.sampling_rule())
        .expect("rule");
    assert_eq!((r.fixed_rate(), r.url_path()), (1.0, "/orders/*"));
    let v = service.report(&server, "no-orders", 4, 0);
    assert_eq!(v["SamplingTargetDocuments"][0]["FixedRate"], json!(1.0));
    assert_eq!(
        service.decide("GET", "/orders/1"),
        ("no-orders".into(), true)
    );

    // The statistics the service reported, through the X-Ray API.
    let out = xray
        .get_sampling_statistic_summaries()
        .send()
        .await
        .expect("GetSamplingStatisticSummaries");
    let summary = |name: &str| {
        out.sampling_statistic_summaries()
            .iter()
            .find(|s| s.rule_name() == Some(name))
            .map(|s| (s.request_count(), s.sampled_count()))
    };
    assert_eq!(summary("Default"), Some((15, 15)));
    assert_eq!(summary("no-orders"), Some((4, 0)));

    // GetSamplingTargets through the X-Ray API too (what the daemon forwards).
    let doc = |rule: &str| {
        SamplingStatisticsDocument::builder()
            .rule_name(rule)
            .client_id(format!("{:024x}", 7))
            .timestamp(at(now()))
            .request_count(3)
            .sampled_count(3)
            .borrow_count(0)
            .build()
            .expect("document")
    };
    let out = xray
        .get_sampling_targets()
        .sampling_statistics_documents(doc("no-orders"))
        .sampling_statistics_documents(doc("gone"))
        .send()
        .await
        .expect("GetSamplingTargets");
    let target = &out.sampling_target_documents()[0];
    assert_eq!(target.rule_name(), Some("no-orders"));
    assert_eq!(target.fixed_rate(), 1.0);
    assert_eq!(target.reservoir_quota(), Some(0));
    assert_eq!(target.interval(), Some(10));
    assert!(target.reservoir_quota_ttl().is_some());
    assert!(out.last_rule_modification().is_some());
    let unprocessed = out.unprocessed_statistics();
    assert_eq!(unprocessed[0].rule_name(), Some("gone"));
    assert_eq!(unprocessed[0].error_code(), Some("400"));

    // Deleted: gone from the daemon port; the service's next report for it is
    // refused, and it fetches the rules again.
    xray.delete_sampling_rule()
        .rule_name("no-orders")
        .send()
        .await
        .expect("DeleteSamplingRule");
    let v = service.report(&server, "no-orders", 1, 1);
    assert_eq!(v["UnprocessedStatistics"][0]["RuleName"], "no-orders");
    assert_eq!(service.decide("GET", "/orders/1"), ("Default".into(), true));
    let r = request(server.tcp_addr(), "POST", "/GetSamplingRules", "{}");
    assert!(!r.body.contains("no-orders"), "{}", r.body);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_with_the_services_errors() {
    let server = start_default().await;
    let xray = client(&server);
    xray.create_sampling_rule()
        .sampling_rule(rule("orders", 5, 0.5, "*"))
        .send()
        .await
        .expect("created");
    let refused = |r: SamplingRule| {
        let xray = xray.clone();
        async move {
            xray.create_sampling_rule()
                .sampling_rule(r)
                .send()
                .await
                .expect_err("refused")
                .into_service_error()
        }
    };
    for (what, r) in [
        ("a name in use", rule("orders", 6, 0.5, "*")),
        ("priority 0", rule("p0", 0, 0.5, "*")),
        ("priority 10000", rule("p10000", 10_000, 0.5, "*")),
        ("a rate above 1", rule("rate", 5, 1.5, "*")),
        (
            "a name over 32 characters",
            rule(&"n".repeat(33), 5, 0.5, "*"),
        ),
        (
            "a URL path over 128 characters",
            rule("long", 5, 0.5, &"/x".repeat(65)),
        ),
        ("the Default rule", rule("Default", 5, 0.5, "*")),
    ] {
        let e = refused(r).await;
        assert!(e.is_invalid_request_exception(), "{what}: {e:?}");
        assert!(e.message().is_some_and(|m| !m.is_empty()), "{what}");
    }
    let mut v2 = rule("v2", 5, 0.5, "*");
    v2.version = 2;
    assert!(refused(v2).await.is_invalid_request_exception());

    let e = xray
        .delete_sampling_rule()
        .rule_name("Default")
        .send()
        .await
        .expect_err("Default stays")
        .into_service_error();
    assert!(e.is_invalid_request_exception(), "{e:?}");
    let e = xray
        .delete_sampling_rule()
        .rule_name("nope")
        .send()
        .await
        .expect_err("no such rule")
        .into_service_error();
    assert!(e.is_invalid_request_exception(), "{e:?}");
    let e = xray
        .update_sampling_rule()
        .sampling_rule_update(
            SamplingRuleUpdate::builder()
                .rule_name("Default")
                .url_path("/x")
                .build(),
        )
        .send()
        .await
        .expect_err("only the rate and the reservoir of Default")
        .into_service_error();
    assert!(e.is_invalid_request_exception(), "{e:?}");
    let ok = xray
        .update_sampling_rule()
        .sampling_rule_update(
            SamplingRuleUpdate::builder()
                .rule_name("Default")
                .fixed_rate(0.1)
                .reservoir_size(3)
                .build(),
        )
        .send()
        .await
        .expect("Default's rate can change");
    let r = ok.sampling_rule_record().and_then(|r| r.sampling_rule());
    assert_eq!(
        r.map(|r| (r.fixed_rate(), r.reservoir_size())),
        Some((0.1, 3))
    );

    // The rule quota: 25 besides Default (health counts).
    for i in 0..23 {
        xray.create_sampling_rule()
            .sampling_rule(rule(&format!("r{i}"), 20, 1.0, "*"))
            .send()
            .await
            .expect("within the quota");
    }
    let e = refused(rule("one-too-many", 20, 1.0, "*")).await;
    assert!(e.is_rule_limit_exceeded_exception(), "{e:?}");
    assert_eq!(e.code(), Some("RuleLimitExceededException"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_seen_and_sampled_are_counted_per_service() {
    let server = start_default().await;
    // This process sends segments as "checkout" from one socket and reports its
    // sampling statistics over another connection: both lead to this process.
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let t = trace_id();
    let doc = segment(&t, &entity_id(), "checkout", None, now() - 1.0, 0.1);
    sender
        .send_to(format!("{HEADER}\n{doc}").as_bytes(), server.udp_addr())
        .expect("send");
    wait_accepted(&server, 1);
    let mut service = Poller::new(&server);
    service.report(&server, "Default", 40, 40);
    service.report(&server, "health", 12, 0);
    let v = get_json(&server, "/api/services");
    let groups = v["Services"].as_array().expect("Services");
    let checkout = groups
        .iter()
        .find(|g| g["Services"] == json!(["checkout"]))
        .unwrap_or_else(|| panic!("no group for checkout in {v:#}"));
    assert_eq!(checkout["Total"]["RequestCount"], json!(52), "{v:#}");
    assert_eq!(checkout["Total"]["SampledCount"], json!(40), "{v:#}");
    assert_eq!(checkout["ByRule"]["health"]["SampledCount"], json!(0));
    assert_eq!(checkout["Owner"]["Process"], json!(std::process::id()));
    assert_eq!(checkout["Clients"], json!([service.client_id]));
    server.shutdown().await;
}
