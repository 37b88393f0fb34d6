//! [`XRayLayer`]: the tower layer and its settings.

use std::sync::Arc;

use tower_layer::Layer;
use xray_sdk::Recorder;

use crate::config::Config;
use crate::naming::SegmentNaming;
use crate::service::XRay;

/// A [`Layer`] that records every request of the wrapped HTTP service as an X-Ray segment.
///
/// Built with [`XRayLayer::new`]; see the [crate docs](crate) for what is recorded and when.
///
/// ```
/// use xray_sdk::Recorder;
/// use xray_sdk_tower::{SegmentNaming, XRayLayer};
///
/// let recorder = Recorder::disabled();
/// let layer = XRayLayer::new(recorder)
///     .naming(SegmentNaming::dynamic("*.example.com", "storefront"))
///     .response_header(false);
/// let app: axum::Router = axum::Router::new().layer(layer);
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct XRayLayer {
    config: Arc<Config>,
}

impl XRayLayer {
    /// A layer that records into `recorder`, names segments after the recorder's service name
    /// and returns `X-Amzn-Trace-Id` on every response.
    pub fn new(recorder: Recorder) -> Self {
        // The recorder's name has been through `AWS_XRAY_TRACING_NAME` already (or was
        // built to ignore it).
        let naming = SegmentNaming::fixed(recorder.service_name().to_owned());
        // Panics caught by a `CatchPanicLayer` inside this layer reach the segment through it.
        XRayLayer {
            config: Arc::new(Config {
                recorder,
                naming,
                response_header: true,
            }),
        }
    }

    /// Sets how segments are named (default: the recorder's service name).
    /// `AWS_XRAY_TRACING_NAME`, when the recorder read it, replaces the fixed name or the
    /// dynamic fallback (the environment wins over code, as in the official SDKs); a
    /// recorder built with `ignore_env()` keeps the names given here.
    #[must_use]
    pub fn naming(self, naming: SegmentNaming) -> Self {
        self.update(|c| c.naming = naming.under_env(c.recorder.env_segment_name()))
    }

    /// Whether responses carry an `X-Amzn-Trace-Id` header with the trace ID (and, when the
    /// caller asked with `Sampled=?`, the decision). On by default.
    #[must_use]
    pub fn response_header(self, on: bool) -> Self {
        self.update(|c| c.response_header = on)
    }

    /// The recorder segments go to.
    pub fn recorder(&self) -> &Recorder {
        &self.config.recorder
    }

    /// The settings every service of this layer shares.
    #[cfg(test)]
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    fn update(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        f(&mut config);
        XRayLayer {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for XRayLayer {
    type Service = XRay<S>;

    fn layer(&self, inner: S) -> XRay<S> {
        XRay::from_parts(inner, Arc::clone(&self.config))
    }
}
