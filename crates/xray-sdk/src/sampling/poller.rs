//! The sampling poller: a job on the SDK's background thread that fetches the console's rules
//! and reports the rules' counts through the daemon's sampling API.
//!
//! It reaches the rules it serves only through [`RuleStore`], held weakly: when the sampler
//! is dropped, the job finds nothing to upgrade and ends (and the sampler also cancels it).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::daemon_api::{
    MAX_STATISTICS_PER_CALL, RuleCounts, RuleDef, Target, TargetsResponse, parse_rules_response,
    targets_request,
};
use crate::background::{self, Job, JobHandle};
use crate::http::Client;

/// What the poller needs from the rules it keeps up to date.
pub(crate) trait RuleStore: Send + Sync + 'static {
    /// The current epoch second on the sampler's clock.
    fn epoch_seconds(&self) -> u64;
    /// The epoch second captured before the fetch of the rules in force, if any were fetched.
    fn refreshed_at(&self) -> Option<u64>;
    /// Puts fetched rules in force; `fetched_at` is the epoch second before the call.
    fn replace_rules(&self, rules: Vec<RuleDef>, fetched_at: u64);
    /// Takes the counts of the rules due for a report at `now` (their counters reset).
    fn take_counts(&self, now: u64) -> Vec<RuleCounts>;
    /// Puts counts back after a report that cannot have reached the daemon.
    fn restore_counts(&self, counts: &[RuleCounts]);
    /// Applies one target received at `now`; false when it names no rule in force.
    fn apply_target(&self, target: &Target, now: u64) -> bool;
}

#[derive(Debug)]
pub(crate) struct PollerConfig {
    pub(crate) base_url: String,
    pub(crate) rules_interval: Duration,
    pub(crate) targets_interval: Duration,
    pub(crate) client_id: String,
    pub(crate) request_timeout: Duration,
}

/// Schedules the poller on the background thread, its first rules fetch now. `alive` lives
/// as long as the job.
pub(crate) fn start(
    config: PollerConfig,
    store: Weak<dyn RuleStore>,
    alive: Arc<()>,
) -> std::io::Result<JobHandle> {
    let now = Instant::now();
    let poller = Poller {
        client: Client::new(config.request_timeout),
        health: Health { failing: None },
        rules_due: now,
        targets_due: after(now, jitter_after(config.targets_interval)),
        config,
        store,
        _alive: alive,
    };
    background::schedule(Box::new(poller), now)
}

struct Poller {
    config: PollerConfig,
    store: Weak<dyn RuleStore>,
    client: Client,
    health: Health,
    rules_due: Instant,
    targets_due: Instant,
    _alive: Arc<()>,
}

impl Job for Poller {
    fn run(&mut self) -> Option<Instant> {
        let store = self.store.upgrade()?;
        let store = &*store;
        let now = Instant::now();
        if now >= self.rules_due {
            self.refresh_rules(store);
            self.rules_due = after(now, jitter_before(self.config.rules_interval));
        }
        if now >= self.targets_due {
            if self.report_targets(store) {
                tracing::debug!("sampling rules changed in the console; refreshing them now");
                self.refresh_rules(store);
                self.rules_due = after(Instant::now(), jitter_before(self.config.rules_interval));
            }
            self.targets_due = after(Instant::now(), jitter_after(self.config.targets_interval));
        }
        Some(self.rules_due.min(self.targets_due))
    }
}

impl Poller {
    fn refresh_rules(&mut self, store: &dyn RuleStore) {
        let started = store.epoch_seconds();
        let url = format!("{}/GetSamplingRules", self.config.base_url);
        let result = self
            .client
            .post_json(&url, b"{}")
            .map_err(|e| e.message)
            .and_then(|body| parse_rules_response(&body));
        match result {
            Ok(defs) => {
                self.health.ok(&self.config.base_url);
                tracing::debug!(rules = defs.len(), "fetched X-Ray sampling rules");
                store.replace_rules(defs, started);
            }
            Err(e) => self
                .health
                .failed(&self.config.base_url, "GetSamplingRules", &e),
        }
    }

    /// Reports the counts of the rules that are due; returns true when the rules should be
    /// fetched again out of band.
    fn report_targets(&mut self, store: &dyn RuleStore) -> bool {
        let now = store.epoch_seconds();
        let counts = store.take_counts(now);
        if counts.is_empty() {
            return false;
        }
        let url = format!("{}/SamplingTargets", self.config.base_url);
        let last_refresh = store.refreshed_at();
        let mut refresh = false;
        let mut chunks = counts.chunks(MAX_STATISTICS_PER_CALL);
        while let Some(chunk) = chunks.next() {
            let body = targets_request(chunk, &self.config.client_id, now);
            let result = self
                .client
                .post_json(&url, &body)
                .map_err(|e| (e.message, e.connected))
                .and_then(|body| TargetsResponse::parse(&body).map_err(|e| (e, true)));
            let response = match result {
                Ok(r) => r,
                Err((message, connected)) => {
                    self.health
                        .failed(&self.config.base_url, "SamplingTargets", &message);
                    // Counts go back for the next report only when the service cannot have
                    // seen them (no connection was made, or a later chunk never went out):
                    // reported twice, they would count twice.
                    if !connected {
                        store.restore_counts(chunk);
                    }
                    chunks.for_each(|rest| store.restore_counts(rest));
                    return refresh;
                }
            };
            self.health.ok(&self.config.base_url);
            let applied_at = store.epoch_seconds();
            for target in response.targets.unwrap_or_default() {
                match serde_json::from_value::<Target>(target) {
                    Ok(t) => {
                        if !store.apply_target(&t, applied_at) {
                            tracing::debug!(rule = %t.rule_name, "sampling target for an unknown rule");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "skipping malformed sampling target"),
                }
            }
            for u in response.unprocessed.unwrap_or_default() {
                let code = u.get("ErrorCode").and_then(Value::as_str).unwrap_or("");
                tracing::debug!(statistics = %u, "sampling statistics not processed");
                if code.starts_with('4') {
                    refresh = true;
                }
            }
            // The rules changed in the console since the rules in use were fetched.
            if let (Some(modified), Some(last)) = (response.last_rule_modification, last_refresh)
                && modified.is_finite()
                && modified >= last as f64
            {
                refresh = true;
            }
        }
        refresh
    }
}

/// Logs the daemon's state on changes only: a dead daemon is reported once, not per poll.
struct Health {
    failing: Option<bool>,
}

impl Health {
    fn failed(&mut self, base_url: &str, call: &str, error: &str) {
        if self.failing == Some(true) {
            tracing::debug!(daemon = base_url, call, error, "X-Ray sampling call failed");
        } else {
            tracing::warn!(
                daemon = base_url,
                call,
                error,
                "X-Ray daemon sampling API unavailable; using local sampling rules until it answers (logged once)"
            );
        }
        self.failing = Some(true);
    }

    fn ok(&mut self, base_url: &str) {
        if self.failing == Some(true) {
            tracing::info!(
                daemon = base_url,
                "X-Ray daemon sampling API reachable again"
            );
        }
        self.failing = Some(false);
    }
}

/// `at + wait`, or a day later when that is past what an `Instant` can hold (an interval
/// configured as "never" must not stop the poller).
fn after(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait)
        .or_else(|| at.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(at)
}

/// `every` less up to 1/60 of it (300 s → up to 5 s early).
fn jitter_before(every: Duration) -> Duration {
    every.saturating_sub(every.mul_f64(rand::random::<f64>() / 60.0))
}

/// `every` plus up to 1/100 of it (10 s → up to 100 ms late).
fn jitter_after(every: Duration) -> Duration {
    every.saturating_add(
        every
            .checked_div(100)
            .unwrap_or_default()
            .mul_f64(rand::random::<f64>()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_of_any_length_never_overflow() {
        let now = Instant::now();
        for every in [
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_secs(10),
            Duration::from_secs(300),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            let early = jitter_before(every);
            let late = jitter_after(every);
            assert!(early <= every && late >= every, "{every:?}");
            let at = after(now, late);
            assert!(at >= now, "{every:?}");
        }
        // A normal interval keeps its meaning.
        let ten = Duration::from_secs(10);
        assert!(after(now, jitter_after(ten)) <= now + ten + ten / 100);
        // "Never": a day from now rather than a panic.
        assert_eq!(after(now, Duration::MAX), now + Duration::from_secs(86_400));
    }
}
