//! The response the layer answers in place of a panic in the wrapped service.
//!
//! The cause a panic leaves on the segment comes from the core's panic hook
//! (`xray_sdk::panic`), which every recorder installs: the layer turns the payload it caught
//! into an exception with `xray_sdk::panic::exception`, and, when the response it sees says
//! the request failed (5xx, or a gRPC status that is a fault), takes the panic the hook noted
//! for the request's segment with `xray_sdk::panic::take_for_segment`: a panic that a
//! `CatchPanicLayer` *inside* the X-Ray layer turned into a response becomes the segment's
//! cause that way.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::grpc::{GRPC_MESSAGE, GRPC_STATUS};

/// Turns `res` (an empty response) into the answer for a request whose handler panicked:
/// `500 Internal Server Error`, or for a gRPC call a trailers-only `INTERNAL` status (HTTP
/// 200, `grpc-status: 13`), which gRPC clients read as `Status::internal`.
pub(crate) fn answer<B>(res: &mut Response<B>, grpc: bool) {
    if grpc {
        *res.status_mut() = StatusCode::OK;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(GRPC_STATUS, HeaderValue::from_static("13"));
        headers.insert(GRPC_MESSAGE, HeaderValue::from_static("Service panicked"));
    } else {
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
}
