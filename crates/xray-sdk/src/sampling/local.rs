//! Local sampling rules: the JSON file format (versions 1 and 2) and the sampler that applies
//! them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::decision::{Sampler, SamplingDecision, SamplingRequest};
use super::random::Random;
use super::reservoir::Reservoir;
use super::wildcard::{Field, Fields, Matchers, Pattern};
use crate::clock::{Clock, Time};

/// One local rule: what it matches and how much it samples.
///
/// A matcher left unset matches every request; a request that lacks the attribute (no host,
/// say) also matches, as in the official SDKs.
///
/// ```
/// use xray_sdk::sampling::LocalRule;
/// let health = LocalRule::new(0, 0.0).with_http_method("GET").with_url_path("/health").with_description("no health checks");
/// assert_eq!(health.url_path(), Some("/health"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRule {
    description: Option<String>,
    host: Option<Pattern>,
    http_method: Option<Pattern>,
    url_path: Option<Pattern>,
    // The three above, cheapest first, without `*`.
    matchers: Matchers,
    fixed_target: u32,
    rate: f64,
}

impl LocalRule {
    /// A rule that matches every request, samples `fixed_target` requests each second and
    /// then the fraction `rate` of the others (clamped to 0..=1; NaN counts as 0).
    pub fn new(fixed_target: u32, rate: f64) -> Self {
        LocalRule {
            description: None,
            host: None,
            http_method: None,
            url_path: None,
            matchers: Matchers::default(),
            fixed_target,
            rate: if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            },
        }
    }

    /// Matches the `Host` (wildcards allowed).
    pub fn with_host(mut self, pattern: impl Into<String>) -> Self {
        self.host = Some(Pattern::new(pattern));
        self.plan()
    }

    /// Matches the HTTP method (wildcards allowed).
    pub fn with_http_method(mut self, pattern: impl Into<String>) -> Self {
        self.http_method = Some(Pattern::new(pattern));
        self.plan()
    }

    /// Matches the URL path (wildcards allowed).
    pub fn with_url_path(mut self, pattern: impl Into<String>) -> Self {
        self.url_path = Some(Pattern::new(pattern));
        self.plan()
    }

    /// Orders the matchers after a pattern changed.
    fn plan(mut self) -> Self {
        self.matchers = Matchers::new([
            (Field::Method, self.http_method.as_ref()),
            (Field::UrlPath, self.url_path.as_ref()),
            (Field::Host, self.host.as_ref()),
        ]);
        self
    }

    /// A free-text description (not used for matching).
    pub fn with_description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The host pattern, if any (`service_name` in a version 1 file).
    pub fn host(&self) -> Option<&str> {
        self.host.as_ref().map(Pattern::as_str)
    }

    /// The HTTP method pattern, if any.
    pub fn http_method(&self) -> Option<&str> {
        self.http_method.as_ref().map(Pattern::as_str)
    }

    /// The URL path pattern, if any.
    pub fn url_path(&self) -> Option<&str> {
        self.url_path.as_ref().map(Pattern::as_str)
    }

    /// Requests sampled each second before `rate` applies.
    pub fn fixed_target(&self) -> u32 {
        self.fixed_target
    }

    /// The fraction of requests sampled beyond `fixed_target`.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// True when the request matches every matcher of this rule.
    pub fn matches(&self, request: &SamplingRequest<'_>) -> bool {
        self.matches_fields(&Fields::local(request))
    }

    #[inline]
    fn matches_fields(&self, fields: &Fields<'_>) -> bool {
        self.matchers.matches(fields)
    }
}

/// A set of local rules: ordered rules (first match wins) and a default for everything else.
///
/// The built-in default (`LocalRules::default()`) samples the first request each second and
/// 5 % of the others.
///
/// ```
/// use xray_sdk::sampling::{LocalRule, LocalRules};
/// let rules = LocalRules::new(1, 0.05)
///     .with_rule(LocalRule::new(0, 0.0).with_http_method("GET").with_url_path("/health"))
///     .with_rule(LocalRule::new(10, 1.0).with_http_method("POST").with_url_path("/api/checkout"));
/// assert_eq!(rules.rules().len(), 2);
///
/// let from_file = LocalRules::from_json_str(r#"{
///     "version": 2,
///     "default": { "fixed_target": 1, "rate": 0.05 },
///     "rules": [ { "host": "*", "http_method": "GET", "url_path": "/health",
///                  "fixed_target": 0, "rate": 0 } ]
/// }"#).unwrap();
/// assert_eq!(from_file.rules()[0].url_path(), Some("/health"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRules {
    version: u32,
    default: LocalRule,
    rules: Vec<LocalRule>,
}

impl Default for LocalRules {
    fn default() -> Self {
        LocalRules::new(1, 0.05)
    }
}

impl LocalRules {
    /// No rules yet; the default samples `fixed_target` per second and then `rate`.
    pub fn new(fixed_target: u32, rate: f64) -> Self {
        LocalRules {
            version: 2,
            default: LocalRule::new(fixed_target, rate),
            rules: Vec::new(),
        }
    }

    /// Appends a rule (rules are tried in the order they were added).
    pub fn with_rule(mut self, rule: LocalRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The rules, in the order they are tried.
    pub fn rules(&self) -> &[LocalRule] {
        &self.rules
    }

    /// The default rule (its matchers are unset).
    pub fn default_rule(&self) -> &LocalRule {
        &self.default
    }

    /// The file format version the rules came from (2 for rules built in code).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The index of the first rule that matches, or `None` when the default applies.
    pub fn find(&self, request: &SamplingRequest<'_>) -> Option<usize> {
        let fields = Fields::local(request);
        self.rules.iter().position(|r| r.matches_fields(&fields))
    }

    /// Reads a rules file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, RulesError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| RulesError {
            file: Some(path.to_owned()),
            kind: ErrorKind::Io(e.to_string()),
        })?;
        LocalRules::from_json_str(&text).map_err(|mut e| {
            e.file = Some(path.to_owned());
            e
        })
    }

    /// Parses the JSON of a rules file, version 1 or 2.
    pub fn from_json_str(json: &str) -> Result<Self, RulesError> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            RulesError {
                file: None,
                kind: ErrorKind::Syntax {
                    line: e.line(),
                    column: e.column(),
                    message,
                },
            }
        })?;
        parse_document(&value).map_err(|(field, expected)| RulesError {
            file: None,
            kind: ErrorKind::Field { field, expected },
        })
    }
}

type FieldError = (String, String);

fn field_err(field: impl Into<String>, expected: impl Into<String>) -> FieldError {
    (field.into(), expected.into())
}

/// A value as an error message shows it: JSON, cut after about 40 bytes, with the control
/// characters JSON leaves as they are (DEL, C1) escaped too.
fn found(v: &Value) -> String {
    let mut s = v.to_string();
    if s.contains(char::is_control) {
        s = s
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
    }
    if s.len() > 40 {
        let mut cut = 37;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// An unknown key as a field path shows it: as written when it is short and printable, else
/// quoted and escaped and cut like a value, so an error message never carries control
/// characters or a whole megabyte key.
fn key_name(key: &str) -> String {
    if !key.is_empty() && key.len() <= 40 && !key.contains(char::is_control) {
        key.to_owned()
    } else {
        found(&Value::String(key.to_owned()))
    }
}

fn parse_document(v: &Value) -> Result<LocalRules, FieldError> {
    let obj = v.as_object().ok_or_else(|| {
        field_err(
            "(top level)",
            format!(
                "an object with \"version\", \"default\" and \"rules\", found {}",
                found(v)
            ),
        )
    })?;
    for key in obj.keys() {
        if !matches!(key.as_str(), "version" | "default" | "rules") {
            return Err(field_err(
                key_name(key),
                "only \"version\", \"default\" and \"rules\" at the top level",
            ));
        }
    }
    let version = match obj.get("version") {
        None => return Err(field_err("version", "a version number (1 or 2)")),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => 1,
        Some(Value::Number(n)) if n.as_u64() == Some(2) => 2,
        Some(other) => {
            return Err(field_err(
                "version",
                format!("1 or 2, found {}", found(other)),
            ));
        }
    };
    let default = match obj.get("default") {
        None => {
            return Err(field_err(
                "default",
                "a default rule, e.g. {\"fixed_target\": 1, \"rate\": 0.05}",
            ));
        }
        Some(d) => parse_rule(d, "default", version, true)?,
    };
    let rules = match obj.get("rules") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_rule(item, &format!("rules[{i}]"), version, false))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(field_err(
                "rules",
                format!("an array of rules, found {}", found(other)),
            ));
        }
    };
    Ok(LocalRules {
        version,
        default,
        rules,
    })
}

fn parse_rule(
    v: &Value,
    at: &str,
    version: u32,
    is_default: bool,
) -> Result<LocalRule, FieldError> {
    let obj: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| field_err(at, format!("an object, found {}", found(v))))?;
    let host_key = if version == 1 { "service_name" } else { "host" };
    for key in obj.keys() {
        let ok = match key.as_str() {
            "fixed_target" | "rate" | "description" => true,
            "http_method" | "url_path" => !is_default,
            k if k == host_key => !is_default,
            _ => false,
        };
        if !ok {
            let expected = if is_default {
                "only fixed_target, rate and description on the default rule (it matches every request)".to_owned()
            } else if key == "host" || key == "service_name" {
                format!(
                    "\"{host_key}\" in a version {version} file (version 1 names the host \"service_name\", version 2 \"host\")"
                )
            } else {
                format!(
                    "only {host_key}, http_method, url_path, fixed_target, rate and description"
                )
            };
            return Err(field_err(format!("{at}.{}", key_name(key)), expected));
        }
    }
    let fixed_target = match obj.get("fixed_target") {
        None => {
            return Err(field_err(
                format!("{at}.fixed_target"),
                "a whole number of requests per second (e.g. 1)",
            ));
        }
        Some(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                field_err(
                    format!("{at}.fixed_target"),
                    format!("a whole number from 0 to 4294967295, found {}", found(n)),
                )
            })?,
    };
    let rate = match obj.get("rate") {
        None => {
            return Err(field_err(
                format!("{at}.rate"),
                "a fraction from 0 to 1 (e.g. 0.05)",
            ));
        }
        Some(r) => r
            .as_f64()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| {
                field_err(
                    format!("{at}.rate"),
                    format!("a number from 0 to 1, found {}", found(r)),
                )
            })?,
    };
    let text = |key: &str, required: bool| -> Result<Option<String>, FieldError> {
        match obj.get(key) {
            None if required => Err(field_err(
                format!("{at}.{key}"),
                "a string pattern (\"*\" matches everything)",
            )),
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(field_err(
                format!("{at}.{key}"),
                format!("a string, found {}", found(other)),
            )),
        }
    };
    let mut rule = LocalRule::new(fixed_target, rate);
    rule.description = text("description", false)?;
    if !is_default {
        rule.host = text(host_key, true)?.map(Pattern::new);
        rule.http_method = text("http_method", true)?.map(Pattern::new);
        rule.url_path = text("url_path", true)?.map(Pattern::new);
    }
    Ok(rule.plan())
}

/// A rules file that could not be read or parsed: the file, where (line and column for
/// JSON syntax, a field path such as `rules[1].rate` otherwise) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    file: Option<PathBuf>,
    kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ErrorKind {
    Io(String),
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    Field {
        field: String,
        expected: String,
    },
}

impl RulesError {
    /// The file, when the rules came from one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The line and column of a JSON syntax error.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match &self.kind {
            ErrorKind::Syntax { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }

    /// The field at fault (e.g. `rules[1].rate`), for a file that is valid JSON.
    pub fn field(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Field { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The message without the file name.
    pub fn detail(&self) -> String {
        match &self.kind {
            ErrorKind::Io(e) => format!("cannot read the file: {e}"),
            ErrorKind::Syntax {
                line,
                column,
                message,
            } => format!("line {line}, column {column}: invalid JSON: {message}"),
            ErrorKind::Field { field, expected } => format!("{field}: expected {expected}"),
        }
    }
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "sampling rules file {}: {}", p.display(), self.detail()),
            None => write!(f, "sampling rules: {}", self.detail()),
        }
    }
}

impl std::error::Error for RulesError {}

/// Applies [`LocalRules`]: the first matching rule (else the default) samples up to its
/// `fixed_target` requests each wall-clock second, across all threads, then the fraction
/// `rate` of the rest.
///
/// Decisions carry no rule name: local rules have none, and `aws.xray.sampling_rule_name`
/// is reserved for the console's rules.
///
/// ```
/// use xray_sdk::sampling::{LocalRule, LocalRules, LocalSampler};
/// use xray_sdk::{Sampler, SamplingRequest};
///
/// let sampler = LocalSampler::new(
///     LocalRules::default().with_rule(LocalRule::new(0, 0.0).with_url_path("/health")),
/// );
/// let health = SamplingRequest { url_path: Some("/health"), ..Default::default() };
/// assert!(!sampler.should_sample(&health).sampled);
/// ```
#[derive(Debug)]
pub struct LocalSampler {
    rules: LocalRules,
    // One per rule, then one for the default.
    reservoirs: Box<[Reservoir]>,
    time: Time,
    random: Random,
}

impl LocalSampler {
    /// A sampler for these rules, on the system clock and the thread-local random generator.
    pub fn new(rules: LocalRules) -> Self {
        let reservoirs = (0..=rules.rules.len())
            .map(|_| Reservoir::default())
            .collect();
        LocalSampler {
            rules,
            reservoirs,
            time: Time::System,
            random: Random::Thread,
        }
    }

    /// Reads the time from `clock` (for tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.time = Time::Custom(clock);
        self
    }

    pub(crate) fn with_time(mut self, time: Time) -> Self {
        self.time = time;
        self
    }

    /// Draws from a seeded generator (for reproducible tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.random = Random::seeded(seed);
        self
    }

    pub(crate) fn with_random(mut self, random: Random) -> Self {
        self.random = random;
        self
    }

    /// The rules.
    pub fn rules(&self) -> &LocalRules {
        &self.rules
    }

    /// Decides at the given epoch second.
    pub(crate) fn decide(&self, request: &SamplingRequest<'_>, now: u64) -> bool {
        let (rule, reservoir) = match self.rules.find(request) {
            Some(i) => (&self.rules.rules[i], self.reservoirs.get(i)),
            None => (&self.rules.default, self.reservoirs.last()),
        };
        if reservoir.is_some_and(|r| r.take(now, u64::from(rule.fixed_target))) {
            return true;
        }
        rule.rate > 0.0 && self.random.next_f64() < rule.rate
    }
}

impl Sampler for LocalSampler {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        SamplingDecision::new(self.decide(request, self.time.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::LocalRules;

    /// Found by `tests/fuzz_sampling_rules.rs`: an unknown key was copied into the message
    /// as is, so a key with control characters reached the log line, an empty key gave
    /// ": expected ...", and a huge key made a huge message.
    #[test]
    fn odd_unknown_keys_are_quoted_and_cut_in_errors() {
        let doc = |key: &str, in_rule: bool| {
            let key = serde_json::to_string(key).unwrap_or_default();
            if in_rule {
                format!(
                    r#"{{"version":2,"default":{{"fixed_target":1,"rate":0}},"rules":[{{"host":"*","http_method":"*","url_path":"*","fixed_target":1,"rate":0,{key}:1}}]}}"#
                )
            } else {
                format!(r#"{{"version":2,"default":{{"fixed_target":1,"rate":0}},{key}:1}}"#)
            }
        };
        let long = "k".repeat(100_000);
        for (key, field) in [
            ("hots", "hots"),
            ("é", "é"),
            ("", r#""""#),
            ("\u{1b}[2J\nfake", r#""\u001b[2J\nfake""#),
            ("del\u{7f}nel\u{85}", r#""del\u{7f}nel\u{85}""#),
            (long.as_str(), r#""kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk..."#),
        ] {
            for in_rule in [false, true] {
                let err = LocalRules::from_json_str(&doc(key, in_rule)).expect_err("unknown key");
                let want = if in_rule {
                    format!("rules[0].{field}")
                } else {
                    field.to_owned()
                };
                assert_eq!(err.field(), Some(want.as_str()));
                let msg = err.to_string();
                assert!(!msg.contains(char::is_control), "{msg:?}");
                assert!(msg.len() < 300, "{} bytes", msg.len());
            }
        }
        // Values found where a number or a string was expected are escaped the same way.
        let err = LocalRules::from_json_str(
            "{\"version\":2,\"default\":{\"fixed_target\":1,\"rate\":\"\u{85}\\u001b\"}}",
        )
        .expect_err("rate");
        assert_eq!(
            err.detail(),
            r#"default.rate: expected a number from 0 to 1, found "\u{85}\u001b""#
        );
    }
}
