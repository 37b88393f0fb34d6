//! [`Init`]: what a function records during Lambda's init phase, before any invocation.

use std::fmt;

use xray_sdk::{Context, Entity, HeldFacade, Recorder};

/// The name of the subsegment that covers the init phase.
pub const INIT_SUBSEGMENT: &str = "init";

/// Work done during the init phase (clients built, configuration read, tables checked):
/// a subsegment named `init` whose children are the calls and steps made under
/// [`Init::context`].
///
/// Nothing is known of a trace before the first invocation, so the subsegment is held in
/// memory. Hand it to the layer with [`XRayLambdaLayer::init`](crate::XRayLambdaLayer::init)
/// once init is done: the first invocation sends it as a subsegment of its own under
/// Lambda's segment, with its real start and end times. When that invocation is not sampled,
/// it is dropped with one log line (Lambda recorded no segment for it to go under). An `Init`
/// dropped without being handed over is dropped with one log line too.
///
/// Until then its subsegments carry a trace ID of their own: a downstream call made during
/// init sends that ID on (DynamoDB and most AWS services ignore it).
///
/// ```no_run
/// use xray_sdk::FutureExt;
/// use xray_sdk_lambda::{Init, XRayLambdaLayer};
///
/// # async fn demo() -> Result<(), lambda_runtime::Error> {
/// let recorder = xray_sdk_lambda::recorder()?;
/// let init = Init::begin(&recorder);
/// let config = async { /* read configuration, build clients */ }
///     .in_context(init.context())
///     .await;
/// let layer = XRayLambdaLayer::new(recorder).init(init);
/// # Ok(()) }
/// ```
pub struct Init {
    held: Option<HeldFacade>,
    subsegment: Option<Entity>,
}

impl fmt::Debug for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Init")
            .field("subsegment", &self.subsegment)
            .finish_non_exhaustive()
    }
}

impl Init {
    /// Begins the `init` subsegment now.
    pub fn begin(recorder: &Recorder) -> Init {
        let held = recorder.held_facade();
        let subsegment = held.context().begin_subsegment(INIT_SUBSEGMENT);
        Init {
            held: Some(held),
            subsegment: Some(subsegment),
        }
    }

    /// The `init` subsegment, to make current while init work runs
    /// ([`FutureExt::in_context`](xray_sdk::FutureExt::in_context),
    /// [`Context::in_scope`]) or to record into.
    pub fn context(&self) -> Context {
        match &self.subsegment {
            Some(s) => s.context(),
            None => Entity::noop().context(),
        }
    }

    /// Ends the `init` subsegment (when it has not ended yet).
    pub(crate) fn end(&mut self) {
        if let Some(s) = self.subsegment.take() {
            s.end();
        }
    }

    /// Sends what was recorded under `invocation` (the facade of the first invocation), or
    /// drops it with a log line when that invocation is not recorded.
    pub(crate) fn send_under(mut self, invocation: &Context) {
        self.end();
        let Some(held) = self.held.take() else {
            return;
        };
        let n = held.send_under(invocation);
        if invocation.is_sampled() {
            tracing::debug!(
                subsegments = n,
                "X-Ray: init work sent with the first invocation"
            );
        } else if n > 0 {
            tracing::info!(
                subsegments = n,
                "X-Ray: init work dropped: the first invocation is not sampled"
            );
        }
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        if self.held.is_some() {
            self.end();
            tracing::info!("X-Ray: init work dropped: no invocation was handed it");
        }
    }
}
