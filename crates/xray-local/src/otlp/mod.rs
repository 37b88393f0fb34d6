//! OpenTelemetry spans in: the OTLP/HTTP request bodies and the Lambda
//! daemon's `T1S`/`T1U` datagrams decoded with the generated
//! `opentelemetry-proto` messages ([`wire`]), and spans turned into segment
//! documents as X-Ray's converter does ([`mapping`]).
//!
//! Nothing here keeps state: `App::ingest_otlp` stores what [`mapping`]
//! produces through the same path as documents that arrive over UDP, so the
//! X-Ray API and the viewer show OTLP traces like any other.
//!
//! ```
//! use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
//! use xray_local::otlp::{mapping, wire};
//!
//! // An empty JSON request decodes to no spans and converts to no documents.
//! let body = wire::decode_body(b"{}", wire::Encoding::Json).expect("valid OTLP/JSON");
//! assert_eq!(body, ExportTraceServiceRequest::default());
//! let converted = mapping::convert(&body, 1.7e9);
//! assert!(converted.documents.is_empty());
//! ```

pub mod mapping;
pub mod wire;

/// The real endpoint's cap on one request, uncompressed (`xray.<region>.amazonaws.com/v1/traces`
/// takes at most 5 MB). Bodies over it are answered with a 413, counted while they are read
/// and, for gzip, while they are inflated.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// The real endpoint's cap on the spans of one request.
pub const MAX_SPANS_PER_REQUEST: usize = 10_000;
