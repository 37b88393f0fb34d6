//! The sampling rules being served and the statistics the SDKs report.
//!
//! Rules come from a rules file or the built-in set ([`rules`]) and can be
//! created, changed and deleted while services run; both the daemon-side
//! sampling API and the X-Ray API answer from this one [`SamplingState`]. Each
//! change moves `LastRuleModification`, which tells the SDKs' pollers to
//! fetch the rules again.

pub mod rules;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

pub use rules::{InvalidRules, Rule, default_rules, parse_rules};

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
/// Rules that can be created besides `Default` (the service's quota).
pub const MAX_RULES: usize = 25;

/// A rule and when it was created and last changed (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRecord {
    /// The rule.
    pub rule: Rule,
    /// When it was loaded or created.
    pub created_at: f64,
    /// When it last changed.
    pub modified_at: f64,
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

/// One statistics document of a `GetSamplingTargets` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report<'a> {
    /// The rule the counts are for.
    pub rule_name: &'a str,
    /// The reporting SDK instance.
    pub client_id: &'a str,
    /// Requests matched by the rule.
    pub request_count: u64,
    /// Requests sampled.
    pub sampled_count: u64,
    /// Requests sampled by borrowing.
    pub borrow_count: u64,
}

/// The answer to one statistics document.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingTarget {
    /// The rule.
    pub rule_name: String,
    /// Its fixed rate.
    pub fixed_rate: f64,
    /// This client's share of the reservoir.
    pub reservoir_quota: i64,
    /// When the share expires, Unix seconds.
    pub reservoir_quota_ttl: f64,
    /// Seconds until the next report.
    pub interval: u64,
}

/// A change to a rule that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The request is wrong (`InvalidRequestException`).
    Invalid(String),
    /// Too many rules (`RuleLimitExceededException`).
    LimitExceeded(String),
}

/// The members of an `UpdateSamplingRule` request; `None` leaves a value as
/// it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleUpdate {
    /// New priority.
    pub priority: Option<i64>,
    /// New fixed rate.
    pub fixed_rate: Option<f64>,
    /// New reservoir size.
    pub reservoir_size: Option<i64>,
    /// New service name pattern.
    pub service_name: Option<String>,
    /// New service type pattern.
    pub service_type: Option<String>,
    /// New host pattern.
    pub host: Option<String>,
    /// New HTTP method pattern.
    pub http_method: Option<String>,
    /// New URL path pattern.
    pub url_path: Option<String>,
    /// New resource ARN pattern.
    pub resource_arn: Option<String>,
    /// New attributes.
    pub attributes: Option<BTreeMap<String, String>>,
}

impl RuleUpdate {
    /// `true` when the update changes more than the rate and reservoir,
    /// which is all the `Default` rule allows.
    fn changes_matchers(&self) -> bool {
        self.priority.is_some()
            || self.service_name.is_some()
            || self.service_type.is_some()
            || self.host.is_some()
            || self.http_method.is_some()
            || self.url_path.is_some()
            || self.resource_arn.is_some()
            || self.attributes.is_some()
    }
}

/// Rules plus the statistics clients reported.
#[derive(Debug)]
pub struct SamplingState {
    records: Vec<RuleRecord>,
    last_modification: f64,
    stats: HashMap<String, RuleStats>,
    /// rule name -> client id -> last report time
    clients: HashMap<String, BTreeMap<String, f64>>,
}

impl SamplingState {
    /// A sampler serving `rules`, considered modified at `now` (Unix seconds).
    pub fn new(mut rules: Vec<Rule>, now: f64) -> Self {
        rules::sort(&mut rules);
        Self {
            records: rules
                .into_iter()
                .map(|rule| RuleRecord {
                    rule,
                    created_at: now,
                    modified_at: now,
                })
                .collect(),
            last_modification: now,
            stats: HashMap::new(),
            clients: HashMap::new(),
        }
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> Vec<&Rule> {
        self.records.iter().map(|r| &r.rule).collect()
    }

    /// The rules with their times, in evaluation order.
    pub fn records(&self) -> &[RuleRecord] {
        &self.records
    }

    /// When a rule last changed (loaded, created, updated or deleted), Unix
    /// seconds.
    pub fn last_modification(&self) -> f64 {
        self.last_modification
    }

    /// The rule named `name`.
    pub fn find(&self, name: &str) -> Option<&RuleRecord> {
        self.records.iter().find(|r| r.rule.rule_name == name)
    }

    fn changed(&mut self, now: f64) {
        // Never backwards, so an SDK that fetched the rules since still sees a change.
        self.last_modification = now.max(self.last_modification);
        let mut rules: Vec<Rule> = self.records.iter().map(|r| r.rule.clone()).collect();
        rules::sort(&mut rules);
        let mut by_name: HashMap<String, RuleRecord> = self
            .records
            .drain(..)
            .map(|r| (r.rule.rule_name.clone(), r))
            .collect();
        self.records = rules
            .iter()
            .filter_map(|r| by_name.remove(&r.rule_name))
            .collect();
    }

    /// Adds a rule (`CreateSamplingRule`).
    pub fn create(&mut self, rule: Rule, now: f64) -> Result<RuleRecord, RuleError> {
        rule.check_api().map_err(RuleError::Invalid)?;
        if rule.is_default() || rule.priority >= rules::DEFAULT_PRIORITY {
            return Err(RuleError::Invalid(
                "the Default rule exists already and cannot be created".into(),
            ));
        }
        if self.find(&rule.rule_name).is_some() {
            return Err(RuleError::Invalid(format!(
                "a sampling rule named {:?} already exists",
                rule.rule_name
            )));
        }
        let created = self.records.iter().filter(|r| !r.rule.is_default()).count();
        if created >= MAX_RULES {
            return Err(RuleError::LimitExceeded(format!(
                "at most {MAX_RULES} sampling rules besides Default"
            )));
        }
        let record = RuleRecord {
            rule,
            created_at: now,
            modified_at: now,
        };
        self.records.push(record.clone());
        self.changed(now);
        Ok(record)
    }

    /// Changes a rule (`UpdateSamplingRule`).
    pub fn update(
        &mut self,
        name: &str,
        update: RuleUpdate,
        now: f64,
    ) -> Result<RuleRecord, RuleError> {
        let Some(record) = self.records.iter_mut().find(|r| r.rule.rule_name == name) else {
            return Err(no_such_rule(name));
        };
        if record.rule.is_default() && update.changes_matchers() {
            return Err(RuleError::Invalid(
                "only FixedRate and ReservoirSize of the Default rule can be changed".into(),
            ));
        }
        let mut rule = record.rule.clone();
        let RuleUpdate {
            priority,
            fixed_rate,
            reservoir_size,
            service_name,
            service_type,
            host,
            http_method,
            url_path,
            resource_arn,
            attributes,
        } = update;
        let set = |field: &mut String, v: Option<String>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        rule.priority = priority.unwrap_or(rule.priority);
        rule.fixed_rate = fixed_rate.unwrap_or(rule.fixed_rate);
        rule.reservoir_size = reservoir_size.unwrap_or(rule.reservoir_size);
        set(&mut rule.service_name, service_name);
        set(&mut rule.service_type, service_type);
        set(&mut rule.host, host);
        set(&mut rule.http_method, http_method);
        set(&mut rule.url_path, url_path);
        set(&mut rule.resource_arn, resource_arn);
        rule.attributes = attributes.unwrap_or(rule.attributes);
        rule.check_api().map_err(RuleError::Invalid)?;
        record.rule = rule;
        record.modified_at = now;
        let out = record.clone();
        self.changed(now);
        Ok(out)
    }

    /// Removes a rule (`DeleteSamplingRule`); its statistics go with it.
    pub fn delete(&mut self, name: &str, now: f64) -> Result<RuleRecord, RuleError> {
        let Some(i) = self.records.iter().position(|r| r.rule.rule_name == name) else {
            return Err(no_such_rule(name));
        };
        if self.records[i].rule.is_default() {
            return Err(RuleError::Invalid(
                "the Default rule cannot be deleted".into(),
            ));
        }
        let record = self.records.remove(i);
        self.stats.remove(name);
        self.clients.remove(name);
        self.changed(now);
        Ok(record)
    }

    /// Records one statistics document and answers its target, or why it
    /// was not processed (an unknown rule, a bad client ID).
    pub fn report(&mut self, doc: Report<'_>, now: f64) -> Result<SamplingTarget, String> {
        if doc.client_id.is_empty() {
            return Err("ClientID is required".into());
        }
        if doc.client_id.len() > MAX_CLIENT_ID_BYTES {
            return Err(format!(
                "ClientID must be at most {MAX_CLIENT_ID_BYTES} bytes"
            ));
        }
        let name = doc.rule_name;
        let Some(rule) = self.records.iter().find(|r| r.rule.rule_name == name) else {
            return Err(format!("no sampling rule named {name:?}"));
        };
        let stats = self.stats.entry(name.to_string()).or_default();
        stats.request_count = stats.request_count.saturating_add(doc.request_count);
        stats.sampled_count = stats.sampled_count.saturating_add(doc.sampled_count);
        stats.borrow_count = stats.borrow_count.saturating_add(doc.borrow_count);
        stats.reports += 1;
        stats.last_report = Some(now);
        let clients = self.clients.entry(name.to_string()).or_default();
        if !clients.contains_key(doc.client_id) && clients.len() >= MAX_CLIENTS_PER_RULE {
            // Linear, but only for a new client of a full rule, and the map is capped.
            let oldest = clients
                .iter()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                clients.remove(&oldest);
            }
        }
        clients.insert(doc.client_id.to_string(), now);
        stats.active_clients = clients.len();
        Ok(SamplingTarget {
            rule_name: name.to_string(),
            fixed_rate: rule.rule.fixed_rate,
            reservoir_quota: quota_share(rule.rule.reservoir_size, clients, doc.client_id),
            reservoir_quota_ttl: (now + INTERVAL_SECS as f64).floor(),
            interval: INTERVAL_SECS,
        })
    }

    /// Drops clients of every rule that have not reported within
    /// [`ACTIVE_CLIENT_SECS`], so rules nobody reports for any more do not
    /// keep them.
    pub fn forget_inactive_clients(&mut self, now: f64) {
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
        self.records
            .iter()
            .map(|r| {
                let s = self
                    .stats
                    .get(&r.rule.rule_name)
                    .cloned()
                    .unwrap_or_default();
                (r.rule.rule_name.clone(), s)
            })
            .collect()
    }

    /// The clients of `rule` that reported within the active window.
    #[cfg(test)]
    fn active_clients(&self, rule: &str) -> Option<usize> {
        self.clients.get(rule).map(BTreeMap::len)
    }
}

fn no_such_rule(name: &str) -> RuleError {
    RuleError::Invalid(format!("no sampling rule named {name:?}"))
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

    fn report(
        s: &mut SamplingState,
        rule: &str,
        clients: &[String],
        now: f64,
    ) -> Vec<Result<SamplingTarget, String>> {
        s.forget_inactive_clients(now);
        clients
            .iter()
            .map(|c| {
                s.report(
                    Report {
                        rule_name: rule,
                        client_id: c,
                        request_count: 1,
                        sampled_count: 0,
                        borrow_count: 0,
                    },
                    now,
                )
            })
            .collect()
    }

    fn active(s: &SamplingState, rule: &str) -> usize {
        s.stats().get(rule).map_or(usize::MAX, |r| r.active_clients)
    }

    #[test]
    fn long_client_ids_are_rejected() {
        let mut s = SamplingState::new(default_rules(), 0.0);
        let v = report(
            &mut s,
            "Default",
            &["a".repeat(MAX_CLIENT_ID_BYTES + 1)],
            1.0,
        );
        assert!(v[0].is_err(), "{v:?}");
        assert_eq!(active(&s, "Default"), 0);
        let v = report(&mut s, "Default", &["a".repeat(MAX_CLIENT_ID_BYTES)], 1.0);
        assert!(v[0].is_ok(), "{v:?}");
        assert_eq!(active(&s, "Default"), 1);
    }

    #[test]
    fn clients_per_rule_are_capped_and_the_oldest_go() {
        let mut s = SamplingState::new(default_rules(), 0.0);
        let total = MAX_CLIENTS_PER_RULE + 100;
        let ids: Vec<String> = (0..total).map(|i| format!("{i:024x}")).collect();
        for (n, chunk) in ids.chunks(MAX_STATISTICS_DOCUMENTS).enumerate() {
            report(&mut s, "Default", chunk, n as f64 * 0.01);
        }
        assert_eq!(active(&s, "Default"), MAX_CLIENTS_PER_RULE);
        assert_eq!(s.active_clients("Default"), Some(MAX_CLIENTS_PER_RULE));
        let kept = |id: &String| s.clients.get("Default").is_some_and(|c| c.contains_key(id));
        assert!(!kept(&ids[0]) && !kept(&ids[99]));
        assert!(kept(&ids[100]) && kept(&ids[total - 1]));
    }

    #[test]
    fn inactive_clients_of_every_rule_are_forgotten() {
        let mut s = SamplingState::new(default_rules(), 0.0);
        let ids: Vec<String> = (0..10).map(|i| format!("{i:024x}")).collect();
        report(&mut s, "health", &ids, 0.0);
        assert_eq!(active(&s, "health"), 10);
        // Only another rule is reported on later: health's clients go all the same.
        report(&mut s, "Default", &ids[..1], ACTIVE_CLIENT_SECS + 1.0);
        assert_eq!(active(&s, "health"), 0);
        assert!(!s.clients.contains_key("health"));
        assert_eq!(active(&s, "Default"), 1);
    }

    #[test]
    fn rules_are_created_changed_and_deleted_in_priority_order() {
        let mut s = SamplingState::new(default_rules(), 100.0);
        let names = |s: &SamplingState| -> Vec<String> {
            s.rules().iter().map(|r| r.rule_name.clone()).collect()
        };
        s.create(Rule::new("orders", 5, 0.5, 2), 101.5)
            .expect("created");
        assert_eq!(names(&s), ["health", "orders", "Default"]);
        assert_eq!(s.last_modification(), 101.5);
        let dup = s.create(Rule::new("orders", 6, 0.5, 2), 102.0);
        assert!(matches!(dup, Err(RuleError::Invalid(m)) if m.contains("already exists")));
        let update = RuleUpdate {
            priority: Some(0),
            ..RuleUpdate::default()
        };
        assert!(s.update("orders", update, 103.0).is_err());
        let update = RuleUpdate {
            priority: Some(9_000),
            fixed_rate: Some(0.25),
            ..RuleUpdate::default()
        };
        let r = s.update("orders", update, 104.0).expect("updated");
        assert_eq!(
            (r.rule.fixed_rate, r.created_at, r.modified_at),
            (0.25, 101.5, 104.0)
        );
        assert_eq!(names(&s), ["health", "orders", "Default"]);
        let update = RuleUpdate {
            priority: Some(1),
            ..RuleUpdate::default()
        };
        s.update("orders", update, 105.0).expect("updated");
        assert_eq!(
            names(&s),
            ["health", "orders", "Default"],
            "health < orders by name"
        );
        // Default: only the rate and the reservoir.
        let update = RuleUpdate {
            url_path: Some("/x".into()),
            ..RuleUpdate::default()
        };
        assert!(s.update("Default", update, 106.0).is_err());
        let update = RuleUpdate {
            fixed_rate: Some(0.1),
            ..RuleUpdate::default()
        };
        assert!(s.update("Default", update, 106.0).is_ok());
        assert!(s.delete("Default", 107.0).is_err());
        assert!(s.delete("nope", 107.0).is_err());
        s.delete("orders", 108.0).expect("deleted");
        assert_eq!(names(&s), ["health", "Default"]);
        assert_eq!(s.last_modification(), 108.0);
        for i in 0..MAX_RULES - 1 {
            s.create(Rule::new(&format!("r{i}"), 10, 1.0, 1), 109.0)
                .expect("created");
        }
        assert!(matches!(
            s.create(Rule::new("one-too-many", 10, 1.0, 1), 110.0),
            Err(RuleError::LimitExceeded(_))
        ));
    }
}
