//! X-Ray trace IDs in log lines, for joining CloudWatch Logs with X-Ray traces.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use xray_sdk::{EntityId, TraceId, context};

/// The key the official X-Ray SDKs use for the correlation ID in logs.
pub const LOG_CORRELATION_KEY: &str = "AWS-XRAY-TRACE-ID";

fn current_ids() -> Option<(TraceId, EntityId)> {
    context::with_current(|c| c.map(|c| (c.trace_id(), c.id())))
}

/// The current X-Ray trace ID and segment (or subsegment) ID as `<trace id>@<entity id>`,
/// the value the official SDKs log under [`LOG_CORRELATION_KEY`]; `None` outside any X-Ray
/// context. Inside a span recorded by [`XRayTracingLayer`](crate::XRayTracingLayer) the entity is the
/// span's subsegment.
///
/// ```
/// # use xray_sdk::Recorder;
/// assert_eq!(xray_sdk_tracing::log_correlation_id(), None);
/// let segment = Recorder::disabled().segment("svc").begin();
/// segment.in_scope(|| {
///     let id = xray_sdk_tracing::log_correlation_id().unwrap();
///     assert_eq!(id, format!("{}@{}", segment.trace_id(), segment.id()));
/// });
/// ```
pub fn log_correlation_id() -> Option<String> {
    current_ids().map(|(trace, id)| format!("{trace}@{id}"))
}

/// How [`XRayFormat`] adds the ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// `AWS-XRAY-TRACE-ID: <trace>@<entity> ` before the inner formatter's line.
    Prefix,
    /// A first `"AWS-XRAY-TRACE-ID":"<trace>@<entity>"` member in the inner formatter's JSON
    /// object.
    JsonField,
}

/// A [`FormatEvent`] wrapper that adds the current X-Ray correlation ID to every log line
/// written inside an X-Ray context (lines outside one are left as the inner formatter
/// writes them).
///
/// Text logs get a prefix, `AWS-XRAY-TRACE-ID: 1-5759e988-bd862e3fe1be46a994272793@53995c3f42cd8ad8 `:
///
/// ```
/// use tracing_subscriber::{fmt, prelude::*};
/// use xray_sdk_tracing::{XRayFormat, XRayTracingLayer};
///
/// let subscriber = tracing_subscriber::registry()
///     .with(XRayTracingLayer::new())
///     .with(fmt::layer().event_format(XRayFormat::new(fmt::format())));
/// # drop(subscriber);
/// ```
///
/// JSON logs (tracing-subscriber's `json` feature, or any formatter that writes one JSON
/// object per line) get a member instead, so CloudWatch Logs Insights can filter on it:
/// `XRayFormat::json(fmt::format().json())` writes
/// `{"AWS-XRAY-TRACE-ID":"1-…@…","timestamp":…}`.
#[derive(Debug, Clone)]
pub struct XRayFormat<F> {
    inner: F,
    placement: Placement,
}

impl<F> XRayFormat<F> {
    /// Prefixes the inner formatter's lines with `AWS-XRAY-TRACE-ID: <trace>@<entity> `.
    pub fn new(inner: F) -> Self {
        XRayFormat {
            inner,
            placement: Placement::Prefix,
        }
    }

    /// Adds `"AWS-XRAY-TRACE-ID":"<trace>@<entity>"` as the first member of the JSON object
    /// the inner formatter writes. Output that is not a JSON object is prefixed as with
    /// [`XRayFormat::new`].
    pub fn json(inner: F) -> Self {
        XRayFormat {
            inner,
            placement: Placement::JsonField,
        }
    }

    /// The wrapped formatter.
    pub fn get_ref(&self) -> &F {
        &self.inner
    }
}

impl<S, N, F> FormatEvent<S, N> for XRayFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace, id)) = current_ids() else {
            return self.inner.format_event(ctx, writer, event);
        };
        if self.placement == Placement::JsonField {
            let mut line = String::with_capacity(256);
            self.inner
                .format_event(ctx, Writer::new(&mut line), event)?;
            if let Some(rest) = line.strip_prefix('{') {
                let sep = if rest.trim_start().starts_with('}') {
                    ""
                } else {
                    ","
                };
                return write!(
                    writer,
                    "{{\"{LOG_CORRELATION_KEY}\":\"{trace}@{id}\"{sep}{rest}"
                );
            }
            write!(writer, "{LOG_CORRELATION_KEY}: {trace}@{id} ")?;
            return writer.write_str(&line);
        }
        write!(writer, "{LOG_CORRELATION_KEY}: {trace}@{id} ")?;
        self.inner.format_event(ctx, writer, event)
    }
}
