//! `GetSamplingRules`, `GetSamplingTargets`, `GetSamplingStatisticSummaries`,
//! `CreateSamplingRule`, `UpdateSamplingRule` and `DeleteSamplingRule`.

use serde_json::{Map, Value, json};

use crate::state::clients::{Counts, Owner};
use crate::state::sampling::rules::{self, Rule};
use crate::state::sampling::{MAX_STATISTICS_DOCUMENTS, Report, RuleError, RuleRecord, RuleUpdate};
use crate::state::{App, unix_now};

use super::{ApiError, Members, OpResult, request};

/// A rule record as the API shows it.
pub fn record_json(r: &RuleRecord) -> Value {
    let rule = &r.rule;
    json!({
        "SamplingRule": {
            "RuleName": rule.rule_name,
            "RuleARN": rule.arn(),
            "ResourceARN": rule.resource_arn,
            "Priority": rule.priority,
            "FixedRate": rule.fixed_rate,
            "ReservoirSize": rule.reservoir_size,
            "ServiceName": rule.service_name,
            "ServiceType": rule.service_type,
            "Host": rule.host,
            "HTTPMethod": rule.http_method,
            "URLPath": rule.url_path,
            "Version": 1,
            "Attributes": rule.attributes,
        },
        "CreatedAt": r.created_at,
        "ModifiedAt": r.modified_at,
    })
}

fn rule_error(e: RuleError) -> ApiError {
    match e {
        RuleError::Invalid(m) => ApiError::invalid(m),
        RuleError::LimitExceeded(m) => ApiError::rule_limit(m),
    }
}

/// `POST /GetSamplingRules`: every rule, in one page.
pub fn get_sampling_rules(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    super::next_token(&Members(&req), |_| None::<()>)?;
    let sampler = app.sampler();
    let records: Vec<Value> = sampler.records().iter().map(record_json).collect();
    Ok(json!({ "SamplingRuleRecords": records }))
}

/// `POST /SamplingTargets`: records the statistics and answers each
/// rule's target. `owner` is the process that asked, when known (for the
/// per-service counts).
pub fn get_sampling_targets(app: &App, body: &[u8], owner: Option<Owner>) -> OpResult {
    let req = request(body)?;
    let m = Members(&req);
    let Some(docs) = m.list("SamplingStatisticsDocuments")? else {
        return Err(ApiError::invalid(
            "SamplingStatisticsDocuments (an array) is required",
        ));
    };
    if docs.len() > MAX_STATISTICS_DOCUMENTS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_STATISTICS_DOCUMENTS} SamplingStatisticsDocuments per call"
        )));
    }
    let now = unix_now();
    let mut sampler = app.sampler();
    sampler.forget_inactive_clients(now);
    let mut targets = Vec::new();
    let mut unprocessed = Vec::new();
    let mut reported = Vec::new();
    for doc in docs {
        let name = doc.get("RuleName").and_then(Value::as_str).unwrap_or("");
        let client = doc.get("ClientID").and_then(Value::as_str).unwrap_or("");
        let count = |k: &str| doc.get(k).and_then(Value::as_u64);
        let (Some(request_count), Some(sampled_count), Some(borrow_count)) = (
            count("RequestCount"),
            count("SampledCount"),
            count("BorrowCount").or(Some(0)),
        ) else {
            unprocessed.push(json!({"RuleName": name, "ErrorCode": "400",
                "Message": "RequestCount and SampledCount must be non-negative integers"}));
            continue;
        };
        let report = Report {
            rule_name: name,
            client_id: client,
            request_count,
            sampled_count,
            borrow_count,
        };
        match sampler.report(report, now) {
            Ok(t) => {
                targets.push(json!({
                    "RuleName": t.rule_name,
                    "FixedRate": t.fixed_rate,
                    "ReservoirQuota": t.reservoir_quota,
                    "ReservoirQuotaTTL": t.reservoir_quota_ttl,
                    "Interval": t.interval,
                }));
                reported.push((client, name, request_count, sampled_count, borrow_count));
            }
            Err(message) => unprocessed.push(json!({
                "RuleName": name, "ErrorCode": "400", "Message": message,
            })),
        }
    }
    // Rounded up, so an SDK that fetched the rules within the same second as
    // a change still sees it as newer.
    let last_modification = sampler.last_modification().ceil();
    drop(sampler);
    if !reported.is_empty() {
        let mut clients = app.clients();
        for (client, rule, request_count, sampled_count, borrow_count) in reported {
            let counts = Counts {
                request_count,
                sampled_count,
                borrow_count,
            };
            clients.sampling_report(client, owner.clone(), rule, counts);
        }
    }
    Ok(json!({
        "SamplingTargetDocuments": targets,
        "LastRuleModification": last_modification,
        "UnprocessedStatistics": unprocessed,
    }))
}

/// `POST /SamplingStatisticSummaries`: per rule, the counts reported since
/// the rule was loaded or created.
pub fn get_sampling_statistic_summaries(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    super::next_token(&Members(&req), |_| None::<()>)?;
    let now = unix_now();
    let sampler = app.sampler();
    let clamp = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    let summaries: Vec<Value> = sampler
        .stats()
        .into_iter()
        .filter(|(_, s)| s.reports > 0)
        .map(|(name, s)| {
            json!({
                "RuleName": name,
                "Timestamp": s.last_report.unwrap_or(now),
                "RequestCount": clamp(s.request_count),
                "SampledCount": clamp(s.sampled_count),
                "BorrowCount": clamp(s.borrow_count),
            })
        })
        .collect();
    Ok(json!({ "SamplingStatisticSummaries": summaries }))
}

/// The rule a request names by `RuleName` or `RuleARN`.
fn rule_name<'a>(m: &Members<'a>) -> Result<&'a str, ApiError> {
    match (m.string("RuleName")?, m.string("RuleARN")?) {
        (Some(name), _) => Ok(name),
        (None, Some(arn)) => rules::name_from_arn(arn)
            .ok_or_else(|| ApiError::invalid(format!("{arn:?} is not a sampling rule ARN"))),
        (None, None) => Err(ApiError::invalid("RuleName or RuleARN is required")),
    }
}

fn attributes(
    m: &Members<'_>,
) -> Result<Option<std::collections::BTreeMap<String, String>>, ApiError> {
    let Some(a) = m.object("Attributes")? else {
        return Ok(None);
    };
    a.0.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(ApiError::invalid("Attributes must map strings to strings")),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// `POST /CreateSamplingRule`.
pub fn create_sampling_rule(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    let m = Members(&req);
    let Some(r) = m.object("SamplingRule")? else {
        return Err(ApiError::invalid("SamplingRule is required"));
    };
    let name = rule_name(&r)?.to_string();
    let text = |key: &str| -> Result<String, ApiError> {
        r.required(key, Members::string).map(str::to_string)
    };
    let version = r.required("Version", Members::integer)?;
    if version != 1 {
        return Err(ApiError::invalid("Version must be 1"));
    }
    let rule = Rule {
        rule_name: name,
        priority: r.required("Priority", Members::integer)?,
        fixed_rate: r.required("FixedRate", Members::number)?,
        reservoir_size: r.required("ReservoirSize", Members::integer)?,
        service_name: text("ServiceName")?,
        service_type: text("ServiceType")?,
        host: text("Host")?,
        http_method: text("HTTPMethod")?,
        url_path: text("URLPath")?,
        resource_arn: text("ResourceARN")?,
        attributes: attributes(&r)?.unwrap_or_default(),
    };
    let record = app.sampler().create(rule, unix_now()).map_err(rule_error)?;
    Ok(json!({ "SamplingRuleRecord": record_json(&record) }))
}

/// `POST /UpdateSamplingRule`.
pub fn update_sampling_rule(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    let m = Members(&req);
    let Some(u) = m.object("SamplingRuleUpdate")? else {
        return Err(ApiError::invalid("SamplingRuleUpdate is required"));
    };
    let name = rule_name(&u)?;
    let text =
        |key: &str| -> Result<Option<String>, ApiError> { Ok(u.string(key)?.map(str::to_string)) };
    let update = RuleUpdate {
        priority: u.integer("Priority")?,
        fixed_rate: u.number("FixedRate")?,
        reservoir_size: u.integer("ReservoirSize")?,
        service_name: text("ServiceName")?,
        service_type: text("ServiceType")?,
        host: text("Host")?,
        http_method: text("HTTPMethod")?,
        url_path: text("URLPath")?,
        resource_arn: text("ResourceARN")?,
        attributes: attributes(&u)?,
    };
    let record = app
        .sampler()
        .update(name, update, unix_now())
        .map_err(rule_error)?;
    Ok(json!({ "SamplingRuleRecord": record_json(&record) }))
}

/// `POST /DeleteSamplingRule`.
pub fn delete_sampling_rule(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    let name = rule_name(&Members(&req))?;
    let record = app.sampler().delete(name, unix_now()).map_err(rule_error)?;
    Ok(json!({ "SamplingRuleRecord": record_json(&record) }))
}

/// The rules as the viewer's stats show them (the rules file's keys).
pub fn rules_json(app: &App) -> Value {
    let sampler = app.sampler();
    let rules: Vec<Value> = sampler
        .rules()
        .into_iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Object(Map::new())))
        .collect();
    Value::Array(rules)
}
