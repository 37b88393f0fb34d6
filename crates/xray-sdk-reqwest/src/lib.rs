//! # xray-sdk-reqwest
//!
//! AWS X-Ray instrumentation for outgoing HTTP calls made with [`reqwest`] through
//! [`reqwest_middleware`]. Attach [`XRayMiddleware`] to a
//! [`reqwest_middleware::ClientBuilder`] and every call made inside a traced context becomes a
//! subsegment of the current segment or subsegment, and carries the `X-Amzn-Trace-Id` header
//! to the service it calls, so both ends join one trace.
//!
//! ```no_run
//! use std::time::Duration;
//! use xray_sdk::{Recorder, context::FutureExt};
//! use xray_sdk_reqwest::XRayMiddleware;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let recorder = Recorder::from_env();
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(XRayMiddleware::new())
//!     .build();
//!
//! let segment = recorder.segment("checkout").begin();
//! // The middleware finds the segment through the current context...
//! let response = client
//!     .get("http://inventory.internal:8080/items/42")
//!     .send()
//!     .in_context(segment.context())
//!     .await?;
//! // ...or through a context passed with the request.
//! let other = client
//!     .get("http://pricing.internal:8080/quote")
//!     .with_extension(segment.context())
//!     .send()
//!     .await?;
//! # let _ = (response, other);
//! segment.end();
//! recorder.shutdown(Duration::from_secs(1)).await; // before the process exits
//! # Ok(()) }
//! ```
//!
//! ## What is recorded
//!
//! One subsegment per call (see [Retries](#retries) for what "call" means):
//!
//! - `name`: the host of the URL, without the port;
//! - `namespace`: `remote`;
//! - `http.request.method` in upper case and `http.request.url` as
//!   `scheme://host[:port]/path`: the query, fragment and any user name or password are left out;
//! - `http.response.status` and `http.response.content_length` (when known: the body's size,
//!   or the `Content-Length` header of a response without a body, such as HEAD's), with the
//!   flags the status implies: 4xx `error`, 429 `throttle` (and `error`), 5xx `fault`;
//! - `http.request.traced: true` when the response carries an `X-Amzn-Trace-Id` header, i.e.
//!   the service that answered is itself traced, and was sent this subsegment's ID (not when
//!   a header set by hand was kept, which names another parent);
//! - for a transport error (connection refused, timeout, DNS failure, an error from an inner
//!   middleware): `fault` and a `cause` with one exception for the
//!   [`reqwest_middleware::Error`] and one for each error of its `source()` chain. URLs in the
//!   messages are shortened the same way as `http.request.url`.
//!
//! The subsegment ends when the response headers arrive (the body is not wrapped). Whatever
//! the inner middlewares and the client returned (response or error) is returned to the
//! caller unchanged.
//!
//! ## The downstream header
//!
//! The request gets `X-Amzn-Trace-Id: Root=<trace>;Parent=<subsegment>;Sampled=<1|0>` followed
//! by the extra keys (such as `Lineage`) that came in with the trace, exactly as
//! [`xray_sdk::Context::downstream_header`] formats it. An unsampled request still sends its
//! header, with its real `Root` and `Sampled=0`, so the service it calls does not sample
//! either. A header the caller set on the request is kept by default
//! ([`ExistingHeader::Keep`]); [`XRayMiddleware::existing_header`] can overwrite it instead.
//! The subsegment is still recorded in either case.
//!
//! ## W3C Trace Context
//!
//! When the trace's recorder propagates it
//! ([`xray_sdk::RecorderBuilder::propagate_traceparent`], on with `OTEL_PROPAGATORS` listing
//! `tracecontext` or with `OTEL_TRACES_EXPORTER=otlp`; the context tells,
//! [`xray_sdk::Context::propagates_traceparent`]), the request also gets
//! `traceparent: 00-<trace id>-<subsegment id>-<flags>` (flag `01` when sampled; the
//! random-trace-id flag `02` only when it came in with the trace) and the `tracestate` that
//! came in with the trace, unchanged, so that services instrumented with OpenTelemetry join
//! the same trace. A `traceparent` the caller set counts as a header the caller set: under
//! [`ExistingHeader::Keep`] a request carrying either header gets none of this call's;
//! under [`ExistingHeader::Overwrite`] it gets all of them (and loses a `tracestate` the
//! trace does not carry). With the setting off, nothing W3C is added or removed.
//!
//! ## Where the context comes from
//!
//! First a [`xray_sdk::Context`] in the request's extensions
//! (`RequestBuilder::with_extension(segment.context())`), else the current context
//! ([`xray_sdk::Context::current`], set by [`xray_sdk::FutureExt::in_context`]). While the
//! inner middlewares and the client run, the new subsegment is the current context, so
//! instrumentation below this middleware nests under the call.
//!
//! Without any context the request goes out untouched (no header, nothing recorded) and the
//! context-missing policy decides what else happens: `LOG_ERROR` logs through `tracing`
//! (rate-limited), `IGNORE_ERROR` stays silent, and `RUNTIME_ERROR` does not send the request
//! and returns a [`reqwest_middleware::Error::Middleware`] wrapping
//! [`xray_sdk::ContextMissingError`]. The policy is `AWS_XRAY_CONTEXT_MISSING` when set, else
//! the one given to [`XRayMiddleware::context_missing`], else `LOG_ERROR` (the rule of
//! [`xray_sdk::ContextMissing`]; no recorder, global or not, takes part). A request carrying
//! [`DisableXRay`] in its extensions is passed through with no subsegment, no header and no
//! context-missing check.
//!
//! ## Retries
//!
//! Middlewares run in the order they were attached; the first is outermost. With a retry
//! middleware such as `reqwest-retry`:
//!
//! - **`XRayMiddleware` first, retry after it**: one subsegment covers the whole call, every
//!   attempt and every back-off pause included. It shows the final outcome (the last attempt's
//!   status, or its error); the failed attempts before it are not recorded. Every attempt
//!   carries the same header, so the downstream segments of all attempts have this one
//!   subsegment as their parent.
//! - **Retry first, `XRayMiddleware` after it**: each attempt is its own subsegment, siblings
//!   under the caller's segment, each with its own status or cause and its own `Parent` in the
//!   header. The pauses between attempts are not covered by any subsegment.
//!
//! The second order shows which attempts failed and why; the first shows what the caller
//! waited for. Both are valid; pick one per client.
//!
//! ## Cost
//!
//! Per traced call: one subsegment in the segment's arena (its name and URL strings), and one
//! allocation for the header value, written straight into the buffer it keeps. Nothing is held
//! across the `.await` that is not `Send`. See `docs/PERFORMANCE.md` in the repository for
//! measurements.
//!
//! ## Features
//!
//! None: everything is on by default, and the crate adds no optional dependency.
//!
//! ## The crates
//!
//! - [`xray-sdk`](https://docs.rs/xray-sdk) — the core: recorder, segments, header, sampling, emitter
//! - [`xray-sdk-tower`](https://docs.rs/xray-sdk-tower) — tower and axum: a segment per incoming request, a subsegment per call of a tower client
//! - `xray-sdk-reqwest` (this crate) — reqwest-middleware: a subsegment per outgoing HTTP call
//! - [`xray-sdk-aws`](https://docs.rs/xray-sdk-aws) — the AWS SDK for Rust: a subsegment per AWS call
//! - [`xray-sdk-tracing`](https://docs.rs/xray-sdk-tracing) — `tracing` spans as subsegments, trace IDs in log lines
//! - [`xray-sdk-lambda`](https://docs.rs/xray-sdk-lambda) — AWS Lambda functions
//! - [`xray-local`](https://docs.rs/xray-local) — a local stand-in for the X-Ray daemon and API, with a trace viewer (`cargo install xray-local`)

#![cfg_attr(docsrs, feature(doc_cfg))]

use std::borrow::Cow;

use http::Extensions;
use http::header::{self, HeaderName, HeaderValue};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};
use url::Position;
use xray_sdk::context::{FutureExt, with_current};
use xray_sdk::remote::{self, CallOutcome, CallUrl, OutgoingCall};
use xray_sdk::{Cause, Context, ContextMissing, Entity};

/// `X-Amzn-Trace-Id`, as `http` stores header names (lower case).
pub const TRACE_HEADER: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// The W3C `traceparent` header.
pub const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(xray_sdk::header::TRACEPARENT);

/// The W3C `tracestate` header.
pub const TRACESTATE_HEADER: HeaderName = HeaderName::from_static(xray_sdk::header::TRACESTATE);

/// The operation named by the context-missing message.
const OPERATION: &str = "xray_sdk_reqwest::XRayMiddleware";

/// The subsegment name used when a URL has no host (reqwest refuses to send those).
const UNKNOWN_HOST: &str = "unknown-host";

/// What to do when the request already carries an `X-Amzn-Trace-Id` header: keep it (the
/// default) or overwrite it. Shared with the other HTTP adapters.
pub use xray_sdk::remote::ExistingHeader;

/// A marker for a request's extensions: this request is not traced at all (no subsegment, no
/// header, no context-missing check).
///
/// ```
/// # async fn call(client: &reqwest_middleware::ClientWithMiddleware) -> reqwest_middleware::Result<()> {
/// client
///     .get("http://127.0.0.1:2000/health")
///     .with_extension(xray_sdk_reqwest::DisableXRay)
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DisableXRay;

/// A [`reqwest_middleware::Middleware`] that records each outgoing call as an X-Ray subsegment
/// and sends the trace header downstream. See the [crate documentation](crate) for what is
/// recorded and how it combines with retries.
///
/// ```
/// use xray_sdk::ContextMissing;
/// use xray_sdk_reqwest::{ExistingHeader, XRayMiddleware};
///
/// let middleware = XRayMiddleware::new()
///     .context_missing(ContextMissing::IgnoreError)
///     .existing_header(ExistingHeader::Overwrite);
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(middleware)
///     .build();
/// # let _ = client;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct XRayMiddleware {
    context_missing: Option<ContextMissing>,
    existing_header: ExistingHeader,
}

impl XRayMiddleware {
    /// A middleware with the defaults: the context-missing policy from
    /// `AWS_XRAY_CONTEXT_MISSING`, else `LOG_ERROR`, and a caller's own `X-Amzn-Trace-Id`
    /// header kept.
    pub fn new() -> Self {
        XRayMiddleware::default()
    }

    /// The context-missing policy for calls made outside any segment or subsegment. As for
    /// every X-Ray setting, `AWS_XRAY_CONTEXT_MISSING` wins over it when set (see
    /// [`ContextMissing`] for the rule); without either the policy is `LOG_ERROR`, whether
    /// or not a global recorder is installed.
    /// Under `RUNTIME_ERROR` the request is not sent.
    pub fn context_missing(mut self, policy: ContextMissing) -> Self {
        self.context_missing = Some(policy);
        self
    }

    /// What to do with an `X-Amzn-Trace-Id` header the caller already set (default: keep it).
    pub fn existing_header(mut self, policy: ExistingHeader) -> Self {
        self.existing_header = policy;
        self
    }

    /// Applies the context-missing policy.
    fn on_missing_context(&self) -> Result<(), xray_sdk::ContextMissingError> {
        remote::on_missing_context(self.context_missing, OPERATION)
    }

    /// Begins the call's subsegment under the context of the request's extensions, else the
    /// current one; `None` when there is neither.
    fn begin(&self, req: &Request, ext: &Extensions) -> Option<Entity> {
        // The subsegment is opened and its request recorded under one lock; the strings are
        // borrowed from the request and copied into the trace only when the call is sampled.
        let open = |parent: &Context| {
            remote::begin_call(
                parent,
                OutgoingCall {
                    name: subsegment_name(req.url()),
                    method: req.method().as_str(),
                    url: CallUrl::Full(request_url(req.url())),
                },
            )
        };
        match ext.get::<Context>() {
            Some(parent) => Some(open(parent)),
            None => with_current(|current| current.map(open)),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for XRayMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        ext: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if ext.get::<DisableXRay>().is_some() {
            return next.run(req, ext).await;
        }
        let Some(sub) = self.begin(&req, ext) else {
            return match self.on_missing_context() {
                Ok(()) => next.run(req, ext).await,
                Err(e) => Err(reqwest_middleware::Error::middleware(e)),
            };
        };

        let sampled = sub.is_sampled();

        // Whether the called service hears of this subsegment (a hand-set header it keeps
        // names another parent). With W3C propagation on, a hand-set `traceparent` is a
        // header the caller chose too.
        let mut propagated = false;
        let w3c = remote::w3c_headers(&sub);
        let present = req.headers().contains_key(TRACE_HEADER)
            || (w3c.is_some() && req.headers().contains_key(TRACEPARENT_HEADER));
        if self.existing_header.writes(present)
            && let Some(value) = header_value(&sub)
        {
            let headers = req.headers_mut();
            headers.insert(TRACE_HEADER, value);
            if let Some(w3c) = w3c {
                write_w3c(headers, &w3c);
            }
            propagated = true;
        }

        // The subsegment guard is Send; nothing thread-bound lives across this await.
        let outcome = next.run(req, ext).in_context(sub.context()).await;

        // Only a sampled subsegment records; an unsampled one just propagated its decision.
        match &outcome {
            Ok(response) if sampled => {
                let length = content_length(response);
                // `traced` tells X-Ray to wait for the called service's segment under this
                // subsegment: only when the service answered as a traced one and was told
                // this subsegment's ID.
                let traced = propagated && response.headers().contains_key(TRACE_HEADER);
                remote::end_call(
                    sub,
                    CallOutcome {
                        status: Some(response.status().as_u16()),
                        content_length: length,
                        traced,
                        ..CallOutcome::default()
                    },
                );
            }
            Err(error) if sampled => {
                // Built before the lock is taken: it walks the error chain.
                let cause = error_cause(error);
                remote::end_call(
                    sub,
                    CallOutcome {
                        error: Some(cause),
                        ..CallOutcome::default()
                    },
                );
            }
            _ => sub.end(),
        }
        outcome
    }
}

/// The response's length: the body's exact size when it is not zero, else the
/// `Content-Length` header (a HEAD response has an empty body and keeps the length of what a
/// GET would return there).
fn content_length(response: &Response) -> Option<u64> {
    match response.content_length() {
        Some(n) if n > 0 => Some(n),
        exact => response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .or(exact),
    }
}

/// The subsegment name: the URL's host, without the port.
fn subsegment_name(url: &Url) -> &str {
    match url.host_str() {
        Some(host) if !host.is_empty() => host,
        _ => UNKNOWN_HOST,
    }
}

/// `scheme://host[:port]/path`: no user name, password, query or fragment (a default port is
/// already left out of a parsed URL). Sliced from the URL's own serialization: borrowed,
/// unless credentials must be cut out of it.
fn request_url(url: &Url) -> Cow<'_, str> {
    if url.username().is_empty() && url.password().is_none() {
        // `scheme://host[:port]/path` is already contiguous.
        return Cow::Borrowed(&url[..Position::AfterPath]);
    }
    let scheme = url.scheme();
    let host_to_path = &url[Position::BeforeHost..Position::AfterPath];
    let mut out = String::with_capacity(scheme.len() + 3 + host_to_path.len());
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host_to_path);
    Cow::Owned(out)
}

/// `Root=..;Parent=..;Sampled=..[;extra]` for `ctx` (the same text as
/// [`Context::downstream_header`]), written by the core straight into a buffer of the exact
/// length, which the header value then owns: one allocation, no copy.
fn header_value(ctx: &Context) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(remote::downstream_header_bytes(ctx)).ok()?;
    // New for every call: over HTTP/2 it is sent as a literal "never indexed", so that it
    // does not push the headers that repeat out of the connection's header tables.
    value.set_sensitive(true);
    Some(value)
}

/// Sets `traceparent` and the `tracestate` that came in with the trace (a `tracestate` the
/// request had belongs to a `traceparent` it no longer carries: it goes).
fn write_w3c(headers: &mut http::HeaderMap, w3c: &remote::W3cHeaders<'_>) {
    if let Ok(mut value) = HeaderValue::from_bytes(&w3c.traceparent) {
        value.set_sensitive(true);
        headers.insert(TRACEPARENT_HEADER, value);
    }
    match w3c.tracestate.map(HeaderValue::from_str) {
        Some(Ok(state)) => {
            headers.insert(TRACESTATE_HEADER, state);
        }
        _ => {
            headers.remove(TRACESTATE_HEADER);
        }
    }
}

/// The `cause` for an error returned by the inner middlewares or the client: one exception
/// for the error (typed by its variant) and one per `source()`. The full URL that reqwest puts
/// in its messages is replaced by the recorded one, so no query or credentials are recorded.
fn error_cause(error: &reqwest_middleware::Error) -> Cause {
    let mut cause = Cause::from_dyn_error(error);
    if let Some(first) = cause.exceptions.first_mut() {
        first.kind = Some(
            match error {
                reqwest_middleware::Error::Reqwest(_) => "reqwest_middleware::Error::Reqwest",
                reqwest_middleware::Error::Middleware(_) => "reqwest_middleware::Error::Middleware",
            }
            .to_owned(),
        );
    }
    if let Some(url) = error.url() {
        let (full, recorded_url) = (url.as_str(), request_url(url));
        if full != recorded_url {
            for exception in &mut cause.exceptions {
                if let Some(message) = &mut exception.message
                    && message.contains(full)
                {
                    *message = message.replace(full, &recorded_url);
                }
            }
        }
    }
    cause
}

// The public types cross threads and tasks: checked when the crate compiles.
const _: () = {
    const fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<XRayMiddleware>();
    send_sync::<DisableXRay>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use xray_sdk::TraceHeader;

    #[test]
    fn url_drops_credentials_query_and_fragment() {
        let url = Url::parse("http://user:pw@example.com:8080/a/b?token=1#frag").unwrap();
        assert_eq!(request_url(&url), "http://example.com:8080/a/b");
        assert_eq!(subsegment_name(&url), "example.com");
        let url = Url::parse("https://example.com/").unwrap();
        assert_eq!(request_url(&url), "https://example.com/");
        let url = Url::parse("http://[::1]:3000/x").unwrap();
        assert_eq!(request_url(&url), "http://[::1]:3000/x");
        for (given, recorded) in [
            ("http://user@example.com/p", "http://example.com/p"),
            ("http://:pw@example.com/p", "http://example.com/p"),
            ("http://example.com:80/p?q", "http://example.com/p"),
            ("https://example.com:443", "https://example.com/"),
            (
                "http://127.0.0.1:3000/a%20b#f",
                "http://127.0.0.1:3000/a%20b",
            ),
        ] {
            assert_eq!(
                request_url(&Url::parse(given).unwrap()),
                recorded,
                "{given}"
            );
        }
    }

    #[test]
    fn method_is_upper_case() {
        let method = |m: &http::Method| xray_sdk::model::http_method(m.as_str());
        assert_eq!(method(&http::Method::GET), "GET");
        let custom = http::Method::from_bytes(b"purge").unwrap();
        assert_eq!(method(&custom), "PURGE");
    }

    #[test]
    fn header_matches_the_core_format() {
        let recorder = xray_sdk::Recorder::builder()
            .ignore_env()
            .enabled(true)
            .sampler(xray_sdk::sampling::AlwaysSample)
            .centralized_sampling(false)
            .daemon_address("127.0.0.1:9")
            .build()
            .unwrap();
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
            let value = header_value(&sub).unwrap();
            assert_eq!(
                value.to_str().unwrap(),
                sub.downstream_header().to_string(),
                "{incoming}"
            );
        }
    }
}
