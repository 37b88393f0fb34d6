//! Sampling: which requests are recorded.
//!
//! A [`Sampler`] decides for each new trace that did not arrive with a decision
//! (`Sampled=1`/`0` in the incoming header is always obeyed).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

use crate::config::{ConfigError, DaemonAddress};

/// The facts a sampling rule matches on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SamplingRequest<'a> {
    /// The segment (service) name.
    pub service_name: Option<&'a str>,
    /// The service type (the segment's origin, e.g. `AWS::ECS::Container`).
    pub service_type: Option<&'a str>,
    /// The `Host` of the request.
    pub host: Option<&'a str>,
    /// The HTTP method.
    pub method: Option<&'a str>,
    /// The URL path.
    pub url_path: Option<&'a str>,
    /// The resource ARN.
    pub resource_arn: Option<&'a str>,
    /// Extra attributes.
    pub attributes: &'a [(&'a str, &'a str)],
}

/// The outcome of a sampling decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SamplingDecision {
    /// True when the trace is recorded.
    pub sampled: bool,
    /// The rule that decided, recorded in the segment as `aws.xray.sampling_rule_name`.
    pub rule_name: Option<Arc<str>>,
}

impl SamplingDecision {
    /// A decision made without a rule.
    pub fn new(sampled: bool) -> Self {
        SamplingDecision {
            sampled,
            rule_name: None,
        }
    }
}

/// Decides whether a new trace is recorded. Called on the request path: must be fast and
/// must not block.
pub trait Sampler: Send + Sync + fmt::Debug + 'static {
    /// The decision for one request.
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision;
}

/// Samples everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysSample;

impl Sampler for AlwaysSample {
    fn should_sample(&self, _request: &SamplingRequest<'_>) -> SamplingDecision {
        SamplingDecision::new(true)
    }
}

/// Samples nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverSample;

impl Sampler for NeverSample {
    fn should_sample(&self, _request: &SamplingRequest<'_>) -> SamplingDecision {
        SamplingDecision::new(false)
    }
}

/// The built-in default rule: the first request each second, then 5 % of the others.
#[derive(Debug)]
pub struct DefaultSampler {
    fixed_target: u64,
    rate: f64,
    // (epoch second << 32) | used this second
    window: AtomicU64,
}

impl DefaultSampler {
    /// A sampler with the given reservoir per second and rate.
    pub fn new(fixed_target: u32, rate: f64) -> Self {
        DefaultSampler {
            fixed_target: u64::from(fixed_target),
            rate,
            window: AtomicU64::new(0),
        }
    }

    fn take(&self) -> bool {
        let now = u64::from(crate::id::epoch_seconds_now());
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (sec, used) = (cur >> 32, cur & 0xffff_ffff);
            let (next, ok) = if sec != now {
                ((now << 32) | 1, self.fixed_target > 0)
            } else if used < self.fixed_target {
                (cur + 1, true)
            } else {
                return false;
            };
            if !ok {
                return false;
            }
            match self
                .window
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
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
        let sampled = self.take() || rand::rng().random::<f64>() < self.rate;
        SamplingDecision::new(sampled)
    }
}

/// How the recorder builds its sampler when none is given in code.
#[derive(Debug, Clone, Default)]
pub(crate) struct SamplingSettings {
    pub(crate) rules_file: Option<PathBuf>,
    pub(crate) centralized: bool,
    pub(crate) daemon: DaemonAddress,
}

pub(crate) fn build_sampler(settings: &SamplingSettings) -> Result<Arc<dyn Sampler>, ConfigError> {
    let _ = settings;
    Ok(Arc::new(DefaultSampler::default()))
}
