//! Datagram parsing, exactly as the X-Ray daemon does it, plus intake counters.
//!
//! A datagram is `header JSON` + `\n` + one segment or subsegment document.
//! The daemon splits at the first newline, decodes the header leniently
//! (decode errors leave zero values) and accepts it when `format` equals
//! `json` ignoring case and `version` is 1. It does not look at the body;
//! this crate additionally checks that the body is a JSON object so that
//! garbage is counted instead of stored.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::document::{self, Node, ParseError};

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
}

impl Reject {
    /// Every reason, in display order.
    pub const ALL: [Reject; 7] = [
        Reject::MissingHeaderOrBody,
        Reject::InvalidHeader,
        Reject::Oversized,
        Reject::TruncatedBody,
        Reject::InvalidJson,
        Reject::NotAnObject,
        Reject::QueueFull,
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
        }
    }
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
