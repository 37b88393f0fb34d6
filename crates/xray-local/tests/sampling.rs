//! The sampling API on the TCP port: default rules, a custom rules file,
//! quota sharing and recorded statistics.

mod common;

use common::*;
use serde_json::{Value, json};
use xray_local::Config;

fn post(server: &xray_local::Server, path: &str, body: &str) -> (u16, Value) {
    let r = request(server.tcp_addr(), "POST", path, body);
    (r.status, r.json())
}

fn stats_doc(rule: &str, client: &str, requests: u64, sampled: u64) -> Value {
    json!({"RuleName": rule, "ClientID": client, "RequestCount": requests,
           "SampledCount": sampled, "BorrowCount": 1, "Timestamp": now().floor()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_rules() {
    let server = start_default().await;
    for body in ["{}", "{\"NextToken\":null}", ""] {
        let (status, v) = post(&server, "/GetSamplingRules", body);
        assert_eq!(status, 200, "{body}");
        let records = v["SamplingRuleRecords"].as_array().expect("records");
        assert_eq!(records.len(), 2);
        let health = &records[0]["SamplingRule"];
        assert_eq!(health["RuleName"], json!("health"));
        assert_eq!(health["Priority"], json!(1));
        assert_eq!(health["ReservoirSize"], json!(0));
        assert_eq!(health["FixedRate"], json!(0.0));
        assert_eq!(health["HTTPMethod"], json!("GET"));
        assert_eq!(health["URLPath"], json!("/health"));
        let default = &records[1]["SamplingRule"];
        assert_eq!(default["RuleName"], json!("Default"));
        assert_eq!(default["Priority"], json!(10000));
        assert_eq!(default["ReservoirSize"], json!(1));
        // Locally every request is sampled (GET /health aside).
        assert_eq!(default["FixedRate"], json!(1.0));
        for r in records {
            let rule = &r["SamplingRule"];
            assert_eq!(rule["Version"], json!(1));
            assert_eq!(rule["ResourceARN"], json!("*"));
            assert_eq!(rule["Attributes"], json!({}));
            assert!(
                rule["RuleARN"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("arn:aws:xray:"))
            );
            assert!(r["CreatedAt"].as_f64().is_some() && r["ModifiedAt"].as_f64().is_some());
        }
    }
    let body = json!({"SamplingStatisticsDocuments": [stats_doc("Default", "a", 10, 2), stats_doc("nope", "a", 1, 0)]});
    let (status, v) = post(&server, "/SamplingTargets", &body.to_string());
    assert_eq!(status, 200);
    let t = &v["SamplingTargetDocuments"][0];
    assert_eq!(t["RuleName"], json!("Default"));
    assert_eq!(t["FixedRate"], json!(1.0));
    assert_eq!(t["ReservoirQuota"], json!(1));
    assert_eq!(t["Interval"], json!(10));
    assert!(t["ReservoirQuotaTTL"].as_f64() > Some(now()));
    assert!(v["LastRuleModification"].as_f64().is_some());
    assert_eq!(v["UnprocessedStatistics"][0]["RuleName"], json!("nope"));

    let (status, v) = post(&server, "/SamplingTargets", "{\"bad\":1}");
    assert_eq!(status, 400);
    assert_eq!(v["__type"], json!("InvalidRequestException"));
    let (status, _) = post(&server, "/GetSamplingRules", "not json");
    assert_eq!(status, 400);
    let (status, _) = post(&server, "/Other", "{}");
    assert_eq!(status, 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_rules_file_and_quota_split() {
    let dir = std::env::temp_dir().join(format!("xray-local-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("rules.json");
    std::fs::write(
        &path,
        r#"{"rules": [
            {"rule_name": "orders", "priority": 5, "fixed_rate": 0.5, "reservoir_size": 10,
             "service_name": "orders-*", "http_method": "POST", "url_path": "/orders/*"},
            {"RuleName": "Default", "Priority": 10000, "FixedRate": 0.1, "ReservoirSize": 2}
        ]}"#,
    )
    .expect("write rules");
    let server = start(Config {
        rules: Some(path),
        ..Config::ephemeral()
    })
    .await;
    let (_, v) = post(&server, "/GetSamplingRules", "{}");
    let rules: Vec<&Value> = v["SamplingRuleRecords"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| &r["SamplingRule"])
        .collect();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["RuleName"], json!("orders"));
    assert_eq!(rules[0]["ServiceName"], json!("orders-*"));
    assert_eq!(rules[0]["Host"], json!("*"));
    assert_eq!(rules[0]["ServiceType"], json!("*"));
    assert_eq!(rules[1]["FixedRate"], json!(0.1));

    // Three clients share the reservoir of 10: 4 + 3 + 3.
    let mut quotas = Vec::new();
    for client in ["c1", "c2", "c3"] {
        let body = json!({"SamplingStatisticsDocuments": [stats_doc("orders", client, 5, 3)]});
        post(&server, "/SamplingTargets", &body.to_string());
    }
    for client in ["c1", "c2", "c3"] {
        let body = json!({"SamplingStatisticsDocuments": [stats_doc("orders", client, 5, 3)]});
        let (_, v) = post(&server, "/SamplingTargets", &body.to_string());
        assert_eq!(v["SamplingTargetDocuments"][0]["FixedRate"], json!(0.5));
        quotas.push(
            v["SamplingTargetDocuments"][0]["ReservoirQuota"]
                .as_i64()
                .expect("quota"),
        );
    }
    assert_eq!(quotas, [4, 3, 3]);

    let stats = get_json(&server, "/api/stats");
    let orders = &stats["Sampling"]["Statistics"]["orders"];
    assert_eq!(orders["RequestCount"], json!(30));
    assert_eq!(orders["SampledCount"], json!(18));
    assert_eq!(orders["BorrowCount"], json!(6));
    assert_eq!(orders["ActiveClients"], json!(3));
    server.shutdown().await;

    // A broken rules file stops startup with a clear error.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"RuleName": "x", "Priority": 1, "FixedRate": 2, "ReservoirSize": 1}]"#,
    )
    .expect("write");
    let err = xray_local::Server::start(Config {
        rules: Some(bad),
        ..Config::ephemeral()
    })
    .await
    .expect_err("invalid rules file must fail");
    assert!(err.to_string().contains("fixed rate"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
