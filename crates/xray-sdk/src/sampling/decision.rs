//! What a sampler is asked and what it answers.

use std::fmt;
use std::sync::Arc;

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

/// The outcome of a sampling decision. Built with [`SamplingDecision::new`] and
/// [`SamplingDecision::with_rule_name`] (more fields may come).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
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

    /// The same decision, made by the rule `name` (written in the segment as
    /// `aws.xray.sampling_rule_name`).
    ///
    /// ```
    /// use xray_sdk::SamplingDecision;
    /// let decision = SamplingDecision::new(true).with_rule_name("checkout");
    /// assert_eq!(decision.rule_name.as_deref(), Some("checkout"));
    /// ```
    pub fn with_rule_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.rule_name = Some(name.into());
        self
    }
}

/// Decides whether a new trace is recorded. Called on the request path: must be fast and
/// must not block.
pub trait Sampler: Send + Sync + fmt::Debug + 'static {
    /// The decision for one request.
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision;

    /// Stops any background work of the sampler (the centralized sampler's calls to the
    /// daemon); decisions go on from what it has. Called by
    /// [`Recorder::shutdown`](crate::Recorder::shutdown).
    fn shutdown(&self) {}
}

/// A shared sampler: hand the recorder a clone of an `Arc` and keep the other, to read the
/// sampler's state later (say, [`CentralizedSampler::is_using_fallback`](super::CentralizedSampler::is_using_fallback)).
///
/// ```
/// use std::sync::Arc;
/// use xray_sdk::config::DaemonAddress;
/// use xray_sdk::sampling::CentralizedSampler;
/// use xray_sdk::Recorder;
///
/// let sampler = Arc::new(CentralizedSampler::builder(&DaemonAddress::default()).polling(false).build());
/// let recorder = Recorder::builder().ignore_env().sampler(Arc::clone(&sampler)).build().unwrap();
/// assert!(sampler.is_using_fallback());
/// # drop(recorder);
/// ```
impl<T: Sampler + ?Sized> Sampler for Arc<T> {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        (**self).should_sample(request)
    }

    fn shutdown(&self) {
        (**self).shutdown();
    }
}
