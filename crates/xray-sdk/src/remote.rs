//! Calls between services, recorded the same way by every adapter whatever its HTTP library:
//! the `remote` subsegment of an outgoing call, the `X-Amzn-Trace-Id` value it sends (and the
//! W3C `traceparent` and `tracestate`, when the recorder propagates them), and how a call
//! ended (HTTP status, gRPC status, error), on the calling and on the answering side.
//!
//! Everything here takes plain strings and numbers, so adapters of any HTTP library
//! (`xray-sdk-reqwest`, the tower client layer of `xray-sdk-tower`) share it and this crate
//! depends on none.
//!
//! ```
//! use xray_sdk::Record;
//! use xray_sdk::remote::{self, CallOutcome, CallUrl, GrpcStatus, OutgoingCall};
//! # let recorder = xray_sdk::Recorder::disabled();
//! let segment = recorder.segment("checkout").begin();
//! let call = remote::begin_call(
//!     &segment,
//!     OutgoingCall {
//!         name: "inventory.internal",
//!         method: "POST",
//!         url: CallUrl::Parts {
//!             https: false,
//!             host: "inventory.internal:50051",
//!             path: "/inventory.Inventory/Reserve",
//!         },
//!     },
//! );
//! // Sent with the request (the caller's own header may be kept instead, see `ExistingHeader`).
//! let header = remote::downstream_header_bytes(&call);
//! assert!(header.starts_with(b"Root="));
//! // The answer: HTTP 200 carrying gRPC status 5 (NOT_FOUND) and its message.
//! remote::end_call(
//!     call,
//!     CallOutcome {
//!         status: Some(200),
//!         grpc: GrpcStatus::from_header(b"5", Some(b"no such item")),
//!         remote: true,
//!         ..CallOutcome::default()
//!     },
//! );
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::config::ContextMissing;
use crate::context::ContextMissingError;
use crate::handle::{Context, Entity};
use crate::header::TraceParent;
use crate::id::{EntityId, TraceId};
use crate::model::{Cause, Exception, Namespace, http_method};
use crate::record::{Patch, Record};

/// The annotation that holds a call's gRPC status code (a number), so that filter
/// expressions such as `annotation.grpc_status = 5` find the calls that ended with it.
pub const GRPC_STATUS_ANNOTATION: &str = "grpc_status";

/// What an adapter does with an `X-Amzn-Trace-Id` header that a request already carries.
///
/// When the recorder also propagates W3C headers ([`w3c_headers`]), a hand-set
/// `traceparent` counts the same: a request that carries either header is left alone under
/// [`ExistingHeader::Keep`] (the caller chose the trace), and gets all of this call's headers
/// under [`ExistingHeader::Overwrite`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExistingHeader {
    /// Send the caller's header as it is (the default). The call is still recorded, but the
    /// called service continues whatever trace the caller's header names.
    #[default]
    Keep,
    /// Replace it with this call's header.
    Overwrite,
}

impl ExistingHeader {
    /// Whether the call's own header goes out, given whether the request has one already.
    #[inline]
    pub fn writes(self, present: bool) -> bool {
        self == ExistingHeader::Overwrite || !present
    }
}

/// Applies the context-missing policy of an adapter asked to record a call while no segment
/// or subsegment is current (the call itself goes ahead, or not, as the adapter decides):
/// `AWS_XRAY_CONTEXT_MISSING` when it is set (the environment wins over code, as in the
/// official SDKs), else `configured` (the adapter's own `context_missing` setting), else
/// `LOG_ERROR`. `Err` only for `RUNTIME_ERROR`; `LOG_ERROR` logs at error level, rate-limited.
/// Which recorder is installed as the global one makes no difference.
///
/// ```
/// use xray_sdk::ContextMissing;
/// use xray_sdk::remote::on_missing_context;
///
/// # if std::env::var_os("AWS_XRAY_CONTEXT_MISSING").is_none() {
/// assert!(on_missing_context(Some(ContextMissing::IgnoreError), "my call").is_ok());
/// let refused = on_missing_context(Some(ContextMissing::RuntimeError), "my call");
/// assert!(refused.unwrap_err().to_string().contains("my call"));
/// # }
/// ```
pub fn on_missing_context(
    configured: Option<ContextMissing>,
    operation: &'static str,
) -> Result<(), ContextMissingError> {
    let policy = match crate::context::env_policy() {
        Some(from_env) => from_env,
        None => configured.unwrap_or_default(),
    };
    crate::context::apply_policy(policy, operation)
}

/// The URL of a call as `http.request.url` records it.
#[derive(Debug, Clone)]
pub enum CallUrl<'a> {
    /// `http://` or `https://`, the host (and port) and the path: joined only when recorded.
    Parts {
        /// `https://` rather than `http://`.
        https: bool,
        /// The host, with the port when it is not the scheme's default.
        host: &'a str,
        /// The path, without the query.
        path: &'a str,
    },
    /// A whole URL (another scheme, or one an HTTP library already holds joined).
    Full(Cow<'a, str>),
}

/// An outgoing call as the adapter sees it before sending it. Strings are borrowed, and
/// copied into the trace only when the call is sampled.
#[derive(Debug, Clone)]
pub struct OutgoingCall<'a> {
    /// The subsegment's name: the host called, without the port (as the Python, Java and
    /// Node SDKs name it).
    pub name: &'a str,
    /// The request method, in any case (recorded in upper case).
    pub method: &'a str,
    /// The URL, without query, fragment or credentials.
    pub url: CallUrl<'a>,
}

/// Begins the `remote` subsegment of an outgoing call under `parent`, with the name, the
/// namespace and the `http.request` method and URL, under one lock. An unsampled parent gives
/// an unsampled subsegment (an ID for the header, nothing recorded, nothing copied).
pub fn begin_call<'a>(parent: &Context, call: OutgoingCall<'a>) -> Entity {
    // Named in `init`, which runs only when sampled: an unsampled call copies nothing.
    parent.begin_subsegment_with(Cow::Borrowed("remote"), move |p| {
        p.set_name(call.name);
        p.set_namespace(Namespace::Remote);
        p.set_http_method(http_method(call.method));
        match call.url {
            CallUrl::Parts { https, host, path } => p.set_http_url_parts(https, host, path),
            CallUrl::Full(url) => p.set_http_url(url),
        }
    })
}

/// `Root=` + trace ID + `;Parent=` + entity ID + `;Sampled=` + the flag.
const FIXED_HEADER_LEN: usize = 5 + TraceId::LEN + 8 + 16 + 10;

/// The `X-Amzn-Trace-Id` value for a call made by `ctx`:
/// `Root=<trace>;Parent=<ctx's id>;Sampled=<1|0>` and the extra keys that came in with the
/// trace, the same text as [`Context::downstream_header`], written straight into a buffer of
/// the exact length (which an HTTP library's header value can take over without a copy).
pub fn downstream_header_bytes(ctx: &Context) -> Vec<u8> {
    let extra = ctx.extra_header_fields();
    let mut out = Vec::with_capacity(FIXED_HEADER_LEN + extra.map_or(0, |e| 1 + e.len()));
    out.extend_from_slice(b"Root=");
    out.extend_from_slice(&ctx.trace_id().to_bytes());
    out.extend_from_slice(b";Parent=");
    out.extend_from_slice(&ctx.id().to_bytes());
    out.extend_from_slice(if ctx.is_sampled() {
        b";Sampled=1"
    } else {
        b";Sampled=0"
    });
    if let Some(extra) = extra {
        out.push(b';');
        out.extend_from_slice(extra.as_bytes());
    }
    out
}

/// The W3C Trace Context headers of a call, for [`w3c_headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct W3cHeaders<'a> {
    /// The `traceparent` value (55 bytes): the trace, the call's entity as the parent, and
    /// the flags ([`Context::traceparent`]).
    pub traceparent: [u8; TraceParent::LEN],
    /// The `tracestate` that came in with the trace, passed on unchanged; send none when
    /// `None`.
    pub tracestate: Option<&'a str>,
}

/// The W3C headers for a call made by `ctx`, or `None` when its recorder does not propagate
/// them ([`Context::propagates_traceparent`]). HTTP adapters send them besides
/// `X-Amzn-Trace-Id`; calls to AWS services do not send them.
///
/// ```
/// use xray_sdk::{Recorder, TraceHeader};
/// use xray_sdk::header::incoming_trace;
/// use xray_sdk::remote::w3c_headers;
///
/// let recorder = Recorder::builder()
/// #   .ignore_env()
///     .propagate_traceparent(true)
///     .enabled(false)
///     .build()
///     .unwrap();
/// let tracestate: [&[u8]; 1] = [b"congo=t61rcWkgMzE"];
/// let incoming = incoming_trace(
///     None,
///     Some(b"00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"),
///     || tracestate,
/// )
/// .unwrap();
/// let segment = recorder.segment("api").header(&incoming).begin();
/// let headers = w3c_headers(&segment).unwrap();
/// assert!(headers.traceparent.starts_with(b"00-5759e988bd862e3fe1be46a994272793-"));
/// assert_eq!(headers.tracestate, Some("congo=t61rcWkgMzE"));
/// ```
pub fn w3c_headers(ctx: &Context) -> Option<W3cHeaders<'_>> {
    ctx.propagates_traceparent().then(|| W3cHeaders {
        traceparent: ctx.traceparent().to_bytes(),
        tracestate: ctx.tracestate(),
    })
}

/// How a call ended, or what part of it is known so far: recorded on the calling side's
/// subsegment or on the answering side's segment by [`CallOutcome::record`] and
/// [`end_call`].
#[derive(Debug, Default)]
pub struct CallOutcome<'a> {
    /// The HTTP status of the answer: `http.response.status`, with the flags it implies
    /// (4xx `error`, 429 `throttle` too, 5xx `fault`).
    pub status: Option<u16>,
    /// `http.response.content_length` (recorded with the status only).
    pub content_length: Option<u64>,
    /// The called service is traced and was sent this call's ID (`http.request.traced`).
    pub traced: bool,
    /// The gRPC status, from the response headers (trailers-only) or the trailers.
    pub grpc: Option<GrpcStatus<'a>>,
    /// The call failed without an answer: its cause, and `fault`.
    pub error: Option<Cause>,
    /// The outcome was reported by the service called, not by this process: the exception
    /// made from a gRPC status is marked `remote`. True on the calling side.
    pub remote: bool,
}

impl CallOutcome<'_> {
    /// Records the outcome (into a patch, or at once into a context).
    pub fn record<'p>(self, p: &impl Record<'p>) {
        if let Some(status) = self.status {
            p.set_http_response(status, self.content_length);
        }
        if self.traced {
            p.set_http_traced(true);
        }
        if let Some(grpc) = &self.grpc {
            grpc.record(p, self.remote);
        }
        if let Some(cause) = self.error {
            p.add_cause(cause);
            p.set_fault();
        }
    }
}

/// Ends a call's subsegment (or a request's segment) with its outcome, under one lock.
pub fn end_call(entity: Entity, outcome: CallOutcome<'_>) {
    entity.end_with(|p: &Patch<'_>| outcome.record(p));
}

/// The flags a status sets on a segment or subsegment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusFlags {
    /// None: the call succeeded, or the caller cancelled it.
    None,
    /// `error`: the caller's mistake (4xx-like).
    Error,
    /// `throttle` and `error`: the caller was refused for its rate (429-like).
    Throttle,
    /// `fault`: the service failed (5xx-like).
    Fault,
}

/// A gRPC status code (`grpc-status`).
///
/// ```
/// use xray_sdk::remote::{GrpcCode, StatusFlags};
/// assert_eq!(GrpcCode::parse(b"5"), Some(GrpcCode::NOT_FOUND));
/// assert_eq!(GrpcCode::NOT_FOUND.name(), "NOT_FOUND");
/// assert_eq!(GrpcCode::NOT_FOUND.flags(), StatusFlags::Error);
/// assert_eq!(GrpcCode::RESOURCE_EXHAUSTED.flags(), StatusFlags::Throttle);
/// assert_eq!(GrpcCode::INTERNAL.flags(), StatusFlags::Fault);
/// assert_eq!(GrpcCode::CANCELLED.flags(), StatusFlags::None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrpcCode(pub u32);

impl GrpcCode {
    /// 0: success.
    pub const OK: GrpcCode = GrpcCode(0);
    /// 1: cancelled, typically by the caller.
    pub const CANCELLED: GrpcCode = GrpcCode(1);
    /// 2: unknown error.
    pub const UNKNOWN: GrpcCode = GrpcCode(2);
    /// 3: the caller sent an invalid argument.
    pub const INVALID_ARGUMENT: GrpcCode = GrpcCode(3);
    /// 4: the deadline passed before the operation completed.
    pub const DEADLINE_EXCEEDED: GrpcCode = GrpcCode(4);
    /// 5: an entity was not found.
    pub const NOT_FOUND: GrpcCode = GrpcCode(5);
    /// 6: the entity already exists.
    pub const ALREADY_EXISTS: GrpcCode = GrpcCode(6);
    /// 7: the caller may not do this.
    pub const PERMISSION_DENIED: GrpcCode = GrpcCode(7);
    /// 8: a quota or rate was exhausted.
    pub const RESOURCE_EXHAUSTED: GrpcCode = GrpcCode(8);
    /// 9: the system is not in the state the operation needs.
    pub const FAILED_PRECONDITION: GrpcCode = GrpcCode(9);
    /// 10: aborted by a concurrency conflict.
    pub const ABORTED: GrpcCode = GrpcCode(10);
    /// 11: past the valid range.
    pub const OUT_OF_RANGE: GrpcCode = GrpcCode(11);
    /// 12: not implemented by the service.
    pub const UNIMPLEMENTED: GrpcCode = GrpcCode(12);
    /// 13: an internal error.
    pub const INTERNAL: GrpcCode = GrpcCode(13);
    /// 14: the service is unavailable.
    pub const UNAVAILABLE: GrpcCode = GrpcCode(14);
    /// 15: data was lost or corrupted.
    pub const DATA_LOSS: GrpcCode = GrpcCode(15);
    /// 16: the caller is not authenticated.
    pub const UNAUTHENTICATED: GrpcCode = GrpcCode(16);

    const NAMES: [&'static str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];

    /// Reads a `grpc-status` value: a decimal number (surrounding spaces ignored); `None`
    /// for anything else.
    pub fn parse(value: &[u8]) -> Option<GrpcCode> {
        let digits = value.trim_ascii();
        if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        Some(GrpcCode(n))
    }

    /// The code's name in the gRPC specification (`NOT_FOUND`); `UNKNOWN` for codes the
    /// specification does not define, which gRPC libraries read as `UNKNOWN`.
    pub fn name(self) -> &'static str {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| GrpcCode::NAMES.get(i))
            .copied()
            .unwrap_or("UNKNOWN")
    }

    /// The flags the code sets (see the project's ARCHITECTURE.md for why):
    ///
    /// - none: `OK`, and `CANCELLED` (the caller gave up; nothing failed);
    /// - `error`: `INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`, `PERMISSION_DENIED`,
    ///   `FAILED_PRECONDITION`, `ABORTED`, `OUT_OF_RANGE`, `UNAUTHENTICATED`;
    /// - `throttle` and `error`: `RESOURCE_EXHAUSTED`;
    /// - `fault`: `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`,
    ///   `DATA_LOSS`, and codes the specification does not define (read as `UNKNOWN`).
    pub fn flags(self) -> StatusFlags {
        match self.0 {
            0 | 1 => StatusFlags::None,
            3 | 5 | 6 | 7 | 9 | 10 | 11 | 16 => StatusFlags::Error,
            8 => StatusFlags::Throttle,
            _ => StatusFlags::Fault,
        }
    }
}

impl fmt::Debug for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A gRPC status as it arrives: the code and the `grpc-message` value, still
/// percent-encoded and borrowed from the headers or trailers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcStatus<'a> {
    /// The code.
    pub code: GrpcCode,
    /// The raw `grpc-message` value.
    pub message: Option<&'a [u8]>,
}

impl fmt::Debug for GrpcStatus<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcStatus")
            .field("code", &self.code)
            .field("message", &self.message.map(decode_grpc_message))
            .finish()
    }
}

impl<'a> GrpcStatus<'a> {
    /// The status in a `grpc-status` value and an optional `grpc-message` value; `None` when
    /// the code is not a number.
    pub fn from_header(status: &[u8], message: Option<&'a [u8]>) -> Option<GrpcStatus<'a>> {
        GrpcCode::parse(status).map(|code| GrpcStatus { code, message })
    }

    /// The decoded message, if any and not empty.
    pub fn message(&self) -> Option<Cow<'a, str>> {
        self.message
            .filter(|m| !m.is_empty())
            .map(decode_grpc_message)
    }

    /// Records the status: the code as the [`GRPC_STATUS_ANNOTATION`] annotation, the flags
    /// of [`GrpcCode::flags`], and, when those are not none, one exception in the `cause`
    /// typed by the code's name, with the message (marked `remote` when `remote`).
    pub fn record<'p>(&self, p: &impl Record<'p>, remote: bool) {
        p.annotate(GRPC_STATUS_ANNOTATION, self.code.0);
        match self.code.flags() {
            StatusFlags::None => return,
            StatusFlags::Error => p.set_error(),
            StatusFlags::Throttle => p.set_throttle(),
            StatusFlags::Fault => p.set_fault(),
        }
        p.add_exception(Exception {
            id: EntityId::new(),
            message: self.message().map(Cow::into_owned),
            kind: Some(self.code.name().to_owned()),
            remote,
            truncated: None,
            skipped: None,
            cause: None,
            stack: Vec::new(),
            captured: None,
        });
    }
}

/// Decodes a `grpc-message` value: `%XX` sequences are bytes of UTF-8 text (invalid
/// sequences kept as they are, invalid UTF-8 replaced). Borrowed when there is nothing to
/// decode.
pub fn decode_grpc_message(value: &[u8]) -> Cow<'_, str> {
    if !value.contains(&b'%') {
        return String::from_utf8_lossy(value);
    }
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match (
            value[i],
            value.get(i + 1).copied().and_then(hex),
            value.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::TraceHeader;
    use crate::testing::UdpCapture;
    use std::time::Duration;

    #[test]
    fn the_flags_of_every_code() {
        let none = [0, 1];
        let error = [3, 5, 6, 7, 9, 10, 11, 16];
        let fault = [2, 4, 12, 13, 14, 15, 17, 99, u32::MAX];
        for c in none {
            assert_eq!(GrpcCode(c).flags(), StatusFlags::None, "{c}");
        }
        for c in error {
            assert_eq!(GrpcCode(c).flags(), StatusFlags::Error, "{c}");
        }
        assert_eq!(GrpcCode(8).flags(), StatusFlags::Throttle);
        for c in fault {
            assert_eq!(GrpcCode(c).flags(), StatusFlags::Fault, "{c}");
        }
        assert_eq!(GrpcCode(17).name(), "UNKNOWN");
        assert_eq!(GrpcCode::UNAUTHENTICATED.name(), "UNAUTHENTICATED");
        assert_eq!(format!("{:?}", GrpcCode::ABORTED), "ABORTED(10)");
    }

    #[test]
    fn status_values_are_read_strictly() {
        assert_eq!(GrpcCode::parse(b"0"), Some(GrpcCode::OK));
        assert_eq!(GrpcCode::parse(b" 13 "), Some(GrpcCode::INTERNAL));
        assert_eq!(GrpcCode::parse(b"16"), Some(GrpcCode::UNAUTHENTICATED));
        assert_eq!(GrpcCode::parse(b"4294967295"), None);
        for bad in [&b""[..], b"-1", b"1x", b"+3", b"0x5", b" "] {
            assert_eq!(GrpcCode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn messages_are_percent_decoded() {
        assert!(matches!(
            decode_grpc_message(b"plain text"),
            Cow::Borrowed("plain text")
        ));
        assert_eq!(decode_grpc_message(b"caf%C3%A9 %25 done"), "café % done");
        // Broken escapes are kept as they are.
        assert_eq!(decode_grpc_message(b"100%"), "100%");
        assert_eq!(decode_grpc_message(b"%zz%4"), "%zz%4");
        // Invalid UTF-8 is replaced, never an error.
        assert_eq!(decode_grpc_message(b"%FF!"), "\u{FFFD}!");
        let status = GrpcStatus::from_header(b"5", Some(b"")).unwrap();
        assert_eq!(status.message(), None);
    }

    #[test]
    fn existing_header_policy() {
        assert!(ExistingHeader::Keep.writes(false));
        assert!(!ExistingHeader::Keep.writes(true));
        assert!(ExistingHeader::Overwrite.writes(true));
        assert!(ExistingHeader::Overwrite.writes(false));
    }

    fn recorder(capture: &UdpCapture) -> crate::Recorder {
        capture.recorder("remote-test")
    }

    #[test]
    fn header_bytes_match_the_core_format() {
        let capture = UdpCapture::start().unwrap();
        let recorder = recorder(&capture);
        let long_extra = format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1;Key={}",
            "v".repeat(240)
        );
        for incoming in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1;Lineage=10:1234abcd:3;Foo=bar",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Lineage=10:1234abcd:3",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            &long_extra,
        ] {
            let h = TraceHeader::parse(incoming);
            let segment = recorder.segment("t").header(&h).begin();
            let sub = segment.begin_subsegment("call");
            let bytes = downstream_header_bytes(&sub);
            assert_eq!(bytes.len(), bytes.capacity(), "{incoming}");
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                sub.downstream_header().to_string(),
                "{incoming}"
            );
        }
    }

    #[test]
    fn a_call_and_its_outcome_as_sent() {
        let capture = UdpCapture::start().unwrap();
        let recorder = recorder(&capture);
        let segment = recorder.segment("caller").begin();
        let call = begin_call(
            &segment,
            OutgoingCall {
                name: "inventory.internal",
                method: "post",
                url: CallUrl::Parts {
                    https: true,
                    host: "inventory.internal:8443",
                    path: "/inventory.Inventory/Reserve",
                },
            },
        );
        end_call(
            call,
            CallOutcome {
                status: Some(200),
                content_length: Some(12),
                traced: true,
                grpc: GrpcStatus::from_header(b"8", Some(b"slow%20down")),
                remote: true,
                error: None,
            },
        );
        let failed = begin_call(
            &segment,
            OutgoingCall {
                name: "pricing.internal",
                method: "GET",
                url: CallUrl::Full(Cow::Borrowed("gopher://pricing.internal/x")),
            },
        );
        end_call(
            failed,
            CallOutcome {
                error: Some(Cause::from_exception(Exception::new("refused", "Io"))),
                ..CallOutcome::default()
            },
        );
        segment.end();
        recorder.flush(Duration::from_secs(5)).unwrap();
        let doc = &capture.documents(1, Duration::from_secs(5))[0];
        let call = &doc["subsegments"][0];
        assert_eq!(call["name"], "inventory.internal");
        assert_eq!(call["namespace"], "remote");
        assert_eq!(call["http"]["request"]["method"], "POST");
        assert_eq!(
            call["http"]["request"]["url"],
            "https://inventory.internal:8443/inventory.Inventory/Reserve"
        );
        assert_eq!(call["http"]["request"]["traced"], true);
        assert_eq!(call["http"]["response"]["status"], 200);
        assert_eq!(call["http"]["response"]["content_length"], 12);
        assert_eq!(call["annotations"][GRPC_STATUS_ANNOTATION], 8);
        assert_eq!(call["throttle"], true);
        assert_eq!(call["error"], true);
        assert!(call.get("fault").is_none());
        let exception = &call["cause"]["exceptions"][0];
        assert_eq!(exception["type"], "RESOURCE_EXHAUSTED");
        assert_eq!(exception["message"], "slow down");
        assert_eq!(exception["remote"], true);

        let failed = &doc["subsegments"][1];
        assert_eq!(
            failed["http"]["request"]["url"],
            "gopher://pricing.internal/x"
        );
        assert_eq!(failed["fault"], true);
        assert_eq!(failed["cause"]["exceptions"][0]["message"], "refused");
        assert!(failed["http"].get("response").is_none());
    }

    #[test]
    fn ok_and_cancelled_set_no_flag_and_no_cause() {
        let capture = UdpCapture::start().unwrap();
        let recorder = recorder(&capture);
        let segment = recorder.segment("server").begin();
        for code in [b"0", b"1"] {
            let sub = segment.begin_subsegment("call");
            GrpcStatus::from_header(code, Some(b"ignored"))
                .unwrap()
                .record(&*sub, false);
        }
        segment.end();
        recorder.flush(Duration::from_secs(5)).unwrap();
        let doc = &capture.documents(1, Duration::from_secs(5))[0];
        for (i, code) in [0, 1].into_iter().enumerate() {
            let sub = &doc["subsegments"][i];
            assert_eq!(sub["annotations"][GRPC_STATUS_ANNOTATION], code);
            for flag in ["error", "throttle", "fault", "cause"] {
                assert!(sub.get(flag).is_none(), "{code} {flag}: {sub}");
            }
        }
    }
}
