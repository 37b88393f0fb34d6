//! Which spans become subsegments: level, target and name rules.

use std::borrow::Cow;

use tracing::{Level, Metadata};

/// Targets whose spans are left out by default.
///
/// Two groups:
///
/// - Calls that an X-Ray adapter of this workspace already records as a subsegment, so a span
///   would describe the same call twice: the AWS SDK's operation and attempt spans
///   (`aws_sdk_*`, `aws_smithy_*`, `aws_config`, `aws_runtime`; recorded by `xray-sdk-aws`),
///   outgoing HTTP (`reqwest`, `reqwest_middleware`, `reqwest_tracing`; recorded by
///   `xray-sdk-reqwest`), incoming HTTP (`tower_http`, whose `TraceLayer` opens a `request`
///   span for what `xray-sdk-tower` records as the segment) and the SDK's own crates
///   (`xray_sdk`, `xray_sdk_*`).
/// - Transport and runtime internals that are noise in a service map: `tower`, `hyper`,
///   `hyper_util`, `h2`, `tokio`, `tokio_util`, `mio`, `rustls`, `tokio_rustls`.
///
/// An entry ending in `_` matches every target starting with it (`aws_sdk_` matches
/// `aws_sdk_dynamodb::operation::get_item`). Any other entry matches the target itself and
/// its submodules (`hyper` matches `hyper` and `hyper::proto::h1`, not `hyperlocal`).
pub const DEFAULT_EXCLUDED_TARGETS: &[&str] = &[
    "aws_sdk_",
    "aws_smithy_",
    "aws_config",
    "aws_runtime",
    "reqwest",
    "reqwest_middleware",
    "reqwest_tracing",
    "tower_http",
    "xray_sdk",
    "xray_sdk_",
    "tower",
    "hyper",
    "hyper_util",
    "h2",
    "tokio",
    "tokio_util",
    "mio",
    "rustls",
    "tokio_rustls",
];

/// True when `rule` (see [`DEFAULT_EXCLUDED_TARGETS`]) matches `target`.
pub(crate) fn target_matches(rule: &str, target: &str) -> bool {
    if rule.ends_with('_') {
        return target.starts_with(rule);
    }
    match target.strip_prefix(rule) {
        Some("") => true,
        Some(rest) => rest.starts_with("::"),
        None => false,
    }
}

/// A user predicate on span metadata.
pub(crate) type SpanFilterFn = dyn Fn(&Metadata<'_>) -> bool + Send + Sync;

/// The span selection rules of a layer.
pub(crate) struct SpanFilter {
    pub(crate) max_level: Level,
    pub(crate) excluded_targets: Vec<Cow<'static, str>>,
    pub(crate) excluded_names: Vec<Cow<'static, str>>,
    pub(crate) predicate: Option<Box<SpanFilterFn>>,
}

impl Default for SpanFilter {
    fn default() -> Self {
        SpanFilter {
            max_level: Level::INFO,
            excluded_targets: DEFAULT_EXCLUDED_TARGETS
                .iter()
                .map(|t| Cow::Borrowed(*t))
                .collect(),
            excluded_names: Vec::new(),
            predicate: None,
        }
    }
}

impl SpanFilter {
    /// True when a span with this metadata should become a subsegment.
    pub(crate) fn includes(&self, meta: &Metadata<'_>) -> bool {
        // `Level` orders more verbose levels as greater.
        if *meta.level() > self.max_level {
            return false;
        }
        let target = meta.target();
        if self
            .excluded_targets
            .iter()
            .any(|rule| target_matches(rule, target))
        {
            return false;
        }
        let name = meta.name();
        if self.excluded_names.iter().any(|n| n == name) {
            return false;
        }
        self.predicate.as_ref().is_none_or(|p| p(meta))
    }
}

#[cfg(test)]
mod tests {
    use super::target_matches;

    #[test]
    fn target_rules() {
        assert!(target_matches("hyper", "hyper"));
        assert!(target_matches("hyper", "hyper::proto::h1::conn"));
        assert!(!target_matches("hyper", "hyper_util::client"));
        assert!(!target_matches("hyper", "hyperlocal"));
        assert!(target_matches("aws_sdk_", "aws_sdk_dynamodb::operation"));
        assert!(!target_matches("aws_sdk_", "aws_sdk"));
        assert!(!target_matches("tower", "towers"));
        assert!(target_matches("tower_http", "tower_http::trace::make_span"));
    }
}
