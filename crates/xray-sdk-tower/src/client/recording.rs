//! The per-call work of the client layer: opening the `remote` subsegment, the header sent
//! downstream, what the response says, and ending the subsegment when the body ends.

use std::borrow::Cow;
use std::fmt;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Response};
use xray_sdk::context::with_current;
use xray_sdk::remote::{
    self, CallOutcome, CallUrl, GRPC_STATUS_ANNOTATION, GrpcCode, GrpcStatus, OutgoingCall,
};
use xray_sdk::{Cause, Context, Entity, Exception, Record};

use super::ClientConfig;
use crate::grpc;
use crate::record::{TRACE_HEADER, TRACEPARENT_HEADER, TRACESTATE_HEADER};

/// The subsegment name of a call whose host is not known.
const UNKNOWN_HOST: &str = "unknown-host";

/// Scheme and authority for requests whose URI has none.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) scheme: Option<Scheme>,
    pub(crate) authority: Authority,
}

/// An open call: its subsegment, the slot its context is swapped through while it is
/// current, and what the answer said so far.
pub(crate) struct ClientRecording {
    sub: Entity,
    current: Option<Context>,
    /// A recorded gRPC call whose status has not been seen yet.
    grpc_pending: bool,
    /// The called service was sent this subsegment's ID.
    propagated: bool,
    /// The answer's status, length and whether it came from a traced service: recorded when
    /// the subsegment ends, with the rest, under one lock.
    answer: Option<(u16, Option<u64>, bool)>,
}

impl fmt::Debug for ClientRecording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRecording")
            .field("sub", &self.sub)
            .field("grpc_pending", &self.grpc_pending)
            .finish_non_exhaustive()
    }
}

/// Begins the call's subsegment under the context in the request's extensions, else the
/// current one, and writes the downstream header; `None` when there is no context.
pub(crate) fn begin<B>(config: &ClientConfig, req: &mut Request<B>) -> Option<ClientRecording> {
    let sub = {
        let req = &*req;
        let open = |parent: &Context| remote::begin_call(parent, outgoing_call(config, req));
        match req.extensions().get::<Context>() {
            Some(parent) => open(parent),
            None => with_current(|current| current.map(open))?,
        }
    };
    let grpc_pending = sub.is_sampled() && grpc::is_grpc(req.headers());
    let mut propagated = false;
    // With W3C propagation on, a hand-set `traceparent` is a header the caller chose too.
    let w3c = remote::w3c_headers(&sub);
    let present = req.headers().contains_key(TRACE_HEADER)
        || (w3c.is_some() && req.headers().contains_key(TRACEPARENT_HEADER));
    if config.existing_header.writes(present)
        && let Ok(mut value) = HeaderValue::try_from(remote::downstream_header_bytes(&sub))
    {
        // New for every call: never worth a place in HTTP/2's header tables, where it would
        // push out the headers that repeat (HPACK sends it as a literal "never indexed").
        value.set_sensitive(true);
        let headers = req.headers_mut();
        headers.insert(TRACE_HEADER, value);
        if let Some(w3c) = w3c {
            write_w3c(headers, &w3c);
        }
        propagated = true;
    }
    let current = Some(sub.context());
    Some(ClientRecording {
        sub,
        current,
        grpc_pending,
        propagated,
        answer: None,
    })
}

/// Sets `traceparent` and the `tracestate` that came in with the trace (a `tracestate` the
/// request had belongs to a `traceparent` it no longer carries: it goes).
fn write_w3c(headers: &mut HeaderMap, w3c: &remote::W3cHeaders<'_>) {
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

/// The call as recorded: named after the host without the port, the URL without query or
/// credentials, the scheme and host from the URI, else from the layer's origin, else from the
/// `Host` header.
fn outgoing_call<'a, B>(config: &'a ClientConfig, req: &'a Request<B>) -> OutgoingCall<'a> {
    let uri = req.uri();
    let (scheme, authority) = match (uri.authority(), &config.origin) {
        (Some(authority), _) => (uri.scheme_str(), Some(authority.as_str())),
        (None, Some(origin)) => (
            origin.scheme.as_ref().map(Scheme::as_str),
            Some(origin.authority.as_str()),
        ),
        (None, None) => (
            uri.scheme_str(),
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok()),
        ),
    };
    let host = authority
        .map(|a| a.rsplit_once('@').map_or(a, |(_, host)| host))
        .filter(|h| !h.is_empty());
    let path = uri.path();
    let url = match (host, scheme) {
        (Some(host), None) => CallUrl::Parts {
            https: false,
            host,
            path,
        },
        (Some(host), Some(s))
            if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") =>
        {
            CallUrl::Parts {
                https: s.eq_ignore_ascii_case("https"),
                host,
                path,
            }
        }
        (Some(host), Some(s)) => CallUrl::Full(Cow::Owned(format!(
            "{}://{host}{path}",
            s.to_ascii_lowercase()
        ))),
        (None, _) => CallUrl::Full(Cow::Borrowed(path)),
    };
    OutgoingCall {
        name: host.map_or(UNKNOWN_HOST, without_port),
        method: req.method().as_str(),
        url,
    }
}

/// `host:port` without the port; `[v6]:port` without the port (brackets kept, as the URL
/// has them).
fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() => name,
        _ => host,
    }
}

impl ClientRecording {
    /// Makes the subsegment current until the guard is dropped.
    pub(crate) fn enter(&mut self) -> crate::record::Entered<'_> {
        crate::record::Entered::swap(&mut self.current)
    }

    /// Whether anything is recorded for this call.
    pub(crate) fn is_sampled(&self) -> bool {
        self.sub.is_sampled()
    }

    /// Notes what the response headers say, and ends the subsegment when the call is over
    /// already (an empty body, such as a trailers-only gRPC answer's); else hands it back for
    /// the body.
    pub(crate) fn on_response<B: http_body::Body>(mut self, res: &Response<B>) -> Option<Self> {
        let length = match res.body().size_hint().exact() {
            Some(n) if n > 0 => Some(n),
            exact => res
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .or(exact),
        };
        // `traced` tells X-Ray to wait for the called service's segment under this
        // subsegment: only when the service answered as a traced one and was told this
        // subsegment's ID.
        let traced = self.propagated && res.headers().contains_key(TRACE_HEADER);
        self.answer = Some((res.status().as_u16(), length, traced));
        let status = if self.grpc_pending {
            grpc::status_in(res.headers())
        } else {
            None
        };
        if res.body().is_end_stream() {
            self.finish(status, None, false);
            return None;
        }
        if let Some(status) = status {
            // A status in the headers of a body that goes on: recorded now, while borrowed.
            self.grpc_pending = false;
            self.sub.update(|p| status.record(p, true));
        }
        Some(self)
    }

    /// Ends the subsegment: the answer noted, the gRPC status if it came now, an error as
    /// the cause, and `CANCELLED` for a gRPC call given up before its status arrived.
    pub(crate) fn finish(self, grpc: Option<GrpcStatus<'_>>, error: Option<Cause>, dropped: bool) {
        let cancelled = dropped && self.grpc_pending;
        let (status, content_length, traced) = match self.answer {
            Some((status, length, traced)) => (Some(status), length, traced),
            None => (None, None, false),
        };
        self.sub.end_with(|p| {
            CallOutcome {
                status,
                content_length,
                traced,
                grpc,
                error,
                remote: true,
            }
            .record(p);
            if cancelled {
                p.annotate(GRPC_STATUS_ANNOTATION, GrpcCode::CANCELLED.0);
            }
        });
    }

    /// Ends the subsegment at the trailers (or the end) of the body.
    pub(crate) fn finish_with_trailers(self, trailers: Option<&HeaderMap>) {
        let grpc = trailers
            .filter(|_| self.grpc_pending)
            .and_then(grpc::status_in);
        self.finish(grpc, None, false);
    }

    /// Ends the subsegment of a call whose body failed while streaming.
    pub(crate) fn finish_with_body_error(self, error: &dyn fmt::Display, kind: &str) {
        let cause = Cause::from_exception(Exception::new(error.to_string(), kind));
        self.finish(None, Some(cause), false);
    }
}

/// A type's name without its module path (generic parameters kept).
pub(crate) fn short_type_name(full: &str) -> &str {
    let base_end = full.find('<').unwrap_or(full.len());
    let start = full[..base_end].rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(config: &ClientConfig, req: &Request<()>) -> (String, String) {
        let call = outgoing_call(config, req);
        let url = match call.url {
            CallUrl::Parts { https, host, path } => {
                format!("{}://{host}{path}", if https { "https" } else { "http" })
            }
            CallUrl::Full(url) => url.into_owned(),
        };
        (call.name.to_owned(), url)
    }

    #[test]
    fn names_and_urls() {
        let plain = ClientConfig::default();
        let req = |uri: &str| Request::post(uri).body(()).unwrap();
        for (uri, name, url) in [
            (
                "http://inventory.internal:50051/inv.Inventory/Get?x=1",
                "inventory.internal",
                "http://inventory.internal:50051/inv.Inventory/Get",
            ),
            (
                "HTTPS://user:pw@api.example.com/a",
                "api.example.com",
                "https://api.example.com/a",
            ),
            ("http://[::1]:3000/x", "[::1]", "http://[::1]:3000/x"),
            (
                "ftp://files.internal/f",
                "files.internal",
                "ftp://files.internal/f",
            ),
            ("/inv.Inventory/Get", "unknown-host", "/inv.Inventory/Get"),
        ] {
            assert_eq!(
                recorded(&plain, &req(uri)),
                (name.to_owned(), url.to_owned()),
                "{uri}"
            );
        }
        // A path-only URI (a tonic client built with `new`): the layer's origin, else `Host`.
        let with_origin = ClientConfig {
            origin: Some(Origin {
                scheme: Some(Scheme::HTTPS),
                authority: Authority::from_static("inventory.internal:8443"),
            }),
            ..ClientConfig::default()
        };
        assert_eq!(
            recorded(&with_origin, &req("/inv.Inventory/Get")),
            (
                "inventory.internal".to_owned(),
                "https://inventory.internal:8443/inv.Inventory/Get".to_owned()
            )
        );
        let with_host = Request::get("/a")
            .header("host", "pricing.internal:8080")
            .body(())
            .unwrap();
        assert_eq!(
            recorded(&plain, &with_host),
            (
                "pricing.internal".to_owned(),
                "http://pricing.internal:8080/a".to_owned()
            )
        );
    }

    #[test]
    fn type_names() {
        assert_eq!(short_type_name("hyper::error::Error"), "Error");
        assert_eq!(short_type_name("tonic::status::Status"), "Status");
        assert_eq!(
            short_type_name("alloc::boxed::Box<dyn core::error::Error>"),
            "Box<dyn core::error::Error>"
        );
        assert_eq!(short_type_name("Plain"), "Plain");
    }

    #[test]
    fn ports_are_left_out_of_names() {
        assert_eq!(without_port("a.example:80"), "a.example");
        assert_eq!(without_port("a.example"), "a.example");
        assert_eq!(without_port("[::1]:50051"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
        assert_eq!(without_port(":80"), ":80");
    }
}
