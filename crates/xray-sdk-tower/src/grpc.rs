//! gRPC over HTTP/2 as the layers see it: a request is a gRPC call when its `content-type` is
//! `application/grpc` (optionally `+format` or `;parameters`), and a call's status is in the
//! response headers (a trailers-only answer) or in the trailers that end the body.
//!
//! The mapping of status codes to flags is the core's (`xray_sdk::remote::GrpcCode::flags`),
//! shared by the server layer and the client layer.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use xray_sdk::remote::{GrpcCode, GrpcStatus};

pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Whether a `content-type` value names gRPC: `application/grpc`, `application/grpc+proto`,
/// `application/grpc;charset=...`, in any case. gRPC-Web (`application/grpc-web...`) is not:
/// its trailers travel inside the body, where the layers do not look.
pub(crate) fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    match value.get(..GRPC.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(GRPC) => {
            matches!(value.get(GRPC.len()), None | Some(b'+' | b';' | b' '))
        }
        _ => false,
    }
}

/// Whether a request or response is gRPC, by its `content-type`.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| is_grpc_content_type(v.as_bytes()))
}

/// The gRPC status in a header map (response headers or trailers): `grpc-status` and
/// `grpc-message`, borrowed. A `grpc-status` that is not a number reads as `UNKNOWN`, as
/// gRPC clients read it.
pub(crate) fn status_in(headers: &HeaderMap) -> Option<GrpcStatus<'_>> {
    let code = headers.get(GRPC_STATUS)?;
    let message = headers.get(GRPC_MESSAGE).map(HeaderValue::as_bytes);
    Some(
        GrpcStatus::from_header(code.as_bytes(), message).unwrap_or(GrpcStatus {
            code: GrpcCode::UNKNOWN,
            message,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        for yes in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"Application/GRPC+json",
            b"application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc_content_type(yes), "{yes:?}");
        }
        for no in [
            &b"application/grpc-web"[..],
            b"application/grpc-web+proto",
            b"application/grpcx",
            b"application/json",
            b"application/grp",
            b"",
        ] {
            assert!(!is_grpc_content_type(no), "{no:?}");
        }
    }

    #[test]
    fn statuses_in_headers() {
        let mut headers = HeaderMap::new();
        assert!(status_in(&headers).is_none());
        headers.insert(GRPC_STATUS, HeaderValue::from_static("5"));
        headers.insert(GRPC_MESSAGE, HeaderValue::from_static("no%20such%20order"));
        let status = status_in(&headers).unwrap();
        assert_eq!(status.code, GrpcCode::NOT_FOUND);
        assert_eq!(status.message().as_deref(), Some("no such order"));
        headers.insert(GRPC_STATUS, HeaderValue::from_static("five"));
        assert_eq!(status_in(&headers).unwrap().code, GrpcCode::UNKNOWN);
    }
}
