//! The background thread that fetches rules and reports statistics through the daemon.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::centralized::{Shared, Target, answer_error, parse_rules_response};

/// At most this many statistics documents per `SamplingTargets` call (an API limit).
pub(crate) const MAX_STATISTICS_PER_CALL: usize = 25;

#[derive(Debug)]
pub(crate) struct PollerConfig {
    pub(crate) base_url: String,
    pub(crate) rules_interval: Duration,
    pub(crate) targets_interval: Duration,
    pub(crate) client_id: String,
    pub(crate) request_timeout: Duration,
}

/// Starts the `xray-sampling` thread. It holds only a weak reference to the sampler and
/// stops when the sampler is dropped (`stop` closes) or can no longer be upgraded.
pub(crate) fn spawn(
    config: PollerConfig,
    shared: Weak<Shared>,
    stop: tokio::sync::watch::Receiver<()>,
    alive: Arc<()>,
) {
    let spawned = std::thread::Builder::new()
        .name("xray-sampling".into())
        .spawn(move || {
            let _alive = alive;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "X-Ray sampling poller could not start its runtime; using local sampling rules");
                    return;
                }
            };
            runtime.block_on(run(config, shared, stop));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "X-Ray sampling poller thread could not start; using local sampling rules");
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

async fn run(
    config: PollerConfig,
    shared: Weak<Shared>,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout)
        .pool_idle_timeout(Duration::from_secs(25))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "X-Ray sampling poller could not build its HTTP client; using local sampling rules");
            return;
        }
    };
    let mut health = Health { failing: None };
    let start = Instant::now();
    let mut rules_due = start;
    let mut targets_due = after(start, jitter_after(config.targets_interval));
    loop {
        let wake = rules_due.min(targets_due);
        if tokio::time::timeout_at(wake, stop.changed()).await.is_ok() {
            // The sampler was dropped (or asked us to stop).
            return;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        if now >= rules_due {
            refresh_rules(&client, &config, &shared, &mut health).await;
            rules_due = after(now, jitter_before(config.rules_interval));
        }
        if now >= targets_due {
            if report_targets(&client, &config, &shared, &mut health).await {
                tracing::debug!("sampling rules changed in the console; refreshing them now");
                refresh_rules(&client, &config, &shared, &mut health).await;
                rules_due = after(Instant::now(), jitter_before(config.rules_interval));
            }
            targets_due = after(Instant::now(), jitter_after(config.targets_interval));
        }
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

/// Largest answer read from the daemon: a rules list of a few hundred rules is a few
/// hundred KiB; anything bigger is not an answer.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Why a call to the daemon failed, and whether the request may have reached it.
struct PostError {
    message: String,
    /// False only when no connection was made: nothing was sent.
    maybe_delivered: bool,
}

impl From<String> for PostError {
    fn from(message: String) -> Self {
        PostError {
            message,
            maybe_delivered: true,
        }
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &impl Serialize,
) -> Result<Vec<u8>, PostError> {
    let mut response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| PostError {
            maybe_delivered: !e.is_connect(),
            message: e.to_string(),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP status {status}").into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("answer over {MAX_ANSWER_BYTES} bytes").into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn refresh_rules(
    client: &reqwest::Client,
    config: &PollerConfig,
    shared: &Shared,
    health: &mut Health,
) {
    let started = shared.time.exact();
    let url = format!("{}/GetSamplingRules", config.base_url);
    let result = post(client, &url, &serde_json::json!({}))
        .await
        .map_err(|e| e.message)
        .and_then(|body| parse_rules_response(&body));
    match result {
        Ok(defs) => {
            health.ok(&config.base_url);
            tracing::debug!(rules = defs.len(), "fetched X-Ray sampling rules");
            shared.apply_rules(defs, started);
        }
        Err(e) => health.failed(&config.base_url, "GetSamplingRules", &e),
    }
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

#[derive(Deserialize)]
struct TargetsResponse {
    #[serde(rename = "SamplingTargetDocuments", default)]
    targets: Option<Vec<Value>>,
    #[serde(rename = "LastRuleModification", default)]
    last_rule_modification: Option<f64>,
    #[serde(rename = "UnprocessedStatistics", default)]
    unprocessed: Option<Vec<Value>>,
}

/// Reports the statistics of the rules that are due; returns true when the rules should be
/// fetched again out of band.
async fn report_targets(
    client: &reqwest::Client,
    config: &PollerConfig,
    shared: &Shared,
    health: &mut Health,
) -> bool {
    let now = shared.time.exact();
    let stats = shared.take_statistics(now);
    if stats.is_empty() {
        return false;
    }
    let url = format!("{}/SamplingTargets", config.base_url);
    let last_refresh = shared.manifest().refreshed_at;
    let mut refresh = false;
    let mut chunks = stats.chunks(MAX_STATISTICS_PER_CALL);
    while let Some(chunk) = chunks.next() {
        let request = TargetsRequest {
            documents: chunk
                .iter()
                .map(|s| StatisticsDocument {
                    rule_name: &s.rule,
                    client_id: &config.client_id,
                    request_count: s.requests,
                    sampled_count: s.sampled,
                    borrow_count: s.borrows,
                    timestamp: now,
                })
                .collect(),
        };
        let result = post(client, &url, &request).await.and_then(|body| {
            serde_json::from_slice::<TargetsResponse>(&body)
                .map_err(|e| PostError::from(answer_error("SamplingTargets", &e)))
        });
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                health.failed(&config.base_url, "SamplingTargets", &e.message);
                // Counts go back for the next report only when the service cannot have
                // seen them (no connection was made, or a later chunk never went out):
                // reported twice, they would count twice.
                if !e.maybe_delivered {
                    chunk.iter().for_each(|s| s.restore());
                }
                chunks.flatten().for_each(|s| s.restore());
                return refresh;
            }
        };
        health.ok(&config.base_url);
        let applied_at = shared.time.exact();
        for target in response.targets.unwrap_or_default() {
            match serde_json::from_value::<Target>(target) {
                Ok(t) => {
                    if !shared.apply_target(&t, applied_at) {
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
