//! The daemon's sampling API (`GetSamplingRules`, `SamplingTargets`): what goes over the
//! wire and how its answers are read. Nothing here keeps state or makes calls.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wildcard::{Field, Fields, Matchers, Pattern};

/// At most this many statistics documents per `SamplingTargets` call (an API limit).
pub(crate) const MAX_STATISTICS_PER_CALL: usize = 25;

/// A console rule as `GetSamplingRules` returns it (the accepted subset).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleDef {
    pub(crate) name: Arc<str>,
    pub(crate) priority: i64,
    pub(crate) fixed_rate: f64,
    pub(crate) reservoir_size: u64,
    service_name: Pattern,
    service_type: Pattern,
    host: Pattern,
    http_method: Pattern,
    url_path: Pattern,
    // The five above, cheapest first, without `*`.
    matchers: Matchers,
}

impl RuleDef {
    #[inline]
    pub(crate) fn matches(&self, fields: &Fields<'_>) -> bool {
        self.matchers.matches(fields)
    }
}

/// A non-negative finite number, truncated to whole seconds/requests.
pub(crate) fn whole(x: f64) -> Option<u64> {
    (x.is_finite() && x >= 0.0).then_some(x as u64)
}

#[derive(Debug, Deserialize)]
struct RawRule {
    #[serde(rename = "RuleName")]
    rule_name: Option<String>,
    #[serde(rename = "Priority")]
    priority: Option<f64>,
    #[serde(rename = "FixedRate")]
    fixed_rate: Option<f64>,
    #[serde(rename = "ReservoirSize")]
    reservoir_size: Option<f64>,
    #[serde(rename = "ServiceName")]
    service_name: Option<String>,
    #[serde(rename = "ServiceType")]
    service_type: Option<String>,
    #[serde(rename = "Host")]
    host: Option<String>,
    #[serde(rename = "HTTPMethod")]
    http_method: Option<String>,
    #[serde(rename = "URLPath")]
    url_path: Option<String>,
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    #[serde(rename = "Version")]
    version: Option<f64>,
    #[serde(rename = "Attributes")]
    attributes: Option<Value>,
}

/// Why a rule record was skipped.
fn accept(raw: RawRule) -> Result<RuleDef, &'static str> {
    if raw.version != Some(1.0) {
        return Err("Version is not 1");
    }
    if raw.resource_arn.as_deref() != Some("*") {
        return Err("ResourceARN is not \"*\"");
    }
    match &raw.attributes {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) if o.is_empty() => {}
        Some(_) => return Err("Attributes are not empty"),
    }
    let name = raw
        .rule_name
        .filter(|n| !n.is_empty())
        .ok_or("no RuleName")?;
    let priority = raw
        .priority
        .filter(|p| p.is_finite() && p.fract() == 0.0)
        .ok_or("no whole Priority")?;
    let fixed_rate = raw
        .fixed_rate
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or("no FixedRate from 0 to 1")?;
    let reservoir_size = raw
        .reservoir_size
        .and_then(whole)
        .ok_or("no ReservoirSize")?;
    let need = |v: Option<String>, what: &'static str| v.map(Pattern::new).ok_or(what);
    let service_name = need(raw.service_name, "no ServiceName")?;
    let service_type = need(raw.service_type, "no ServiceType")?;
    let host = need(raw.host, "no Host")?;
    let http_method = need(raw.http_method, "no HTTPMethod")?;
    let url_path = need(raw.url_path, "no URLPath")?;
    let matchers = Matchers::new([
        (Field::Method, Some(&http_method)),
        (Field::UrlPath, Some(&url_path)),
        (Field::Host, Some(&host)),
        (Field::ServiceName, Some(&service_name)),
        (Field::ServiceType, Some(&service_type)),
    ]);
    Ok(RuleDef {
        name: Arc::from(name),
        priority: priority as i64,
        fixed_rate,
        reservoir_size,
        service_name,
        service_type,
        host,
        http_method,
        url_path,
        matchers,
    })
}

/// Why an answer of the daemon is unusable, in about 200 bytes at most: serde quotes an
/// offending string in full, so a long one is cut in the middle, keeping its position.
pub(crate) fn answer_error(call: &str, e: &serde_json::Error) -> String {
    const HEAD: usize = 150;
    const TAIL: usize = 40;
    let full = e.to_string();
    if full.len() <= HEAD + TAIL + 5 {
        return format!("invalid {call} answer: {full}");
    }
    let mut head = HEAD;
    while !full.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = full.len() - TAIL;
    while !full.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "invalid {call} answer: {} ... {}",
        &full[..head],
        &full[tail..]
    )
}

/// Parses a `GetSamplingRules` response: the accepted rules, or why the whole answer is
/// unusable. Invalid records are skipped (and logged); valid ones still apply. Rule names
/// are unique: a name seen again is skipped (the state of a rule is found by its name).
pub(crate) fn parse_rules_response(body: &[u8]) -> Result<Vec<RuleDef>, String> {
    #[derive(Deserialize)]
    struct Output {
        #[serde(rename = "SamplingRuleRecords")]
        records: Vec<Value>,
    }
    let out: Output =
        serde_json::from_slice(body).map_err(|e| answer_error("GetSamplingRules", &e))?;
    let mut defs = Vec::with_capacity(out.records.len());
    let mut names = std::collections::HashSet::new();
    for record in out.records {
        let raw = record
            .get("SamplingRule")
            .cloned()
            .map(serde_json::from_value::<RawRule>);
        match raw {
            Some(Ok(raw)) => {
                let name = raw.rule_name.clone().unwrap_or_default();
                match accept(raw) {
                    Ok(def) if !names.insert(Arc::clone(&def.name)) => {
                        tracing::debug!(rule = %name, "skipping sampling rule with a duplicate RuleName");
                    }
                    Ok(def) => defs.push(def),
                    Err(why) => tracing::debug!(rule = %name, why, "skipping sampling rule"),
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "skipping malformed sampling rule"),
            None => tracing::debug!("skipping sampling rule record without SamplingRule"),
        }
    }
    Ok(defs)
}

/// A `SamplingTargetDocuments` entry.
#[derive(Debug, Deserialize)]
pub(crate) struct Target {
    #[serde(rename = "RuleName")]
    pub(crate) rule_name: String,
    #[serde(rename = "FixedRate", default)]
    pub(crate) fixed_rate: Option<f64>,
    #[serde(rename = "ReservoirQuota", default)]
    pub(crate) reservoir_quota: Option<f64>,
    #[serde(rename = "ReservoirQuotaTTL", default)]
    pub(crate) reservoir_quota_ttl: Option<f64>,
    #[serde(rename = "Interval", default)]
    pub(crate) interval: Option<f64>,
}

/// One rule's counters, as a `SamplingTargets` call reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleCounts {
    pub(crate) rule: Arc<str>,
    pub(crate) requests: u64,
    pub(crate) sampled: u64,
    pub(crate) borrows: u64,
}

#[derive(Serialize)]
struct StatisticsDocument<'a> {
    #[serde(rename = "RuleName")]
    rule_name: &'a str,
    #[serde(rename = "ClientID")]
    client_id: &'a str,
    #[serde(rename = "RequestCount")]
    request_count: u64,
    #[serde(rename = "SampledCount")]
    sampled_count: u64,
    #[serde(rename = "BorrowCount")]
    borrow_count: u64,
    /// Whole epoch seconds (not milliseconds).
    #[serde(rename = "Timestamp")]
    timestamp: u64,
}

#[derive(Serialize)]
struct TargetsRequest<'a> {
    #[serde(rename = "SamplingStatisticsDocuments")]
    documents: Vec<StatisticsDocument<'a>>,
}

/// The body of a `SamplingTargets` call reporting `counts` (at most
/// [`MAX_STATISTICS_PER_CALL`]) at epoch second `timestamp`.
pub(crate) fn targets_request(counts: &[RuleCounts], client_id: &str, timestamp: u64) -> Vec<u8> {
    let request = TargetsRequest {
        documents: counts
            .iter()
            .map(|c| StatisticsDocument {
                rule_name: &c.rule,
                client_id,
                request_count: c.requests,
                sampled_count: c.sampled,
                borrow_count: c.borrows,
                timestamp,
            })
            .collect(),
    };
    // Strings and integers: writing them into a Vec cannot fail.
    serde_json::to_vec(&request).unwrap_or_default()
}

/// A `SamplingTargets` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct TargetsResponse {
    /// The entries, each read on its own ([`Target`]) so that one malformed entry does not
    /// cost the others.
    #[serde(rename = "SamplingTargetDocuments", default)]
    pub(crate) targets: Option<Vec<Value>>,
    #[serde(rename = "LastRuleModification", default)]
    pub(crate) last_rule_modification: Option<f64>,
    #[serde(rename = "UnprocessedStatistics", default)]
    pub(crate) unprocessed: Option<Vec<Value>>,
}

impl TargetsResponse {
    /// Reads an answer, or says in a few hundred bytes why it is unusable.
    pub(crate) fn parse(body: &[u8]) -> Result<TargetsResponse, String> {
        serde_json::from_slice(body).map_err(|e| answer_error("SamplingTargets", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `tests/fuzz_sampling_answers.rs`: serde quotes an offending string in full,
    /// so a garbage answer made an error (and a log line) as long as itself.
    #[test]
    fn errors_about_an_answer_are_short_and_keep_the_position() {
        let long = "é".repeat(100_000);
        let body = format!(r#"{{"SamplingRuleRecords":"{long}"}}"#);
        let err = parse_rules_response(body.as_bytes()).expect_err("a string is no array");
        assert!(err.len() <= 250, "{} bytes", err.len());
        assert!(
            err.starts_with("invalid GetSamplingRules answer: invalid type: string \"éé"),
            "{err}"
        );
        assert!(err.contains(" ... "), "{err}");
        assert!(
            err.ends_with(&format!("at line 1 column {}", body.len() - 1)),
            "{err}"
        );
        // Short ones are left alone.
        let err = parse_rules_response(b"{").expect_err("truncated");
        assert_eq!(
            err,
            "invalid GetSamplingRules answer: EOF while parsing an object at line 1 column 1"
        );
    }

    #[test]
    fn statistics_are_written_as_the_api_names_them() {
        let counts = [RuleCounts {
            rule: Arc::from("checkout"),
            requests: 10,
            sampled: 4,
            borrows: 1,
        }];
        let body = targets_request(&counts, "0123456789abcdef01234567", 1_700_000_000);
        assert_eq!(
            std::str::from_utf8(&body).expect("utf-8"),
            r#"{"SamplingStatisticsDocuments":[{"RuleName":"checkout","ClientID":"0123456789abcdef01234567","RequestCount":10,"SampledCount":4,"BorrowCount":1,"Timestamp":1700000000}]}"#
        );
    }
}
