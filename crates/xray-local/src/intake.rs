//! Datagram parsing, exactly as the X-Ray daemon does it, plus intake counters.
//!
//! A datagram is `header JSON` + `\n` + one segment or subsegment document.
//! The daemon splits at the first newline, decodes the header leniently
//! (decode errors leave zero values) and accepts it when `format` equals
//! `json` ignoring case and `version` is 1. It does not look at the body;
//! this crate additionally checks that the body is a JSON object so that
//! garbage is counted instead of stored.
//!
//! A body that starts with `T1S` or `T1U` carries OpenTelemetry spans, as
//! Lambda's daemon takes them (`crate::otlp::wire`); the OTLP counters are
//! [`OtlpCounters`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::document::{self, Node, ParseError};
use crate::otlp::mapping::SpanReject;

/// Largest datagram the daemon reads (`Socket.BufferSizeKB = 64`).
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// Why a datagram (or the document it carries) was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    /// No newline, or nothing after it (daemon: "Missing header or segment").
    MissingHeaderOrBody,
    /// Header is not `{"format":"json","version":1}` (daemon: "Invalid header").
    InvalidHeader,
    /// Larger than [`MAX_DATAGRAM`]; the daemon would read a truncated prefix.
    Oversized,
    /// The body is JSON that ends too early (typically a truncated datagram).
    TruncatedBody,
    /// The body is not JSON at all.
    InvalidJson,
    /// The body is JSON but not an object.
    NotAnObject,
    /// The intake queue was full (the store could not keep up).
    QueueFull,
    /// An OTLP datagram (`T1S`/`T1U`) whose payload is not base64.
    OtlpInvalidBase64,
    /// An OTLP datagram whose payload is not a protobuf
    /// `ExportTraceServiceRequest`.
    OtlpInvalidProtobuf,
}

impl Reject {
    /// Every reason, in display order.
    pub const ALL: [Reject; 9] = [
        Reject::MissingHeaderOrBody,
        Reject::InvalidHeader,
        Reject::Oversized,
        Reject::TruncatedBody,
        Reject::InvalidJson,
        Reject::NotAnObject,
        Reject::QueueFull,
        Reject::OtlpInvalidBase64,
        Reject::OtlpInvalidProtobuf,
    ];

    /// Stable snake_case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::MissingHeaderOrBody => "missing_header_or_body",
            Reject::InvalidHeader => "invalid_header",
            Reject::Oversized => "oversized",
            Reject::TruncatedBody => "truncated_body",
            Reject::InvalidJson => "invalid_json",
            Reject::NotAnObject => "not_an_object",
            Reject::QueueFull => "queue_full",
            Reject::OtlpInvalidBase64 => "otlp_invalid_base64",
            Reject::OtlpInvalidProtobuf => "otlp_invalid_protobuf",
        }
    }
}

/// Applies the daemon's checks and returns the body of an acceptable datagram.
pub fn split_datagram(datagram: &[u8]) -> Result<&[u8], Reject> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(Reject::Oversized);
    }
    let Some(nl) = datagram.iter().position(|b| *b == b'\n') else {
        return Err(Reject::MissingHeaderOrBody);
    };
    let (header, body) = (&datagram[..nl], &datagram[nl + 1..]);
    if body.is_empty() {
        return Err(Reject::MissingHeaderOrBody);
    }
    if !header_is_valid(header) {
        return Err(Reject::InvalidHeader);
    }
    Ok(body)
}

/// `true` for a header the daemon accepts. Like Go's `encoding/json`, keys
/// match case-insensitively and the last duplicate wins.
pub fn header_is_valid(header: &[u8]) -> bool {
    // The spellings SDKs send, without building a JSON tree.
    if header == br#"{"format":"json","version":1}"#
        || header == br#"{"format": "json", "version": 1}"#
    {
        return true;
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(header) else {
        return false;
    };
    let mut format_ok = false;
    let mut version_ok = false;
    for (key, value) in &map {
        if key.eq_ignore_ascii_case("format") {
            format_ok = value
                .as_str()
                .is_some_and(|f| f.eq_ignore_ascii_case("json"));
        } else if key.eq_ignore_ascii_case("version") {
            version_ok = value.as_i64() == Some(1);
        }
    }
    format_ok && version_ok
}

/// Parses a datagram body (a JSON object) into its typed form.
pub fn parse_body(body: &[u8]) -> Result<Node, Reject> {
    document::parse(body).map_err(reason)
}

/// [`parse_body`] for a body already known to be UTF-8.
pub fn parse_str(body: &str) -> Result<Node, Reject> {
    document::parse_str(body).map_err(reason)
}

fn reason(e: ParseError) -> Reject {
    match e {
        ParseError::Truncated => Reject::TruncatedBody,
        ParseError::Invalid => Reject::InvalidJson,
        ParseError::NotAnObject => Reject::NotAnObject,
    }
}

/// Lock-free intake counters shared by the receive and ingest tasks.
#[derive(Debug, Default)]
pub struct IntakeCounters {
    received: AtomicU64,
    received_bytes: AtomicU64,
    api_documents: AtomicU64,
    accepted: AtomicU64,
    forwarded: AtomicU64,
    forward_errors: AtomicU64,
    rejected: [AtomicU64; Reject::ALL.len()],
    /// Spans received over OTLP (HTTP or UDP).
    pub otlp: OtlpCounters,
}

impl IntakeCounters {
    /// Counts a datagram read from the socket.
    pub fn record_received(&self, bytes: usize) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.received_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a document that arrived without a daemon header (through
    /// `PutTraceSegments` or an import).
    pub fn record_api_document(&self, bytes: usize) {
        self.api_documents.fetch_add(1, Ordering::Relaxed);
        self.received_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a document that reached the store.
    pub fn record_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rejected datagram.
    pub fn record_rejected(&self, reason: Reject) {
        let idx = Reject::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejected[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a forwarding attempt.
    pub fn record_forward(&self, ok: bool) {
        let counter = if ok {
            &self.forwarded
        } else {
            &self.forward_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent-enough copy for reporting.
    pub fn snapshot(&self) -> IntakeSnapshot {
        let rejected: BTreeMap<&'static str, u64> = Reject::ALL
            .iter()
            .zip(&self.rejected)
            .map(|(r, c)| (r.as_str(), c.load(Ordering::Relaxed)))
            .collect();
        IntakeSnapshot {
            received: self.received.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            api_documents: self.api_documents.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected_total: rejected.values().sum(),
            rejected,
            forwarded: self.forwarded.load(Ordering::Relaxed),
            forward_errors: self.forward_errors.load(Ordering::Relaxed),
            otlp: self.otlp.snapshot(),
        }
    }
}

/// Why an OTLP/HTTP request was refused as a whole, for the counters.
pub const OTLP_REQUEST_REJECTS: [&str; 8] = [
    "unsupported_media_type",
    "unsupported_encoding",
    "too_large",
    "invalid_gzip",
    "invalid_protobuf",
    "invalid_json",
    "too_many_spans",
    "body_read_failed",
];

/// Counters of the OTLP intake (HTTP requests and `T1S`/`T1U` datagrams).
///
/// A datagram with spans counts once in the intake's `received` and once in
/// `datagrams` here; each document its spans become counts in `documents`
/// and then in the intake's `accepted`, like a document received through
/// the API. So `received + api_documents + otlp.documents = accepted +
/// rejected_total + otlp.datagrams` once the queue is empty.
#[derive(Debug, Default)]
pub struct OtlpCounters {
    requests: AtomicU64,
    requests_rejected: [AtomicU64; OTLP_REQUEST_REJECTS.len()],
    datagrams: AtomicU64,
    spans: AtomicU64,
    spans_rejected: [AtomicU64; SpanReject::ALL.len()],
    spans_unsampled: AtomicU64,
    documents: AtomicU64,
}

impl OtlpCounters {
    /// Counts an OTLP/HTTP request.
    pub fn record_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused as a whole; `reason` is one of
    /// [`OTLP_REQUEST_REJECTS`].
    pub fn record_request_rejected(&self, reason: &str) {
        if let Some(i) = OTLP_REQUEST_REJECTS.iter().position(|r| *r == reason) {
            self.requests_rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a datagram whose spans were read.
    pub fn record_datagram(&self) {
        self.datagrams.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts spans read and what they became.
    pub fn record_spans(&self, spans: u64, documents: u64, rejected: &BTreeMap<SpanReject, u64>) {
        self.spans.fetch_add(spans, Ordering::Relaxed);
        self.documents.fetch_add(documents, Ordering::Relaxed);
        for (reason, n) in rejected {
            if let Some(i) = SpanReject::ALL.iter().position(|r| r == reason) {
                self.spans_rejected[i].fetch_add(*n, Ordering::Relaxed);
            }
        }
    }

    /// Counts unsampled spans (`T1U`), read and not stored.
    pub fn record_unsampled(&self, spans: u64) {
        self.spans.fetch_add(spans, Ordering::Relaxed);
        self.spans_unsampled.fetch_add(spans, Ordering::Relaxed);
    }

    /// A copy for reporting.
    pub fn snapshot(&self) -> OtlpSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OtlpSnapshot {
            requests: load(&self.requests),
            requests_rejected: OTLP_REQUEST_REJECTS
                .iter()
                .zip(&self.requests_rejected)
                .map(|(r, c)| (*r, load(c)))
                .collect(),
            datagrams: load(&self.datagrams),
            spans: load(&self.spans),
            spans_rejected: SpanReject::ALL
                .iter()
                .zip(&self.spans_rejected)
                .map(|(r, c)| (r.as_str(), load(c)))
                .collect(),
            spans_unsampled: load(&self.spans_unsampled),
            documents: load(&self.documents),
        }
    }
}

/// Point-in-time values of [`OtlpCounters`].
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OtlpSnapshot {
    /// OTLP/HTTP requests received.
    pub requests: u64,
    /// Requests refused as a whole (4xx), by reason.
    pub requests_rejected: BTreeMap<&'static str, u64>,
    /// `T1S`/`T1U` datagrams whose spans were read.
    pub datagrams: u64,
    /// Spans read (HTTP and UDP).
    pub spans: u64,
    /// Spans not converted, by reason (answered in `partial_success` over HTTP).
    pub spans_rejected: BTreeMap<&'static str, u64>,
    /// Unsampled spans (`T1U`): read, not stored, as X-Ray keeps only sampled traces.
    pub spans_unsampled: u64,
    /// Segment documents the spans became.
    pub documents: u64,
}

/// Point-in-time values of [`IntakeCounters`].
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntakeSnapshot {
    /// Datagrams read from the socket.
    pub received: u64,
    /// Bytes read from the socket and received through the API.
    pub received_bytes: u64,
    /// Documents received through the X-Ray API or an import.
    pub api_documents: u64,
    /// Documents handed to the store.
    pub accepted: u64,
    /// Sum of `rejected`.
    pub rejected_total: u64,
    /// Rejections by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Datagrams forwarded to `--forward`.
    pub forwarded: u64,
    /// Forwarding attempts that failed.
    pub forward_errors: u64,
    /// The OTLP intake.
    pub otlp: OtlpSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_header_spellings() {
        for h in [
            &b"{\"format\":\"json\",\"version\":1}\n{}"[..],
            b"{\"format\": \"json\", \"version\": 1}\n{}",
            b"{ \"FORMAT\" : \"JSON\" , \"Version\":1 }\n{\"a\":1}",
        ] {
            assert_eq!(split_datagram(h).map(|b| b.len() >= 2), Ok(true));
        }
    }

    #[test]
    fn rejects_like_the_daemon() {
        let cases: [(&[u8], Reject); 6] = [
            (b"", Reject::MissingHeaderOrBody),
            (
                b"{\"format\":\"json\",\"version\":1}",
                Reject::MissingHeaderOrBody,
            ),
            (
                b"{\"format\":\"json\",\"version\":1}\n",
                Reject::MissingHeaderOrBody,
            ),
            (
                b"{\"format\":\"json\",\"version\":2}\n{}",
                Reject::InvalidHeader,
            ),
            (
                b"{\"format\":\"xml\",\"version\":1}\n{}",
                Reject::InvalidHeader,
            ),
            (b"garbage\n{}", Reject::InvalidHeader),
        ];
        for (input, want) in cases {
            assert_eq!(split_datagram(input), Err(want));
        }
        assert_eq!(
            split_datagram(&vec![b'x'; MAX_DATAGRAM + 1]),
            Err(Reject::Oversized)
        );
    }

    #[test]
    fn body_reasons() {
        assert_eq!(parse_body(b"{\"a\":").err(), Some(Reject::TruncatedBody));
        assert_eq!(parse_body(b"nope").err(), Some(Reject::InvalidJson));
        assert_eq!(parse_body(b"[1]").err(), Some(Reject::NotAnObject));
        assert!(parse_body(b"{\"a\":1}").is_ok());
    }
}
