//! One invocation: Lambda's segment as a facade and the subsegment under it that covers the
//! handler, with the trace header found for it.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lambda_runtime::Diagnostic;
use xray_sdk::header::incoming_trace;
use xray_sdk::{Context, Entity, Exception, Patch, Record, Recorder, TraceHeader};

use crate::config;
use crate::init::Init;

/// An event's W3C headers, when it has any: the `traceparent` value and the `tracestate`
/// lines.
pub(crate) type W3cIn<'a> = Option<(Option<&'a [u8]>, Vec<&'a [u8]>)>;

/// What every invocation of one layer shares.
pub(crate) struct Settings {
    pub(crate) recorder: Recorder,
    /// The invocation subsegment's name; the function's name when `None`.
    pub(crate) name: Option<Arc<str>>,
    /// Sequential runtime: `_X_AMZN_TRACE_ID` may stand in for a missing context header.
    pub(crate) env_fallback: bool,
    init: Mutex<Option<Init>>,
    has_init: AtomicBool,
}

impl Settings {
    pub(crate) fn new(recorder: Recorder) -> Settings {
        Settings {
            recorder,
            name: None,
            env_fallback: config::max_concurrency() <= 1,
            init: Mutex::new(None),
            has_init: AtomicBool::new(false),
        }
    }

    /// The same settings without the init work (which stays with the original).
    pub(crate) fn copy(&self) -> Settings {
        Settings {
            recorder: self.recorder.clone(),
            name: self.name.clone(),
            env_fallback: self.env_fallback,
            init: Mutex::new(None),
            has_init: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_init(&mut self, mut init: Init) {
        init.end();
        *self.init.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(init);
        *self.has_init.get_mut() = true;
    }

    /// The invocation's trace header: the runtime's context field, or (sequential runtimes
    /// only) `_X_AMZN_TRACE_ID`; without a valid one, the W3C `traceparent` of the event
    /// (an HTTP request's), with its `tracestate` ([`incoming_trace`]'s rules).
    pub(crate) fn header(&self, context: &lambda_runtime::Context, w3c: W3cIn<'_>) -> TraceHeader {
        let from_env;
        let xray = match context.xray_trace_id.as_deref() {
            Some(value) => Some(value),
            None if self.env_fallback => {
                from_env = std::env::var(config::env::TRACE_ID).ok();
                from_env.as_deref()
            }
            None => None,
        };
        let (traceparent, tracestate) = w3c.unwrap_or_default();
        match incoming_trace(xray.map(str::as_bytes), traceparent, || tracestate) {
            Some(header) => header,
            None => {
                tracing::debug!(
                    request_id = %context.request_id,
                    "invocation without a trace header: not recorded"
                );
                TraceHeader::default()
            }
        }
    }

    /// Begins the invocation: the facade, the first invocation's init work, and the
    /// invocation subsegment with `more` recorded on it.
    pub(crate) fn begin<'a>(
        &'a self,
        context: &'a lambda_runtime::Context,
        w3c: W3cIn<'_>,
        more: impl FnOnce(&Patch<'a>),
    ) -> Invocation {
        let facade = self.recorder.facade(&self.header(context, w3c));
        if self.has_init.load(Ordering::Acquire) {
            self.hand_over_init(&facade);
        }
        let function = context.env_config.function_name.as_str();
        let name = match &self.name {
            Some(n) => n,
            None if function.is_empty() => "lambda-function",
            None => function,
        };
        let subsegment = facade.begin_subsegment_with(name, |p| {
            describe_function(p, context);
            more(p);
        });
        Invocation { facade, subsegment }
    }

    fn hand_over_init(&self, facade: &Context) {
        let init = self
            .init
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.has_init.store(false, Ordering::Release);
        if let Some(init) = init {
            init.send_under(facade);
        }
    }
}

/// The `aws` block of the invocation subsegment: the function as Lambda's own segment names
/// it (`function_arn`, `resource_names`, `account_id`) and the invocation's request ID.
fn describe_function<'a>(p: &Patch<'a>, context: &'a lambda_runtime::Context) {
    p.set_aws_request_id(context.request_id.as_str());
    let function = context.env_config.function_name.as_str();
    if !function.is_empty() {
        p.set_aws_field("resource_names", [function]);
    }
    let arn = context.invoked_function_arn.as_str();
    if arn.starts_with("arn:") {
        p.set_aws_field("function_arn", arn);
        if let Some(account) = arn.split(':').nth(4).filter(|a| !a.is_empty()) {
            p.set_aws_field("account_id", account);
        }
    }
}

/// An invocation in progress: its facade and its subsegment, both ended by one of the
/// methods below (or when dropped, for an invocation whose future was dropped).
pub(crate) struct Invocation {
    facade: Entity,
    subsegment: Entity,
}

impl Invocation {
    /// The invocation subsegment: the handler's current context.
    pub(crate) fn context(&self) -> Context {
        self.subsegment.context()
    }

    /// Ends the invocation subsegment with `last` recorded, which sends it.
    pub(crate) fn succeed(self, last: impl FnOnce(&Patch<'_>)) {
        let Invocation { facade, subsegment } = self;
        subsegment.end_with(last);
        facade.end();
    }

    /// The handler returned an error: a fault with the error, as the runtime reports it.
    pub(crate) fn fail(self, error: &Diagnostic) {
        let Invocation { facade, subsegment } = self;
        if subsegment.is_sampled() {
            let exception = Exception::new(error.error_message.as_str(), error.error_type.as_str());
            subsegment.end_with(|p| {
                p.set_fault();
                p.add_exception(exception);
            });
        }
        facade.end();
    }

    /// The handler panicked: a fault with the panic's message.
    pub(crate) fn panicked(self, payload: &(dyn Any + Send)) {
        let Invocation { facade, subsegment } = self;
        if subsegment.is_sampled() {
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("the handler panicked");
            let exception = Exception::new(message, "panic");
            subsegment.end_with(|p| {
                p.set_fault();
                p.add_exception(exception);
            });
        }
        facade.end();
    }
}
