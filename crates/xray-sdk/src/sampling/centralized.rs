//! Centralized sampling: the rules and quotas set in the X-Ray console, fetched through the
//! daemon's TCP proxy, with local rules as the fallback.

use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError, Weak};
use std::time::Duration;

use super::console_rules::ConsoleRules;
use super::daemon_api::{RuleCounts, RuleDef, Target};
use super::decision::{Sampler, SamplingDecision, SamplingRequest};
use super::local::{LocalRules, LocalSampler};
use super::poller::{self, PollerConfig, RuleStore};
use super::random::Random;
use crate::background::JobHandle;
use crate::clock::{Clock, Time};
use crate::config::DaemonAddress;

/// How long fetched rules stay in use without a successful refresh.
pub const RULE_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Default period of `GetSamplingRules` (minus up to 1/60 of it as jitter).
pub const DEFAULT_RULES_INTERVAL: Duration = Duration::from_secs(300);
/// Default period of `SamplingTargets` (plus up to 1/100 of it as jitter).
pub const DEFAULT_TARGETS_INTERVAL: Duration = Duration::from_secs(10);

/// Samples with the rules and quotas of the X-Ray console.
///
/// A job on the SDK's background thread (`xray-background`, shared with the environment
/// plugins) calls the daemon's proxy: `POST /GetSamplingRules` at start and every 5 minutes
/// (less up to 5 s of jitter), and `POST /SamplingTargets` about every 10 s with the counts of
/// the rules that saw requests. Decisions never wait for it: they read the current rules
/// under a read lock and update atomics.
///
/// As in the official SDKs, the poller starts with the first decision, not when the sampler
/// is built: a process that never traces never calls the daemon, and a daemon started
/// beside the service (a sidecar) has until the first request to come up.
/// [`start_polling`](Self::start_polling) starts it at once, to have the console's rules
/// before the first request.
///
/// Until rules arrive, and when none were fetched for an hour (daemon absent, or answering
/// garbage), decisions come from the fallback [`LocalRules`]. The poller stops when the
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
    rules: Arc<ConsoleRules>,
    /// Runs once: the first decision (or `start_polling`) starts the poller.
    started: Once,
    /// What the poller needs, until it is started (`None` with polling off).
    pending: Mutex<Option<PendingPoller>>,
    /// The poller's job; dropping it (with the sampler, or at shutdown) stops the poller.
    job: Mutex<Option<JobHandle>>,
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    alive: Weak<()>,
}

/// The poller's configuration, kept until the first decision starts it.
#[derive(Debug)]
struct PendingPoller {
    config: PollerConfig,
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
            let pending = self
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let Some(p) = pending else {
                return;
            };
            // The poller reaches the rules through the narrow `RuleStore` view, weakly.
            let rules: Weak<ConsoleRules> = Arc::downgrade(&self.rules);
            let store: Weak<dyn RuleStore> = rules;
            match poller::start(p.config, store, p.alive) {
                Ok(job) => {
                    *self.job.lock().unwrap_or_else(PoisonError::into_inner) = Some(job);
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "X-Ray sampling poller could not start its thread; using local sampling rules"
                ),
            }
        });
    }

    /// The names of the console rules in force, in the order they are tried (`Default`
    /// last); empty before the first successful fetch.
    pub fn rule_names(&self) -> Vec<Arc<str>> {
        self.rules
            .manifest()
            .all()
            .map(|r| Arc::clone(&r.def.name))
            .collect()
    }

    /// True when decisions currently come from the fallback local rules (no rules fetched
    /// yet, or the last fetch is more than an hour old).
    pub fn is_using_fallback(&self) -> bool {
        self.rules.is_using_fallback(self.rules.now())
    }

    /// Replaces the rules with a `GetSamplingRules` answer, as the poller does (for tests and
    /// benchmarks with polling off). Returns the number of rules accepted, or why the body is
    /// no such answer (the rules in force then stay).
    #[cfg(any(test, feature = "test-util"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn apply_rules_response(&self, body: &str) -> Result<usize, InvalidAnswer> {
        let defs = super::daemon_api::parse_rules_response(body.as_bytes())
            .map_err(|message| InvalidAnswer { message })?;
        let n = defs.len();
        self.rules.apply_rules(defs, self.rules.now_exact());
        Ok(n)
    }

    /// A handle whose `upgrade()` fails once the poller has stopped (its job is dropped).
    #[cfg(any(test, feature = "test-util"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn poller_liveness(&self) -> Weak<()> {
        self.alive.clone()
    }
}

/// An answer of the daemon's sampling API that could not be read (what was wrong with it,
/// in [`Display`](std::fmt::Display)); see [`CentralizedSampler::apply_rules_response`].
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAnswer {
    message: String,
}

#[cfg(any(test, feature = "test-util"))]
impl std::fmt::Display for InvalidAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(any(test, feature = "test-util"))]
impl std::error::Error for InvalidAnswer {}

/// The poller's view of the rules.
impl RuleStore for ConsoleRules {
    fn epoch_seconds(&self) -> u64 {
        self.now_exact()
    }

    fn refreshed_at(&self) -> Option<u64> {
        self.manifest().refreshed_at
    }

    fn replace_rules(&self, rules: Vec<RuleDef>, fetched_at: u64) {
        self.apply_rules(rules, fetched_at);
    }

    fn take_counts(&self, now: u64) -> Vec<RuleCounts> {
        ConsoleRules::take_counts(self, now)
    }

    fn restore_counts(&self, counts: &[RuleCounts]) {
        ConsoleRules::restore_counts(self, counts);
    }

    fn apply_target(&self, target: &Target, now: u64) -> bool {
        ConsoleRules::apply_target(self, target, now)
    }
}

impl Sampler for CentralizedSampler {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        if !self.started.is_completed() {
            self.start_polling();
        }
        self.rules.decide(request)
    }

    /// Stops the poller for good: the rules in force stay (until their cache expires, then
    /// the fallback decides), and later decisions do not start it again.
    fn shutdown(&self) {
        self.started.call_once(|| {});
        let job = self
            .job
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(job);
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

    /// Builds the sampler. Its poller starts with the first decision (or
    /// [`CentralizedSampler::start_polling`]); if the background thread cannot be started the
    /// sampler logs it and uses the fallback rules.
    pub fn build(self) -> CentralizedSampler {
        let random = match self.seed {
            Some(seed) => Random::seeded(seed),
            None => Random::Thread,
        };
        let fallback = LocalSampler::new(self.fallback)
            .with_time(self.time.clone())
            .with_random(random.fork(1));
        let rules = Arc::new(ConsoleRules::new(
            fallback,
            self.time,
            random,
            self.rule_ttl.as_secs(),
        ));
        let token = Arc::new(());
        let alive = Arc::downgrade(&token);
        let pending = self.polling.then(|| PendingPoller {
            config: PollerConfig {
                base_url: self.base_url,
                rules_interval: self.rules_interval,
                targets_interval: self.targets_interval,
                client_id: self
                    .client_id
                    .unwrap_or_else(|| process_client_id().to_owned()),
                request_timeout: self.request_timeout,
            },
            alive: token,
        });
        CentralizedSampler {
            rules,
            started: Once::new(),
            pending: Mutex::new(pending),
            job: Mutex::new(None),
            alive,
        }
    }
}

/// This process's `ClientID`.
fn process_client_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(crate::id::new_client_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::sampling::console_rules::NO_QUOTA;
    use serde_json::Value;

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
            s.rules
                .apply_target(&target("x", None, Some(5.0), tt(T + 10)), T)
        );
        assert_eq!(sampled(&s), 5);
        // A new quota without a TTL keeps the expiry it had.
        assert!(s.rules.apply_target(&target("x", None, Some(3.0), None), T));
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
        let quota_of = |name: &str| s.rules.quota_of(name);
        assert_eq!(quota_of("y"), Some(NO_QUOTA));
        assert!(
            s.rules
                .apply_target(&target("y", None, None, tt(T + 100)), T + 11)
        );
        assert_eq!(quota_of("y"), Some(0));
    }
}
