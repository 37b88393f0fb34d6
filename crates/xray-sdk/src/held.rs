//! [`HeldFacade`]: work recorded before the trace it belongs to is known, such as what a
//! function does during AWS Lambda's init phase, before its first invocation brings a trace.

use std::fmt;
use std::sync::Arc;

use crate::emitter::{Emitter, Held, Sink};
use crate::handle::{Context, Entity};
use crate::record::sealed::Sealed as _;
use crate::segment_builder::{Source, held_facade};

/// A facade whose trace is not known yet. Subsegments begun under it are recorded as usual
/// but held in memory, not sent; [`HeldFacade::send_under`] later moves them into a trace,
/// under an entity of it, and sends them, or drops them when that trace is not recorded.
///
/// Until then they carry a trace ID of their own: a downstream call made under them sends
/// that ID on, and the services it reaches record their part in that trace.
///
/// ```
/// use xray_sdk::{Recorder, TraceHeader};
/// # let recorder = Recorder::disabled();
/// let init = recorder.held_facade();
/// init.context().begin_subsegment("load-config").end(); // held
///
/// let invocation = recorder.facade(&TraceHeader::parse(
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
/// ));
/// let handed_over = init.send_under(&invocation); // sent under the invocation's parent
/// # assert_eq!(handed_over, 0); // the disabled recorder recorded nothing
/// ```
pub struct HeldFacade {
    facade: Entity,
    held: Arc<Sink>,
    target: Arc<Sink>,
}

impl fmt::Debug for HeldFacade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HeldFacade").field(&*self.facade).finish()
    }
}

impl HeldFacade {
    pub(crate) fn new(source: &Source) -> HeldFacade {
        // Never streamed: the facade's work goes out in one batch once it has all ended.
        let held = Arc::new(Sink {
            emitter: Emitter::held(),
            streaming_threshold: u32::MAX,
        });
        HeldFacade {
            facade: held_facade(source, Arc::clone(&held)),
            held,
            target: Arc::clone(&source.sink),
        }
    }

    /// A handle to record under the facade (make it current with
    /// [`FutureExt::in_context`](crate::FutureExt::in_context) or [`Context::enter`]).
    pub fn context(&self) -> Context {
        self.facade.context()
    }

    /// Ends the facade and moves its subsegments into `parent`'s trace, as independent
    /// subsegments under `parent`'s ID, sent as the recorder sends (those still open follow
    /// when they end). When `parent` is not recorded (an unsampled trace) they are dropped.
    /// Returns how many subsegments had ended by now and were sent or dropped, so the caller
    /// can say which.
    pub fn send_under(self, parent: &Context) -> usize {
        let HeldFacade {
            facade,
            held,
            target,
        } = self;
        let from = facade.id();
        facade.end();
        let to = parent.records().then(|| (parent.trace_id(), parent.id()));
        let next = match to {
            Some((trace_id, to)) => Held::Forward {
                trace_id,
                from,
                to,
                sink: Arc::clone(&target),
            },
            None => Held::Discard,
        };
        let mut count = 0;
        for mut batch in held.emitter.release(next) {
            count += batch.entities.len() - usize::from(batch.is_segment);
            if let Some((trace_id, to)) = to {
                batch.move_under(trace_id, from, to);
                target.emitter.submit(batch);
            }
        }
        count
    }
}
