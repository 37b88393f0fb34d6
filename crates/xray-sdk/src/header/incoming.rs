//! The trace a request continues, picked from its headers: `X-Amzn-Trace-Id` first, else the
//! W3C `traceparent` (with its `tracestate`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::TraceHeader;
use super::w3c::{TraceParent, normalize_tracestate};
use crate::id::TraceId;

/// Oldest trace ID time, in seconds before now, that counts as recent: the window of the
/// OpenTelemetry collector's X-Ray exporter (28 days), inside the service's own ("too far in
/// the past" is rejected; about 30 days).
const MAX_AGE_SECS: u64 = 28 * 24 * 60 * 60;

/// How far ahead of now a trace ID's time may be (clock skew), as in that exporter.
const MAX_AHEAD_SECS: u64 = 5 * 60;

/// Whether the first 8 hex digits of `trace_id`, read as epoch seconds, are a recent time
/// (from 28 days ago to 5 minutes ahead). X-Ray, outside CloudWatch Transaction Search,
/// rejects trace IDs that are not: the case of a random W3C trace ID (see
/// [`incoming_trace`]).
pub fn is_recent_epoch(trace_id: TraceId) -> bool {
    is_recent_at(trace_id.epoch_seconds(), crate::clock::epoch_seconds())
}

fn is_recent_at(epoch: u32, now: u64) -> bool {
    let epoch = u64::from(epoch);
    epoch + MAX_AGE_SECS >= now && epoch <= now + MAX_AHEAD_SECS
}

/// The trace a request continues, from the values of its trace headers: `None` when it
/// has neither (the request starts a new trace).
///
/// - **`X-Amzn-Trace-Id` first.** A header with a valid `Root` is the trace (parsed as
///   [`TraceHeader::parse`] does). If the request also has a valid `traceparent` of the same
///   trace (a caller that sends both), its `tracestate` and random-trace-id flag are kept
///   with it; a `traceparent` of another trace is ignored.
/// - **Else `traceparent`**, when it is valid ([`TraceParent::parse_bytes`]): its trace ID,
///   its parent ID as `Parent`, `Sampled=1` or `Sampled=0` from its sampled flag (a decision,
///   which the sampler does not override), and the `tracestate` (read only then, from the
///   closure, as the specification asks: one list over all its lines) kept to pass on. A
///   trace ID whose first 8 hex digits are not a recent time ([`is_recent_epoch`]) is
///   continued all the same: another ID would break the trace. X-Ray outside Transaction
///   Search rejects such IDs, which is logged once per process, at warn level.
/// - **Else** the `X-Amzn-Trace-Id` header as it is (without a valid `Root`; its `Sampled`
///   decision, if any, still holds for the new trace).
///
/// An invalid `traceparent` is ignored as the specification says (logged at debug level,
/// rate-limited); it is never an error for the caller.
///
/// ```
/// use xray_sdk::SamplingFlag;
/// use xray_sdk::header::incoming_trace;
///
/// let traceparent = b"00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00";
/// let tracestate: [&[u8]; 1] = [b"congo=t61rcWkgMzE"];
/// let trace = incoming_trace(None, Some(traceparent), || tracestate).unwrap();
/// assert_eq!(trace.root().unwrap().to_string(), "1-5759e988-bd862e3fe1be46a994272793");
/// assert_eq!(trace.parent().unwrap().to_string(), "53995c3f42cd8ad8");
/// assert_eq!(trace.sampled(), SamplingFlag::NotSampled);
/// assert_eq!(trace.tracestate(), Some("congo=t61rcWkgMzE"));
///
/// // The X-Ray header wins.
/// let xray = b"Root=1-67891233-abcdef012345678912345678;Sampled=1";
/// let trace = incoming_trace(Some(xray), Some(traceparent), || tracestate).unwrap();
/// assert_eq!(trace.root().unwrap().to_string(), "1-67891233-abcdef012345678912345678");
/// assert_eq!(trace.tracestate(), None);
/// ```
pub fn incoming_trace<'a, I>(
    x_amzn_trace_id: Option<&[u8]>,
    traceparent: Option<&[u8]>,
    tracestate: impl FnOnce() -> I,
) -> Option<TraceHeader>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let xray = x_amzn_trace_id.map(parse_xray);
    if let Some(root) = xray.as_ref().and_then(TraceHeader::root) {
        let same_trace = traceparent
            .and_then(|v| TraceParent::parse_bytes(v).ok())
            .filter(|tp| tp.trace_id() == root);
        return match (xray, same_trace) {
            (Some(header), Some(tp)) => Some(with_w3c_state(header, &tp, tracestate)),
            (header, _) => header,
        };
    }
    match traceparent.map(TraceParent::parse_bytes) {
        Some(Ok(tp)) => {
            if !is_recent_epoch(tp.trace_id()) {
                warn_not_recent(tp.trace_id());
            }
            Some(with_w3c_state(tp.to_trace_header(), &tp, tracestate))
        }
        Some(Err(error)) => {
            log_invalid(traceparent.unwrap_or_default(), &error);
            xray
        }
        None => xray,
    }
}

/// The X-Ray header, read as text; bytes that are not UTF-8 spoil only the part they are in.
/// The form every SDK sends is read from the bytes as they are (it is ASCII), without a UTF-8
/// check first.
fn parse_xray(value: &[u8]) -> TraceHeader {
    if let Some(header) = TraceHeader::parse_canonical(value) {
        return header;
    }
    match std::str::from_utf8(value) {
        Ok(s) => TraceHeader::parse_lenient(s),
        Err(_) => TraceHeader::parse_lenient(&String::from_utf8_lossy(value)),
    }
}

/// `header` with the `tracestate` and the random-trace-id flag of `tp`.
fn with_w3c_state<'a, I>(
    header: TraceHeader,
    tp: &TraceParent,
    tracestate: impl FnOnce() -> I,
) -> TraceHeader
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let state = normalize_tracestate(tracestate()).map(String::into_boxed_str);
    let random = tp.random_trace_id();
    if state.is_none() && !random {
        return header;
    }
    header.with_changed(|c| {
        c.tracestate = state;
        c.random = random;
    })
}

#[cold]
fn warn_not_recent(trace_id: TraceId) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    tracing::warn!(
        %trace_id,
        "continuing a trace from a W3C traceparent whose trace ID does not start with a recent \
         time (its first 8 hex digits are not epoch seconds of the last 28 days): X-Ray \
         rejects such trace IDs unless CloudWatch Transaction Search is enabled. The trace is \
         continued anyway, since another ID would break it. Logged once per process."
    );
}

#[cold]
fn log_invalid(value: &[u8], error: &super::TraceParentError) {
    // Rate-limited: the 1st, 2nd, 4th, 8th, ... occurrence.
    static INVALID: AtomicU64 = AtomicU64::new(0);
    let n = INVALID.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        let shown = String::from_utf8_lossy(&value[..value.len().min(128)]);
        tracing::debug!(
            value = %shown.escape_debug(),
            %error,
            occurrences = n,
            "ignoring an invalid traceparent header"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SamplingFlag;

    const TP: &[u8] = b"00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";
    const XRAY: &[u8] =
        b"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=1111111111111111;Sampled=0";

    fn none() -> [&'static [u8]; 0] {
        []
    }

    #[test]
    fn recent_window() {
        let now = 1_800_000_000u64;
        let at = |secs: u64| u32::try_from(secs).unwrap();
        assert!(is_recent_at(at(now), now));
        assert!(is_recent_at(at(now - MAX_AGE_SECS), now));
        assert!(!is_recent_at(at(now - MAX_AGE_SECS - 1), now));
        assert!(is_recent_at(at(now + MAX_AHEAD_SECS), now));
        assert!(!is_recent_at(at(now + MAX_AHEAD_SECS + 1), now));
        assert!(!is_recent_at(0, now));
        assert!(!is_recent_at(u32::MAX, now));
        assert!(is_recent_epoch(TraceId::new()));
    }

    #[test]
    fn neither_header_is_no_trace() {
        assert_eq!(incoming_trace(None, None, none), None);
    }

    #[test]
    fn traceparent_alone_is_the_trace() {
        let h = incoming_trace(None, Some(TP), || [&b"a=1"[..], b"b=2"]).unwrap();
        assert_eq!(
            h.to_string(),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        );
        assert_eq!(h.tracestate(), Some("a=1,b=2"));
        let unsampled = b"00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00";
        let h = incoming_trace(None, Some(unsampled), none).unwrap();
        assert_eq!(h.sampled(), SamplingFlag::NotSampled);
        assert_eq!(h.tracestate(), None);
        assert!(
            h.carried().is_none(),
            "nothing allocated for nothing carried"
        );
    }

    #[test]
    fn xray_wins_and_keeps_the_state_of_the_same_trace_only() {
        let h = incoming_trace(Some(XRAY), Some(TP), || [&b"a=1"[..]]).unwrap();
        assert_eq!(h.parent().unwrap().to_string(), "1111111111111111");
        assert_eq!(h.sampled(), SamplingFlag::NotSampled);
        assert_eq!(h.tracestate(), Some("a=1"));
        let other = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
        let read = std::cell::Cell::new(false);
        let h = incoming_trace(Some(XRAY), Some(other), || {
            read.set(true);
            [&b"a=1"[..]]
        })
        .unwrap();
        assert_eq!(h.tracestate(), None);
        assert!(!read.get(), "tracestate of another trace is not even read");
        assert_eq!(TraceParent::from_trace_header(&h).unwrap().flags(), 0);
    }

    #[test]
    fn invalid_traceparent_falls_back_to_the_xray_header_as_it_is() {
        let bad = b"ff-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";
        assert_eq!(incoming_trace(None, Some(bad), none), None);
        let rootless = b"Root=garbage;Sampled=0";
        let h = incoming_trace(Some(rootless), Some(bad), none).unwrap();
        assert_eq!(h.root(), None);
        assert_eq!(h.sampled(), SamplingFlag::NotSampled);
        // A rootless X-Ray header gives way to a valid traceparent.
        let h = incoming_trace(Some(rootless), Some(TP), none).unwrap();
        assert_eq!(h.sampled(), SamplingFlag::Sampled);
        assert_eq!(h.parent().unwrap().to_string(), "53995c3f42cd8ad8");
    }

    #[test]
    fn random_flag_is_carried() {
        let tp = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02";
        let h = incoming_trace(None, Some(tp), none).unwrap();
        assert_eq!(h.sampled(), SamplingFlag::NotSampled);
        let out = TraceParent::from_trace_header(&h).unwrap();
        assert_eq!(
            out.to_string(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02"
        );
    }
}
