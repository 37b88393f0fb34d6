//! Sampling rules: the rule itself, the built-in rules, the rules file and
//! the checks the X-Ray API applies to rules created or changed through it.
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
//! matchers default to `*`. The built-in `Default` rule (priority 10000,
//! reservoir 1, rate 1: every request) is added when the file has none.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The name of the catch-all rule, which cannot be deleted.
pub const DEFAULT_RULE: &str = "Default";
/// Its priority: after every other rule.
pub const DEFAULT_PRIORITY: i64 = 10_000;

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
    /// Resource ARN pattern (only `*` matches anything locally).
    #[serde(rename = "ResourceARN", alias = "resource_arn", default = "star")]
    pub resource_arn: String,
    /// Segment attributes that must match (served, not evaluated here).
    #[serde(rename = "Attributes", alias = "attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

fn star() -> String {
    "*".to_string()
}

/// Longest values the X-Ray API accepts for a rule's strings.
const LIMITS: [(&str, usize); 6] = [
    ("ServiceName", 64),
    ("ServiceType", 64),
    ("Host", 64),
    ("HTTPMethod", 10),
    ("URLPath", 128),
    ("ResourceARN", 500),
];

impl Rule {
    /// A rule matching every request, with these settings.
    pub fn new(name: &str, priority: i64, rate: f64, reservoir: i64) -> Self {
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
            resource_arn: star(),
            attributes: BTreeMap::new(),
        }
    }

    /// The rule's ARN.
    pub fn arn(&self) -> String {
        rule_arn(&self.rule_name)
    }

    /// `true` for the catch-all rule.
    pub fn is_default(&self) -> bool {
        self.rule_name == DEFAULT_RULE
    }

    /// The checks a rules file passes.
    pub fn check(&self) -> Result<(), String> {
        let n = self.rule_name.chars().count();
        if n == 0 || n > 32 {
            return Err(format!(
                "rule name {:?} must be 1 to 32 characters",
                self.rule_name
            ));
        }
        if !(1..=DEFAULT_PRIORITY).contains(&self.priority) {
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

    /// The checks the X-Ray API applies to a rule it is given: those of a
    /// rules file, plus the service's limits (priority 1 to 9999 except for
    /// `Default`, the string lengths, a 32-bit reservoir).
    pub fn check_api(&self) -> Result<(), String> {
        self.check()?;
        if !self.is_default() && self.priority > 9_999 {
            return Err(format!(
                "rule {}: Priority must be from 1 to 9999",
                self.rule_name
            ));
        }
        if i32::try_from(self.reservoir_size).is_err() {
            return Err(format!(
                "rule {}: ReservoirSize is out of range",
                self.rule_name
            ));
        }
        let values = [
            &self.service_name,
            &self.service_type,
            &self.host,
            &self.http_method,
            &self.url_path,
            &self.resource_arn,
        ];
        for ((member, max), value) in LIMITS.iter().zip(values) {
            if value.chars().count() > *max {
                return Err(format!(
                    "rule {}: {member} must be at most {max} characters",
                    self.rule_name
                ));
            }
        }
        Ok(())
    }
}

/// The ARN of the rule named `name`.
pub fn rule_arn(name: &str) -> String {
    format!("arn:aws:xray:local:000000000000:sampling-rule/{name}")
}

/// The name in a rule ARN made by [`rule_arn`] (any account or region).
pub fn name_from_arn(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?
        .rsplit_once(":sampling-rule/")
        .map(|(_, name)| name)
}

/// The built-in catch-all rule: every request is sampled.
pub fn default_rule() -> Rule {
    Rule::new(DEFAULT_RULE, DEFAULT_PRIORITY, 1.0, 1)
}

/// The built-in rules: `health` (GET /health is never sampled) and
/// `Default` (everything else is).
pub fn default_rules() -> Vec<Rule> {
    let mut health = Rule::new("health", 1, 0.0, 0);
    health.http_method = "GET".into();
    health.url_path = "/health".into();
    vec![health, default_rule()]
}

/// A rules file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRules(pub String);

impl fmt::Display for InvalidRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sampling rules: {}", self.0)
    }
}

impl std::error::Error for InvalidRules {}

/// Parses a rules file (see the module documentation for the format).
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, InvalidRules> {
    let v: Value = serde_json::from_str(text).map_err(|e| InvalidRules(e.to_string()))?;
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
                return Err(InvalidRules(
                    "expected an array of rules, {\"rules\": [...]} or {\"SamplingRuleRecords\": [...]}"
                        .into(),
                ));
            }
        }
        _ => return Err(InvalidRules("expected a JSON array or object".into())),
    };
    let mut rules = Vec::with_capacity(list.len() + 1);
    for (i, item) in list.into_iter().enumerate() {
        let rule: Rule =
            serde_json::from_value(item).map_err(|e| InvalidRules(format!("rule #{i}: {e}")))?;
        rule.check().map_err(InvalidRules)?;
        if rules.iter().any(|r: &Rule| r.rule_name == rule.rule_name) {
            return Err(InvalidRules(format!(
                "rule name {:?} is used twice",
                rule.rule_name
            )));
        }
        rules.push(rule);
    }
    if !rules.iter().any(Rule::is_default) {
        rules.push(default_rule());
    }
    sort(&mut rules);
    Ok(rules)
}

/// Evaluation order: priority, then name.
pub fn sort(rules: &mut [Rule]) {
    rules.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(a.rule_name.cmp(&b.rule_name))
    });
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
        // The Default rule added to a file samples everything, like the built-in one.
        assert_eq!(rules[1], default_rule());
        assert!(parse_rules("[{\"RuleName\":\"a\"}]").is_err());
        assert!(parse_rules("{}").is_err());
    }

    #[test]
    fn arns_name_their_rule() {
        let r = Rule::new("orders", 5, 0.5, 1);
        assert_eq!(name_from_arn(&r.arn()), Some("orders"));
        assert_eq!(
            name_from_arn("arn:aws:xray:us-east-1:123456789012:sampling-rule/x"),
            Some("x")
        );
        assert_eq!(name_from_arn("orders"), None);
    }

    #[test]
    fn api_limits() {
        let mut r = Rule::new("a", 9_999, 0.5, 1);
        assert_eq!(r.check_api(), Ok(()));
        r.priority = 10_000;
        assert!(r.check().is_ok() && r.check_api().is_err());
        r.priority = 1;
        r.http_method = "X".repeat(11);
        assert!(r.check_api().is_err_and(|e| e.contains("HTTPMethod")));
        r.http_method = "GET".into();
        r.reservoir_size = i64::from(i32::MAX) + 1;
        assert!(r.check_api().is_err());
        assert_eq!(default_rule().check_api(), Ok(()));
    }
}
