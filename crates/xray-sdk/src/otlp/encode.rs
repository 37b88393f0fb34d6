//! Request bodies from an `ExportTraceServiceRequest` written as protobuf: sent as it is, or
//! as OTLP/JSON (the generated type's serde form, decoded from those bytes), gzipped when
//! asked, into buffers reused from request to request.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::config::{OtlpCompression, OtlpProtocol};

/// Writes request bodies.
pub(crate) struct Encoder {
    protocol: OtlpProtocol,
    compression: OtlpCompression,
    plain: Vec<u8>,
    gzipped: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new(protocol: OtlpProtocol, compression: OtlpCompression) -> Self {
        Encoder {
            protocol,
            compression,
            plain: Vec::new(),
            gzipped: Vec::new(),
        }
    }

    /// The `Content-Type` of the bodies.
    pub(crate) fn content_type(&self) -> &'static str {
        match self.protocol {
            OtlpProtocol::HttpProtobuf => "application/x-protobuf",
            OtlpProtocol::HttpJson => "application/json",
        }
    }

    /// The `Content-Encoding`, when there is one.
    pub(crate) fn content_encoding(&self) -> Option<&'static str> {
        match self.compression {
            OtlpCompression::Gzip => Some("gzip"),
            OtlpCompression::None => None,
        }
    }

    /// The body for the request whose protobuf is `request`, as it goes on the wire.
    pub(crate) fn encode<'a>(&'a mut self, request: &'a [u8]) -> Result<&'a [u8], String> {
        let plain: &[u8] = match self.protocol {
            OtlpProtocol::HttpProtobuf => request,
            OtlpProtocol::HttpJson => {
                let decoded = ExportTraceServiceRequest::decode(request)
                    .map_err(|e| format!("protobuf decoding failed: {e}"))?;
                self.plain.clear();
                serde_json::to_writer(&mut self.plain, &decoded)
                    .map_err(|e| format!("JSON encoding failed: {e}"))?;
                &self.plain
            }
        };
        match self.compression {
            OtlpCompression::None => Ok(plain),
            OtlpCompression::Gzip => {
                self.gzipped.clear();
                let mut gz =
                    GzEncoder::new(std::mem::take(&mut self.gzipped), Compression::default());
                let done = gz.write_all(plain).and_then(|()| gz.finish());
                match done {
                    Ok(buf) => {
                        self.gzipped = buf;
                        Ok(&self.gzipped)
                    }
                    Err(e) => Err(format!("gzip failed: {e}")),
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read as _;

    use flate2::read::GzDecoder;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn request() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![0x5f; 16],
                        span_id: vec![0xab; 8],
                        name: "orders".into(),
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn bytes_that_are_not_a_request_give_a_clear_error_for_json() {
        let mut e = Encoder::new(OtlpProtocol::HttpJson, OtlpCompression::None);
        let err = e.encode(b"\x0a\xff\xff\xff").unwrap_err();
        assert!(err.starts_with("protobuf decoding failed"), "{err}");
        // The encoder is still usable afterwards.
        let proto = request().encode_to_vec();
        assert!(e.encode(&proto).is_ok());
    }

    #[test]
    fn protobuf_json_and_gzip_read_back() {
        let req = request();
        let proto = req.encode_to_vec();
        let mut e = Encoder::new(OtlpProtocol::HttpProtobuf, OtlpCompression::None);
        assert_eq!(e.content_type(), "application/x-protobuf");
        let body = e.encode(&proto).unwrap().to_vec();
        assert_eq!(ExportTraceServiceRequest::decode(&body[..]).unwrap(), req);

        let mut e = Encoder::new(OtlpProtocol::HttpProtobuf, OtlpCompression::Gzip);
        let body = e.encode(&proto).unwrap().to_vec();
        let mut unzipped = Vec::new();
        GzDecoder::new(&body[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, proto);

        let mut e = Encoder::new(OtlpProtocol::HttpJson, OtlpCompression::Gzip);
        assert_eq!(e.content_encoding(), Some("gzip"));
        let body = e.encode(&proto).unwrap().to_vec();
        let mut json = String::new();
        GzDecoder::new(&body[..]).read_to_string(&mut json).unwrap();
        // OTLP/JSON: hex IDs, camelCase keys, 64-bit integers as strings.
        assert!(
            json.contains("\"traceId\":\"5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f\""),
            "{json}"
        );
        assert!(json.contains("\"spanId\":\"abababababababab\""), "{json}");
        assert!(
            json.contains("\"startTimeUnixNano\":\"1700000000000000000\""),
            "{json}"
        );
        let back: ExportTraceServiceRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, req);
        // The buffers are reused: a second body is as good as the first.
        let again = e.encode(&proto).unwrap().to_vec();
        assert_eq!(again.len(), body.len());
    }
}
