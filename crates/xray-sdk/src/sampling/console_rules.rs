//! The console rules in force: their definitions, sorted as they are tried, and the state
//! each keeps (rate, quota, reservoir, counts) across refreshes while it keeps its name.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use super::daemon_api::{RuleCounts, RuleDef, Target, whole};
use super::decision::{SamplingDecision, SamplingRequest};
use super::local::LocalSampler;
use super::random::Random;
use super::reservoir::Reservoir;
use super::wildcard::Fields;
use crate::clock::Time;

/// A quota of "none received yet".
pub(crate) const NO_QUOTA: u64 = u64::MAX;
const DEFAULT_INTERVAL_SECS: u64 = 10;

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

    pub(crate) fn find(&self, name: &str) -> Option<&Rule> {
        self.all().find(|r| &*r.def.name == name)
    }
}

/// The console rules in force, shared by a [`CentralizedSampler`](super::CentralizedSampler)
/// (which decides with them) and its poller (which refreshes them and reports their counts).
#[derive(Debug)]
pub(crate) struct ConsoleRules {
    manifest: RwLock<Arc<Manifest>>,
    /// Decides while no console rules are in force.
    fallback: LocalSampler,
    time: Time,
    random: Random,
    rule_ttl: u64,
}

impl ConsoleRules {
    pub(crate) fn new(fallback: LocalSampler, time: Time, random: Random, rule_ttl: u64) -> Self {
        ConsoleRules {
            manifest: RwLock::new(Arc::new(Manifest::default())),
            fallback,
            time,
            random,
            rule_ttl,
        }
    }

    /// The current epoch second on the sampler's clock.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.time.now()
    }

    /// The same, for the poller (see [`Time::exact`]).
    pub(crate) fn now_exact(&self) -> u64 {
        self.time.exact()
    }

    /// True when decisions come from the fallback rules at epoch second `now` (no rules
    /// fetched yet, or the last fetch is older than the rule cache's TTL).
    pub(crate) fn is_using_fallback(&self, now: u64) -> bool {
        self.read()
            .refreshed_at
            .is_none_or(|at| now > at.saturating_add(self.rule_ttl))
    }

    fn read(&self) -> RwLockReadGuard<'_, Arc<Manifest>> {
        self.manifest.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn manifest(&self) -> Arc<Manifest> {
        Arc::clone(&self.read())
    }

    pub(crate) fn decide(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
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

    /// Takes the counts of the rules due for a report at `now` (counters reset).
    pub(crate) fn take_counts(&self, now: u64) -> Vec<RuleCounts> {
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
            .map(|r| RuleCounts {
                rule: Arc::clone(&r.def.name),
                requests: r.state.requests.swap(0, Ordering::Relaxed),
                sampled: r.state.sampled.swap(0, Ordering::Relaxed),
                borrows: r.state.borrows.swap(0, Ordering::Relaxed),
            })
            .collect()
    }

    /// Puts counts back after a failed report, so the next one includes them (a rule the
    /// refresh in between removed takes its counts with it).
    pub(crate) fn restore_counts(&self, counts: &[RuleCounts]) {
        let manifest = self.manifest();
        for c in counts {
            if let Some(rule) = manifest.find(&c.rule) {
                let s = &rule.state;
                s.requests.fetch_add(c.requests, Ordering::Relaxed);
                s.sampled.fetch_add(c.sampled, Ordering::Relaxed);
                s.borrows.fetch_add(c.borrows, Ordering::Relaxed);
            }
        }
    }

    /// The quota of rule `name` (`u64::MAX` for none), if it is in force.
    #[cfg(test)]
    pub(crate) fn quota_of(&self, name: &str) -> Option<u64> {
        self.manifest()
            .find(name)
            .map(|r| r.state.quota.load(Ordering::Relaxed))
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
