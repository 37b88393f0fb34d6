//! The per-request work shared by the service, the response future and the body: opening the
//! segment, making it current, recording the request, the response (HTTP and gRPC status, an
//! [`ErrorCause`]) and panics.

use std::any::Any;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use xray_sdk::header::{HEADER_NAME_LOWER, TRACEPARENT, TRACESTATE, incoming_trace};
use xray_sdk::remote::{CallOutcome, GRPC_STATUS_ANNOTATION, GrpcCode, GrpcStatus, StatusFlags};
use xray_sdk::{
    Context, Entity, Patch, Record, SamplingFlag, SamplingRequest, TraceHeader, TraceId,
};

use crate::cause::ErrorCause;
use crate::config::Config;
use crate::grpc;

pub(crate) const TRACE_HEADER: HeaderName = HeaderName::from_static(HEADER_NAME_LOWER);
pub(crate) const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(TRACEPARENT);
pub(crate) const TRACESTATE_HEADER: HeaderName = HeaderName::from_static(TRACESTATE);
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// An open segment and the slot its context is swapped through while it is current.
#[derive(Debug)]
pub(crate) struct Recording {
    pub(crate) segment: Entity,
    /// Holds the segment's context while it is *not* current; while it is, holds whatever was
    /// current before.
    current: Option<Context>,
    /// The request is a gRPC call (known for every request: a panic is answered in kind).
    pub(crate) grpc: bool,
    /// A recorded gRPC call whose status has not been seen yet.
    grpc_pending: bool,
    /// The layer caught a panic of this request and recorded it.
    panicked: bool,
}

impl Recording {
    /// Makes the segment current until the guard is dropped.
    pub(crate) fn enter(&mut self) -> Entered<'_> {
        Entered::swap(&mut self.current)
    }

    /// Records a panic the layer caught (`fault`, and the panic as the cause, with its place
    /// when the hook noted it), before the layer answers in its place.
    pub(crate) fn record_panic(&mut self, payload: &(dyn Any + Send)) {
        self.panicked = true;
        if self.segment.is_sampled() {
            let exception = xray_sdk::panic::exception(payload);
            // Then taken, so that a failed response later does not record it again.
            let _ = xray_sdk::panic::take_for_segment(self.segment.id());
            self.segment.update(|p| {
                p.add_exception(exception);
                p.set_fault();
            });
        }
    }

    /// Records a panic while the body streams (the response is already on its way) and ends
    /// the segment, before the panic is resumed.
    pub(crate) fn end_with_panic(self, payload: &(dyn Any + Send)) {
        let exception = xray_sdk::panic::exception(payload);
        self.into_segment().end_with(|e| {
            e.add_exception(exception);
            e.set_fault();
        });
    }

    /// Ends the segment at the trailers that close the body: the gRPC status, when it was
    /// still to come, is in them.
    pub(crate) fn end_with_trailers(self, trailers: Option<&HeaderMap>) {
        let status = trailers
            .filter(|_| self.grpc_pending)
            .and_then(grpc::status_in);
        let segment = self.into_segment();
        match status {
            Some(status) => {
                let noted = failed(status.code.flags())
                    .then(|| xray_sdk::panic::take_for_segment(segment.id()))
                    .flatten();
                segment.end_with(|p| {
                    if let Some(noted) = noted {
                        p.add_exception(noted);
                    }
                    status.record(p, false);
                });
            }
            None => segment.end(),
        }
    }

    /// Ends the segment of a request whose response (future or body) was dropped before it
    /// completed: the client went away. A gRPC call without a status yet is a cancelled call
    /// (`CANCELLED`, which sets no flag).
    pub(crate) fn end_dropped(self) {
        let grpc_pending = self.grpc_pending;
        let segment = self.into_segment();
        if grpc_pending {
            segment.end_with(|p| {
                p.annotate(GRPC_STATUS_ANNOTATION, GrpcCode::CANCELLED.0);
            });
        } else {
            segment.end();
        }
    }

    /// The segment, to end, with the recording's own handle to it let go first: the guard
    /// then holds the trace's last handle, and the core can keep the trace's allocation for
    /// this thread's next request.
    pub(crate) fn into_segment(self) -> Entity {
        let Recording {
            segment, current, ..
        } = self;
        drop(current);
        segment
    }
}

/// Whether a status with these flags tells that the request failed on this side (where a
/// panic may be the cause).
fn failed(flags: StatusFlags) -> bool {
    flags == StatusFlags::Fault
}

/// Restores the previous current context when dropped (also while unwinding).
pub(crate) struct Entered<'a> {
    slot: &'a mut Option<Context>,
}

impl<'a> Entered<'a> {
    /// Makes the context in `slot` current (`slot` then holds what was current) until the
    /// guard is dropped.
    pub(crate) fn swap(slot: &'a mut Option<Context>) -> Self {
        xray_sdk::context::swap_current(slot);
        Entered { slot }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        xray_sdk::context::swap_current(self.slot);
    }
}

/// What the response future needs to know besides the segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponseHeaderMode {
    /// Add the header at all.
    pub(crate) enabled: bool,
    /// The caller sent `Sampled=?`: tell it the decision.
    pub(crate) echo_decision: bool,
}

/// Opens the segment for a request: continues the incoming trace, asks the sampler when the
/// caller left the decision to us, and records the request when sampled.
pub(crate) fn begin<B>(config: &Config, req: &Request<B>) -> (Recording, ResponseHeaderMode) {
    let found = FirstHeaders::find(req.headers());
    let incoming = incoming(req.headers(), &found);
    // A caller that sent `Sampled=1` or `0` has decided: the sampler is not asked, and the
    // host (a hashed look-up) and the name are needed only if the request is recorded.
    let decided = incoming
        .as_ref()
        .is_some_and(|h| h.sampled().decision().is_some());
    let host_and_name = || {
        let host = host(req, found.host);
        (host, config.naming.name_for(host))
    };
    let asked = (!decided).then(host_and_name);
    // The segment's name, borrowed: the core copies it only when the request is sampled.
    // When the caller decided, the name (and the host it may depend on) is worked out only
    // if the request is recorded, in `init`; until then a valid placeholder, which the core
    // keeps as it is (an empty one would go through sanitizing).
    let mut builder = config
        .recorder
        .segment(Cow::Borrowed(asked.map_or("segment", |(_, name)| name)));
    if let Some((host, name)) = asked {
        builder = builder.sampling_request(SamplingRequest {
            service_name: Some(name),
            // The service type (the recorder's origin) is filled in by the core, and only
            // when the sampler is asked.
            host,
            method: Some(req.method().as_str()),
            url_path: Some(req.uri().path()),
            ..SamplingRequest::default()
        });
    }
    if let Some(h) = &incoming {
        builder = builder.header(h);
    }
    // Runs only when sampled, before the segment is shared: no lock, no copies otherwise.
    let segment = builder.begin_with(|e| {
        let host = match asked {
            // Named by the builder already.
            Some((host, _)) => host,
            None => {
                let (host, name) = host_and_name();
                e.set_name(name);
                host
            }
        };
        request_block(req, host, found.request()).record(e);
    });
    let mode = ResponseHeaderMode {
        enabled: config.response_header,
        echo_decision: incoming
            .as_ref()
            .is_some_and(|h| h.sampled() == SamplingFlag::Requested),
    };
    // gRPC calls are always POSTs: other requests skip the header look-up.
    let grpc = req.method() == http::Method::POST && grpc::is_grpc(req.headers());
    let current = Some(segment.context());
    let recording = Recording {
        grpc_pending: grpc && segment.is_sampled(),
        segment,
        current,
        grpc,
        panicked: false,
    };
    (recording, mode)
}

/// The trace the request continues: `X-Amzn-Trace-Id` first, else `traceparent` (with its
/// `tracestate`), as [`incoming_trace`] picks it.
fn incoming(headers: &HeaderMap, found: &FirstHeaders<'_>) -> Option<TraceHeader> {
    // Bytes that are not visible ASCII (say, in a `Lineage` value) spoil only the part they
    // are in: the parser drops such parts and keeps the rest, so the header is read as text
    // rather than refused whole.
    let (xray, traceparent) = (found.xray, found.traceparent);
    let header = incoming_trace(
        xray.map(HeaderValue::as_bytes),
        traceparent.map(HeaderValue::as_bytes),
        || {
            headers
                .get_all(TRACESTATE_HEADER)
                .into_iter()
                .map(HeaderValue::as_bytes)
        },
    );
    if let Some(value) = xray
        && header.as_ref().is_none_or(|h| h.root().is_none())
    {
        // Never an error for the client: the request starts a new trace. Logged at debug
        // level, rate-limited (1st, 2nd, 4th, 8th, ... occurrence).
        static INVALID: AtomicU64 = AtomicU64::new(0);
        let n = INVALID.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::debug!(
                value = ?value,
                occurrences = n,
                "X-Amzn-Trace-Id has no valid Root; starting a new trace"
            );
        }
    }
    header
}

/// Requests with at most this many header names are searched for the headers every request
/// reads in one pass; larger ones through hashed look-ups.
///
/// Hashing a custom name (byte by byte) and probing costs about as much as comparing ~20
/// names, and a request needs two such look-ups (`X-Amzn-Trace-Id`, then `traceparent`,
/// which the rule reads whenever the first gives a trace or none) besides the `Host` one (a
/// standard name, hashed cheaply but probed all the same); past this size, the look-ups cost
/// less.
const SCAN_LIMIT: usize = 32;

/// The first `X-Amzn-Trace-Id`, `traceparent` and `Host` values (as `HeaderMap::get` gives
/// them), which every request reads, and, when the same pass found them, the headers a
/// recorded request reads.
#[derive(Debug, Default, PartialEq)]
struct FirstHeaders<'a> {
    xray: Option<&'a HeaderValue>,
    traceparent: Option<&'a HeaderValue>,
    host: Option<&'a HeaderValue>,
    request: RequestHeaders<'a>,
    /// `request` was searched for: false when the request has too many headers for one
    /// pass (they are then searched for only if the request is recorded).
    scanned: bool,
}

impl<'a> FirstHeaders<'a> {
    #[inline]
    fn find(headers: &'a HeaderMap) -> Self {
        if headers.keys_len() > SCAN_LIMIT {
            return FirstHeaders {
                xray: headers.get(TRACE_HEADER),
                traceparent: headers.get(TRACEPARENT_HEADER),
                host: headers.get(header::HOST),
                request: RequestHeaders::default(),
                scanned: false,
            };
        }
        let (mut xray, mut traceparent, mut host) = (None, None, None);
        let mut request = RequestHeaders::default();
        // The first line of a repeated header, as `HeaderMap::get` would give. Standard names
        // first: they compare cheaply.
        for (name, value) in headers {
            if *name == header::HOST {
                host.get_or_insert(value);
            } else if *name == header::USER_AGENT {
                request.user_agent.get_or_insert(value);
            } else if *name == TRACE_HEADER {
                xray.get_or_insert(value);
            } else if *name == TRACEPARENT_HEADER {
                traceparent.get_or_insert(value);
            } else if *name == X_FORWARDED_FOR {
                request.forwarded_for.get_or_insert(value);
            } else if *name == X_FORWARDED_PROTO {
                request.forwarded_proto.get_or_insert(value);
            }
        }
        FirstHeaders {
            xray,
            traceparent,
            host,
            request,
            scanned: true,
        }
    }

    /// The headers of the request block, if this pass found them.
    fn request(&self) -> Option<RequestHeaders<'a>> {
        self.scanned.then_some(self.request)
    }
}

/// The host the client addressed: the `Host` header (`host_header`, the request's first),
/// or the URI's authority (HTTP/2, or an absolute-form request line) without any
/// `user:password@`.
fn host<'a, B>(req: &'a Request<B>, host_header: Option<&'a HeaderValue>) -> Option<&'a str> {
    match host_header.map(HeaderValue::to_str) {
        Some(Ok(host)) if !host.is_empty() => Some(host),
        _ => authority_host(req.uri()),
    }
}

/// The host and port of an absolute URI, without any `user:password@`. Out of line: HTTP/1.1
/// requests carry a `Host` header.
#[inline(never)]
fn authority_host(uri: &http::Uri) -> Option<&str> {
    let authority = uri.authority()?.as_str();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then_some(host)
}

/// The first element of a comma-separated header value, if not empty.
fn first_element(value: &HeaderValue) -> Option<&str> {
    let first = value.to_str().ok()?.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

/// The first `X-Forwarded-For`, `X-Forwarded-Proto` and `User-Agent` values, found in one
/// pass over the headers (the one that finds the trace headers, unless the request has too
/// many headers for it). Comparing names costs less than three hashed look-ups (two of them
/// of custom names, hashed byte by byte) for the dozen or so headers a request carries, and
/// the pass is bounded by the server's header limit.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct RequestHeaders<'a> {
    forwarded_for: Option<&'a HeaderValue>,
    forwarded_proto: Option<&'a HeaderValue>,
    user_agent: Option<&'a HeaderValue>,
}

impl<'a> RequestHeaders<'a> {
    fn find(headers: &'a HeaderMap) -> Self {
        let mut found = RequestHeaders::default();
        for (name, value) in headers {
            let slot = if *name == header::USER_AGENT {
                &mut found.user_agent
            } else if *name == X_FORWARDED_FOR {
                &mut found.forwarded_for
            } else if *name == X_FORWARDED_PROTO {
                &mut found.forwarded_proto
            } else {
                continue;
            };
            // The first line of a repeated header, as `HeaderMap::get` would give.
            slot.get_or_insert(value);
        }
        found
    }
}

/// The `http.request` block of a request: method, URL without the query, user agent and
/// client address, borrowed from the request where it can be.
#[derive(Debug)]
struct RequestBlock<'a> {
    method: Cow<'static, str>,
    url: Url<'a>,
    user_agent: Option<&'a str>,
    client_ip: Option<Cow<'a, str>>,
    x_forwarded_for: bool,
}

/// The request's URL, in parts where they can be borrowed.
#[derive(Debug)]
enum Url<'a> {
    /// `http[s]://` + host + path.
    Parts {
        https: bool,
        host: &'a str,
        path: &'a str,
    },
    /// Another scheme.
    Built(String),
    /// No host known: the path alone.
    Path(&'a str),
}

impl<'a> RequestBlock<'a> {
    fn record(self, e: &Patch<'a>) {
        e.set_http_method(self.method);
        match self.url {
            Url::Parts { https, host, path } => e.set_http_url_parts(https, host, path),
            Url::Built(url) => e.set_http_url(url),
            Url::Path(path) => e.set_http_url(path),
        }
        if let Some(ua) = self.user_agent {
            e.set_http_user_agent(ua);
        }
        if let Some(ip) = self.client_ip {
            e.set_http_client_ip(ip, self.x_forwarded_for);
        }
    }
}

/// The request's `http.request` block; `found` holds its headers when the first pass over
/// them found them.
fn request_block<'a, B>(
    req: &'a Request<B>,
    host: Option<&'a str>,
    found: Option<RequestHeaders<'a>>,
) -> RequestBlock<'a> {
    let found = found.unwrap_or_else(|| RequestHeaders::find(req.headers()));
    let https = match req.uri().scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Some(true),
        Some(s) if s.eq_ignore_ascii_case("http") => Some(false),
        Some(_) => None,
        None => Some(matches!(
            found.forwarded_proto.and_then(first_element),
            Some(p) if p.eq_ignore_ascii_case("https")
        )),
    };
    let path = req.uri().path();
    let url = match (host, https) {
        (Some(host), Some(https)) => Url::Parts { https, host, path },
        (Some(host), None) => {
            let scheme = req
                .uri()
                .scheme_str()
                .unwrap_or("http")
                .to_ascii_lowercase();
            Url::Built(format!("{scheme}://{host}{path}"))
        }
        (None, _) => Url::Path(path),
    };
    let (client_ip, x_forwarded_for) = match found.forwarded_for.and_then(first_element) {
        Some(ip) => (Some(Cow::Borrowed(ip)), true),
        None => (
            peer_address(req).map(|a| Cow::Owned(a.ip().to_string())),
            false,
        ),
    };
    RequestBlock {
        method: method_name(req.method()),
        url,
        user_agent: found.user_agent.and_then(|v| v.to_str().ok()),
        client_ip,
        x_forwarded_for,
    }
}

/// The method as recorded: the standard ones found by comparing `http`'s own (no string
/// compared), any other as the core writes it.
fn method_name(method: &http::Method) -> Cow<'static, str> {
    use http::Method;
    const STANDARD: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    match STANDARD.iter().find(|(m, _)| m == method) {
        Some((_, name)) => Cow::Borrowed(name),
        None => xray_sdk::model::http_method(method.as_str()),
    }
}

/// The peer address, from axum's `ConnectInfo<SocketAddr>`, tonic's `TcpConnectInfo` or a
/// plain `SocketAddr` request extension (which a hyper server can insert).
fn peer_address<B>(req: &Request<B>) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0);
    }
    #[cfg(feature = "tonic")]
    if let Some(addr) = req
        .extensions()
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(tonic::transport::server::TcpConnectInfo::remote_addr)
    {
        return Some(addr);
    }
    req.extensions().get::<SocketAddr>().copied()
}

/// Records the response (status and length; the gRPC status of a trailers-only answer; an
/// [`ErrorCause`] it carries; a panic behind a failure) and adds the response trace header.
pub(crate) fn record_response<B: http_body::Body>(
    recording: &mut Recording,
    mode: ResponseHeaderMode,
    res: &mut Response<B>,
) {
    let segment = &recording.segment;
    if segment.is_sampled() {
        let length = match res.body().size_hint().exact() {
            // A body that knows its length sends exactly that many bytes (a server fails a
            // response whose `Content-Length` says otherwise): no header look-up needed.
            Some(n) if n > 0 => Some(n),
            // Empty (a HEAD, 204 or 304 response keeps the length of the representation in
            // the header) or streamed: the header, if any.
            exact => res
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .or(exact),
        };
        let status = res.status().as_u16();
        // An `ErrorCause` is the layer's to read: taken, so that no outer layer records it
        // again.
        let cause = res.extensions_mut().remove::<ErrorCause>();
        let grpc = if recording.grpc_pending {
            grpc::status_in(res.headers())
        } else {
            None
        };
        let failed = status >= 500 || grpc.is_some_and(|g| failed(g.code.flags()));
        // A failure may have a panic behind it, noted by the hook (unless already recorded).
        let may_have_panicked = failed && !recording.panicked;
        if grpc.is_none() && cause.is_none() && !may_have_panicked {
            // The common case: one change, applied without a patch.
            segment.set_http_response(status, length);
        } else {
            record_outcome(recording, status, length, grpc, cause, failed);
        }
    }
    let segment = &recording.segment;
    if mode.enabled
        && let header::Entry::Vacant(slot) = res.headers_mut().entry(TRACE_HEADER)
    {
        let sampled = mode.echo_decision.then(|| segment.is_sampled());
        if let Some(value) = response_header_value(segment.trace_id(), sampled) {
            slot.insert(value);
        }
    }
}

/// Records a response that failed, answered a gRPC status or carries an [`ErrorCause`]:
/// the status and length, and what went wrong (formatted here, before the lock). Out of line:
/// the common response is one change.
#[inline(never)]
fn record_outcome(
    recording: &mut Recording,
    status: u16,
    length: Option<u64>,
    grpc: Option<GrpcStatus<'_>>,
    cause: Option<ErrorCause>,
    failed: bool,
) {
    let segment = &recording.segment;
    let error = cause.map(|cause| cause.to_cause());
    let noted = (failed && !recording.panicked)
        .then(|| xray_sdk::panic::take_for_segment(segment.id()))
        .flatten();
    if grpc.is_none() && error.is_none() && noted.is_none() {
        // A failure with nothing more to tell: the status alone, as in the common case.
        segment.set_http_response(status, length);
    } else {
        if grpc.is_some() {
            recording.grpc_pending = false;
        }
        let panicked = recording.panicked;
        segment.update(|p| {
            let outcome = CallOutcome {
                status: Some(status),
                content_length: length,
                ..CallOutcome::default()
            };
            outcome.record(p);
            // The panic first: it is what went wrong; the status is what was answered.
            if let Some(noted) = noted {
                p.add_exception(noted);
            }
            match grpc {
                // The panic is the cause already: the status that stands for it adds
                // only its code and flag.
                Some(g) if panicked => {
                    p.annotate(GRPC_STATUS_ANNOTATION, g.code.0);
                    p.set_fault();
                }
                Some(g) => g.record(p, false),
                None => {}
            }
            if let Some(cause) = error {
                p.add_cause(cause);
            }
        });
    }
}

/// `Root=<trace id>` and, when asked, `;Sampled=<1|0>`, written into a stack buffer and
/// copied once into the header value's own allocation.
fn response_header_value(trace_id: TraceId, sampled: Option<bool>) -> Option<HeaderValue> {
    const ROOT: &[u8] = b"Root=";
    const SAMPLED: &[u8] = b";Sampled=";
    const ID_END: usize = ROOT.len() + TraceId::LEN;
    let mut buf = [0u8; ID_END + SAMPLED.len() + 1];
    buf[..ROOT.len()].copy_from_slice(ROOT);
    buf[ROOT.len()..ID_END].copy_from_slice(&trace_id.to_bytes());
    let len = match sampled {
        Some(sampled) => {
            buf[ID_END..ID_END + SAMPLED.len()].copy_from_slice(SAMPLED);
            buf[ID_END + SAMPLED.len()] = if sampled { b'1' } else { b'0' };
            buf.len()
        }
        None => ID_END,
    };
    let mut value = HeaderValue::from_bytes(&buf[..len]).ok()?;
    // New for every trace: over HTTP/2 it is sent as a literal "never indexed", so that it
    // does not push the headers that repeat out of the connection's header tables.
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests;
