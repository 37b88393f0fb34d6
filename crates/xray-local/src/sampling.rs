//! Local answers for the centralized sampling API (`GetSamplingRules`,
//! `GetSamplingTargets`), computed from a rules file.
//!
//! # Rules file
//!
//! JSON, in one of three shapes:
//! - an array of rules: `[{"RuleName": "api", "Priority": 5, ...}]`;
//! - an object with a `rules` (or `SamplingRules`) array;
//! - the output of `aws xray get-sampling-rules`
//!   (`{"SamplingRuleRecords": [{"SamplingRule": {...}}]}`).
//!
//! Each rule uses the AWS `SamplingRule` keys (`RuleName`, `Priority`,
//! `FixedRate`, `ReservoirSize`, `ServiceName`, `ServiceType`, `Host`,
//! `HTTPMethod`, `URLPath`); the console's snake_case spellings
//! (`rule_name`, `fixed_rate`, `http_method`, ...) are accepted too. Only
//! `RuleName`, `Priority`, `FixedRate` and `ReservoirSize` are required; the
//! matchers default to `*`. A `Default` rule (priority 10000, reservoir 1,
//! rate 0.05) is added when the file has none.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Seconds between target refreshes that clients are told to use.
pub const INTERVAL_SECS: u64 = 10;
/// A client counts as active for quota sharing this long after its last report.
pub const ACTIVE_CLIENT_SECS: f64 = 30.0;
/// The API accepts at most this many statistics documents per call.
pub const MAX_STATISTICS_DOCUMENTS: usize = 25;
/// Longest accepted `ClientID`, in bytes (the SDKs send 24 hex digits).
pub const MAX_CLIENT_ID_BYTES: usize = 64;
/// Active clients remembered per rule; a new client beyond this replaces the
/// one that reported least recently.
pub const MAX_CLIENTS_PER_RULE: usize = 1_000;

/// One sampling rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Rule {
    /// Unique rule name (1 to 32 characters).
    #[serde(rename = "RuleName", alias = "rule_name")]
    pub rule_name: String,
    /// Lower numbers are evaluated first (1 to 9999; `Default` is 10000).
    #[serde(rename = "Priority", alias = "priority")]
    pub priority: i64,
    /// Fraction of requests sampled after the reservoir is used (0 to 1).
    #[serde(rename = "FixedRate", alias = "fixed_rate")]
    pub fixed_rate: f64,
    /// Requests per second sampled before the fixed rate applies.
    #[serde(rename = "ReservoirSize", alias = "reservoir_size")]
    pub reservoir_size: i64,
    /// Service name pattern.
    #[serde(rename = "ServiceName", alias = "service_name", default = "star")]
    pub service_name: String,
    /// Service type (origin) pattern.
    #[serde(rename = "ServiceType", alias = "service_type", default = "star")]
    pub service_type: String,
    /// Host header pattern.
    #[serde(rename = "Host", alias = "host", default = "star")]
    pub host: String,
    /// HTTP method pattern.
    #[serde(rename = "HTTPMethod", alias = "http_method", default = "star")]
    pub http_method: String,
    /// URL path pattern.
    #[serde(rename = "URLPath", alias = "url_path", default = "star")]
    pub url_path: String,
}

fn star() -> String {
    "*".to_string()
}

impl Rule {
    fn new(name: &str, priority: i64, rate: f64, reservoir: i64) -> Self {
        Self {
            rule_name: name.to_string(),
            priority,
            fixed_rate: rate,
            reservoir_size: reservoir,
            service_name: star(),
            service_type: star(),
            host: star(),
            http_method: star(),
            url_path: star(),
        }
    }

    fn check(&self) -> Result<(), String> {
        let n = self.rule_name.chars().count();
        if n == 0 || n > 32 {
            return Err(format!(
                "rule name {:?} must be 1 to 32 characters",
                self.rule_name
            ));
        }
        if !(1..=10_000).contains(&self.priority) {
            return Err(format!(
                "rule {}: priority must be 1..=10000",
                self.rule_name
            ));
        }
        if !(0.0..=1.0).contains(&self.fixed_rate) {
            return Err(format!("rule {}: fixed rate must be 0..=1", self.rule_name));
        }
        if self.reservoir_size < 0 {
            return Err(format!(
                "rule {}: reservoir size must be >= 0",
                self.rule_name
            ));
        }
        Ok(())
    }
}

/// The built-in rules: `health` (GET /health never sampled) and `Default`.
pub fn default_rules() -> Vec<Rule> {
    let mut health = Rule::new("health", 1, 0.0, 0);
    health.http_method = "GET".into();
    health.url_path = "/health".into();
    vec![health, Rule::new("Default", 10_000, 0.05, 1)]
}

/// A rules file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError(pub String);

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sampling rules: {}", self.0)
    }
}

impl std::error::Error for RulesError {}

/// Parses a rules file (see the module documentation for the format).
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, RulesError> {
    let v: Value = serde_json::from_str(text).map_err(|e| RulesError(e.to_string()))?;
    let list = match v {
        Value::Array(list) => list,
        Value::Object(mut m) => {
            if let Some(Value::Array(records)) = m.remove("SamplingRuleRecords") {
                records
                    .into_iter()
                    .map(|mut r| r.get_mut("SamplingRule").map(Value::take).unwrap_or(r))
                    .collect()
            } else if let Some(Value::Array(list)) =
                m.remove("rules").or_else(|| m.remove("SamplingRules"))
            {
                list
            } else {
                return Err(RulesError(
                    "expected an array of rules, {\"rules\": [...]} or {\"SamplingRuleRecords\": [...]}"
                        .into(),
                ));
            }
        }
        _ => return Err(RulesError("expected a JSON array or object".into())),
    };
    let mut rules = Vec::with_capacity(list.len() + 1);
    for (i, item) in list.into_iter().enumerate() {
        let rule: Rule =
            serde_json::from_value(item).map_err(|e| RulesError(format!("rule #{i}: {e}")))?;
        rule.check().map_err(RulesError)?;
        if rules.iter().any(|r: &Rule| r.rule_name == rule.rule_name) {
            return Err(RulesError(format!(
                "rule name {:?} is used twice",
                rule.rule_name
            )));
        }
        rules.push(rule);
    }
    if !rules.iter().any(|r| r.rule_name == "Default") {
        rules.push(Rule::new("Default", 10_000, 0.05, 1));
    }
    rules.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(a.rule_name.cmp(&b.rule_name))
    });
    Ok(rules)
}

/// Statistics reported for one rule.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleStats {
    /// Sum of reported `RequestCount`.
    pub request_count: u64,
    /// Sum of reported `SampledCount`.
    pub sampled_count: u64,
    /// Sum of reported `BorrowCount`.
    pub borrow_count: u64,
    /// Statistics documents received.
    pub reports: u64,
    /// Clients that reported within the active window.
    pub active_clients: usize,
    /// Time of the last report, Unix seconds.
    pub last_report: Option<f64>,
}

/// Rules plus the statistics clients reported.
#[derive(Debug)]
pub struct Sampler {
    rules: Vec<Rule>,
    loaded_at: f64,
    stats: HashMap<String, RuleStats>,
    /// rule name -> client id -> last report time
    clients: HashMap<String, BTreeMap<String, f64>>,
}

/// An error answer in the AWS JSON protocol style.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// AWS error type, e.g. `InvalidRequestException`.
    pub kind: &'static str,
    /// Explanation.
    pub message: String,
}

impl ApiError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "InvalidRequestException",
            message: message.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"__type": self.kind, "Message": self.message, "message": self.message})
    }
}

impl Sampler {
    /// A sampler serving `rules`, considered modified at `now` (Unix seconds).
    pub fn new(rules: Vec<Rule>, now: f64) -> Self {
        Self {
            rules,
            loaded_at: now,
            stats: HashMap::new(),
            clients: HashMap::new(),
        }
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Answers `POST /GetSamplingRules`.
    pub fn get_sampling_rules(&self, body: &[u8]) -> Result<Value, ApiError> {
        if !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(_)) => {}
                _ => return Err(ApiError::invalid("request body must be a JSON object")),
            }
        }
        let records: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                json!({
                    "SamplingRule": {
                        "RuleName": r.rule_name,
                        "RuleARN": format!("arn:aws:xray:local:000000000000:sampling-rule/{}", r.rule_name),
                        "ResourceARN": "*",
                        "Priority": r.priority,
                        "FixedRate": r.fixed_rate,
                        "ReservoirSize": r.reservoir_size,
                        "ServiceName": r.service_name,
                        "ServiceType": r.service_type,
                        "Host": r.host,
                        "HTTPMethod": r.http_method,
                        "URLPath": r.url_path,
                        "Version": 1,
                        "Attributes": {},
                    },
                    "CreatedAt": self.loaded_at,
                    "ModifiedAt": self.loaded_at,
                })
            })
            .collect();
        Ok(json!({ "SamplingRuleRecords": records }))
    }

    /// Answers `POST /SamplingTargets`, recording the statistics.
    pub fn sampling_targets(&mut self, body: &[u8], now: f64) -> Result<Value, ApiError> {
        let req: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("request body is not JSON: {e}")))?;
        let docs = match req.get("SamplingStatisticsDocuments") {
            Some(Value::Array(d)) => d,
            _ => {
                return Err(ApiError::invalid(
                    "SamplingStatisticsDocuments (an array) is required",
                ));
            }
        };
        if docs.len() > MAX_STATISTICS_DOCUMENTS {
            return Err(ApiError::invalid(format!(
                "at most {MAX_STATISTICS_DOCUMENTS} SamplingStatisticsDocuments per call"
            )));
        }
        self.forget_inactive_clients(now);
        let mut targets = Vec::new();
        let mut unprocessed = Vec::new();
        for doc in docs {
            let name = doc.get("RuleName").and_then(Value::as_str).unwrap_or("");
            let client = doc.get("ClientID").and_then(Value::as_str).unwrap_or("");
            let count = |k: &str| doc.get(k).and_then(Value::as_u64);
            let (Some(req_n), Some(sampled), Some(borrow)) = (
                count("RequestCount"),
                count("SampledCount"),
                count("BorrowCount").or(Some(0)),
            ) else {
                unprocessed.push(json!({"RuleName": name, "ErrorCode": "400",
                    "Message": "RequestCount and SampledCount must be non-negative integers"}));
                continue;
            };
            if client.is_empty() {
                unprocessed.push(
                    json!({"RuleName": name, "ErrorCode": "400", "Message": "ClientID is required"}),
                );
                continue;
            }
            if client.len() > MAX_CLIENT_ID_BYTES {
                unprocessed.push(json!({"RuleName": name, "ErrorCode": "400",
                    "Message": format!("ClientID must be at most {MAX_CLIENT_ID_BYTES} bytes")}));
                continue;
            }
            let Some(rule) = self.rules.iter().find(|r| r.rule_name == name) else {
                unprocessed.push(json!({"RuleName": name, "ErrorCode": "400",
                    "Message": format!("no sampling rule named {name:?}")}));
                continue;
            };
            let stats = self.stats.entry(name.to_string()).or_default();
            stats.request_count = stats.request_count.saturating_add(req_n);
            stats.sampled_count = stats.sampled_count.saturating_add(sampled);
            stats.borrow_count = stats.borrow_count.saturating_add(borrow);
            stats.reports += 1;
            stats.last_report = Some(now);
            let clients = self.clients.entry(name.to_string()).or_default();
            if !clients.contains_key(client) && clients.len() >= MAX_CLIENTS_PER_RULE {
                // Linear, but only for a new client of a full rule, and the map is capped.
                let oldest = clients
                    .iter()
                    .min_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(id, _)| id.clone());
                if let Some(oldest) = oldest {
                    clients.remove(&oldest);
                }
            }
            clients.insert(client.to_string(), now);
            stats.active_clients = clients.len();
            targets.push(json!({
                "RuleName": name,
                "FixedRate": rule.fixed_rate,
                "ReservoirQuota": quota_share(rule.reservoir_size, clients, client),
                "ReservoirQuotaTTL": (now + INTERVAL_SECS as f64).floor(),
                "Interval": INTERVAL_SECS,
            }));
        }
        Ok(json!({
            "SamplingTargetDocuments": targets,
            "LastRuleModification": self.loaded_at.floor(),
            "UnprocessedStatistics": unprocessed,
        }))
    }

    /// Drops clients of every rule that have not reported within
    /// [`ACTIVE_CLIENT_SECS`], so rules nobody reports for any more do not
    /// keep them.
    fn forget_inactive_clients(&mut self, now: f64) {
        self.clients.retain(|rule, clients| {
            clients.retain(|_, seen| now - *seen <= ACTIVE_CLIENT_SECS);
            if let Some(stats) = self.stats.get_mut(rule) {
                stats.active_clients = clients.len();
            }
            !clients.is_empty()
        });
    }

    /// Statistics per rule, for every rule.
    pub fn stats(&self) -> BTreeMap<String, RuleStats> {
        self.rules
            .iter()
            .map(|r| {
                let s = self.stats.get(&r.rule_name).cloned().unwrap_or_default();
                (r.rule_name.clone(), s)
            })
            .collect()
    }
}

/// Splits `reservoir` among the active clients so the shares add up exactly:
/// each gets `reservoir / n`, and the first `reservoir % n` clients (by ID)
/// one more.
fn quota_share(reservoir: i64, clients: &BTreeMap<String, f64>, client: &str) -> i64 {
    let n = clients.len().max(1) as i64;
    let rank = clients.keys().position(|c| c == client).unwrap_or(0) as i64;
    let reservoir = reservoir.max(0);
    reservoir / n + i64::from(rank < reservoir % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_shapes() {
        let a = parse_rules(r#"[{"RuleName":"a","Priority":5,"FixedRate":0.5,"ReservoirSize":3}]"#);
        let b = parse_rules(
            r#"{"rules":[{"rule_name":"a","priority":5,"fixed_rate":0.5,"reservoir_size":3}]}"#,
        );
        let c = parse_rules(
            r#"{"SamplingRuleRecords":[{"SamplingRule":{"RuleName":"a","Priority":5,"FixedRate":0.5,"ReservoirSize":3}}]}"#,
        );
        assert_eq!(a, b);
        assert_eq!(a, c);
        let rules = a.expect("valid rules");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].rule_name, "Default");
        assert!(parse_rules("[{\"RuleName\":\"a\"}]").is_err());
        assert!(parse_rules("{}").is_err());
    }

    #[test]
    fn quota_adds_up() {
        let clients: BTreeMap<String, f64> = ["a", "b", "c"]
            .iter()
            .map(|c| (c.to_string(), 0.0))
            .collect();
        let total: i64 = ["a", "b", "c"]
            .iter()
            .map(|c| quota_share(10, &clients, c))
            .sum();
        assert_eq!(total, 10);
        assert_eq!(quota_share(1, &clients, "a"), 1);
        assert_eq!(quota_share(1, &clients, "b"), 0);
    }

    fn report(s: &mut Sampler, rule: &str, clients: &[String], now: f64) -> Value {
        let docs: Vec<Value> = clients
            .iter()
            .map(|c| json!({"RuleName": rule, "ClientID": c, "RequestCount": 1, "SampledCount": 0}))
            .collect();
        let body = json!({ "SamplingStatisticsDocuments": docs }).to_string();
        s.sampling_targets(body.as_bytes(), now)
            .unwrap_or_else(|e| e.body())
    }

    fn active(s: &Sampler, rule: &str) -> usize {
        s.stats().get(rule).map_or(usize::MAX, |r| r.active_clients)
    }

    #[test]
    fn long_client_ids_are_rejected() {
        let mut s = Sampler::new(default_rules(), 0.0);
        let v = report(
            &mut s,
            "Default",
            &["a".repeat(MAX_CLIENT_ID_BYTES + 1)],
            1.0,
        );
        assert_eq!(v["SamplingTargetDocuments"], json!([]), "{v}");
        assert_eq!(v["UnprocessedStatistics"][0]["ErrorCode"], "400", "{v}");
        assert_eq!(active(&s, "Default"), 0);
        let v = report(&mut s, "Default", &["a".repeat(MAX_CLIENT_ID_BYTES)], 1.0);
        assert_eq!(v["UnprocessedStatistics"], json!([]), "{v}");
        assert_eq!(active(&s, "Default"), 1);
    }

    #[test]
    fn clients_per_rule_are_capped_and_the_oldest_go() {
        let mut s = Sampler::new(default_rules(), 0.0);
        let total = MAX_CLIENTS_PER_RULE + 100;
        let ids: Vec<String> = (0..total).map(|i| format!("{i:024x}")).collect();
        for (n, chunk) in ids.chunks(MAX_STATISTICS_DOCUMENTS).enumerate() {
            report(&mut s, "Default", chunk, n as f64 * 0.01);
        }
        assert_eq!(active(&s, "Default"), MAX_CLIENTS_PER_RULE);
        let clients = s.clients.get("Default").map(|c| c.len());
        assert_eq!(clients, Some(MAX_CLIENTS_PER_RULE));
        let kept = |id: &String| s.clients.get("Default").is_some_and(|c| c.contains_key(id));
        assert!(!kept(&ids[0]) && !kept(&ids[99]));
        assert!(kept(&ids[100]) && kept(&ids[total - 1]));
    }

    #[test]
    fn inactive_clients_of_every_rule_are_forgotten() {
        let mut s = Sampler::new(default_rules(), 0.0);
        let ids: Vec<String> = (0..10).map(|i| format!("{i:024x}")).collect();
        report(&mut s, "health", &ids, 0.0);
        assert_eq!(active(&s, "health"), 10);
        // Only another rule is reported on later: health's clients go all the same.
        report(&mut s, "Default", &ids[..1], ACTIVE_CLIENT_SECS + 1.0);
        assert_eq!(active(&s, "health"), 0);
        assert!(!s.clients.contains_key("health"));
        assert_eq!(active(&s, "Default"), 1);
    }
}
