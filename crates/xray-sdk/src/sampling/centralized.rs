//! Centralized sampling: the rules and quotas set in the X-Ray console, fetched through the
//! daemon's TCP proxy, with local rules as the fallback.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::clock::{Clock, Random, Reservoir, Time};
use super::local::{LocalRules, LocalSampler};
use super::poller;
use super::wildcard::{Field, Fields, Matchers, Pattern};
use super::{Sampler, SamplingDecision, SamplingRequest};
use crate::config::DaemonAddress;

/// How long fetched rules stay in use without a successful refresh.
pub const RULE_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Default period of `GetSamplingRules` (minus up to 1/60 of it as jitter).
pub const DEFAULT_RULES_INTERVAL: Duration = Duration::from_secs(300);
/// Default period of `SamplingTargets` (plus up to 1/100 of it as jitter).
pub const DEFAULT_TARGETS_INTERVAL: Duration = Duration::from_secs(10);

const NO_QUOTA: u64 = u64::MAX;
const DEFAULT_INTERVAL_SECS: u64 = 10;

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
    fn matches(&self, fields: &Fields<'_>) -> bool {
        self.matchers.matches(fields)
    }
}

/// The mutable side of a rule, kept across rule refreshes while the rule keeps its name.
#[derive(Debug)]
pub(crate) struct RuleState {
    rate_bits: AtomicU64,
    quota: AtomicU64,
    quota_ttl: AtomicU64,
    interval: AtomicU64,
    targets_at: AtomicU64,
    reservoir: Reservoir,
    requests: AtomicU64,
    sampled: AtomicU64,
    borrows: AtomicU64,
}

impl RuleState {
    fn new(rate: f64) -> Self {
        RuleState {
            rate_bits: AtomicU64::new(rate.to_bits()),
            quota: AtomicU64::new(NO_QUOTA),
            quota_ttl: AtomicU64::new(0),
            interval: AtomicU64::new(DEFAULT_INTERVAL_SECS),
            targets_at: AtomicU64::new(0),
            reservoir: Reservoir::default(),
            requests: AtomicU64::new(0),
            sampled: AtomicU64::new(0),
            borrows: AtomicU64::new(0),
        }
    }

    fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) def: RuleDef,
    pub(crate) state: Arc<RuleState>,
}

impl Rule {
    fn sample(&self, now: u64, random: &Random) -> bool {
        let s = &*self.state;
        s.requests.fetch_add(1, Ordering::Relaxed);
        let quota = s.quota.load(Ordering::Relaxed);
        let quota_valid = quota != NO_QUOTA && now <= s.quota_ttl.load(Ordering::Relaxed);
        if quota_valid {
            if s.reservoir.take(now, quota) {
                s.sampled.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        } else if self.def.reservoir_size != 0 && s.reservoir.take(now, 1) {
            // No valid quota: borrow one request per second from the service's reservoir.
            s.borrows.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let rate = s.rate();
        if rate > 0.0 && random.next_f64() < rate {
            s.sampled.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// The rules in force, sorted by (priority, name), and `Default` apart.
#[derive(Debug, Default)]
pub(crate) struct Manifest {
    pub(crate) rules: Vec<Rule>,
    pub(crate) default: Option<Rule>,
    /// Epoch second captured before the `GetSamplingRules` call that produced these rules.
    pub(crate) refreshed_at: Option<u64>,
}

impl Manifest {
    pub(crate) fn all(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().chain(self.default.as_ref())
    }

    fn find(&self, name: &str) -> Option<&Rule> {
        self.all().find(|r| &*r.def.name == name)
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    manifest: RwLock<Arc<Manifest>>,
    pub(crate) fallback: LocalSampler,
    pub(crate) time: Time,
    random: Random,
    rule_ttl: u64,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, Arc<Manifest>> {
        self.manifest.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn manifest(&self) -> Arc<Manifest> {
        Arc::clone(&self.read())
    }

    fn decide(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        let now = self.time.now();
        let manifest = self.read();
        let fresh = manifest
            .refreshed_at
            .is_some_and(|at| now <= at.saturating_add(self.rule_ttl));
        if fresh {
            let fields = Fields::all(request);
            let rule = manifest
                .rules
                .iter()
                .find(|r| r.def.matches(&fields))
                .or(manifest.default.as_ref());
            if let Some(rule) = rule {
                return SamplingDecision {
                    sampled: rule.sample(now, &self.random),
                    rule_name: Some(Arc::clone(&rule.def.name)),
                };
            }
        }
        drop(manifest);
        SamplingDecision::new(self.fallback.decide(request, now))
    }

    /// Replaces the rules, keeping the state of rules that keep their name.
    pub(crate) fn apply_rules(&self, defs: Vec<RuleDef>, refreshed_at: u64) {
        let old = self.manifest();
        let mut rules = Vec::with_capacity(defs.len());
        let mut default = None;
        for def in defs {
            let state = match old.find(&def.name) {
                Some(prev) => {
                    if prev.def.fixed_rate != def.fixed_rate {
                        // The rule's rate was edited: it wins until the next targets.
                        prev.state
                            .rate_bits
                            .store(def.fixed_rate.to_bits(), Ordering::Relaxed);
                    }
                    Arc::clone(&prev.state)
                }
                None => Arc::new(RuleState::new(def.fixed_rate)),
            };
            let rule = Rule { def, state };
            if &*rule.def.name == "Default" {
                default = Some(rule);
            } else {
                rules.push(rule);
            }
        }
        rules.sort_by(|a, b| {
            a.def
                .priority
                .cmp(&b.def.priority)
                .then_with(|| a.def.name.cmp(&b.def.name))
        });
        let manifest = Arc::new(Manifest {
            rules,
            default,
            refreshed_at: Some(refreshed_at),
        });
        *self
            .manifest
            .write()
            .unwrap_or_else(PoisonError::into_inner) = manifest;
    }

    /// Takes the statistics of the rules due for a report at `now` (counters reset).
    pub(crate) fn take_statistics(&self, now: u64) -> Vec<Statistics> {
        let manifest = self.manifest();
        manifest
            .all()
            .filter(|r| {
                let s = &r.state;
                s.requests.load(Ordering::Relaxed) > 0
                    && now
                        >= s.targets_at
                            .load(Ordering::Relaxed)
                            .saturating_add(s.interval.load(Ordering::Relaxed))
            })
            .map(|r| Statistics {
                rule: Arc::clone(&r.def.name),
                state: Arc::clone(&r.state),
                requests: r.state.requests.swap(0, Ordering::Relaxed),
                sampled: r.state.sampled.swap(0, Ordering::Relaxed),
                borrows: r.state.borrows.swap(0, Ordering::Relaxed),
            })
            .collect()
    }

    /// Applies one `SamplingTargetDocuments` entry received at `now`.
    pub(crate) fn apply_target(&self, target: &Target, now: u64) -> bool {
        let manifest = self.manifest();
        let Some(rule) = manifest.find(&target.rule_name) else {
            return false;
        };
        let s = &rule.state;
        if let Some(rate) = target.fixed_rate.filter(|r| (0.0..=1.0).contains(r)) {
            s.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        }
        // Each value replaces the current one when present, as the official SDKs do: a quota
        // without a TTL keeps the current expiry, a TTL without a quota gives a rule that had
        // none a quota of 0 (the rate alone decides until it expires).
        let quota = target.reservoir_quota.and_then(whole);
        // TTL first, so a reader never pairs the new quota with the old TTL for long.
        if let Some(ttl) = target.reservoir_quota_ttl.and_then(whole) {
            s.quota_ttl.store(ttl, Ordering::Relaxed);
            if quota.is_none() {
                let _ = s
                    .quota
                    .compare_exchange(NO_QUOTA, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        if let Some(quota) = quota {
            s.quota.store(quota.min(NO_QUOTA - 1), Ordering::Relaxed);
        }
        if let Some(interval) = target.interval.and_then(whole) {
            s.interval.store(interval, Ordering::Relaxed);
        }
        s.targets_at.store(now, Ordering::Relaxed);
        true
    }
}

/// A non-negative finite number, truncated to whole seconds/requests.
fn whole(x: f64) -> Option<u64> {
    (x.is_finite() && x >= 0.0).then_some(x as u64)
}

/// One rule's counters, taken for a `SamplingTargets` report.
#[derive(Debug)]
pub(crate) struct Statistics {
    pub(crate) rule: Arc<str>,
    state: Arc<RuleState>,
    pub(crate) requests: u64,
    pub(crate) sampled: u64,
    pub(crate) borrows: u64,
}

impl Statistics {
    /// Puts the counters back after a failed report, so the next one includes them.
    pub(crate) fn restore(&self) {
        self.state
            .requests
            .fetch_add(self.requests, Ordering::Relaxed);
        self.state
            .sampled
            .fetch_add(self.sampled, Ordering::Relaxed);
        self.state
            .borrows
            .fetch_add(self.borrows, Ordering::Relaxed);
    }
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

/// Samples with the rules and quotas of the X-Ray console.
///
/// A background thread (`xray-sampling`, with its own single-threaded tokio runtime) calls
/// the daemon's proxy: `POST /GetSamplingRules` at start and every 5 minutes (less up to
/// 5 s of jitter), and `POST /SamplingTargets` about every 10 s with the counts of the rules
/// that saw requests. Decisions never wait for it: they read the current rules under a
/// read lock and update atomics.
///
/// As in the official SDKs, the thread starts with the first decision, not when the sampler
/// is built: a process that never traces never calls the daemon, and a daemon started
/// beside the service (a sidecar) has until the first request to come up.
/// [`start_polling`](Self::start_polling) starts it at once, to have the console's rules
/// before the first request.
///
/// Until rules arrive, and when none were fetched for an hour (daemon absent, or answering
/// garbage), decisions come from the fallback [`LocalRules`]. The thread stops when the
/// sampler is dropped.
///
/// ```no_run
/// use xray_sdk::config::DaemonAddress;
/// use xray_sdk::sampling::{CentralizedSampler, LocalRules};
/// use xray_sdk::Recorder;
///
/// let sampler = CentralizedSampler::builder(&DaemonAddress::default())
///     .fallback(LocalRules::default())
///     .build();
/// let recorder = Recorder::builder().sampler(sampler).build().unwrap();
/// ```
#[derive(Debug)]
pub struct CentralizedSampler {
    shared: Arc<Shared>,
    // Dropping the sender wakes the poller thread, which then exits.
    _stop: tokio::sync::watch::Sender<()>,
    /// Runs once: the first decision (or `start_polling`) starts the poller.
    started: std::sync::Once,
    /// What the poller thread needs, until it is started (`None` with polling off).
    pending: std::sync::Mutex<Option<PendingPoller>>,
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    alive: std::sync::Weak<()>,
}

/// The poller's configuration and handles, kept until the first decision starts it.
#[derive(Debug)]
struct PendingPoller {
    config: poller::PollerConfig,
    stop: tokio::sync::watch::Receiver<()>,
    alive: Arc<()>,
}

impl CentralizedSampler {
    /// A builder for a sampler that talks to the daemon's TCP endpoint.
    pub fn builder(daemon: &DaemonAddress) -> CentralizedSamplerBuilder {
        CentralizedSamplerBuilder {
            base_url: format!("http://{}", daemon.tcp().to_host_port()),
            fallback: LocalRules::default(),
            rules_interval: DEFAULT_RULES_INTERVAL,
            targets_interval: DEFAULT_TARGETS_INTERVAL,
            rule_ttl: RULE_CACHE_TTL,
            time: Time::System,
            seed: None,
            client_id: None,
            polling: true,
            request_timeout: Duration::from_secs(2),
        }
    }

    /// Starts the poller now rather than at the first decision, so that the console's rules
    /// can be in force for the first requests. Does nothing when it already runs, or when
    /// polling is off.
    pub fn start_polling(&self) {
        self.started.call_once(|| {
            let pending = match self.pending.lock() {
                Ok(mut slot) => slot.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            if let Some(p) = pending {
                poller::spawn(p.config, Arc::downgrade(&self.shared), p.stop, p.alive);
            }
        });
    }

    /// The names of the console rules in force, in the order they are tried (`Default`
    /// last); empty before the first successful fetch.
    pub fn rule_names(&self) -> Vec<Arc<str>> {
        self.shared
            .manifest()
            .all()
            .map(|r| Arc::clone(&r.def.name))
            .collect()
    }

    /// True when decisions currently come from the fallback local rules (no rules fetched
    /// yet, or the last fetch is more than an hour old).
    pub fn is_using_fallback(&self) -> bool {
        let now = self.shared.time.now();
        self.shared
            .manifest()
            .refreshed_at
            .is_none_or(|at| now > at.saturating_add(self.shared.rule_ttl))
    }

    /// Replaces the rules with a `GetSamplingRules` answer, as the poller does (for tests and
    /// benchmarks with polling off). Returns the number of rules accepted.
    #[cfg(any(test, feature = "test-util"))]
    pub fn apply_rules_response(&self, body: &str) -> Result<usize, String> {
        let defs = parse_rules_response(body.as_bytes())?;
        let n = defs.len();
        self.shared.apply_rules(defs, self.shared.time.exact());
        Ok(n)
    }

    /// A handle whose `upgrade()` fails once the poller thread has exited.
    #[cfg(any(test, feature = "test-util"))]
    pub fn poller_liveness(&self) -> std::sync::Weak<()> {
        self.alive.clone()
    }
}

impl Sampler for CentralizedSampler {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        if !self.started.is_completed() {
            self.start_polling();
        }
        self.shared.decide(request)
    }
}

/// Configures a [`CentralizedSampler`].
#[derive(Debug)]
#[must_use]
pub struct CentralizedSamplerBuilder {
    base_url: String,
    fallback: LocalRules,
    rules_interval: Duration,
    targets_interval: Duration,
    rule_ttl: Duration,
    time: Time,
    seed: Option<u64>,
    client_id: Option<String>,
    polling: bool,
    request_timeout: Duration,
}

impl CentralizedSamplerBuilder {
    /// The local rules used until console rules arrive, and when they are an hour old
    /// (default: the built-in rule, 1 per second and 5 %).
    pub fn fallback(mut self, rules: LocalRules) -> Self {
        self.fallback = rules;
        self
    }

    /// Period of `GetSamplingRules` (default 300 s; a jitter of up to 1/60 is subtracted).
    pub fn rules_interval(mut self, every: Duration) -> Self {
        self.rules_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Period of `SamplingTargets` (default 10 s; a jitter of up to 1/100 is added).
    pub fn targets_interval(mut self, every: Duration) -> Self {
        self.targets_interval = every.max(Duration::from_millis(10));
        self
    }

    /// How long fetched rules stay in use without a refresh (default one hour).
    pub fn rule_cache_ttl(mut self, ttl: Duration) -> Self {
        self.rule_ttl = ttl;
        self
    }

    /// Timeout of each call to the daemon (default 2 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The clock for reservoirs, quota TTLs and the rule cache (for tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.time = Time::Custom(clock);
        self
    }

    /// Draws from a seeded generator (for reproducible tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The `ClientID` sent with statistics (default: one random 24-hex-digit ID per process).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Turns the background poller off (for tests and benchmarks that feed rules in code).
    pub fn polling(mut self, on: bool) -> Self {
        self.polling = on;
        self
    }

    /// Builds the sampler. Its poller thread starts with the first decision (or
    /// [`CentralizedSampler::start_polling`]); if the thread cannot be started the sampler
    /// logs it and uses the fallback rules.
    pub fn build(self) -> CentralizedSampler {
        let random = match self.seed {
            Some(seed) => Random::seeded(seed),
            None => Random::Thread,
        };
        let fallback = LocalSampler::new(self.fallback)
            .with_time(self.time.clone())
            .with_random(random.fork(1));
        let shared = Arc::new(Shared {
            manifest: RwLock::new(Arc::new(Manifest::default())),
            fallback,
            time: self.time,
            random,
            rule_ttl: self.rule_ttl.as_secs(),
        });
        let (stop, stop_rx) = tokio::sync::watch::channel(());
        let token = Arc::new(());
        let alive = Arc::downgrade(&token);
        let pending = self.polling.then(|| PendingPoller {
            config: poller::PollerConfig {
                base_url: self.base_url,
                rules_interval: self.rules_interval,
                targets_interval: self.targets_interval,
                client_id: self
                    .client_id
                    .unwrap_or_else(|| process_client_id().to_owned()),
                request_timeout: self.request_timeout,
            },
            stop: stop_rx,
            alive: token,
        });
        CentralizedSampler {
            shared,
            _stop: stop,
            started: std::sync::Once::new(),
            pending: std::sync::Mutex::new(pending),
            alive,
        }
    }
}

/// This process's `ClientID`.
fn process_client_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(crate::id::new_client_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::ManualClock;

    fn answer(rules: &[(&str, i64, f64)]) -> String {
        let records: Vec<Value> = rules
            .iter()
            .map(|(name, priority, rate)| {
                serde_json::json!({ "SamplingRule": {
                    "RuleName": name, "ResourceARN": "*", "Priority": priority,
                    "FixedRate": rate, "ReservoirSize": 0, "ServiceName": "*",
                    "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "/x",
                    "Version": 1, "Attributes": {}
                }})
            })
            .collect();
        serde_json::json!({ "SamplingRuleRecords": records }).to_string()
    }

    /// Found by `tests/fuzz_sampling_answers.rs`: an answer naming a rule twice kept both
    /// copies, which could share one state, so the next valid answer's `FixedRate` was not
    /// applied (the rule kept sampling at the other copy's rate).
    #[test]
    fn a_rule_named_twice_is_kept_once() {
        let s = offline(Arc::new(ManualClock::new(1_700_000_000)));
        let sampled = |s: &CentralizedSampler| sampled_of(s, 50);
        assert_eq!(s.apply_rules_response(&answer(&[("x", 1, 1.0)])), Ok(1));
        assert_eq!(sampled(&s), 50);
        // The first of the two wins.
        let twice = answer(&[
            ("x", 2, 0.0),
            ("x", 1, 1.0),
            ("Default", 3, 1.0),
            ("Default", 4, 0.0),
        ]);
        assert_eq!(s.apply_rules_response(&twice), Ok(2));
        let names: Vec<String> = s.rule_names().iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["x", "Default"]);
        assert_eq!(sampled(&s), 0);
        // A valid answer afterwards applies in full.
        assert_eq!(s.apply_rules_response(&answer(&[("x", 1, 1.0)])), Ok(1));
        assert_eq!(sampled(&s), 50);
    }

    /// A sampler without a poller, on `clock`, with a fixed seed.
    fn offline(clock: Arc<ManualClock>) -> CentralizedSampler {
        CentralizedSampler::builder(&DaemonAddress::default())
            .polling(false)
            .clock(clock)
            .seed(1)
            .build()
    }

    /// How many of `n` requests to `/x` are sampled.
    fn sampled_of(s: &CentralizedSampler, n: usize) -> usize {
        let req = SamplingRequest {
            url_path: Some("/x"),
            ..Default::default()
        };
        (0..n).filter(|_| s.should_sample(&req).sampled).count()
    }

    fn target(rule: &str, rate: Option<f64>, quota: Option<f64>, ttl: Option<f64>) -> Target {
        Target {
            rule_name: rule.to_owned(),
            fixed_rate: rate,
            reservoir_quota: quota,
            reservoir_quota_ttl: ttl,
            interval: None,
        }
    }

    #[test]
    fn targets_replace_only_the_values_they_carry() {
        const T: u64 = 1_700_000_000;
        let clock = Arc::new(ManualClock::new(T));
        let s = offline(clock.clone());
        let sampled = |s: &CentralizedSampler| sampled_of(s, 20);
        assert_eq!(s.apply_rules_response(&answer(&[("x", 1, 0.0)])), Ok(1));
        let tt = |t: u64| Some(t as f64);
        // A quota of 5 until T + 10.
        assert!(
            s.shared
                .apply_target(&target("x", None, Some(5.0), tt(T + 10)), T)
        );
        assert_eq!(sampled(&s), 5);
        // A new quota without a TTL keeps the expiry it had.
        assert!(
            s.shared
                .apply_target(&target("x", None, Some(3.0), None), T)
        );
        clock.set(T + 1);
        assert_eq!(sampled(&s), 3);
        clock.set(T + 11);
        // Expired: nothing (rate 0, and a rule with no reservoir does not borrow).
        assert_eq!(sampled(&s), 0);

        // A TTL without a quota, for a rule that never had one: quota 0, the rate decides.
        assert_eq!(
            s.apply_rules_response(&answer(&[("x", 1, 0.0), ("y", 2, 0.0)])),
            Ok(2)
        );
        let quota_of = |name: &str| {
            s.shared
                .manifest()
                .find(name)
                .map(|r| r.state.quota.load(Ordering::Relaxed))
        };
        assert_eq!(quota_of("y"), Some(NO_QUOTA));
        assert!(
            s.shared
                .apply_target(&target("y", None, None, tt(T + 100)), T + 11)
        );
        assert_eq!(quota_of("y"), Some(0));
    }

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
}
