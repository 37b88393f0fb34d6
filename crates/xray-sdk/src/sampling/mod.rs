//! Sampling: which requests are recorded.
//!
//! A [`Sampler`] decides for each new trace that did not arrive with a decision
//! (`Sampled=1`/`0` in the incoming header is always obeyed, and
//! [`SegmentBuilder::sampled`](crate::SegmentBuilder::sampled) forces or vetoes it in code).
//!
//! | sampler | decides with |
//! |---|---|
//! | [`CentralizedSampler`] (the recorder's default) | the rules and quotas of the X-Ray console, fetched through the daemon; local rules until they arrive or when they are an hour old |
//! | [`LocalSampler`] | [`LocalRules`] from a JSON file (`AWS_XRAY_SAMPLING_RULES`, [`RecorderBuilder::sampling_rules_file`](crate::RecorderBuilder::sampling_rules_file)) or from code |
//! | [`DefaultSampler`] | the built-in rule alone: the first request each second, then 5 % |
//! | [`AlwaysSample`] / [`NeverSample`] | nothing: every request, or none |
//!
//! A rules file (version 2; version 1 says `service_name` where version 2 says `host`):
//!
//! ```json
//! {
//!   "version": 2,
//!   "default": { "fixed_target": 1, "rate": 0.05 },
//!   "rules": [
//!     { "description": "no health checks", "host": "*", "http_method": "GET",
//!       "url_path": "/health", "fixed_target": 0, "rate": 0 },
//!     { "description": "every checkout", "host": "*", "http_method": "POST",
//!       "url_path": "/api/checkout", "fixed_target": 10, "rate": 1 }
//!   ]
//! }
//! ```
//!
//! Rules are tried in order and the first match decides: up to `fixed_target` requests each
//! wall-clock second (across all threads), then the fraction `rate` of the rest. Patterns are
//! case-insensitive with `*` and `?` wildcards ([`wildcard_match`]).

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{ConfigError, DaemonAddress};

// Layered: each module uses only those listed before it.
mod centralized;
mod console_rules;
mod daemon_api;
mod decision;
mod local;
mod poller;
mod random;
mod reservoir;
mod wildcard;

#[cfg(any(test, feature = "test-util"))]
pub use centralized::InvalidAnswer;
pub use centralized::{
    CentralizedSampler, CentralizedSamplerBuilder, DEFAULT_RULES_INTERVAL,
    DEFAULT_TARGETS_INTERVAL, RULE_CACHE_TTL,
};
pub use decision::{Sampler, SamplingDecision, SamplingRequest};
pub use local::{LocalRule, LocalRules, LocalSampler, RulesError};
pub use wildcard::wildcard_match;

use random::Random;
use reservoir::Reservoir;

/// Samples every new trace (no rule name). Useful in tests and for low-traffic services
/// where every request matters; an incoming `Sampled=0` is still obeyed.
///
/// ```
/// use xray_sdk::{Recorder, sampling::AlwaysSample};
/// let recorder = Recorder::builder().ignore_env().sampler(AlwaysSample).build().unwrap();
/// assert!(recorder.segment("api").begin().is_sampled());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysSample;

impl Sampler for AlwaysSample {
    fn should_sample(&self, _request: &SamplingRequest<'_>) -> SamplingDecision {
        SamplingDecision::new(true)
    }
}

/// Samples no new trace: only requests whose incoming header says `Sampled=1` (or that code
/// forces with [`SegmentBuilder::sampled`](crate::SegmentBuilder::sampled)) are recorded.
///
/// ```
/// use xray_sdk::{Recorder, sampling::NeverSample};
/// let recorder = Recorder::builder().ignore_env().sampler(NeverSample).build().unwrap();
/// assert!(!recorder.segment("api").begin().is_sampled());
/// assert!(recorder.segment("api").sampled(true).begin().is_sampled());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverSample;

impl Sampler for NeverSample {
    fn should_sample(&self, _request: &SamplingRequest<'_>) -> SamplingDecision {
        SamplingDecision::new(false)
    }
}

/// The built-in default rule alone: the first request each second, then 5 % of the others.
/// Lighter than a [`LocalSampler`] with [`LocalRules::default`], with the same decisions.
#[derive(Debug)]
pub struct DefaultSampler {
    fixed_target: u64,
    rate: f64,
    reservoir: Reservoir,
}

impl DefaultSampler {
    /// A sampler with the given reservoir per second and rate (clamped to 0..=1).
    pub fn new(fixed_target: u32, rate: f64) -> Self {
        DefaultSampler {
            fixed_target: u64::from(fixed_target),
            rate: if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            },
            reservoir: Reservoir::default(),
        }
    }
}

impl Default for DefaultSampler {
    fn default() -> Self {
        DefaultSampler::new(1, 0.05)
    }
}

impl Sampler for DefaultSampler {
    fn should_sample(&self, _request: &SamplingRequest<'_>) -> SamplingDecision {
        let now = crate::clock::epoch_seconds();
        let sampled = self.reservoir.take(now, self.fixed_target)
            || (self.rate > 0.0 && Random::Thread.next_f64() < self.rate);
        SamplingDecision::new(sampled)
    }
}

/// How the recorder builds its sampler when none is given in code.
#[derive(Debug, Clone, Default)]
pub(crate) struct SamplingSettings {
    pub(crate) rules_file: Option<PathBuf>,
    /// The setting that named `rules_file`, for error messages.
    pub(crate) rules_setting: &'static str,
    pub(crate) centralized: bool,
    pub(crate) daemon: DaemonAddress,
}

/// Builds the recorder's sampler: local rules from the file (or the built-in rule), used
/// directly, or as the fallback of a [`CentralizedSampler`].
pub(crate) fn build_sampler(settings: &SamplingSettings) -> Result<Arc<dyn Sampler>, ConfigError> {
    let rules = match &settings.rules_file {
        Some(path) => LocalRules::from_file(path).map_err(|e| {
            ConfigError::new(
                if settings.rules_setting.is_empty() {
                    "sampling_rules_file"
                } else {
                    settings.rules_setting
                },
                path.display().to_string(),
                format!("a valid sampling rules file: {}", e.detail()),
            )
        })?,
        None => LocalRules::default(),
    };
    Ok(if settings.centralized {
        Arc::new(
            CentralizedSampler::builder(&settings.daemon)
                .fallback(rules)
                .build(),
        )
    } else {
        Arc::new(LocalSampler::new(rules))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvConfig;
    use crate::recorder::Recorder;

    #[test]
    fn a_bad_rules_file_in_the_environment_keeps_the_rest() {
        let (env, errors) = EnvConfig::read(|k| match k {
            "AWS_XRAY_SAMPLING_RULES" => Some("/nonexistent/rules.json".into()),
            "AWS_XRAY_TRACING_NAME" => Some("from-env".into()),
            _ => None,
        });
        assert!(errors.is_empty());
        let settings = SamplingSettings {
            rules_file: env.sampling_rules.clone(),
            rules_setting: crate::config::env::SAMPLING_RULES,
            centralized: false,
            daemon: DaemonAddress::default(),
        };
        let err = build_sampler(&settings).expect_err("missing file");
        assert_eq!(err.setting(), "AWS_XRAY_SAMPLING_RULES");
        assert!(err.to_string().contains("/nonexistent/rules.json"), "{err}");
        // from_env logs it and keeps the default rule and the other settings.
        let recorder = Recorder::from_env_config(env);
        assert!(recorder.is_enabled());
        assert_eq!(recorder.service_name(), "from-env");
    }

    #[test]
    fn default_sampler_is_one_per_second_then_rate() {
        let s = DefaultSampler::new(1, 0.0);
        let any = SamplingRequest::default();
        // At most one per second (two if the second changes during the loop).
        let n = (0..1000).filter(|_| s.should_sample(&any).sampled).count();
        assert!((1..=2).contains(&n), "{n}");
        assert!(!DefaultSampler::new(0, 0.0).should_sample(&any).sampled);
        assert!(DefaultSampler::new(0, 1.0).should_sample(&any).sampled);
    }
}
