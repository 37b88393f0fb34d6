//! The OTLP wire forms xray-local reads and writes: OTLP/HTTP bodies
//! (protobuf or JSON, gzip or not) and their answers, and the Lambda
//! daemon's OTLP datagrams (`T1S`/`T1U` + base64 of a protobuf
//! `ExportTraceServiceRequest`). Every message type is one of
//! `opentelemetry-proto`'s generated ones, except `google.rpc.Status`, which
//! that crate does not carry ([`RpcStatus`], derived with prost).

use std::fmt;
use std::io::Read;

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::json;

use super::{MAX_BODY_BYTES, MAX_SPANS_PER_REQUEST};

/// How a request body (and so its answer) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON: hex IDs, integer enums, camelCase keys).
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names (parameters such as `charset`
    /// are ignored, case does not matter), or `None` for any other type.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let media = value.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Self::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of a body in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// A request body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No `Content-Encoding`, or `identity`.
    None,
    /// `gzip` (also `x-gzip`).
    Gzip,
}

impl Compression {
    /// The compression a `Content-Encoding` header names (`None` when the
    /// header is absent), or `Err` with the value for one xray-local, like
    /// the X-Ray endpoint, does not take.
    pub fn from_header(value: Option<&str>) -> Result<Self, String> {
        let Some(v) = value.map(str::trim) else {
            return Ok(Self::None);
        };
        if v.is_empty() || v.eq_ignore_ascii_case("identity") {
            Ok(Self::None)
        } else if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
            Ok(Self::Gzip)
        } else {
            Err(v.to_string())
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Over [`MAX_BODY_BYTES`] (as sent, or once inflated).
    TooLarge,
    /// `Content-Encoding: gzip` over something that does not inflate.
    InvalidGzip(String),
    /// Not a protobuf `ExportTraceServiceRequest`.
    InvalidProtobuf(String),
    /// Not an OTLP/JSON `ExportTraceServiceRequest`.
    InvalidJson(String),
    /// More spans than the endpoint takes in one request.
    TooManySpans(usize),
}

impl BodyError {
    /// The HTTP status of the answer: 413 for size, 400 for the rest.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge => 413,
            _ => 400,
        }
    }

    /// Stable snake_case name for the counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::InvalidGzip(_) => "invalid_gzip",
            Self::InvalidProtobuf(_) => "invalid_protobuf",
            Self::InvalidJson(_) => "invalid_json",
            Self::TooManySpans(_) => "too_many_spans",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => write!(
                f,
                "the request body is over {MAX_BODY_BYTES} bytes uncompressed, the X-Ray OTLP endpoint's limit"
            ),
            Self::InvalidGzip(e) => write!(
                f,
                "Content-Encoding is gzip but the body does not inflate: {e}"
            ),
            Self::InvalidProtobuf(e) => write!(
                f,
                "the body is not a protobuf ExportTraceServiceRequest: {e}"
            ),
            Self::InvalidJson(e) => write!(
                f,
                "the body is not an OTLP/JSON ExportTraceServiceRequest: {e}"
            ),
            Self::TooManySpans(n) => write!(
                f,
                "the request has {n} spans; the X-Ray OTLP endpoint takes at most {MAX_SPANS_PER_REQUEST} per request"
            ),
        }
    }
}

impl std::error::Error for BodyError {}

/// Inflates a gzip body (one or more members), stopping as soon as the
/// output passes `limit` bytes: a small body that inflates to gigabytes
/// costs at most `limit` bytes and the time to produce them.
pub fn inflate(gz: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(gz.len().saturating_mul(4).min(limit) + 1);
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(gz)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::InvalidGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

/// Decodes an uncompressed body, then checks the span count.
pub fn decode_body(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportTraceServiceRequest, BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| BodyError::InvalidProtobuf(e.to_string()))?,
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(body)
            .map_err(|e| BodyError::InvalidJson(e.to_string()))?,
    };
    let spans = span_count(&request);
    if spans > MAX_SPANS_PER_REQUEST {
        return Err(BodyError::TooManySpans(spans));
    }
    Ok(request)
}

/// The spans a request carries.
pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers (its `details`
/// are never sent here, so the field is left out).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, for a developer.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `google.rpc.Code.INVALID_ARGUMENT`: the request is malformed.
pub const CODE_INVALID_ARGUMENT: i32 = 3;
/// `google.rpc.Code.RESOURCE_EXHAUSTED`: the request is too large.
pub const CODE_RESOURCE_EXHAUSTED: i32 = 8;

/// An error answer's body: a `google.rpc.Status` in `encoding`.
pub fn status_body(encoding: Encoding, code: i32, message: &str) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => RpcStatus {
            code,
            message: message.to_string(),
        }
        .encode_to_vec(),
        Encoding::Json => json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}

/// A success answer's body: an `ExportTraceServiceResponse` in `encoding`,
/// with `partial_success` set when spans were rejected (or a warning is
/// given).
pub fn response_body(encoding: Encoding, rejected_spans: u64, message: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    let partial = (rejected_spans > 0 || !message.is_empty()).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejected_spans).unwrap_or(i64::MAX),
        error_message: message.to_string(),
    });
    match encoding {
        Encoding::Protobuf => ExportTraceServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        // OTLP/JSON writes 64-bit integers as decimal strings.
        Encoding::Json => match partial {
            None => b"{}".to_vec(),
            Some(p) => json!({"partialSuccess": {
                "rejectedSpans": p.rejected_spans.to_string(),
                "errorMessage": p.error_message,
            }})
            .to_string()
            .into_bytes(),
        },
    }
}

/// The prefix of a datagram body carrying sampled spans.
pub const SAMPLED_PREFIX: &[u8] = b"T1S";
/// The prefix of a datagram body carrying unsampled spans.
pub const UNSAMPLED_PREFIX: &[u8] = b"T1U";

/// Why an OTLP datagram body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramError {
    /// What follows the prefix is not standard base64.
    InvalidBase64,
    /// It is base64, but not of a protobuf `ExportTraceServiceRequest`.
    InvalidProtobuf,
}

/// An OTLP datagram's content.
#[derive(Debug, Clone, PartialEq)]
pub struct DatagramSpans {
    /// `T1S` (sampled) rather than `T1U`.
    pub sampled: bool,
    /// The spans.
    pub request: ExportTraceServiceRequest,
}

/// Reads a datagram body (what follows the daemon header's newline):
/// `None` when it does not start with `T1S` or `T1U` (so it is a segment
/// document), else the spans or why they could not be read. Trailing
/// whitespace after the base64 is ignored.
pub fn decode_datagram_body(body: &[u8]) -> Option<Result<DatagramSpans, DatagramError>> {
    let (sampled, rest) = if let Some(rest) = body.strip_prefix(SAMPLED_PREFIX) {
        (true, rest)
    } else if let Some(rest) = body.strip_prefix(UNSAMPLED_PREFIX) {
        (false, rest)
    } else {
        return None;
    };
    let rest = rest.trim_ascii_end();
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| DatagramError::InvalidBase64)
            .and_then(|bytes| {
                ExportTraceServiceRequest::decode(bytes.as_slice())
                    .map_err(|_| DatagramError::InvalidProtobuf)
            })
            .map(|request| DatagramSpans { sampled, request }),
    )
}

/// Encodes spans as the Lambda daemon takes them: the daemon header, a
/// newline, `T1S` or `T1U` and the base64 of the protobuf request. For
/// tests and tools that send OTLP datagrams.
pub fn encode_datagram(request: &ExportTraceServiceRequest, sampled: bool) -> Vec<u8> {
    let mut out = br#"{"format":"json","version":1}"#.to_vec();
    out.push(b'\n');
    out.extend_from_slice(if sampled {
        SAMPLED_PREFIX
    } else {
        UNSAMPLED_PREFIX
    });
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(request.encode_to_vec())
            .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression as Level;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Level::default());
        e.write_all(data).expect("gzip in memory");
        e.finish().expect("gzip in memory")
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type("Application/JSON; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        assert_eq!(Encoding::from_content_type(""), None);
        assert_eq!(Compression::from_header(None), Ok(Compression::None));
        assert_eq!(
            Compression::from_header(Some("GZIP")),
            Ok(Compression::Gzip)
        );
        assert_eq!(Compression::from_header(Some("br")), Err("br".into()));
    }

    #[test]
    fn inflate_stops_at_the_limit() {
        let zeros = gzip(&vec![0u8; 1 << 20]);
        assert!(zeros.len() < 4096);
        assert_eq!(inflate(&zeros, 1000), Err(BodyError::TooLarge));
        assert_eq!(inflate(&zeros, 1 << 20).map(|v| v.len()), Ok(1 << 20));
        assert!(matches!(
            inflate(b"not gzip", 10),
            Err(BodyError::InvalidGzip(_))
        ));
        // Two members inflate as one body.
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        assert_eq!(inflate(&two, 10), Ok(b"abcd".to_vec()));
    }

    #[test]
    fn bodies_and_answers() {
        assert_eq!(
            decode_body(b"", Encoding::Protobuf),
            Ok(ExportTraceServiceRequest::default())
        );
        assert!(matches!(
            decode_body(b"\xff\xff\xff", Encoding::Protobuf),
            Err(BodyError::InvalidProtobuf(_))
        ));
        assert!(matches!(
            decode_body(b"{\"resourceSpans\": 3}", Encoding::Json),
            Err(BodyError::InvalidJson(_))
        ));
        assert_eq!(response_body(Encoding::Json, 0, ""), b"{}");
        assert!(response_body(Encoding::Protobuf, 0, "").is_empty());
        let v: serde_json::Value =
            serde_json::from_slice(&response_body(Encoding::Json, 2, "bad ids")).expect("JSON");
        assert_eq!(v["partialSuccess"]["rejectedSpans"], "2");
        let s = RpcStatus::decode(
            status_body(Encoding::Protobuf, CODE_INVALID_ARGUMENT, "nope").as_slice(),
        )
        .expect("Status");
        assert_eq!((s.code, s.message.as_str()), (3, "nope"));
    }

    #[test]
    fn spans_are_counted_before_they_are_decoded() {
        // 10 001 empty spans: 2 bytes each in protobuf, 3 in JSON.
        let n = MAX_SPANS_PER_REQUEST + 1;
        let mut scope = Vec::new();
        for _ in 0..n {
            scope.extend_from_slice(&[0x12, 0x00]);
        }
        let mut resource = vec![0x12];
        prost::encode_length_delimiter(scope.len(), &mut resource).expect("length");
        resource.extend(scope);
        let mut body = vec![0x0a];
        prost::encode_length_delimiter(resource.len(), &mut body).expect("length");
        body.extend(resource);
        assert_eq!(
            decode_body(&body, Encoding::Protobuf),
            Err(BodyError::TooManySpans(n))
        );
        let spans = vec!["{}"; n].join(",");
        let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
        assert_eq!(
            decode_body(json.as_bytes(), Encoding::Json),
            Err(BodyError::TooManySpans(n))
        );
        let ok = r#"{"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{"name":"x"},"spans":[{"name":"a"}]}]}]}"#;
        assert_eq!(
            decode_body(ok.as_bytes(), Encoding::Json).map(|r| span_count(&r)),
            Ok(1)
        );
    }

    #[test]
    fn datagrams() {
        let req = ExportTraceServiceRequest::default();
        let d = encode_datagram(&req, true);
        let body = &d[d.iter().position(|b| *b == b'\n').expect("newline") + 1..];
        assert_eq!(
            decode_datagram_body(body),
            Some(Ok(DatagramSpans {
                sampled: true,
                request: req
            }))
        );
        assert_eq!(decode_datagram_body(b"{\"id\":1}"), None);
        assert_eq!(
            decode_datagram_body(b"T1S!!!"),
            Some(Err(DatagramError::InvalidBase64))
        );
        assert_eq!(
            decode_datagram_body(b"T1U////////"),
            Some(Err(DatagramError::InvalidProtobuf))
        );
    }
}
